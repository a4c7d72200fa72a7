"Pair accuracy under the loss's own decision rule, and the validation-chosen distance threshold"
import torch
from fastai.callback.core import Callback
from fastai.learner import Metric
from ..verification.scores import best_threshold, fit_logistic

__all__ = ['PairAccuracy', 'FitThreshold']

class PairAccuracy(Metric):
    """Accuracy of same/different predictions, `loss_func.decodes(loss_func.activation(out))` as in fastai. Outputs are kept until the end of
    validation, so a threshold chosen on this validation pass (`FitThreshold`) is the one applied."""
    def __init__(
        self,
        loss_func, # the learner's loss, whose `activation`/`decodes` turn outputs into decisions
    ): self.loss_func = loss_func
    def reset(
        self,
    ):
        "Forget the outputs of the previous validation"
        self.outs, self.targs = [], []
    def accumulate(
        self,
        learn, # the learner, after a validation batch
    ):
        "Keep the batch's outputs and targets (gathered across processes)"
        # learn.to_detach gathers across processes under DDP (fastai's DistributedDL), as fastai's own metrics do
        self.outs.append(learn.to_detach(learn.pred).float()); self.targs.append(learn.to_detach(learn.y).view(-1))
    @property
    def value(self):
        if not self.outs: return None
        lf = self.loss_func
        pred = lf.decodes(lf.activation(torch.cat(self.outs))).view(-1)
        return (pred == torch.cat(self.targs).long()).float().mean().item()
    @property
    def name(self): return 'accuracy'

class FitThreshold(Callback):
    """Fits the contrastive loss's decision threshold and probability calibration (`fit_logistic`) on the
    learner's own validation pairs, after each validation that follows a training epoch in `fit`. It leaves them
    alone in `get_preds`, `validate` and any other evaluation, so a test set never tunes them."""
    order = 40  # before the Recorder (50) computes the epoch's metrics
    def before_fit(self): self._after_train = False
    def after_train(self): self._after_train = True
    def before_validate(self): self.dists, self.sames = [], []
    def after_batch(self):
        if self.training or not getattr(self, '_after_train', False) or self.learn.y is None: return
        # gathered across processes under DDP: every rank fits the same threshold on all the validation pairs
        self.dists.append(self.learn.to_detach(self.learn.pred).float()); self.sames.append(self.learn.to_detach(self.learn.y).view(-1))
    def after_validate(self):
        fit_now, self._after_train = getattr(self, '_after_train', False), False
        if not (fit_now and self.dists and self.learn.dl is self.learn.dls.valid): return
        d, y = torch.cat(self.dists), torch.cat(self.sames)
        lf = self.learn.loss_func
        try: lf.thresh, lf.scale = fit_logistic(d, y)
        except ValueError:   # one-class or unordered pairs early in training: the accuracy-best threshold only
            if y.min() != y.max(): lf.thresh = best_threshold(d, y)
            return
        lf.calibrated = True
