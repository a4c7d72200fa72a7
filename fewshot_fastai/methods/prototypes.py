"""The two classifiers every model here answers with: the mean of the query x shot scores ('mean', the siamese
seed's rule) and the score against each class's mean embedding ('prototype', Snell et al. 2017). They agree for K=1."""
import torch
from ..models.protonet import prototypes
from .base import FewShotClassifier, register_method

__all__ = ['class_scores', 'MeanScore', 'Prototype']

def class_scores(
    sim:torch.Tensor, # query x support similarities, (Q,S)
    support_labels, # class index of each support image
    n_classes:int, # number of classes
) -> torch.Tensor:
    "Per-class mean of query x support scores (Q,S) -> (Q,n_classes); K>1 shots are averaged"
    lbl = torch.as_tensor(support_labels, device=sim.device).long()
    # sums by `index_add_`, not a product with a one-hot (S, n_classes) matrix: O(Q*S) instead of O(Q*S*n_classes)
    sums = torch.zeros(sim.shape[0], n_classes, dtype=torch.float32, device=sim.device).index_add_(1, lbl, sim.float())
    return sums / torch.bincount(lbl, minlength=n_classes).float()

@register_method('mean')
class MeanScore(FewShotClassifier):
    "A class's score is the mean of the query's scores with its K shots"
    def forward(
        self,
        queries:torch.Tensor, # query embeddings, (Q,D)
    ) -> torch.Tensor:
        "Query x class scores (Q, n_classes): the mean of each class's shot scores"
        return class_scores(self.similarity(queries, self.support), self.labels, self.n_classes)

@register_method('prototype')
class Prototype(FewShotClassifier):
    "A class's score is the query's score with the class's mean embedding (its prototype)"
    def process_support_set(
        self,
        support:torch.Tensor, # support embeddings, (S,D)
        labels, # class index (0..n_classes-1) of each support embedding
        n_classes:int|None=None, # number of classes (default: the largest label + 1)
    ) -> 'Prototype':
        "Keep each class's mean embedding -> self"
        super().process_support_set(support, labels, n_classes)
        self.protos = prototypes(support, self.labels, self.n_classes)
        return self

    def forward(
        self,
        queries:torch.Tensor, # query embeddings, (Q,D)
    ) -> torch.Tensor:
        "Query x class scores (Q, n_classes): each query's score with each prototype"
        return self.similarity(queries, self.protos)
