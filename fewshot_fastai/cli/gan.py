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
from .common import UserError, check_out, writing_run, save_figure

MAX_EPOCHS = 10000

__all__ = ['gan']

def gan(a) -> dict:
    "Train the GAN `a` describes on `a.data`; write its figures, checkpoint and metrics.json to `a.out`"
    if not Path(a.data).is_dir(): raise UserError(f'{a.data}: no such folder (a folder of images; --oneshot: of class folders)')
    if not 1 <= a.epochs <= MAX_EPOCHS: raise UserError(f'--epochs {a.epochs}: train 1 to {MAX_EPOCHS} epochs')
    if not 1 <= a.bs <= 4096: raise UserError(f'--bs {a.bs}: a batch of 1 to 4096 images')
    if a.generator is not None and not a.oneshot: raise UserError(f'--generator {a.generator}: only with --oneshot (a plain GAN has one generator)')
    out = check_out(a.out, a.force, {'the data folder': a.data})
    with writing_run(out, 'gan') as tmp:
        res = _oneshot(a, tmp) if a.oneshot else _plain(a, tmp)
        # paths as they will be once the run folder is in place
        res = json.loads(json.dumps(res).replace(json.dumps(str(tmp))[1:-1], json.dumps(str(out))[1:-1]))
        write_file(tmp/'metrics.json', json.dumps(res, indent=1, allow_nan=False))
    return res

def _plain(a, out:Path) -> dict:
    "A GAN on a folder of images: sample grids, checkpoints, loss curves, Frechet distances (with the offline weights)"
    dls = GANDataLoaders.from_folder(a.data, size=a.size, n_in=1 if a.grey else 3, invert=a.invert, bs=a.bs)
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
    return res

def _oneshot(a, out:Path) -> dict:
    "A one-shot generator on a folder of class folders, and a grid: the first image of some classes -> 8 drawn"
    dls = OneShotDataLoaders.from_folder(a.data, size=a.size, n_in=1 if a.grey else 3, invert=a.invert, bs=a.bs)
    kind = dict(generator=a.generator) if a.generator else {}
    learn = oneshot_learner(dls, a.loss, cbs=[GANCheckpoint('oneshot')], path=out, **kind)
    learn.fit(a.epochs)
    cf = dls.class_folder
    firsts = [cf.files[cf.labels.index(k)] for k in range(0, len(cf.classes), max(1, len(cf.classes)//6))][:6]
    fig = generated_grid(learn, firsts)
    save_figure(fig, out/'oneshot.png')
    save_figure(plot_gan_losses(learn), out/'losses.png')
    res = dict(loss=a.loss, oneshot=True, generator=learn.generator_config.generator, epochs=a.epochs, images=len(dls.train.dataset), classes=len(cf.classes),
               grid=str(out/'oneshot.png'), stopped=learn.gan_stopped)
    return res
