"""Transductive classifiers: they read the whole batch of queries given to `forward` at once, so a query's answer
depends on the others of its batch (`SupportSet` and `classify` pass up to `bs` queries a batch, an episode passes
its queries together). BD-CSPN here."""
import torch
import torch.nn.functional as F
from ..models.protonet import prototypes
from .base import FewShotClassifier, register_method

__all__ = ['BDCSPN']

@register_method('bd-cspn')
class BDCSPN(FewShotClassifier):
    """BD-CSPN (Liu et al. 2020), in cosine space: the queries are shifted by the difference between the support's and
    the queries' mean embeddings (the bias between the two sets), each query takes the label of its nearest prototype,
    then each prototype is rebuilt from its shots and the queries so labelled, weighted by the softmax of
    `temperature` x their cosine to it. Scores: the cosines to the rectified prototypes."""
    temperature = 10.
    def forward(
        self,
        queries:torch.Tensor, # query embeddings, (Q,D)
    ) -> torch.Tensor:
        "Query x class scores (Q, n_classes), the batch of queries taken together"
        s, q = F.normalize(self.support.float(), dim=-1), F.normalize(queries.float(), dim=-1)
        q = F.normalize(q + s.mean(0) - q.mean(0), dim=-1)   # the shift between the two sets
        protos = F.normalize(prototypes(s, self.labels, self.n_classes), dim=-1)
        pseudo = (q @ protos.T).argmax(1)
        x, lbl = torch.cat([s, q]), torch.cat([self.labels, pseudo])
        w = (self.temperature * (x * protos[lbl]).sum(1))   # each member's cosine to its class's prototype
        w = torch.exp(w - w.max())
        num = protos.new_zeros(self.n_classes, x.shape[1]).index_add_(0, lbl, w[:, None] * x)
        den = w.new_zeros(self.n_classes).index_add_(0, lbl, w)
        return q @ F.normalize(num / den[:, None], dim=-1).T
