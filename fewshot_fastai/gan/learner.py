"""DCGAN and WGAN Learners on fastai's `GANLearner`, with the fixes its loop needs.

What fastai 2.8's GAN loop gets wrong, and what `GANFixes` does about it:
- One optimizer holds the generator and the critic. A frozen model keeps its (zeroed) gradients from its last
  phase, and fastai's optimizer steps every parameter whose `.grad` is not None: Adam's momentum and weight decay
  keep moving the generator during critic phases (and the critic during generator phases). `GANFixes` drops the
  frozen model's gradients before each step.
- `GANTrainer.before_validate` switches to generator mode and `before_epoch` restarts from that mode, while
  `FixedGANSwitcher.before_train` resets its counters: from the second epoch on, every epoch starts with a
  generator step whatever `gen_first` said, and the n_critic:n_gen rhythm restarts. `GANFixes` carries the phase
  and the counters across epochs.
- (Speed) batches reach the nets as plain tensors rather than fastai's tensor subclasses.
- Weight clipping happens before each batch, so the critic left by the last step is unclipped; `GANFixes` clips
  after every critic step (WGAN), so the bounds hold whenever the critic is used."""
from functools import partial
from fastcore.basics import listify
import torch
from torch import nn
from fastai.callback.core import Callback, CancelFitException
from ..callbacks.columns import Column
from ..callbacks.distrib import distrib_callbacks
from fastai.optimizer import Adam, RMSProp
from fastai.vision.gan import GANLearner, GANTrainer, FixedGANSwitcher, basic_generator, basic_critic
import warnings
from .._checks import renamed

__all__ = ['dcgan_generator', 'dcgan_critic', 'dcgan_init', 'dcgan_losses', 'wgan_losses', 'GANFixes', 'GANStats',
           'GANNaNStop', 'dcgan_learner', 'wgan_learner']

def dcgan_init(
    m:nn.Module, # a module (use with `model.apply`)
):
    "DCGAN initialisation (Radford et al.): conv weights ~ N(0, 0.02), BatchNorm weights ~ N(1, 0.02), biases 0"
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(mod.weight, 0., 0.02)
            if mod.bias is not None: nn.init.zeros_(mod.bias)
        elif isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.normal_(mod.weight, 1., 0.02); nn.init.zeros_(mod.bias)
    return m

def _check_size(size):
    if size not in (32, 64): raise ValueError(f'DCGAN nets are built for 32 or 64 px images, not size={size}')

@renamed(n_channels='n_in')
def dcgan_generator(
    size:int=32, # output side: 32 or 64
    n_in:int=1, # output channels
    z_dim:int=100, # noise size
    nf:int=64, # channels of the last hidden layer
) -> nn.Sequential:
    """DCGAN generator (fastai's `basic_generator`): transposed convs with BatchNorm + ReLU from a `z_dim` noise
    vector, tanh output in [-1, 1]: (B, z_dim) -> (B, n_in, size, size)"""
    _check_size(size)
    return dcgan_init(basic_generator(size, n_in, in_sz=z_dim, n_features=nf))

@renamed(n_channels='n_in')
def dcgan_critic(
    size:int=32, # input side: 32 or 64
    n_in:int=1, # input channels
    nf:int=64, # channels of the first layer
) -> nn.Sequential:
    """DCGAN discriminator (fastai's `basic_critic` with LeakyReLU(0.2)): strided convs, BatchNorm after the first,
    one raw score per image (B, 1). The DCGAN sigmoid lives in the loss (`BCEWithLogits`, the same maths but
    numerically stable); WGAN uses the raw score."""
    _check_size(size)
    return dcgan_init(basic_critic(size, n_in, n_features=nf, act_cls=partial(nn.LeakyReLU, negative_slope=0.2)))

def dcgan_losses():
    "(generator, critic) losses of DCGAN: non-saturating BCE for G; BCE(real, 1) + BCE(fake, 0) for D"
    bce = nn.BCEWithLogitsLoss()
    def gen_loss(fake_pred, output, target): return bce(fake_pred, torch.ones_like(fake_pred))
    def crit_loss(real_pred, fake_pred):
        return bce(real_pred, torch.ones_like(real_pred)) + bce(fake_pred, torch.zeros_like(fake_pred))
    return gen_loss, crit_loss

def wgan_losses():
    """(generator, critic) losses of WGAN (Arjovsky et al.): critic E[f(fake)] - E[f(real)], generator -E[f(fake)].
    The negative critic loss, E[f(real)] - E[f(fake)], estimates the Wasserstein distance."""
    def gen_loss(fake_pred, output, target): return -fake_pred.float().mean()   # float32 under mixed precision, as fastai's smoothed loss
    def crit_loss(real_pred, fake_pred): return fake_pred.float().mean() - real_pred.float().mean()
    return gen_loss, crit_loss

class GANFixes(Callback):
    "See the module docstring: no updates of the frozen model, phases carried across epochs, clipping after steps"
    run_after = FixedGANSwitcher
    order = GANTrainer.order + 1
    def __init__(self): self.state, self.resume = None, None
    def before_fit(self):
        self.state, self.resume = self.resume, None   # a phase loaded by `resume_gan`, else a fresh start
        if not hasattr(self.learn, 'gan_epochs'): self.learn.gan_epochs = 0
    def after_epoch(self): self.learn.gan_epochs += 1   # epochs done over all fits (sample/checkpoint labels)
    def before_batch(self):
        # plain tensors into the nets: fastai's TensorImage/InvisibleTensor dispatch every op through
        # __torch_function__, which costs ~10% of an epoch with DCGAN-sized nets on a CPU
        self.learn.xb = tuple(t.as_subclass(torch.Tensor) for t in self.learn.xb)
        self.learn.yb = tuple(t.as_subclass(torch.Tensor) for t in self.learn.yb)
    def _switcher(self): return next((c for c in self.learn.cbs if isinstance(c, FixedGANSwitcher)), None)
    def before_train(self):
        # runs after GANTrainer.before_epoch (back to generator mode) and FixedGANSwitcher.before_train (counters 0)
        if self.state is None: return
        gen_mode, counts = self.state
        self.learn.gan_trainer.switch(gen_mode)
        sw = self._switcher()
        if sw is not None and counts is not None: sw.n_c, sw.n_g = counts
    def after_train(self):
        sw = self._switcher()
        self.state = (self.learn.gan_trainer.gen_mode, (sw.n_c, sw.n_g) if sw is not None else None)
    def before_step(self):
        gt = self.learn.gan_trainer
        frozen = gt.critic if gt.gen_mode else gt.generator
        for p in frozen.parameters(): p.grad = None
    def after_step(self):
        gt = self.learn.gan_trainer
        if gt.clip is not None and not gt.gen_mode:
            with torch.no_grad():
                for p in gt.critic.parameters(): p.clamp_(-gt.clip, gt.clip)

class GANStats(Callback):
    """Recorder columns for the training steps of each epoch: mean generator loss, mean critic loss and, for WGAN,
    the Wasserstein estimate (minus the critic loss). Every step's values: `self.steps`."""
    order = GANTrainer.order - 1   # after_batch before FixedGANSwitcher's, which flips the phase for the next step
    def __init__(
        self,
        wasserstein:bool=False, # add the Wasserstein estimate column (WGAN)
    ):
        self.wasserstein = wasserstein
        self.columns = [Column(name, partial(self.mean, key)) for key, name in
                        [('gen', 'gen_loss'), ('crit', 'crit_loss')] + [('w', 'wasserstein')]*wasserstein]
        self.steps, self.current = dict(gen=[], crit=[], w=[]), dict(gen=[], crit=[], w=[])
    def before_fit(self):
        self.learn.metrics = [m for m in self.learn.metrics if m not in self.columns] + self.columns
    def before_train(self): self.current = dict(gen=[], crit=[], w=[])
    def mean(
        self,
        key, # 'gen', 'crit' or 'w'
    ):
        "Mean of this epoch's training-step values of `key` ('gen', 'crit', 'w'), None if there were none"
        v = self.current[key]
        return sum(v)/len(v) if v else None
    def after_batch(self):
        if not self.training: return
        v = self.learn.loss.item()
        if self.learn.gan_trainer.gen_mode: keys = ['gen']
        else: keys = ['crit', 'w'] if self.wasserstein else ['crit']
        for k in keys:
            val = -v if k == 'w' else v
            self.current[k].append(val); self.steps[k].append(val)

class GANNaNStop(Callback):
    "Stops fit cleanly (a warning naming the phase, epoch and step) when a loss is NaN or infinite"
    order = GANTrainer.order + 3
    def before_fit(self): self.learn.gan_stopped = None
    def after_loss(self):
        if not self.training or torch.isfinite(self.learn.loss).all(): return
        phase = 'generator' if self.learn.gan_trainer.gen_mode else 'critic'
        msg = (f'GAN training stopped: the {phase} loss is {self.learn.loss.item()} at epoch {self.learn.epoch}, '
               f'step {self.learn.iter}. Lower the learning rate, or (WGAN) check the clipping.')
        self.learn.gan_stopped = msg
        warnings.warn(msg, RuntimeWarning)
        raise CancelFitException()

def _gan_learner(dls, generator, critic, losses, switcher, clip, gen_first, opt_func, wasserstein, cbs, **kwargs):
    size, n_in, z_dim = getattr(dls, 'size', 32), getattr(dls, 'n_in', 1), getattr(dls, 'z_dim', 100)
    generator = generator if generator is not None else dcgan_generator(size, n_in, z_dim)
    critic = critic if critic is not None else dcgan_critic(size, n_in)
    stats = GANStats(wasserstein)
    learn = GANLearner(dls, generator, critic, *losses, switcher=switcher, clip=clip, gen_first=gen_first,
                       switch_eval=False, opt_func=opt_func, cbs=[GANFixes(), stats, GANNaNStop(), *distrib_callbacks(), *listify(cbs)], **kwargs)
    learn.metrics = []   # fastai's LossMetrics would read stale values in validation; GANStats adds its columns
    learn.gan_stats = stats
    return learn

def dcgan_learner(
    dls, # `GANDataLoaders`
    generator=None, # default: `dcgan_generator` for the data size
    critic=None, # default: `dcgan_critic` for the data size
    gen_first:bool=False, # start with a generator step
    cbs=None, # more callbacks
    lr:float=2e-4, # learning rate
    opt_func=None, # default: Adam with beta1 0.5
    **kwargs,
) -> GANLearner:
    """DCGAN (Radford et al.) on fastai's `GANLearner`: one critic step then one generator step, Adam (beta1 0.5,
    no weight decay), nets from `dcgan_generator`/`dcgan_critic` at `dls.size` unless given. `learn.fit(n)` trains
    at `lr` (2e-4, as in the paper)."""
    opt = opt_func or partial(Adam, mom=0.5, sqr_mom=0.999, wd=0.)
    return _gan_learner(dls, generator, critic, dcgan_losses(), FixedGANSwitcher(1, 1), None, gen_first, opt, False,
                        cbs, lr=lr, **kwargs)

def wgan_learner(
    dls, # `GANDataLoaders`
    generator=None, # default: `dcgan_generator` for the data size
    critic=None, # default: `dcgan_critic` for the data size
    n_critic:int=5, # critic steps per generator step
    clip:float=0.01, # critic weights clipped to [-clip, clip]
    gen_first:bool=False, # start with a generator step
    cbs=None, # more callbacks
    lr:float=5e-5, # learning rate
    opt_func=None, # default: RMSprop
    **kwargs,
) -> GANLearner:
    """WGAN (Arjovsky et al.): `n_critic` critic steps per generator step, critic weights clipped to [-clip, clip],
    RMSprop (no momentum, no weight decay); `learn.fit(n)` trains at `lr` (5e-5, as in the paper). Recorder columns:
    gen_loss, crit_loss and the Wasserstein estimate."""
    opt = opt_func or partial(RMSProp, mom=0., wd=0.)
    return _gan_learner(dls, generator, critic, wgan_losses(), FixedGANSwitcher(n_critic, 1), clip, gen_first, opt,
                        True, cbs, lr=lr, **kwargs)
