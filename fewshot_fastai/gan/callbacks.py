"""GAN callbacks: a fixed-noise sample grid every epoch, the Fréchet distance every few epochs as a recorder column,
checkpoints that can be resumed (weights, optimizer state and the critic/generator phase), and the loss curves."""
from pathlib import Path
import torch
import matplotlib.pyplot as plt
from fastcore.foundation import L
from torchvision.utils import make_grid
from fastai.callback.core import Callback
from ..callbacks.columns import Column
from fastai.vision.gan import GANTrainer
from .frechet import frechet_distance, lite0_features
from .learner import GANFixes
from .._distrib import unwrap_model, is_main_process
from .._files import replacing_file

__all__ = ['generate', 'GANSamples', 'GANFrechet', 'GANCheckpoint', 'resume_gan', 'plot_gan_losses', 'epochs_done']

def epochs_done(
    learn, # a GAN learner
) -> int:
    "Epochs finished over all fits of `learn` (restored by `resume_gan`); counted by `GANFixes` after each epoch"
    return getattr(learn, 'gan_epochs', 0)

@torch.no_grad()
def generate(
    generator, # a generator network
    z:torch.Tensor, # noise, (N,z_dim)
    bs:int=256, # images per batch
) -> torch.Tensor:
    "Images in [-1, 1] from noise `z` (N, z_dim), the generator in eval mode (its mode is restored)"
    was = generator.training
    generator.eval()
    try:
        dev = next(generator.parameters()).device
        return torch.cat([generator(z[i:i+bs].to(dev)).float().cpu() for i in range(0, len(z), bs)])
    finally: generator.train(was)

def sampling_generator(learn):
    "The generator that draws samples: the moving average of its weights (`GeneratorEMA`) when there is one"
    ema = getattr(learn, 'gen_ema', None)
    return ema if ema is not None else unwrap_model(learn.model).generator

def _fixed_noise(n, z_dim, seed): return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))

class GANSamples(Callback):
    """A grid of `n` images from fixed noise after every `every` epochs, saved to
    `learn.path/learn.model_dir/{fname}_epoch{NNN}.png`; the grids are kept in `self.grids` ({epochs done: grid})"""
    order = GANTrainer.order + 5
    def __init__(
        self,
        n:int=32, # images per grid
        every:int=1, # epochs between grids
        nrow:int=8, # images per row
        fname:str='samples', # file name prefix of the PNGs
        seed:int=0, # seed of the fixed noise
        save:bool=True, # write PNGs (False: keep the grids in memory only)
    ):
        self.n, self.every, self.nrow, self.fname, self.seed, self.save = n, every, nrow, fname, seed, save
        self.grids, self.saved = {}, []
    def before_fit(self):
        self.z = _fixed_noise(self.n, getattr(self.dls, 'z_dim', 100), self.seed)
    def grid(self) -> torch.Tensor:
        "The current generator's images of the fixed noise, as one (3,H,W) grid in [0,1]"
        return make_grid((generate(sampling_generator(self.learn), self.z) + 1)/2, nrow=self.nrow, padding=1).clamp(0, 1)
    def after_epoch(self):
        done = epochs_done(self.learn)
        if done % self.every: return
        g = self.grid()
        self.grids[done] = g
        if self.save and is_main_process():   # one writer under DDP
            d = Path(self.learn.path)/self.learn.model_dir
            d.mkdir(parents=True, exist_ok=True)
            path = d/f'{self.fname}_epoch{done:03d}.png'
            with replacing_file(path) as tmp: plt.imsave(tmp, g.permute(1, 2, 0).numpy(), format='png')
            self.saved.append(path)
    def show(
        self,
        epochs=None, # epoch numbers to show (default: all)
        figsize_per=3., # inches per grid
    ):
        "The stored grids side by side (all, or the given epoch numbers)"
        keys = sorted(self.grids) if epochs is None else list(epochs)
        fig, axs = plt.subplots(1, len(keys), figsize=(figsize_per*len(keys), figsize_per), squeeze=False)
        for ax, k in zip(axs[0], keys):
            ax.imshow(self.grids[k].permute(1, 2, 0).numpy()); ax.set_title(f'after epoch {k}', fontsize=9); ax.axis('off')
        fig.tight_layout()
        return fig

class GANFrechet(Callback):
    """Fréchet distance (see `frechet_distance`: NOT the Inception FID) between `n` real training images and `n`
    images generated from fixed noise, before training and after every `every` epochs; a 'frechet' column of the
    recorder (the latest value). `features`: a `FrechetFeatures` (default: offline efficientnet_lite0 at 64 px).
    History: `self.history` = [(epochs done, distance)]."""
    order = GANTrainer.order + 4
    def __init__(
        self,
        features=None, # a `FrechetFeatures` (default: `lite0_features()`)
        every:int=1, # epochs between measurements
        n:int=512, # real and generated images compared
        seed:int=0, # seed of the noise and the real sample
    ):
        self.features, self.every, self.n, self.seed = features, every, n, seed
        self.history, self.last, self.real = [], None, None
        self.column = Column('frechet', self.latest)
    def _real_features(self):
        ds = self.dls.train.dataset
        if not isinstance(getattr(ds, 'x', None), torch.Tensor):
            raise TypeError(f'GANFrechet reads the real images of GANDataLoaders; got a {type(ds).__name__} dataset')
        x = ds.x[torch.randperm(len(ds.x), generator=torch.Generator().manual_seed(self.seed))[:self.n]]
        return self.features(x.float()/127.5 - 1)   # uint8 -> [-1, 1], as the generator's tanh
    def latest(
        self,
    ):
        "The last distance measured (None before the first)"
        return self.last
    def measure(self) -> float:
        "Distance now, between the real sample and the generator's images of the fixed noise"
        fake = generate(sampling_generator(self.learn), self.z)
        return frechet_distance(self.real, self.features(fake))
    def before_fit(self):
        if self.features is None: self.features = lite0_features()
        if self.real is None: self.real = self._real_features()
        self.z, self.fitting = _fixed_noise(self.n, getattr(self.dls, 'z_dim', 100), self.seed + 1), True
        if self.column not in self.learn.metrics: self.learn.metrics = [*self.learn.metrics, self.column]
        done = epochs_done(self.learn)
        if not self.history or self.history[-1][0] != done:
            self.last = self.measure(); self.history.append((done, self.last))
    def before_validate(self):
        # the Recorder reads its columns after validation, and GANFixes counts the epoch in after_epoch
        done = epochs_done(self.learn) + 1
        if getattr(self, 'fitting', False) and done % self.every == 0:
            self.last = self.measure(); self.history.append((done, self.last))
    def after_fit(self):
        self.fitting = False
        self.learn.metrics = [m for m in self.learn.metrics if m is not self.column]

class GANCheckpoint(Callback):
    """After every `every` epochs: the weights, the optimizer state, the GAN phase (critic or generator step next,
    switcher counters) and the epochs done, in one file `{fname}_gan.pth` under `learn.path/learn.model_dir`, written
    all-or-nothing (a failed save leaves the last good checkpoint). It holds tensors and plain values only, and
    `resume_gan` reads it with `torch.load(weights_only=True)`: a checkpoint never runs code."""
    order = GANTrainer.order + 6
    def __init__(
        self,
        fname:str='gan', # checkpoint name under `learn.path/learn.model_dir`
        every:int=1, # epochs between checkpoints
    ): self.fname, self.every = fname, every
    def after_epoch(self):
        done = epochs_done(self.learn)
        if done % self.every or not is_main_process(): return   # one writer under DDP
        fixes = next(c for c in self.learn.cbs if isinstance(c, GANFixes))
        gen_mode, counts = fixes.state
        sd = self.learn.opt.state_dict()   # its hypers are a fastcore `L`: stored as plain dicts
        opt = dict(state=[dict(st) for st in sd['state']], hypers=[dict(h) for h in sd['hypers']])
        state = dict(model=unwrap_model(self.learn.model).state_dict(), opt=opt,
                     epochs_done=done, gen_mode=bool(gen_mode), counts=list(counts) if counts is not None else None)
        if getattr(self.learn, 'gen_ema', None) is not None: state['ema'] = self.learn.gen_ema.state_dict()
        with replacing_file(_checkpoint(self.learn, self.fname)) as tmp: torch.save(state, tmp)

def _checkpoint(learn, fname) -> Path: return Path(learn.path)/learn.model_dir/f'{fname}_gan.pth'

def resume_gan(
    learn, # a GAN learner built as the one that saved
    fname:str='gan', # checkpoint name
) -> int:
    """Load a `GANCheckpoint` into `learn` (weights, optimizer state, phase); the next `fit` goes on from there.
    The file is read as tensors and plain values only (`weights_only=True`): a crafted file is refused, never run.
    -> epochs done"""
    import pickle
    path = _checkpoint(learn, fname)
    if not path.exists(): raise FileNotFoundError(f'{path}: no GAN checkpoint (GANCheckpoint(fname={fname!r}) writes it)')
    try: info = torch.load(path, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        raise ValueError(f'{path}: not a GAN checkpoint of tensors and plain values; refused, nothing run '
                         f'({str(e).splitlines()[0][:120]})') from None
    keys = {'model', 'opt', 'epochs_done', 'gen_mode', 'counts'}
    if not isinstance(info, dict) or not keys <= set(info) <= keys | {'ema'}:
        raise ValueError(f'{path}: not a GANCheckpoint file (expected the fields {sorted(keys)})')
    try:
        unwrap_model(learn.model).load_state_dict(info['model'])
        if learn.opt is None: learn.create_opt()
        learn.opt.load_state_dict(dict(state=info['opt']['state'], hypers=L(info['opt']['hypers'])))
        if 'ema' in info:   # the generator's moving average (`GeneratorEMA`)
            import copy
            learn.gen_ema = copy.deepcopy(unwrap_model(learn.model).generator).eval().requires_grad_(False)
            learn.gen_ema.load_state_dict(info['ema'])
    except (RuntimeError, KeyError, IndexError, TypeError, ValueError, AssertionError) as e:
        raise ValueError(f'{path}: does not fit this learner\'s models ({str(e).splitlines()[0][:160]})') from None
    fixes = next(c for c in learn.cbs if isinstance(c, GANFixes))
    fixes.resume = (info['gen_mode'], tuple(info['counts']) if info['counts'] is not None else None)
    learn.gan_epochs = info['epochs_done']
    return info['epochs_done']

def plot_gan_losses(
    learn, # a trained GAN learner
    frechet:GANFrechet|None=None, # its `GANFrechet` callback, to plot the distances too
):
    "Generator and critic losses per step (and the Wasserstein estimate, the Fréchet distance if given) -> figure"
    st = learn.gan_stats.steps
    panels = 1 + bool(st['w']) + (frechet is not None and len(frechet.history) > 0)
    fig, axs = plt.subplots(1, panels, figsize=(4.5*panels, 3), squeeze=False)
    ax = axs[0, 0]
    ax.plot(st['crit'], label='critic loss', lw=0.8); ax.plot(st['gen'], label='generator loss', lw=0.8)
    ax.set_xlabel('step of that model'); ax.legend(); ax.set_title('losses', fontsize=10)
    i = 1
    if st['w']:
        axs[0, i].plot(st['w'], lw=0.8); axs[0, i].set_title('Wasserstein estimate (-critic loss)', fontsize=10)
        axs[0, i].set_xlabel('critic step'); i += 1
    if frechet is not None and frechet.history:
        e, d = zip(*frechet.history)
        axs[0, i].plot(e, d, 'o-'); axs[0, i].set_title('Fréchet distance (local features)', fontsize=10)
        axs[0, i].set_xlabel('epochs done')
    fig.tight_layout()
    return fig
