"""The work behind `fewshot-fastai train | eval | classify | verify | cam | similarity | gan` (the parser is in
cli.py). Each takes the parsed arguments and returns the JSON-able result it also prints or writes."""
import csv, io, json, math, sys, time
from pathlib import Path

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
    import torch
    from fastai.vision.augment import Resize
    import fewshot_fastai as ff
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    cf = ff.ClassFolder(a.data)
    img_cls = _img_cls(a.grey)
    if not 0 <= a.ink_center <= 1: raise UserError(f'--ink-center {a.ink_center}: use a share of the side in (0, 1], or 0 for none')
    prep = ff.InkCenter(a.ink_center) if a.ink_center else None
    held = ff.data.pairs.held_out_classes(cf.classes, a.valid_pct, a.seed)
    unseen = cf.subset(lambda c: c in held)
    n_way = min(a.n_way, len(unseen.classes))
    if n_way < 2: raise UserError(f'--valid-pct {a.valid_pct} holds out {len(unseen.classes)} class(es): N-way evaluation needs 2')
    nway = ff.NWayEval(unseen.images, unseen.labels, n_way=n_way, n_episodes=a.episodes, seed=a.seed, name=f'{n_way}way_1shot')
    if a.method == 'siamese':
        dls = ff.SiameseDataLoaders.from_class_folder(cf, valid_classes=held, seed=a.seed, item_tfms=[prep, Resize(a.size)] if prep else Resize(a.size),
                                                      img_cls=img_cls, bs=a.bs)
        learn = ff.siamese_learner(dls, a.arch, head=a.head, cbs=nway)
    else:
        dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=a.size, img_cls=img_cls, valid_classes=held, seed=a.seed,
                                                      n_way=min(a.n_way, len(cf.classes) - len(held)), n_query=a.n_query,
                                                      episodes_per_epoch=a.episodes_per_epoch, valid_episodes=20,
                                                      valid_n_way=n_way, prep=prep)
        learn = ff.episodic_learner(dls, a.arch, cbs=nway)
    t = time.time()
    if a.minutes is not None:
        # one epoch at a tenth of the rate times an epoch (and warms up); one-cycle then fills the rest of the budget
        learn.fit(1, a.lr/10)
        per = time.time() - t
        learn.fit_one_cycle(max(1, int((a.minutes*60 - per)/per)), a.lr)
    else: learn.fit_one_cycle(a.epochs, a.lr)
    secs = time.time() - t
    names, final = learn.recorder.metric_names[1:-1], learn.recorder.values[-1]   # before show_results resets them
    n_epochs = len(learn.recorder.values) + (a.minutes is not None)   # + the timing epoch
    plt = _plt()
    learn.recorder.plot_loss(); plt.savefig(out/'loss.png', dpi=80, bbox_inches='tight'); plt.close('all')
    fig = learn.show_results(max_n=6)
    plt.savefig(out/'results.png', dpi=80, bbox_inches='tight'); plt.close('all')
    ff.save_model(learn, out/'model')
    onnx = []
    try: onnx = [str(p) for p in ff.export_onnx(learn, out/'model'/'encoder.onnx')]
    except ImportError as e: print(f'ONNX skipped ({e}); pip install "fewshot_fastai[deploy]"', file=sys.stderr)
    res = dict(method=a.method, arch=a.arch, size=a.size, ink_center=a.ink_center, classes=len(cf.classes), valid_classes=sorted(held),
               epochs=n_epochs, train_seconds=round(secs, 1),
               final=dict(zip(names, [round(float(v), 4) for v in final])), onnx=onnx,
               outputs=sorted({p.name for p in out.iterdir()} | {'metrics.json'}))
    (out/'metrics.json').write_text(json.dumps(res, indent=1))
    return res

def evaluate(a) -> dict:
    import fewshot_fastai as ff
    learn = _model(a.model)
    cf = ff.ClassFolder(a.data, min_per_class=a.k_shot + 1)
    if a.n_way > len(cf.classes): raise UserError(f'--n-way {a.n_way}: {a.data} has {len(cf.classes)} classes')
    eps = ff.EpisodeSampler(cf.labels, a.n_way, a.k_shot, a.n_query, a.episodes, seed=a.seed).episodes()
    res = ff.episode_accuracy(learn, cf.images, eps, mode=a.mode)
    per = res['per_episode']
    mean = sum(per)/len(per)
    sd = math.sqrt(sum((p - mean)**2 for p in per)/max(1, len(per) - 1))
    half = 1.96*sd/math.sqrt(len(per))
    return dict(n_way=a.n_way, k_shot=a.k_shot, n_query=a.n_query, episodes=len(per), accuracy=round(res['accuracy'], 4),
                ci95=[round(mean - half, 4), round(mean + half, 4)], classes=len(cf.classes))

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
    fig.savefig(path, dpi=80, bbox_inches='tight'); _plt().close('all')
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
        path = out/f'cam_{img.stem}.png'
        fig.savefig(path, dpi=80, bbox_inches='tight'); _plt().close('all')
        res.append(dict(image=str(img), label=lab, png=str(path), method=pm.method))
    return res

def gan(a) -> dict:
    import fewshot_fastai as ff
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    dls = ff.GANDataLoaders.from_folder(a.data, size=a.size, n_channels=1 if a.grey else 3, invert=a.invert, bs=a.bs)
    try: feats = ff.lite0_features(64)
    except Exception: feats = None   # without the offline ImageNet weights: no Fréchet distance
    cbs = [ff.GANSamples(n=32, save=True), ff.GANCheckpoint('gan')] + ([ff.GANFrechet(feats, n=256)] if feats else [])
    make = ff.dcgan_learner if a.loop == 'dcgan' else ff.wgan_learner
    learn = make(dls, cbs=cbs, path=out)
    learn.fit(a.epochs)
    fr = cbs[-1] if feats else None
    fig = ff.plot_gan_losses(learn, fr); fig.savefig(out/'losses.png', dpi=80, bbox_inches='tight'); _plt().close('all')
    res = dict(loop=a.loop, epochs=a.epochs, images=len(dls.train.dataset), samples=[str(p) for p in cbs[0].saved],
               frechet=[(e, round(d, 2)) for e, d in fr.history] if fr else None, stopped=learn.gan_stopped)
    (out/'metrics.json').write_text(json.dumps(res, indent=1))
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
