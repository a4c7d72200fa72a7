"""A loader's image preparation as JSON, one record for every kind of loader: the image mode, the resize, a `prep`
transform that can be saved (registered here under a key: `ff.datasets.InkCenter` is 'ink_center'), and the batch
normalisation. `SiameseDataLoaders.image_prep()` / `EpisodeDataLoaders.image_prep()` write it (what `save_model`
stores), their `from_image_prep` rebuild empty loaders that prepare new images the same way (what `load_model` uses)."""
from fastai.data.transforms import IntToFloatTensor, Normalize
from fastai.vision.augment import AffineCoordTfm
from .._distrib import plain_dl

__all__ = ['register_prep', 'prep_config', 'prep_from_config', 'batch_prep', 'batch_tfms']

PREPS: dict = {}   # key in the JSON -> transform class with `config()` and `cls(**config)`

def register_prep(
    key:str, # the transform's key in the saved JSON
):
    "Class decorator: a PIL -> PIL transform with a `config()` dict that `cls(**config)` rebuilds, saved under `key`"
    def deco(cls):
        cls.prep_key = key
        PREPS[key] = cls
        return cls
    return deco

def prep_config(
    t, # a transform
) -> tuple[str, dict]|None:
    "`(key, config)` of a registered prep transform, else None"
    key = getattr(type(t), 'prep_key', None)
    return (key, t.config()) if key in PREPS and isinstance(t, PREPS[key]) else None

def prep_from_config(
    image:dict, # an `image_prep()` record
):
    "The prep transform the record names, rebuilt, else None"
    found = [PREPS[k](**image[k]) for k in PREPS if k in image]
    return found[0] if found else None

def batch_prep(
    dls, # loaders whose validation batch transforms are read
    where:str='save_model', # who asks, for the error
) -> dict:
    "The validation batch transforms as JSON: `{'normalize': {mean, std}}` or `{}`; refuses one it cannot record"
    out = {}
    for t in plain_dl(dls.valid).after_batch.fs:
        if isinstance(t, Normalize): out['normalize'] = dict(mean=t.mean.flatten().tolist(), std=t.std.flatten().tolist())
        # fastai's affine transforms (Rotate, Zoom, Flip...) set split_idx per call and are the identity on validation
        elif not isinstance(t, (IntToFloatTensor, AffineCoordTfm)) and getattr(t, 'split_idx', None) != 0:
            raise ValueError(f'{where}: validation batch transform {type(t).__name__} cannot be saved as JSON; '
                             'use learn.export for this learner')
    return out

def batch_tfms(
    image:dict, # an `image_prep()` record
) -> list:
    "The validation batch transforms the record describes: to float, then its normalisation if it had one"
    norm = image.get('normalize')
    return [IntToFloatTensor()] + ([Normalize.from_stats(norm['mean'], norm['std'])] if norm else [])
