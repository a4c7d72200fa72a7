"""One-shot generation benchmark (Boutin et al. 2022, "Diversity vs. Recognizability"; Lake et al.'s one-shot
generation task) on Omniglot alphabets unseen by both the generator and the classifier.

1. A one-shot classifier: a model folder (`--classifier`, e.g. written by `python bench/omniglot_oneshot.py --save DIR`,
   the `drawings` recipe trained on --train), or the recipe trained here.
2. A one-shot generator (`ff.oneshot_learner`, its default warp generator, or --generator dagan) trained on --train for
   --epochs (the default, so that a figure reproduces) or, with --minutes, the whole epochs that fit that budget.
3. Within-alphabet --n-way trials on the alphabets of --test that --train lacks: one drawing (the source) per class; the source's class also has real
   drawings by other people. Recognisability: the share of images the classifier assigns to the source's class,
   for --samples generated images per source and for the real drawings. Diversity: the spread of --samples images
   of a class in the classifier's embedding space (generated from one source; real: as many people's drawings).
4. Generation as augmentation: the one-shot error of the same trials (query: a real drawing by another person) with
   the support sets as they are, and with --augment generated variants added to each support image.
A grid "one real image -> eight generated" of unseen characters is written to --out. Last line: one JSON object."""
import argparse, json, random, tempfile, time, warnings
from pathlib import Path
import torch
from fastai.vision.all import set_seed
import fewshot_fastai as ff

def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--train', default='background_small1', help='Omniglot set the generator (and a classifier trained here) learn from')
    p.add_argument('--test', default='background_small2', help='Omniglot set whose alphabets neither saw')
    p.add_argument('--classifier', default=None, help='a model folder (ff.save_model); default: the drawings recipe trained on --train')
    g = p.add_mutually_exclusive_group()
    g.add_argument('--epochs', type=int, default=110, help="the generator's epochs (110: what 6 minutes gave alone on the 2-core CPU)")
    g.add_argument('--minutes', type=float, default=None, help="instead of --epochs: a training budget (whole epochs that fit)")
    p.add_argument('--loss', default='hinge', choices=['hinge', 'wgan-gp', 'dcgan', 'wgan'])
    p.add_argument('--generator', default='warp', choices=['dagan', 'warp', 'elastic'],
                   help="ff.gan.oneshot_learner's generator: draws anew (dagan) or bends the source (warp); 'elastic': no "
                        "GAN, the reference of random elastic distortions (ff.data.Elastic) of the source at --elastic px")
    p.add_argument('--elastic', type=float, default=1.5, help="--generator elastic: ff.data.Elastic's magnitude in px at 32 px")
    p.add_argument('--nf', type=int, default=32, help="the generator's first width")
    p.add_argument('--consistency', type=float, default=None, help="weight of ff.gan.SourceConsistency (0: none, as DAGAN published; default: oneshot_learner's for the generator)")
    p.add_argument('--mode-seeking', type=float, default=None, help="weight of ff.gan.ModeSeeking (0: none; default: oneshot_learner's for the generator)")
    p.add_argument('--no-average', action='store_true', help="draw with the generator itself, not its moving average")
    p.add_argument('--load', default=None, help='a folder whose models/oneshot_gan.pth to resume instead of training')
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--n-way', type=int, default=20)
    p.add_argument('--trials', type=int, default=200)
    p.add_argument('--samples', type=int, default=8, help='generated images per source (and real drawings per class for diversity)')
    p.add_argument('--augment', type=int, default=4, help='generated variants added to each support image ')
    p.add_argument('--out', default='out/oneshot_generation', help='folder for the grid and the generator checkpoint')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)

def train_generator(a):
    set_seed(a.seed)
    dls = ff.OneShotDataLoaders.from_folder(ff.omniglot(a.train), size=32, invert=True, bs=a.bs)
    learn = ff.oneshot_learner(dls, a.loss, nf=a.nf, generator=a.generator, consistency=a.consistency, mode_seeking=a.mode_seeking,
                               path=a.load or a.out,
                               cbs=[ff.GANCheckpoint('oneshot')])
    if a.no_average: learn.generator_config.average = False
    if a.load: return learn, ff.resume_gan(learn, 'oneshot'), 0.
    t, epochs = time.perf_counter(), 0
    with learn.no_bar(), learn.no_logging():
        if a.minutes is None:
            for epochs in range(1, a.epochs + 1): learn.fit(1)   # one fit per epoch, as the timed loop does
        else:
            while time.perf_counter() - t < a.minutes*60: learn.fit(1); epochs += 1
    return learn, epochs, time.perf_counter() - t

class ElasticLike:
    "The reference 'generator' without learning: `n` random elastic distortions (`ff.data.Elastic`) of the source at 32 px"
    def __init__(self, magnitude): self.tfm = ff.data.Elastic(magnitude, p=1.)
    def __call__(self, image, n, seed):
        import numpy as np
        from PIL import Image
        from fastai.vision.core import TensorImage
        im = (image if isinstance(image, Image.Image) else Image.open(image)).convert('L').resize((32, 32), Image.BILINEAR)
        x = TensorImage(torch.tensor(np.asarray(im), dtype=torch.float32)[None, None].expand(n, -1, -1, -1)/255)
        torch.manual_seed(seed)
        out = self.tfm(x, split_idx=0)
        return [Image.fromarray((o[0]*255).round().clamp(0, 255).byte().numpy()) for o in out]

def grid(learn, trials, path, rows=6):
    "One real drawing (left) and eight drawn from it, for `rows` unseen characters, as a PNG"
    import matplotlib
    matplotlib.use('Agg')
    fig = ff.gan.generated_grid(learn, [t.source for t in trials[:rows]])
    fig.suptitle('one real drawing (left) -> eight generated', fontsize=8)
    ff.interpret.save_figure(fig, path, dpi=100)

def main(argv=None):
    a = parse(argv)
    warnings.filterwarnings('ignore')
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if a.classifier: clf = ff.load_model(a.classifier)
    else:
        set_seed(a.seed)
        clf = ff.recipe('drawings')(ff.omniglot(a.train), seed=a.seed)
    print(f'classifier: {a.classifier or "the drawings recipe trained on " + a.train} ({time.perf_counter() - t0:.0f}s)', flush=True)
    if a.generator == 'elastic':
        learn, epochs, train_s, draw = None, 0, 0., ElasticLike(a.elastic)
        print(f'generator: none, random elastic distortions of {a.elastic} px', flush=True)
    else:
        learn, epochs, train_s = train_generator(a)
        draw = lambda im, n, seed: ff.generate_like(learn, im, n, seed=seed)
        print(f'generator: {a.loss}, {epochs} epochs in {train_s/60:.1f} min on {a.train}', flush=True)
    n_real = max(a.samples, 1)
    unseen = ff.evaluate.unseen_alphabets([a.train], among=[a.test])
    alphabets = list(unseen)
    test = ff.ClassFolder(ff.omniglot(a.test)).subset(lambda c: ff.datasets.alphabet_of(c) in unseen)
    print(f'unseen alphabets of {a.test}: {alphabets}', flush=True)
    trials = ff.evaluate.oneshot_trials(test, n_way=a.n_way, n_trials=a.trials, n_real=n_real, seed=a.seed)
    t = time.perf_counter()
    gen = [draw(tr.source, max(a.samples, a.augment), a.seed + i) for i, tr in enumerate(trials)]
    gen_s = time.perf_counter() - t
    rec_gen = ff.evaluate.recognisability(clf, trials, [g[:a.samples] for g in gen])
    rec_real = ff.evaluate.recognisability(clf, trials)
    div_gen = ff.evaluate.diversity(clf, [g[:a.samples] for g in gen])
    div_real = ff.evaluate.diversity(clf, [tr.real[:a.samples] for tr in trials])
    print(f'recognisability ({a.n_way}-way, within alphabet, {a.trials} trials): generated {rec_gen:.3f}, real {rec_real:.3f} '
          f'(ratio {rec_gen/rec_real:.3f})')
    print(f'diversity (mean distance to the class mean, classifier embeddings): generated {div_gen:.3f}, real {div_real:.3f} '
          f'(ratio {div_gen/div_real:.3f})')
    # the same trials' one-shot error, query = the first real drawing, supports with and without generated variants
    plain = [dict(tr.__dict__, real=tr.real[:1]) for tr in trials]
    one = [ff.evaluate.OneShotTrial(**d) for d in plain]
    err_plain = 1 - ff.evaluate.recognisability(clf, one)
    if learn is not None:
        aug = [ff.evaluate.OneShotTrial(tr.label, tr.source, ff.gan.with_generated(learn, tr.support, a.augment, seed=10_000 + 31*i), tr.real)
               for i, tr in enumerate(one)]
    else:
        aug = [ff.evaluate.OneShotTrial(tr.label, tr.source, {c: list(v) + draw(v[0], a.augment, 10_000 + 31*i + k)
                                                         for k, (c, v) in enumerate(tr.support.items())}, tr.real)
               for i, tr in enumerate(one)]
    err_aug = 1 - ff.evaluate.recognisability(clf, aug)
    print(f'one-shot error on the same trials: {100*err_plain:.2f}% as they are, {100*err_aug:.2f}% with {a.augment} '
          f'generated variants per support image')
    if learn is not None: grid(learn, trials[::max(1, len(trials)//6)], out/'oneshot_grid.png')
    from fewshot_fastai.gan.oneshot import GENERATOR_DEFAULTS
    weights = [given if given is not None else (GENERATOR_DEFAULTS[a.generator][k] if a.generator in GENERATOR_DEFAULTS else None)
               for k, given in enumerate((a.consistency, a.mode_seeking))]
    res = dict(train=a.train, test=a.test, unseen_alphabets=alphabets, classifier=a.classifier or 'drawings recipe (trained here)', loss=a.loss,
               generator=a.generator, elastic=a.elastic if a.generator == 'elastic' else None,
               nf=a.nf, consistency=weights[0], mode_seeking=weights[1], average=not a.no_average, generator_epochs=epochs, generator_minutes=round(train_s/60, 2), n_way=a.n_way, trials=a.trials,
               samples=a.samples, recognisability_generated=round(rec_gen, 4), recognisability_real=round(rec_real, 4),
               recognisability_ratio=round(rec_gen/rec_real, 4), diversity_generated=round(div_gen, 4),
               diversity_real=round(div_real, 4), diversity_ratio=round(div_gen/div_real, 4),
               error_plain_percent=round(100*err_plain, 2), error_augmented_percent=round(100*err_aug, 2),
               augment=a.augment, generation_seconds=round(gen_s, 1), grid=str(out/'oneshot_grid.png') if learn is not None else None)
    print(json.dumps(res))

if __name__ == '__main__': main()
