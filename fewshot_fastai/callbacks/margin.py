"""Additive cosine margin (CosFace, Wang et al. 2018) for classifier pre-training with a cosine classifier. fastai
has no margin losses and our `CosineClassifier` sees no targets in `forward`, so a callback applies the margin to
the logits of training batches, where it knows the targets."""
import torch
from fastai.callback.core import Callback
from .._distrib import unwrap_model
from ..models.protonet import CosineClassifier

__all__ = ['AdditiveMargin']


class AdditiveMargin(Callback):
    """In training batches of a `classifier_learner` with the cosine head, the target class's logit becomes
    `scale * (cos - margin)`: an image's embedding must be closer to its own class than to any other by `margin` in
    cosine, which packs each class tighter and spreads classes apart. Validation episodes, `classify` and every
    prediction are unchanged (nearest prototype)."""
    order = 1   # right after the model's forward, before the loss
    def __init__(
        self,
        margin:float=0.2, # cosine margin, in (0, 1)
    ):
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 < margin < 1:
            raise ValueError(f'AdditiveMargin: margin={margin!r}; it must be a number in (0, 1)')
        self.margin = float(margin)

    def before_fit(self):
        clf = getattr(unwrap_model(self.learn.model), 'classifier', None)
        if not isinstance(clf, CosineClassifier):
            raise TypeError("AdditiveMargin: the model needs a cosine classifier head (ff.classifier_learner(..., head='cosine'))")
        self.clf = clf

    def after_pred(self):
        # classifier batches carry no support images (xb[1] is empty); episodes (fine-tuning, validation) are left alone
        if not self.training or len(self.learn.xb) < 2 or len(self.learn.xb[1]): return
        pred, y = self.learn.pred, self.learn.yb[0].as_subclass(torch.Tensor).long()
        self.learn.pred = pred - (self.margin*self.clf.scale)*torch.nn.functional.one_hot(y, pred.shape[-1]).to(pred.dtype)
