"""How pairs and episodes show themselves, registered through fastai's type dispatch (`show_batch`, `show_results`,
`plot_top_losses`) as fastai's own vision types are: `dls.show_batch()`, `learn.show_results()` and
`Interpretation.from_learner(learn).plot_top_losses(k)` reach these functions by the type of the decoded batch.

- Pairs: a decoded batch is a `SiameseImage` of both images and the label; each pair is drawn side by side.
- Episodes: `EpisodeImages` (the supports then the queries of one episode) and `EpisodeQueries` (the queries that
  `plot_top_losses` picked, one per row, with the support images of their true and predicted classes)."""
import torch
# fastai's catch-all `plot_top_losses(x, y, *args)` must be registered before ours: plum finds `Any` and our types
# comparable both ways, and then the method registered last wins. fastai registers it when `fastai.interpret` is
# first imported, which `fastai.vision.all` does but a user importing only parts of fastai may not have done yet.
import fastai.interpret  # noqa: F401
from fastai.torch_core import TensorImage, show_image
from fastai.vision.data import get_grid
from fastcore.foundation import L
from plum import dispatch
from .pairs import SiameseImage, PAIR_LABELS

__all__ = ['EpisodeImages', 'EpisodeQueries', 'QueryRef', 'show_titled']

class EpisodeImages(TensorImage):
    "The images of one episode, (S+Q,C,H,W): the support images, then the queries"

class EpisodeQueries(TensorImage):
    "Query images of several episodes, (K,C,H,W): the rows of `plot_top_losses`"

class QueryRef:
    "Query `j` of fixed episode `i` of an `EpisodeDataset`: an item of a validation `EpisodeDL` (`dl.items`)"
    def __init__(
        self,
        dataset, # the `EpisodeDataset` with fixed episodes
        i:int, # the episode's position
        j:int, # the query's position in the episode
    ): self.dataset, self.i, self.j = dataset, i, j
    @property
    def episode(self):
        "The `Episode` the query belongs to"
        return self.dataset.episodes[self.i]
    def names(self) -> list[str]:
        "Names of the episode's classes"
        return self.dataset.class_names(self.episode)
    def __repr__(self): return f'QueryRef(episode={self.i}, query={self.j})'

def show_titled(
    ax, # a matplotlib axis
    t, # an image, (C,H,W), uint8 or in [0,1]
    title:str, # its title
    color=None, # the title's colour (default black)
):
    "fastai's `show_image` of a (C,H,W) image tensor (uint8 or [0,1]), with a small, optionally coloured title"
    show_image(t.detach().cpu(), ax=ax, cmap='gray' if t.shape[0] == 1 else None)
    ax.set_title(title, fontsize=8, color=color or 'black')

# ---- pairs: fastai's TfmdDL passes the whole decoded batch as `x` when its type has `show`
@dispatch
def show_batch(x:SiameseImage, y, samples, ctxs=None, max_n=6, nrows=None, ncols=2, figsize=None, **kwargs):
    n = min(len(x[0]), max_n)
    if ctxs is None: ctxs = get_grid(n, nrows=nrows, ncols=min(ncols, n), figsize=figsize)
    for i, ctx in enumerate(ctxs[:n]): SiameseImage(x[0][i], x[1][i], x[2][i]).show(ctx=ctx, **kwargs)
    return ctxs

@dispatch
def show_results(x:SiameseImage, y, samples, outs, ctxs=None, max_n=6, nrows=None, ncols=2, figsize=None, **kwargs):
    "`x` holds the pairs and their truth; the model's decoded prediction is `y[2]` (a `SiameseImage`) or `outs[i][0]`"
    n = min(len(x[0]), max_n)
    if ctxs is None: ctxs = get_grid(n, nrows=nrows, ncols=min(ncols, n), figsize=figsize)
    for i, ctx in enumerate(ctxs[:n]):
        truth = int(x[2][i])
        pred = int(y[2][i]) if isinstance(y, SiameseImage) else int(outs[i][0])
        title = f'pred: {PAIR_LABELS[pred]}\ntruth: {PAIR_LABELS[truth]}'
        ax = SiameseImage(x[0][i], x[1][i]).show(ctx=ctx, title=title, **kwargs)
        ax.title.set_color('green' if pred == truth else 'red')
    return ctxs

@dispatch
def plot_top_losses(x:SiameseImage, y, samples, outs, raws, losses, ncols=2, figsize=None, **kwargs):
    "Both images of each pair, titled prediction / truth / loss / p(same), green when right"
    n = len(samples)
    axs = get_grid(n, ncols=min(ncols, n), figsize=figsize, title='prediction / truth / loss / p(same)')
    for i, ax in enumerate(axs[:n]):
        a, b, truth = samples[i]
        p = float(raws[i, 1]) if raws.ndim == 2 else float(raws[i])   # (different, same) softmax, or p(same)
        pred, truth = PAIR_LABELS[int(outs[i][0])], PAIR_LABELS[int(truth)]
        SiameseImage(a, b).show(ctx=ax, title=f'{pred} / {truth} / {float(losses[i]):.2f} / {p:.2f}', **kwargs)
        ax.title.set_color('green' if pred == truth else 'red')
    return axs

# ---- episodes
@dispatch
def show_batch(x:EpisodeImages, y, samples, ctxs=None, max_n=10, figsize_per=1.4, **kwargs):
    "`y`: (support labels, query labels) as lists, `samples`: the class names; the supports in a row, then the queries"
    import matplotlib.pyplot as plt
    (sy, qy), names = y, samples
    ns, nq = len(sy), min(len(qy), max_n)
    cols = max(min(ns, 10), min(nq, 10))
    rows = -(-ns//cols) + -(-nq//cols)
    fig, axs = plt.subplots(rows, cols, figsize=(figsize_per*cols, figsize_per*1.15*rows), squeeze=False)
    for ax in axs.flat: ax.axis('off')
    for i in range(ns): show_titled(axs.flat[i], x[i], f'support: {names[sy[i]]}')
    first = -(-ns//cols)*cols
    for j in range(nq): show_titled(axs.flat[first + j], x[ns + j], f'query: {names[qy[j]]}', 'tab:blue')
    fig.tight_layout()
    return fig

@dispatch
def show_results(x:EpisodeImages, y, samples, outs, ctxs=None, max_n=9, figsize_per=1.6, **kwargs):
    "Each query beside the support image of the class the model chose (`outs`), green when right and red when wrong"
    import matplotlib.pyplot as plt
    (sy, qy), names, pred = y, samples, outs
    n = min(len(qy), max_n)
    first_of = {c: sy.index(c) for c in set(sy)}
    fig, axs = plt.subplots(n, 2, figsize=(2*figsize_per, figsize_per*1.2*n), squeeze=False)
    for j in range(n):
        show_titled(axs[j, 0], x[len(sy) + j], f'query ({names[qy[j]]})')
        show_titled(axs[j, 1], x[first_of[pred[j]]], f'pred: {names[pred[j]]}', 'green' if pred[j] == qy[j] else 'red')
    fig.tight_layout()
    return fig

@dispatch
def plot_top_losses(x:EpisodeQueries, y, samples, outs, raws, losses, figsize_per=1.6, **kwargs):
    """Each query (loss), the support image of its true class and that of the predicted class (probability); `samples`
    and `outs` are `(query, None, support image, class name)` of the truth and of the prediction"""
    import matplotlib.pyplot as plt
    fig, axs = plt.subplots(len(samples), 3, figsize=(3*figsize_per, 1.25*figsize_per*len(samples)), squeeze=False)
    for r, (s, o) in enumerate(zip(samples, outs)):
        (q, _, truth_img, truth), (pred_img, pred) = s, o
        show_titled(axs[r, 0], q, f'query, loss {float(losses[r]):.2f}')
        show_titled(axs[r, 1], truth_img, f'truth: {truth}')
        show_titled(axs[r, 2], pred_img, f'pred: {pred} ({float(raws[r].max()):.2f})', 'green' if pred == truth else 'red')
    fig.tight_layout()
    return fig

def query_samples(
    b, # (images of K one-query episodes stacked, their support labels stacked, one class per query)
    refs=None, # the `QueryRef` of each row, for the class names
    max_n:int=9, # at most this many rows
):
    "`(EpisodeQueries, classes, samples)` as fastai's `_pre_show_batch` returns them, for `plot_top_losses`"
    x, sy, lab = b[0], b[1], b[2]
    k = len(lab); s = len(sy)//k
    rows = []
    for i in range(min(k, max_n)):
        xi, syi, c = x[i*(s + 1):(i + 1)*(s + 1)], sy[i*s:(i + 1)*s].tolist(), int(lab[i])
        names = refs[i].names() if refs is not None and len(refs) == k else [f'class {n}' for n in range(max(syi) + 1)]
        rows.append((xi[s], None, xi[syi.index(c)], names[c]))
    return EpisodeQueries(torch.stack([r[0] for r in rows])), lab, L(rows)
