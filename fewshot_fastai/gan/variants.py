"""Generation as augmentation: generated variants of support images at test time
(`with_generated`) and of training images in episodic or pair training (`GeneratedVariants`, a batch transform)."""
import random
import torch
import torch.nn.functional as F
from fastai.vision.augment import RandTransform
from fastai.vision.core import TensorImage
from .._distrib import unwrap_model
from .oneshot import generate_like, generator_config

__all__ = ['with_generated', 'GeneratedVariants']

def _generator(learn, average=None):
    "The net `generate_like` would draw with: the moving average when there is one (and `average` allows it)"
    cfg = generator_config(learn)
    average = cfg.average if average is None else average
    gen = getattr(learn, 'gen_ema', None) if average else None
    return cfg, gen if gen is not None else unwrap_model(learn.model).generator

def with_generated(
    learn, # a `oneshot_learner`
    support:dict, # {label: [images]}, as `ff.classify` takes it
    n:int=4, # generated variants added per support image
    seed:int=0, # image k of the support set (in label order) uses noise seed `seed + k`
) -> dict:
    """The support set with `n` images `generate_like` draws from each of its images added to that image's class:
    `ff.classify(learner, queries, ff.gan.with_generated(gen, support))`. Labels keep their order and their real
    images come first. Generated images are at the generator's size; the classifier resizes them as it does any image."""
    if not isinstance(support, dict) or not support: raise ValueError('with_generated: support must be a non-empty {label: [images]} dict')
    out, k = {}, 0
    for label, ims in support.items():
        ims = list(ims) if isinstance(ims, (list, tuple)) else [ims]
        extra = []
        for im in ims: extra += generate_like(learn, im, n, seed=seed + k); k += 1
        out[label] = ims + extra
    return out

class GeneratedVariants(RandTransform):
    """Replaces each training image, with probability `p`, by a variant a one-shot generator draws from it: a batch
    transform for episodic or pair training (`batch_tfms=[..., ff.gan.GeneratedVariants(gen)]`, training batches
    only). The batch's images (float in [0, 1], any size) are brought to the generator's size and polarity, drawn
    from, and brought back; the generator does not train. Runs after `IntToFloatTensor` and before `ff.data.Elastic`
    and fastai's affine transforms, which then act on the variants too."""
    split_idx, order = 0, 20
    def __init__(
        self,
        learn, # a `oneshot_learner` (its moving average is used when it has one)
        p:float=0.5, # probability that an image is replaced by a variant
    ):
        super().__init__(p=1.)   # every batch passes; `p` is drawn per image
        if not 0 <= p <= 1: raise ValueError(f'GeneratedVariants: p={p} must be in [0, 1]')
        self.cfg, self.gen = _generator(learn)
        self.prob = float(p)

    def encodes(self, x:TensorImage):
        if not x.is_floating_point(): raise TypeError(f'GeneratedVariants: a float batch in [0, 1] is needed (got {x.dtype}); '
                                                      'put it after IntToFloatTensor')
        if x.shape[1] != self.cfg.n_in:
            raise ValueError(f"GeneratedVariants: the batch has {x.shape[1]} channels, the generator draws {self.cfg.n_in}")
        idx = (torch.rand(len(x), device=x.device) < self.prob).nonzero().flatten()
        if not len(idx): return x
        h, w, s = x.shape[-2], x.shape[-1], self.cfg.size
        src = x[idx].float()
        if self.cfg.invert: src = 1 - src
        if (h, w) != (s, s): src = F.interpolate(src, size=(s, s), mode='bilinear', align_corners=False, antialias=True)
        gen = self.gen.to(x.device)
        was = gen.training
        gen.eval()
        try:
            with torch.no_grad(): drawn = (gen.draw(src*2 - 1).float().clamp(-1, 1) + 1)/2
        finally: gen.train(was)
        if (h, w) != (s, s): drawn = F.interpolate(drawn, size=(h, w), mode='bilinear', align_corners=False)
        if self.cfg.invert: drawn = 1 - drawn
        out = x.clone()
        out[idx] = drawn.to(x.dtype)
        return out
