"Prototypical network (Snell et al. 2017) over any encoder, for episodic training in the fastai loop"
import torch
from torch import nn
from fastai.layers import Flatten

__all__ = ['ProtoNet', 'CosineClassifier', 'EnsembleEncoder', 'prototypes', 'sq_distances']

def prototypes(
    emb:torch.Tensor, # embeddings, (N,D)
    labels:torch.Tensor, # their class indices, (N,)
    n_classes:int|None=None, # number of classes (default: labels.max()+1)
) -> torch.Tensor:
    "Mean embedding of each class, in float32 whatever the autocast dtype: (S,D), (S,) -> (N,D)"
    n = int(labels.max()) + 1 if n_classes is None else n_classes
    onehot = torch.nn.functional.one_hot(labels.as_subclass(torch.Tensor).long(), n).float()
    emb = emb.as_subclass(torch.Tensor).float()   # plain tensors: fastai's subclasses (TensorCategory @ TensorImage) clash
    with torch.autocast(emb.device.type, enabled=False): return onehot.t() @ emb / onehot.sum(0)[:, None]

def sq_distances(
    a:torch.Tensor, # (N,D)
    b:torch.Tensor, # (M,D)
) -> torch.Tensor:
    "Squared Euclidean distances in float32, from differences (no sqrt then square, no cancellation): (A,D),(B,D) -> (A,B)"
    return (a.float()[:, None] - b.float()[None]).pow(2).sum(-1)

class CosineClassifier(nn.Module):
    "Logits `scale * cos(embedding, class weight)` over `n_classes` (Baseline++, Chen et al. 2019), learnable scale"
    def __init__(
        self,
        n_features:int, # embedding size
        n_classes:int, # classes
        scale:float=10.0, # initial temperature
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, n_features)*n_features**-0.5)
        self.scale = nn.Parameter(torch.tensor(float(scale)))
    def forward(
        self,
        e, # embeddings (B,D)
    ):
        "(B,n_classes) logits"
        return self.scale*nn.functional.normalize(e.float(), dim=-1) @ nn.functional.normalize(self.weight.float(), dim=-1).t()

class ProtoNet(nn.Module):
    """`forward(x, support_labels)`: `x` holds the support images then the queries; returns the queries' logits
    over the episode's classes, minus squared Euclidean distances to the class prototypes. (Q,N)
    With a classifier (`n_classes`), `forward(x, empty_labels)` (no support images) gives every image's logits over
    the training classes instead: the same model is pre-trained as a classifier, then used or fine-tuned episodically."""
    def __init__(
        self,
        encoder:nn.Module, # image -> feature maps
        pool:str='avg', # 'avg' pools the maps to vectors; 'flatten' keeps their layout
        normalize:bool=False, # L2-normalise the embeddings (prototype distances then rank as cosine similarities)
        n_classes:int=0, # classes of a classifier head over the embeddings (0: none)
        classifier:str='cosine', # that head: 'cosine' (`CosineClassifier`) or 'linear'
        n_features:int|None=None, # embedding size, needed with `n_classes`
        scale:float=10.0, # with `normalize`: initial learnable temperature of the episode logits
    ):
        super().__init__()
        if pool not in ('avg', 'flatten'): raise ValueError(f"ProtoNet: pool={pool!r}: use 'avg' or 'flatten'")
        if classifier not in ('cosine', 'linear'): raise ValueError(f"ProtoNet: classifier={classifier!r}: use 'cosine' or 'linear'")
        if n_classes and not n_features: raise ValueError('ProtoNet: n_classes needs n_features (the embedding size)')
        # 'flatten' keeps the layout of small final maps (e.g. Conv4's 2x2 at 40 px), as the original ProtoNet did
        self.encoder, self.normalize = encoder, normalize
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), Flatten()) if pool == 'avg' else nn.Flatten()
        # normalised embeddings are at most 2 apart: a learnable temperature lets the episode softmax get sharp
        if normalize: self.scale = nn.Parameter(torch.tensor(float(scale)))
        self.classifier = None if not n_classes else (CosineClassifier(n_features, n_classes) if classifier == 'cosine'
                                                      else nn.Linear(n_features, n_classes))
        # a post-processing of the embeddings at inference (e.g. `ff.verification.Whitening` fitted by the `faces` recipe): `ff.embed`
        # applies it after averaging the TTA views; training episodes do not use it
        self.whitening = None
    def features(
        self,
        x, # images, (B,C,H,W)
    ):
        "Pooled encoder features, before any normalisation: (B,C,H,W) -> (B,D)"
        f = self.encoder(x)
        return self.pool(f) if f.ndim == 4 else f
    def encode(
        self,
        x, # images, (B,C,H,W)
    ):
        "Per-image embeddings: (B,C,H,W) -> (B,D), L2-normalised with `normalize`"
        e = self.features(x)
        return nn.functional.normalize(e.float(), dim=-1) if self.normalize else e
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
        n = len(support_labels)
        if n == 0:   # a classifier batch (`ClassifierDataLoaders`): logits over the training classes
            if self.classifier is None: raise ValueError('ProtoNet: a batch without support images needs n_classes (a classifier)')
            return self.classifier(self.features(x))
        e = self.encode(x)
        protos = prototypes(e[:n], support_labels)
        d = sq_distances(e[n:], protos)
        return -self.scale*d if self.normalize else -d

class EnsembleEncoder(nn.Module):
    """The embeddings of several trained few-shot models side by side: (B,C,H,W) -> (B, D_1+...+D_k).
    Squared Euclidean distances between such embeddings are the sums of the members' distances, so a `ProtoNet` over
    it scores each class with the sum of the members' -d^2 (their logits, for members without `normalize`; members
    that L2-normalise contribute distances in [0, 4]): an ensemble that needs no new training."""
    def __init__(
        self,
        members, # models with `encode` (ProtoNet, SiameseModel), each taking the same images
    ):
        super().__init__()
        bad = [i for i, m in enumerate(members) if not hasattr(m, 'encode')]
        if bad: raise TypeError(f'EnsembleEncoder: members {bad} have no `encode` method (use ProtoNet or SiameseModel models)')
        if len(members) < 1: raise ValueError('EnsembleEncoder: no members')
        self.members = nn.ModuleList(members)
    def forward(
        self,
        x, # images, (B,C,H,W)
    ):
        "(B, sum of the members' embedding sizes), float32"
        return torch.cat([m.encode(x).float().flatten(1) for m in self.members], dim=-1)
