"Images as uint8 tensors (decoded once, or lazily in chunks) and their rotation views (the extra classes of pre-training)"
import torch
from fastai.vision.core import PILImage, image2tensor

__all__ = ['image_tensor', 'LazyImageTensor', 'check_rotations']

def image_tensor(
    images, # PIL images (decoded), e.g. a `ClassFolder`'s
    size, # side, or (height, width), they are resized to
    img_cls=PILImage, # fastai image class: `PILImageBW` for grey
    prep=None, # PIL -> PIL callable applied first (e.g. `InkCenter`)
) -> torch.Tensor:
    """Decoded PIL `images`, each through `prep` first (a PIL -> PIL callable such as `ff.datasets.InkCenter()`; None: as they
    are), converted to `img_cls`'s mode and resized once: (M,C,H,W) uint8"""
    size = (size, size) if isinstance(size, int) else tuple(size)
    mode = img_cls._open_args['mode']
    # as `img_cls` first: a fastai Transform's result keeps its input's type, which a PNG file's class cannot hold
    if prep is not None: images = (prep(img_cls.create(im.convert(mode))) for im in images)
    return torch.stack([image2tensor(im.convert(mode).resize(size[::-1], resample=2)) for im in images])

class LazyImageTensor:
    """What `image_tensor` makes, decoded at access: `x[idx]` -> (len(idx),C,H,W) uint8 for indices, slices or index
    tensors, over the images at positions `base` of `images` (e.g. a `LazyImages`), followed by their rotations by
    90, 180, 270 degrees when `rotations=4` (index `k*len(base) + j` is view k of image `base[j]`, as `_rotated`
    orders them; views 4-7 of `rotations=8` are the mirror images, rotated). `invert`: white <-> black; `prep`: as in
    `image_tensor`, after `invert`."""
    def __init__(
        self,
        images, # the images (e.g. a `LazyImages`), decoded at access
        size, # side, or (height, width), they are resized to
        img_cls=PILImage, # fastai image class: `PILImageBW` for grey
        rotations:int=1, # 1, 4 (and the rotations by 90, 180, 270 degrees) or 8 (and their mirror images)
        base=None, # positions in `images` to use (default: all)
        invert:bool=False, # white <-> black
        prep=None, # PIL -> PIL callable applied after `invert` (e.g. `InkCenter`)
    ):
        self.images, self.img_cls, self.rotations, self.invert, self.prep = images, img_cls, rotations, invert, prep
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.base = list(range(len(images))) if base is None else list(base)
        self.shape = (len(self), 1 if img_cls._open_args['mode'] == 'L' else 3, *self.size)
    def __len__(self): return len(self.base)*self.rotations
    def _one(self, i):
        n = len(self.base)
        if not -len(self) <= i < len(self): raise IndexError(f'index {i} out of range for {len(self)} images')
        im = self.images[self.base[i % n]]
        if self.invert:
            from PIL import ImageOps
            im = ImageOps.invert(im.convert(self.img_cls._open_args['mode']))
        return _view(image_tensor([im], self.size, self.img_cls, self.prep)[0], (i % len(self))//n)
    def __getitem__(self, idx):
        if isinstance(idx, int): return self._one(idx)
        if isinstance(idx, slice): idx = range(*idx.indices(len(self)))
        idx = idx.tolist() if isinstance(idx, torch.Tensor) else list(idx)
        if not idx: return torch.empty(0, *self.shape[1:], dtype=torch.uint8)
        return torch.stack([self._one(int(i)) for i in idx])

def _view(x:torch.Tensor, k:int) -> torch.Tensor:
    "View `k` of images `x` (...,H,W): k = 0..3 rotates by 90*k degrees, k = 4..7 also mirrors (left-right) first"
    return torch.rot90(x.flip(-1) if k >= 4 else x, k % 4, dims=(-2, -1))

def _view_name(k:int) -> str:
    "Suffix of view `k`'s class name: '90' for a rotation, 'm90' for a mirrored one"
    return f'{"m" if k >= 4 else ""}{90*(k % 4)}'

def check_rotations(where:str, rotations) -> int:
    "1, 2, 3, 4 rotations by 90 degrees, or 8 (the 4 rotations and their mirror images): other counts would repeat a view"
    if isinstance(rotations, bool) or rotations not in (1, 2, 3, 4, 8):
        raise ValueError(f'{where}: rotations={rotations!r}; use 1-4 (rotations by 90 degrees as new classes) or 8 '
                         '(the 4 rotations and their mirror images)')
    return rotations

def _rotated(x:torch.Tensor, labels, rotations:int):
    "Rotations by multiples of 90 degrees (and mirror images, with 8) as new classes (Omniglot practice): x (M,...) -> (M*r,...)"
    xs = [_view(x, k) for k in range(rotations)]
    return torch.cat(xs), [l*rotations + k for k in range(rotations) for l in labels]
