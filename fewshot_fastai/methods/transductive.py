"""Transductive classifiers: they read the whole batch of queries given to `forward` at once, so a query's answer
depends on the others of its batch (`SupportSet` and `classify` pass up to `bs` queries a batch, an episode passes
its queries together). BD-CSPN and PT-MAP here."""
import torch
import torch.nn.functional as F
from ..models.protonet import prototypes
from .base import FewShotClassifier, register_method

__all__ = ['BDCSPN', 'PTMAP']

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

@register_method('pt-map')
class PTMAP(FewShotClassifier):
    """PT-MAP (Hu et al. 2021): embeddings power-transformed (`(relu(x) + 1e-6) ** power`; not L2-normalised after it:
    at `lam=10` unit-length embeddings make the assignment too soft, bench/RESULTS.md), then `steps` rounds of: the queries' soft assignment to the class centres as the Sinkhorn optimal transport
    of `exp(-lam x squared distance)` with as many queries for every class (the method's assumption: a balanced batch),
    and each centre moved by `alpha` towards the mean of its shots and of the queries weighted by their assignment.
    Scores: the last assignment."""
    power, lam, alpha, steps, sinkhorn_steps = 0.5, 10., 0.2, 10, 1000
    def _transform(self, e): return (e.float().relu() + 1e-6).pow(self.power)
    def _assign(self, q, centres):
        "Sinkhorn: rows (queries) sum to 1, columns (classes) to n_queries / n_classes"
        plan = torch.exp(-self.lam * torch.cdist(q, centres).pow(2))
        plan = plan / plan.sum()
        cols = len(q) / len(centres)
        for _ in range(self.sinkhorn_steps):
            rows = plan.sum(1, keepdim=True)
            plan = plan / (rows + 1e-10)
            plan = plan * (cols / (plan.sum(0, keepdim=True) + 1e-10))
            if (plan.sum(1) - 1).abs().max() < 1e-6: break
        return plan
    def forward(
        self,
        queries:torch.Tensor, # query embeddings, (Q,D)
    ) -> torch.Tensor:
        "Query x class scores (Q, n_classes): the transport plan of the batch of queries to the refined centres"
        s, q = self._transform(self.support), self._transform(queries)
        onehot = F.one_hot(self.labels, self.n_classes).float()
        centres = prototypes(s, self.labels, self.n_classes)
        x = torch.cat([s, q])
        for _ in range(self.steps):
            w = torch.cat([onehot, self._assign(q, centres)])
            centres = centres + self.alpha * ((w.T @ x) / w.sum(0)[:, None] - centres)
        return self._assign(q, centres)

