"Ready-made training runs shared by the CLI demo and the benchmarks (one loop, parameters)"
import time
from fastai.vision.augment import Resize, Rotate, Zoom
from fastai.vision.core import PILImageBW
from .data.sources import omniglot
from .data.pairs import SiameseDataLoaders
from .learner import siamese_learner

__all__ = ['omniglot_verification']

def omniglot_verification(train_set='background_small1', size:int=28, head='contrastive', arch='conv4',
                          epochs:int=10, lr:float=3e-3, bs:int=64, valid_pct:float=0.2, seed:int=0, augment=True,
                          quiet=True, **kwargs):
    """Train a siamese net on Omniglot `train_set` and measure pair verification on its held-out, unseen
    characters. Returns `(learn, stats)` with the final validation accuracy and the training seconds."""
    batch_tfms = [Rotate(max_deg=10, p=0.75), Zoom(max_zoom=1.15, p=0.75)] if augment else []
    dls = SiameseDataLoaders.from_folder(omniglot(train_set), valid_pct=valid_pct, seed=seed, img_cls=PILImageBW,
                                         item_tfms=Resize(size), batch_tfms=batch_tfms, bs=bs)
    learn = siamese_learner(dls, arch, head=head, **kwargs)
    t = time.time()
    if quiet:
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, lr)
    else: learn.fit_one_cycle(epochs, lr)
    secs = time.time() - t
    acc = float(learn.recorder.values[-1][2])
    return learn, dict(train=train_set, size=size, head=head, arch=arch, epochs=epochs, lr=lr,
                       train_seconds=round(secs, 1), valid_pairs=len(dls.valid_ds),
                       valid_classes=len(dls.valid_classes), verification_accuracy=round(acc, 4), augment=augment)
