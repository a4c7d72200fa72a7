"""One-shot generation data: pairs of drawings of one class by different people, and their fastai loaders."""
import random
import torch
from torch.utils.data import Subset
from PIL import ImageOps
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.data.transforms import IntToFloatTensor, Normalize
from fastai.torch_core import TensorImage, default_device
from fastai.vision.core import PILImage, PILImageBW
from fasttransform import Pipeline
from ..data.items import ClassFolder
from ..data.images import to_image
from ..data.tensors import image_tensor
from .._checks import check_int, renamed

__all__ = ['OneShotPairs', 'OneShotDataLoaders']

class OneShotPairs:
    """Items `(source, pair)`: image `i` and, stacked on the channel axis, image `i` with another image of its class
    (another person's drawing, for Omniglot): fresh at each access, or fixed per index with `fixed_seed`"""
    def __init__(
        self,
        x:torch.Tensor, # uint8 images, (N,C,H,W)
        labels, # class index of each image
        fixed_seed:int|None=None, # None: a fresh partner at each access; an int: one partner per image
    ):
        self.x, self.labels = x, list(labels)
        by = {}
        for i, l in enumerate(self.labels): by.setdefault(l, []).append(i)
        self.others = [[j for j in by[l] if j != i] for i, l in enumerate(self.labels)]
        lonely = [i for i, o in enumerate(self.others) if not o]
        if lonely: raise ValueError(f'OneShotPairs: {len(lonely)} images are alone in their class (every class needs 2 or more)')
        self.fixed = None if fixed_seed is None else [random.Random(fixed_seed + i).choice(o) for i, o in enumerate(self.others)]
    def __len__(self): return len(self.x)
    def __getitem__(self, i):
        j = self.fixed[i] if self.fixed is not None else random.choice(self.others[i])
        return TensorImage(self.x[i]), TensorImage(torch.cat([self.x[i], self.x[j]], 0))

class OneShotDataLoaders(DataLoaders):
    """Batches `(source, real pair)` for `oneshot_learner`, images in [-1, 1]: train over every image with fresh
    partners (shuffled, full batches), valid over `n_valid` images with fixed partners"""
    @classmethod
    @renamed(n_channels='n_in')
    def from_folder(
        cls,
        path, # folder of class folders (Omniglot's Alphabet/character folders), or a `ClassFolder`
        size:int=32, # images are resized to `size` x `size`: 32 or 64
        n_in:int=1, # 1 (grey) or 3 (RGB)
        invert:bool=False, # white <-> black (Omniglot: bright ink on black, as the generator draws)
        z_dim:int=64, # the generator's noise size (kept with the loaders for `oneshot_learner`)
        bs:int=64, # pairs per batch
        n_valid:int=64, # images with fixed partners for validation
        seed:int=0, # seed of the validation choice and partners
        device=None, # where batches go (default: fastai's `default_device()`)
    ):
        "From a folder of class folders"
        check_int('OneShotDataLoaders', 'bs', bs)
        if n_in not in (1, 3): raise ValueError(f'n_in={n_in}: use 1 (grayscale) or 3 (RGB)')
        cf = path if isinstance(path, ClassFolder) else ClassFolder(path)
        img_cls = PILImageBW if n_in == 1 else PILImage
        ims = [to_image(im, img_cls) for im in cf.images]
        if invert: ims = [ImageOps.invert(im) for im in ims]
        x = image_tensor(ims, size, img_cls)
        if len(x) < bs: raise ValueError(f'{len(x)} images are fewer than one batch (bs={bs})')
        tfms = [IntToFloatTensor(), Normalize.from_stats(0.5, 0.5)]   # [0,1] -> [-1,1], the range of tanh
        valid = sorted(random.Random(seed).sample(range(len(x)), min(n_valid, len(x))))
        dls = cls(DataLoader(OneShotPairs(x, cf.labels), bs=bs, shuffle=True, drop_last=True, after_batch=Pipeline(tfms)),
                  DataLoader(Subset(OneShotPairs(x, cf.labels, fixed_seed=seed), valid), bs=bs, after_batch=Pipeline(tfms)),
                  device=default_device() if device is None else device)
        dls.size, dls.n_channels, dls.z_dim, dls.invert, dls.class_folder = size, n_in, z_dim, invert, cf
        return dls
