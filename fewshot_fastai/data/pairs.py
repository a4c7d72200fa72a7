"""Image pairs for siamese training: the `SiameseImage` tuple, a balanced pair sampler, and DataLoaders built
with a fastai `DataBlock` over a folder-per-class dataset, split by class."""
import copy
import random
import numpy as np
import torch
from fastcore.basics import fastuple, listify, store_attr
from fastcore.meta import delegates
from fastai.data.block import DataBlock, TransformBlock
from fastai.data.core import DataLoaders, TfmdDL
from fastcore.foundation import L
from fastai.data.transforms import IntToFloatTensor, ToTensor, Category, CategoryMap
from fastai.torch_core import TensorCategory, default_device
from fastai.vision.augment import Resize
from fastai.vision.core import PILImage, PILImageBW, TensorImage, image2tensor
from fasttransform import ItemTransform, Pipeline
from .items import ClassFolder, LazyImages
from .images import to_image
from .._checks import check_int
from .._distrib import plain_dl
from .split import held_out_classes
from .prep import prep_config, prep_from_config, batch_prep, batch_tfms

__all__ = ['SiameseImage', 'PAIR_LABELS', 'IMAGE_MODES', 'PairSampler', 'PairDL', 'SiameseDataLoaders', 'find_pair_sampler']

PAIR_LABELS = ('different', 'same')
IMAGE_MODES = {'L': PILImageBW, 'RGB': PILImage}   # a recorded image mode -> fastai's image class

def _as_chw(t:torch.Tensor) -> torch.Tensor:
    "Image tensor in (C,H,W) order for display"
    return t if t.ndim == 3 else t[None]

class SiameseImage(fastuple):
    "A pair of images `(a, b)`, optionally with a third element: same (1/True) or different (0/False)"
    def show(
        self,
        ctx=None, # matplotlib axis to draw on (a new one if None)
        title=None, # title above the pair (default: 'same'/'different' when the label is known)
        **kwargs,
    ):
        "Show both images side by side on one axis"
        a, b = self[0], self[1]
        if not isinstance(a, torch.Tensor): a, b = image2tensor(a), image2tensor(b)
        a, b = _as_chw(a), _as_chw(b)
        gap = torch.zeros(a.shape[0], a.shape[1], max(2, a.shape[2]//10), dtype=a.dtype) + a.max()
        if title is None and len(self) > 2: title = PAIR_LABELS[int(self[2])]
        if a.shape[0] == 1: kwargs.setdefault('cmap', 'gray')
        return TensorImage(torch.cat([a, gap, b.to(a.dtype)], dim=2)).show(ctx=ctx, title=title, **kwargs)

def _is_pair(p) -> bool:
    "`(a, b)` or `(a, b, same)` of images (not an anchor index)"
    return isinstance(p, (tuple, list)) and len(p) in (2, 3) and not isinstance(p[0], (int, np.integer))

class PairSampler(ItemTransform):
    """Turns an anchor index into `SiameseImage(img_a, img_b, same)`: training anchors get a fresh partner at
    every draw (same class with probability 1/2, else any other training class), validation anchors a fixed
    partner drawn once with `seed`, exactly half of them same-class. Partners never cross the split.
    Images come decoded from memory (`images`, PIL), converted to `img_cls`'s mode once, here."""
    order = -10  # before Resize (1) and ToTensor (5)
    def __init__(
        self,
        images, # decoded images (or `LazyImages`), one per item
        labels, # class index of each image
        valid_idxs, # indices of the validation anchors (their pairs are fixed)
        img_cls=PILImage, # `PILImage` or `PILImageBW`
        seed:int|None=None, # seed of the fixed validation pairs
    ):
        super().__init__()
        self.img_cls = img_cls
        mode = img_cls._open_args['mode']
        self._lazy = isinstance(images, LazyImages)   # lazy: converted at access, in the DataLoader's workers
        if images is None or self._lazy: self.images = images
        else: self.images = [img_cls.create(im if im.mode == mode else im.convert(mode)) for im in images]
        self.labels = np.asarray(labels)
        is_valid = np.zeros(len(labels), bool); is_valid[list(valid_idxs)] = True
        self.is_valid = is_valid
        # per split: the classes (array), each class's position in it, and each class's members; built once so a
        # draw is O(1) Python work instead of rebuilding candidate lists per item
        self.split_classes, self._keys, self._pos = {}, {}, {}
        for split in (False, True):
            idx = np.flatnonzero(is_valid == split)
            keys = np.unique(self.labels[idx])
            self.split_classes[split] = {int(c): idx[self.labels[idx] == c] for c in keys}
            self._keys[split], self._pos[split] = keys, {int(c): k for k, c in enumerate(keys)}
        rng = random.Random(seed)
        anchors = list(np.flatnonzero(is_valid)); rng.shuffle(anchors)
        self.valid_pairs = {int(a): (self._partner(a, k % 2 == 0, rng), k % 2 == 0) for k, a in enumerate(anchors)}

    def _partner(self, a:int, same:bool, rng) -> int:
        "A uniformly drawn partner of anchor `a` in its split: another image of its class, or any image of another class"
        split, c = bool(self.is_valid[a]), int(self.labels[a])
        if same:
            members = self.split_classes[split][c]
            j = members[rng.randrange(len(members) - 1)]      # uniform over the others: `a`'s draw goes to the last
            return int(j if j != a else members[-1])
        keys = self._keys[split]
        k = rng.randrange(len(keys) - 1)
        k += k >= self._pos[split][c]                          # skip `a`'s own class
        members = self.split_classes[split][int(keys[k])]
        return int(members[rng.randrange(len(members))])

    def image(
        self,
        i:int, # index of the image
    ):
        "Image `i` as `img_cls` (converted once in eager mode; on access in lazy mode)"
        if not getattr(self, '_lazy', False): return self.images[i]
        im, mode = self.images[i], self.img_cls._open_args['mode']
        return self.img_cls.create(im if im.mode == mode else im.convert(mode))

    def encodes(self, x):
        if len(x) == 1 and _is_pair(x[0]):   # a new pair (test_dl, predict): images as paths, PIL or tensors
            p = x[0]
            ims = [to_image(v, self.img_cls) for v in p[:2]]
            return SiameseImage(*ims, TensorCategory(int(p[2]))) if len(p) > 2 else SiameseImage(*ims)
        if len(x) != 1 or not isinstance(x[0], (int, np.integer)): return x  # already a pair (inference)
        if self.images is None: raise RuntimeError('this PairSampler was exported without its images; '
                                                   'use predict_pair/classify to score new pairs')
        a = int(x[0])
        if self.is_valid[a]: b, same = self.valid_pairs[a]
        else:
            same = random.random() < 0.5
            b = self._partner(a, same, random)
        return SiameseImage(self.image(a), self.image(b), TensorCategory(int(same)))

    def decodes(self, x):
        "A decoded pair with a label (truth or prediction) names it: 'same' or 'different', as fastai's `Category`"
        if len(x) < 3 or isinstance(x[2], str): return x
        return SiameseImage(x[0], x[1], Category(PAIR_LABELS[int(x[2])]))

    def without_data(self) -> 'PairSampler':
        "A copy that keeps the image class only, not the dataset (what `export` stores)"
        res = copy.copy(self)
        res.__dict__.update({'images': None, 'valid_pairs': {}, 'split_classes': {}, '_keys': {},
                             '_pos': {}, 'labels': None, 'is_valid': None})
        return res

def find_pair_sampler(
    dls, # `SiameseDataLoaders` (or a learner's pair loaders)
) -> PairSampler:
    "The `PairSampler` in `dls`' item transforms"
    for t in plain_dl(dls.valid).after_item.fs:
        if isinstance(t, PairSampler): return t
    raise ValueError('these DataLoaders have no PairSampler: build them with SiameseDataLoaders')

class PairDL(TfmdDL):
    """fastai's `TfmdDL` for pairs. A decoded batch shows itself whole (a `SiameseImage`); this loader also gives one
    `(a, b, label)` sample per pair, so that fastai's `show_results` and `Interpretation.plot_top_losses` reach the
    pair functions registered by type dispatch (fastai passes no samples for a batch that shows itself)."""
    def _pre_show_batch(
        self,
        b, # a batch (a, b, label)
        max_n:int=9, # at most this many samples
    ):
        "(decoded batch, None, one `(a, b, label)` per pair)"
        x, y, its = super()._pre_show_batch(b, max_n=max_n)
        if its is None and isinstance(x, SiameseImage) and len(x) > 2:
            its = L((x[0][i], x[1][i], x[2][i]) for i in range(min(len(x[0]), max_n)))
        return x, y, its

class SiameseDataLoaders(DataLoaders):
    "DataLoaders of `SiameseImage` pairs (inputs `a`, `b`; target 1 if same class) over a folder-per-class dataset"
    @classmethod
    @delegates(DataLoaders.from_dblock)
    def from_class_folder(
        cls,
        cf:ClassFolder, # a scanned `ClassFolder`
        valid_pct:float=0.2, # share of classes (or groups) held out, unseen in training
        seed:int|None=None, # seed of the class split and the validation pairs
        valid_classes=None, # explicit validation labels (list) or predicate `f(label)->bool`
        group=None, # split whole groups of classes: `f(label)->group`, e.g. `alphabet_of`
        img_cls=PILImage, # PILImage (RGB) or PILImageBW (1 channel)
        item_tfms=None, # fastai item transforms, e.g. `Resize(28)`
        batch_tfms=None, # fastai batch transforms (augmentation applies to training pairs only)
        bs:int=64, # pairs per batch
        **kwargs,
    ):
        "DataLoaders from an already scanned `ClassFolder`"
        check_int('SiameseDataLoaders', 'bs', bs)
        names = cf.classes
        held = held_out_classes(names, valid_pct, seed, valid_classes, group)
        for what, cls_ in (('training', set(names) - held), ('validation', held)):
            if 0 < len(cls_) < 2 or what == 'training' and not cls_:   # a 'different' pair needs two classes
                raise ValueError(f'SiameseDataLoaders: {len(cls_)} {what} class(es) of the {len(names)} in {cf.root}: pairs need at '
                                 f'least 2 on each side (valid_pct={valid_pct}); give more classes or change valid_pct')
        valid = [i for i, l in enumerate(cf.labels) if names[l] in held]
        vset = set(valid)
        train = [i for i in range(len(cf)) if i not in vset]
        sampler = PairSampler(cf.images, cf.labels, valid, img_cls, seed)
        dblock = DataBlock(blocks=(TransformBlock(),), splitter=lambda _: (train, valid), n_inp=2, dl_type=PairDL,
                           item_tfms=[sampler, *listify(item_tfms), ToTensor()],
                           batch_tfms=[IntToFloatTensor(), *listify(batch_tfms)])
        built = cls.from_dblock(dblock, list(range(len(cf))), bs=bs, **kwargs)
        dls = cls(*built.loaders, path=built.path, device=built.device)   # from_dblock returns plain DataLoaders
        for dl in dls.loaders: dl.dataset.vocab = CategoryMap(list(PAIR_LABELS), sort=False)   # as a classifier's `dl.vocab`
        dls.class_folder, dls.train_classes, dls.valid_classes = cf, sorted(set(names) - held), sorted(held)
        return dls

    @classmethod
    @delegates(from_class_folder)
    def from_folder(
        cls,
        path, # folder of class folders
        min_per_class:int=2, # classes with fewer images are dropped with a warning
        **kwargs,
    ):
        "DataLoaders of pairs from `path`, a folder of class folders (nested ones too: `Alphabet/character01`)"
        return cls.from_class_folder(ClassFolder(path, min_per_class=min_per_class), **kwargs)

    def test_dl(
        self,
        test_items, # pairs `(a, b)` or, with `with_labels`, `(a, b, same)`
        rm_type_tfms=None, # fastai's argument, ignored: pairs always go through the image type transforms
        with_labels:bool=False, # the items carry a third element, 1 for same and 0 for different
        **kwargs,
    ):
        """Loader of new pairs `(a, b)` (paths, PIL images or tensors; `SiameseImage`s), or `(a, b, same)` with
        `with_labels`, through the validation transforms: `learn.get_preds(dl=dls.test_dl(pairs))`"""
        # the pairs are built by the PairSampler item transform: no type transform to infer or remove
        return super().test_dl(list(test_items), rm_type_tfms=0, with_labels=with_labels, **kwargs)

    def image_prep(self) -> dict:
        "The validation-time image preparation as JSON (mode, resize, a registered prep, normalisation): see `ff.data.prep`"
        out = {'mode': find_pair_sampler(self).img_cls._open_args['mode']}
        for t in plain_dl(self.valid).after_item.fs:
            if isinstance(t, Resize): out['resize'] = dict(size=list(t.size), method=str(t.method), pad_mode=str(t.pad_mode))
            elif (c := prep_config(t)) is not None: out[c[0]] = c[1]
            elif not isinstance(t, (PairSampler, ToTensor)) and getattr(t, 'split_idx', None) != 0:
                raise ValueError(f'save_model: validation item transform {type(t).__name__} cannot be saved as JSON '
                                 '(Resize and ff.datasets.InkCenter are); use learn.export for this learner')
        return {**out, **batch_prep(self)}

    @classmethod
    def from_image_prep(
        cls,
        image:dict, # an `image_prep()` record
        bs:int=64, # pairs per batch
    ) -> 'SiameseDataLoaders':
        "Empty pair loaders that prepare new images as the recorded validation loader did"
        img_cls = IMAGE_MODES[image['mode']]
        items = [PairSampler(None, [], [], img_cls)]
        if (prep := prep_from_config(image)) is not None: items.append(prep)
        if 'resize' in image:
            r = image['resize']
            items.append(Resize(tuple(r['size']), method=r['method'], pad_mode=r['pad_mode']))
        dblock = DataBlock(blocks=(TransformBlock(),), splitter=lambda _: ([0], [0]), n_inp=2, dl_type=PairDL,
                           item_tfms=[*items, ToTensor()], batch_tfms=batch_tfms(image))
        # fastai sets pipelines up on a first item: one blank pair, dropped by `new_empty` as `export` drops a dataset
        from PIL import Image
        blank = Image.new(image['mode'], (8, 8))
        built = dblock.dataloaders([(blank, blank, 0)], bs=bs, num_workers=0)   # labelled: the batch types include the target
        return cls(*built.loaders, path=built.path, device=default_device()).new_empty()

    def new_empty(self):
        "Empty loaders for `export`: the `PairSampler` keeps its image class but not the dataset"
        res = super().new_empty()
        for dl in res.loaders:
            fs = [t.without_data() if isinstance(t, PairSampler) else t for t in dl.after_item.fs]
            dl.after_item = Pipeline(fs, split_idx=dl.after_item.split_idx)
        return res
