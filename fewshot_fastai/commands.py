"""The work behind `fewshot-fastai train | eval | classify | verify | cam | similarity | gan` (the parser is in
cli.py). Each takes the parsed arguments and returns the JSON-able result it also prints or writes."""
import csv, io, json, math, random, sys
from pathlib import Path
from ._files import replacing_file, replacing_folder, write_file

class UserError(Exception):
    "A mistake in what the user asked for: printed as one line, exit status 2"

def _plt():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt

def _images(paths) -> list[Path]:
    "Image files from files and folders (searched recursively), in a stable order; errors name the path"
    from fastai.data.transforms import get_image_files
    out = []
    for p in map(Path, paths):
        if p.is_dir(): out += sorted(get_image_files(p))
        elif p.is_file(): out.append(p)
        else: raise UserError(f'{p}: no such file or folder')
    if not out: raise UserError(f'no image files in {", ".join(map(str, paths))}')
    return out

def _model(path):
    from .deploy import load_model
    p = Path(path)
    if (p/'model').is_dir() and not (p/'config.json').exists(): p = p/'model'   # the folder `train --out` wrote
    if not (p/'config.json').is_file(): raise UserError(f'{path}: not a model folder (no config.json; `fewshot-fastai train` writes one)')
    return load_model(p)

def _support(folder) -> dict:
    "{label: image files} from a folder of class folders (one image per class is enough)"
    import fewshot_fastai as ff
    if not Path(folder).is_dir(): raise UserError(f'--support {folder}: no such folder (one folder of images per class)')
    cf = ff.ClassFolder(folder, min_per_class=1)
    return {c: [f for f, l in zip(cf.files, cf.label_names()) if l == c] for c in cf.classes}

def _img_cls(grey:bool):
    from fastai.vision.core import PILImage, PILImageBW
    return PILImageBW if grey else PILImage

def train(a) -> dict:
    "Fit the recipe (named, or picked from the images) on DATA; write the model, metrics.json and the plots that apply"
    import fewshot_fastai as ff
    from .recipes import recipe, pick, overrides
    out = Path(a.out)
    if out.exists() and not out.is_dir(): raise UserError(f'--out {out}: a file, not a folder')
    if out.is_dir() and any(out.iterdir()) and not a.force:
        raise UserError(f'--out {out}: holds an earlier run; give a new folder, or --force to replace it as a whole')
    if not Path(a.data).is_dir(): raise UserError(f'{a.data}: no such folder (one folder of images per class)')
    cf = ff.ClassFolder(a.data)
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
    stats = getattr(learn, 'recipe_stats', {})
    plt = _plt()
    has_valid = bool(getattr(learn.dls, 'valid_classes', None))
    names, final = (learn.recorder.metric_names[1:-1], learn.recorder.values[-1]) if stats.get('epochs') and learn.recorder.values else ([], [])
    final = {n: round(float(v), 4) for n, v in zip(names, final) if v is not None and math.isfinite(float(v))}
    # the run folder as a whole, all-or-nothing: an earlier run (with --force) is replaced, never mixed with this one
    with replacing_folder(out, keep=lambda name: True) as tmp:
        if stats.get('epochs'):
            learn.recorder.plot_loss(); plt.savefig(tmp/'loss.png', dpi=80, bbox_inches='tight'); plt.close('all')
        if has_valid and stats.get('epochs'):
            learn.show_results(max_n=6); plt.savefig(tmp/'results.png', dpi=80, bbox_inches='tight'); plt.close('all')
        ff.save_model(learn, tmp/'model')
        onnx = []
        try: onnx = [str(out/'model'/p.name) for p in ff.export_onnx(learn, tmp/'model'/'encoder.onnx')]
        except ImportError as e: print(f'ONNX skipped ({e}); pip install "fewshot_fastai[deploy]"', file=sys.stderr)
        res = dict(recipe=name, params=r.settings(params),
                   classes=len(cf.classes), valid_classes=sorted(getattr(learn.dls, 'valid_classes', []) or []), **stats,
                   final=final, tta=learn.fewshot_config.get('tta'), onnx=onnx,
                   outputs=sorted({p.name for p in tmp.iterdir()} | {'metrics.json'}))
        (tmp/'metrics.json').write_text(json.dumps(res, indent=1, allow_nan=False))
    return res

def evaluate(a) -> dict:
    "N-way K-shot accuracy and pair EER on DATA, and/or the error on Lake-format runs"
    import fewshot_fastai as ff
    if a.data is None and a.runs is None: raise UserError('give DATA (a folder of class folders) or --runs (Lake\'s all_runs.zip or its folder)')
    learn = _model(a.model)
    res = {}
    if a.runs is not None:
        if not Path(a.runs).exists(): raise UserError(f'--runs {a.runs}: no such file or folder')
        runs = ff.load_runs(a.runs)
        r = ff.callbacks.nway.runs_error(learn, runs)
        res.update(runs=len(runs), runs_trials=r['trials'], runs_error=r['error'], runs_one_to_one_error=r['one_to_one_error'])
    if a.data is not None:
        if not Path(a.data).is_dir(): raise UserError(f'{a.data}: no such folder (one folder of images per class)')
        cf = ff.ClassFolder(a.data, min_per_class=a.k_shot + 1)
        if a.n_way > len(cf.classes): raise UserError(f'--n-way {a.n_way}: {a.data} has {len(cf.classes)} classes')
        eps = ff.EpisodeSampler(cf.labels, a.n_way, a.k_shot, a.n_query, a.episodes, seed=a.seed).episodes()
        ev = ff.episode_accuracy(learn, cf.images, eps, mode=a.mode)
        per = ev['per_episode']
        mean = sum(per)/len(per)
        sd = math.sqrt(sum((p - mean)**2 for p in per)/max(1, len(per) - 1))
        half = 1.96*sd/math.sqrt(len(per))
        res.update(n_way=a.n_way, k_shot=a.k_shot, n_query=a.n_query, episodes=len(per), accuracy=round(ev['accuracy'], 4),
                   ci95=[round(mean - half, 4), round(mean + half, 4)], classes=len(cf.classes))
        idx = sorted(random.Random(a.seed).sample(range(len(cf.files)), min(a.max_pairs_images, len(cf.files))))
        v = ff.callbacks.nway.pairs_eer(learn, ff.IndexedView(cf.images, idx), [cf.labels[i] for i in idx])
        res.update(eer=v['eer'], pairs=v['pairs'], same_pairs=v['same_pairs'])
    res['tta'] = learn.fewshot_config.get('tta')
    return res

def recipes(a):
    "The registered recipes (or one, with its parameters)"
    from .recipes import names, recipe
    if a.name is not None:
        r = recipe(a.name)
        if a.json: return dict(name=r.name, data=r.data, figure=r.figure, command=r.command,
                               params={k: dict(default=list(d) if isinstance(d, tuple) else d, doc=doc) for k, (d, doc) in r.params().items()})
        rows = [dict(parameter=k, default=repr(d), doc=doc) for k, (d, doc) in r.params().items() if k not in ('cbs',)]
        return f'{r.name}: {r.data}\n  measured: {r.figure}\n  command:  {r.command}\n\n' + render(rows, False, False)
    rows = [dict(recipe=n, data=recipe(n).data, measured=recipe(n).figure, command=recipe(n).command) for n in names()]
    if a.json: return rows
    return '\n\n'.join(f"{r['recipe']}: {r['data']}\n  measured: {r['measured']}\n  command:  {r['command']}" for r in rows) + \
        '\n\nfewshot-fastai recipes NAME: its parameters; fewshot-fastai train DATA --recipe NAME --set KEY=VALUE overrides one'

def classify(a) -> list[dict]:
    import fewshot_fastai as ff
    learn = _model(a.model)
    support = _support(a.support)
    queries = _images(a.queries)
    labels, scores = ff.SupportSet(learn, support, mode=a.mode).classify(queries, progress=not (a.json or a.csv))
    return [dict(query=str(q), label=l, score=round(float(s.max()), 4)) for q, l, s in zip(queries, labels, scores)]

def verify(a) -> dict:
    learn = _model(a.model)
    if learn.fewshot_config['kind'] != 'siamese': raise UserError(f'{a.model}: verify needs a pair (siamese) model')
    for p in (a.a, a.b):
        if not Path(p).is_file(): raise UserError(f'{p}: no such image file')
    same, p = learn.predict_pair(a.a, a.b)
    return dict(a=a.a, b=a.b, same=bool(same), probability=round(float(p), 4))

def similarity(a) -> dict:
    import fewshot_fastai as ff
    learn = _model(a.model)
    for p in (a.a, a.b):
        if not Path(p).is_file(): raise UserError(f'{p}: no such image file')
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    pm = ff.similarity_maps(learn, [a.a], [a.b])
    x = ff.inference.image_batch(learn.dls, [a.a, a.b])
    fig = ff.show_pair_cam(x[0], x[1], pm.a[0], pm.b[0], float(pm.score[0]))[0].figure
    path = out/f'similarity_{Path(a.a).stem}_{Path(a.b).stem}.png'
    with replacing_file(path) as tmp: fig.savefig(tmp, format='png', dpi=80, bbox_inches='tight')
    _plt().close('all')
    return dict(png=str(path), method=pm.method, score=round(float(pm.score[0]), 4))

def cam(a) -> list[dict]:
    "For each image: its best support class, and the similarity maps against that class's first support image"
    import fewshot_fastai as ff
    learn = _model(a.model)
    support = _support(a.support)
    images = _images(a.images)
    labels, _ = ff.SupportSet(learn, support).classify(images)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    res = []
    for img, lab in zip(images, labels):
        ref = support[lab][0]
        pm = ff.similarity_maps(learn, [img], [ref])
        x = ff.inference.image_batch(learn.dls, [img, ref])
        fig = ff.show_pair_cam(x[0], x[1], pm.a[0], pm.b[0], float(pm.score[0]))[0].figure
        path = out/f'cam_{len(res):03d}_{img.stem}.png'   # numbered: a/x.png and b/x.png never overwrite each other
        with replacing_file(path) as tmp: fig.savefig(tmp, format='png', dpi=80, bbox_inches='tight')
        _plt().close('all')
        res.append(dict(image=str(img), label=lab, png=str(path), method=pm.method))
    return res

def gan(a) -> dict:
    import fewshot_fastai as ff
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    dls = ff.GANDataLoaders.from_folder(a.data, size=a.size, n_channels=1 if a.grey else 3, invert=a.invert, bs=a.bs)
    try: feats = ff.lite0_features(64)
    except (ImportError, ff.PretrainedUnavailable) as e:   # without the offline ImageNet weights: no Fréchet distance, said
        print(f'no Fréchet distance: {e}', file=sys.stderr); feats = None
    cbs = [ff.GANSamples(n=32, save=True), ff.GANCheckpoint('gan')] + ([ff.GANFrechet(feats, n=256)] if feats else [])
    make = ff.dcgan_learner if a.loop == 'dcgan' else ff.wgan_learner
    learn = make(dls, cbs=cbs, path=out)
    learn.fit(a.epochs)
    fr = cbs[-1] if feats else None
    fig = ff.plot_gan_losses(learn, fr)
    with replacing_file(out/'losses.png') as tmp: fig.savefig(tmp, format='png', dpi=80, bbox_inches='tight')
    _plt().close('all')
    res = dict(loop=a.loop, epochs=a.epochs, images=len(dls.train.dataset), samples=[str(p) for p in cbs[0].saved],
               frechet=[(e, round(d, 2)) for e, d in fr.history] if fr else None, stopped=learn.gan_stopped)
    write_file(out/'metrics.json', json.dumps(res, indent=1, allow_nan=False))
    return res

def render(rows, as_json:bool, as_csv:bool) -> str:
    "A list of dicts (or one dict) as JSON, CSV or an aligned table"
    if isinstance(rows, dict) and not as_csv: rows_l = [rows]
    else: rows_l = rows if isinstance(rows, list) else [rows]
    if as_json: return json.dumps(rows, indent=1)
    keys = list(rows_l[0]) if rows_l else []
    if as_csv:
        buf = io.StringIO(); w = csv.DictWriter(buf, keys); w.writeheader(); w.writerows(rows_l)
        return buf.getvalue().rstrip('\n')
    cells = [[str(r[k]) for k in keys] for r in rows_l]
    width = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    line = lambda vals: '  '.join(v.ljust(w) for v, w in zip(vals, width)).rstrip()
    return '\n'.join([line(keys), *(line(c) for c in cells)])
