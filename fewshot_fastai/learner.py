"`siamese_learner`: a plain fastai Learner around a SiameseModel"
from fastcore.basics import listify
from fastcore.meta import delegates
from fastai.data.transforms import Normalize
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
import fastai.callback.all  # noqa: F401  patches fit_one_cycle, fine_tune, lr_find and the progress bar onto Learner
from fastai.vision.core import imagenet_stats
from .models.registry import create_encoder, encoder_features, arch_name, wants_imagenet_norm
from .models.heads import HEADS, create_pair_head
from .models.siamese import SiameseModel, siamese_splitter
from .models.protonet import ProtoNet, EnsembleEncoder
from .losses import pair_loss
from .callbacks.threshold import PairAccuracy, FitThreshold
from .callbacks.distrib import distrib_callbacks
from ._distrib import unwrap_model
from ._checks import check_int, check_positive, renamed
from .config import ModelConfig, model_config, fewshot_config_alias
import torch

__all__ = ['siamese_learner', 'SiameseLearner', 'episodic_learner', 'EpisodicLearner', 'classifier_learner', 'ensemble_learner']

def _batch_shape(dls):
    "(channels, height, width) of the images in `dls`"
    return tuple(dls.valid.one_batch()[0].shape[1:])

def _add_imagenet_norm(dls, n_in:int):
    "ImageNet normalisation for a pretrained encoder, unless `dls` already normalise (1 channel: the RGB means)"
    if any(isinstance(t, Normalize) for dl in (dls.train, dls.valid) for t in dl.after_batch.fs): return
    mean, std = imagenet_stats
    if n_in != 3: mean, std = [sum(mean)/3]*n_in, [sum(std)/3]*n_in
    dls.add_tfms([Normalize.from_stats(mean, std)], 'after_batch')

class SiameseLearner(Learner):
    """The Learner `siamese_learner` returns: fastai's verbs work on pairs. `learn.predict((a, b))` gives
    ('same' or 'different', its index, the probabilities); `learn.get_preds(dl=dls.test_dl(pairs))` one row per pair."""
    fewshot_config = property(fewshot_config_alias)
    def get_preds(
        self,
        ds_idx=1, # fastai's: 0 training, 1 validation set
        dl=None, # a loader to predict on, e.g. `dls.test_dl(pairs)`
        *args,
        **kwargs,
    ):
        "fastai's `get_preds`, one row per pair (in order: never reordered, so single-pair batches work)"
        if not getattr(dl if dl is not None else self.dls[ds_idx], 'shuffle', False):
            kwargs['reorder'] = False   # already in order; fastai's reordering indexes a single pair's 0-d result
        res = super().get_preds(ds_idx, dl, *args, **kwargs)
        # fastai's `detuplify` turns the (1,) outputs of one pair into a 0-d tensor: give them back their pair axis
        one = lambda r: r.view(1) if isinstance(r, torch.Tensor) and r.ndim == 0 else r
        return tuple(one(r) for r in res) if isinstance(res, tuple) else one(res)

@delegates(Learner.__init__)
def siamese_learner(dls, # `SiameseDataLoaders`
                    arch='resnet18', # fastai/torchvision arch, timm name, `koch_net` or `conv4`
                    head:str='concat', # 'concat' (fastai tutorial), 'l1' (Koch), 'contrastive' (distance) or 'cosine'
                    loss_func=None, # default: the loss that goes with `head` (`pair_loss`)
                    pretrained:bool=False, # ImageNet weights; False by default as Conv4/Koch have none
                    n_in:int|None=None, # input channels; default: those of `dls`' images
                    margin:float=1.0, # contrastive margin
                    emb_dim:int=128, # embedding size of the contrastive head
                    encoder_kwargs:dict|None=None, # passed to the encoder factory (e.g. koch_net's width)
                    metrics=None, cbs=None, **kwargs) -> Learner:
    """Learner for same/different pairs: `SiameseModel(encoder, head)` with `siamese_splitter`, so `fine_tune`
    trains the head on a frozen encoder first. As in `vision_learner`, a pretrained encoder starts frozen
    and the data get ImageNet normalisation; a random one starts unfrozen."""
    if head not in HEADS: raise ValueError(f"unknown head {head!r}: choose from {list(HEADS)}")
    check_int('siamese_learner', 'emb_dim', emb_dim); check_positive('siamese_learner', 'margin', margin)
    c, h, w = _batch_shape(dls)
    n_in = c if n_in is None else n_in
    encoder = create_encoder(arch, n_in=n_in, pretrained=pretrained, **(encoder_kwargs or {}))
    nf, maps = encoder_features(encoder, n_in, (h, w))
    head_mod = create_pair_head(head, nf, maps, emb_dim)
    loss_func = loss_func if loss_func is not None else pair_loss(head, margin)
    if pretrained and wants_imagenet_norm(arch): _add_imagenet_norm(dls, n_in)
    cbs = listify(cbs) + ([FitThreshold()] if head == 'contrastive' else []) + distrib_callbacks()
    metrics = listify(metrics) if metrics is not None else [PairAccuracy(loss_func)]
    learn = SiameseLearner(dls, SiameseModel(encoder, head_mod), loss_func=loss_func, splitter=siamese_splitter,
                    metrics=metrics, cbs=cbs, **kwargs)
    learn.model_config = ModelConfig(kind='siamese', arch=arch_name(arch), head=head, emb_dim=emb_dim, margin=margin, n_in=n_in,
                                     encoder_kwargs=encoder_kwargs or {}, size=[h, w])   # what `ff.save_model` records
    if pretrained: learn.freeze()
    return learn

class EpisodicLearner(Learner):
    """The Learner `episodic_learner` returns. Its `get_preds` gives one row per query of the validation episodes,
    `(queries, n_way)` (fastai's reordering assumes one prediction per item; an item here is a whole episode), and
    its `predict` answers a query against a support set you pass."""
    fewshot_config = property(fewshot_config_alias)
    def get_preds(
        self,
        *args,
        **kwargs,
    ):
        "fastai's `get_preds` without reordering: (queries, n_way) probabilities in episode order"
        kwargs['reorder'] = False
        return super().get_preds(*args, **kwargs)

    @renamed(mode='method')
    def predict(
        self,
        item, # one query image: path, PIL image or tensor
        support:dict|None=None, # {label: images}, the classes to choose from
        method:str='mean', # a registered classifier (`ff.methods`), as in `ff.classify` (its default too): 'mean' score over the K shots, 'prototype', ...
    ):
        """(label, index, probabilities over the support classes) for one query image, against `support`
        ({label: images}): the answer `ff.classify` gives, and the softmax of its scores"""
        if support is None:
            raise ValueError('an episodic learner answers against a support set: learn.predict(query, support={label: '
                             '[images]}), or ff.classify(learn, queries, support) for many queries')
        from .inference import classify
        labels, scores = classify(self, [item], support, progress=False, method=method)
        sc = scores[0].as_subclass(torch.Tensor)
        return labels[0], sc.argmax(), sc.softmax(-1)

@delegates(Learner.__init__)
def episodic_learner(
    dls, # `EpisodeDataLoaders`
    arch='conv4', # as in `siamese_learner`, or an encoder module (e.g. a SiameseModel's `.encoder`)
    pretrained:bool=False, # ImageNet weights for the encoder
    n_in:int|None=None, # input channels; default: those of `dls`' images
    encoder_kwargs:dict|None=None, # passed to the encoder factory
    pool:str='avg', # 'avg' pools the encoder's maps; 'flatten' keeps their layout
    metrics=accuracy, # fastai metrics, on the validation episodes' queries
    model_kwargs:dict|None=None, # more `ProtoNet` arguments (e.g. `normalize`, `n_classes`)
    **kwargs,
) -> Learner:
    """Learner that trains a prototypical network on episodes (cross-entropy over the episode's classes);
    `fit_one_cycle`, `lr_find` and callbacks such as `NWayEval` work as usual."""
    import torch.nn as nn
    if isinstance(arch, nn.Module): encoder = arch
    else:
        n_in = dls.one_batch()[0].shape[1] if n_in is None else n_in
        encoder = create_encoder(arch, n_in=n_in, pretrained=pretrained, **(encoder_kwargs or {}))
        if pretrained and wants_imagenet_norm(arch): _add_imagenet_norm(dls, n_in)
    model = ProtoNet(encoder, pool, **(model_kwargs or {}))
    cbs = listify(kwargs.pop('cbs', None)) + distrib_callbacks()
    learn = EpisodicLearner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=metrics, cbs=cbs, **kwargs)
    learn.model_config = ModelConfig(kind='episodic', arch=None if isinstance(arch, nn.Module) else arch_name(arch), pool=pool,
                                     n_in=n_in, encoder_kwargs=encoder_kwargs or {}, size=list(dls.size),
                                     model_kwargs=model_kwargs or None)
    return learn

@delegates(Learner.__init__)
def classifier_learner(
    dls, # `ClassifierDataLoaders`
    arch='conv4', # as in `episodic_learner`
    head:str='cosine', # classifier over the training classes: 'cosine' (Baseline++) or 'linear'
    normalize:bool=True, # compare L2-normalised embeddings in episodes (nearest prototype by cosine)
    pretrained:bool=False, # ImageNet weights for the encoder
    n_in:int|None=None, # input channels; default: those of `dls`' images
    encoder_kwargs:dict|None=None, # passed to the encoder factory
    pool:str='avg', # 'avg' pools the encoder's maps; 'flatten' keeps their layout
    metrics=accuracy, # fastai metrics; on the validation episodes they measure N-way accuracy on held-out classes
    **kwargs,
) -> Learner:
    """Few-shot learning by classifier pre-training: an `EpisodicLearner` whose `ProtoNet` also has a classifier over
    `dls.c` training classes. Training batches are classified (cross-entropy), validation episodes of held-out
    classes are answered by nearest prototype, and so are `classify`, `episode_accuracy`, `SupportSet`. For episodic
    fine-tuning afterwards, give it episodes: `learn.dls = dls.episodes(...)`, then `fit` again."""
    import torch.nn as nn
    if not hasattr(dls, 'c'): raise TypeError('classifier_learner: dls must be ClassifierDataLoaders (they give dls.c classes)')
    n_in = dls.one_batch()[0].shape[1] if n_in is None else n_in
    encoder = arch if isinstance(arch, nn.Module) else create_encoder(arch, n_in=n_in, pretrained=pretrained, **(encoder_kwargs or {}))
    if pretrained and not isinstance(arch, nn.Module) and wants_imagenet_norm(arch): _add_imagenet_norm(dls, n_in)
    probe = ProtoNet(encoder, pool)
    was = encoder.training
    encoder.eval()
    with torch.no_grad(): n_features = probe.features(torch.zeros(2, n_in, *dls.size, device=next(encoder.parameters()).device)).shape[1]
    encoder.train(was)
    mk = dict(normalize=normalize, n_classes=dls.c, classifier=head, n_features=n_features)
    learn = episodic_learner(dls, encoder, n_in=n_in, pool=pool, metrics=metrics, model_kwargs=mk, **kwargs)
    # the encoder was made here from a name: record it, so that `save_model` can rebuild it
    if not isinstance(arch, nn.Module): learn.model_config.update(arch=arch_name(arch), encoder_kwargs=encoder_kwargs or {})
    return learn

def ensemble_learner(
    learners, # trained episodic / classifier learners (or `ff.load_model` ones) that take the same images
    dls=None, # the DataLoaders of the result; default: those of the first learner
) -> 'EpisodicLearner':
    """An `EpisodicLearner` whose embeddings are those of all `learners` side by side (`EnsembleEncoder`): a query's
    score for a class is the sum of the members' prototype scores (-d^2; see `EnsembleEncoder`). `classify`, `episode_accuracy`, `SupportSet`,
    `embed` and TTA work on it unchanged. Members trained with different seeds for a share of a budget each can beat
    one model trained for all of it (see the README's results); the members are not copied, so keep them unchanged."""
    learners = list(learners)
    if not learners: raise ValueError('ensemble_learner: no learners')
    models = [unwrap_model(l.model) for l in learners]
    bad = [i for i, m in enumerate(models) if not isinstance(m, ProtoNet)]
    if bad: raise TypeError(f'ensemble_learner: learners {bad} are not episodic/classifier learners (their model is no ProtoNet)')
    cfgs = [model_config(l) for l in learners]
    for key in ('n_in', 'size'):
        vals = [getattr(c, key, None) for c in cfgs]
        if any(v is not None and v != vals[0] for v in vals):
            raise ValueError(f'ensemble_learner: the learners take different images ({key}: {vals}); each member must see the same input')
    dls = learners[0].dls if dls is None else dls
    device = next(models[0].parameters()).device
    model = ProtoNet(EnsembleEncoder(models).to(device), pool='flatten')
    learn = EpisodicLearner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=[])
    learn.model_config = ModelConfig(kind='episodic', arch=None, pool='flatten', n_in=getattr(cfgs[0], 'n_in', None),
                                     size=getattr(cfgs[0], 'size', None), members=len(models))
    return learn
