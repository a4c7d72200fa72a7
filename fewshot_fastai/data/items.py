"""Folder-per-class datasets: find the images and their class, check them, decode each image once."""
import warnings
from pathlib import Path
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from fastai.data.transforms import image_extensions

__all__ = ['ClassFolder', 'label_of', 'alphabet_of', 'to_image']

def label_of(fn:Path, root:Path) -> str:
    "Class of image `fn`: its folder relative to `root` (`s1`; `Alphabet/character01` for Omniglot)"
    return fn.parent.relative_to(root).as_posix()

def alphabet_of(label:str) -> str:
    "Omniglot alphabet of a class label `Alphabet/characterNN`"
    return label.split('/')[0]

def _decode(fn:Path) -> Image.Image:
    "Fully decoded image `fn`, in its stored mode; raises naming the file if it is not a readable image"
    try:
        with Image.open(fn) as im:
            im.load()
            return im
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f'{fn}: not a readable image ({type(e).__name__}: {e})') from e

class ClassFolder:
    """The images of a folder-per-class dataset: every folder under `root` that directly holds images is a
    class, labelled by its path relative to `root`. Files in class folders that are not images (by
    extension) are skipped with a warning naming them; classes with fewer than `min_per_class` images are
    dropped with a warning (a same pair needs two images); a corrupt image raises an error naming it.
    All images are decoded once, here, and kept in memory (`self.images`)."""
    def __init__(self, root, min_per_class:int=2, decode=True):
        self.root = Path(root).expanduser()
        if not self.root.is_dir(): raise FileNotFoundError(f'{self.root}: no such folder')
        skipped, by_class = [], {}
        for d in sorted([self.root, *(p for p in self.root.rglob('*') if p.is_dir())]):
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
        self.images = [_decode(f) for f in self.files] if decode else None

    def subset(self, keep) -> 'ClassFolder':
        "The classes whose label satisfies `keep(label)` (e.g. unseen alphabets), sharing the decoded images"
        res = object.__new__(type(self))
        res.root, res.classes = self.root, [c for c in self.classes if keep(c)]
        if not res.classes: raise ValueError(f'{self.root}: no class satisfies {keep}')
        cidx = {c: i for i, c in enumerate(res.classes)}
        idx = [i for i, l in enumerate(self.labels) if self.classes[l] in cidx]
        res.files, res.labels = [self.files[i] for i in idx], [cidx[self.classes[self.labels[i]]] for i in idx]
        res.images = None if self.images is None else [self.images[i] for i in idx]
        return res

    def __len__(self): return len(self.files)
    def __repr__(self): return f'{type(self).__name__}({self.root}: {len(self.classes)} classes, {len(self)} images)'
    def label_names(self) -> list[str]: return [self.classes[i] for i in self.labels]

def to_image(x, img_cls):
    "`x` (path, PIL image, array or tensor (H,W)/(C,H,W), uint8 or float in [0,1]) as an `img_cls` image"
    mode = img_cls._open_args['mode']
    if isinstance(x, (str, Path)):
        if not Path(x).is_file(): raise FileNotFoundError(f'{x}: no such image file')
        x = _decode(Path(x))
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
