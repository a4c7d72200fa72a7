"""The recipe registry (as timm's model registry): each recipe is a function registered under a name with what it
was measured at. `names()`, `recipe(name)`, `pick(data)` (a recipe for a folder, from what its images look like) and
`overrides(name, ['key=value', ...])` (typed parameters from strings, for the command line and the benchmarks)."""
import inspect
from dataclasses import dataclass
from pathlib import Path
from fastcore.docments import docments

__all__ = ['Recipe', 'register', 'names', 'recipe', 'pick', 'overrides', 'class_folder']

@dataclass
class Recipe:
    "A named recipe: `fn(data, **params)` -> a fitted Learner whose inference configuration `ff.save_model` keeps"
    name: str   # what `ff.recipe(name)` looks up
    fn: callable   # `fn(data, **params)` -> the fitted Learner
    data: str   # the kind of data it is for
    figure: str   # what it was measured at (see bench/RESULTS.md)
    command: str   # the command that reproduces the figure
    def __call__(
        self,
        data, # a folder of class folders, or a `ClassFolder`
        **params, # the recipe's parameters to override
    ):
        "Run the recipe on `data`: -> the fitted Learner"
        return self.fn(data, **params)
    @property
    def doc(self) -> str: return inspect.getdoc(self.fn) or ''
    def params(self) -> dict:
        "{parameter: (default, documentation)} of the recipe's own settings (not `data`)"
        docs = docments(self.fn)
        return {k: (p.default, docs.get(k) or '') for k, p in inspect.signature(self.fn).parameters.items()
                if k != 'data' and p.kind == p.POSITIONAL_OR_KEYWORD}
    def settings(
        self,
        params:dict, # the parameters given (overrides)
    ) -> dict:
        "Every setting of a run with `params` (the defaults, overridden), as JSON-able values: what to record beside a figure"
        out = {k: d for k, (d, _) in self.params().items() if k not in _NOT_SETTINGS} | {k: v for k, v in params.items() if k not in _NOT_SETTINGS}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
    def check(
        self,
        params:dict, # {parameter: value}
    ):
        "A one-line error for a parameter the recipe does not have"
        bad = [k for k in params if k not in self.params()]
        if bad: raise ValueError(f'recipe {self.name!r} has no parameter {bad[0]!r}; its parameters: {", ".join(self.params())}')

_RECIPES: dict[str, Recipe] = {}
_NOT_SETTINGS = ('cbs', 'quiet', 'extra_tfms')   # objects, not JSON-able settings

def register(
    name:str, # the recipe's name
    data:str, # the kind of data it is for
    figure:str, # what it was measured at
    command:str, # the command that reproduces the figure
):
    "Decorator: register a recipe function under `name`, with the kind of data, the measured figure and its command"
    def deco(fn):
        if name in _RECIPES: raise ValueError(f'recipe {name!r} is registered twice')
        _RECIPES[name] = Recipe(name, fn, data, figure, command)
        return fn
    return deco

def names() -> list[str]:
    "The registered recipe names"
    return sorted(_RECIPES)

def recipe(
    name:str, # a name from `names()`
) -> Recipe:
    "The recipe registered as `name`: call it as `recipe(name)(data, **params)`"
    if name not in _RECIPES: raise ValueError(f'unknown recipe {name!r}: choose from {", ".join(names())}')
    return _RECIPES[name]

def _parse(name:str, key:str, text:str, default):
    "`text` as the type of `default` (bool, int, float, str, a tuple of them, or None: a number or a string)"
    try:
        if isinstance(default, bool) or default is None and text.lower() in ('true', 'false'):
            if text.lower() not in ('true', 'false', '1', '0', 'yes', 'no'): raise ValueError
            return text.lower() in ('true', '1', 'yes')
        if isinstance(default, (tuple, list)):
            parts = [t for t in text.split(',') if t]
            kind = type(default[0]) if default else str
            return tuple(kind(t) for t in parts)
        if isinstance(default, int): return int(text)
        if isinstance(default, float): return float(text)
        if default is None:
            if text.lower() == 'none': return None
            for kind in (int, float):
                try: return kind(text)
                except ValueError: pass
        return text
    except ValueError:
        raise ValueError(f'recipe {name!r}: {key}={text!r} is not a {type(default).__name__} (default {default!r})') from None

def overrides(
    name:str, # the recipe
    items, # 'key=value' strings; a tuple parameter takes 'a,b'
) -> dict:
    "Typed recipe parameters from 'key=value' strings, checked against the recipe's signature (one-line errors)"
    r, out = recipe(name), {}
    params = r.params()
    for item in items:
        if '=' not in item: raise ValueError(f'--set {item!r}: use KEY=VALUE (recipe {name!r} parameters: {", ".join(params)})')
        key, text = item.split('=', 1)
        key = key.strip().replace('-', '_')
        r.check({key: None})
        out[key] = _parse(name, key, text.strip(), params[key][0])
    return out

def class_folder(
    data, # a folder of class folders, or a `ClassFolder` (returned as it is)
    **kwargs, # `ClassFolder` arguments
):
    "A `ClassFolder` from a folder (or one given)"
    from ..data.items import ClassFolder
    if isinstance(data, ClassFolder): return data
    if not Path(data).is_dir(): raise FileNotFoundError(f'{data}: no such folder (one folder of images per class)')
    return ClassFolder(data, **kwargs)

def pick(
    data, # a folder of class folders, or a `ClassFolder`
    n:int=24, # images to look at
) -> tuple[str, str]:
    """The recipe for `data` from what its images look like, and why: line drawings (grey, nearly every pixel
    black or white, mostly background) -> 'drawings'; anything else (photos, e.g. faces) -> 'faces'."""
    import numpy as np
    cf = class_folder(data)
    step = max(1, len(cf.files)//n)
    extreme, colour = [], False
    for i in range(0, len(cf.files), step)[:n]:
        im = cf.images[i]
        a = np.asarray(im.convert('RGB'), dtype=np.int16)
        colour |= bool(np.abs(a - a.mean(-1, keepdims=True)).max() > 16)
        g = a.mean(-1)
        extreme.append(float(((g < 40) | (g > 215)).mean()))
    share = sum(extreme)/len(extreme)
    if not colour and share > 0.9:
        return 'drawings', f'grey images with {share:.0%} of pixels black or white: line drawings'
    return 'faces', (f'{"colour" if colour else "grey"} images with {share:.0%} of pixels black or white: photos '
                     '(the faces recipe: frozen ImageNet features, whitened on your identities)')
