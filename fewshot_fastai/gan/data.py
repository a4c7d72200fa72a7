"""Unconditional image DataLoaders for GANs: batches of `(noise, real image)` as fastai's GAN machinery expects
(`InvisibleTensor` noise as input, `TensorImage` as target), images normalised to [-1, 1]. Every image is decoded,
converted and resized once and kept in memory as uint8, so an epoch costs only the models."""
import os
from pathlib import Path
import torch
from PIL import ImageOps
from fastai.data.core import DataLoaders
from fastai.torch_core import default_device, rank_distrib
from fastai.data.load import DataLoader
from fastai.data.transforms import IntToFloatTensor, Normalize, get_image_files
from fastai.vision.core import TensorImage, PILImage, PILImageBW
from fastai.vision.gan import InvisibleTensor
from fasttransform import Pipeline
from ..data.items import LazyImages
from ..data.images import decode_image, decoded_bytes
from .._checks import check_int, renamed
from ..data.tensors import image_tensor, LazyImageTensor

__all__ = ['NoiseImages', 'GANDataLoaders', 'gan_images']

@renamed(n_channels='n_in')
def gan_images(
    path, # folder of images, any nesting
    size:int=32, # images are resized to `size` x `size`
    n_in:int=1, # 1 (grey) or 3 (RGB)
    invert:bool=False, # invert the images
    max_images:int|None=None, # use at most this many
    lazy:bool|None=None, # decode on access (None: when they would exceed `max_bytes`)
    max_bytes:float=1e9, # threshold of the automatic choice
):
    """All images under `path` (any nesting, e.g. Omniglot's Alphabet/character folders), decoded once:
    (N, n_in, size, size) uint8. `invert`: white <-> black (Omniglot's ink becomes bright). `lazy` (default:
    when the decoded files would take more than `max_bytes`): a `LazyImageTensor` that decodes at access."""
    path = Path(path)
    if not path.is_dir(): raise FileNotFoundError(f'{path}: no such folder of images')
    files = sorted(get_image_files(path))
    if max_images is not None: files = files[:max_images]
    if not files: raise ValueError(f'{path}: no image files found')
    if n_in not in (1, 3): raise ValueError(f'n_in={n_in}: use 1 (grayscale) or 3 (RGB)')
    img_cls = PILImageBW if n_in == 1 else PILImage
    if lazy is None: lazy = decoded_bytes(files) > max_bytes
    if lazy: return LazyImageTensor(LazyImages(files), size, img_cls, invert=invert)
    ims = [decode_image(f).convert(img_cls._open_args['mode']) for f in files]
    if invert: ims = [ImageOps.invert(im) for im in ims]
    return image_tensor(ims, size, img_cls)

class NoiseImages:
    """Items `(z, image)`: `z` ~ N(0, I) of size `z_dim`, fresh at every access (`fixed_seed=None`) or fixed per
    index (validation), and the uint8 image `x[i]`"""
    def __init__(
        self,
        x:torch.Tensor, # images, (N,C,H,W)
        z_dim:int=100, # noise size
        fixed_seed:int|None=None, # None: fresh noise at every access; an int: the same noise for each item
    ):
        self.x, self.z_dim = x, z_dim
        self.z = None
        if fixed_seed is not None:
            self.z = torch.randn(len(x), z_dim, generator=torch.Generator().manual_seed(fixed_seed))
    def __len__(self): return len(self.x)
    def _generator(self) -> torch.Generator:
        """This process's noise generator, seeded at its first use from the seeded torch stream plus the process rank:
        under DDP each rank (and each DataLoader worker) draws its own noise. One per process: a generator per item
        cost 25x the draw itself."""
        key = (os.getpid(), rank_distrib())
        if getattr(self, '_key', None) != key:
            self._gen, self._key = torch.Generator().manual_seed(int(torch.randint(2**62, ())) + key[1]), key
        return self._gen
    def __getstate__(self): return {k: v for k, v in self.__dict__.items() if k not in ('_gen', '_key')}
    def __getitem__(self, i):
        z = self.z[i] if self.z is not None else torch.randn(self.z_dim, generator=self._generator())
        return InvisibleTensor(z), TensorImage(self.x[i])

class GANDataLoaders(DataLoaders):
    """Train: every image once per epoch with fresh noise (shuffled, full batches). Valid: `n_valid` images with
    fixed noise, on which fastai reports the generator loss. Batches are `(z, real)`, real in [-1, 1]."""
    @classmethod
    def from_tensor(
        cls,
        x:torch.Tensor, # uint8 images, (N,C,H,W)
        z_dim:int=100, # noise size
        bs:int=64, # batch size
        n_valid:int=64, # images with fixed noise for validation
        seed:int=0, # seed of the validation choice and noise
        device=None, # where batches go (default: fastai's `default_device()`)
    ):
        "From uint8 images (N,C,H,W)"
        if not isinstance(x, LazyImageTensor) and (x.dtype != torch.uint8 or x.ndim != 4):
            raise ValueError(f'expected uint8 images (N,C,H,W), got {x.dtype} {tuple(x.shape)}')
        check_int('GANDataLoaders', 'bs', bs); check_int('GANDataLoaders', 'z_dim', z_dim)
        if len(x) < bs: raise ValueError(f'{len(x)} images are fewer than one batch (bs={bs})')
        tfms = [IntToFloatTensor(), Normalize.from_stats(0.5, 0.5)]   # [0,1] -> [-1,1], the range of tanh
        valid_x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n_valid]]
        dls = cls(DataLoader(NoiseImages(x, z_dim), bs=bs, shuffle=True, drop_last=True, after_batch=Pipeline(tfms)),
                  DataLoader(NoiseImages(valid_x, z_dim, fixed_seed=seed), bs=bs, after_batch=Pipeline(tfms)),
                  device=default_device() if device is None else device)   # as DataBlock's loaders: the GPU when there is one
        dls.z_dim, dls.size, dls.n_channels = z_dim, x.shape[-1], x.shape[1]
        return dls

    def show_batch(
        self,
        max_n:int=16, # images to show
        nrow:int=8, # images per row
        ax=None, # matplotlib axis (a new one if None)
        figsize_per:float=0.9, # inches per image
    ):
        "A grid of real training images (the plain fastai DataLoader behind this has no `show_batch`)"
        import matplotlib.pyplot as plt
        from torchvision.utils import make_grid
        x = self.train.dataset.x[:max_n].float()/255
        g = make_grid(x, nrow=nrow, padding=1).permute(1, 2, 0).numpy()
        if ax is None: _, ax = plt.subplots(figsize=(figsize_per*nrow, figsize_per*(-(-len(x)//nrow))))
        ax.imshow(g); ax.axis('off')
        return ax

    @classmethod
    @renamed(n_channels='n_in')
    def from_folder(
        cls,
        path, # folder of images, any nesting
        size:int=32, # images are resized to `size` x `size`
        n_in:int=1, # 1 (grey) or 3 (RGB)
        invert:bool=False, # invert the images (white ink on black for Omniglot)
        max_images:int|None=None, # use at most this many
        lazy:bool|None=None, # decode on access (None: when they would exceed 1 GB)
        **kwargs,
    ):
        """From every image under `path` (see `gan_images`): e.g. Omniglot with `invert=True` at 32 px, ORL faces
        at 64 px"""
        return cls.from_tensor(gan_images(path, size, n_in, invert, max_images, lazy), **kwargs)
