"""Pair maps: what makes two images similar (or different) under a pair model's own score. Exact for the cosine head (a
decomposition of the score), the CAM family otherwise, each image's side explained with the other's embedding as the
target (`partner_maps`, which also takes a class prototype)."""
from dataclasses import dataclass
import torch
import torch.nn.functional as F
from torch import nn
from ..models.taps import TapGrid
from .maps import eval_mode, normalize_maps, model_inputs, resolve_layer, _forward_with_map, _weighted_maps, _check_cam_method

__all__ = ['PairMaps', 'SupportMaps', 'similarity_maps', 'partner_maps', 'support_maps', 'pair_layer']

@dataclass
class PairMaps:
    "Similarity maps of a pair: on `a` and on `b` (B,H,W) in [0,1], the model's scores (B,), and the method"
    a: torch.Tensor      # maps on the first images, (B,H,W) in [0,1] at the input size
    b: torch.Tensor      # maps on the second images, (B,H,W) in [0,1]
    score: torch.Tensor  # the model's similarity score of each pair, (B,)
    method: str          # 'exact' (cosine head decomposition) or 'grad-cam'
    raw_a: torch.Tensor  # maps on `a` before upsampling and normalisation, (B,h,w)
    raw_b: torch.Tensor  # maps on `b` before upsampling and normalisation, (B,h,w)
    layer: str = ''      # which layer was explained, and why

def _encode_maps(model, x, layer):
    """(maps to explain, with graph; embedding) of `x` through a siamese/proto model's encoder, in one pass: the
    encoder's last spatial output (its own output unless that is 1x1 or a vector, as Conv4 at 28 px), or `layer`'s"""
    if layer is None and isinstance(model.encoder, TapGrid):   # its vectors are pooled from the tapped layers: explain the last
        maps = model.encoder.tap_maps(x)
        return maps[-1], _embed_from_maps(model, model.encoder.from_maps(maps))
    out, act, _ = _forward_with_map(model.encoder, x, layer)
    return act, _embed_from_maps(model, out)

def _embed_from_maps(model, f):
    return model.head.embed(f) if hasattr(model, 'head') else model.pool(f) if f.ndim == 4 else f

def similarity_maps(
    learn_or_model, # a siamese or episodic `Learner`, or its model
    a, # first images, (B,C,H,W)
    b, # second images, (B,C,H,W)
    sign:int=1, # 1: what makes the pair similar; -1: what makes it different
    method:str='auto', # 'auto', 'exact' (cosine head), or a method of the CAM family ('grad-cam', 'hires-cam', 'grad-cam++', 'xgrad-cam', 'layer-cam', 'eigen-cam', 'eigen-grad-cam', 'score-cam', 'ablation-cam')
    layer=None, # module for the family's methods; default: the last spatial block
    eigen_smooth:bool=False, # the family's methods: first principal component of the weighted activations
    aug_smooth:bool=False, # the family's methods: average over mirror x brightness views
) -> PairMaps:
    """Maps on each image of the pairs (a, b) showing what makes them similar under the model's own score
    (`sign=-1`: what makes them different). Exact where the head's similarity is linear in the pooled features
    (`CosineHead`: the maps sum to the cosine minus its bias part), Grad-CAM on the encoder's maps otherwise
    (L1, contrastive, prototypical), or on its last spatial block when they are 1x1. Any method of the CAM family
    explains each image's side with the score against the other image's embedding as its target.
    `a`, `b`: (B,C,H,W) batches, or images for a Learner."""
    _check_cam_method('similarity_maps', method, ('auto', 'exact'))
    model, a = model_inputs(learn_or_model, a)
    _, b = model_inputs(learn_or_model, b)
    if len(a) != len(b): raise ValueError(f'similarity_maps: {len(a)} first and {len(b)} second images; give one of each per pair')
    layer = resolve_layer(model, layer)
    if not (hasattr(model, 'encoder') and hasattr(model, 'similarity')):
        raise TypeError(f'similarity_maps needs a SiameseModel or ProtoNet, got {type(model).__name__}')
    if method not in ('auto', 'exact', 'grad-cam') or eigen_smooth or aug_smooth:
        with eval_mode(model):
            with torch.no_grad(): ea, eb = _embed_from_maps(model, model.encoder(a)), _embed_from_maps(model, model.encoder(b))
            ma, ra, score = partner_maps(model, a, eb, sign, method, layer, eigen_smooth, aug_smooth)
            mb, rb, _ = partner_maps(model, b, ea, sign, method, layer, eigen_smooth, aug_smooth)
        return PairMaps(ma, mb, sign*score, method, ra, rb)
    head = getattr(model, 'head', None)
    with eval_mode(model):
        exact = None
        if method != 'grad-cam' and layer is None and hasattr(head, 'decompose'):
            with torch.no_grad(): fa, fb = model.encoder(a), model.encoder(b)
            # 1x1 maps hold no spatial information: 'auto' then explains an earlier, spatial layer by gradients
            if fa.ndim == 4 and (min(fa.shape[-2:]) > 1 or method == 'exact'):
                with torch.no_grad(): exact = head.decompose(fa, fb)
        if exact is not None:
            ra, rb, score = exact
            ra, rb, used = sign*ra, sign*rb, 'exact'
        elif method == 'exact':
            raise ValueError(f'similarity_maps: {type(head or model).__name__} has no exact decomposition; use method="grad-cam"')
        elif method == 'auto' and layer is None and (pl := pair_layer(model.encoder, a)) is not None:
            # the pair default measured by `bench/cam_quality.py` (ROAD, Omniglot pairs, Conv4): Grad-CAM++ at the last
            # block that keeps half the image's side; the last spatial block's 3x3 maps spread over the paper
            with torch.no_grad(): ea, eb = _embed_from_maps(model, model.encoder(a)), _embed_from_maps(model, model.encoder(b))
            ma, ra, score = partner_maps(model, a, eb, sign, 'grad-cam++', pl)
            mb, rb, _ = partner_maps(model, b, ea, sign, 'grad-cam++', pl)
            return PairMaps(ma, mb, sign*score, 'grad-cam++', ra, rb, f'{type(pl).__name__} {tuple(ra.shape[-2:])}: the last block keeping half the image side (pair default)')
        else:
            with torch.enable_grad():
                fa, ea = _encode_maps(model, a, layer)
                fb, eb = _encode_maps(model, b, layer)
                s = model.similarity(ea, eb)
                ga, gb = torch.autograd.grad((sign*s).sum(), [fa, fb])
            ra, rb = _weighted_maps(fa, ga), _weighted_maps(fb, gb)
            score, used = s.detach(), 'grad-cam'
    return PairMaps(normalize_maps(ra, a.shape[-2:]), normalize_maps(rb, b.shape[-2:]), score, used, ra, rb)

def pair_layer(
    encoder:nn.Module, # a pair model's encoder
    x:torch.Tensor, # images it takes, (B,C,H,W)
) -> nn.Module|None:
    """For a plain stack of convolutions, norms, ReLUs and poolings (Conv4): its last module whose output keeps at least
    half the image's side, where pair maps were measured most faithful (`bench/cam_quality.py`); None for other encoders"""
    mods = list(encoder.children()) if isinstance(encoder, nn.Sequential) else []
    if not mods or not all(isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d)) for m in mods): return None
    side, best = min(x.shape[-2:]), None
    h = x[:1]
    with torch.no_grad():
        for m in mods:
            h = m(h.clone())
            if min(h.shape[-2:]) >= (side + 1)//2: best = m
    return best

def partner_maps(
    model:nn.Module, # a SiameseModel or ProtoNet
    x:torch.Tensor, # images explained, (B,C,H,W)
    partner:torch.Tensor, # the embeddings they are compared with: a pair's other image, or a class prototype, (B,D)
    sign:int=1, # 1: what makes them similar; -1: what makes them different
    method:str='grad-cam', # a method of the CAM family
    layer=None, # a module of `model.encoder` (or a list); default: the last spatial block
    eigen_smooth:bool=False, # first principal component of the weighted activations
    aug_smooth:bool=False, # average over mirror x brightness views
):
    "-> (maps (B,H,W) in [0,1], signed raw maps (B,h,w), the scored similarity (B,)): the CAM family on `x`'s side of a comparison"
    from .family import CAM_METHODS
    layers = [] if layer is None else [layer] if isinstance(layer, nn.Module) else list(layer)
    partner = partner.detach()
    def score(out, rows): return sign*model.similarity(_embed_from_maps(model, out), partner[rows])
    return CAM_METHODS[method](model.encoder, layers, score)(x, eigen_smooth=eigen_smooth, aug_smooth=aug_smooth)

@dataclass
class SupportMaps:
    "Maps on query images against the prototype of a support-set label, with the label and the score"
    maps: torch.Tensor   # (Q,H,W) in [0,1] at the input size
    raw: torch.Tensor    # signed maps before upsampling and normalisation, (Q,h,w)
    labels: list         # the label explained for each query (the predicted one unless given)
    score: torch.Tensor  # the model's similarity of each query to that label's prototype, (Q,)
    method: str          # the CAM family's method

def support_maps(
    learn, # a siamese or episodic `Learner`
    queries, # query images (paths, PIL, tensors) or a (Q,C,H,W) batch the model takes
    support:dict, # {label: images}, as `ff.classify` takes it
    label=None, # the label whose prototype is the target (one for all, or one per query); default: each query's nearest
    method:str='grad-cam++', # a method of the CAM family
    layer=None, # a module of the encoder; default: as `similarity_maps` (Conv4: the block keeping half the side)
    eigen_smooth:bool=False, # first principal component of the weighted activations
    aug_smooth:bool=False, # average over mirror x brightness views
) -> SupportMaps:
    """What in each query makes it match a support-set class: the CAM family with the similarity to that class's prototype
    (the mean embedding of its support images, as the maps' score computes embeddings) as the target"""
    _check_cam_method('support_maps', method)
    if not isinstance(support, dict) or not support: raise ValueError('support_maps: support must be a non-empty dict {label: images}')
    model, q = model_inputs(learn, queries)
    if not (hasattr(model, 'encoder') and hasattr(model, 'similarity')):
        raise TypeError(f'support_maps needs a SiameseModel or ProtoNet, got {type(model).__name__}')
    labels = list(support)
    with eval_mode(model), torch.no_grad():
        protos = torch.stack([_embed_from_maps(model, model.encoder(model_inputs(learn, list(ims) if isinstance(ims, (list, tuple)) else [ims])[1])).mean(0)
                              for ims in support.values()])
        eq = _embed_from_maps(model, model.encoder(q))
        sims = torch.stack([model.similarity(eq, p.expand_as(eq)) for p in protos], 1)   # (Q, n_labels)
    if label is None: idx = sims.argmax(1)
    else:
        want = [label]*len(q) if not isinstance(label, (list, tuple)) else list(label)
        bad = [l for l in want if l not in support]
        if bad or len(want) != len(q): raise ValueError(f'support_maps: label {bad[0] if bad else label!r}: one of the support labels, once or once per query')
        idx = torch.tensor([labels.index(l) for l in want], device=q.device)
    layer = resolve_layer(model, layer) if layer is not None else pair_layer(model.encoder, q)
    with eval_mode(model):
        maps, raw, score = partner_maps(model, q, protos[idx], 1, method, layer, eigen_smooth, aug_smooth)
    return SupportMaps(maps, raw, [labels[i] for i in idx.tolist()], score, method)

