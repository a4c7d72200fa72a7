"Test-time views: shifted, mirrored, rotated and scaled copies of a batch, and the spec a model file keeps"
import math
from functools import partial
import torch
import torch.nn.functional as F
from .._checks import check_int
from ..config import model_config

__all__ = ['shift_views', 'flip_views', 'affine_views', 'tta_views', 'TTA_VIEWS', 'tta_from_spec', 'learner_tta']

def shift_views(
    x:torch.Tensor, # a batch of images, (B,C,H,W)
    px:int, # shift in pixels
) -> list:
    """The batch and its copies shifted by `px` pixels left, right, up and down, edges replicated: 5 tensors (B,C,H,W).
    Test-time augmentation for one-shot characters, where a drawing's position varies by a few pixels."""
    p = int(px)
    xp = F.pad(x, (p, p, p, p), mode='replicate')
    h, w = x.shape[-2:]
    return [xp[..., i:i + h, j:j + w] for i, j in ((p, p), (p, 0), (p, 2*p), (0, p), (2*p, p))]

def flip_views(
    x:torch.Tensor, # a batch of images, (B,C,H,W)
    px:int=0, # also shift each of the two by `px` pixels (`shift_views`); 0: no shifts
) -> list:
    """The batch and its left-right mirror image (and their `shift_views` when `px` > 0): 2 (or 10) tensors (B,C,H,W).
    Test-time augmentation for roughly symmetric subjects such as faces (not for characters, whose mirror image may be
    another character). Pass it as `tta=ff.inference.flip_views` (or `tta=partial(ff.inference.flip_views, px=2)`)."""
    both = [x, x.flip(-1)]
    return [v for b in both for v in shift_views(b, px)] if px else both

def affine_views(
    x:torch.Tensor, # a batch of images, (B,C,H,W)
    degrees=(0,), # rotations, degrees (0: the image itself)
    scales=(1.,), # zooms: > 1 enlarges the content (1: none)
    px:int=0, # also shift each view by `px` pixels (`shift_views`); 0: no shifts
) -> list:
    """The batch rotated by each of `degrees` and zoomed by each of `scales` (every combination, edges replicated), each
    with its `shift_views` when `px` > 0: len(degrees)*len(scales) (x5 with shifts) tensors (B,C,H,W).
    Test-time augmentation for drawings, whose angle and size vary from one hand to another; e.g.
    `tta=partial(ff.inference.affine_views, degrees=(-5, 0, 5), px=3)`. fastai's `Rotate`/`Zoom` draw random parameters per
    image; test-time views need fixed ones, so the sampling grid is built here."""
    if not len(degrees) or not len(scales): raise ValueError('affine_views: degrees and scales need at least one value each')
    if any(s <= 0 for s in scales): raise ValueError(f'affine_views: scales={tuple(scales)} must be > 0')
    out = []
    for d in degrees:
        for s in scales:
            if d == 0 and s == 1: v = x
            else:
                a = math.radians(d)
                theta = torch.tensor([[math.cos(a), -math.sin(a), 0.], [math.sin(a), math.cos(a), 0.]], device=x.device)/s
                grid = F.affine_grid(theta.expand(len(x), 2, 3).to(torch.float32), list(x.shape), align_corners=False)
                v = F.grid_sample(x.float(), grid, mode='bilinear', padding_mode='border', align_corners=False).to(x.dtype)
            out += shift_views(v, px) if px else [v]
    return out

def tta_views(
    x:torch.Tensor, # a batch of images, (B,C,H,W)
    tta, # 0: none; an int: `shift_views` by that many px; a callable: `tta(x)` gives the views
) -> list:
    "The views whose embeddings are averaged at test time"
    if callable(tta): return list(tta(x))
    return shift_views(x, tta) if tta else [x]

TTA_VIEWS = ('shift', 'flip', 'affine')

def tta_from_spec(
    spec:dict|None, # JSON form of a test-time augmentation: {'views': 'shift'|'flip'|'affine', 'px': int, 'degrees': [...], 'scales': [...]}; None: none
):
    """The `tta` argument (0 or a callable giving views) that a JSON spec describes. Recipes store their TTA this way in
    `learn.model_config.tta`, so that `save_model` can write it and every entry point can apply it."""
    if not spec: return 0
    if not isinstance(spec, dict) or spec.get('views') not in TTA_VIEWS:
        raise ValueError(f"tta spec {spec!r}: a dict whose 'views' is one of {TTA_VIEWS}")
    px = spec.get('px', 0)
    check_int('tta spec', 'px', px, 0)
    if px > MAX_TTA_PX: raise ValueError(f'tta spec: px={px}: shifts of at most {MAX_TTA_PX} px')
    if spec['views'] == 'shift': return px
    if spec['views'] == 'flip': return partial(flip_views, px=px)
    degrees, scales = spec.get('degrees', [0]), spec.get('scales', [1.])
    for name, vals, low, high in (('degrees', degrees, -180, 180), ('scales', scales, 0.1, 10)):
        if not isinstance(vals, (list, tuple)) or not vals or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high for v in vals):
            raise ValueError(f'tta spec: {name}={str(vals)[:60]}: a non-empty list of numbers in {low}..{high}')
    n = len(degrees)*len(scales)*(5 if px else 1)
    if n > MAX_TTA_VIEWS:
        raise ValueError(f'tta spec: {len(degrees)} degrees x {len(scales)} scales{" x 5 shifts" if px else ""} = {n} views; at most {MAX_TTA_VIEWS}')
    return partial(affine_views, degrees=tuple(degrees), scales=tuple(scales), px=px)

# Bounds on what a test-time augmentation (from a model file or a recipe) may ask for: each view costs a full encoder
# pass over every image, so 64 views make inference 64 times slower than none
MAX_TTA_VIEWS, MAX_TTA_PX = 64, 16

def learner_tta(
    learn, # a learner, possibly carrying `model_config.tta`
):
    "The test-time augmentation a learner carries from its recipe (`model_config.tta`), as a `tta` argument; 0: none"
    return tta_from_spec(getattr(model_config(learn), 'tta', None))

def _check_tta(caller:str, tta):
    "`tta` is None (the learner's own), a non-negative int or a callable that gives views"
    if tta is not None and not callable(tta): check_int(caller, 'tta', tta, 0)
