"""Folder-per-class datasets: find the images and their class, check them, decode each image once."""
import os
import warnings
from collections import OrderedDict
from pathlib import Path
from fastai.data.transforms import image_extensions
from .._checks import check_int, check_positive
from .images import decode_image, canonical_image, decoded_bytes, to_image, IMAGE_TYPES  # noqa: F401  (importable from here too)

__all__ = ['ClassFolder', 'LazyImages', 'IndexedView', 'label_of']

def label_of(
    fn:Path, # an image file
    root:Path, # the dataset folder
) -> str:
    "Class of image `fn`: its folder relative to `root` (`s1`; `Alphabet/character01` for Omniglot)"
    return fn.parent.relative_to(root).as_posix()

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
