"""The `faces` recipe: verification and recognition of people from a few photos each, with no training: dlib's
face-trained ResNet (`ff.models.face_resnet`, in PyTorch) on chips aligned by `FaceAlign`, mirror views averaged."""
import time
from fastai.vision.core import PILImage
from ..data.classifier_loaders import ClassifierDataLoaders
from ..datasets.faces import FaceAlign
from ..learner import episodic_learner
from ..inference import embed
from ..verification.whitening import fit_whitening
from .registry import register, class_folder

__all__ = ['faces']

@register('faces', data='photos of people (faces), one folder per person')
def faces(
    data, # a folder of class folders (or a `ClassFolder`), one per person
    size:int=150, # the aligned chip's side (dlib's face network: 150)
    padding:float=0.25, # border around the mean face in the chip (dlib's face network: 0.25)
    upsample:int=1, # times the HOG face detector doubles a photo before looking (0-2): finds smaller faces, slower
    detector:str='hog+cnn', # 'hog', 'cnn', or 'hog+cnn': dlib's CNN detector on the photos where HOG finds no face
    flip:bool=True, # test-time augmentation: average the chip's and its mirror image's embeddings
    tta_px:int=0, # test-time augmentation: also the chip shifted by this many px (each way; 0: none)
    whiten:str='wccn', # `ff.verification.fit_whitening` on `data`'s people: 'total' covariance, 'wccn' (within person) or 'none'
    shrink:float=4.0, # the whitening's ridge (times the covariance's mean eigenvalue)
    finetune:int=0, # epochs of fine-tuning the encoder on `data`'s people (cosine classifier, additive margin; 0: none)
    margin:float=0.2, # with `finetune`: the additive cosine margin (`ff.callbacks.AdditiveMargin`)
    lr:float=1e-4, # with `finetune`: the learning rate of fastai's `fine_tune` (one epoch of the new head first)
    bs:int=32, # images per encoder batch
):
    """Photos aligned to dlib's mean face (`FaceAlign`: HOG detection, dlib's CNN detector where HOG finds none,
    5 landmarks, a 150x150 chip), embedded by dlib's face-recognition ResNet read into PyTorch, the chip's and its
    mirror's embeddings averaged, whitened within `data`'s people (WCCN, ridge 4); compared by distance. Nothing is
    trained (`finetune` would: on ORL it did not help): the people of `data` only shape the whitening, and a new
    person needs no refit. -> an `EpisodicLearner` (`learn.model_config.stats`: the photos
    aligned in the fit, those without a detected face in `no_face`)"""
    if whiten not in ('total', 'wccn', 'none'): raise ValueError(f"faces: whiten={whiten!r}: use 'total', 'wccn' or 'none'")
    cf = class_folder(data)
    t = time.time()
    align = FaceAlign(size, padding, upsample, detector)
    # without fine-tuning the loaders only carry the image preparation (the alignment): one person's photos are enough,
    # and the whitening below reads every photo once
    from fastai.vision.augment import Flip
    loader_cf = cf if finetune else cf.subset(lambda c: c == cf.classes[0])
    dls = ClassifierDataLoaders.from_class_folder(loader_cf, size=(size, size), bs=min(bs, len(loader_cf)), img_cls=PILImage,
                                                  valid_pct=0, prep=align, batch_tfms=[Flip()] if finetune else None)
    if finetune:
        from ..callbacks.margin import AdditiveMargin
        from ..learner import classifier_learner
        learn = classifier_learner(dls, 'face_resnet', head='cosine', normalize=False, pretrained=True, metrics=[],
                                   cbs=[AdditiveMargin(margin)])
        with learn.no_bar(), learn.no_logging(): learn.fine_tune(finetune, lr, freeze_epochs=1)   # the new head first, then all
    else: learn = episodic_learner(dls, 'face_resnet', pretrained=True, metrics=[])
    learn.model_config.update(recipe='faces', tta=dict(views='flip', px=tta_px) if flip else dict(views='shift', px=tta_px) if tta_px else None)
    if whiten != 'none':
        align.reset()   # count each photo once: here, where every one is aligned
        cohort = embed(learn, cf.images, bs)   # the recipe's TTA, before any whitening
        learn.model.whitening = fit_whitening(cohort, cf.labels if whiten == 'wccn' else None, shrink=shrink)
    stats = dict(epochs=finetune, train_seconds=round(time.time() - t, 1))
    if finetune or whiten != 'none': stats.update(photos=align.found + align.missed, no_face=align.missed)
    learn.model_config.update(stats=stats)
    return learn
