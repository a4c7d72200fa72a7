"""`fewshot-fastai gan`: a GAN on a folder of images (sample grids, loss curves, Fréchet distances), or with `--oneshot`
a one-shot generator on a folder of class folders (a grid of one real image -> generated ones per class)."""
import json, sys
from pathlib import Path
from .._files import write_file
from ..models.registry import PretrainedUnavailable
from ..gan.data import GANDataLoaders
from ..gan.stable import gan_learner
from ..gan.oneshot import OneShotDataLoaders, oneshot_learner, generated_grid
from ..gan.callbacks import GANSamples, GANFrechet, GANCheckpoint, plot_gan_losses
from ..gan.frechet import lite0_features
from .common import save_figure

__all__ = ['gan']

def gan(a) -> dict:
    "Train the GAN `a` describes on `a.data`; write its figures, checkpoint and metrics.json to `a.out`"
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    if a.oneshot: return _oneshot(a, out)
    dls = GANDataLoaders.from_folder(a.data, size=a.size, n_channels=1 if a.grey else 3, invert=a.invert, bs=a.bs)
    try: feats = lite0_features(64)
    except (ImportError, PretrainedUnavailable) as e:   # without the offline ImageNet weights: no Fréchet distance, said
        print(f'no Fréchet distance: {e}', file=sys.stderr); feats = None
    cbs = [GANSamples(n=32, save=True), GANCheckpoint('gan')] + ([GANFrechet(feats, n=256)] if feats else [])
    learn = gan_learner(dls, a.loss, cbs=cbs, path=out)
    learn.fit(a.epochs)
    fr = cbs[-1] if feats else None
    save_figure(plot_gan_losses(learn, fr), out/'losses.png')
    res = dict(loss=a.loss, epochs=a.epochs, images=len(dls.train.dataset), samples=[str(p) for p in cbs[0].saved],
               frechet=[(e, round(d, 2)) for e, d in fr.history] if fr else None, stopped=learn.gan_stopped)
    write_file(out/'metrics.json', json.dumps(res, indent=1, allow_nan=False))
    return res

def _oneshot(a, out:Path) -> dict:
    "A one-shot generator on a folder of class folders, and a grid: the first image of some classes -> 8 drawn"
    dls = OneShotDataLoaders.from_folder(a.data, size=a.size, n_channels=1 if a.grey else 3, invert=a.invert, bs=a.bs)
    kind = dict(generator=a.generator) if a.generator else {}
    learn = oneshot_learner(dls, a.loss, cbs=[GANCheckpoint('oneshot')], path=out, **kind)
    learn.fit(a.epochs)
    cf = dls.class_folder
    firsts = [cf.files[cf.labels.index(k)] for k in range(0, len(cf.classes), max(1, len(cf.classes)//6))][:6]
    fig = generated_grid(learn, firsts)
    save_figure(fig, out/'oneshot.png')
    save_figure(plot_gan_losses(learn), out/'losses.png')
    res = dict(loss=a.loss, oneshot=True, generator=learn.oneshot['generator'], epochs=a.epochs, images=len(dls.train.dataset), classes=len(cf.classes),
               grid=str(out/'oneshot.png'), stopped=learn.gan_stopped)
    write_file(out/'metrics.json', json.dumps(res, indent=1, allow_nan=False))
    return res
