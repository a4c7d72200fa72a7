"""fastai's `Interpretation.plot_top_losses` for our learners. Pairs: both images with prediction, truth, loss and
probability of 'same'. Episodes: the hardest queries of the validation episodes beside the support images of their
true and predicted classes. (fastai's own method draws nothing for batch types that show themselves whole, as
`SiameseImage` does, and needs `dl.items`, which episodes lack.)"""
import torch
from fastai.interpret import Interpretation
from ..data.episode_loaders import EpisodeDL, show_titled
from ..data.pairs import SiameseImage, PairSampler, PAIR_LABELS
from .._distrib import plain_dl
from fastai.vision.data import get_grid

__all__ = ['pair_top_losses', 'episode_top_losses']

def pair_top_losses(
    interp:Interpretation, # fastai `Interpretation` of a siamese learner
    k:int=9, # how many pairs
    largest:bool=True, # largest losses first (False: smallest)
    ncols:int=2, # pairs per row
    figsize=None, # figure size (default: from the grid)
    **kwargs,
):
    "The `k` validation pairs with the largest (or smallest) losses: both images, prediction / truth / loss / p(same)"
    losses, idx = interp.top_losses(k, largest)
    (a, b), preds, targs, _, _ = interp[idx]
    n = len(idx)
    axs = get_grid(n, ncols=min(ncols, n), figsize=figsize, title='prediction / truth / loss / p(same)')
    for i, ax in enumerate(axs[:n]):
        p = float(preds[i, 1]) if preds.ndim == 2 else float(preds[i])   # (different, same) softmax, or p(same)
        pred, truth = PAIR_LABELS[int(p > 0.5)], PAIR_LABELS[int(targs[i])]
        SiameseImage(a[i], b[i]).show(ctx=ax, title=f'{pred} / {truth} / {float(losses[i]):.2f} / {p:.2f}', **kwargs)
        ax.title.set_color('green' if pred == truth else 'red')
    return axs

def episode_top_losses(
    interp:Interpretation, # fastai `Interpretation` of an episodic learner
    k:int=9, # how many queries
    largest:bool=True, # largest losses first (False: smallest)
    figsize_per:float=1.6, # inches per image
):
    """The `k` queries of `interp.dl`'s fixed episodes with the largest (or smallest) losses: query, support image of
    the true class, support image of the predicted class, with loss and probability. -> the figure"""
    import matplotlib.pyplot as plt
    dl = plain_dl(interp.dl)
    ds = dl.dataset
    if ds.episodes is None: raise ValueError('plot_top_losses needs fixed episodes: use the validation loader (ds_idx=1)')
    where = [(e, j) for e in ds.episodes for j in range(len(e.query))]        # the order of get_preds' rows
    if len(where) != len(interp.losses):
        raise ValueError(f'{len(interp.losses)} losses for {len(where)} queries: build the Interpretation from this loader')
    probs = interp.learn.get_preds(dl=interp.dl)[0]
    losses, idx = interp.losses.topk(min(k, len(where)), largest=largest)
    fig, axs = plt.subplots(len(idx), 3, figsize=(3*figsize_per, 1.25*figsize_per*len(idx)), squeeze=False)
    for row, (loss, g) in enumerate(zip(losses.tolist(), idx.tolist())):
        e, j = where[g]
        names, truth = ds.class_names(e), e.query_labels[j]
        pred = int(probs[g].argmax())
        first = {c: e.support[e.support_labels.index(c)] for c in set(e.support_labels)}
        x = ds.x[[e.query[j], first[truth], first[pred]]]
        show_titled(axs[row, 0], x[0], f'query, loss {loss:.2f}')
        show_titled(axs[row, 1], x[1], f'truth: {names[truth]}')
        show_titled(axs[row, 2], x[2], f'pred: {names[pred]} ({float(probs[g, pred]):.2f})', 'green' if pred == truth else 'red')
    fig.tight_layout()
    return fig

_fastai_plot_top_losses = Interpretation.plot_top_losses

def _plot_top_losses(self, k, largest=True, **kwargs):
    "Pair loaders get `pair_top_losses`, episodic ones `episode_top_losses`, every other loader fastai's own method"
    dl = plain_dl(self.dl)
    if isinstance(dl, EpisodeDL): return episode_top_losses(self, k, largest, **kwargs)
    if any(isinstance(t, PairSampler) for t in getattr(getattr(dl, 'after_item', None), 'fs', [])):
        return pair_top_losses(self, k, largest, **kwargs)
    return _fastai_plot_top_losses(self, k, largest, **kwargs)
Interpretation.plot_top_losses = _plot_top_losses
