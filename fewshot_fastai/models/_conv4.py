"""Conv4, the few-shot literature's small backbone (Vinyals et al. 2016; Snell et al. 2017)."""
from torch import nn
from .registry import register_encoder

__all__ = ['conv4']

@register_encoder('small')
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
