"""Inductive classifiers beside the prototypes, on the same contract (each query scored alone): SimpleShot's centred
and normalised nearest centroid, Matching Networks' attention over the shots, and the fine-tuning baselines' linear
or cosine head fitted on the support embeddings (Baseline and Baseline++ of Chen et al. 2019, on frozen features)."""
import torch
import torch.nn.functional as F
from ..models.protonet import prototypes
from .base import FewShotClassifier, register_method

__all__ = ['SimpleShot', 'Matching', 'Baseline', 'BaselinePlusPlus']

@register_method('simpleshot')
class SimpleShot(FewShotClassifier):
    """SimpleShot (Wang et al. 2019, "CL2N"): embeddings centred on a mean and L2-normalised, then the nearest class
    centroid by Euclidean distance. The mean is `mean` when set (SimpleShot's own: the mean embedding of the training
    classes), else the support set's. Scores are minus the distances."""
    mean = None   # a (D,) embedding mean; None: the support set's
    def process_support_set(
        self,
        support:torch.Tensor, # support embeddings, (S,D)
        labels, # class index (0..n_classes-1) of each support embedding
        n_classes:int|None=None, # number of classes (default: the largest label + 1)
    ) -> 'SimpleShot':
        "Keep the centre and each class's centroid of the centred, normalised embeddings -> self"
        super().process_support_set(support, labels, n_classes)
        self.centre = support.float().mean(0) if self.mean is None else torch.as_tensor(self.mean, dtype=torch.float32, device=support.device)
        self.protos = prototypes(self._normalise(support), self.labels, self.n_classes)
        return self
    def _normalise(self, e): return F.normalize(e.float() - self.centre, dim=-1)
    def forward(
        self,
        queries:torch.Tensor, # query embeddings, (Q,D)
    ) -> torch.Tensor:
        "Query x class scores (Q, n_classes): minus the distance of each normalised query to each centroid"
        return -torch.cdist(self._normalise(queries), self.protos)

@register_method('matching')
class Matching(FewShotClassifier):
    """Matching Networks (Vinyals et al. 2016), without full-context embeddings: a query attends to every shot by the
    softmax of their cosine similarities; a class's score is the log of the attention its shots receive"""
    def forward(
        self,
        queries:torch.Tensor, # query embeddings, (Q,D)
    ) -> torch.Tensor:
        "Query x class scores (Q, n_classes): log of each class's share of the attention"
        att = torch.softmax(F.normalize(queries.float(), dim=-1) @ F.normalize(self.support.float(), dim=-1).T, dim=1)
        share = att.new_zeros(len(queries), self.n_classes).index_add_(1, self.labels, att)
        return share.clamp_min(1e-12).log()

@register_method('baseline')
class Baseline(FewShotClassifier):
    """Baseline (Chen et al. 2019): a softmax-regression head fitted on the (L2-normalised, frozen) support embeddings
    by L-BFGS from fixed starting weights, so the same support gives the same head; its logits are the scores"""
    steps, weight_decay = 100, 1e-3
    def _logits(self, x, w, b): return x @ w + b
    def _init_weights(self, x): return x.new_zeros(x.shape[1], self.n_classes)
    def process_support_set(
        self,
        support:torch.Tensor, # support embeddings, (S,D)
        labels, # class index (0..n_classes-1) of each support embedding
        n_classes:int|None=None, # number of classes (default: the largest label + 1)
    ) -> 'Baseline':
        "Fit the head on the support embeddings -> self"
        super().process_support_set(support, labels, n_classes)
        x = F.normalize(support.detach().float(), dim=-1)
        w = self._init_weights(x).requires_grad_(True)
        b = torch.zeros(self.n_classes, device=x.device, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], lr=1, max_iter=self.steps, line_search_fn='strong_wolfe')
        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(self._logits(x, w, b), self.labels) + self.weight_decay*w.pow(2).sum()
            loss.backward()
            return loss
        with torch.enable_grad(): opt.step(closure)   # inference runs under no_grad; the fit needs gradients
        self.w, self.b = w.detach(), b.detach()
        return self
    def forward(
        self,
        queries:torch.Tensor, # query embeddings, (Q,D)
    ) -> torch.Tensor:
        "Query x class scores (Q, n_classes): the fitted head's logits"
        return self._logits(F.normalize(queries.float(), dim=-1), self.w, self.b)

@register_method('baseline++')
class BaselinePlusPlus(Baseline):
    """Baseline++ (Chen et al. 2019): the head's logits are scaled cosines between the embedding and each class's
    weights, which start at the class means (a cosine of zero weights has no gradient)"""
    scale = 10.
    def _init_weights(self, x): return prototypes(x, self.labels, self.n_classes).T.contiguous()
    def _logits(self, x, w, b): return self.scale * F.normalize(x, dim=-1) @ F.normalize(w, dim=0)
