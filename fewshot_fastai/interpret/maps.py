"""Class activation maps. `cam` gives the exact CAM of Zhou et al. (2016) when the model ends in global pooling
followed by an affine head (fastai `create_head(..., lin_ftrs=[])`, timm classifiers such as `efficientnet_lite0`),
and Grad-CAM (Selvaraju et al. 2017) on the last convolutional block (or a layer you name) otherwise.
`similarity_maps` does the same for a siamese pair under the model's own similarity score.

Hooks: fastai's `Hook` is used as a context manager, so hooks are removed even when the forward pass raises.
Gradients are taken with `torch.autograd.grad` on the activation that a *forward* hook keeps (not with fastai's
`hook_output(grad=True)`, which uses the module backward hooks that break on in-place ReLU, as in ResNets)."""
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from PIL import Image
import warnings
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from fastai.callback.hook import Hooks
from fastai.layers import AdaptiveConcatPool2d, Flatten
from fastai.learner import Learner
from .._distrib import unwrap_model

__all__ = ['CamResult', 'cam', 'cam_result', 'grad_cam', 'family_cam', 'last_conv_layer', 'normalize_maps', 'model_inputs']

_AFFINE = (nn.Linear, nn.BatchNorm1d, nn.Dropout, nn.Identity, nn.Flatten, Flatten)

@dataclass
class CamResult:
    "Maps (B,H,W) in [0,1] at the input's size, with what produced them"
    maps: torch.Tensor      # normalised, upsampled to the input
    raw: torch.Tensor       # (B,h,w) before upsampling/normalisation; exact CAM: sums to logit - bias
    target: torch.Tensor    # (B,) class index explained
    logits: torch.Tensor    # (B,n_classes) model outputs
    bias: torch.Tensor|None # (B,) the part of the logit that is not spatial (exact CAM only)
    method: str             # 'cam' (exact) or the family's method
    layer: str = 'global pool -> affine head (exact)' # which layer was explained, and why it was chosen

@contextmanager
def eval_mode(model:nn.Module):
    """`model` in eval mode inside the block, in its own mode again after it. A model already in eval mode throughout (the
    usual case at inference) is left untouched: switching means a `train()` call on every module, twice a map"""
    if not any(m.training for m in model.modules()):
        yield model
        return
    was = model.training
    model.eval()
    try: yield model
    finally: model.train(was)

def normalize_maps(
    m:torch.Tensor, # maps, (B,h,w)
    size=None, # (H,W) to upsample them to (bilinear); None: as they are
) -> torch.Tensor:
    """(B,h,w) -> (B,H,W) in [0,1]: bilinear upsampling to `size`, then per-map min-max scaling. A constant map
    (no spatial information, e.g. all-zero Grad-CAM) becomes all zeros rather than amplified rounding noise."""
    def range_(t): return t.flatten(1).min(1)[0][:, None, None], t.flatten(1).max(1)[0][:, None, None]
    lo, hi = range_(m)
    flat = (hi - lo) <= 1e-6*torch.maximum(hi.abs(), lo.abs()).clamp_min(1e-12)
    if size is not None and tuple(m.shape[-2:]) != tuple(size):
        m = F.interpolate(m[:, None], size=tuple(size), mode='bilinear', align_corners=False)[:, 0]
    lo, hi = range_(m)
    return torch.where(flat, torch.zeros_like(m), (m - lo)/(hi - lo).clamp_min(1e-12))

def model_inputs(
    learn_or_model, # a Learner or a module
    x, # an image batch (B,C,H,W), or images/files the learner's loaders prepare
) -> tuple[nn.Module, torch.Tensor]:
    """(model, batch) from a Learner or module and `x`: a (B,C,H,W) tensor, or images (paths/PIL/tensors) that a
    Learner's `dls` prepare as validation images"""
    model = unwrap_model(learn_or_model.model if isinstance(learn_or_model, Learner) else learn_or_model)
    if not isinstance(model, nn.Module): raise TypeError(f'expected a Learner or nn.Module, got {type(learn_or_model).__name__}')
    dev = next(model.parameters()).device
    # plain tensors: fastai's TensorImage subclasses would otherwise carry over to maps and scores
    if isinstance(x, torch.Tensor) and x.ndim in (3, 4):
        if not x.numel(): raise ValueError(f'no images: an empty batch of shape {tuple(x.shape)}')
        if x.is_floating_point() and not torch.isfinite(x).all(): raise ValueError('the image batch holds NaN or infinite values')
        return model, (x if x.ndim == 4 else x[None]).as_subclass(torch.Tensor).to(dev)
    if not isinstance(learn_or_model, Learner):
        raise TypeError('images other than a (B,C,H,W) tensor need a Learner, whose DataLoaders prepare them')
    one = isinstance(x, (str, Path, Image.Image, torch.Tensor, np.ndarray, bytes))
    dls, items = learn_or_model.dls, [x] if one else list(x)
    if not items: raise ValueError('no images: give at least one')
    for i in items:   # non-finite pixels are refused here, before a fallback below could read them another way
        if isinstance(i, (torch.Tensor, np.ndarray)) and not np.isfinite(np.asarray(torch.as_tensor(i).float())).all():
            raise ValueError('an image holds NaN or infinite pixel values')
    from ..inference import image_batch
    try: xb = image_batch(dls, items)
    except (AttributeError, ValueError, TypeError):   # plain fastai image DataLoaders: their test_dl prepares items
        xb = dls.test_dl(items).one_batch()[0]
    return model, torch.as_tensor(xb).as_subclass(torch.Tensor).to(dev)

def _affine(head:nn.Module, n_in:int, device) -> tuple[torch.Tensor, torch.Tensor]:
    "`head` (eval mode, known affine) as (W (n_out,n_in), c (n_out,)) with head(p) = W p + c"
    lin = head[0] if isinstance(head, nn.Sequential) and len(head) == 1 else head
    if isinstance(lin, nn.Linear) and lin.in_features == n_in:   # a plain linear head: its weights, no forward pass
        W = lin.weight.detach()
        return W, lin.bias.detach() if lin.bias is not None else torch.zeros(len(W), device=W.device, dtype=W.dtype)
    eye = torch.cat([torch.zeros(1, n_in), torch.eye(n_in)]).to(device)
    with torch.no_grad(): out = head(eye[..., None, None] if _wants_maps(head) else eye)
    c = out[0]
    return (out[1:] - c).t(), c

def _wants_maps(head):
    "Whether `head`'s first layer expects (B,K,1,1) pooled maps rather than vectors"
    first = next(iter(head.children()), head) if isinstance(head, nn.Sequential) else head
    return isinstance(first, (nn.Flatten, Flatten))

def _split_model(model:nn.Module):
    """(features_fn, head_fn, pool, affine) if `model` is features -> global pool -> affine head, else None:
    `model(x) == head_fn(features_fn(x))`; `pool` is 'avg' or 'concat' (fastai's AdaptiveConcatPool2d);
    `affine` is the part of the head after pooling."""
    if hasattr(model, 'forward_features') and hasattr(model, 'get_classifier') and hasattr(model, 'global_pool'):
        clf = model.get_classifier()       # timm
        if getattr(model.global_pool, 'pool_type', None) == 'avg' and isinstance(clf, nn.Linear):
            return model.forward_features, model.forward_head, 'avg', clf
        return None
    if isinstance(model, nn.Sequential) and len(model) == 2 and isinstance(model[1], nn.Sequential) and len(model[1]):
        body, head = model[0], model[1]
        pool, rest = head[0], nn.Sequential(*list(head)[1:])
        if isinstance(pool, nn.Sequential) and len(pool):   # pooling wrapped with its Flatten
            rest = nn.Sequential(*list(pool)[1:], *rest); pool = pool[0]
        kind = ('avg' if isinstance(pool, nn.AdaptiveAvgPool2d) and pool.output_size in (1, (1, 1)) else
                'concat' if isinstance(pool, AdaptiveConcatPool2d) and pool.size in (1, (1, 1)) else None)
        if kind and all(isinstance(m, _AFFINE) for m in rest.modules() if m is not rest):
            return body, head, kind, rest
    return None

def _pooled(f, kind):
    "Global pooling of maps (B,K,h,w) as the model does it -> (B,K): average, or [max, average] (B,2K) for 'concat'"
    avg, mx = f.mean((2, 3)), f.amax((2, 3))
    return avg if kind == 'avg' else torch.cat([mx, avg], 1)

def _exact_cam(model, x, target):
    "Exact CAM, or None when the model is not pool -> affine (or its outputs do not match that reading)"
    parts = _split_model(model)
    if parts is None: return None
    feats, head, kind, affine = parts
    with torch.no_grad():
        f = feats(x)
        if f.ndim != 4: return None
        logits = head(f)
        p = _pooled(f, kind)
        W, c = _affine(affine, p.shape[1], x.device)
        # never silently wrong: the decomposition must reproduce the model's own logits
        if not torch.allclose(p @ W.t() + c, logits, rtol=1e-3, atol=1e-3*(1 + logits.abs().max().item())): return None
        t = logits.argmax(1) if target is None else _targets(target, len(x), x.device)
        w = W[t]                                       # (B,K')
        B, K, h, wd = f.shape
        if kind == 'avg': raw = torch.einsum('bk,bkhw->bhw', w, f)/(h*wd)
        else:
            wm, wa = w[:, :K], w[:, K:]
            raw = torch.einsum('bk,bkhw->bhw', wa, f)/(h*wd)
            # the max-pooled half: each channel's maximum counts once, at the position where it is taken
            flat = f.flatten(2)
            at_max = torch.zeros_like(flat).scatter_(2, flat.argmax(2, keepdim=True), 1.)
            raw = raw + torch.einsum('bk,bkn->bn', wm, flat*at_max).view(B, h, wd)
    return CamResult(normalize_maps(F.relu(raw), x.shape[-2:]), raw, t, logits, c[t], 'cam')

def _targets(target, n, device):
    t = torch.as_tensor(target, device=device).long()
    return t.expand(n) if t.ndim == 0 else t

def resolve_layer(
    model:nn.Module, # the model (or encoder) the layer belongs to
    layer, # None, a module of `model`, or its name as `named_modules` gives it ('layer3', 'encoder.3')
):
    "The module `layer` names in `model`, or a ValueError listing some of its layer names"
    if layer is None or isinstance(layer, nn.Module): return layer
    names = dict(model.named_modules())
    if isinstance(layer, str) and layer in names and layer: return names[layer]
    some = [n for n in names if n and n.count('.') <= 1][:20]
    raise ValueError(f'layer {layer!r}: not a layer of {type(model).__name__}; give a module or one of its names, e.g. {some}')

def _forward_with_map(model:nn.Module, x:torch.Tensor, layer:nn.Module|None=None):
    """`model(x)` with the output of `layer`, or by default of the last module (in execution order) whose output is a
    spatial (B,C,h>1,w>1) map: one forward pass, graph kept. -> (output, map, module)"""
    last = []
    if layer is not None:
        # the layer's output goes on as a copy: an in-place op later in the model (a ReLU(inplace=True) after a
        # BatchNorm) changes the copy, and the map stays that of the layer's own output
        def swap(m, i, o):
            if isinstance(o, torch.Tensor) and o.ndim == 4 and min(o.shape[-2:]) > 1:
                last[:] = [m, o, o._version]
                return o.clone()
        h = layer.register_forward_hook(swap)
        try: out = model(x)
        finally: h.remove()
    else:
        def keep(m, i, o):
            if isinstance(o, torch.Tensor) and o.ndim == 4 and min(o.shape[-2:]) > 1: last[:] = [m, o, o._version]
        with Hooks([m for m in model.modules() if m is not model], keep, detach=False): out = model(x)
        if last and last[1]._version != last[2]:
            warnings.warn(f'cam: the output of {type(last[0]).__name__}, the last spatial block, was changed in place later '
                          'in the forward pass; its map may be of the changed tensor: pass `layer=` to explain it as it was')
    if not last:
        what = f'layer {type(layer).__name__}' if layer is not None else f'{type(model).__name__} has no layer that'
        raise ValueError(f'{what} gave no spatial (B,C,h,w) output on inputs of shape {tuple(x.shape)}')
    return out, last[1], last[0]

def last_conv_layer(
    model:nn.Module, # any image model
    x:torch.Tensor, # a batch to run through it, (B,C,H,W)
) -> nn.Module:
    """The module whose output is the last spatial (B,C,h,w>1) feature map of a forward pass: the outermost
    block that ends the convolutional part (e.g. a ResNet's layer4, a fastai body)."""
    with eval_mode(model), torch.no_grad(): return _forward_with_map(model, x[:1])[2]

def _weighted_maps(act:torch.Tensor, grad:torch.Tensor, relu:bool=True) -> torch.Tensor:
    "Grad-CAM: ReLU(sum_k mean(grad_k) * A_k) (signed without `relu`), (B,K,h,w) -> (B,h,w)"
    m = (grad.mean((2, 3), keepdim=True)*act).sum(1).detach()
    return F.relu(m) if relu else m

def grad_cam(
    model:nn.Module, # a classifier
    x:torch.Tensor, # images, (B,C,H,W)
    target=None, # class index, or one per image; default: the predicted class
    layer:nn.Module|None=None, # module whose activations are weighted; default: the last spatial block
) -> CamResult:
    "Grad-CAM of `target` (default: predicted class) at `layer` (default: the last spatial block, same pass)"
    return family_cam(model, x, target, 'grad-cam', layer)

def family_cam(
    model:nn.Module, # a classifier
    x:torch.Tensor, # images, (B,C,H,W)
    target=None, # class index, or one per image; default: the predicted class
    method:str='grad-cam', # a name of `ff.interpret.CAM_METHODS`
    layer=None, # a module, its name, or a list of them (fused); default: the last spatial block (transformers: see `default_cam_layers`)
    eigen_smooth:bool=False, # first principal component of the weighted activations
    aug_smooth:bool=False, # average over mirror x brightness views
) -> CamResult:
    "A method of the CAM family on a classifier's `target` logit (see `ff.interpret.family`)"
    from .family import CAM_METHODS, default_cam_layers
    layers = [resolve_layer(model, l) for l in (layer if isinstance(layer, (list, tuple)) else [layer])] if layer is not None else None
    why = 'the layers given'
    if layers is None: layers, why = default_cam_layers(model)
    with eval_mode(model):
        fixed = None
        if target is not None: fixed = _targets(target, len(x), x.device)
        elif aug_smooth:   # every view explains the class predicted for the image itself
            with torch.no_grad(): fixed = model(x).argmax(1)
        seen = {}
        def score(out, rows):
            if 'logits' not in seen: seen['logits'] = out.detach()
            t = fixed if fixed is not None else seen.setdefault('t', out.detach().argmax(1))
            return out.gather(1, t[rows][:, None])[:, 0]
        maps, raw, _ = CAM_METHODS[method](model, layers, score)(x, eigen_smooth=eigen_smooth, aug_smooth=aug_smooth)
    t = fixed if fixed is not None else seen['t']
    return CamResult(maps, raw, t, seen['logits'], None, method, why)

def _check_cam_method(where:str, method:str, extra=()):
    from .family import CAM_METHODS
    ok = (*extra, *CAM_METHODS)
    if method not in ok: raise ValueError(f"{where}: method {method!r}: use one of {', '.join(map(repr, ok))}")

def cam_result(
    learn_or_model, # a `Learner` or a model
    x, # images, (B,C,H,W)
    target=None, # class index, or one per image; default: the predicted class
    method:str='auto', # 'auto', 'cam' (exact), 'grad-cam', 'hires-cam', 'grad-cam++', 'xgrad-cam', 'layer-cam', 'eigen-cam', 'eigen-grad-cam', 'score-cam' or 'ablation-cam'
    layer=None, # a module (or its name, or a list of them, fused) for the gradient and activation methods; default: the last spatial block
    eigen_smooth:bool=False, # the family's methods: first principal component of the weighted activations
    aug_smooth:bool=False, # the family's methods: average over mirror x brightness views
) -> CamResult:
    """Like `cam`, with the raw maps, targets, logits and method. `method`: 'auto' (exact CAM where the model is
    global pool -> affine head, else Grad-CAM), 'cam' (error if not possible) or any of the CAM family."""
    model, x = model_inputs(learn_or_model, x)
    if hasattr(model, 'encoder') and hasattr(model, 'similarity'):
        raise TypeError(f'cam explains class scores; for the pairs of a {type(model).__name__} use similarity_maps')
    _check_cam_method('cam', method, ('auto', 'cam'))
    if method in ('auto', 'cam') and layer is None and not (eigen_smooth or aug_smooth):
        with eval_mode(model): res = _exact_cam(model, x, target)
        if res is not None: return res
        if method == 'cam':
            raise ValueError(f'cam: {type(model).__name__} does not end in global pooling + an affine head; '
                             "use method='grad-cam'")
    elif method == 'cam': raise ValueError("cam: method 'cam' (exact) takes no layer= and no smoothing; use a family method")
    return family_cam(model, x, target, 'grad-cam' if method in ('auto', 'cam') else method, layer, eigen_smooth, aug_smooth)

def cam(
    learn_or_model, # a `Learner` or a model
    x, # images, (B,C,H,W)
    target=None, # class index, or one per image; default: the predicted class
    method:str='auto', # 'auto', 'cam' (exact), 'grad-cam', 'hires-cam', 'grad-cam++', 'xgrad-cam', 'layer-cam', 'eigen-cam', 'eigen-grad-cam', 'score-cam' or 'ablation-cam'
    layer=None, # a module (or its name, or a list of them, fused) for the family's methods; default: the last spatial block
    eigen_smooth:bool=False, # the family's methods: first principal component of the weighted activations
    aug_smooth:bool=False, # the family's methods: average over mirror x brightness views
) -> torch.Tensor:
    """Class activation maps (B,H,W) in [0,1] at the input's size for `target` (class index or one per image;
    default the predicted class). `x`: a (B,C,H,W) batch as the model takes it, or images for a Learner.
    Whatever the method, a map is the positive evidence for the target: the ReLU of the signed raw map (exact CAM's
    per-position logit contributions, or the family's weighted activations; `cam_result(...).raw`), upsampled and
    min-max scaled (a map with no positive part is all zeros). The methods: `ff.interpret.family`."""
    return cam_result(learn_or_model, x, target, method, layer, eigen_smooth, aug_smooth).maps
