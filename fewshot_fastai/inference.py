"Inference on new pairs: `predict_pair`, `predict_pairs` (also as `Learner` methods)"
from pathlib import Path
import numpy as np
import torch
from PIL import Image
from fastai.learner import Learner
from fastai.torch_core import to_device
from fastai.vision.core import TensorImage
from .data.pairs import SiameseImage, find_pair_sampler
from .data.items import _decode
from .losses import same_probability

__all__ = ['to_image', 'pair_batch', 'predict_pairs', 'predict_pair']

def to_image(x, img_cls):
    "`x` (path, PIL image, array or tensor (H,W)/(C,H,W), uint8 or float in [0,1]) as an `img_cls` image"
    mode = img_cls._open_args['mode']
    if isinstance(x, (str, Path)):
        if not Path(x).is_file(): raise FileNotFoundError(f'{x}: no such image file')
        x = _decode(Path(x))
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if t.ndim == 2: t = t[None]
        if t.ndim != 3 or t.shape[0] not in (1, 3): raise ValueError(f'image tensor must be (H,W) or (C,H,W) with C in 1,3; got {tuple(x.shape)}')
        if t.is_floating_point():
            if t.min() < 0 or t.max() > 1: raise ValueError('float image tensors must be in [0, 1] (not normalised)')
            t = (t*255).round()
        x = t.to(torch.uint8).permute(1, 2, 0).squeeze(-1).numpy()
    if isinstance(x, np.ndarray): x = Image.fromarray(x)
    if not isinstance(x, Image.Image): raise TypeError(f'cannot make an image of {type(x).__name__}')
    return img_cls.create(x.convert(mode))

def pair_batch(dls, pairs) -> tuple:
    "A batch `(a, b)` for the model from `(a, b)` image pairs, through `dls`' validation transforms"
    img_cls = find_pair_sampler(dls).img_cls
    dl = dls.valid
    dl.after_item.split_idx = dl.after_batch.split_idx = 1
    items = [dl.after_item(SiameseImage(to_image(a, img_cls), to_image(b, img_cls))) for a, b in pairs]
    return to_device(dl.after_batch(dl.create_batch(items)), dls.device)

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
