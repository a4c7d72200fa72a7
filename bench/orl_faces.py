"""ORL faces verification benchmark of the `faces` recipe on subjects unseen in the fit: k-fold over the 40 subjects.
Each fold fits the recipe on the other subjects (for `faces`: nothing trains; the whitening is fitted on them), then
scores every pair of the held-out subjects' images (each embedded once, with the model's own test-time augmentation)
and reports the equal error rate. --inner K chooses levers without the test subjects (nested cross-validation: each
fold's training subjects split into K parts, each held out in turn from the fit and scored). The recipe's parameters
are overridden with --set KEY=VALUE (`fewshot-fastai recipes faces`). Last line: one JSON object."""
import argparse, json, random, time, warnings
import fewshot_fastai as ff
from fewshot_fastai.evaluate import pairs_eer

p = argparse.ArgumentParser(description=__doc__)
p.add_argument('--recipe', default='faces', help='the recipe to fit on each fold\'s training subjects')
p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', dest='overrides', help='a recipe parameter')
p.add_argument('--folds', type=int, default=5)
p.add_argument('--seed', type=int, default=0, help='which subjects form the folds')
p.add_argument('--inner', type=int, default=0, help='nested cross-validation over each fold\'s training subjects in K parts (0: off)')
p.add_argument('--only-folds', type=int, nargs='+', default=None, help='run only these folds (1-based)')
p.add_argument('--record', action='store_true', help="write the figure to the recipe's measured.json (run with the defaults)")
a = p.parse_args()
warnings.filterwarnings('ignore', category=FutureWarning)
if a.inner == 1 or a.inner < 0: raise SystemExit(f'--inner {a.inner}: K >= 2 parts (0: off)')
if a.only_folds and not set(a.only_folds) <= set(range(1, a.folds + 1)): raise SystemExit(f'--only-folds {a.only_folds}: folds are 1 to {a.folds}')
r = ff.recipe(a.recipe)
params = ff.recipes.overrides(a.recipe, a.overrides)
cf = ff.ClassFolder(ff.orl_faces())
subjects = cf.classes[:]
random.Random(a.seed).shuffle(subjects)
folds = [subjects[i::a.folds] for i in range(a.folds)]

def fit_and_score(fit_cf, test_cf) -> dict:
    "The recipe fitted on `fit_cf`, scored on every pair of `test_cf`"
    learn = r(fit_cf, **params)
    return pairs_eer(learn, test_cf.images, test_cf.labels) | {'fit_seconds': learn.recipe_stats['train_seconds']}

t0 = time.time()
eers, held, secs = [], [], []
for k, test_subjects in enumerate(folds):
    if a.only_folds and k + 1 not in a.only_folds: continue
    train_cf = cf.subset(lambda c: c not in set(test_subjects))
    test_cf = cf.subset(lambda c: c in set(test_subjects))
    res = fit_and_score(train_cf, test_cf)
    eers.append(res['eer']); secs.append(res['fit_seconds'])
    inner = []
    if a.inner:   # every training subject scored once, held out from a fit on the others
        order = sorted(train_cf.classes); random.Random(a.seed).shuffle(order)
        for j in range(a.inner):
            part = set(order[j::a.inner])
            inner.append(fit_and_score(train_cf.subset(lambda c: c not in part), train_cf.subset(lambda c: c in part))['eer'])
        held.append(sum(inner)/len(inner))
    print(f'fold {k+1}/{a.folds}: subjects {test_subjects}: EER {res["eer"]:.2f}% over {res["pairs"]} pairs '
          f'({res["same_pairs"]} same); fit {res["fit_seconds"]:.0f} s'
          + (f'; held-out training subjects (mean of {a.inner} inner folds): {held[-1]:.2f}%' if inner else ''), flush=True)
out = dict(dataset='orl_faces', recipe=a.recipe, params=r.settings(params),
           folds=a.folds, seed=a.seed, only_folds=a.only_folds, eer_percent=round(sum(eers)/len(eers), 2), eer_per_fold=eers,
           held_out_training_subjects_eer=round(sum(held)/len(held), 2) if held else None, inner=a.inner,
           fit_seconds_per_fold=round(sum(secs)/len(secs), 1), wall_seconds=round(time.time() - t0, 1))
print(json.dumps(out))
if a.record:
    ff.recipes.record_figure(a.recipe, f"{out['eer_percent']:.2f}% equal error rate on ORL faces of subjects unseen in the fit "
                             f"({a.folds} folds, seed {a.seed}; per fold {' / '.join(f'{e:.2f}' for e in eers)}), "
                             f"fit {out['fit_seconds_per_fold']:.0f} s per fold", 'python bench/orl_faces.py')
