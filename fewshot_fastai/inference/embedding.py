"Images to batches to embeddings, and the scores between embeddings (pairs, classes, support sets)"
from functools import partial
import torch
from fastai.learner import Learner
from fastprogress.fastprogress import progress_bar
from fastai.torch_core import to_device
from fastai.vision.core import TensorImage
from ..data.pairs import SiameseImage, find_pair_sampler
from ..data.images import to_image
from ..methods import create_method, class_scores
from .._distrib import unwrap_model, plain_dl
from .._checks import check_int, renamed
from .views import tta_views, learner_tta, _check_tta

__all__ = ['model_device', 'pair_batch', 'image_batch', 'embed', 'similarity', 'class_scores', 'support_scores']

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
            # channels-last: PyTorch's CPU max-pooling of NCHW maps is up to 20x slower (measured: 15x64x32x32, 7 ms
            # against 0.37); the convolutions follow the input's layout, the answers are the same to float rounding
            views = [v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v for v in views]
            if len(views) > 1 and len(x)*len(views) <= bs:   # a few images (a served query): every view in one forward
                e = model.encode(torch.cat(views)).float().view(len(views), len(x), -1).mean(0)
            else: e = torch.stack([model.encode(v).float() for v in views]).mean(0)
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

@renamed(mode='method')
def support_scores(
    learn:Learner, # the learner whose model scores pairs of embeddings
    eq:torch.Tensor, # query embeddings, (Q,D)
    es:torch.Tensor, # support embeddings, (S,D)
    support_labels, # class index (0..n_classes-1) of each support embedding
    n_classes:int, # number of classes
    method:str='mean', # a registered classifier (`ff.methods.list_methods()`): 'mean', 'prototype', or one of yours
) -> torch.Tensor:
    """Query x class scores (Q,n_classes) from query and support embeddings, by the classifier `method` on the model's
    `similarity` (`ff.methods`): 'mean', the mean of the K query x shot scores (the seed's mean similarity);
    'prototype', the score against each class's mean embedding (Snell et al.). The two agree for K=1."""
    return create_method(method, partial(similarity, learn)).process_support_set(es, support_labels, n_classes).forward(eq)
