"Inference on new images: `predict_pair(s)`, embeddings and similarities, support-set `classify`"
import math, threading
from pathlib import Path
import numpy as np
from PIL import Image
from functools import partial
import torch
import torch.nn.functional as F
from fastai.learner import Learner
from fastprogress.fastprogress import progress_bar
from fastai.torch_core import to_device
from fastai.vision.core import TensorImage
from .data.pairs import SiameseImage, find_pair_sampler
from .data.items import to_image, IMAGE_TYPES
from .losses import same_probability
from .models.protonet import prototypes
from ._distrib import unwrap_model, plain_dl
from ._checks import check_int

__all__ = ['model_device', 'shift_views', 'flip_views', 'affine_views', 'tta_views', 'tta_from_spec', 'learner_tta', 'to_image', 'pair_batch', 'image_batch', 'predict_pairs', 'predict_pair', 'embed', 'similarity',
           'class_scores', 'support_scores', 'SupportSet', 'classify']

def _through_valid(dls, items) -> tuple:
    "Tuples of images through `dls`' validation item and batch transforms, as one batch on `dls.device`"
    img_cls, dl = find_pair_sampler(dls).img_cls, plain_dl(dls.valid)
    dl.after_item.split_idx = dl.after_batch.split_idx = 1
    items = [dl.after_item(type(t)(to_image(x, img_cls) for x in t)) for t in items]
    # to the device first: batch transforms such as a pretrained encoder's Normalize keep their stats there
    return dl.after_batch(to_device(dl.create_batch(items), dls.device))

def model_device(
    model, # a module (possibly DDP-wrapped) or a learner's model
) -> torch.device:
    """The device of `model`'s parameters (the CPU for a model without any): where its inputs must go. fastai's
    `Learner._set_device` sends a batch to the model's device too, so a learner whose `dls` sit on a GPU but whose
    model is still on the CPU (built, not yet fitted; or moved there) works; the `dls`' batch transforms still run on
    `dls.device`, where their state lives."""
    p = next(unwrap_model(model).parameters(), None)
    return p.device if p is not None else torch.device('cpu')

def pair_batch(
    dls, # the pair loaders of a siamese learner
    pairs, # (a, b) pairs of image files, PIL images or arrays
) -> tuple:
    "A batch `(a, b)` for the model from `(a, b)` image pairs, through `dls`' validation transforms"
    return _through_valid(dls, [SiameseImage(a, b) for a, b in pairs])

def image_batch(
    dls, # a learner's loaders (pairs or episodes)
    images, # image files, PIL images or arrays
) -> torch.Tensor:
    "A batch (B,C,H,W) from images (paths, PIL, tensors), prepared as `dls` prepares validation images"
    if hasattr(dls, 'image_batch'): return dls.image_batch(images)   # e.g. EpisodeDataLoaders
    return _through_valid(dls, [(x,) for x in images])[0]

def shift_views(
    x:torch.Tensor, # a batch of images, (B,C,H,W)
    px:int, # shift in pixels
) -> list:
    """The batch and its copies shifted by `px` pixels left, right, up and down, edges replicated: 5 tensors (B,C,H,W).
    Test-time augmentation for one-shot characters, where a drawing's position varies by a few pixels."""
    p = int(px)
    xp = F.pad(x, (p, p, p, p), mode='replicate')
    h, w = x.shape[-2:]
    return [xp[..., i:i + h, j:j + w] for i, j in ((p, p), (p, 0), (p, 2*p), (0, p), (2*p, p))]

def flip_views(
    x:torch.Tensor, # a batch of images, (B,C,H,W)
    px:int=0, # also shift each of the two by `px` pixels (`shift_views`); 0: no shifts
) -> list:
    """The batch and its left-right mirror image (and their `shift_views` when `px` > 0): 2 (or 10) tensors (B,C,H,W).
    Test-time augmentation for roughly symmetric subjects such as faces (not for characters, whose mirror image may be
    another character). Pass it as `tta=ff.inference.flip_views` (or `tta=partial(ff.inference.flip_views, px=2)`)."""
    both = [x, x.flip(-1)]
    return [v for b in both for v in shift_views(b, px)] if px else both

def affine_views(
    x:torch.Tensor, # a batch of images, (B,C,H,W)
    degrees=(0,), # rotations, degrees (0: the image itself)
    scales=(1.,), # zooms: > 1 enlarges the content (1: none)
    px:int=0, # also shift each view by `px` pixels (`shift_views`); 0: no shifts
) -> list:
    """The batch rotated by each of `degrees` and zoomed by each of `scales` (every combination, edges replicated), each
    with its `shift_views` when `px` > 0: len(degrees)*len(scales) (x5 with shifts) tensors (B,C,H,W).
    Test-time augmentation for drawings, whose angle and size vary from one hand to another; e.g.
    `tta=partial(ff.inference.affine_views, degrees=(-5, 0, 5), px=3)`. fastai's `Rotate`/`Zoom` draw random parameters per
    image; test-time views need fixed ones, so the sampling grid is built here."""
    if not len(degrees) or not len(scales): raise ValueError('affine_views: degrees and scales need at least one value each')
    if any(s <= 0 for s in scales): raise ValueError(f'affine_views: scales={tuple(scales)} must be > 0')
    out = []
    for d in degrees:
        for s in scales:
            if d == 0 and s == 1: v = x
            else:
                a = math.radians(d)
                theta = torch.tensor([[math.cos(a), -math.sin(a), 0.], [math.sin(a), math.cos(a), 0.]], device=x.device)/s
                grid = F.affine_grid(theta.expand(len(x), 2, 3).to(torch.float32), list(x.shape), align_corners=False)
                v = F.grid_sample(x.float(), grid, mode='bilinear', padding_mode='border', align_corners=False).to(x.dtype)
            out += shift_views(v, px) if px else [v]
    return out

def tta_views(
    x:torch.Tensor, # a batch of images, (B,C,H,W)
    tta, # 0: none; an int: `shift_views` by that many px; a callable: `tta(x)` gives the views
) -> list:
    "The views whose embeddings are averaged at test time"
    if callable(tta): return list(tta(x))
    return shift_views(x, tta) if tta else [x]

TTA_VIEWS = ('shift', 'flip', 'affine')

def tta_from_spec(
    spec:dict|None, # JSON form of a test-time augmentation: {'views': 'shift'|'flip'|'affine', 'px': int, 'degrees': [...], 'scales': [...]}; None: none
):
    """The `tta` argument (0 or a callable giving views) that a JSON spec describes. Recipes store their TTA this way in
    `learn.fewshot_config['tta']`, so that `save_model` can write it and every entry point can apply it."""
    if not spec: return 0
    if not isinstance(spec, dict) or spec.get('views') not in TTA_VIEWS:
        raise ValueError(f"tta spec {spec!r}: a dict whose 'views' is one of {TTA_VIEWS}")
    px = spec.get('px', 0)
    check_int('tta spec', 'px', px, 0)
    if px > MAX_TTA_PX: raise ValueError(f'tta spec: px={px}: shifts of at most {MAX_TTA_PX} px')
    if spec['views'] == 'shift': return px
    if spec['views'] == 'flip': return partial(flip_views, px=px)
    degrees, scales = spec.get('degrees', [0]), spec.get('scales', [1.])
    for name, vals, low, high in (('degrees', degrees, -180, 180), ('scales', scales, 0.1, 10)):
        if not isinstance(vals, (list, tuple)) or not vals or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high for v in vals):
            raise ValueError(f'tta spec: {name}={str(vals)[:60]}: a non-empty list of numbers in {low}..{high}')
    n = len(degrees)*len(scales)*(5 if px else 1)
    if n > MAX_TTA_VIEWS:
        raise ValueError(f'tta spec: {len(degrees)} degrees x {len(scales)} scales{" x 5 shifts" if px else ""} = {n} views; at most {MAX_TTA_VIEWS}')
    return partial(affine_views, degrees=tuple(degrees), scales=tuple(scales), px=px)

# Bounds on what a test-time augmentation (from a model file or a recipe) may ask for: each view costs a full encoder
# pass over every image, so 64 views make inference 64 times slower than none
MAX_TTA_VIEWS, MAX_TTA_PX = 64, 16

def learner_tta(
    learn, # a learner, possibly carrying `fewshot_config['tta']`
):
    "The test-time augmentation a learner carries from its recipe (`fewshot_config['tta']`), as a `tta` argument; 0: none"
    return tta_from_spec((getattr(learn, 'fewshot_config', None) or {}).get('tta'))

def _check_tta(caller:str, tta):
    "`tta` is None (the learner's own), a non-negative int or a callable that gives views"
    if tta is not None and not callable(tta): check_int(caller, 'tta', tta, 0)

def embed(
    learn:Learner, # a learner whose model has `encode`
    images, # images: paths, PIL images or tensors, or a lazy sequence
    bs:int=256, # images per encoder batch
    progress:bool=False, # show a progress bar
    tta=None, # test-time augmentation: average the embeddings of each image and its `shift_views` by `tta` px, or of the views a callable gives (e.g. `flip_views`); 0: none; None: the learner's own (its recipe's, `learner_tta`)
) -> torch.Tensor:
    """Embeddings `learn.model.encode` of `images`, each encoded once: (M,D), averaged over the TTA views and then
    whitened when the model carries a `whitening` (e.g. the `faces` recipe's). A sequence (list, `LazyImages`,
    `IndexedView`) is read `bs` images at a time, so a lazy gallery is never decoded all at once."""
    check_int('embed', 'bs', bs); _check_tta('embed', tta)
    if tta is None: tta = learner_tta(learn)
    out = []
    if not (hasattr(images, '__len__') and hasattr(images, '__getitem__')): images = list(images)
    learn.model.eval()
    steps = range(0, len(images), bs)
    if progress: steps = progress_bar(steps, leave=False)
    with torch.no_grad():
        model = unwrap_model(learn.model)   # the model's own methods, also while DDP wraps it during fit
        dev = model_device(model)
        for i in steps:
            x = TensorImage(image_batch(learn.dls, images[i:i+bs]).to(dev))
            views = tta_views(x.as_subclass(torch.Tensor), tta)
            e = torch.stack([model.encode(v).float() for v in views]).mean(0)
            white = getattr(model, 'whitening', None)   # after the views are averaged, as it was fitted
            out.append(white(e) if white is not None else e)
    return torch.cat(out).as_subclass(torch.Tensor) if out else torch.empty(0)   # plain, not fastai's TensorImage

def similarity(
    learn:Learner, # the learner whose model scores pairs of embeddings
    eq:torch.Tensor, # query embeddings, (Q,D)
    es:torch.Tensor, # support embeddings, (S,D)
) -> torch.Tensor:
    "`learn.model.similarity` of every query embedding with every support embedding: (Q,D),(S,D) -> (Q,S)"
    q, s, model = len(eq), len(es), unwrap_model(learn.model)
    dev = model_device(model)   # embeddings made elsewhere (stored, ONNX, another device) go to the model's device
    eq, es = eq.to(dev), es.to(dev)
    with torch.no_grad():
        return model.similarity(eq.repeat_interleave(s, 0), es.repeat(q, 1)).view(q, s).float()

def class_scores(
    sim:torch.Tensor, # query x support similarities, (Q,S)
    support_labels, # class index of each support image
    n_classes:int, # number of classes
) -> torch.Tensor:
    "Per-class mean of query x support scores (Q,S) -> (Q,n_classes); K>1 shots are averaged"
    lbl = torch.as_tensor(support_labels, device=sim.device)
    onehot = torch.nn.functional.one_hot(lbl, n_classes).float()
    return sim @ onehot / onehot.sum(0)

def support_scores(
    learn:Learner, # the learner whose model scores pairs of embeddings
    eq:torch.Tensor, # query embeddings, (Q,D)
    es:torch.Tensor, # support embeddings, (S,D)
    support_labels, # class index (0..n_classes-1) of each support embedding
    n_classes:int, # number of classes
    mode:str='mean', # 'mean' or 'prototype'
) -> torch.Tensor:
    """Query x class scores (Q,n_classes) from query and support embeddings. `mode='mean'`: the mean of the K
    query x shot scores (the seed's mean similarity); `'prototype'`: the score against each class's mean embedding
    (Snell et al.). The two agree for K=1."""
    if mode == 'mean': return class_scores(similarity(learn, eq, es), support_labels, n_classes)
    if mode == 'prototype':
        return similarity(learn, eq, prototypes(es, torch.as_tensor(support_labels, device=es.device), n_classes))
    raise ValueError(f"support mode {mode!r}: use 'mean' or 'prototype'")

def _check_mode(mode):
    if mode not in ('mean', 'prototype'): raise ValueError(f"support mode {mode!r}: use 'mean' or 'prototype'")

def _check_queries(where:str, queries):
    "A sequence of images, not one image (a path string would be taken for a sequence of its characters)"
    if isinstance(queries, (str, Path, bytes, Image.Image, np.ndarray)) or isinstance(queries, torch.Tensor) and queries.ndim < 4:
        raise TypeError(f'{where}: queries must be a list of images (or a (B,C,H,W) batch); got one {type(queries).__name__}: '
                        'wrap it in a list, or use .predict(image)')

class SupportSet:
    """The support images of each label, encoded once: `classify(queries)` and `predict(query)` encode only the
    queries. Safe to share between threads: each call scores one consistent snapshot of the labels. Labels and shots can be added (`add`) or removed (`remove`) later; `ff.save_model(learn, path,
    support=ss)` stores it beside the model and `ff.load_model` gives it back (`learn.support_set`)."""
    def __init__(
        self,
        learn:Learner, # a siamese or episodic learner
        support:dict|None=None, # {label: image or images (paths, PIL, tensors)}
        bs:int=256, # images per encoder batch
        mode:str='mean', # 'mean' score over the K shots, or 'prototype' (class-mean embedding)
        tta=None, # test-time augmentation: embeddings averaged over `shift_views` by `tta` px, or over the views a callable gives (e.g. `flip_views`); 0: none; None: the learner's own
    ):
        _check_mode(mode); check_int('SupportSet', 'bs', bs); _check_tta('SupportSet', tta)
        self.learn, self.bs, self.mode, self.tta, self.emb = learn, bs, mode, tta, {}
        # shared between threads (e.g. a web server's workers): changes hold the lock; scoring reads a snapshot under it
        self._lock = threading.RLock()
        self.update(support or {})

    def __getstate__(self): return {k: v for k, v in self.__dict__.items() if k != '_lock'}
    def __setstate__(self, d): self.__dict__.update(d); self._lock = threading.RLock()

    @property
    def labels(self) -> list: return list(self.emb)
    def __len__(self): return len(self.emb)
    def __repr__(self): return f'{type(self).__name__}({len(self)} labels, {sum(len(e) for e in self.emb.values())} shots)'

    def update(
        self,
        support:dict, # {label: image or images}
    ):
        "Add the shots of several labels ({label: images}), encoded together in batches of `bs`; labels are kept as strings"
        if not isinstance(support, dict): raise TypeError(f'SupportSet: support must be a dict {{label: images}}, not a {type(support).__name__}')
        items = {}
        for k, v in support.items():
            if str(k) in items: raise ValueError(f'SupportSet: labels {next(l for l in support if str(l) == str(k))!r} and {k!r} are both {str(k)!r} as strings')
            items[str(k)] = list(v) if isinstance(v, (list, tuple)) else [v]
        if (empty := [k for k, v in items.items() if not v]):
            raise ValueError(f'SupportSet: label {empty[0]!r} has no images' + (f' ({len(empty)} such labels)' if len(empty) > 1 else ''))
        e, start = embed(self.learn, [x for v in items.values() for x in v], self.bs, tta=self.tta), 0   # outside the lock
        with self._lock:
            emb = dict(self.emb)   # a new dict: a snapshot taken before stays whole
            for k, v in items.items():
                emb[k] = torch.cat([emb[k], e[start:start+len(v)]]) if k in emb else e[start:start+len(v)]
                start += len(v)
            self.emb = emb
        return self

    def add(
        self,
        label, # the class label
        images, # one image or a list: paths, PIL images or tensors
    ):
        "Encode `images` (one or a list) as shots of `label`, a new label or more shots of one already there"
        return self.update({label: images})

    def remove(
        self,
        label, # the class label
        shots=None, # positions of the shots to remove; None: the whole label
    ):
        "Remove `label`, or only its shots at the positions `shots` (one position or a list; the label goes when none is left)"
        label = str(label)
        if isinstance(shots, int) and not isinstance(shots, bool): shots = [shots]
        if shots is not None and (not isinstance(shots, (list, tuple, range)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in shots)):
            raise TypeError(f'SupportSet.remove: shots must be positions (an int or a list of ints), not {shots!r}')
        with self._lock:
            emb = dict(self.emb)
            if label not in emb: raise KeyError(f'SupportSet: no label {label!r} (labels: {list(emb)[:10]})')
            if shots is not None:
                drop = set(shots)
                if not drop <= set(range(len(emb[label]))):
                    raise IndexError(f'SupportSet: label {label!r} has {len(emb[label])} shots; cannot remove {sorted(drop)}')
                keep = [i for i in range(len(emb[label])) if i not in drop]
            if shots is not None and keep: emb[label] = emb[label][keep]
            else: del emb[label]
            self.emb = emb
        return self

    def scores(
        self,
        queries, # query images: paths, PIL images or tensors
        progress:bool=False, # show a progress bar
        mode:str|None=None, # 'mean' or 'prototype'; default: the set's
    ) -> torch.Tensor:
        "Query x label scores (Q, n_labels); only the queries go through the encoder"
        return self._scores(queries, progress, mode)[1]

    def _scores(self, queries, progress=False, mode=None):
        "(labels, scores) from one snapshot of the support set, consistent even while another thread changes it"
        _check_queries('SupportSet.classify', queries)
        with self._lock: emb = self.emb   # replaced, never changed in place: this dict stays as it is
        if not emb: raise ValueError('SupportSet: no labels; add some with .add(label, images)')
        mode = mode or self.mode
        _check_mode(mode)
        eq = embed(self.learn, queries, self.bs, progress, tta=self.tta)
        es = torch.cat(list(emb.values())).to(eq.device)
        lbl = [i for i, e in enumerate(emb.values()) for _ in range(len(e))]
        return list(emb), (torch.cat([support_scores(self.learn, eq[i:i+self.bs], es, lbl, len(emb), mode)
                                      for i in range(0, len(eq), self.bs)]) if len(eq) else torch.empty(0, len(emb)))

    def classify(
        self,
        queries, # query images: paths, PIL images or tensors
        progress:bool=False, # show a progress bar
        mode:str|None=None, # 'mean' or 'prototype'; default: the set's
    ):
        "-> (labels, scores (Q, n_labels)) for the query images"
        labels, scores = self._scores(queries, progress, mode)
        return [labels[i] for i in scores.argmax(1).tolist()], scores

    def predict(
        self,
        query, # one image: path, PIL image or tensor
        mode:str|None=None, # 'mean' or 'prototype'; default: the set's
    ):
        "-> (label, score) for one query image"
        labels, scores = self.classify([query], mode=mode)
        return labels[0], float(scores[0].max())

def classify(
    learn:Learner, # a siamese or episodic learner
    queries, # query images: paths, PIL images or tensors
    support:dict, # {label: images}
    bs:int=256, # images per encoder batch
    progress:bool=True, # show a progress bar
    mode:str='mean', # 'mean' score over the K shots, or 'prototype' (class-mean embedding)
    tta=None, # test-time augmentation: embeddings averaged over `shift_views` by `tta` px, or over the views a callable gives (e.g. `flip_views`); 0: none; None: the learner's own
):
    """Label each query image with the support class it matches best. `support` maps label -> images (paths, PIL
    or tensors). Every image is encoded once (through a `SupportSet`); K>1 shots are combined by `mode` (see
    `support_scores`). -> (labels, scores (Q, n_labels))"""
    if not isinstance(support, dict): raise TypeError(f'classify: support must be a dict {{label: images}}, not a {type(support).__name__}')
    if not support: raise ValueError('classify: empty support set')
    _check_queries('classify', queries)
    return SupportSet(learn, support, bs, mode, tta).classify(queries, progress)

def predict_pairs(
    learn:Learner, # a siamese learner
    pairs, # sequence of `(a, b)` images
    bs:int=64, # pairs per batch
) -> torch.Tensor:
    "Probability (score, for contrastive heads) that each `(a, b)` in `pairs` is the same class. -> (N,)"
    check_int('predict_pairs', 'bs', bs)
    if getattr(learn, 'fewshot_config', {}).get('kind', 'siamese') != 'siamese' or not hasattr(unwrap_model(learn.model), 'head'):
        raise TypeError('predict_pair: needs a pair (siamese) model; for an episodic model compare images with ff.classify or ff.SupportSet')
    pairs, out = list(pairs), []
    for i, pr in enumerate(pairs):
        if not isinstance(pr, (tuple, list)) or len(pr) != 2: raise TypeError(f'predict_pairs: pair {i} is not an (a, b) pair of images')
        for x in pr:
            if not isinstance(x, (str, Path, bytes, bytearray, Image.Image, np.ndarray, torch.Tensor)):
                raise TypeError(f'predict_pairs: pair {i}: cannot make an image of {type(x).__name__}: give {IMAGE_TYPES}')
    learn.model.eval()
    dev = model_device(learn.model)
    with torch.no_grad():
        for i in range(0, len(pairs), bs):
            a, b = (t.to(dev) for t in pair_batch(learn.dls, pairs[i:i+bs]))
            out.append(same_probability(learn.loss_func, learn.model(TensorImage(a), TensorImage(b))).float().cpu())
    res = torch.cat(out) if out else torch.empty(0)
    if not torch.isfinite(res).all(): raise ValueError('predict_pairs: the model gave a NaN or infinite score (are its weights broken?)')
    return res

def predict_pair(
    learn:Learner, # a siamese learner
    a, # first image: path, PIL image or tensor
    b, # second image
) -> tuple[bool, float]:
    "`(is_same, probability)` for images `a`, `b` (paths, PIL images or tensors)"
    p = float(predict_pairs(learn, [(a, b)])[0])
    return p > 0.5, p

def _learner_predict_pair(self:Learner, a, b):
    "`(is_same, probability)` for images `a`, `b`: `learn.predict_pair(a, b)`"
    return predict_pair(self, a, b)
Learner.predict_pair = _learner_predict_pair  # fastcore's @patch would shadow the module-level function
