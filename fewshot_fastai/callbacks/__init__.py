"""Callbacks: N-way evaluation (the protocols themselves are in `ff.evaluate`), threshold fitting, additive margin, extra
recorder columns, and the support `learn.distrib_ctx()` needs."""
from .nway import NWayEval
from .threshold import PairAccuracy, FitThreshold
from .margin import AdditiveMargin
from .columns import Column
from .distrib import DistribSupport, DistribSupportAfter, distrib_callbacks

__all__ = ['NWayEval', 'PairAccuracy',
           'FitThreshold', 'AdditiveMargin', 'Column', 'DistribSupport', 'DistribSupportAfter', 'distrib_callbacks']

_MOVED = {'episode_accuracy', 'naive_episode_accuracy', 'runs_error', 'pairs_eer'}   # evaluation protocols

def __getattr__(name):
    "The protocols moved to `ff.evaluate`; their old place answers for one release, with a warning"
    if name in _MOVED:
        import warnings
        from .. import evaluate
        warnings.warn(f'ff.callbacks.{name} is now ff.evaluate.{name}', DeprecationWarning, stacklevel=2)
        return getattr(evaluate, name)
    raise AttributeError(f"module 'fewshot_fastai.callbacks' has no attribute {name!r}")
