"""GAN benchmark: epoch time of our fastai loop (dcgan_learner / wgan_learner) against a plain PyTorch loop of the
same nets, data, batch size, optimizers and critic/generator schedule (one phase step per batch, as fastai's
GANTrainer does), timed in the same run; then the Fréchet distance (local efficientnet_lite0 features, NOT the
Inception FID) of our trained generator at the start and at the end. Last line: one JSON object."""
import argparse, copy, json, statistics, time, warnings
import torch
from torch.utils.data import DataLoader, TensorDataset
from fastai.vision.all import set_seed
import fewshot_fastai as ff

def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--loop', default='dcgan', choices=['dcgan', 'wgan', 'hinge', 'wgan-gp'],
                   help='dcgan / wgan: the classic learners (timed against a plain loop); hinge / wgan-gp: ff.gan_learner '
                        '(DiffAugment and the generator\'s moving average on; no plain loop to time against)')
    p.add_argument('--minutes', type=float, default=None, help='train for this much wall time (whole epochs) instead of --epochs')
    p.add_argument('--no-augment', action='store_true', help='ff.gan_learner without DiffAugment')
    p.add_argument('--no-ema', action='store_true', help='ff.gan_learner without the moving average')
    p.add_argument('--ema-decay', type=float, default=0.999, help="ff.gan_learner: the moving average's decay")
    p.add_argument('--lr', type=float, default=None, help="ff.gan_learner: the learning rate (default: the learner's)")
    p.add_argument('--n-critic', type=int, default=None, help="ff.gan_learner: critic steps per generator step (default: the learner's)")
    p.add_argument('--data', default='omniglot', choices=['omniglot', 'orl'])
    p.add_argument('--epochs', type=int, default=20, help='training epochs for the Fréchet figure')
    p.add_argument('--timed-epochs', type=int, default=6, help='epochs timed per loop (after one warm-up epoch)')
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--nf', type=int, default=64)
    p.add_argument('--fd-n', type=int, default=1000, help='images per set for the Fréchet distance')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)

def plain_epoch(gen, crit, x, a, opt_g, opt_c, sched):
    """One epoch of the seed-style loop: torch DataLoader, one optimizer per net, `sched` critic steps then one
    generator step, each step on its own batch"""
    bce = torch.nn.BCEWithLogitsLoss()
    n_crit, k = sched, 0
    for (real,) in DataLoader(TensorDataset(x), batch_size=a.bs, shuffle=True, drop_last=True):
        z = torch.randn(len(real), 100)
        if k < n_crit:                                    # critic step
            with torch.no_grad(): fake = gen(z)
            rp, fp = crit(real), crit(fake)
            loss = (bce(rp, torch.ones_like(rp)) + bce(fp, torch.zeros_like(fp))) if a.loop == 'dcgan' else fp.mean() - rp.mean()
            opt_c.zero_grad(); loss.backward(); opt_c.step()
            if a.loop == 'wgan':
                with torch.no_grad():
                    for p in crit.parameters(): p.clamp_(-0.01, 0.01)
            k += 1
        else:                                             # generator step
            fp = crit(gen(z))
            loss = bce(fp, torch.ones_like(fp)) if a.loop == 'dcgan' else -fp.mean()
            opt_g.zero_grad(); loss.backward(); opt_g.step()
            k = 0

def main(argv=None):
    a = parse(argv)
    warnings.filterwarnings('ignore')
    set_seed(a.seed)
    src, size, invert = (ff.omniglot('background_small1'), 32, True) if a.data == 'omniglot' else (ff.orl_faces(), 64, False)
    dls = ff.GANDataLoaders.from_folder(src, size=size, invert=invert, bs=a.bs)
    x = dls.train.dataset.x
    print(f'{a.loop} on {a.data}: {len(x)} images at {size} px, batch {a.bs}, {len(x)//a.bs} steps per epoch')
    gen0, crit0 = ff.gan.dcgan_generator(size, 1, nf=a.nf), ff.gan.dcgan_critic(size, 1, nf=a.nf)
    if a.loop in ('hinge', 'wgan-gp') or a.minutes: return quality_only(a, dls, gen0, crit0, size, len(x))
    make = ff.dcgan_learner if a.loop == 'dcgan' else ff.wgan_learner
    learn = make(dls, copy.deepcopy(gen0), copy.deepcopy(crit0))
    # the plain loop: same nets, same images (normalised to [-1, 1] once), same optimizer settings
    gen, crit = copy.deepcopy(gen0), copy.deepcopy(crit0)
    xf = x.float()/127.5 - 1
    if a.loop == 'dcgan':
        opt_g, opt_c = (torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.5, 0.999)) for m in (gen, crit))
        sched = 1
    else:
        opt_g, opt_c = (torch.optim.RMSprop(m.parameters(), lr=5e-5) for m in (gen, crit))
        sched = 5
    ours, plain = [], []
    with learn.no_bar(), learn.no_logging():
        learn.fit(1); plain_epoch(gen, crit, xf, a, opt_g, opt_c, sched)   # warm-up
        for _ in range(a.timed_epochs):     # interleaved, so that machine noise hits both alike
            t = time.perf_counter(); learn.fit(1); ours.append(time.perf_counter() - t)
            t = time.perf_counter(); plain_epoch(gen, crit, xf, a, opt_g, opt_c, sched); plain.append(time.perf_counter() - t)
    # medians: this 2-core VM's speed drifts by +-10% from minute to minute
    ep, pep = statistics.median(ours), statistics.median(plain)
    ratio = statistics.median(o/p for o, p in zip(ours, plain))
    print(f'epoch time (median of {a.timed_epochs}): ours {ep:.2f}s, plain PyTorch {pep:.2f}s; '
          f'median ratio of interleaved pairs {ratio:.3f} ({100*(ratio - 1):+.1f}%)')
    # quality: a fresh learner trained for --epochs, Fréchet distance before and after
    set_seed(a.seed)
    fr = ff.GANFrechet(ff.gan.lite0_features(64), every=max(1, a.epochs//4), n=a.fd_n)
    smp = ff.GANSamples(n=32, every=max(1, a.epochs//4), save=False)
    learn = make(dls, copy.deepcopy(gen0), copy.deepcopy(crit0), cbs=[fr, smp])
    t = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit(a.epochs)
    train_s = time.perf_counter() - t
    print('Fréchet distance (efficientnet_lite0 features, not Inception FID):',
          ', '.join(f'epoch {e}: {d:.1f}' for e, d in fr.history))
    res = dict(loop=a.loop, data=a.data, size=size, images=len(x), bs=a.bs, epoch_seconds=round(ep, 3),
               plain_epoch_seconds=round(pep, 3), overhead_percent=round(100*(ratio - 1), 1),
               epoch_seconds_all=[round(t, 2) for t in ours], plain_epoch_seconds_all=[round(t, 2) for t in plain],
               epochs=a.epochs, train_seconds=round(train_s, 1), fd_start=round(fr.history[0][1], 2),
               fd_end=round(fr.history[-1][1], 2), fd_history=[(e, round(d, 2)) for e, d in fr.history],
               stopped=getattr(learn, 'gan_stopped', None))
    print(json.dumps(res))

def fit_for(learn, minutes):
    "Whole epochs, one `fit(1)` at a time (GANFixes carries the phase across fits), until `minutes` have passed"
    t, epochs = time.perf_counter(), 0
    with learn.no_bar(), learn.no_logging():
        while time.perf_counter() - t < minutes*60: learn.fit(1); epochs += 1
    return time.perf_counter() - t, epochs

def quality_only(a, dls, gen0, crit0, size, n_images):
    """A learner trained for --epochs or --minutes (the classic DCGAN / WGAN, or ff.gan_learner), and the Fréchet
    distance of its samples (the moving average's, where there is one) before and after: no distance in between, so
    that a time budget is spent on training alone"""
    set_seed(a.seed)
    feats = ff.gan.lite0_features(64)
    x = dls.train.dataset.x
    real = feats(x[torch.randperm(len(x), generator=torch.Generator().manual_seed(a.seed))[:a.fd_n]].float()/127.5 - 1)
    z = torch.randn(a.fd_n, 100, generator=torch.Generator().manual_seed(a.seed + 1))
    if a.loop in ('dcgan', 'wgan'):
        learn = (ff.dcgan_learner if a.loop == 'dcgan' else ff.wgan_learner)(dls, copy.deepcopy(gen0), copy.deepcopy(crit0))
    else:
        learn = ff.gan_learner(dls, a.loop, augment=None if a.no_augment else ff.gan.stable.POLICIES,
                               ema=None if a.no_ema else a.ema_decay, generator=copy.deepcopy(gen0), lr=a.lr, n_critic=a.n_critic)
    fd = lambda: ff.gan.frechet_distance(real, feats(ff.generate(ff.gan.callbacks.sampling_generator(learn), z)))
    start = fd()
    if a.minutes: train_s, epochs = fit_for(learn, a.minutes)
    else:
        t = time.perf_counter()
        with learn.no_bar(), learn.no_logging(): learn.fit(a.epochs)
        train_s, epochs = time.perf_counter() - t, a.epochs
    end = fd()
    print(f'{a.loop}: {epochs} epochs in {train_s/60:.1f} min; Fréchet distance (efficientnet_lite0 features, not '
          f'Inception FID) {start:.1f} -> {end:.1f}')
    new = a.loop not in ('dcgan', 'wgan')
    print(json.dumps(dict(loop=a.loop, data=a.data, size=size, images=n_images, bs=a.bs, augment=new and not a.no_augment,
                          ema=new and not a.no_ema and a.ema_decay, lr=a.lr, n_critic=a.n_critic, epochs=epochs, train_seconds=round(train_s, 1), fd_start=round(start, 2),
                          fd_end=round(end, 2), stopped=getattr(learn, 'gan_stopped', None))))

if __name__ == '__main__': main()
