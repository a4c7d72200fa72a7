"""`fewshot-fastai gan`: a GAN on a folder of images, with sample grids, loss curves and Fréchet distances."""
import json, sys
from pathlib import Path
from .._files import write_file
from ..models.registry import PretrainedUnavailable
from ..gan.data import GANDataLoaders
from ..gan.learner import dcgan_learner, wgan_learner
from ..gan.callbacks import GANSamples, GANFrechet, GANCheckpoint, plot_gan_losses
from ..gan.frechet import lite0_features
from .common import save_figure

__all__ = ['gan']

def gan(a) -> dict:
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    dls = GANDataLoaders.from_folder(a.data, size=a.size, n_channels=1 if a.grey else 3, invert=a.invert, bs=a.bs)
    try: feats = lite0_features(64)
    except (ImportError, PretrainedUnavailable) as e:   # without the offline ImageNet weights: no Fréchet distance, said
        print(f'no Fréchet distance: {e}', file=sys.stderr); feats = None
    cbs = [GANSamples(n=32, save=True), GANCheckpoint('gan')] + ([GANFrechet(feats, n=256)] if feats else [])
    make = dcgan_learner if a.loop == 'dcgan' else wgan_learner
    learn = make(dls, cbs=cbs, path=out)
    learn.fit(a.epochs)
    fr = cbs[-1] if feats else None
    fig = plot_gan_losses(learn, fr)
    save_figure(fig, out/'losses.png')
    res = dict(loop=a.loop, epochs=a.epochs, images=len(dls.train.dataset), samples=[str(p) for p in cbs[0].saved],
               frechet=[(e, round(d, 2)) for e, d in fr.history] if fr else None, stopped=learn.gan_stopped)
    write_file(out/'metrics.json', json.dumps(res, indent=1, allow_nan=False))
    return res
