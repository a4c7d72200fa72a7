"""Folder-per-class datasets: find the images and their class, check them, decode each image once."""
import os
import warnings
from collections import OrderedDict
from pathlib import Path
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from fastai.data.transforms import image_extensions
from .._checks import check_int, check_positive

__all__ = ['ClassFolder', 'LazyImages', 'IndexedView', 'decoded_bytes', 'decode_image', 'label_of', 'to_image']

def label_of(
    fn:Path, # an image file
    root:Path, # the dataset folder
) -> str:
    "Class of image `fn`: its folder relative to `root` (`s1`; `Alphabet/character01` for Omniglot)"
    return fn.parent.relative_to(root).as_posix()

def decode_image(
    fn:Path, # an image file
) -> Image.Image:
    "Fully decoded image `fn`, in its stored mode; raises naming the file if it is not a readable image"
    try:
        with Image.open(fn) as im:
            im.load()
            return im
    except Image.DecompressionBombError as e:   # PIL's guard against huge images (> ~179 Mpx): refused, named
        raise ValueError(f'{fn}: refused, too large an image ({str(e).split(" could be")[0]})') from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f'{fn}: not a readable image ({type(e).__name__}: {e})') from e

_BANDS = {'1': 1, 'L': 1, 'P': 1, 'I;16': 2, 'LA': 2, 'RGB': 3, 'YCbCr': 3, 'RGBA': 4, 'CMYK': 4, 'I': 4, 'F': 4}

def decoded_bytes(
    files, # image paths
    sample:int=200, # how many headers to read at most
) -> int:
    """Estimated memory of `files` decoded (PIL, stored mode), from the headers of up to `sample` of them, evenly
    spaced: `Image.open` reads the header only. A corrupt header raises an error naming the file."""
    files = list(files)
    if not files: return 0
    step = max(1, len(files)//sample)
    picked = files[::step][:sample]
    total = 0
    for f in picked:
        try:
            with Image.open(f) as im: total += im.width*im.height*_BANDS.get(im.mode, 4)
        except Image.DecompressionBombError as e:
            raise ValueError(f'{f}: refused, too large an image ({str(e).split(" could be")[0]})') from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise ValueError(f'{f}: not a readable image ({type(e).__name__}: {e})') from e
    return int(total/len(picked)*len(files))

class LazyImages:
    """A sequence of images decoded from `files` when accessed (in DataLoader workers, as fastai decodes), with an
    optional cache of the `cache_size` most recently used. Indexing by position or slice, like the eager list."""
    def __init__(
        self,
        files, # image paths
        cache_size:int=0, # how many decoded images to keep (least recently used dropped); 0: none
    ):
        self.files, self.cache_size = list(files), cache_size
        self._cache = OrderedDict()
    def __len__(self): return len(self.files)
    def __getitem__(self, i):
        if isinstance(i, slice): return [self[k] for k in range(*i.indices(len(self)))]
        if self.cache_size and i in self._cache:
            self._cache.move_to_end(i); return self._cache[i]
        im = decode_image(self.files[i])
        if self.cache_size:
            self._cache[i] = im
            if len(self._cache) > self.cache_size: self._cache.popitem(last=False)
        return im
    def __iter__(self): return (self[i] for i in range(len(self)))
    def subset(
        self,
        idx, # positions of the files to keep
    ) -> 'LazyImages':
        "The images at positions `idx`, with the same cache size"
        return LazyImages([self.files[i] for i in idx], self.cache_size)
    def __getstate__(self): return {**self.__dict__, '_cache': OrderedDict()}   # workers start with an empty cache
    def __repr__(self): return f'{type(self).__name__}({len(self)} files, cache {self.cache_size})'

class IndexedView:
    "The items `idx` of a sequence, without materialising them: `view[k] = seq[idx[k]]` (slices too)"
    def __init__(
        self,
        seq, # any indexable sequence
        idx, # positions in `seq`
    ): self.seq, self.idx = seq, list(idx)
    def __len__(self): return len(self.idx)
    def __getitem__(self, k):
        if isinstance(k, slice): return [self.seq[i] for i in self.idx[k]]
        return self.seq[self.idx[k]]

def _folders(root:Path) -> list[Path]:
    """Every folder under `root` (itself included), symbolic links followed once: a folder reached a second time
    (a link to a parent, or two links to one folder) is skipped with a warning, so it never becomes a second class"""
    out, seen = [], {}
    for top, subdirs, _ in os.walk(root, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            warnings.warn(f'{top}: the same folder as {seen[real]} (through a symbolic link), skipped')
            subdirs[:] = []
            continue
        seen[real] = top
        subdirs.sort(key=lambda n: (os.path.islink(os.path.join(top, n)), n))   # a folder's own path before links to it
        out.append(Path(top))
    return out

class ClassFolder:
    """The images of a folder-per-class dataset: every folder under `root` that directly holds images is a
    class, labelled by its path relative to `root`. Files in class folders that are not images (by
    extension) are skipped with a warning naming them; classes with fewer than `min_per_class` images are
    dropped with a warning (a same pair needs two images); a corrupt image raises an error naming it.
    Eager mode decodes every image once, here, and keeps it in memory (`self.images`, a list of PIL images); lazy
    mode lists the files only and decodes at access (`self.images`, a `LazyImages`), so folders larger than memory
    work: chosen when the decoded images would take more than `max_bytes` (estimated from file headers), or by
    `lazy=True/False`. `verify()` checks every file of a lazy folder at once."""
    def __init__(
        self,
        root, # folder of class folders (nested ones too: `Alphabet/character01`)
        min_per_class:int=2, # classes with fewer images are dropped with a warning
        decode=True, # False: only list files and labels (no image is opened)
        lazy:bool|None=None, # None: lazy when the decoded images would exceed `max_bytes`
        max_bytes:float=1e9, # threshold of the automatic choice, in bytes
        cache_size:int=0, # lazy mode: keep the most recently used decoded images
    ):
        check_int('ClassFolder', 'min_per_class', min_per_class); check_int('ClassFolder', 'cache_size', cache_size, 0)
        check_positive('ClassFolder', 'max_bytes', max_bytes)
        self.root = Path(root).expanduser()
        if not self.root.is_dir(): raise FileNotFoundError(f'{self.root}: no such folder')
        skipped, by_class = [], {}
        for d in sorted(_folders(self.root)):
            entries = sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith('.'))
            imgs = [p for p in entries if p.suffix.lower() in image_extensions]
            if d == self.root: continue  # loose files at the top level (READMEs, licences) belong to no class
            if not imgs:
                if not any(p.is_dir() for p in d.iterdir()):
                    warnings.warn(f'{d}: empty class folder (no images), skipped')
                continue
            skipped += [p for p in entries if p.suffix.lower() not in image_extensions]
            by_class[label_of(imgs[0], self.root)] = imgs
        for p in skipped: warnings.warn(f'{p}: not an image file, skipped')
        for c, imgs in list(by_class.items()):
            if len(imgs) < min_per_class:
                warnings.warn(f'{self.root/c}: class {c!r} has {len(imgs)} image(s) ({imgs[0].name}), fewer than '
                              f'{min_per_class}; dropped')
                del by_class[c]
        if len(by_class) < 2:
            raise ValueError(f'{self.root}: found {len(by_class)} usable class folder(s); need at least 2 '
                             f'folders of >= {min_per_class} images each')
        self.classes = sorted(by_class)
        self.files = [f for c in self.classes for f in by_class[c]]
        cidx = {c: i for i, c in enumerate(self.classes)}
        self.labels = [cidx[label_of(f, self.root)] for f in self.files]
        if lazy is None: lazy = decode and decoded_bytes(self.files) > max_bytes
        self.lazy = bool(lazy)
        if not decode: self.images = None
        elif self.lazy: self.images = LazyImages(self.files, cache_size)
        else: self.images = [decode_image(f) for f in self.files]

    def verify(self) -> 'ClassFolder':
        "Decode every file once (not kept); raises an error naming the first that is not a readable image"
        for f in self.files: decode_image(f)
        return self

    def subset(
        self,
        keep, # predicate on class labels, `keep(label) -> bool`
    ) -> 'ClassFolder':
        "The classes whose label satisfies `keep(label)` (e.g. unseen alphabets), sharing the decoded images"
        res = object.__new__(type(self))
        res.root, res.classes = self.root, [c for c in self.classes if keep(c)]
        if not res.classes: raise ValueError(f'{self.root}: no class satisfies {keep}')
        cidx = {c: i for i, c in enumerate(res.classes)}
        idx = [i for i, l in enumerate(self.labels) if self.classes[l] in cidx]
        res.files, res.labels = [self.files[i] for i in idx], [cidx[self.classes[self.labels[i]]] for i in idx]
        res.lazy = getattr(self, 'lazy', False)
        if self.images is None: res.images = None
        elif isinstance(self.images, LazyImages): res.images = self.images.subset(idx)
        else: res.images = [self.images[i] for i in idx]
        return res

    def __len__(self): return len(self.files)
    def __repr__(self):
        return f"{type(self).__name__}({self.root}: {len(self.classes)} classes, {len(self)} images{', lazy' if self.lazy else ''})"
    def label_names(
        self,
    ) -> list[str]:
        "The class label of every image, in `files` order"
        return [self.classes[i] for i in self.labels]

def to_image(
    x, # path, PIL image, numpy array or tensor
    img_cls, # fastai image class: `PILImage` (RGB) or `PILImageBW` (grey)
):
    "`x` (path, PIL image, array or tensor (H,W)/(C,H,W), uint8 or float in [0,1]) as an `img_cls` image"
    mode = img_cls._open_args['mode']
    if isinstance(x, (str, Path)):
        if not Path(x).is_file(): raise FileNotFoundError(f'{x}: no such image file')
        x = decode_image(Path(x))
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if t.ndim == 2: t = t[None]
        if t.ndim != 3 or t.shape[0] not in (1, 3): raise ValueError(f'image tensor must be (H,W) or (C,H,W) with C in 1,3; got {tuple(x.shape)}')
        if t.is_floating_point():
            if t.min() < 0 or t.max() > 1: raise ValueError('float image tensors must be in [0, 1] (not normalised)')
            t = (t*255).round()
        x = t.to(torch.uint8).permute(1, 2, 0).squeeze(-1).numpy()
    if isinstance(x, np.ndarray): x = Image.fromarray(x)
    if not isinstance(x, Image.Image): raise TypeError(f'cannot make an image of {type(x).__name__}')
    return img_cls.create(x.convert(mode))
