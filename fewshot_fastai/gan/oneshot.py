"""One-shot generation: given one image of a class never seen in training, draw new examples of that class.

A data-augmentation GAN (DAGAN, Antoniou, Storkey & Edwards 2017): the generator encodes the source image (a small
U-Net) and mixes noise into its bottleneck and first decoder level; the critic judges *pairs* `(source, candidate)`
stacked on the channel axis, real pairs being two drawings of one class by different people. A generator that copied
its source would make pairs the critic tells from real ones (no two people draw alike), so it has to vary the drawing
while keeping its class. Training runs on fastai's `GANLearner` through `ff.gan_learner` (hinge loss, spectral-norm
critic, DiffAugment applied to both images of a pair alike, a moving average of the generator): the generator's
`forward(source)` returns the pair `(source, drawn)`, which is what fastai's GAN loop hands the critic.
Its nets are in `oneshot_nets`, its data in `oneshot_data`, its measures in `ff.evaluate`."""
import random
from dataclasses import dataclass
import torch
import torch.nn.functional as F
from fastai.callback.core import Callback
from fastai.vision.gan import GANTrainer
from PIL import Image, ImageOps
from fastai.vision.core import PILImage, PILImageBW
from ..data.images import to_image
from ..data.tensors import image_tensor
from .._checks import check_int
from .._distrib import unwrap_model
from .stable import gan_learner, add_to_loss, POLICIES
from .oneshot_nets import OneShotGenerator, WarpGenerator, pair_critic
from .oneshot_data import OneShotDataLoaders

# weights measured in bench/RESULTS.md ("One-shot generation"): (SourceConsistency, ModeSeeking) per generator
GENERATOR_DEFAULTS = {'warp': (0., 0.5), 'dagan': (2., 0.)}

__all__ = ['GeneratorConfig', 'SourceConsistency', 'ModeSeeking', 'oneshot_learner', 'generate_like', 'generated_grid']

@dataclass
class GeneratorConfig:
    "What a one-shot generator draws (`learn.generator_config` of a `oneshot_learner`)"
    size:int # side of the square images it draws
    n_in:int # channels
    invert:bool # the sources are inverted (dark ink on white) before the generator sees them, and its drawings after
    z_dim:int # noise size
    average:bool # draw with the generator's moving average by default
    generator:str # 'warp' or 'dagan'

def generator_config(learn) -> GeneratorConfig:
    "The `GeneratorConfig` of a `oneshot_learner`, or a ValueError"
    cfg = getattr(learn, 'generator_config', None)
    if not isinstance(cfg, GeneratorConfig): raise ValueError('not a one-shot generator learner (make one with ff.gan.oneshot_learner)')
    return cfg

class SourceConsistency(Callback):
    """Adds to each generator step's loss `weight` x the L1 distance between the drawn image and its source, both
    average-pooled by `pool` (at 32 px and `pool=4`: 8x8 maps of where the ink is). Two people's drawings of a
    character put their ink in about the same places, so this anchors the drawing to its source's class early, when
    the critic cannot yet tell a pair of two characters from a pair of one; the fine strokes stay free (DAGAN has no
    such term; on a CPU budget its critic learns class consistency too slowly: see bench/RESULTS.md)"""
    order = GANTrainer.order + 3
    def __init__(
        self,
        weight:float=2., # the term's weight against the adversarial loss
        pool:int=4, # average-pooling window: the coarseness at which the drawing must match its source
    ): self.weight, self.pool = weight, pool
    def after_loss(self):
        if not self.training or not self.learn.gan_trainer.gen_mode or not self.weight: return
        pair = self.learn.pred   # the generator's output in a generator step: (source, drawn)
        c = pair.shape[1]//2
        src, drawn = (F.avg_pool2d(t.float(), self.pool) for t in (pair[:, :c], pair[:, c:]))
        add_to_loss(self.learn, self.weight*(drawn - src).abs().mean())

class ModeSeeking(Callback):
    """Mode seeking (Mao et al. 2019, MSGAN): in each generator step, two drawings of the same sources from two noises;
    adds `weight` x (noise distance / image distance) to the loss, so the generator cannot ignore its noise (a
    conditional generator otherwise draws one image per source, whatever the noise)"""
    order = GANTrainer.order + 3
    def __init__(
        self,
        weight:float=1., # the term's weight
        eps:float=1e-5, # keeps the ratio finite
    ): self.weight, self.eps = weight, eps
    def after_loss(self):
        if not self.training or not self.learn.gan_trainer.gen_mode or not self.weight: return
        gen = unwrap_model(self.learn.model).generator
        c = self.learn.pred.shape[1]//2
        src = self.learn.pred[:, :c].detach()
        z1, z2 = (torch.randn(len(src), gen.z_dim, device=src.device, dtype=src.dtype) for _ in range(2))
        a, b = gen.draw(src, z1), gen.draw(src, z2)
        ratio = (a - b).float().abs().mean((1, 2, 3))/(z1 - z2).float().abs().mean(1)
        add_to_loss(self.learn, self.weight/(ratio.mean() + self.eps))

def oneshot_learner(
    dls:OneShotDataLoaders, # batches of `(source, real pair)`
    loss:str='hinge', # as `gan_learner`: 'hinge', 'wgan-gp', 'dcgan' or 'wgan'
    augment=POLICIES, # DiffAugment policy for the pairs the critic sees (both images alike); () or None: none
    ema:float|None=0.999, # decay of the generator's moving average (what `generate_like` uses); None: none
    nf:int=32, # the generator's first width
    consistency:float|None=None, # weight of `SourceConsistency` (the drawn image's coarse ink against its source's); 0: none; None: the generator's default (warp 0, dagan 2)
    mode_seeking:float|None=None, # weight of `ModeSeeking` (different noise, different drawings); 0: none; None: the generator's default (warp 0.5, dagan 0)
    generator:str='warp', # 'warp': `WarpGenerator` (bends the source); 'dagan': `OneShotGenerator` (a U-Net that draws anew)
    cbs=None, # more callbacks
    **kwargs, # `gan_learner`'s other arguments (lr, n_critic ...)
):
    """A one-shot generation GAN on fastai's `GANLearner`: a generator of the source's class (`WarpGenerator` or
    DAGAN's `OneShotGenerator`) against a `pair_critic`"""
    from fastcore.basics import listify
    from .learner import dcgan_critic
    size, c = dls.size, dls.n_channels
    kinds = {'dagan': OneShotGenerator, 'warp': WarpGenerator}
    if generator not in kinds: raise ValueError(f"oneshot_learner: generator={generator!r}; use one of {sorted(kinds)}")
    d_cons, d_ms = GENERATOR_DEFAULTS[generator]
    consistency = d_cons if consistency is None else consistency
    mode_seeking = d_ms if mode_seeking is None else mode_seeking
    critic = pair_critic(size, c) if loss in ('hinge', 'wgan-gp') else dcgan_critic(size, 2*c)
    extra = ([SourceConsistency(consistency)] if consistency else []) + ([ModeSeeking(mode_seeking)] if mode_seeking else [])
    learn = gan_learner(dls, loss, augment, ema, generator=kinds[generator](size, c, dls.z_dim, nf), critic=critic,
                        cbs=[*extra, *listify(cbs)], **kwargs)
    learn.generator_config = GeneratorConfig(size=size, n_in=c, invert=bool(dls.invert), z_dim=dls.z_dim, average=ema is not None,
                                             generator=generator)
    return learn

def generate_like(
    learn, # a `oneshot_learner` (its generator's moving average is used when it has one)
    image, # one image of a class: a path, PIL image or array
    n:int=8, # how many new images
    seed:int|None=None, # seed of the noise (None: fresh)
    average:bool|None=None, # draw with the moving average of the generator (None: the learner's `generator_config.average`)
) -> list:
    "`n` new images of `image`'s class, as PIL images at the generator's size, in the source's polarity"
    check_int('generate_like', 'n', n)
    try: cfg = generator_config(learn)
    except ValueError as e: raise ValueError(f'generate_like: {e}') from None
    average = cfg.average if average is None else average
    gen = getattr(learn, 'gen_ema', None) if average else None
    if gen is None: gen = unwrap_model(learn.model).generator
    img_cls = PILImageBW if cfg.n_in == 1 else PILImage
    im = to_image(image, img_cls)
    if cfg.invert: im = ImageOps.invert(im)
    dev = next(gen.parameters()).device
    src = (image_tensor([im], cfg.size, img_cls).float()/127.5 - 1).to(dev).expand(n, -1, -1, -1)
    g = torch.Generator().manual_seed(seed if seed is not None else random.getrandbits(62))
    z = torch.randn(n, cfg.z_dim, generator=g).to(dev)
    was = gen.training
    gen.eval()
    try:
        with torch.no_grad(): out = gen.draw(src, z)
    finally: gen.train(was)
    arr = ((out.float().clamp(-1, 1) + 1)*127.5).round().byte().cpu()
    res = [Image.fromarray(a[0].numpy() if a.shape[0] == 1 else a.permute(1, 2, 0).numpy()) for a in arr]
    return [ImageOps.invert(r) for r in res] if cfg.invert else res

def generated_grid(
    learn, # a `oneshot_learner`
    sources:list, # one image each of the classes to show (paths, PIL images or arrays)
    n:int=8, # generated images per source
    seed:int=0, # row r's noise seed is `seed + r`
    figsize_per:float=0.9, # inches per image
):
    "A figure: each source (left, at the generator's size) and `n` images `generate_like` draws from it"
    import matplotlib.pyplot as plt
    cfg = generator_config(learn)
    img_cls = PILImageBW if cfg.n_in == 1 else PILImage
    fig, axs = plt.subplots(len(sources), n + 1, figsize=(figsize_per*(n + 1), figsize_per*1.05*len(sources)), squeeze=False)
    for r, src in enumerate(sources):
        first = to_image(src, img_cls).resize((cfg.size, cfg.size))
        for c, im in enumerate([first] + generate_like(learn, src, n, seed=seed + r)):
            axs[r, c].imshow(im, cmap='gray' if cfg.n_in == 1 else None); axs[r, c].axis('off')
    return fig
