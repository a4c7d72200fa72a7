"""DataLoaders of whole episodes for episodic (e.g. prototypical) training in the fastai loop. Each batch is one
episode `(x, support_labels, query_labels)`: `x` stacks the N*K support then the N*Q query images, so the
fastai batch transforms (augmentation) act on all of them at once; inputs are `(x, support_labels)`."""
import random
import torch
from fastai.data.core import DataLoaders, show_batch, show_results
from fastai.data.load import DataLoader
from fastai.data.transforms import IntToFloatTensor
from fastai.torch_core import TensorCategory, default_device, rank_distrib
from fastai.vision.core import PILImage, TensorImage
from fastcore.basics import listify
from fasttransform import Pipeline
from .episodes import EpisodeSampler
from .items import LazyImages
from .images import to_image
from .._checks import check_int
from .split import held_out_classes
from .show import EpisodeImages, QueryRef, query_samples
from .prep import prep_config, prep_from_config, batch_prep, batch_tfms
from .pairs import IMAGE_MODES
from .._distrib import plain_dl
from .tensors import image_tensor, LazyImageTensor, _view_name, check_rotations, _rotated

__all__ = ['EpisodeDataset', 'EpisodeDL', 'EpisodeDataLoaders']

class EpisodeDataset:
    "Episodes over an image tensor: fresh random ones per access (`fixed=False`) or a fixed list"
    def __init__(
        self,
        x:torch.Tensor, # the images, (N,C,H,W) (or a `LazyImageTensor`)
        sampler:EpisodeSampler, # draws the episodes
        fixed:bool, # one fixed list of episodes (validation) rather than fresh ones per access
    ):
        self.x, self.sampler = x, sampler
        self.episodes = sampler.episodes() if fixed else None
    def __len__(self): return len(self.sampler) if self.sampler is not None else 0
    @classmethod
    def empty(
        cls,
        x:torch.Tensor, # the images
    ) -> 'EpisodeDataset':
        "A dataset without images or episodes over the empty image tensor `x` (0,C,H,W): it only prepares new images"
        res = cls(x, None, fixed=False)
        res.episodes = []
        return res
    def new_empty(self):
        "What `Learner.export` keeps: no images, no episodes"
        return self.empty(self.x[:0])
    def __getitem__(self, i):
        if self.episodes is not None: e = self.episodes[i]
        else:
            # a fresh episode from the seeded `random` stream, offset by the process rank: under DDP each rank draws
            # different episodes (with one stream, every rank would train on the same ones), reproducibly per seed
            e = self.sampler._episode(random.Random(random.getrandbits(64) + (rank_distrib() << 64)))
        self.last = e   # the episode of the latest batch, for its class names in show_batch / show_results
        return (TensorImage(self.x[e.support + e.query]), TensorCategory(e.support_labels), TensorCategory(e.query_labels))

    def class_names(
        self,
        e, # an `Episode`
    ) -> list[str]:
        "Names of the episode's classes (the sampler's `names`, else the dataset labels)"
        names = getattr(self.sampler, 'names', None) or getattr(self, 'names', None)
        return [str(names[c]) if names is not None else f'class {c}' for c in e.classes]

class EpisodeDL(DataLoader):
    """A fastai DataLoader of whole episodes. `show_batch` / `show_results` draw through fastai's type dispatch
    (`EpisodeImages`); with fixed episodes (validation), `items` are the queries, which fastai's
    `Interpretation.plot_top_losses` indexes and shows (`EpisodeQueries`)."""
    def _batch_and_names(self, b):
        if b is None: b = self.one_batch()
        e = getattr(self.dataset, 'last', None)
        x, sy, qy = b
        names = self.dataset.class_names(e) if e is not None and len(e.support_labels) == len(sy) else \
                [f'class {k}' for k in range(int(sy.max()) + 1)]
        return x, sy.tolist(), qy.tolist(), names

    def show_batch(
        self,
        b=None, # a batch (x, support labels, query labels); default: one drawn now
        max_n:int=10, # at most this many queries
        figsize_per:float=1.4, # inches per image
        **kwargs,
    ):
        "One episode: the support images (one row, titled with their class names), then up to `max_n` queries, labelled"
        x, sy, qy, names = self._batch_and_names(b)
        return show_batch(EpisodeImages(x), (sy, qy), names, max_n=max_n, figsize_per=figsize_per, **kwargs)

    def show_results(
        self,
        b, # a batch (x, support labels, query labels)
        out, # the decoded predictions: one class index per query
        max_n:int=9, # at most this many queries
        figsize_per:float=1.6, # inches per image
        **kwargs,
    ):
        """Each query beside the support image of the class the model chose, titled green when right and red when
        wrong (`out`: decoded predictions, one class index per query)"""
        x, sy, qy, names = self._batch_and_names(b)
        pred = torch.as_tensor(out[0] if isinstance(out, (tuple, list)) else out).view(-1).tolist()
        return show_results(EpisodeImages(x), (sy, qy), names, pred, max_n=max_n, figsize_per=figsize_per, **kwargs)

    @property
    def items(self) -> list:
        "The queries of the fixed episodes as `QueryRef`s, in the order of `get_preds`' rows"
        eps = getattr(self.dataset, 'episodes', None)
        if eps is None: raise ValueError('these episodes are drawn afresh at each access: interpret the validation loader (ds_idx=1)')
        return [QueryRef(self.dataset, i, j) for i, e in enumerate(eps) for j in range(len(e.query))]

    def _pre_show_batch(
        self,
        b, # (images of one-query episodes, their support labels, one class per query), as `test_dl` batches concatenate
        max_n:int=9, # at most this many rows
    ):
        "What fastai's `Interpretation.plot_top_losses` shows: `(EpisodeQueries, classes, samples)`"
        return query_samples(b, getattr(self.dataset, 'shown', None), max_n)

class _QueryEpisodes:
    "Dataset of one-query episodes: item `i` is the support set of `refs[i]`'s episode and that one query"
    def __init__(self, refs): self.refs = refs
    def __len__(self): return len(self.refs)
    def __getitem__(self, i):
        r = self.refs[i]; e = r.episode
        return (TensorImage(r.dataset.x[e.support + [e.query[r.j]]]), TensorCategory(e.support_labels),
                TensorCategory([e.query_labels[r.j]]))

def _split(cf, size, img_cls, rotations, valid_pct, seed, valid_classes, prep=None):
    """(held-out class names, training images, their labels, validation images, their labels, names of the training
    labels) of `cf`: training images with their rotations as new classes (label `l*rotations + k`)"""
    # valid_pct=0 without valid_classes: every class trains and there are no validation episodes, as with fastai's
    # RandomSplitter(0) (held_out_classes refuses an empty split: a pair learner cannot validate without held-out classes)
    held = set() if valid_pct == 0 and valid_classes is None else held_out_classes(cf.classes, valid_pct, seed, valid_classes)
    tr = [i for i, l in enumerate(cf.labels) if cf.classes[l] not in held]
    va = [i for i, l in enumerate(cf.labels) if cf.classes[l] in held]
    if isinstance(cf.images, LazyImages):   # decoded and resized per episode, in the DataLoader's workers
        # validation never sees re-drawn images (`StrokeImages.originals`)
        xv = LazyImageTensor(getattr(cf.images, 'originals', cf.images), size, img_cls, base=va, prep=prep)
        xt = LazyImageTensor(cf.images, size, img_cls, rotations, base=tr, prep=prep)
        yt = [cf.labels[i]*rotations + k for k in range(rotations) for i in tr]
    else:
        x = image_tensor(cf.images, size, img_cls, prep)
        xt, yt = _rotated(x[tr], [cf.labels[i] for i in tr], rotations)
        xv = x[va]
    names = {l*rotations + k: f'{cf.classes[l]}@{_view_name(k)}' for l in range(len(cf.classes)) for k in range(rotations)}
    return held, xt, yt, xv, [cf.labels[i] for i in va], names

class EpisodeDataLoaders(DataLoaders):
    "Train on random episodes of the training classes, validate on fixed episodes of the held-out classes"
    @classmethod
    def from_class_folder(
        cls,
        cf, # a scanned `ClassFolder`
        size=28, # images are resized to `size` x `size`
        valid_pct:float=0.2, # share of classes (or groups) held out for validation (0: train on all, no validation episodes)
        seed:int=0, # seed of the split and of the fixed validation episodes
        n_way:int=20, # classes per training episode
        k_shot:int=1, # support images per class
        n_query:int=5, # query images per class
        episodes_per_epoch:int=100, # training episodes per epoch
        valid_episodes:int=50, # fixed validation episodes
        valid_n_way:int|None=None, # classes per validation episode (default: `n_way`, capped at the classes there are)
        rotations:int=1, # 1, or 4 to add the rotations by 90/180/270 degrees as new training classes (8: and their mirror images)
        img_cls=PILImage, # `PILImage` or `PILImageBW`
        batch_tfms=None, # fastai batch transforms for training episodes
        valid_classes=None, # explicit validation labels (list) or a predicate
        group=None, # split whole groups of classes, e.g. `alphabet_of`
        device=None, # where batches go (default: fastai's `default_device()`)
        num_workers:int=0, # worker processes preparing training episodes (e.g. 1 to draw `StrokeImages` beside training)
        prep=None, # applied to every decoded image before resizing, here and in `image_batch` (e.g. `ff.datasets.InkCenter()`)
    ):
        """Episode DataLoaders over a `ClassFolder`; classes are split as in `SiameseDataLoaders` (`valid_classes`:
        explicit list or predicate). `rotations=4` adds the 90/180/270-degree rotations of training classes as
        new classes (`rotations=8`: and their mirror images). `group` (label -> group, e.g. `alphabet_of`) makes every training episode draw its classes
        from one group (and one rotation): harder negatives, like Lake's within-alphabet test episodes."""
        for arg, v in [('episodes_per_epoch', episodes_per_epoch), ('valid_episodes', valid_episodes)]:
            check_int('EpisodeDataLoaders', arg, v)
        check_rotations('EpisodeDataLoaders', rotations)
        for v in ((size,) if isinstance(size, int) else tuple(size)): check_int('EpisodeDataLoaders', 'size', v)
        held, xt, yt, xv, yv, names = _split(cf, size, img_cls, rotations, valid_pct, seed, valid_classes, prep)
        groups = None if group is None else (lambda n: (group(n.rsplit('@', 1)[0]), n.rsplit('@', 1)[1]))
        train = EpisodeDataset(xt, EpisodeSampler(yt, n_way, k_shot, n_query, episodes_per_epoch, groups=groups, names=names),
                               fixed=False)
        # split_idx 0: the training pipeline. Without it (a plain DataLoader, unlike TfmdDL, does not set one) fastai skips
        # every transform marked training-only (split_idx 0: Brightness, Contrast, ff.data.Elastic); its affine ones ran anyway
        tfms = Pipeline([IntToFloatTensor(), *listify(batch_tfms)], split_idx=0)
        return cls._make(cf, held, EpisodeDL(train, bs=None, num_workers=num_workers, after_batch=tfms),
                         xv, yv, valid_n_way or n_way, k_shot, n_query, valid_episodes, seed, img_cls, device, prep)

    @classmethod
    def _make(cls, cf, held, train_dl, xv, yv, n_way, k_shot, n_query, valid_episodes, seed, img_cls, device, prep=None):
        "Loaders of `train_dl` and fixed validation episodes of the held-out images `xv` (labels `yv`)"
        valid = EpisodeDataset(xv, EpisodeSampler(yv, n_way, k_shot, n_query, valid_episodes, seed, names=cf.classes), fixed=True) \
            if held else EpisodeDataset.empty(xv)   # valid_pct=0: an empty validation set (fastai then reports no valid loss)
        dls = cls(train_dl, EpisodeDL(valid, bs=None, after_batch=Pipeline([IntToFloatTensor()], split_idx=1)),
                  device=default_device() if device is None else device)   # as DataBlock's loaders: the GPU when there is one
        dls.n_inp, dls.img_cls, dls.size, dls.prep = 2, img_cls, xv.shape[-2:], prep
        dls.train_classes, dls.valid_classes = sorted(set(cf.classes) - held), sorted(held)
        return dls

    def image_prep(self) -> dict:
        "The validation-time image preparation as JSON (mode, a registered prep, normalisation): see `ff.data.prep`"
        out = {'mode': self.img_cls._open_args['mode'], 'size': list(self.size)}
        prep = getattr(self, 'prep', None)
        if (c := prep_config(prep)) is not None: out[c[0]] = c[1]
        elif prep is not None:
            raise ValueError(f"save_model: the loaders' prep {prep!r} cannot be saved as JSON (ff.datasets.InkCenter can); "
                             'use learn.export for this learner')
        return {**out, **batch_prep(self)}

    @classmethod
    def from_image_prep(
        cls,
        image:dict, # an `image_prep()` record
    ) -> 'EpisodeDataLoaders':
        "Empty episode loaders that prepare new images as the recorded validation loader did"
        size = tuple(image['size'])
        ds = EpisodeDataset.empty(torch.empty(0, 1 if image['mode'] == 'L' else 3, *size, dtype=torch.uint8))
        dls = cls(*(EpisodeDL(ds, bs=None, after_batch=Pipeline(batch_tfms(image))) for _ in range(2)), device=default_device())
        dls.n_inp, dls.img_cls, dls.size, dls.prep = 2, IMAGE_MODES[image['mode']], torch.Size(size), prep_from_config(image)
        return dls

    def test_dl(
        self,
        test_items, # `QueryRef`s of fixed episodes (`dls.valid.items`), as fastai's `Interpretation` passes them
        rm_type_tfms=None, # fastai's argument, unused
        with_labels:bool=True, # fastai's argument: the queries always keep their labels
        **kwargs,
    ):
        """A loader of one-query episodes (each query with its episode's support set), in the order of `test_items`:
        what fastai's `Interpretation` runs to show chosen queries. New images go through `ff.classify` or
        `dls.image_batch` instead."""
        refs = list(test_items)
        if not all(isinstance(r, QueryRef) for r in refs):
            raise ValueError('EpisodeDataLoaders.test_dl takes the queries of dls.valid.items; for new images use '
                             'ff.classify(learn, images, support) or dls.image_batch(images)')
        # the class names of the rows the display of these queries will show (`EpisodeDL._pre_show_batch` reads them)
        for r in refs: r.dataset.shown = refs
        return EpisodeDL(_QueryEpisodes(refs), bs=None, after_batch=plain_dl(self.valid).after_batch, device=self.device)

    def new_empty(self):
        "Empty loaders that still know how to prepare new images (for `export`/`load_learner`)"
        res = super().new_empty()
        res.n_inp, res.img_cls, res.size, res.prep = self.n_inp, self.img_cls, self.size, getattr(self, 'prep', None)
        return res

    def image_batch(
        self,
        images, # images: paths, PIL images or tensors
    ) -> torch.Tensor:
        "A batch (B,C,H,W) of new images (paths, PIL, tensors), through `prep`, resized and through the validation batch transforms"
        x = image_tensor([to_image(i, self.img_cls) for i in images], tuple(self.size), self.img_cls, getattr(self, 'prep', None))
        return plain_dl(self.valid).after_batch(TensorImage(x.to(self.device)))
