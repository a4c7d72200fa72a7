"Pair losses. Each has fastai's `activation` (-> probability of 'same') and `decodes` (-> 0/1 prediction)."
import torch
import torch.nn.functional as F
from torch import nn
from fastai.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat

__all__ = ['ContrastiveLoss', 'pair_loss', 'same_probability']

class ContrastiveLoss(nn.Module):
    """Hadsell et al. contrastive loss on distances `d` (B,): same pairs pulled together, `d**2`; different
    pairs pushed beyond `margin`, `relu(margin-d)**2`. The probability of 'same' is the logistic
    `sigmoid(scale*(thresh - d))`; a pair is predicted 'same' when it is over 0.5, i.e. `d < thresh`. Until
    `FitThreshold` fits `thresh` and `scale` on the validation pairs (a logistic regression of same/different on
    the distance), they are `margin/2` and `10/margin` and the activation is an uncalibrated score."""
    def __init__(
        self,
        margin:float=1.0, # different pairs are pushed at least this far apart
        thresh:float|None=None, # decision distance (fitted by `FitThreshold`; default margin/2)
        scale:float|None=None, # slope of the logistic calibration (fitted by `FitThreshold`)
    ):
        super().__init__()
        self.margin, self.thresh = margin, margin/2 if thresh is None else thresh
        self.scale = 10/margin if scale is None else scale
        self.calibrated = False
        self.reduction = 'mean'   # fastai sets 'none' for per-item losses (get_preds(with_loss=True), Interpretation)
    def forward(
        self,
        d, # distances of the pairs, (B,)
        targ, # 1 for same, 0 for different, (B,)
    ):
        "Mean of `d**2` over same pairs and `relu(margin - d)**2` over different ones"
        # float32 whatever the autocast dtype; plain tensors, whatever fastai subclasses the batch carried
        y, d = targ.as_subclass(torch.Tensor).float().view(-1), d.as_subclass(torch.Tensor).float().view(-1)
        loss = (y*d.pow(2) + (1-y)*F.relu(self.margin - d).pow(2))/2
        return loss if self.reduction == 'none' else loss.sum() if self.reduction == 'sum' else loss.mean()
    def decodes(
        self,
        p, # probabilities of 'same', (B,)
    ):
        "As fastai does, decodes the `activation`: 'same' (1) when the probability is over 0.5, i.e. `d < thresh`"
        return (p > 0.5).long()
    def activation(
        self,
        d, # distances, (B,)
    ):
        "Probability of 'same' in (0,1), 0.5 at `thresh`, rising as pairs get closer (calibrated once fitted)"
        return torch.sigmoid((self.thresh - d.float())*self.scale)

def pair_loss(
    head:str, # 'concat', 'l1', 'cosine' or 'contrastive'
    margin:float=1.0, # margin of the contrastive loss
):
    "The loss that goes with head 'concat' (2 logits), 'l1' or 'cosine' (1 logit) or 'contrastive' (distance)"
    if head == 'concat': return CrossEntropyLossFlat()
    if head in ('l1', 'cosine'): return BCEWithLogitsLossFlat()
    if head == 'contrastive': return ContrastiveLoss(margin)
    raise ValueError(f"unknown head {head!r}: choose 'concat', 'l1', 'cosine' or 'contrastive'")

def same_probability(
    loss_func, # the learner's loss (it knows how to read the outputs)
    out:torch.Tensor, # model outputs for a batch of pairs
) -> torch.Tensor:
    """Probability that each pair is 'same', from model outputs `out`: (B,2) logits, (B,) logits or distances
    (through the contrastive loss's logistic calibration)"""
    act = loss_func.activation(out)
    return act[:, 1] if act.ndim == 2 else act.view(-1)
