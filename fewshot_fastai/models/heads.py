"""Pair heads. Each head has two steps: `embed(features) -> vector` (per image, cacheable) and
`compare(ea, eb) -> output` (what the loss sees); `forward(fa, fb) = compare(embed(fa), embed(fb))`.
`similarity(ea, eb)` turns `compare` into one score per pair that rises with 'same' (for ranking support classes)."""
import torch
import torch.nn.functional as F
from torch import nn
from fastai.layers import AdaptiveConcatPool2d, Flatten
from fastai.vision.learner import create_head

__all__ = ['PairHead', 'ConcatHead', 'L1Head', 'DistanceHead', 'CosineHead', 'HEADS', 'create_pair_head']

class PairHead(nn.Module):
    "Base: `forward(fa, fb) = compare(embed(fa), embed(fb))`"
    def embed(
        self,
        f, # encoder output of a batch of images: feature maps (B,C,H,W) or vectors (B,C)
    ):
        "The head's embedding of one side of the pairs"
        raise NotImplementedError
    def compare(
        self,
        ea, # embeddings of the first images
        eb, # embeddings of the second images
    ):
        "The model's output for pairs of embeddings (logits, a distance or a similarity: the subclass says)"
        raise NotImplementedError
    def similarity(
        self,
        ea, # embeddings of the first images
        eb, # embeddings of the second images
    ):
        "A score that grows with similarity (`compare` unless the subclass's output is a distance)"
        return self.compare(ea, eb)
    def forward(
        self,
        fa, # encoder output of the first images
        fb, # encoder output of the second images
    ):
        "`compare(embed(fa), embed(fb))`"
        return self.compare(self.embed(fa), self.embed(fb))

class ConcatHead(PairHead):
    """fastai Siamese tutorial head: concat-pool each image's maps, concatenate the pair, `create_head` -> 2
    logits (different, same); train with `CrossEntropyLossFlat`. Not symmetric in (a, b)."""
    def __init__(
        self,
        nf:int, # channels of the encoder's output
        maps:bool=True, # the encoder outputs maps (B,nf,h,w) to pool; False: vectors
        n_out:int=2, # logits (2: different, same)
        **kwargs,
    ):
        super().__init__()
        self.pool = nn.Sequential(AdaptiveConcatPool2d(1), Flatten()) if maps else nn.Identity()
        self.head = create_head((2 if maps else 1)*2*nf, n_out, pool=False, **kwargs)
    def embed(
        self,
        f, # encoder output: feature maps (B,nf,h,w), or vectors (B,nf) when `maps=False`
    ):
        "Concat-pooled features of each image: (B,2*nf)"
        return self.pool(f)
    def compare(
        self,
        ea, # embeddings of the first images, (P,D)
        eb, # embeddings of the second images, (P,D)
    ):
        "Logits (P,2) of (different, same) for each pair"
        return self.head(torch.cat([ea, eb], dim=1))
    def similarity(
        self,
        ea, # embeddings of the first images, (P,D)
        eb, # embeddings of the second images, (P,D)
    ):
        "Score of 'same' for each pair: the difference of its two logits, (P,)"
        out = self.compare(ea, eb)
        return out[:, 1] - out[:, 0]   # log-odds of 'same'


class L1Head(PairHead):
    "Koch et al. head: weighted L1 distance of the pooled features -> one logit of 'same'; train with BCE"
    def __init__(
        self,
        nf:int, # channels of the encoder's output
        maps:bool=True, # the encoder outputs maps (B,nf,h,w) to pool; False: vectors
    ):
        super().__init__()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), Flatten()) if maps else nn.Identity()
        self.fc = nn.Linear(nf, 1)
    def embed(
        self,
        f, # encoder output: feature maps (B,nf,h,w), or vectors (B,nf) when `maps=False`
    ):
        "Pooled features of each image: (B,nf)"
        return self.pool(f)
    def compare(
        self,
        ea, # embeddings of the first images, (P,D)
        eb, # embeddings of the second images, (P,D)
    ):
        "Logit of 'same' for each pair: a weighted L1 distance, (P,)"
        return self.fc((ea - eb).abs()).squeeze(-1)

class DistanceHead(PairHead):
    "Embedding head for contrastive learning: pool, project to `emb_dim`, L2-normalise; outputs Euclidean distances"
    def __init__(
        self,
        nf:int, # channels of the encoder's output
        maps:bool=True, # the encoder outputs maps (B,nf,h,w) to pool; False: vectors
        emb_dim:int=128, # embedding size
    ):
        super().__init__()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), Flatten()) if maps else nn.Identity()
        self.proj = nn.Linear(nf, emb_dim)
    def embed(
        self,
        f, # encoder output: feature maps (B,nf,h,w), or vectors (B,nf) when `maps=False`
    ):
        "L2-normalised embeddings: (B,emb_dim)"
        return F.normalize(self.proj(self.pool(f)), dim=-1)
    # float32 whatever the autocast dtype: in fp16, 1e-12 under the sqrt underflows to 0 (infinite gradient at d=0)
    def compare(
        self,
        ea, # embeddings of the first images, (P,D)
        eb, # embeddings of the second images, (P,D)
    ):
        "Euclidean distance of each pair, float32: (P,)"
        return (ea.float() - eb.float()).pow(2).sum(-1).clamp_min(1e-12).sqrt()
    def similarity(
        self,
        ea, # embeddings of the first images, (P,D)
        eb, # embeddings of the second images, (P,D)
    ):
        "Minus the distance: higher for closer pairs, (P,)"
        return -self.compare(ea, eb)

class CosineHead(PairHead):
    """Cosine head: average-pool, project to `emb_dim`, cosine similarity; `compare` gives the logit
    `scale*(cos - shift)` of 'same' (both learnt), trained with BCE. Its similarity is linear in each image's
    pooled features once the norms are fixed, so `decompose` splits it exactly over image positions."""
    def __init__(
        self,
        nf:int, # channels of the encoder's output
        maps:bool=True, # the encoder outputs maps (B,nf,h,w) to pool; False: vectors
        emb_dim:int=128, # embedding size
        scale:float=10., # initial scale of the logit (learnt)
        shift:float=0.5, # initial cosine at which p(same) = 0.5 (learnt)
    ):
        super().__init__()
        self.maps = maps
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), Flatten()) if maps else nn.Identity()
        self.proj = nn.Linear(nf, emb_dim)
        self.scale, self.shift = nn.Parameter(torch.tensor(float(scale))), nn.Parameter(torch.tensor(float(shift)))
    def embed(
        self,
        f, # encoder output: feature maps (B,nf,h,w), or vectors (B,nf) when `maps=False`
    ):
        "Projected embeddings: (B,emb_dim)"
        return self.proj(self.pool(f))
    def similarity(
        self,
        ea, # embeddings of the first images, (P,D)
        eb, # embeddings of the second images, (P,D)
    ):
        "Cosine similarity of each pair, float32: (P,)"
        return F.cosine_similarity(ea.float(), eb.float(), dim=-1, eps=1e-8)   # float32 under autocast
    def compare(
        self,
        ea, # embeddings of the first images, (P,D)
        eb, # embeddings of the second images, (P,D)
    ):
        "Logit of 'same' for each pair, `scale*(cos - shift)`: (P,)"
        return self.scale*(self.similarity(ea, eb) - self.shift)

    def _side(self, f, e, other):
        "Map (B,h,w) on the image with maps `f`, embedding `e`, against the other image's embedding"
        u = F.normalize(other, dim=-1, eps=1e-8)
        n = e.norm(dim=-1).clamp_min(1e-8)
        h, w = f.shape[-2:]
        return torch.einsum('bd,dk,bkhw->bhw', u, self.proj.weight, f)/(h*w*n[:, None, None])

    def decompose(
        self,
        fa, # feature maps of the first images, (B,nf,h,w)
        fb, # feature maps of the second images, (B,nf,h,w)
    ):
        """Exact split of the cosine over positions: (map_a, map_b, cos) with map_a.sum((1,2)) equal to
        cos - <bias, eb>/(|ea||eb|) (the projection bias is the only non-spatial part), and likewise for b"""
        if not self.maps or fa.ndim != 4: raise ValueError('CosineHead.decompose needs feature maps (B,C,h,w)')
        ea, eb = self.embed(fa), self.embed(fb)
        return self._side(fa, ea, eb), self._side(fb, eb, ea), self.similarity(ea, eb)

HEADS = {'concat': ConcatHead, 'l1': L1Head, 'contrastive': DistanceHead, 'cosine': CosineHead}

def create_pair_head(
    head:str, # a name of `HEADS`: 'concat', 'l1', 'contrastive' or 'cosine'
    nf:int, # channels of the encoder's feature maps
    maps:tuple, # their (h, w)
    emb_dim:int=128, # embedding size of the heads that embed ('contrastive', 'cosine')
) -> PairHead:
    "The pair head `head` for an encoder of `nf` channels of `maps`; the one place heads are built (learners, `load_model`)"
    if head not in HEADS: raise ValueError(f"unknown head {head!r}: choose from {list(HEADS)}")
    return HEADS[head](nf, maps, emb_dim=emb_dim) if head in ('contrastive', 'cosine') else HEADS[head](nf, maps)
