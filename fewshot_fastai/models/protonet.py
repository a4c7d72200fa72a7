"Prototypical network (Snell et al. 2017) over any encoder, for episodic training in the fastai loop"
import torch
from torch import nn
from fastai.layers import Flatten

__all__ = ['ProtoNet', 'prototypes', 'sq_distances']

def prototypes(emb:torch.Tensor, labels:torch.Tensor, n_classes:int|None=None) -> torch.Tensor:
    "Mean embedding of each class, in float32 whatever the autocast dtype: (S,D), (S,) -> (N,D)"
    n = int(labels.max()) + 1 if n_classes is None else n_classes
    onehot = torch.nn.functional.one_hot(labels.as_subclass(torch.Tensor).long(), n).float()
    emb = emb.as_subclass(torch.Tensor).float()   # plain tensors: fastai's subclasses (TensorCategory @ TensorImage) clash
    with torch.autocast(emb.device.type, enabled=False): return onehot.t() @ emb / onehot.sum(0)[:, None]

def sq_distances(a:torch.Tensor, b:torch.Tensor) -> torch.Tensor:
    "Squared Euclidean distances in float32, from differences (no sqrt then square, no cancellation): (A,D),(B,D) -> (A,B)"
    return (a.float()[:, None] - b.float()[None]).pow(2).sum(-1)

class ProtoNet(nn.Module):
    """`forward(x, support_labels)`: `x` holds the support images then the queries; returns the queries' logits
    over the episode's classes, minus squared Euclidean distances to the class prototypes. (Q,N)"""
    def __init__(
        self,
        encoder:nn.Module, # image -> feature maps
        pool:str='avg', # 'avg' pools the maps to vectors; 'flatten' keeps their layout
    ):
        super().__init__()
        if pool not in ('avg', 'flatten'): raise ValueError(f"ProtoNet: pool={pool!r}: use 'avg' or 'flatten'")
        # 'flatten' keeps the layout of small final maps (e.g. Conv4's 2x2 at 40 px), as the original ProtoNet did
        self.encoder = encoder
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), Flatten()) if pool == 'avg' else nn.Flatten()
    def encode(
        self,
        x, # images, (B,C,H,W)
    ):
        "Per-image embeddings: (B,C,H,W) -> (B,D)"
        f = self.encoder(x)
        return self.pool(f) if f.ndim == 4 else f
    def similarity(
        self,
        ea, # query embeddings, (P,D)
        eb, # support or prototype embeddings, (P,D)
    ):
        "Minus the squared Euclidean distance, float32: (P,)"
        return -(ea.float() - eb.float()).pow(2).sum(-1)
    def forward(
        self,
        x, # the N*K support images, then the queries, (N*K+Q,C,H,W)
        support_labels, # class (0..N-1) of each support image, (N*K,)
    ):
        "Logits (Q,N) of the queries: minus their squared distances to the class prototypes"
        # plain tensors: fastai's TensorImage/TensorCategory dispatch every op through Python (measured: +10% per episode)
        x, support_labels = x.as_subclass(torch.Tensor), support_labels.as_subclass(torch.Tensor)
        e = self.encode(x)
        n = len(support_labels)
        protos = prototypes(e[:n], support_labels)
        return -sq_distances(e[n:], protos)
