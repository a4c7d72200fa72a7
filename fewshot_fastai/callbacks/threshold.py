"Pair accuracy under the loss's own decision rule, and the validation-chosen distance threshold"
import torch
from fastai.callback.core import Callback
from fastai.learner import Metric

__all__ = ['PairAccuracy', 'best_threshold', 'equal_error_rate', 'FitThreshold']

class PairAccuracy(Metric):
    """Accuracy of same/different predictions, `loss_func.decodes(loss_func.activation(out))` as in fastai. Outputs are kept until the end of
    validation, so a threshold chosen on this validation pass (`FitThreshold`) is the one applied."""
    def __init__(self, loss_func): self.loss_func = loss_func
    def reset(self): self.outs, self.targs = [], []
    def accumulate(self, learn):
        self.outs.append(learn.pred.detach().float().cpu()); self.targs.append(learn.y.detach().cpu().view(-1))
    @property
    def value(self):
        if not self.outs: return None
        lf = self.loss_func
        pred = lf.decodes(lf.activation(torch.cat(self.outs))).view(-1)
        return (pred == torch.cat(self.targs).long()).float().mean().item()
    @property
    def name(self): return 'accuracy'

def best_threshold(dist:torch.Tensor, same:torch.Tensor) -> float:
    "Threshold `t` maximising the accuracy of `dist < t` for labels `same`; midway between neighbouring distances"
    d, order = dist.view(-1).float().sort()
    y = same.view(-1)[order].float()
    # predicting 'same' for the k smallest distances: correct = same among them + different among the rest
    correct = torch.cat([y.new_zeros(1), y.cumsum(0)]) + (1 - y).sum() - torch.cat([y.new_zeros(1), (1 - y).cumsum(0)])
    k = int(correct.argmax())
    if k == 0: return float(d[0]) - 1e-6
    if k == len(d): return float(d[-1]) + 1e-6
    return float((d[k-1] + d[k])/2)

def equal_error_rate(scores:torch.Tensor, same:torch.Tensor) -> float:
    """Verification EER: the error where false accepts (different pairs scored >= t) equal false rejects (same
    pairs scored < t), over all thresholds t; scores rise with 'same'. Averages the two rates at the crossing."""
    s, order = scores.view(-1).float().sort(descending=True)
    y = same.view(-1)[order].float()
    n_same, n_diff = y.sum(), (1 - y).sum()
    if n_same == 0 or n_diff == 0: raise ValueError('equal_error_rate needs both same and different pairs')
    far = (1 - y).cumsum(0)/n_diff          # accepting the k+1 highest scores
    frr = 1 - y.cumsum(0)/n_same
    k = int((far - frr).abs().argmin())
    return float((far[k] + frr[k])/2)

class FitThreshold(Callback):
    "After each validation, sets `loss_func.thresh` to the distance threshold that is most accurate on it"
    order = 40  # before the Recorder (50) computes the epoch's metrics
    def before_validate(self): self.dists, self.sames = [], []
    def after_batch(self):
        if self.training: return
        self.dists.append(self.learn.pred.detach().float().cpu()); self.sames.append(self.learn.y.detach().cpu().view(-1))
    def after_validate(self):
        if self.dists: self.learn.loss_func.thresh = best_threshold(torch.cat(self.dists), torch.cat(self.sames))
