"""Recipes: the best measured settings for a kind of data, as named functions that build the data, the learner and the
inference configuration and train (or fit) it. `ff.recipes.names()`, `ff.recipe(name)(data, **params)`; each carries
the figure it was measured at (`measured.json`, rewritten by the bench scripts with `--record`) and the command that
reproduces it (`fewshot-fastai recipes`)."""
from .registry import Recipe, register, names, recipe, pick, overrides, measured, record_figure
# one private module per recipe: `ff.recipes.drawings` is the recipe function, never a module it would shadow
from ._drawings import drawings
from ._faces import faces
from ._photos import photos
from ._pairs import pairs

__all__ = ['Recipe', 'register', 'names', 'recipe', 'pick', 'overrides', 'measured', 'record_figure', 'drawings', 'faces', 'photos', 'pairs']
