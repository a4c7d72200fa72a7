"""`NWayEval`: N-way K-shot accuracy on a fixed set of episodes, as a column of the fastai progress table.
Every unique image of the episodes is encoded once per evaluation; episodes are then scored by the head
(query x support through `model.compare`), averaging the K shots' scores or comparing with class prototypes."""
from fastai.callback.core import Callback
from .columns import Column
from ..data.episodes import EpisodeSampler
from ..evaluate import episode_accuracy, drawer_groups
from ..methods import check_method
from .._checks import renamed

__all__ = ['NWayEval']

class NWayEval(Callback):
    """Adds `{n_way}way_{k_shot}shot` accuracy on fixed episodes of `images`/`labels` (e.g. a `ClassFolder` of
    unseen classes) to the recorder after each validation. `groups`/`drawers` give within-alphabet,
    cross-drawer episodes (see `EpisodeSampler`); `method` answers the queries ('mean' score over K shots, 'prototype', any of `ff.methods`)."""
    order = 10  # before the Recorder builds its columns in before_fit
    @renamed(mode='method')
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
        method:str='mean', # a registered classifier (`ff.methods`): 'mean', 'prototype', ...
        tta=0, # test-time augmentation, as in `ff.embed`; 0 (default): none, so that the column measures the model being trained; None: the learner's own
    ):
        check_method(method, 'NWayEval')
        self.images, self.method, self.tta = images, method, tta
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
        extra = drawer_groups(cf) if with_alphabets else dict(names=cf.classes)
        return cls(cf.images, cf.labels, **extra, **kwargs)

    def before_fit(self):
        if self.metric not in self.learn.metrics: self.learn.metrics = [*self.learn.metrics, self.metric]
    def after_fit(self):
        self.learn.metrics = [m for m in self.learn.metrics if m is not self.metric]

    def evaluate(self) -> float:
        "Evaluate now (the model is put in eval mode); also stored in `self.last` with passes and seconds"
        was = self.learn.model.training
        try: self.last = episode_accuracy(self.learn, self.images, self.episodes, method=self.method, tta=self.tta)
        finally: self.learn.model.train(was)
        return self.last['accuracy']
