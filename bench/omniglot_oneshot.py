"""Omniglot one-shot benchmark of the `drawings` recipe: train it on a small background set (or load a model it saved),
then score within-alphabet 20-way 1-shot episodes (support and queries from different drawers) on the alphabets no
training set holds, Lake-format runs written from those alphabets, and Lake's official runs when --runs is given.
Every figure is given without and with the model's own test-time augmentation (the recipe's, applied by default by
every entry point), each with a 95% confidence interval over its trials. The recipe's parameters are overridden
with --set KEY=VALUE (`fewshot-fastai recipes drawings` lists them). Last line: one JSON object."""
import argparse, json, tempfile, time, warnings
from pathlib import Path
import fewshot_fastai as ff

SETS = {'background_small1': ['background_small1'], 'background_small2': ['background_small2'],
        'both': ['background_small1', 'background_small2']}

def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--train', default='background_small1', choices=list(SETS))
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', dest='overrides', help='a recipe parameter')
    g = p.add_mutually_exclusive_group()
    g.add_argument('--epochs', type=int, help="the recipe's epochs (default: the recipe's)")
    g.add_argument('--minutes', type=float, help='a training budget (the recipe times a probe)')
    p.add_argument('--eval-episodes', type=int, default=100, help='per unseen alphabet')
    p.add_argument('--runs', default=None, help="Lake's all_runs.zip or its folder")
    p.add_argument('--seed', type=int, default=0, help='the recipe\'s seed and the evaluation episodes\'')
    p.add_argument('--save', default=None, help='folder: save the trained model there (ff.save_model)')
    p.add_argument('--variants', default=None, metavar='DIR', help='a one-shot generator (the --out folder of bench/oneshot_generation.py): '
                   'ff.gan.GeneratedVariants of it in the training batches')
    p.add_argument('--variants-generator', default='warp', choices=['dagan', 'warp'], help="that generator's kind")
    p.add_argument('--variants-p', type=float, default=0.5, help='share of training images replaced by a generated variant')
    p.add_argument('--record', action='store_true', help="write the figure to the recipe's measured.json (run with the defaults)")
    p.add_argument('--load', default=None, help='a model folder (ff.save_model, or `fewshot-fastai train --out`): evaluate it, no training')
    return p.parse_args(argv)

def merged_class_folder(names):
    "One ClassFolder over several Omniglot sets (alphabets shared by both sets are merged by name)"
    cfs = [ff.ClassFolder(ff.omniglot(n)) for n in names]
    res = cfs[0]
    for cf in cfs[1:]: res = res.merge(cf)   # same labels in two sets (Greek, Latin): the same drawings, one copy
    return res

def load_generator(a):
    "The one-shot generator saved by bench/oneshot_generation.py in --variants (built as that bench builds it, then resumed)"
    dls = ff.OneShotDataLoaders.from_folder(ff.omniglot(a.train if a.train != 'both' else 'background_small1'), size=32, invert=True)
    learn = ff.oneshot_learner(dls, generator=a.variants_generator, path=a.variants)
    ff.resume_gan(learn, 'oneshot')
    return learn

def evaluate(a, learn, unseen, runs, own_runs, tta) -> dict:
    "The protocol's figures for one test-time augmentation (0: none; None: the model's own)"
    res = {}
    if unseen:
        r = ff.evaluate.within_alphabet_error(learn, unseen, n_way=20, n_episodes=a.eval_episodes, seed=a.seed, tta=tta)
        for name, err in r['errors'].items(): print(f'  {name}: within-alphabet 1-shot error {err:.2f}% ({a.eval_episodes} episodes)')
        res.update(unseen_alphabet_error=r['error'], unseen_alphabet_errors=r['errors'], unseen_alphabet_error_ci95=r['ci95'])
    for key, rs in (('unseen_runs', own_runs), ('runs', runs)):
        if rs is None: continue
        r = ff.evaluate.runs_error(learn, rs, tta=tta)
        res.update({f'{key}_error': r['error'], f'{key}_error_ci95': r['ci95'],
                    f'{key}_one_to_one_error': r['one_to_one_error'], f'{key}_trials': r['trials']})
        print(f"  {'Lake-format runs from the unseen alphabets' if key == 'unseen_runs' else 'Lake runs'}: {r['error']:.2f}% "
              f"error (one-to-one assignment: {r['one_to_one_error']:.2f}%) over {r['trials']} trials")
    return res

def main(argv=None):
    a = parse(argv)
    warnings.filterwarnings('ignore', category=FutureWarning)
    unseen = ff.evaluate.unseen_alphabets(SETS[a.train])
    runs = ff.datasets.load_runs(a.runs) if a.runs else None
    # Lake-format runs (20 runs, one drawer's class images, another's test items) written from the unseen alphabets
    unseen_sets = [n for n in ('background_small1', 'background_small2') if n not in SETS[a.train]]
    own_runs = None
    if unseen_sets:
        src = ff.omniglot(unseen_sets[0])
        alphas = [al for al in unseen if (src/al).is_dir()]
        n_way = min(20, *(len(unseen[al].classes) for al in alphas))
        own_runs = ff.datasets.load_runs(ff.datasets.write_runs(src, tempfile.mkdtemp(prefix='unseen_runs_'), n_runs=20, n_way=n_way,
                                              seed=a.seed, alphabets=alphas))
    r = ff.recipe('drawings')
    params = ff.recipes.overrides('drawings', a.overrides)
    params.update({k: v for k, v in (('epochs', a.epochs), ('minutes', a.minutes)) if v is not None}, seed=a.seed)
    if a.load:
        folder = Path(a.load)/'model' if (Path(a.load)/'model'/'config.json').is_file() else Path(a.load)
        learn, stats = ff.load_model(folder), {}
        if (Path(a.load)/'metrics.json').is_file():   # a `fewshot-fastai train --out` folder: its recipe settings
            m = json.loads((Path(a.load)/'metrics.json').read_text())
            stats = dict(trained_with=m.get('params'), epochs=m.get('epochs'), train_minutes=round(m.get('train_seconds', 0)/60, 2))
    else:
        cf = merged_class_folder(SETS[a.train])
        print(f'train: {a.train} ({len(cf.classes)} characters); unseen alphabets: {list(unseen) or "none"}')
        t = time.time()
        extra = [ff.gan.GeneratedVariants(load_generator(a), p=a.variants_p)] if a.variants else None
        learn = r(cf, **params, extra_tfms=extra)
        stats = dict(params=r.settings(params),
                     epochs=learn.model_config.stats['epochs'], train_minutes=round(learn.model_config.stats['train_seconds']/60, 2),
                     wall_minutes=round((time.time() - t)/60, 2))
        if a.variants: stats.update(variants=a.variants, variants_generator=a.variants_generator, variants_p=a.variants_p)
        if a.save: ff.save_model(learn, a.save)
        print(f"drawings recipe: {stats['epochs']} epochs in {stats['train_minutes']:.1f} min")
    tta = learn.model_config.tta
    print('no test-time augmentation:')
    plain = evaluate(a, learn, unseen, runs, own_runs, 0)
    res = dict(train=a.train, recipe='drawings', **stats, tta=tta)
    if tta:
        print(f'the model\'s test-time augmentation {tta}:')
        res.update(evaluate(a, learn, unseen, runs, own_runs, None), **{f'{k}_no_tta': v for k, v in plain.items()})
    else: res.update(plain)
    print(json.dumps(res))
    if a.record:
        ff.recipes.record_figure('drawings', f"{res['unseen_alphabet_error']:.2f}% error, within-alphabet 20-way 1-shot on "
                                 f"{len(unseen)} alphabets unseen in training (train {a.train}, {res.get('epochs')} epochs, "
                                 f"{res.get('train_minutes', 0):.0f} min of training)"
                                 + (f"; {res['runs_error']:.2f}% on the Lake runs given" if 'runs_error' in res else ''),
                                 'python bench/omniglot_oneshot.py' + (' --runs RUNS' if a.runs else ''))

if __name__ == '__main__': main()
