"""GAN training for small data, on fastai's `GANLearner` with our `GANFixes`: the hinge loss with a spectrally
normalised critic (Miyato et al. 2018), WGAN-GP's gradient penalty (Gulrajani et al. 2017), differentiable
augmentation of every image the critic sees (DiffAugment, Zhao et al. 2020) and an exponential moving average of
the generator's weights for samples and checkpoints. fastai's GAN module has none of these; torch provides spectral
normalisation (`torch.nn.utils.parametrizations.spectral_norm`), used as it is."""
import copy
from functools import partial
from fastcore.basics import listify
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from fastai.callback.core import Callback
from fastai.torch_core import num_distrib
from fastai.optimizer import Adam
from fastai.vision.gan import FixedGANSwitcher, GANTrainer
from .learner import dcgan_generator, dcgan_critic, dcgan_losses, wgan_losses, _gan_learner, _check_size
from .._distrib import unwrap_model
from .._checks import renamed

__all__ = ['hinge_losses', 'sn_critic', 'diff_augment', 'DiffAugment', 'add_to_loss', 'GradientPenalty', 'GeneratorEMA', 'gan_learner']

def hinge_losses():
    "(generator, critic) hinge losses: critic E[relu(1 - f(real))] + E[relu(1 + f(fake))], generator -E[f(fake)]"
    def gen_loss(fake_pred, output, target): return -fake_pred.float().mean()
    def crit_loss(real_pred, fake_pred): return F.relu(1 - real_pred.float()).mean() + F.relu(1 + fake_pred.float()).mean()
    return gen_loss, crit_loss

@renamed(n_channels='n_in')
def sn_critic(
    size:int=32, # input side: 32 or 64
    n_in:int=1, # input channels
    nf:int=64, # channels of the first layer
) -> nn.Sequential:
    """A DCGAN-shaped critic (strided 4x4 convs, LeakyReLU 0.2) without BatchNorm, every conv spectrally normalised,
    so the critic is about 1-Lipschitz in each layer: (B, n_in, size, size) -> (B, 1) raw scores"""
    _check_size(size)
    layers, c = [], n_in
    for i in range({32: 3, 64: 4}[size]):
        layers += [spectral_norm(nn.Conv2d(c, nf*2**i, 4, 2, 1)), nn.LeakyReLU(0.2)]
        c = nf*2**i
    layers += [spectral_norm(nn.Conv2d(c, 1, 4, 1, 0)), nn.Flatten()]
    return nn.Sequential(*layers)

POLICIES = ('translation', 'cutout', 'brightness')

def diff_augment(
    x:torch.Tensor, # images in [-1, 1], (B,C,H,W)
    policy=POLICIES, # which of 'translation' (by up to 1/8 of the side, zero padded), 'cutout' (a square of half the side), 'brightness'
) -> torch.Tensor:
    """The same images, each randomly translated, cut out and brightened, by operations that gradients go through
    (so the generator learns through them): the critic then never sees an image as it is, and cannot memorise a
    small training set"""
    bad = [p for p in policy if p not in POLICIES]
    if bad: raise ValueError(f'diff_augment: unknown policy {bad[0]!r}: choose from {POLICIES}')
    B, _, H, W = x.shape
    if 'brightness' in policy:
        x = x + (torch.rand(B, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)
    if 'translation' in policy:
        sh, sw = H//8, W//8
        dy = torch.randint(-sh, sh + 1, (B, 1, 1), device=x.device)
        dx = torch.randint(-sw, sw + 1, (B, 1, 1), device=x.device)
        yy = torch.arange(H, device=x.device)[None, :, None] - dy
        xx = torch.arange(W, device=x.device)[None, None, :] - dx
        inside = ((yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)).unsqueeze(1)
        idx = (yy.clamp(0, H - 1)*W + xx.clamp(0, W - 1)).view(B, 1, H*W).expand(-1, x.shape[1], -1)
        x = torch.gather(x.flatten(2), 2, idx).view_as(x)*inside - (~inside).to(x.dtype)   # padding: -1, the background
    if 'cutout' in policy:
        ch, cw = H//2, W//2
        cy = torch.randint(0, H - ch + 1, (B, 1, 1), device=x.device)
        cx = torch.randint(0, W - cw + 1, (B, 1, 1), device=x.device)
        yy, xx = torch.arange(H, device=x.device)[None, :, None], torch.arange(W, device=x.device)[None, None, :]
        keep = ~((yy >= cy) & (yy < cy + ch) & (xx >= cx) & (xx < cx + cw))
        x = x*keep.unsqueeze(1)
    return x

class DiffAugment(nn.Module):
    "A critic that sees `diff_augment`ed images while training (real and generated alike); in eval mode the images as they are"
    def __init__(
        self,
        critic:nn.Module, # the critic to wrap
        policy=POLICIES, # `diff_augment`'s policy
    ):
        super().__init__()
        diff_augment(torch.zeros(1, 1, 8, 8), policy)   # refuse an unknown policy now
        self.critic, self.policy = critic, tuple(policy)
    def forward(
        self,
        x:torch.Tensor, # images, (B,C,H,W)
    ):
        "The critic's scores (B,1) of the (augmented, in training) images"
        return self.critic(diff_augment(x, self.policy) if self.training else x)

def add_to_loss(
    learn, # the learner, in `after_loss`
    term:torch.Tensor, # a scalar with its graph
):
    "Adds `term` to the loss fastai is about to backpropagate (`learn.loss_grad`) and to the one it logs (`learn.loss`)"
    learn.loss_grad = learn.loss_grad + term
    learn.loss = learn.loss_grad.clone()

class GradientPenalty(Callback):
    """WGAN-GP: in each critic step, adds `weight * (|grad f(x_hat)| - 1)^2` averaged over images `x_hat` drawn on the
    lines between real and generated images, to the critic loss (fastai's loss takes predictions only, so the
    penalty is added here, before the backward pass)"""
    order = GANTrainer.order + 2
    def __init__(
        self,
        weight:float=10., # the penalty's weight (lambda)
    ): self.weight = weight
    def after_loss(self):
        if not self.training or self.learn.gan_trainer.gen_mode: return
        gan = unwrap_model(self.learn.model)
        real = self.learn.xb[0]
        with torch.no_grad(): fake = gan.generator(self.learn.yb[0])
        eps = torch.rand(len(real), 1, 1, 1, device=real.device)
        x_hat = (eps*real + (1 - eps)*fake).requires_grad_(True)
        g, = torch.autograd.grad(gan.critic(x_hat).float().sum(), x_hat, create_graph=True)
        gp = self.weight*((g.flatten(1).norm(dim=1) - 1)**2).mean()
        add_to_loss(self.learn, gp)

class GeneratorEMA(Callback):
    """An exponential moving average of the generator's weights, updated after every generator step (decay
    min(`decay`, (1+n)/(10+n)) at the n-th step), in `learn.gen_ema`: `GANSamples`, `GANFrechet` and `GANCheckpoint` use it when it is there (averaged weights give
    steadier, cleaner samples than the last step's)"""
    order = GANTrainer.order + 4
    def __init__(
        self,
        decay:float=0.999, # weight of the average in each update
    ):
        if not 0 < decay < 1: raise ValueError(f'GeneratorEMA: decay={decay} must be in (0, 1)')
        self.decay = decay
    def before_fit(self):
        if getattr(self.learn, 'gen_ema', None) is None:
            self.learn.gen_ema = copy.deepcopy(unwrap_model(self.learn.model).generator).eval().requires_grad_(False)
    def after_step(self):
        if not self.learn.gan_trainer.gen_mode: return
        gen = unwrap_model(self.learn.model).generator
        # warm-up (as TensorFlow's ExponentialMovingAverage with num_updates): early on the average follows the
        # generator closely, instead of staying near its random start for ~1/(1-decay) steps
        self.learn.gen_ema_steps = n = getattr(self.learn, 'gen_ema_steps', 0) + 1
        d = min(self.decay, (1 + n)/(10 + n))
        with torch.no_grad():
            for e, p in zip(self.learn.gen_ema.parameters(), gen.parameters()): e.lerp_(p, 1 - d)
            for e, b in zip(self.learn.gen_ema.buffers(), gen.buffers()): e.copy_(b)
            # under DDP each rank's BatchNorm statistics are its own until the next forward broadcasts rank 0's:
            # the average takes rank 0's now, so that every rank holds the same moving average
            if num_distrib() > 1:
                import torch.distributed as dist
                for e in self.learn.gen_ema.buffers():
                    t = e.cpu() if dist.get_backend() == 'gloo' else e
                    dist.broadcast(t, 0)
                    if t is not e: e.copy_(t)

LOSSES = {'hinge': hinge_losses, 'wgan-gp': wgan_losses, 'dcgan': dcgan_losses, 'wgan': wgan_losses}

def gan_learner(
    dls, # `GANDataLoaders`
    loss:str='hinge', # 'hinge' (spectral-norm critic), 'wgan-gp' (gradient penalty), 'dcgan' or 'wgan' (clipping)
    augment=POLICIES, # DiffAugment policy for every image the critic sees; () or None: none
    ema:float|None=0.999, # decay of the generator's moving average (`GeneratorEMA`); None: none
    generator=None, # default: `dcgan_generator` for the data
    critic=None, # default: `sn_critic` for 'hinge', `dcgan_critic` (no BatchNorm for 'wgan-gp') otherwise
    n_critic:int|None=None, # critic steps per generator step (default: 1; 5 for 'wgan' and 'wgan-gp')
    lr:float|None=None, # learning rate (default: 2e-4; 5e-5 for 'wgan')
    cbs=None, # more callbacks
    **kwargs,
):
    """A GAN learner for small data on fastai's `GANLearner`: the loss (with its critic), DiffAugment and a moving
    average of the generator, all optional. Adam (beta1 0, beta2 0.9 for 'hinge' / 'wgan-gp', as their papers; 0.5 /
    0.999 for 'dcgan'), RMSprop for 'wgan'. `learn.fit(n)` trains; `ff.dcgan_learner` / `ff.wgan_learner` are the
    classic recipes."""
    from fastai.optimizer import RMSProp
    if loss not in LOSSES: raise ValueError(f'gan_learner: loss={loss!r}: choose from {list(LOSSES)}')
    size, n_in, z_dim = getattr(dls, 'size', 32), getattr(dls, 'n_in', 1), getattr(dls, 'z_dim', 100)
    generator = generator if generator is not None else dcgan_generator(size, n_in, z_dim)
    if critic is None:
        critic = sn_critic(size, n_in) if loss == 'hinge' else dcgan_critic(size, n_in)
        if loss == 'wgan-gp':   # the penalty is per image: no BatchNorm mixing the images of a batch
            critic = nn.Sequential(*[nn.Identity() if isinstance(m, nn.BatchNorm2d) else m for m in critic.modules()
                                     if not isinstance(m, nn.Sequential) and next(m.children(), None) is None])
    if augment: critic = DiffAugment(critic, augment)
    n_critic = n_critic or (5 if loss in ('wgan', 'wgan-gp') else 1)
    lr = lr or (5e-5 if loss == 'wgan' else 2e-4)
    opt = (partial(RMSProp, mom=0., wd=0.) if loss == 'wgan' else
           partial(Adam, mom=0.5, sqr_mom=0.999, wd=0.) if loss == 'dcgan' else partial(Adam, mom=0., sqr_mom=0.9, wd=0.))
    extra = ([GradientPenalty()] if loss == 'wgan-gp' else []) + ([GeneratorEMA(ema)] if ema else [])
    learn = _gan_learner(dls, generator, critic, LOSSES[loss](), FixedGANSwitcher(n_critic, 1), 0.01 if loss == 'wgan' else None,
                         False, opt, loss in ('wgan', 'wgan-gp'), [*extra, *listify(cbs)], lr=lr, **kwargs)
    learn.gan_loss = loss
    return learn
