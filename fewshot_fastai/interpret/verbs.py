"""Top losses of pairs and episodes. fastai's own `Interpretation.from_learner(learn).plot_top_losses(k)` draws them
(the pair and episode functions are registered by type dispatch in `ff.data.show`); these two name the kind and
return the figure."""
from fastai.interpret import Interpretation
from ..data.episode_loaders import EpisodeDL
from ..data.pairs import PairDL
from .._distrib import plain_dl

__all__ = ['pair_top_losses', 'episode_top_losses']

def _top_losses(interp, kind, k, largest, **kwargs):
    import matplotlib.pyplot as plt
    dl = plain_dl(interp.dl)
    if not isinstance(dl, kind):
        raise ValueError(f'{type(dl).__name__}: not the loader of this kind of learner ({kind.__name__} expected)')
    interp.plot_top_losses(k, largest, **kwargs)
    return plt.gcf()

def pair_top_losses(
    interp:Interpretation, # fastai `Interpretation` of a siamese learner
    k:int=9, # how many pairs
    largest:bool=True, # largest losses first (False: smallest)
    **kwargs,
):
    "The `k` validation pairs with the largest (or smallest) losses: both images, prediction / truth / loss / p(same). -> the figure"
    return _top_losses(interp, PairDL, k, largest, **kwargs)

def episode_top_losses(
    interp:Interpretation, # fastai `Interpretation` of an episodic learner
    k:int=9, # how many queries
    largest:bool=True, # largest losses first (False: smallest)
    **kwargs,
):
    """The `k` queries of `interp.dl`'s fixed episodes with the largest (or smallest) losses: query, support image of
    the true class, support image of the predicted class, with loss and probability. -> the figure"""
    return _top_losses(interp, EpisodeDL, k, largest, **kwargs)
