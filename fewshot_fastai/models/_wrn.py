"""Wide ResNets (Zagoruyko & Komodakis 2016) sized for 28-84 px images: timm and torchvision have none (their stems
downsample by 4 at once). Returns feature maps and carries `nf`, the number of output channels, as our other encoders do."""
import torch
from torch import nn
from .registry import register_encoder

__all__ = ['wrn']


class _WideBlock(nn.Module):
    "Pre-activation basic block of a WRN: BN-ReLU-conv3x3-dropout-BN-ReLU-conv3x3, 1x1 conv shortcut when the shape changes"
    def __init__(self, ni, nf, stride, drop):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(ni), nn.Conv2d(ni, nf, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(nf), nn.Conv2d(nf, nf, 3, 1, 1, bias=False)
        self.drop = nn.Dropout(drop) if drop else nn.Identity()
        self.short = None if (ni == nf and stride == 1) else nn.Conv2d(ni, nf, 1, stride, bias=False)

    def forward(self, x):
        o = torch.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(torch.relu(self.bn2(self.drop(y))))
        return y + (x if self.short is None else self.short(o))


@register_encoder('small')
def wrn(
    n_in:int=1, # input channels
    depth:int=16, # total depth, 6n+4 (16, 22, 28, ...)
    widen:int=4, # width multiplier k: groups of 16k, 32k, 64k channels
    drop:float=0., # dropout between the two convolutions of each block
) -> nn.Sequential:
    "Wide ResNet WRN-`depth`-`widen`: a 3x3 stem, three groups of pre-activation blocks (strides 1, 2, 2). (B,n_in,H,W) -> (B,64*widen,H/4,W/4)"
    if depth < 10 or (depth - 4) % 6: raise ValueError(f'wrn: depth must be 6n+4 with n >= 1 (10, 16, 22, 28...), got {depth}')
    if widen < 1: raise ValueError(f'wrn: widen must be >= 1, got {widen}')
    n, widths = (depth - 4)//6, [16, 16*widen, 32*widen, 64*widen]
    layers = [nn.Conv2d(n_in, widths[0], 3, 1, 1, bias=False)]
    for g, stride in zip(range(3), (1, 2, 2)):
        for b in range(n):
            layers.append(_WideBlock(widths[g] if b == 0 else widths[g + 1], widths[g + 1], stride if b == 0 else 1, drop))
    layers += [nn.BatchNorm2d(widths[3]), nn.ReLU(inplace=True)]
    net = nn.Sequential(*layers)
    net.nf = widths[3]
    return net
