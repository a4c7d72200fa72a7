"The `pairs` recipe: a siamese network that says whether two images show the same class (the recipe of `make demo`)"
from fastai.vision.augment import Resize, Rotate, Zoom
from fastai.vision.core import PILImage, PILImageBW
from fastai.torch_core import set_seed
from ..data.pairs import SiameseDataLoaders
from ..learner import siamese_learner
from .budget import fit_recipe
from .registry import register, class_folder

__all__ = ['pairs']

@register('pairs', data='any images, one folder per class: same / different verification')
def pairs(
    data, # a folder of class folders (or a `ClassFolder`)
    epochs:int=12, # one-cycle epochs (every training image is an anchor once per epoch)
    minutes:float|None=None, # instead of `epochs`: the epochs that fit this many minutes (timed on a probe)
    size:int=28, # image side (px)
    head:str='contrastive', # 'contrastive' (distance, calibrated threshold), 'l1' (Koch), 'concat' or 'cosine'
    arch:str='conv4', # encoder: conv4, koch_net, efficientnet_lite0, a torchvision or timm name
    grey:bool=True, # read the images as grey (False: RGB)
    lr:float=3e-3, # one-cycle maximum learning rate
    bs:int=64, # pairs per batch
    valid_pct:float=0.2, # share of the classes held out: validation pairs of classes unseen in training
    augment:bool=True, # fastai Rotate(10 deg) and Zoom(1.15) in training
    seed:int=0, # random seed (split, pairs, initial weights)
    quiet:bool=True, # no progress bar or table
    cbs=None, # more callbacks (e.g. `ff.NWayEval`)
):
    """Siamese training on pairs drawn afresh each epoch (half same, half different), validated on fixed pairs of
    held-out classes. -> the trained `SiameseLearner` (`learn.model_config.stats`: epochs, seconds, verification accuracy)"""
    if size < 16: raise ValueError(f'pairs: size={size}: the encoders halve the image several times; use 16 px or more')
    cf = class_folder(data)
    tfms = [Rotate(max_deg=10, p=0.75), Zoom(max_zoom=1.15, p=0.75)] if augment else []
    def build(seed=seed):
        set_seed(seed)
        dls = SiameseDataLoaders.from_class_folder(cf, valid_pct=valid_pct, seed=seed, img_cls=PILImageBW if grey else PILImage,
                                                   item_tfms=Resize(size), batch_tfms=tfms, bs=bs)
        return siamese_learner(dls, arch, head=head, cbs=cbs)
    def probe(timer):   # the real epoch length: pair epochs are not made of a fixed number of steps
        learn = build()
        with learn.no_bar(), learn.no_logging(): learn.fit(2, lr/10, cbs=timer)
    learn = build()
    stats = fit_recipe(learn, epochs, lr, minutes, probe, 1, 1, quiet)
    stats.update(verification_accuracy=round(float(learn.recorder.values[-1][2]), 4), valid_pairs=len(learn.dls.valid_ds),
                 held_out_classes=len(learn.dls.valid_classes))
    learn.model_config.update(recipe='pairs', stats=stats)
    return learn
