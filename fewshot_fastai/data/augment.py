"Batch augmentations for small drawings: `Elastic` distortions (Simard et al. 2003), one random field per image"
import torch
import torch.nn.functional as F
from fastai.vision.core import TensorImage
from fastai.vision.augment import RandTransform
from .._checks import check_int

__all__ = ['Elastic']

class Elastic(RandTransform):
    """Elastic distortion of every training image by its own smooth random displacement field, as a fastai batch
    transform (`batch_tfms=[ff.data.Elastic()]`; training batches only). The field is Gaussian noise on a coarse
    `grid` x `grid` lattice, upsampled bicubically to the image and scaled so that its displacements are about `magnitude` pixels (their
    standard deviation at the grid points):
    the stroke wobble a different hand gives a character, which affine transforms cannot make.
    fastai has only global warps (`Warp`, `Rotate`, `Zoom`) and torchvision's `ElasticTransform` draws one field
    per call (a batch would share it) and blurs a full-size field, so the field is made here, per image."""
    split_idx, order = 0, 25   # after IntToFloatTensor (10), before fastai's affine (30) and lighting (40) transforms
    def __init__(
        self,
        magnitude:float=2.0, # displacement scale in pixels of the batch images (std of the field)
        grid:int=4, # control points per side: smaller gives smoother, larger-scale bends
        p:float=0.75, # probability that an image is distorted
    ):
        super().__init__(p=1.)   # the batch always passes through; `p` is drawn per image below
        check_int('Elastic', 'grid', grid, 2)
        if magnitude < 0: raise ValueError(f'Elastic: magnitude={magnitude} must be >= 0')
        if not 0 <= p <= 1: raise ValueError(f'Elastic: p={p} must be in [0, 1]')
        self.magnitude, self.grid, self.prob = float(magnitude), grid, float(p)

    def encodes(self, x:TensorImage):
        b, _, h, w = x.shape
        dev = x.device
        idx = (torch.rand(b, device=dev) < self.prob).nonzero().flatten()   # the images distorted; the others pass as they are
        if not len(idx) or self.magnitude == 0: return x
        noise = torch.randn(len(idx), 2, self.grid, self.grid, device=dev)
        field = F.interpolate(noise, size=(h, w), mode='bicubic', align_corners=True)
        # pixels -> grid_sample's [-1, 1] coordinates (x along the width, y along the height)
        scale = torch.tensor([2/(w - 1), 2/(h - 1)], device=dev)[None, :, None, None]
        disp = (field*self.magnitude*scale).permute(0, 2, 3, 1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=dev), torch.linspace(-1, 1, w, device=dev), indexing='ij')
        base = torch.stack([xs, ys], -1)[None]
        bent = F.grid_sample(x[idx].float(), base + disp, mode='bilinear', padding_mode='border', align_corners=True)
        out = x.clone()
        out[idx] = bent.to(x.dtype) if x.is_floating_point() else bent.round().clamp(0, 255).to(x.dtype)
        return out
