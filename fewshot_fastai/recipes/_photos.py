"The `photos` recipe: verification and recognition of photos that are not faces (or faces dlib cannot align), with no training"
import time
from fastai.vision.core import PILImage
from ..data.classifier_loaders import ClassifierDataLoaders
from ..learner import episodic_learner
from ..inference import embed
from ..verification.whitening import fit_whitening
from .registry import register, class_folder

__all__ = ['photos']

@register('photos', data='colour or grey photos of objects or identities, one folder per class')
def photos(
    data, # a folder of class folders (or a `ClassFolder`), one per class: the whitening is fitted on them
    size:tuple=(224, 184), # image rows, columns
    arch:str='efficientnet_lite0', # an ImageNet-pretrained encoder (efficientnet_lite0's weights are available offline)
    taps:tuple=('blocks.4',), # the encoder's layers whose outputs are tapped (`ff.models.TapGrid`)
    grid:tuple=(3, 3), # each tapped map average-pooled to this grid, then flattened side by side
    flip:bool=True, # test-time augmentation: average the image's and its mirror image's embeddings
    tta_px:int=0, # test-time augmentation: also shifts by this many px (0: none)
    whiten:str='total', # `ff.verification.fit_whitening` on `data`'s images: 'total' covariance, 'wccn' (within identity) or 'none'
    shrink:float=1.0, # the whitening's ridge
    bs:int=32, # images per encoder batch
):
    """Frozen mid-level ImageNet features on a coarse grid (they keep where each part of a centred object is), mirror
    views averaged, then whitened on `data`'s classes; compared by distance. Nothing is trained, so the classes of
    `data` only shape the whitening: a new class needs no refit. On ORL faces (unaligned): 2.39% EER; faces that dlib
    can align do better with the `faces` recipe. -> an `EpisodicLearner` (`learn.model_config.stats`)"""
    if whiten not in ('total', 'wccn', 'none'): raise ValueError(f"photos: whiten={whiten!r}: use 'total', 'wccn' or 'none'")
    if len(size) != 2 or min(size) < 32: raise ValueError(f'photos: size={tuple(size)}: (rows, columns), each 32 px or more')
    cf = class_folder(data)
    t = time.time()
    # nothing is trained: the loaders only carry the image preparation, so a folder smaller than a batch is fine
    dls = ClassifierDataLoaders.from_class_folder(cf, size=tuple(size), bs=min(bs, len(cf)), img_cls=PILImage, valid_pct=0)
    learn = episodic_learner(dls, arch, pretrained=True, encoder_kwargs=dict(taps=list(taps), grid=list(grid)),
                             pool='flatten', metrics=[])
    tta = dict(views='flip', px=tta_px) if flip else dict(views='shift', px=tta_px) if tta_px else None
    learn.model_config.update(recipe='photos', tta=tta)
    if whiten != 'none':
        cohort = embed(learn, cf.images, bs)   # the recipe's TTA, before any whitening
        learn.model.whitening = fit_whitening(cohort, cf.labels if whiten == 'wccn' else None, shrink=shrink)
    learn.model_config.update(stats=dict(epochs=0, train_seconds=round(time.time() - t, 1)))
    return learn
