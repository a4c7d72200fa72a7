"""Moment normalisation of drawings: `ink_center` moves a drawing's centre of ink mass to the middle of the image and
scales its bounding box to a fixed share of the side, so that where and how large someone drew a character stops
mattering (the handwriting-recognition practice behind MNIST's centring). `InkCenter` is the same as a fastai item
transform, and as the `prep` of episode and classifier loaders, which apply it before resizing, at training and at
inference alike."""
import numpy as np
from PIL import Image
from fastai.vision.core import PILBase
from fasttransform import Transform
from ..data.prep import register_prep

__all__ = ['ink_center', 'InkCenter']

def _check(caller, fill, ink, threshold):
    if not 0 < fill <= 1: raise ValueError(f'{caller}: fill={fill} must be in (0, 1]')
    if ink not in ('dark', 'light'): raise ValueError(f"{caller}: ink={ink!r}: use 'dark' (dark ink on a light ground) or 'light'")
    if not 0 < threshold < 256: raise ValueError(f'{caller}: threshold={threshold} must be in (0, 256)')

def ink_center(
    im:Image.Image, # a drawing: PIL image of any mode
    fill:float=0.8, # the longer side of the ink's bounding box, as a share of the image side
    ink:str='dark', # 'dark': ink darker than the ground (Omniglot); 'light': light ink on a dark ground (MNIST)
    threshold:int=128, # grey level that separates ink from ground
) -> Image.Image:
    """`im` (same size) with its centre of ink mass in the middle and its ink's bounding box scaled so that its longer
    side is `fill` of the image's shorter side; aspect ratio kept, bilinear, the ground colour outside. Mode 'L' for
    '1'/'L'/'LA'/'P' input, 'RGB' otherwise. A blank image comes back unchanged (in that mode)."""
    _check('ink_center', fill, ink, threshold)
    mode = 'RGB' if im.mode in ('RGB', 'RGBA', 'CMYK', 'YCbCr', 'HSV', 'LAB') else 'L'
    src = im.convert(mode)
    grey = np.asarray(src if mode == 'L' else im.convert('L'))   # one conversion for greyscale input
    mask = grey < threshold if ink == 'dark' else grey >= threshold
    ys, xs = np.nonzero(mask)
    if not len(ys): return src
    w, h = src.size
    # continuous coordinates: pixel i spans [i, i+1), so its centre is i + 0.5 (PIL's transform samples the same way)
    cy, cx = ys.mean() + 0.5, xs.mean() + 0.5
    box = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    s = box/(fill*min(w, h))   # source pixels per output pixel
    ground = 255 if ink == 'dark' else 0
    # output pixel (x, y) samples source (s*x + cx - s*w/2, s*y + cy - s*h/2): the output's middle shows the ink's centre
    return src.transform((w, h), Image.AFFINE, (s, 0, cx - s*w/2, 0, s, cy - s*h/2), resample=Image.BILINEAR,
                         fillcolor=ground if mode == 'L' else (ground,)*3)

@register_prep('ink_center')
class InkCenter(Transform):
    """`ink_center` as a fastai item transform, before `Resize` (`item_tfms=[ff.datasets.InkCenter(), Resize(32)]`), and as the
    `prep` of `EpisodeDataLoaders` / `ClassifierDataLoaders`. Training and inference images get the same treatment;
    `ff.save_model` stores it with the model. fastai and torchvision centre and crop by fixed boxes only, not by
    where the ink is, hence this transform."""
    order = 0   # on the decoded image, before fastai's Resize (order 1)
    def __init__(
        self,
        fill:float=0.8, # the ink's bounding box, as a share of the image side
        ink:str='dark', # 'dark' or 'light' ink
        threshold:int=128, # grey level that separates ink from ground
    ):
        super().__init__()
        _check('InkCenter', fill, ink, threshold)
        self.fill, self.ink, self.threshold = float(fill), ink, int(threshold)
    def encodes(self, x:Image.Image):
        res = ink_center(x, self.fill, self.ink, self.threshold)
        return type(x).create(res) if isinstance(x, PILBase) else res
    def config(self) -> dict:
        "JSON of its settings (what `ff.save_model` writes)"
        return dict(fill=self.fill, ink=self.ink, threshold=self.threshold)
    def __repr__(self): return f'InkCenter(fill={self.fill}, ink={self.ink!r}, threshold={self.threshold})'
