"""One-shot generator nets: the DAGAN generator (`OneShotGenerator`: a small U-Net encoding the source, noise mixed
into its bottleneck and first decoder level), the warp generator (`WarpGenerator`: a smooth displacement field of the
source), and the pair critic that judges `(source, candidate)` stacked on the channel axis."""
import torch
from torch import nn
import torch.nn.functional as F
from .._checks import check_int, renamed
from .stable import sn_critic

__all__ = ['OneShotGenerator', 'WarpGenerator', 'pair_critic']

def _down(ni, nf, bn=True):
    return nn.Sequential(nn.Conv2d(ni, nf, 4, 2, 1, bias=not bn), *([nn.BatchNorm2d(nf)] if bn else []), nn.LeakyReLU(0.2))

def _up(ni, nf):
    return nn.Sequential(nn.ConvTranspose2d(ni, nf, 4, 2, 1, bias=False), nn.BatchNorm2d(nf), nn.ReLU())

def _source_encoder(m, name, size, n_in, z_dim, nf) -> list:
    """Sets on `m` what both one-shot generators share: the checked sizes, the source encoder (strided convs down to
    4x4) and the noise projections to 4x4 and 8x8 maps (`z_low`, `z_mid`). -> the encoder's widths"""
    if size not in (32, 64): raise ValueError(f'{name}: size={size}; use 32 or 64')
    check_int(name, 'z_dim', z_dim); check_int(name, 'nf', nf)
    m.size, m.n_channels, m.z_dim = size, n_in, z_dim
    n = {32: 3, 64: 4}[size]                       # encoder levels, down to 4x4
    w = [nf*2**i for i in range(n)]
    m.enc = nn.ModuleList([_down(n_in if i == 0 else w[i - 1], w[i], bn=i > 0) for i in range(n)])
    m.z_low = nn.Linear(z_dim, 16*w[-1])           # noise as 4x4 maps beside the bottleneck
    m.z_mid = nn.Linear(z_dim, 64*w[-2])           # and as 8x8 maps beside the first decoder level
    return w

def _encode(m, source, z):
    "(the encoder's maps at each level, the bottleneck with the 4x4 noise maps beside it)"
    skips, h = [], source
    for e in m.enc: h = e(h); skips.append(h)
    return skips, torch.cat([h, m.z_low(z).view(len(source), -1, 4, 4)], 1)

class OneShotGenerator(nn.Module):
    """DAGAN's generator for 32 or 64 px images: an encoder of the source (strided convs), noise projected to maps
    and concatenated at the bottleneck and at the first decoder level, a decoder with skip connections from the
    encoder. `draw(source, z)` -> new images (B,C,H,W) in [-1, 1]; `forward(source)` -> the pairs `(source, drawn)`
    stacked on the channel axis (B,2C,H,W), fresh noise each call, what the critic of fastai's GAN loop sees."""
    @renamed(n_channels='n_in')
    def __init__(
        self,
        size:int=32, # image side: 32 or 64
        n_in:int=1, # image channels
        z_dim:int=64, # noise size
        nf:int=32, # channels of the first encoder level (doubling at each level)
    ):
        super().__init__()
        w = _source_encoder(self, 'OneShotGenerator', size, n_in, z_dim, nf)
        n = len(w)
        # decoder level k doubles the side and gives w[n-2-k] channels; then its skip (and at k=0 the noise) joins
        ins = [2*w[-1], 3*w[-2]] + [2*w[n - 1 - k] for k in range(2, n - 1)]
        self.ups = nn.ModuleList([_up(ins[k], w[n - 2 - k]) for k in range(n - 1)])
        self.out = nn.Sequential(nn.ConvTranspose2d(2*w[0], n_in, 4, 2, 1), nn.Tanh())

    def draw(
        self,
        source:torch.Tensor, # source images in [-1, 1], (B,C,H,W)
        z:torch.Tensor|None=None, # noise (B,z_dim); None: drawn now
    ) -> torch.Tensor:
        "New images of the sources' classes, (B,C,H,W) in [-1, 1]"
        B = len(source)
        if z is None: z = torch.randn(B, self.z_dim, device=source.device, dtype=source.dtype)
        skips, h = _encode(self, source, z)
        for k, up in enumerate(self.ups):
            extra = [self.z_mid(z).view(B, -1, 8, 8)] if k == 0 else []
            h = torch.cat([up(h), skips[-2 - k], *extra], 1)
        return self.out(h)

    def forward(
        self,
        source:torch.Tensor, # source images in [-1, 1], (B,C,H,W)
    ) -> torch.Tensor:
        "The pairs `(source, drawn)`, (B,2C,H,W)"
        return torch.cat([source, self.draw(source)], 1)

class WarpGenerator(nn.Module):
    """A one-shot generator that redraws its source by *moving* it: the source and noise are encoded as in
    `OneShotGenerator` (strided convs down to 4x4, noise beside the bottleneck, one decoder level with its skip and
    more noise at 8x8), and the net outputs a displacement field at 4x4 and 8x8 (at most `max_shift` of the image
    side), upsampled smoothly to the image and applied with `grid_sample`. Every drawn image is its source bent, so
    it keeps the source's strokes and ink (no specks, no lost strokes); the critic decides which bends look like
    another person's drawing. Why: people's drawings of a character differ mostly by where the strokes go, not by
    what they are (Hauberg et al. 2016 learned such deformations for data augmentation); a free-form decoder spends
    a CPU budget on relearning to draw strokes at all. Starts as the identity (zero field): a copy of the source."""
    @renamed(n_channels='n_in')
    def __init__(
        self,
        size:int=32, # image side: 32 or 64
        n_in:int=1, # image channels
        z_dim:int=64, # noise size
        nf:int=32, # channels of the first encoder level (doubling at each level)
        max_shift:float=0.25, # the largest displacement, as a share of the image side
    ):
        super().__init__()
        if not 0 < max_shift <= 1: raise ValueError(f'WarpGenerator: max_shift={max_shift}; use a share of the side in (0, 1]')
        w = _source_encoder(self, 'WarpGenerator', size, n_in, z_dim, nf)
        self.max_shift = max_shift
        self.coarse = nn.Conv2d(2*w[-1], 2, 3, padding=1)           # the 4x4 field, from the bottleneck and noise
        self.up = _up(2*w[-1], w[-2])
        self.fine = nn.Conv2d(3*w[-2], 2, 3, padding=1)             # the 8x8 field, from the decoder, skip and noise
        for head in (self.coarse, self.fine): nn.init.zeros_(head.weight); nn.init.zeros_(head.bias)

    def field(
        self,
        source:torch.Tensor, # source images in [-1, 1], (B,C,H,W)
        z:torch.Tensor, # noise (B,z_dim)
    ) -> torch.Tensor:
        "The displacement (B,H,W,2) in grid_sample's coordinates ([-1, 1] across the image)"
        B = len(source)
        skips, h = _encode(self, source, z)
        mid = torch.cat([self.up(h), skips[-2], self.z_mid(z).view(B, -1, 8, 8)], 1)
        size = source.shape[-2:]
        f = sum(F.interpolate(head(x), size=size, mode='bicubic', align_corners=False)
                for head, x in ((self.coarse, h), (self.fine, mid)))
        return (2*self.max_shift*torch.tanh(f)).permute(0, 2, 3, 1)

    def draw(
        self,
        source:torch.Tensor, # source images in [-1, 1], (B,C,H,W), background -1 (bright ink on black)
        z:torch.Tensor|None=None, # noise (B,z_dim); None: drawn now
    ) -> torch.Tensor:
        "The sources bent by a field drawn from the noise, (B,C,H,W) in [-1, 1]"
        if z is None: z = torch.randn(len(source), self.z_dim, device=source.device, dtype=source.dtype)
        base = F.affine_grid(torch.eye(2, 3, device=source.device, dtype=source.dtype).expand(len(source), 2, 3),
                             source.shape, align_corners=False)
        # outside the image is background: -1 (zeros padding would be mid-grey)
        return F.grid_sample(source + 1, base + self.field(source, z), align_corners=False) - 1

    def forward(
        self,
        source:torch.Tensor, # source images in [-1, 1], (B,C,H,W)
    ) -> torch.Tensor:
        "The pairs `(source, drawn)`, (B,2C,H,W)"
        return torch.cat([source, self.draw(source)], 1)

@renamed(n_channels='n_in')
def pair_critic(
    size:int=32, # image side: 32 or 64
    n_in:int=1, # channels of one image (the critic sees pairs: twice as many)
    nf:int=64, # channels of the first layer
) -> nn.Sequential:
    "`sn_critic` over pairs `(source, candidate)` stacked on the channel axis: (B,2C,H,W) -> (B,1) raw scores"
    return sn_critic(size, 2*n_in, nf)
