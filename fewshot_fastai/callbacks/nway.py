"""`NWayEval`: N-way K-shot accuracy on a fixed set of episodes, as a column of the fastai progress table.
Every unique image of the episodes is encoded once per evaluation; episodes are then scored by the head
(query x support through `model.compare`), averaging the K shots' scores or comparing with class prototypes."""
import time
import torch
from fastai.callback.core import Callback
from .columns import Column
from ..data.episodes import EpisodeSampler
from ..datasets.naming import alphabet_of, drawer_of
from ..data.items import IndexedView
from ..inference import embed, support_scores, class_scores, image_batch, model_device, classify, one_to_one, similarity
from ..verification.scores import equal_error_rate
from .._distrib import unwrap_model

__all__ = ['episode_accuracy', 'naive_episode_accuracy', 'runs_error', 'pairs_eer', 'NWayEval']

def episode_accuracy(
    learn, # a learner whose model has `encode` and `similarity`
    images, # the images the episodes index
    episodes, # `Episode`s (e.g. from `EpisodeSampler`)
    bs:int=256, # images per encoder batch
    mode:str='mean', # 'mean' or 'prototype' for K > 1 shots
    tta=None, # test-time augmentation: embeddings averaged over `shift_views` by `tta` px, or over the views a callable gives (e.g. `flip_views`); 0: none; None: the learner's own
) -> dict:
    """Accuracy over `episodes` (indices into `images`), encoding each unique image once. K>1 shots are combined
    by `mode`: 'mean' score or 'prototype' (see `support_scores`).
    -> dict(accuracy, encoder_passes, seconds, per_episode accuracies)"""
    t = time.time()
    uniq = sorted({i for e in episodes for i in (*e.support, *e.query)})
    pos = {i: k for k, i in enumerate(uniq)}
    emb = embed(learn, IndexedView(images, uniq), bs, tta=tta)   # read bs at a time: bounded memory on lazy galleries
    correct = total = 0
    per = []
    for e in episodes:
        es, eq = emb[[pos[i] for i in e.support]], emb[[pos[i] for i in e.query]]
        pred = support_scores(learn, eq, es, e.support_labels, e.n_way, mode).argmax(1)
        ok = (pred.cpu() == torch.tensor(e.query_labels)).sum().item()
        correct += ok; total += len(e.query); per.append(ok/len(e.query))
    return dict(accuracy=correct/total, encoder_passes=len(uniq), seconds=time.time() - t, per_episode=per)

def naive_episode_accuracy(
    learn, # a siamese learner
    images, # the images the episodes index
    episodes, # `Episode`s
    bs:int=256, # pairs per batch
) -> dict:
    """The seed-style evaluation `episode_accuracy` replaces: every (query, support) pair goes through the full
    siamese forward, two encoder passes per pair. Same scores; for speed comparisons."""
    t, passes, correct, total = time.time(), 0, 0, 0
    learn.model.eval()
    m = unwrap_model(learn.model)
    dev = model_device(m)
    for e in episodes:
        pairs = [(images[q], images[s]) for q in e.query for s in e.support]
        sims = []
        with torch.no_grad():
            for i in range(0, len(pairs), bs):
                chunk = pairs[i:i+bs]
                a, b = (image_batch(learn.dls, [p[k] for p in chunk]).to(dev) for k in (0, 1))
                sims.append(m.similarity(m.encode(a), m.encode(b)).float())
                passes += 2*len(a)
        sim = torch.cat(sims).view(len(e.query), len(e.support))
        pred = class_scores(sim, e.support_labels, e.n_way).argmax(1)
        correct += (pred.cpu() == torch.tensor(e.query_labels)).sum().item(); total += len(e.query)
    return dict(accuracy=correct/total, encoder_passes=passes, seconds=time.time() - t)

def runs_error(
    learn, # a learner whose model has `encode` and `similarity`
    runs, # Lake-format runs (`ff.datasets.load_runs`)
    tta=None, # test-time augmentation (see `embed`); None: the learner's own
) -> dict:
    """Error of Lake's one-shot protocol over `runs`: each test item is labelled alone with the class image it matches
    best (the headline), and apart, with the one-to-one (Hungarian) assignment of each run's items to its classes.
    -> dict(error, one_to_one_error (percent), trials)"""
    alone, hung = [], []
    for run in runs:
        labels, scores = classify(learn, run.test, dict(enumerate(run.training)), progress=False, tta=tta)
        alone += [l != t for l, t in zip(labels, run.answers)]
        hung += [int(l) != t for l, t in zip(one_to_one(scores), run.answers)]
    n = len(alone)
    if not n: raise ValueError('runs_error: the runs hold no test items')
    return dict(error=round(100*sum(alone)/n, 2), one_to_one_error=round(100*sum(hung)/n, 2), trials=n)

def pairs_eer(
    learn, # a learner whose model has `encode` and `similarity`
    images, # images of several identities
    labels, # the identity of each image
    tta=None, # test-time augmentation (see `embed`); None: the learner's own
) -> dict:
    """Verification over every pair of `images` (each embedded once): the equal error rate of the model's scores.
    -> dict(eer (percent), pairs, same_pairs)"""
    lbl = torch.as_tensor(list(labels))
    if len(lbl) < 2 or len(lbl.unique()) < 2: raise ValueError('pairs_eer: needs images of at least 2 identities')
    e = embed(learn, images, tta=tta)
    i, j = torch.triu_indices(len(e), len(e), 1)
    same = lbl[i] == lbl[j]
    if not same.any(): raise ValueError('pairs_eer: no identity has 2 images, so there is no same pair')
    scores = similarity(learn, e, e)[i, j]
    return dict(eer=round(100*equal_error_rate(scores, same), 2), pairs=len(i), same_pairs=int(same.sum()))

class NWayEval(Callback):
    """Adds `{n_way}way_{k_shot}shot` accuracy on fixed episodes of `images`/`labels` (e.g. a `ClassFolder` of
    unseen classes) to the recorder after each validation. `groups`/`drawers` give within-alphabet,
    cross-drawer episodes (see `EpisodeSampler`); `mode` combines K>1 shots ('mean' score or 'prototype')."""
    order = 10  # before the Recorder builds its columns in before_fit
    def __init__(
        self,
        images, # images to draw episodes from (e.g. `ClassFolder.images` of unseen classes)
        labels, # class of each image
        n_way:int=20, # classes per episode
        k_shot:int=1, # support images per class
        n_query:int=1, # queries per class
        n_episodes:int=100, # number of fixed episodes
        seed:int=0, # seed of the episodes
        groups=None, # label -> group: within-group episodes (e.g. alphabets)
        drawers=None, # drawer of each image: support and queries from different drawers
        names=None, # class names, for error messages
        name=None, # column name (default `{n_way}way_{k_shot}shot`)
        mode:str='mean', # 'mean' or 'prototype' for K > 1 shots
        tta=0, # test-time augmentation: embeddings averaged over `shift_views` by `tta` px, or over the views a callable gives (e.g. `flip_views`); 0: none
    ):
        if mode not in ('mean', 'prototype'): raise ValueError(f"NWayEval: mode {mode!r}: use 'mean' or 'prototype'")
        self.images, self.mode, self.tta = images, mode, tta
        self.episodes = EpisodeSampler(labels, n_way, k_shot, n_query, n_episodes, seed, groups, drawers, names).episodes()
        self.col_name = name or f'{n_way}way_{k_shot}shot'
        self.metric, self.last = Column(self.col_name, self.evaluate), None

    @classmethod
    def from_class_folder(
        cls,
        cf, # a `ClassFolder` of the evaluation classes
        with_alphabets:bool=False, # Omniglot within-alphabet, cross-drawer episodes
        **kwargs,
    ):
        "Episodes over a `ClassFolder`; `with_alphabets`: Omniglot within-alphabet, cross-drawer episodes"
        extra = dict(groups=alphabet_of, drawers=[drawer_of(f) for f in cf.files]) if with_alphabets else {}
        return cls(cf.images, cf.labels, names=cf.classes, **extra, **kwargs)

    def before_fit(self):
        if self.metric not in self.learn.metrics: self.learn.metrics = [*self.learn.metrics, self.metric]
    def after_fit(self):
        self.learn.metrics = [m for m in self.learn.metrics if m is not self.metric]

    def evaluate(self) -> float:
        "Evaluate now (the model is put in eval mode); also stored in `self.last` with passes and seconds"
        was = self.learn.model.training
        try: self.last = episode_accuracy(self.learn, self.images, self.episodes, mode=self.mode, tta=self.tta)
        finally: self.learn.model.train(was)
        return self.last['accuracy']
