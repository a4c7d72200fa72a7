"""Open-set benchmark of `ff.Gallery`: queries of classes nobody enrolled should be answered "unknown", while enrolled
classes keep their closed-set accuracy. Each gallery's threshold is the one it calibrates itself (`Gallery.calibration`:
leave-one-out genuine / impostor scores when a class has 2+ images, the impostor quantile with one image a class).

- ORL faces (`--part orl`): the 5 folds of `bench/orl_faces.py` (seed 0); per fold the fold's 8 subjects are never
  enrolled, the 32 others are, with `--shots` photos each (1 and 5); the `faces` recipe fitted on the enrolled photos
  only (WCCN with 2+ photos a person; with one, no whitening unless `--whiten-1 total`: a whitening fitted on the
  gallery's own photos spreads exactly those apart, so their leave-one-out impostor scores understate a new face's); queries: the enrolled subjects' other photos and every
  photo of the 8 unseen subjects.
- Omniglot (`--part omniglot`): a `drawings` model trained on background_small1 (`--model`), the 3 alphabets no training
  set holds; each in turn is the unseen one, the other two are enrolled (`--shots` drawings a character, from random
  drawers); queries: the enrolled characters' other drawings and every drawing of the unseen alphabet.

Printed per setting: share of unseen queries answered "unknown", accuracy on enrolled queries (right label and not
"unknown"), closed-set accuracy of the same gallery (best label, no threshold), AUROC of enrolled vs unseen best scores,
the threshold and its source. Last line: one JSON object."""
import argparse, json, random, tempfile, time, warnings
from pathlib import Path
import numpy as np
import torch

def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--part', nargs='+', default=['orl', 'omniglot'], choices=['orl', 'omniglot'])
    p.add_argument('--shots', type=int, nargs='+', default=[1, 5], help='enrolled images per class')
    p.add_argument('--folds', type=int, default=5)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--model', default='out/drawings_small1', help='the drawings model folder (python bench/omniglot_oneshot.py --save DIR)')
    p.add_argument('--whiten-1', default='none', choices=['none', 'total'], help='ORL with one photo a person: no whitening, or the total covariance of the enrolled photos')
    p.add_argument('--far', type=float, default=0.05, help='one image a class: the impostor share the threshold lets through')
    p.add_argument('--threshold', type=float, default=None, help="a fixed threshold instead of the gallery's own (e.g. a model's operating point)")
    return p.parse_args(argv)

def score(learn, path, enrol_lbl, enrol_emb, known_lbl, known_emb, unseen_emb, far, threshold=None) -> dict:
    "A gallery of the enrolled rows, then the report of its own threshold on the enrolled and unseen queries"
    import fewshot_fastai as ff
    g = ff.Gallery(path, learn, thumbnails=False, threshold=threshold)
    g.add_embeddings(enrol_lbl, enrol_emb, [f'row{i}' for i in range(len(enrol_lbl))])
    cal = g.calibration(far=far)
    top = lambda e: [t[0] for lo in range(0, len(e), 256) for t in g.top(e[lo:lo + 256], k=1, embedded=True)]
    kt, ut = top(known_emb), top(unseen_emb)
    t = cal['threshold'] if cal['threshold'] is not None else -np.inf
    r = ff.evaluate.open_set_report([l for l, _ in kt], known_lbl, [s for _, s in kt], [s for _, s in ut], t)
    g.close()
    return dict(r, threshold_source=cal['source'])

def show(name, r):
    print(f"  {name}: unseen answered unknown {100*r['unseen_unknown']:.1f}%, enrolled accuracy {100*r['known_accuracy']:.1f}% "
          f"(closed set {100*r['closed_accuracy']:.1f}%, enrolled rejected {100*r['known_unknown']:.1f}%), AUROC {r['auroc']:.4f}, "
          f"threshold {r['threshold']:.4f} ({r['threshold_source']}); {r['n_known']} enrolled / {r['n_unseen']} unseen queries", flush=True)

def mean_of(rows):
    keys = ('unseen_unknown', 'known_accuracy', 'closed_accuracy', 'known_unknown', 'auroc')
    return {k: round(float(np.mean([r[k] for r in rows])), 4) for k in keys} | dict(sources=sorted({r['threshold_source'] for r in rows}))

def part_orl(a, work):
    import fewshot_fastai as ff
    from fewshot_fastai.verification.whitening import fit_whitening
    cf = ff.ClassFolder(ff.orl_faces())
    subjects = cf.classes[:]
    random.Random(a.seed).shuffle(subjects)
    folds = [subjects[i::a.folds] for i in range(a.folds)]   # the folds of bench/orl_faces.py
    photos = [im.convert('RGB') for im in cf.images]
    names = cf.label_names()
    learn = ff.recipes.faces(cf.subset(lambda c: c == cf.classes[0]), whiten='none')   # nothing fitted: only the raw network
    t = time.time()
    raw = ff.embed(learn, photos)   # each photo aligned and embedded once (flip views averaged); whitened per fold below
    print(f'ORL: {len(photos)} photos embedded in {time.time() - t:.0f} s', flush=True)
    out = {}
    for k in a.shots:
        rows = []
        for f, unseen in enumerate(folds):
            rng = np.random.default_rng(1000*a.seed + 10*f + k)
            enrol, known = [], []
            for s in (c for c in cf.classes if c not in unseen):
                idx = [i for i, n in enumerate(names) if n == s]
                pick = set(rng.choice(idx, k, replace=False).tolist())
                enrol += sorted(pick); known += [i for i in idx if i not in pick]
            un = [i for i, n in enumerate(names) if n in set(unseen)]
            el = [names[i] for i in enrol]
            if k > 1 or a.whiten_1 == 'total':
                learn.model.whitening = fit_whitening(raw[enrol], el if k > 1 else None, shrink=4.0)   # the recipe's ridge
                with torch.no_grad(): e = learn.model.whitening(raw).numpy()
            else: learn.model.whitening, e = None, raw.numpy()
            r = score(learn, work/f'orl{k}-{f}.db', el, e[enrol], [names[i] for i in known], e[known], e[un], a.far, a.threshold)
            show(f'ORL {k}-shot fold {f + 1}', r); rows.append(r)
        learn.model.whitening = None
        out[f'{k}_shot'] = dict(mean=mean_of(rows), folds=rows)
        print(f'ORL {k}-shot, mean of {a.folds} folds: {out[f"{k}_shot"]["mean"]}', flush=True)
    return out

def part_omniglot(a, work):
    import fewshot_fastai as ff
    learn = ff.load_model(a.model)
    alph = ff.evaluate.unseen_alphabets(['background_small1'])
    files, labels, group = [], [], []
    for name, cf in alph.items():
        files += cf.files; labels += [l.replace('/', '-') for l in cf.label_names()]; group += [name]*len(cf.files)
    t = time.time()
    emb = ff.embed(learn, files).numpy()
    print(f'Omniglot: {len(files)} drawings of {len(alph)} unseen alphabets embedded in {time.time() - t:.0f} s', flush=True)
    labels, group = np.array(labels), np.array(group)
    out = {}
    for k in a.shots:
        rows = []
        for held in alph:
            rng = np.random.default_rng(1000*a.seed + k)
            enrol, known = [], []
            for c in sorted(set(labels[group != held])):
                idx = np.nonzero(labels == c)[0]
                pick = set(rng.choice(idx, k, replace=False).tolist())
                enrol += sorted(pick); known += [i for i in idx if i not in pick]
            un = np.nonzero(group == held)[0]
            r = score(learn, work/f'omni{k}-{held}.db', labels[enrol].tolist(), emb[enrol], labels[known].tolist(), emb[known], emb[un], a.far, a.threshold)
            r['unseen_alphabet'] = held
            show(f'Omniglot {k}-shot, unseen {held}', r); rows.append(r)
        out[f'{k}_shot'] = dict(mean=mean_of(rows), alphabets=rows)
        print(f'Omniglot {k}-shot, mean over the 3 unseen alphabets: {out[f"{k}_shot"]["mean"]}', flush=True)
    return out

def main(argv=None):
    a = parse(argv)
    warnings.filterwarnings('ignore')
    res = dict(seed=a.seed, shots=a.shots, far=a.far)
    with tempfile.TemporaryDirectory(prefix='open_set_') as d:
        if 'orl' in a.part: res['orl'] = part_orl(a, Path(d))
        if 'omniglot' in a.part: res['omniglot'] = part_omniglot(a, Path(d))
    print(json.dumps(res))

if __name__ == '__main__': main()
