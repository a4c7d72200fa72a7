"Classifier pre-training loaders: every training image once per epoch with its class label, held-out episodes to validate"
import copy, inspect
import random
import torch
from fastai.data.load import DataLoader
from fastai.data.transforms import IntToFloatTensor
from fastai.torch_core import TensorCategory, rank_distrib
from fastai.vision.core import PILImage, TensorImage
from fastcore.basics import listify
from fastcore.meta import delegates
from fasttransform import Pipeline
from .._checks import check_int
from .tensors import check_rotations
from .episode_loaders import _split, EpisodeDataLoaders

# arguments of `EpisodeDataLoaders.from_class_folder` that classifier batches do not take (or take with another default)
_NOT_SHARED = ['n_way', 'episodes_per_epoch', 'group', 'valid_n_way', 'num_workers']

__all__ = ['ClassBatches', 'ClassifierDataLoaders']

class ClassBatches:
    """Shuffled batches `(images, no support labels, class labels)` over all training images: item `i` is batch `i` of
    the epoch. The empty middle tensor tells `ProtoNet` to classify every image over the training classes, so one
    model and one Learner serve classifier pre-training and episodes. Each epoch (`reshuffle`) draws a permutation
    from the seeded `random` stream offset by the process rank, as `EpisodeDataset` does."""
    def __init__(
        self,
        x, # training images, (M,C,H,W) uint8 tensor or `LazyImageTensor`
        labels, # class index (0..n_classes-1) of each image
        bs:int=128, # images per batch (the last partial batch is dropped)
    ):
        check_int('ClassBatches', 'bs', bs)
        if len(labels) != len(x): raise ValueError(f'ClassBatches: {len(labels)} labels for {len(x)} images')
        if len(x) < bs: raise ValueError(f'ClassBatches: bs={bs} is larger than the {len(x)} training images')
        self.x, self.labels, self.bs = x, torch.as_tensor(labels, dtype=torch.long), bs
        self.reshuffle()
    def __len__(self): return len(self.labels)//self.bs
    def reshuffle(self):
        "A new order of the images for the next epoch"
        rng = random.Random(random.getrandbits(64) + (rank_distrib() << 64))
        order = list(range(len(self.labels)))
        rng.shuffle(order)
        self.order = torch.tensor(order)
    def new_empty(self):
        "What `Learner.export` keeps: no images"
        res = copy.copy(self)
        res.x, res.labels, res.order = self.x[:0], self.labels[:0], self.order[:0]
        return res
    def __getitem__(self, i):
        idx = self.order[i*self.bs:(i + 1)*self.bs]
        return TensorImage(self.x[idx]), TensorCategory(torch.zeros(0, dtype=torch.long)), TensorCategory(self.labels[idx])

class _ClassBatchDL(DataLoader):
    "Batches of `ClassBatches`, in a new order each epoch (reshuffled in the main process, before workers copy it)"
    def before_iter(self):
        super().before_iter()
        if len(self.dataset): self.dataset.reshuffle()

class ClassifierDataLoaders(EpisodeDataLoaders):
    """Classifier pre-training for few-shot learning (the "strong baseline" of Chen et al. 2019 and Tian et al. 2020):
    the training set is every image of the training classes (rotations as extra classes), in shuffled batches with
    their class labels; the validation set is the fixed few-shot episodes of held-out classes of
    `EpisodeDataLoaders`, so the accuracy column is the N-way accuracy on new classes. `dls.c` is the number of
    training classes. `episodes()` gives episode loaders over the same split for episodic fine-tuning."""
    @classmethod
    @delegates(EpisodeDataLoaders.from_class_folder, but=_NOT_SHARED)
    def from_class_folder(
        cls,
        cf, # a scanned `ClassFolder`
        bs:int=128, # images per training batch
        valid_n_way:int=20, # classes per validation episode (capped at the classes there are)
        num_workers:int=0, # worker processes preparing training batches
        **kwargs, # the split, image and validation-episode arguments of `EpisodeDataLoaders.from_class_folder`, same names and defaults
    ):
        """Classifier batches of the training classes, N-way episodes of the held-out ones (split as in
        `EpisodeDataLoaders.from_class_folder`, whose arguments of the same name it takes)"""
        shared = {k: p.default for k, p in inspect.signature(EpisodeDataLoaders.from_class_folder).parameters.items()
                  if k not in ('cf', *_NOT_SHARED)}
        if (unknown := sorted(set(kwargs) - set(shared))):
            raise TypeError(f'ClassifierDataLoaders.from_class_folder: unexpected argument {unknown[0]!r}')
        o = shared | kwargs
        size, valid_pct, seed, k_shot, n_query, valid_episodes, rotations, img_cls, batch_tfms, valid_classes, device, prep = (
            o[k] for k in ('size', 'valid_pct', 'seed', 'k_shot', 'n_query', 'valid_episodes', 'rotations', 'img_cls',
                           'batch_tfms', 'valid_classes', 'device', 'prep'))
        check_rotations('ClassifierDataLoaders', rotations)
        held, xt, yt, xv, yv, names = _split(cf, size, img_cls, rotations, valid_pct, seed, valid_classes, prep)
        classes = sorted(set(yt))
        index = {c: i for i, c in enumerate(classes)}
        train = ClassBatches(xt, [index[l] for l in yt], bs)
        tfms = Pipeline([IntToFloatTensor(), *listify(batch_tfms)], split_idx=0)   # training batches (see above)
        n_way = min(valid_n_way, len(held)) if held else valid_n_way
        res = cls._make(cf, held, _ClassBatchDL(train, bs=None, num_workers=num_workers, after_batch=tfms),
                        xv, yv, n_way, k_shot, n_query, valid_episodes, seed, img_cls, device, prep)
        res.c, res.vocab = len(classes), [names[c] for c in classes]
        res._episode_kw = dict(cf=cf, size=size, valid_pct=valid_pct, seed=seed, k_shot=k_shot, valid_episodes=valid_episodes,
                               rotations=rotations, img_cls=img_cls, batch_tfms=batch_tfms, valid_classes=valid_classes,
                               device=device, valid_n_way=n_way, prep=prep)
        return res

    def episodes(
        self,
        n_way:int=20, # classes per training episode
        n_query:int=5, # query images per class
        episodes_per_epoch:int=100, # training episodes per epoch
        **kwargs, # other `EpisodeDataLoaders.from_class_folder` arguments (e.g. `group`)
    ) -> EpisodeDataLoaders:
        "Episode loaders over the same classes, images and split, for episodic fine-tuning of a pre-trained model"
        kw = {**self._episode_kw, 'n_query': n_query, **kwargs}
        return EpisodeDataLoaders.from_class_folder(kw.pop('cf'), n_way=n_way, episodes_per_epoch=episodes_per_epoch, **kw)

    def new_empty(self):
        "Empty loaders that still know how to prepare new images (for `export`/`load_learner`)"
        res = super().new_empty()
        res.c, res.vocab = self.c, self.vocab
        return res
