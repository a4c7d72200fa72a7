"""`fewshot-fastai train | eval | recipes`: fit a recipe on a folder, score a model, list the recipes."""
import json, math, random, sys
from pathlib import Path
from ..data.items import ClassFolder, IndexedView
from ..data.episodes import EpisodeSampler
from ..datasets.runs import load_runs
from ..datasets.faces import FaceAlign
from ..evaluate import episode_accuracy, runs_error, pairs_eer, interval95
from ..deploy import save_model, export_onnx
from ..recipes import recipe, pick, overrides, names
from .common import UserError, check_out, writing_run, model, render, save_figure, plt as pyplot

__all__ = ['train', 'evaluate', 'recipes']

def train(a) -> dict:
    "Fit the recipe (named, or picked from the images) on DATA; write the model, metrics.json and the plots that apply"
    if not Path(a.data).is_dir(): raise UserError(f'{a.data}: no such folder (one folder of images per class)')
    out = check_out(a.out, a.force, {'the data folder': a.data})
    cf = ClassFolder(a.data)
    name, why = (a.recipe, None) if a.recipe is not None else pick(cf)
    r = recipe(name)
    params = overrides(name, a.overrides)
    for key in ('epochs', 'minutes'):
        if getattr(a, key) is not None:
            if key not in r.params(): raise UserError(f'--{key}: the {name} recipe trains nothing (its parameters: {", ".join(r.params())})')
            params[key] = getattr(a, key)
    if 'quiet' in r.params(): params.setdefault('quiet', False)   # fastai's progress table, on stderr
    said = []
    def say():   # once the recipe has checked its parameters and built its learner: a mistake stays a one-line error
        if why and not said: print(f'recipe: {name}, picked from the images ({why}); --recipe to choose another', flush=True)
        said.append(True)
    if 'cbs' in r.params():
        from fastai.callback.core import Callback
        params['cbs'] = [type('SayRecipe', (Callback,), {'before_fit': lambda self: say()})()]
    learn = r(cf, **params)
    say()
    stats = learn.model_config.stats
    if 'no_face' in stats:
        print(f"{stats['photos']} photos aligned, {stats['no_face']} without a detected face (cut from the whole photo)", flush=True)
    plt = pyplot()
    has_valid = bool(getattr(learn.dls, 'valid_classes', None))
    names, final = (learn.recorder.metric_names[1:-1], learn.recorder.values[-1]) if stats.get('epochs') and learn.recorder.values else ([], [])
    final = {n: round(float(v), 4) for n, v in zip(names, final) if v is not None and math.isfinite(float(v))}
    # the run folder as a whole, all-or-nothing: an earlier run (with --force) is replaced, never mixed with this one
    with writing_run(out, 'train') as tmp:
        if stats.get('epochs'):
            learn.recorder.plot_loss(); save_figure(None, tmp/'loss.png'); plt.close('all')
        if has_valid and stats.get('epochs'):
            learn.show_results(max_n=6); save_figure(None, tmp/'results.png'); plt.close('all')
        save_model(learn, tmp/'model')
        onnx = []
        try: onnx = [str(out/'model'/p.name) for p in export_onnx(learn, tmp/'model'/'encoder.onnx')]
        except ImportError as e: print(f'ONNX skipped ({e}); pip install "fewshot_fastai[deploy]"', file=sys.stderr)
        res = dict(recipe=name, params=r.settings(params),
                   classes=len(cf.classes), valid_classes=sorted(getattr(learn.dls, 'valid_classes', []) or []), **stats,
                   final=final, tta=learn.model_config.tta, onnx=onnx,
                   outputs=sorted({p.name for p in tmp.iterdir()} | {'metrics.json'}))
        (tmp/'metrics.json').write_text(json.dumps(res, indent=1, allow_nan=False))
    return res

def evaluate(a) -> dict:
    "N-way K-shot accuracy and pair EER on DATA, and/or the error on Lake-format runs"
    if a.data is None and a.runs is None: raise UserError('give DATA (a folder of class folders) or --runs (Lake\'s all_runs.zip or its folder)')
    for flag, v, low in (('--n-way', a.n_way, 2), ('--k-shot', a.k_shot, 1), ('--n-query', a.n_query, 1),
                         ('--episodes', a.episodes, 1), ('--max-pairs-images', a.max_pairs_images, 2), ('--seed', a.seed, 0)):
        if v < low: raise UserError(f'{flag} {v}: must be {low} or more')
    if a.runs is not None and not Path(a.runs).exists(): raise UserError(f'--runs {a.runs}: no such file or folder')
    if a.data is not None and not Path(a.data).is_dir(): raise UserError(f'{a.data}: no such folder (one folder of images per class)')
    learn = model(a.model)
    res = {}
    if a.runs is not None:
        if not Path(a.runs).exists(): raise UserError(f'--runs {a.runs}: no such file or folder')
        runs = load_runs(a.runs)
        r = runs_error(learn, runs)
        res.update(runs=len(runs), runs_trials=r['trials'], runs_error=r['error'], runs_one_to_one_error=r['one_to_one_error'])
    if a.data is not None:
        if not Path(a.data).is_dir(): raise UserError(f'{a.data}: no such folder (one folder of images per class)')
        cf = ClassFolder(a.data, min_per_class=a.k_shot + 1)
        if a.n_way > len(cf.classes): raise UserError(f'--n-way {a.n_way}: {a.data} has {len(cf.classes)} classes')
        eps = EpisodeSampler(cf.labels, a.n_way, a.k_shot, a.n_query, a.episodes, seed=a.seed).episodes()
        ev = episode_accuracy(learn, cf.images, eps, method=a.method)
        mean, half = interval95(ev['per_episode'])
        res.update(n_way=a.n_way, k_shot=a.k_shot, n_query=a.n_query, episodes=len(eps), accuracy=round(ev['accuracy'], 4),
                   ci95=None if math.isnan(half) else [round(mean - half, 4), round(mean + half, 4)], classes=len(cf.classes))
        idx = sorted(random.Random(a.seed).sample(range(len(cf.files)), min(a.max_pairs_images, len(cf.files))))
        align = learn.dls.prep if isinstance(getattr(learn.dls, 'prep', None), FaceAlign) else None
        if align is not None: align.reset()   # count the pairs' photos, each embedded once
        v = pairs_eer(learn, IndexedView(cf.images, idx), [cf.labels[i] for i in idx])
        res.update(eer=v['eer'], pairs=v['pairs'], same_pairs=v['same_pairs'])
        if align is not None:
            res.update(photos_aligned=align.found + align.missed, no_face=align.missed)
            print(f'pairs: {align.counts()}', file=sys.stderr, flush=True)
    res['tta'] = learn.model_config.tta
    return res

def recipes(a):
    "The registered recipes (or one, with its parameters)"
    if a.name is not None:
        r = recipe(a.name)
        if a.json: return dict(name=r.name, data=r.data, figure=r.figure, command=r.command,
                               params={k: dict(default=list(d) if isinstance(d, tuple) else d, doc=doc) for k, (d, doc) in r.params().items()})
        rows = [dict(parameter=k, default=repr(d), doc=doc) for k, (d, doc) in r.params().items() if k not in ('cbs', 'extra_tfms')]
        return f'{r.name}: {r.data}\n  measured: {r.figure}\n  command:  {r.command}\n\n' + render(rows, False, False)
    rows = [dict(recipe=n, data=recipe(n).data, measured=recipe(n).figure, command=recipe(n).command) for n in names()]
    if a.json: return rows
    return '\n\n'.join(f"{r['recipe']}: {r['data']}\n  measured: {r['measured']}\n  command:  {r['command']}" for r in rows) + \
        '\n\nfewshot-fastai recipes NAME: its parameters; fewshot-fastai train DATA --recipe NAME --set KEY=VALUE overrides one'
