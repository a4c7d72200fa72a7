"""ResNet-12, the usual few-shot backbone (TADAM, MetaOptNet), for 28-84 px images: timm and torchvision have none.
Returns feature maps and carries `nf`, the number of output channels, as our other encoders do."""
from torch import nn
from .registry import register_encoder

__all__ = ['resnet12']


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


@register_encoder('small')
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
