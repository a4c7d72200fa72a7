"Inference on new images: `predict_pair(s)`, embeddings and similarities, support-set `classify`"
import torch
from fastai.learner import Learner
from fastprogress.fastprogress import progress_bar
from fastai.torch_core import to_device
from fastai.vision.core import TensorImage
from .data.pairs import SiameseImage, find_pair_sampler, plain_dl
from .data.items import to_image
from .losses import same_probability
from .models.protonet import prototypes
from .distrib import unwrap_model

__all__ = ['to_image', 'pair_batch', 'image_batch', 'predict_pairs', 'predict_pair', 'embed', 'similarity',
           'class_scores', 'support_scores', 'classify']

def _through_valid(dls, items) -> tuple:
    "Tuples of images through `dls`' validation item and batch transforms, as one batch on `dls.device`"
    img_cls, dl = find_pair_sampler(dls).img_cls, plain_dl(dls.valid)
    dl.after_item.split_idx = dl.after_batch.split_idx = 1
    items = [dl.after_item(type(t)(to_image(x, img_cls) for x in t)) for t in items]
    # to the device first: batch transforms such as a pretrained encoder's Normalize keep their stats there
    return dl.after_batch(to_device(dl.create_batch(items), dls.device))

def pair_batch(dls, pairs) -> tuple:
    "A batch `(a, b)` for the model from `(a, b)` image pairs, through `dls`' validation transforms"
    return _through_valid(dls, [SiameseImage(a, b) for a, b in pairs])

def image_batch(dls, images) -> torch.Tensor:
    "A batch (B,C,H,W) from images (paths, PIL, tensors), prepared as `dls` prepares validation images"
    if hasattr(dls, 'image_batch'): return dls.image_batch(images)   # e.g. EpisodeDataLoaders
    return _through_valid(dls, [(x,) for x in images])[0]

def embed(learn:Learner, images, bs:int=256, progress:bool=False) -> torch.Tensor:
    """Embeddings `learn.model.encode` of `images`, each encoded once: (M,D). A sequence (list, `LazyImages`,
    `IndexedView`) is read `bs` images at a time, so a lazy gallery is never decoded all at once."""
    out = []
    if not (hasattr(images, '__len__') and hasattr(images, '__getitem__')): images = list(images)
    learn.model.eval()
    steps = range(0, len(images), bs)
    if progress: steps = progress_bar(steps, leave=False)
    with torch.no_grad():
        model = unwrap_model(learn.model)   # the model's own methods, also while DDP wraps it during fit
        for i in steps: out.append(model.encode(TensorImage(image_batch(learn.dls, images[i:i+bs]))).float())
    return torch.cat(out) if out else torch.empty(0)

def similarity(learn:Learner, eq:torch.Tensor, es:torch.Tensor) -> torch.Tensor:
    "`learn.model.similarity` of every query embedding with every support embedding: (Q,D),(S,D) -> (Q,S)"
    q, s = len(eq), len(es)
    with torch.no_grad():
        return unwrap_model(learn.model).similarity(eq.repeat_interleave(s, 0), es.repeat(q, 1)).view(q, s).float()

def class_scores(sim:torch.Tensor, support_labels, n_classes:int) -> torch.Tensor:
    "Per-class mean of query x support scores (Q,S) -> (Q,n_classes); K>1 shots are averaged"
    lbl = torch.as_tensor(support_labels, device=sim.device)
    onehot = torch.nn.functional.one_hot(lbl, n_classes).float()
    return sim @ onehot / onehot.sum(0)

def support_scores(learn:Learner, eq:torch.Tensor, es:torch.Tensor, support_labels, n_classes:int,
                   mode:str='mean') -> torch.Tensor:
    """Query x class scores (Q,n_classes) from query and support embeddings. `mode='mean'`: the mean of the K
    query x shot scores (the seed's mean similarity); `'prototype'`: the score against each class's mean embedding
    (Snell et al.). The two agree for K=1."""
    if mode == 'mean': return class_scores(similarity(learn, eq, es), support_labels, n_classes)
    if mode == 'prototype':
        return similarity(learn, eq, prototypes(es, torch.as_tensor(support_labels, device=es.device), n_classes))
    raise ValueError(f"support mode {mode!r}: use 'mean' or 'prototype'")

def classify(learn:Learner, queries, support:dict, bs:int=256, progress:bool=True, mode:str='mean'):
    """Label each query image with the support class it matches best. `support` maps label -> images (paths, PIL
    or tensors). Every image is encoded once; K>1 shots are combined by `mode` (see `support_scores`).
    -> (labels, scores (Q, n_labels))"""
    names = list(support)
    if not names: raise ValueError('classify: empty support set')
    sup = [(i, x) for i, n in enumerate(names) for x in (support[n] if isinstance(support[n], (list, tuple)) else [support[n]])]
    es = embed(learn, [x for _, x in sup], bs)
    eq = embed(learn, queries, bs, progress)
    scores = torch.cat([support_scores(learn, eq[i:i+bs], es, [i for i, _ in sup], len(names), mode)
                        for i in range(0, len(eq), bs)])
    return [names[i] for i in scores.argmax(1).tolist()], scores

def predict_pairs(learn:Learner, pairs, bs:int=64) -> torch.Tensor:
    "Probability (score, for contrastive heads) that each `(a, b)` in `pairs` is the same class. -> (N,)"
    pairs, out = list(pairs), []
    learn.model.eval()
    with torch.no_grad():
        for i in range(0, len(pairs), bs):
            a, b = pair_batch(learn.dls, pairs[i:i+bs])
            out.append(same_probability(learn.loss_func, learn.model(TensorImage(a), TensorImage(b))).float().cpu())
    return torch.cat(out) if out else torch.empty(0)

def predict_pair(learn:Learner, a, b) -> tuple[bool, float]:
    "`(is_same, probability)` for images `a`, `b` (paths, PIL images or tensors)"
    p = float(predict_pairs(learn, [(a, b)])[0])
    return p > 0.5, p

def _learner_predict_pair(self:Learner, a, b):
    "`(is_same, probability)` for images `a`, `b`: `learn.predict_pair(a, b)`"
    return predict_pair(self, a, b)
Learner.predict_pair = _learner_predict_pair  # fastcore's @patch would shadow the module-level function
