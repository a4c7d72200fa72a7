"""Callbacks: N-way evaluation (the protocols themselves are in `ff.evaluate`), threshold fitting, additive margin, extra
recorder columns, and the support `learn.distrib_ctx()` needs."""
from .._checks import moved_to
from .nway import NWayEval
from .threshold import PairAccuracy, FitThreshold
from .margin import AdditiveMargin
from .columns import Column
from .distrib import DistribSupport, DistribSupportAfter, distrib_callbacks

__all__ = ['NWayEval', 'PairAccuracy',
           'FitThreshold', 'AdditiveMargin', 'Column', 'DistribSupport', 'DistribSupportAfter', 'distrib_callbacks']

# the evaluation protocols moved to ff.evaluate: their old place answers for one release, with a warning
__getattr__ = moved_to(__name__, 'fewshot_fastai.evaluate', {'episode_accuracy', 'naive_episode_accuracy', 'runs_error', 'pairs_eer'})
