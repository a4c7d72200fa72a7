"""Small-image backbones of the few-shot literature: Wide ResNets (Zagoruyko & Komodakis 2016) and ResNet-12
(the usual few-shot backbone: TADAM, MetaOptNet). timm and torchvision have no versions sized for 28-84 px images
(their stems downsample by 4 at once), so they are defined here. Both return feature maps and carry `nf`, the
number of output channels, as our other encoders do."""
import torch
from torch import nn

__all__ = ['wrn', 'resnet12']


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


class _Res12Block(nn.Module):
    "ResNet-12 block: 3 x (conv3x3, BN, LeakyReLU 0.1) with a 1x1 conv + BN shortcut, then max-pool 2 and dropout"
    def __init__(self, ni, nf, drop):
        super().__init__()
        convs = []
        for i in range(3):
            convs += [nn.Conv2d(ni if i == 0 else nf, nf, 3, 1, 1, bias=False), nn.BatchNorm2d(nf)]
            if i < 2: convs.append(nn.LeakyReLU(0.1, inplace=True))
        self.convs = nn.Sequential(*convs)
        self.short = nn.Sequential(nn.Conv2d(ni, nf, 1, bias=False), nn.BatchNorm2d(nf))
        self.out = nn.Sequential(nn.LeakyReLU(0.1, inplace=True), nn.MaxPool2d(2), nn.Dropout(drop) if drop else nn.Identity())

    def forward(self, x): return self.out(self.convs(x) + self.short(x))


def resnet12(
    n_in:int=1, # input channels
    widths=(64, 160, 320, 640), # channels of the four blocks (the usual few-shot setting)
    drop:float=0., # dropout after each block
) -> nn.Sequential:
    "ResNet-12: four residual blocks of three 3x3 convs, each followed by max-pooling. (B,n_in,H,W) -> (B,widths[-1],H/16,W/16)"
    if len(widths) != 4: raise ValueError(f'resnet12: widths must give 4 block widths, got {widths}')
    blocks, ni = [], n_in
    for w in widths: blocks.append(_Res12Block(ni, w, drop)); ni = w
    net = nn.Sequential(*blocks)
    net.nf = widths[-1]
    return net
