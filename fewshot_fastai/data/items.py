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

__all__ = ['ClassFolder', 'LazyImages', 'IndexedView', 'decoded_bytes', 'decode_image', 'canonical_image', 'label_of', 'to_image']

def label_of(
    fn:Path, # an image file
    root:Path, # the dataset folder
) -> str:
    "Class of image `fn`: its folder relative to `root` (`s1`; `Alphabet/character01` for Omniglot)"
    return fn.parent.relative_to(root).as_posix()

def decode_image(
    fn:Path, # an image file
) -> Image.Image:
    """Fully decoded image `fn` as 8-bit 'L' (grey) or 'RGB' (`canonical_image`: 16-bit scaled, palettes expanded,
    transparency composited on white); raises naming the file if it is not a readable image"""
    try:
        with Image.open(fn) as im:
            im.load()
            loaded = im
    except Image.DecompressionBombError as e:   # PIL's guard against huge images (> ~179 Mpx): refused, named
        raise ValueError(f'{fn}: refused, too large an image ({str(e).split(" could be")[0]})') from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f'{fn}: not a readable image ({type(e).__name__}: {e})') from e
    return canonical_image(loaded, where=str(fn))

BACKGROUND = 255   # what transparent pixels become: white paper, the background of drawings (and neutral for photos)
_GREY_MODES = ('1', 'L', 'LA', 'La', 'I', 'I;16', 'I;16L', 'I;16B', 'I;16N', 'F')

def _from_levels(a:np.ndarray, where:str) -> np.ndarray:
    """8-bit levels from the pixel values of an array, by one rule whatever the container: uint8 as it is, bool 0/255,
    uint16 over its full range (/257), other integers must lie in 0..255, floats in [0, 1] (x255, rounded)"""
    if a.dtype == np.uint8: return a
    if a.dtype == np.bool_: return a.astype(np.uint8)*255
    if a.dtype == np.uint16: return np.round(a/257.).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        if a.size and (a.min() < 0 or a.max() > 255):
            raise ValueError(f'{where}: {a.dtype} pixel values in {a.min()}..{a.max()}; integers must lie in 0..255 '
                             '(uint8), or use uint16 (0..65535) or floats in [0, 1]')
        return a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all(): raise ValueError(f'{where}: {int((~np.isfinite(a)).sum())} pixel value(s) are NaN or infinite')
        if a.size and (a.min() < 0 or a.max() > 1):
            raise ValueError(f'{where}: float pixel values in {a.min():.4g}..{a.max():.4g}; floats must lie in [0, 1] (not normalised)')
        return np.round(a.astype(np.float64)*255).astype(np.uint8)
    raise ValueError(f'{where}: pixel type {a.dtype} is not an image type (uint8, uint16, bool, float in [0, 1])')

def _composite(rgb:np.ndarray, alpha:np.ndarray) -> np.ndarray:
    "8-bit colour or grey `rgb` over the white background, by 8-bit `alpha`"
    a = alpha.astype(np.float32)[..., None]/255 if rgb.ndim == 3 else alpha.astype(np.float32)/255
    return np.round(rgb.astype(np.float32)*a + BACKGROUND*(1 - a)).astype(np.uint8)

def canonical_image(
    im:Image.Image, # a decoded PIL image in any mode
    where:str='image', # what to name in an error
) -> Image.Image:
    """`im` as 8-bit 'L' (grey sources) or 'RGB' (colour sources): one conversion for every container, so that the
    network sees the same pixels whatever the file held. 16-bit and 32-bit grey are scaled over their range (not clipped),
    palettes expanded (with their transparency), and every alpha channel composited on white (`BACKGROUND`)."""
    mode = im.mode
    if mode in ('L', 'RGB'): return im
    if mode == 'P': im = im.convert('RGBA' if 'transparency' in im.info else 'RGB'); mode = im.mode
    if mode == 'PA': im = im.convert('RGBA'); mode = 'RGBA'
    if mode == 'RGB': return im
    if mode == '1': return im.convert('L')
    if mode.startswith('I;16'): return Image.fromarray(_from_levels(np.asarray(im).astype(np.uint16), where), 'L')
    if mode == 'I':   # 32-bit integers: 16-bit PNGs and TIFFs open so in some readers; their range is 0..65535
        a = np.asarray(im)
        if a.size and (a.min() < 0 or a.max() > 65535): raise ValueError(f'{where}: 32-bit pixel values in {a.min()}..{a.max()}, not an image range')
        return Image.fromarray(_from_levels(a.astype(np.uint16), where), 'L')
    if mode == 'F': return Image.fromarray(_from_levels(np.asarray(im), where), 'L')
    if mode in ('LA', 'La'):
        a = np.asarray(im.convert('LA'))
        return Image.fromarray(_composite(a[..., 0], a[..., 1]), 'L')
    if mode in ('RGBA', 'RGBa'):
        a = np.asarray(im.convert('RGBA'))
        return Image.fromarray(_composite(a[..., :3], a[..., 3]), 'RGB')
    if mode in ('RGBX', 'CMYK', 'YCbCr', 'LAB', 'HSV'): return im.convert('RGB')
    raise ValueError(f'{where}: image mode {mode!r} is not supported (grey, RGB, palette, 16-bit grey, with or without alpha)')

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
    """Every folder under `root` (itself included) but hidden ones (a leading dot, with a warning that counts them
    and the hidden files), symbolic links followed once: a folder reached a second time
    (a link to a parent, or two links to one folder) is skipped with a warning, so it never becomes a second class"""
    out, seen, hidden = [], {}, 0
    for top, subdirs, files in os.walk(root, followlinks=True):
        hidden += sum(n.startswith('.') for n in subdirs) + sum(n.startswith('.') for n in files)
        subdirs[:] = [n for n in subdirs if not n.startswith('.')]   # .git, .ipynb_checkpoints...: never classes
        real = os.path.realpath(top)
        if real in seen:
            warnings.warn(f'{top}: the same folder as {seen[real]} (through a symbolic link), skipped')
            subdirs[:] = []
            continue
        seen[real] = top
        subdirs.sort(key=lambda n: (os.path.islink(os.path.join(top, n)), n))   # a folder's own path before links to it
        out.append(Path(top))
    if hidden: warnings.warn(f'{root}: {hidden} hidden file(s) and folder(s) (names starting with a dot) skipped')
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
        _items=None, # set by `from_items`: (classes, files, labels, images, lazy) as given, no folder scan
    ):
        if _items is not None:
            self.root = Path(root).expanduser()
            self.classes, self.files, self.labels, self.images, self.lazy = _items
            return
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

    @classmethod
    def from_items(
        cls,
        root, # the folder the items belong to (for messages and `repr`)
        classes:list, # class labels, in label-index order
        files:list, # every image's file
        labels:list, # every image's class index into `classes`
        images=None, # decoded images (a list, or a lazy sequence) in `files` order; None: not decoded
        lazy:bool=False, # whether `images` decodes on access
    ) -> 'ClassFolder':
        "A ClassFolder of the given items, with no folder scan (subsets, merged sets, generated classes)"
        if len(files) != len(labels) or (images is not None and len(images) != len(files)):
            raise ValueError(f'ClassFolder.from_items: {len(files)} files, {len(labels)} labels'
                             + ('' if images is None else f', {len(images)} images') + ': they must be as many')
        return cls(root, _items=(list(classes), list(files), list(labels), images, bool(lazy)))

    def subset(
        self,
        keep, # predicate on class labels, `keep(label) -> bool`
    ) -> 'ClassFolder':
        "The classes whose label satisfies `keep(label)` (e.g. unseen alphabets), sharing the decoded images"
        classes = [c for c in self.classes if keep(c)]
        if not classes: raise ValueError(f'{self.root}: no class satisfies {keep}')
        cidx = {c: i for i, c in enumerate(classes)}
        idx = [i for i, l in enumerate(self.labels) if self.classes[l] in cidx]
        if self.images is None: images = None
        elif isinstance(self.images, LazyImages): images = self.images.subset(idx)
        else: images = [self.images[i] for i in idx]
        return ClassFolder.from_items(self.root, classes, [self.files[i] for i in idx],
                                      [cidx[self.classes[self.labels[i]]] for i in idx], images, self.lazy)

    def files_of(
        self,
        label:str, # a class label (one of `classes`)
    ) -> list:
        "The files of class `label`, in `files` order"
        return self.files_by_class(classes=[label])[label]

    def files_by_class(
        self,
        k:int|None=None, # at most this many files of each class (the first, in `files` order); None: all
        classes=None, # these labels only, in this order; None: every class
    ) -> dict:
        "{label: its files} (e.g. a support set for `ff.classify`: `files_by_class(1)` is one file a class)"
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f'ClassFolder.files_by_class: k={k!r} must be a positive int or None')
        classes = self.classes if classes is None else list(classes)
        if (missing := [c for c in classes if c not in self.classes]): raise KeyError(f'{self.root}: no class {missing[0]!r}')
        by = {c: [] for c in classes}
        for f, l in zip(self.files, self.labels):
            c = self.classes[l]
            if c in by and (k is None or len(by[c]) < k): by[c].append(f)
        return by

    def merge(
        self,
        other:'ClassFolder', # another ClassFolder (e.g. a second Omniglot set)
    ) -> 'ClassFolder':
        """This folder's classes and `other`'s that this one lacks (a label in both is taken from this one: two Omniglot
        sets share the same drawings of their common alphabets). Both must be decoded eagerly."""
        if self.lazy or other.lazy or self.images is None or other.images is None:
            raise ValueError('ClassFolder.merge: both folders must be decoded eagerly')
        old = set(self.classes)
        if all(c in old for c in other.classes): return self.subset(lambda c: True)
        sub = other.subset(lambda c: c not in old)
        off = len(self.classes)
        return ClassFolder.from_items(self.root, self.classes + sub.classes, self.files + sub.files,
                                      self.labels + [l + off for l in sub.labels], list(self.images) + list(sub.images))

    def __len__(self): return len(self.files)
    def __repr__(self):
        return f"{type(self).__name__}({self.root}: {len(self.classes)} classes, {len(self)} images{', lazy' if self.lazy else ''})"
    def label_names(
        self,
    ) -> list[str]:
        "The class label of every image, in `files` order"
        return [self.classes[i] for i in self.labels]

def _array_image(x:np.ndarray, where:str) -> Image.Image:
    "An (H,W) or (H,W,C) array, C in 1, 3, 4 (RGBA: composited on white), as an 8-bit 'L' or 'RGB' image"
    if x.ndim == 3 and x.shape[-1] == 1: x = x[..., 0]
    if not (x.ndim == 2 or x.ndim == 3 and x.shape[-1] in (3, 4)) or 0 in x.shape:
        raise ValueError(f'{where}: an image array must be (H,W) or (H,W,C) with C in 1, 3, 4 (tensors: (C,H,W)); got shape {tuple(x.shape)}')
    a = _from_levels(np.ascontiguousarray(x), where)
    if a.ndim == 2: return Image.fromarray(a, 'L')
    if a.shape[-1] == 4: return Image.fromarray(_composite(a[..., :3], a[..., 3]), 'RGB')
    return Image.fromarray(a, 'RGB')

IMAGE_TYPES = 'a path, PIL image, encoded image bytes, numpy array (H,W) or (H,W,C), or tensor (H,W) or (C,H,W)'

def to_image(
    x, # path, PIL image, image file bytes, numpy array or tensor
    img_cls, # fastai image class: `PILImage` (RGB) or `PILImageBW` (grey)
):
    """`x` as an `img_cls` image, by one rule for every input: a path or the bytes of an image file are decoded; numpy
    arrays are (H,W) or (H,W,C) as PIL and skimage give them, tensors (H,W) or (C,H,W) as torchvision gives them, C in
    1, 3 or 4 (4: RGBA, composited on white); pixel values: uint8 as they are, uint16 over 0..65535, bool 0/255, other
    integers in 0..255, floats in [0, 1]. NaN or infinite pixels, other ranges, shapes and types are refused (ValueError /
    TypeError naming them)."""
    mode = img_cls._open_args['mode']
    if isinstance(x, (str, Path)):
        if not Path(x).is_file(): raise FileNotFoundError(f'{x}: no such image file')
        x = decode_image(Path(x))
    elif isinstance(x, (bytes, bytearray, memoryview)):
        import io
        try:
            with Image.open(io.BytesIO(bytes(x))) as im:
                im.load(); x = canonical_image(im, 'image bytes')
        except Image.DecompressionBombError: raise ValueError('image bytes: refused, too large an image') from None
        except (UnidentifiedImageError, OSError, SyntaxError) as e: raise ValueError(f'image bytes: not a readable image ({type(e).__name__})') from None
    elif isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if t.ndim == 3:
            if t.shape[0] not in (1, 3, 4): raise ValueError(f'image tensor: (H,W) or (C,H,W) with C in 1, 3, 4; got shape {tuple(x.shape)}')
            t = t.permute(1, 2, 0)
        elif t.ndim != 2: raise ValueError(f'image tensor: (H,W) or (C,H,W) with C in 1, 3, 4; got shape {tuple(x.shape)}')
        if t.dtype == torch.bfloat16 or t.dtype == torch.float16: t = t.float()
        x = _array_image(t.numpy(), 'image tensor')
    elif isinstance(x, np.ndarray): x = _array_image(x, 'image array')
    elif isinstance(x, Image.Image): x = canonical_image(x, 'PIL image')
    else: raise TypeError(f'cannot make an image of {type(x).__name__}: give {IMAGE_TYPES}')
    return img_cls.create(x.convert(mode))
