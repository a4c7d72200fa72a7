"The `drawings` recipe: one-shot recognition of line drawings (Omniglot-like characters), the Omniglot benchmark's defaults"
import fastai.callback.channelslast  # noqa: F401  patches Learner.to_channelslast
from fastai.vision.augment import Rotate, Zoom
from fastai.vision.core import PILImageBW
from fastai.torch_core import set_seed
from fastcore.basics import listify
from ..data.augment import Elastic
from ..data.episode_loaders import EpisodeDataLoaders
from ..datasets.ink import InkCenter
from ..data.split import class_split
from ..learner import episodic_learner
from .budget import fit_recipe
from .registry import register, class_folder

__all__ = ['drawings']

@register('drawings', data='grey line drawings, one folder per character (Omniglot-like)')
def drawings(
    data, # a folder of class folders (or a `ClassFolder`) of grey line drawings
    epochs:int=55, # one-cycle epochs of `episodes_per_epoch` episodes
    minutes:float|None=None, # instead of `epochs`: the epochs that fit this many minutes (timed on a short probe)
    size:int=32, # image side (px); 32 is the smallest that keeps Conv4's final maps 2x2
    ink_center:float=0.8, # `ff.datasets.InkCenter(fill)` on every image (training and inference): ink centred, its box this share of the side; 0: off
    rotations:int=8, # training classes per character: its 4 rotations (4), and their mirror images (8)
    elastic:float=1.5, # `ff.data.Elastic` magnitude (px) in training batches; 0: off
    rotate:float=10., # fastai `Rotate(max_deg)` in training (p=0.75)
    zoom:float=1.15, # fastai `Zoom(max_zoom)` in training (p=0.75)
    n_way:int=30, # classes per training episode
    n_query:int=5, # queries per class in a training episode
    episodes_per_epoch:int=100, # training episodes per epoch
    hidden:int=64, # Conv4 width
    pool_first:bool=True, # Conv4 blocks pool before BN and ReLU (cheaper steps)
    pool:str='flatten', # the embedding: 'flatten' keeps the final maps' layout, 'avg' pools them
    lr:float=3e-3, # one-cycle maximum learning rate
    tta_px:int=3, # test-time augmentation: embeddings averaged over shifts by this many px (0: none)
    tta_degrees:float=5., # test-time augmentation: also rotations by +-this many degrees, each with its shifts (0: none)
    valid_pct:float=0., # share of the classes held out for validation episodes (monitoring); 0: train on all
    seed:int=0, # random seed (split, episodes, initial weights)
    channels_last:bool=True, # fastai's channels-last memory format: about 20% faster Conv4 steps on CPU, same answers
    quiet:bool=True, # no progress bar or table
    cbs=None, # more callbacks for the fit
    extra_tfms=None, # more training batch transforms, e.g. `ff.gan.GeneratedVariants(generator)` (not saved with the model)
):
    """A prototypical network (Conv4) trained on episodes of `data`'s characters, their rotations and mirror images as
    extra classes, with ink centring, affine and elastic augmentation; at inference it averages the embeddings of
    shifted and rotated views. -> the trained `EpisodicLearner` (`learn.model_config.stats`: epochs, training seconds)"""
    if size < 16: raise ValueError(f'drawings: size={size}: Conv4 halves the image 4 times; use 16 px or more')
    cf = class_folder(data)
    def build(episodes, seed=seed):
        set_seed(seed)
        aug = [Rotate(max_deg=rotate, p=0.75), Zoom(max_zoom=zoom, p=0.75)] + ([Elastic(elastic)] if elastic else []) + listify(extra_tfms)
        held = sorted(class_split(cf.classes, valid_pct, seed)) if valid_pct else []
        split = dict(valid_classes=held) if held else dict(valid_pct=0)
        dls = EpisodeDataLoaders.from_class_folder(cf, size=size, img_cls=PILImageBW, seed=seed, **split,
                                                   n_way=n_way, n_query=n_query, valid_n_way=min(20, len(held)),
                                                   episodes_per_epoch=episodes, rotations=rotations, batch_tfms=aug,
                                                   prep=InkCenter(ink_center) if ink_center else None)
        learn = episodic_learner(dls, 'conv4', pool=pool, encoder_kwargs=dict(hidden=hidden, pool_first=pool_first, strided=()),
                                 cbs=cbs)
        if channels_last: learn.to_channelslast(use_amp=False)
        return learn
    def probe(timer):
        learn = build(20)
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, lr, cbs=timer)
    learn = build(episodes_per_epoch)
    stats = fit_recipe(learn, epochs, lr, minutes, probe, episodes_per_epoch, 20, quiet)
    tta = (dict(views='affine', degrees=[-tta_degrees, 0., tta_degrees], scales=[1.], px=tta_px) if tta_degrees
           else dict(views='shift', px=tta_px) if tta_px else None)
    learn.model_config.update(recipe='drawings', tta=tta, stats=stats)   # after training: the validation episodes ran without it
    return learn
