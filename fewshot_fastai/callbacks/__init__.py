"""Callbacks (and the evaluation protocols they run): N-way episodes, threshold fitting, additive margin, extra
recorder columns, and the support `learn.distrib_ctx()` needs."""
from .nway import episode_accuracy, naive_episode_accuracy, runs_error, pairs_eer, NWayEval
from .threshold import PairAccuracy, FitThreshold
from .margin import AdditiveMargin
from .columns import Column
from .distrib import DistribSupport, DistribSupportAfter, distrib_callbacks

__all__ = ['episode_accuracy', 'naive_episode_accuracy', 'runs_error', 'pairs_eer', 'NWayEval', 'PairAccuracy',
           'FitThreshold', 'AdditiveMargin', 'Column', 'DistribSupport', 'DistribSupportAfter', 'distrib_callbacks']
