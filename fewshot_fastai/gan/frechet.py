"""Fréchet distance between real and generated images in the feature space of a *local* network.

This is NOT the Inception FID (Heusel et al.): the Inception-v3 weights cannot be fetched offline, so the features
are those of the offline ImageNet `efficientnet_lite0` (1280-d, average-pooled) or of an encoder you pass (e.g. one
trained by this library). The formula is the same, the numbers are not comparable with published FIDs; compare
them only with each other (same feature network, image size and sample count)."""
import torch
import torch.nn.functional as F
from torch import nn
from fastai.vision.core import imagenet_stats

__all__ = ['frechet_distance', 'FrechetFeatures', 'lite0_features']

def _sqrtm_psd(s:torch.Tensor) -> torch.Tensor:
    "Square root of a symmetric positive semi-definite matrix (eigendecomposition, negative rounding clipped)"
    lam, v = torch.linalg.eigh(s)
    return (v*lam.clamp_min(0).sqrt()) @ v.T

def frechet_distance(
    f1:torch.Tensor, # features of one set, (N,D)
    f2:torch.Tensor, # features of the other, (M,D)
) -> float:
    """Fréchet distance between Gaussians fitted to features f1 (N,D) and f2 (M,D):
    |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2), in float64"""
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f'frechet_distance: expected (N,D) and (M,D) features, got {tuple(f1.shape)} and {tuple(f2.shape)}')
    if len(f1) < 2 or len(f2) < 2: raise ValueError('frechet_distance: need at least 2 samples per set')
    f1, f2 = f1.double().cpu(), f2.double().cpu()
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = torch.cov(f1.T), torch.cov(f2.T)
    r1 = _sqrtm_psd(s1)
    # tr sqrt(S1 S2) = tr sqrt(S1^1/2 S2 S1^1/2); the latter is symmetric PSD, so eigvalsh is stable
    cross = torch.linalg.eigvalsh(r1 @ s2 @ r1).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).pow(2).sum() + s1.trace() + s2.trace() - 2*cross)

class FrechetFeatures(nn.Module):
    """Features of GAN images for `frechet_distance`: images in [-1, 1] (B,1 or 3,H,W) are mapped to [0, 1],
    given the `n_in` channels the network wants (grey repeated / RGB averaged), resized to `size`, normalised with
    `mean`/`std` (one value per channel; default ImageNet's, averaged for grey networks) and encoded; feature maps
    are average-pooled. -> (B,D)"""
    def __init__(
        self,
        encoder:nn.Module, # image -> features (maps are average-pooled)
        size:int=64, # images are resized to this
        n_in:int=3, # channels the encoder expects (grey images are repeated)
        mean=None, # normalisation mean (default: ImageNet)
        std=None, # normalisation std (default: ImageNet)
    ):
        super().__init__()
        self.encoder, self.size, self.n_in = encoder.eval(), size, n_in
        stats = [torch.tensor(v) for v in imagenet_stats]
        if n_in != 3: stats = [v.mean().repeat(n_in) for v in stats]
        mean, std = (torch.as_tensor(v if v is not None else d, dtype=torch.float) for v, d in zip((mean, std), stats))
        self.register_buffer('mean', mean.view(1, -1, 1, 1))
        self.register_buffer('std', std.view(1, -1, 1, 1))

    @torch.no_grad()
    def forward(
        self,
        x:torch.Tensor, # images in [-1, 1], (B,1 or 3,H,W)
        bs:int=256, # images per encoder batch
    ) -> torch.Tensor:
        "Features (B,D), float32, computed `bs` images at a time"
        out = []
        self.encoder.eval()
        dev = self.mean.device
        for i in range(0, len(x), bs):
            b = (x[i:i+bs].as_subclass(torch.Tensor).float().to(dev) + 1)/2
            if b.shape[1] != self.n_in: b = b.mean(1, keepdim=True).expand(-1, self.n_in, -1, -1)
            if b.shape[-1] != self.size or b.shape[-2] != self.size:
                b = F.interpolate(b, size=(self.size, self.size), mode='bilinear', align_corners=False)
            f = self.encoder((b - self.mean)/self.std)
            out.append((f.mean((2, 3)) if f.ndim == 4 else f).float().cpu())
        return torch.cat(out)

def lite0_features(
    size:int=64, # images are resized to this
) -> FrechetFeatures:
    "`FrechetFeatures` of the offline ImageNet `efficientnet_lite0` (1280-d pooled features) at `size` px"
    from ..models.pretrained import efficientnet_lite0
    return FrechetFeatures(efficientnet_lite0(pretrained=True, num_classes=0), size)
