"Pair prediction: `predict_pair(s)`: same or different, with its probability"
from pathlib import Path
import numpy as np
from PIL import Image
import torch
from fastai.learner import Learner
from fastai.vision.core import TensorImage
from ..data.images import IMAGE_TYPES
from ..losses import same_probability
from .._distrib import unwrap_model
from .._checks import check_int
from ..config import model_config
from .embedding import model_device, pair_batch

__all__ = ['predict_pairs', 'predict_pair']

def predict_pairs(
    learn:Learner, # a siamese learner
    pairs, # sequence of `(a, b)` images
    bs:int=64, # pairs per batch
) -> torch.Tensor:
    "Probability (score, for contrastive heads) that each `(a, b)` in `pairs` is the same class. -> (N,)"
    check_int('predict_pairs', 'bs', bs)
    if getattr(model_config(learn), 'kind', 'siamese') != 'siamese' or not hasattr(unwrap_model(learn.model), 'head'):
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
