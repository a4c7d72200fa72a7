"""One-shot generation: given one image of a class never seen in training, draw new examples of that class.

A data-augmentation GAN (DAGAN, Antoniou, Storkey & Edwards 2017): the generator encodes the source image (a small
U-Net) and mixes noise into its bottleneck and first decoder level; the critic judges *pairs* `(source, candidate)`
stacked on the channel axis, real pairs being two drawings of one class by different people. A generator that copied
its source would make pairs the critic tells from real ones (no two people draw alike), so it has to vary the drawing
while keeping its class. Training runs on fastai's `GANLearner` through `ff.gan_learner` (hinge loss, spectral-norm
critic, DiffAugment applied to both images of a pair alike, a moving average of the generator): the generator's
`forward(source)` returns the pair `(source, drawn)`, which is what fastai's GAN loop hands the critic.

Measured as the one-shot generation literature does (Boutin et al. 2022, "Diversity vs. Recognizability"):
`recognisability` (the share of generated images a one-shot classifier assigns to their source's class in
within-alphabet trials) and `diversity` (their spread in that classifier's embedding space), each beside the same
figure for real drawings of the class by other people."""
import random
from dataclasses import dataclass, field
import torch
from torch import nn
from torch.utils.data import Subset
import torch.nn.functional as F
from fastai.callback.core import Callback
from fastai.vision.gan import GANTrainer
from PIL import Image, ImageOps
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.data.transforms import IntToFloatTensor, Normalize
from fastai.torch_core import TensorImage, default_device
from fastai.vision.core import PILImage, PILImageBW
from fasttransform import Pipeline
from torch.nn.utils.parametrizations import spectral_norm
from pathlib import Path
from ..data.items import ClassFolder, to_image
from ..data.episodes import Episode
from ..data.episode_loaders import image_tensor
from .._checks import check_int
from .._distrib import unwrap_model
from .stable import gan_learner, sn_critic, add_to_loss, POLICIES

__all__ = ['OneShotGenerator', 'WarpGenerator', 'pair_critic', 'SourceConsistency', 'ModeSeeking', 'OneShotPairs', 'OneShotDataLoaders', 'oneshot_learner', 'generate_like',
           'OneShotTrial', 'oneshot_trials', 'recognisability', 'diversity', 'generated_grid']

def _down(ni, nf, bn=True):
    return nn.Sequential(nn.Conv2d(ni, nf, 4, 2, 1, bias=not bn), *([nn.BatchNorm2d(nf)] if bn else []), nn.LeakyReLU(0.2))

def _up(ni, nf):
    return nn.Sequential(nn.ConvTranspose2d(ni, nf, 4, 2, 1, bias=False), nn.BatchNorm2d(nf), nn.ReLU())

def _source_encoder(m, name, size, n_channels, z_dim, nf) -> list:
    """Sets on `m` what both one-shot generators share: the checked sizes, the source encoder (strided convs down to
    4x4) and the noise projections to 4x4 and 8x8 maps (`z_low`, `z_mid`). -> the encoder's widths"""
    if size not in (32, 64): raise ValueError(f'{name}: size={size}; use 32 or 64')
    check_int(name, 'z_dim', z_dim); check_int(name, 'nf', nf)
    m.size, m.n_channels, m.z_dim = size, n_channels, z_dim
    n = {32: 3, 64: 4}[size]                       # encoder levels, down to 4x4
    w = [nf*2**i for i in range(n)]
    m.enc = nn.ModuleList([_down(n_channels if i == 0 else w[i - 1], w[i], bn=i > 0) for i in range(n)])
    m.z_low = nn.Linear(z_dim, 16*w[-1])           # noise as 4x4 maps beside the bottleneck
    m.z_mid = nn.Linear(z_dim, 64*w[-2])           # and as 8x8 maps beside the first decoder level
    return w

def _encode(m, source, z):
    "(the encoder's maps at each level, the bottleneck with the 4x4 noise maps beside it)"
    skips, h = [], source
    for e in m.enc: h = e(h); skips.append(h)
    return skips, torch.cat([h, m.z_low(z).view(len(source), -1, 4, 4)], 1)

class OneShotGenerator(nn.Module):
    """DAGAN's generator for 32 or 64 px images: an encoder of the source (strided convs), noise projected to maps
    and concatenated at the bottleneck and at the first decoder level, a decoder with skip connections from the
    encoder. `draw(source, z)` -> new images (B,C,H,W) in [-1, 1]; `forward(source)` -> the pairs `(source, drawn)`
    stacked on the channel axis (B,2C,H,W), fresh noise each call, what the critic of fastai's GAN loop sees."""
    def __init__(
        self,
        size:int=32, # image side: 32 or 64
        n_channels:int=1, # image channels
        z_dim:int=64, # noise size
        nf:int=32, # channels of the first encoder level (doubling at each level)
    ):
        super().__init__()
        w = _source_encoder(self, 'OneShotGenerator', size, n_channels, z_dim, nf)
        n = len(w)
        # decoder level k doubles the side and gives w[n-2-k] channels; then its skip (and at k=0 the noise) joins
        ins = [2*w[-1], 3*w[-2]] + [2*w[n - 1 - k] for k in range(2, n - 1)]
        self.ups = nn.ModuleList([_up(ins[k], w[n - 2 - k]) for k in range(n - 1)])
        self.out = nn.Sequential(nn.ConvTranspose2d(2*w[0], n_channels, 4, 2, 1), nn.Tanh())

    def draw(
        self,
        source:torch.Tensor, # source images in [-1, 1], (B,C,H,W)
        z:torch.Tensor|None=None, # noise (B,z_dim); None: drawn now
    ) -> torch.Tensor:
        "New images of the sources' classes, (B,C,H,W) in [-1, 1]"
        B = len(source)
        if z is None: z = torch.randn(B, self.z_dim, device=source.device, dtype=source.dtype)
        skips, h = _encode(self, source, z)
        for k, up in enumerate(self.ups):
            extra = [self.z_mid(z).view(B, -1, 8, 8)] if k == 0 else []
            h = torch.cat([up(h), skips[-2 - k], *extra], 1)
        return self.out(h)

    def forward(
        self,
        source:torch.Tensor, # source images in [-1, 1], (B,C,H,W)
    ) -> torch.Tensor:
        "The pairs `(source, drawn)`, (B,2C,H,W)"
        return torch.cat([source, self.draw(source)], 1)

class WarpGenerator(nn.Module):
    """A one-shot generator that redraws its source by *moving* it: the source and noise are encoded as in
    `OneShotGenerator` (strided convs down to 4x4, noise beside the bottleneck, one decoder level with its skip and
    more noise at 8x8), and the net outputs a displacement field at 4x4 and 8x8 (at most `max_shift` of the image
    side), upsampled smoothly to the image and applied with `grid_sample`. Every drawn image is its source bent, so
    it keeps the source's strokes and ink (no specks, no lost strokes); the critic decides which bends look like
    another person's drawing. Why: people's drawings of a character differ mostly by where the strokes go, not by
    what they are (Hauberg et al. 2016 learned such deformations for data augmentation); a free-form decoder spends
    a CPU budget on relearning to draw strokes at all. Starts as the identity (zero field): a copy of the source."""
    def __init__(
        self,
        size:int=32, # image side: 32 or 64
        n_channels:int=1, # image channels
        z_dim:int=64, # noise size
        nf:int=32, # channels of the first encoder level (doubling at each level)
        max_shift:float=0.25, # the largest displacement, as a share of the image side
    ):
        super().__init__()
        if not 0 < max_shift <= 1: raise ValueError(f'WarpGenerator: max_shift={max_shift}; use a share of the side in (0, 1]')
        w = _source_encoder(self, 'WarpGenerator', size, n_channels, z_dim, nf)
        self.max_shift = max_shift
        self.coarse = nn.Conv2d(2*w[-1], 2, 3, padding=1)           # the 4x4 field, from the bottleneck and noise
        self.up = _up(2*w[-1], w[-2])
        self.fine = nn.Conv2d(3*w[-2], 2, 3, padding=1)             # the 8x8 field, from the decoder, skip and noise
        for head in (self.coarse, self.fine): nn.init.zeros_(head.weight); nn.init.zeros_(head.bias)

    def field(
        self,
        source:torch.Tensor, # source images in [-1, 1], (B,C,H,W)
        z:torch.Tensor, # noise (B,z_dim)
    ) -> torch.Tensor:
        "The displacement (B,H,W,2) in grid_sample's coordinates ([-1, 1] across the image)"
        B = len(source)
        skips, h = _encode(self, source, z)
        mid = torch.cat([self.up(h), skips[-2], self.z_mid(z).view(B, -1, 8, 8)], 1)
        size = source.shape[-2:]
        f = sum(F.interpolate(head(x), size=size, mode='bicubic', align_corners=False)
                for head, x in ((self.coarse, h), (self.fine, mid)))
        return (2*self.max_shift*torch.tanh(f)).permute(0, 2, 3, 1)

    def draw(
        self,
        source:torch.Tensor, # source images in [-1, 1], (B,C,H,W), background -1 (bright ink on black)
        z:torch.Tensor|None=None, # noise (B,z_dim); None: drawn now
    ) -> torch.Tensor:
        "The sources bent by a field drawn from the noise, (B,C,H,W) in [-1, 1]"
        if z is None: z = torch.randn(len(source), self.z_dim, device=source.device, dtype=source.dtype)
        base = F.affine_grid(torch.eye(2, 3, device=source.device, dtype=source.dtype).expand(len(source), 2, 3),
                             source.shape, align_corners=False)
        # outside the image is background: -1 (zeros padding would be mid-grey)
        return F.grid_sample(source + 1, base + self.field(source, z), align_corners=False) - 1

    def forward(
        self,
        source:torch.Tensor, # source images in [-1, 1], (B,C,H,W)
    ) -> torch.Tensor:
        "The pairs `(source, drawn)`, (B,2C,H,W)"
        return torch.cat([source, self.draw(source)], 1)

def pair_critic(
    size:int=32, # image side: 32 or 64
    n_channels:int=1, # channels of one image (the critic sees pairs: twice as many)
    nf:int=64, # channels of the first layer
) -> nn.Sequential:
    "`sn_critic` over pairs `(source, candidate)` stacked on the channel axis: (B,2C,H,W) -> (B,1) raw scores"
    return sn_critic(size, 2*n_channels, nf)

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

class OneShotPairs:
    """Items `(source, pair)`: image `i` and, stacked on the channel axis, image `i` with another image of its class
    (another person's drawing, for Omniglot): fresh at each access, or fixed per index with `fixed_seed`"""
    def __init__(
        self,
        x:torch.Tensor, # uint8 images, (N,C,H,W)
        labels, # class index of each image
        fixed_seed:int|None=None, # None: a fresh partner at each access; an int: one partner per image
    ):
        self.x, self.labels = x, list(labels)
        by = {}
        for i, l in enumerate(self.labels): by.setdefault(l, []).append(i)
        self.others = [[j for j in by[l] if j != i] for i, l in enumerate(self.labels)]
        lonely = [i for i, o in enumerate(self.others) if not o]
        if lonely: raise ValueError(f'OneShotPairs: {len(lonely)} images are alone in their class (every class needs 2 or more)')
        self.fixed = None if fixed_seed is None else [random.Random(fixed_seed + i).choice(o) for i, o in enumerate(self.others)]
    def __len__(self): return len(self.x)
    def __getitem__(self, i):
        j = self.fixed[i] if self.fixed is not None else random.choice(self.others[i])
        return TensorImage(self.x[i]), TensorImage(torch.cat([self.x[i], self.x[j]], 0))

class OneShotDataLoaders(DataLoaders):
    """Batches `(source, real pair)` for `oneshot_learner`, images in [-1, 1]: train over every image with fresh
    partners (shuffled, full batches), valid over `n_valid` images with fixed partners"""
    @classmethod
    def from_folder(
        cls,
        path, # folder of class folders (Omniglot's Alphabet/character folders), or a `ClassFolder`
        size:int=32, # images are resized to `size` x `size`: 32 or 64
        n_channels:int=1, # 1 (grey) or 3 (RGB)
        invert:bool=False, # white <-> black (Omniglot: bright ink on black, as the generator draws)
        z_dim:int=64, # the generator's noise size (kept with the loaders for `oneshot_learner`)
        bs:int=64, # pairs per batch
        n_valid:int=64, # images with fixed partners for validation
        seed:int=0, # seed of the validation choice and partners
        device=None, # where batches go (default: fastai's `default_device()`)
    ):
        "From a folder of class folders"
        check_int('OneShotDataLoaders', 'bs', bs)
        if n_channels not in (1, 3): raise ValueError(f'n_channels={n_channels}: use 1 (grayscale) or 3 (RGB)')
        cf = path if isinstance(path, ClassFolder) else ClassFolder(path)
        img_cls = PILImageBW if n_channels == 1 else PILImage
        ims = [to_image(im, img_cls) for im in cf.images]
        if invert: ims = [ImageOps.invert(im) for im in ims]
        x = image_tensor(ims, size, img_cls)
        if len(x) < bs: raise ValueError(f'{len(x)} images are fewer than one batch (bs={bs})')
        tfms = [IntToFloatTensor(), Normalize.from_stats(0.5, 0.5)]   # [0,1] -> [-1,1], the range of tanh
        valid = sorted(random.Random(seed).sample(range(len(x)), min(n_valid, len(x))))
        dls = cls(DataLoader(OneShotPairs(x, cf.labels), bs=bs, shuffle=True, drop_last=True, after_batch=Pipeline(tfms)),
                  DataLoader(Subset(OneShotPairs(x, cf.labels, fixed_seed=seed), valid), bs=bs, after_batch=Pipeline(tfms)),
                  device=default_device() if device is None else device)
        dls.size, dls.n_channels, dls.z_dim, dls.invert, dls.class_folder = size, n_channels, z_dim, invert, cf
        return dls

# weights measured in bench/RESULTS.md ("One-shot generation"): (SourceConsistency, ModeSeeking) per generator
GENERATOR_DEFAULTS = {'warp': (0., 0.5), 'dagan': (2., 0.)}

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
    learn.oneshot = dict(size=size, n_channels=c, invert=bool(dls.invert), z_dim=dls.z_dim, average=ema is not None,
                         generator=generator)
    return learn

def generate_like(
    learn, # a `oneshot_learner` (its generator's moving average is used when it has one)
    image, # one image of a class: a path, PIL image or array
    n:int=8, # how many new images
    seed:int|None=None, # seed of the noise (None: fresh)
    average:bool|None=None, # draw with the moving average of the generator (None: the learner's `oneshot['average']`)
) -> list:
    "`n` new images of `image`'s class, as PIL images at the generator's size, in the source's polarity"
    check_int('generate_like', 'n', n)
    cfg = getattr(learn, 'oneshot', None)
    if cfg is None: raise ValueError('generate_like: not a one-shot generator learner (make one with ff.gan.oneshot_learner)')
    average = cfg.get('average', True) if average is None else average
    gen = getattr(learn, 'gen_ema', None) if average else None
    if gen is None: gen = unwrap_model(learn.model).generator
    img_cls = PILImageBW if cfg['n_channels'] == 1 else PILImage
    im = to_image(image, img_cls)
    if cfg['invert']: im = ImageOps.invert(im)
    dev = next(gen.parameters()).device
    src = (image_tensor([im], cfg['size'], img_cls).float()/127.5 - 1).to(dev).expand(n, -1, -1, -1)
    g = torch.Generator().manual_seed(seed if seed is not None else random.getrandbits(62))
    z = torch.randn(n, cfg['z_dim'], generator=g).to(dev)
    was = gen.training
    gen.eval()
    try:
        with torch.no_grad(): out = gen.draw(src, z)
    finally: gen.train(was)
    arr = ((out.float().clamp(-1, 1) + 1)*127.5).round().byte().cpu()
    res = [Image.fromarray(a[0].numpy() if a.shape[0] == 1 else a.permute(1, 2, 0).numpy()) for a in arr]
    return [ImageOps.invert(r) for r in res] if cfg['invert'] else res

@dataclass
class OneShotTrial:
    "A within-alphabet one-shot trial: one drawing of each of `n_way` classes in `support`; `label`'s is `source`"
    label: str   # the source's class
    source: object   # the source drawing (a path)
    support: dict = field(default_factory=dict)   # {label: [one drawing]} for the trial's classes
    real: list = field(default_factory=list)   # other drawings of `label` (by other people)

def oneshot_trials(
    path, # folder of class folders (e.g. Omniglot alphabets the classifier and the generator never saw), or a `ClassFolder`
    n_way:int=20, # classes per trial, all of one group
    n_trials:int=100, # trials
    n_real:int=1, # real drawings of the source's class kept per trial (other people's)
    group=None, # label -> group (default: the alphabet, `Alphabet/characterNN`)
    seed:int=0, # seed of the draws
) -> list:
    "Trials for `recognisability`: each picks one group, `n_way` of its classes, one drawing each, and `n_real` more of the first"
    from ..datasets.naming import alphabet_of
    group = group or alphabet_of
    cf = path if isinstance(path, ClassFolder) else ClassFolder(path)
    files = {}
    for f, l in zip(cf.files, cf.label_names()): files.setdefault(l, []).append(f)
    groups = {}
    for l in files:
        if len(files[l]) > n_real: groups.setdefault(group(l), []).append(l)
    usable = sorted(g for g, ls in groups.items() if len(ls) >= n_way)
    if not usable: raise ValueError(f'oneshot_trials: no group of {cf.root} has {n_way} classes with {n_real + 1}+ images')
    rng, trials = random.Random(seed), []
    for t in range(n_trials):
        classes = rng.sample(sorted(groups[usable[t % len(usable)]]), n_way)
        picks = {c: rng.sample(files[c], n_real + 1 if c == classes[0] else 1) for c in classes}
        trials.append(OneShotTrial(classes[0], picks[classes[0]][0], {c: p[:1] for c, p in picks.items()}, picks[classes[0]][1:]))
    return trials

def _trial_episodes(trials, candidates):
    "(images, `Episode`s) of the trials: one episode each, its queries the candidates; a path used twice is encoded once"
    images, pos, eps = [], {}, []
    def at(im):
        key = str(im) if isinstance(im, (str, Path)) else id(im)   # `images` keeps the objects alive, so ids stay theirs
        if key not in pos: pos[key] = len(images); images.append(im)
        return pos[key]
    for i, t in enumerate(trials):
        classes = sorted(t.support)
        sup = [(at(im), k) for k, c in enumerate(classes) for im in t.support[c]]   # class-major, as `Episode` wants
        query = [at(im) for im in (t.real if candidates is None else candidates[i])]
        eps.append(Episode(classes, [p for p, _ in sup], [k for _, k in sup], query, [classes.index(t.label)]*len(query)))
    return images, eps

def recognisability(
    classifier, # a one-shot classifier (a Learner `ff.episode_accuracy` accepts)
    trials:list, # `oneshot_trials`
    candidates:list|None=None, # per trial, images that claim the source's class (generated ones); None: the trials' real drawings
) -> float:
    """The share of `candidates` that `classifier` assigns to their trial's source class against the trial's support
    (its one-shot accuracy on episodes whose queries are the candidates; every image is encoded once)"""
    from ..callbacks.nway import episode_accuracy
    return episode_accuracy(classifier, *_trial_episodes(trials, candidates))['accuracy']

def diversity(
    classifier, # a Learner whose embeddings `ff.embed` gives
    groups:list, # lists of images, each of one class (generated from one source, or real drawings of one class)
) -> float:
    "The mean distance of a group's embeddings to their mean, averaged over the groups (0: all alike)"
    from ..inference import embed
    groups = [list(g) for g in groups]
    spread = [(e - e.mean(0)).norm(dim=1).mean().item()
              for e in embed(classifier, [im for g in groups for im in g]).float().split([len(g) for g in groups])]
    return sum(spread)/len(spread)

def generated_grid(
    learn, # a `oneshot_learner`
    sources:list, # one image each of the classes to show (paths, PIL images or arrays)
    n:int=8, # generated images per source
    seed:int=0, # row r's noise seed is `seed + r`
    figsize_per:float=0.9, # inches per image
):
    "A figure: each source (left, at the generator's size) and `n` images `generate_like` draws from it"
    import matplotlib.pyplot as plt
    cfg = learn.oneshot
    img_cls = PILImageBW if cfg['n_channels'] == 1 else PILImage
    fig, axs = plt.subplots(len(sources), n + 1, figsize=(figsize_per*(n + 1), figsize_per*1.05*len(sources)), squeeze=False)
    for r, src in enumerate(sources):
        first = to_image(src, img_cls).resize((cfg['size'], cfg['size']))
        for c, im in enumerate([first] + generate_like(learn, src, n, seed=seed + r)):
            axs[r, c].imshow(im, cmap='gray' if cfg['n_channels'] == 1 else None); axs[r, c].axis('off')
    return fig
