"""Overlays of class activation / similarity maps, the CAM bounding box, and a Learner callback that saves
overlays for a few validation items."""
import numpy as np
import torch
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle
from scipy import ndimage
from fastai.callback.core import Callback
from fastai.learner import Learner
from .maps import cam_result
from .pairs import similarity_maps
from .._distrib import unwrap_model, is_main_process
from .._files import replacing_file

__all__ = ['cam_bbox', 'show_cam', 'show_pair_cam', 'show_cams', 'CAMCallback', 'display_image', 'save_figure']

def save_figure(
    fig=None, # a matplotlib figure; None: the current one
    path='figure.png', # the PNG to write
    dpi:int=80, # resolution
    tight:bool=True, # crop to the drawn area (`bbox_inches='tight'`)
):
    "Write `fig` as a PNG, all-or-nothing (a temporary sibling renamed onto `path`), then close it -> `path`"
    fig = fig or plt.gcf()
    try:
        with replacing_file(path) as tmp: fig.savefig(tmp, format='png', dpi=dpi, **(dict(bbox_inches='tight') if tight else {}))
    finally: plt.close(fig)
    return path

def _np(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

def cam_bbox(
    cam_map, # a map (H,W) in [0,1]
    thresh:float=0.2, # share of the maximum that counts as inside
) -> tuple[int, int, int, int]:
    """Box `(x0, y0, x1, y1)` in pixels (inclusive) around the largest connected region of `cam_map` (H,W) above
    `thresh` x its maximum, as in Zhou et al. (2016)."""
    m = _np(cam_map)
    if m.ndim != 2: raise ValueError(f'cam_bbox: expected one (H,W) map, got shape {m.shape}')
    if not 0 <= thresh < 1: raise ValueError(f'cam_bbox: thresh={thresh} must be in [0, 1)')
    top = m.max()
    mask = m > thresh*top if top > 0 else m >= top
    # scipy's labelling: torch/fastai have no connected components
    lab, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum(mask, lab, index=range(1, n + 1))
        mask = lab == (1 + int(np.argmax(sizes)))
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())

def display_image(
    img, # a (C,H,W) tensor, a PIL image or an array
) -> np.ndarray:
    """(H,W) or (H,W,3) array in [0,1] from a PIL image, an (C,H,W) tensor or an array; tensors outside [0,1]
    (normalised model inputs) are min-max scaled for display"""
    if hasattr(img, 'convert'): return np.asarray(img.convert('RGB'), dtype=np.float32)/255
    a = _np(img)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3): a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1: a = a[..., 0]
    if a.dtype == np.uint8: return a.astype(np.float32)/255
    if a.min() < 0 or a.max() > 1: a = (a - a.min())/max(a.max() - a.min(), 1e-12)
    return a

def show_cam(
    img, # image: PIL, tensor (C,H,W) or array
    cam_map, # map (H,W) in [0,1] at the image size
    ax=None, # matplotlib axis (a new one if None)
    alpha:float=0.5, # opacity of the map
    cmap:str='jet', # matplotlib colour map
    box:bool=False, # draw the `cam_bbox` box
    thresh:float=0.2, # threshold of the box
    title:str|None=None, # axis title
    figsize=(3, 3), # size of a new figure
):
    "Show `img` with `cam_map` (H,W) blended over it (`alpha`, `cmap`); `box`: draw `cam_bbox(cam_map, thresh)`"
    if ax is None: _, ax = plt.subplots(figsize=figsize)
    im, m = display_image(img), _np(cam_map)
    ax.imshow(im, cmap='gray' if im.ndim == 2 else None, vmin=0, vmax=1)
    ax.imshow(m, cmap=cmap, alpha=alpha, vmin=0, vmax=max(float(m.max()), 1e-12), interpolation='bilinear',
              extent=(-0.5, im.shape[1] - 0.5, im.shape[0] - 0.5, -0.5))
    if box:
        x0, y0, x1, y1 = cam_bbox(m, thresh)
        ax.add_patch(Rectangle((x0 - .5, y0 - .5), x1 - x0 + 1, y1 - y0 + 1, fill=False, edgecolor='lime', lw=2))
    if title: ax.set_title(title, fontsize=9)
    ax.axis('off')
    return ax

def show_pair_cam(
    a, # first image
    b, # second image
    map_a, # map (H,W) on `a`
    map_b, # map (H,W) on `b`
    score:float|None=None, # the model's score, shown in the title
    axs=None, # two matplotlib axes (new ones if None)
    **kwargs,
):
    "Both images of a pair with their similarity maps, the score in the title"
    if axs is None: _, axs = plt.subplots(1, 2, figsize=(5, 2.7))
    show_cam(a, map_a, ax=axs[0], **kwargs); show_cam(b, map_b, ax=axs[1], **kwargs)
    if score is not None: axs[0].figure.suptitle(f'similarity {float(score):.3f}', fontsize=10)
    return axs

def show_cams(
    images, # images (PIL, tensors or arrays)
    maps, # one map (H,W) per image
    titles=None, # one title per image
    box:bool=True, # draw `cam_bbox` boxes
    ncols:int=4, # images per row
    **kwargs,
):
    "A grid of overlays (with boxes by default); -> the figure"
    n = len(images)
    ncols = min(ncols, n); nrows = -(-n//ncols)
    fig, axs = plt.subplots(nrows, ncols, figsize=(2.6*ncols, 2.6*nrows), squeeze=False)
    for i, ax in enumerate(axs.flat):
        if i < n: show_cam(images[i], maps[i], ax=ax, box=box, title=titles[i] if titles else None, **kwargs)
        else: ax.axis('off')
    fig.tight_layout()
    return fig

def _valid_batch(learn:Learner, n:int, ds_idx:int=1):
    "The first `n` items of a DataLoader of `learn`, as the model's inputs"
    b = learn.dls[ds_idx].one_batch()
    return [t[:n] for t in b[:learn.dls.n_inp]]

def _same_probability(learn, model, a, b):
    "p(same) of each pair by the learner's own loss (its calibration), or None for a model that gives no such probability"
    from ..losses import same_probability
    try:
        with torch.no_grad(): return same_probability(learn.loss_func, model(a, b)).float().cpu().tolist()
    except (AttributeError, TypeError, RuntimeError, ValueError): return None

def _learner_show_cam(self:Learner, n:int=4, ds_idx:int=1, box:bool=True, **kwargs):
    """Overlays for the first `n` items of the validation set: CAM of the predicted class for image models,
    similarity maps for pair models. -> the figure"""
    xs = _valid_batch(self, n, ds_idx)
    model = unwrap_model(self.model)
    if len(xs) == 2 and hasattr(model, 'encoder') and hasattr(model, 'similarity'):
        pm = similarity_maps(self, xs[0], xs[1])
        p_same = _same_probability(self, model, xs[0], xs[1])
        fig, axs = plt.subplots(2, len(xs[0]), figsize=(2.4*len(xs[0]), 5.2), squeeze=False)
        for i in range(len(xs[0])):
            title = f'p(same) {p_same[i]:.2f}' if p_same is not None else f'similarity {pm.score[i]:.2f}'
            show_cam(xs[0][i], pm.a[i], ax=axs[0, i], box=box, title=title, **kwargs)
            show_cam(xs[1][i], pm.b[i], ax=axs[1, i], box=box, **kwargs)
        what = ("the model's probability that the two are the same class" if p_same is not None else
                "the model's similarity score")
        fig.suptitle(f'what makes each pair (column) similar: {pm.method} maps{" at " + pm.layer.split(":")[0] if pm.layer else ""}\n'
                     f'above each pair: {what}', fontsize=9)
        fig.tight_layout()
        return fig
    res = cam_result(self, xs[0])
    vocab = getattr(self.dls, 'vocab', None)
    titles = [f'{vocab[t] if vocab is not None else t} ({res.method})' for t in res.target.tolist()]
    return show_cams(list(xs[0]), res.maps, titles, box=box, **kwargs)
Learner.show_cam = _learner_show_cam   # as fastai's show_results: a method on every Learner

class CAMCallback(Callback):
    """Saves overlays (`Learner.show_cam`) of the first `n` validation items to
    `learn.path/learn.model_dir/{fname}_epoch{N}.png` after fit, or after every epoch with `every_epoch=True`.
    Paths written: `self.saved`."""
    order = 90
    def __init__(
        self,
        n:int=4, # validation items to show
        every_epoch:bool=False, # after every epoch (False: after fit only)
        fname:str='cam', # file name prefix of the PNGs
    ):
        self.n, self.every_epoch, self.fname, self.saved = n, every_epoch, fname, []

    def _save(self):
        if not is_main_process(): return   # one writer under DDP
        fig = self.learn.show_cam(self.n)    # cam / similarity_maps put the model back in its training mode
        d = self.learn.path/self.learn.model_dir
        d.mkdir(parents=True, exist_ok=True)
        path = d/f'{self.fname}_epoch{self.learn.epoch}.png'
        save_figure(fig, path, tight=False)
        self.saved.append(path)

    def after_epoch(self):
        if self.every_epoch: self._save()
    def after_fit(self):
        if not self.every_epoch and getattr(self.learn, 'epoch', None) is not None: self._save()
