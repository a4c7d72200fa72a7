"""ORL faces benchmark of a recipe on subjects unseen in the fit, side by side with the face_recognition package.
k folds over the 40 subjects: each fold fits the recipe on the other subjects (for `faces` and `photos` nothing trains;
`photos` fits its whitening on them), then on the held-out subjects' 80 images measures
- verification: every pair scored, the equal error rate (EER);
- identification: N-way 1-shot episodes among the fold's subjects (one photo per subject as the support, the others as
  queries), accuracy with its 95% interval;
- the same verification on degraded photos (--degraded): rotated up to 15 degrees, downscaled to half size, a
  horizontal band blacked out (the same degraded photos for both);
- time per image: ours batched (alignment, network, mirror views), the peer one image at a time, as it works.
When face_recognition is importable (pip install --no-deps face_recognition, beside dlib-bin and face-recognition-models)
it runs on the same folds, pairs and episodes: HOG detection (upsampled once, its default), the whole photo as the box
where none is found, 5-point landmarks, dlib's 128-d descriptor, score = -distance. With dlib importable the run also
prints the parity of our `face_resnet` with dlib's descriptor on dlib's own chips of all 400 photos, and of our chips
with dlib's. --inner K chooses levers without the test subjects (nested cross-validation). Last line: one JSON object."""
import argparse, json, random, sys, time, types, warnings
import numpy as np, torch
from PIL import Image
import fewshot_fastai as ff
from fewshot_fastai.evaluate import pairs_eer
from fewshot_fastai.evaluate.intervals import interval95
from fewshot_fastai.inference import embed, similarity
from fewshot_fastai.verification.scores import equal_error_rate

p = argparse.ArgumentParser(description=__doc__)
p.add_argument('--recipe', default='faces', help='the recipe to fit on each fold\'s training subjects')
p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', dest='overrides', help='a recipe parameter')
p.add_argument('--folds', type=int, default=5)
p.add_argument('--seed', type=int, default=0, help='which subjects form the folds, which photos the episodes take')
p.add_argument('--inner', type=int, default=0, help='nested cross-validation over each fold\'s training subjects in K parts (0: off)')
p.add_argument('--only-folds', type=int, nargs='+', default=None, help='run only these folds (1-based)')
p.add_argument('--episodes', type=int, default=200, help='1-shot identification episodes per fold')
p.add_argument('--degraded', action='store_true', help='also verification on rotated, half-size and occluded photos')
p.add_argument('--no-peer', action='store_true', help='do not run face_recognition even when it is installed')
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
photos = [im.convert('RGB') for im in cf.images]   # all 400, decoded once: ours and the peer see the same pixels

def degrade(im:Image.Image, kind:str, i:int) -> Image.Image:
    "Photo `i` degraded one way, the same for every run (seeded by the photo)"
    g = random.Random(1000*a.seed + i)
    if kind == 'rotated': return im.rotate(g.uniform(-15, 15), resample=Image.BILINEAR)
    if kind == 'half': return im.resize((im.width//2, im.height//2), Image.BILINEAR)
    out, h = im.copy(), im.height//5
    top = g.randrange(0, im.height - h)
    out.paste((0, 0, 0), (0, top, im.width, top + h))
    return out
DEGRADED = ('rotated', 'half', 'band') if a.degraded else ()

# --- the peer -------------------------------------------------------------------------------------------------------
peer = None
if not a.no_peer:
    try:
        try: import pkg_resources  # noqa: F401
        except ImportError:
            # face_recognition_models imports setuptools' pkg_resources only for `resource_filename`, which setuptools
            # >= 81 no longer ships; the bench supplies that one function so that the peer runs unchanged
            import importlib.util, os
            root = list(importlib.util.find_spec('face_recognition_models').submodule_search_locations)[0]
            sys.modules['pkg_resources'] = types.SimpleNamespace(resource_filename=lambda pkg, rel: os.path.join(root, rel))
        import face_recognition as peer
    except ImportError as e:
        print(f'peer: face_recognition not importable ({e}); ours only', flush=True)

def peer_embed(ims) -> tuple[np.ndarray, int, float]:
    "(embeddings, photos with a detected face, seconds per photo) of face_recognition, one photo at a time"
    out, found, t = [], 0, time.perf_counter()
    for im in ims:
        arr = np.asarray(im)
        boxes = peer.face_locations(arr)   # HOG, upsampled once
        found += bool(boxes)
        box = max(boxes, key=lambda b: (b[2] - b[0])*(b[1] - b[3])) if boxes else (0, arr.shape[1] - 1, arr.shape[0] - 1, 0)
        out.append(peer.face_encodings(arr, known_face_locations=[box], model='small')[0])
    return np.stack(out), found, (time.perf_counter() - t)/len(ims)

def peer_scores(e:np.ndarray) -> torch.Tensor:
    return -torch.cdist(torch.from_numpy(e).double(), torch.from_numpy(e).double())

# --- protocols on embeddings: the same pairs and episodes for both --------------------------------------------------
def eer_of(scores:torch.Tensor, labels) -> float:
    lbl = torch.as_tensor(labels)
    i, j = torch.triu_indices(len(lbl), len(lbl), 1)
    return round(100*equal_error_rate(scores[i, j], lbl[i] == lbl[j]), 2)

def episodes(labels, n:int, seed:int) -> list:
    "n 1-shot episodes over every subject in `labels`: (support index per subject, query indices)"
    g, by = random.Random(seed), {}
    for i, l in enumerate(labels): by.setdefault(l, []).append(i)
    out = []
    for _ in range(n):
        sup = [g.choice(v) for v in by.values()]
        out.append((sup, [i for i in range(len(labels)) if i not in set(sup)]))
    return out

def identification(scores:torch.Tensor, labels, eps) -> list:
    "Per-episode accuracy: each query named after its most similar support photo"
    lbl = torch.as_tensor(labels)
    accs = []
    for sup, qry in eps:
        best = torch.as_tensor(sup)[scores[qry][:, sup].argmax(1)]
        accs.append(float((lbl[best] == lbl[qry]).float().mean()))
    return accs

# --- parity with dlib -----------------------------------------------------------------------------------------------
parity = {}
try:
    import dlib
    from fewshot_fastai.models.face_net import load_dlib_face_resnet, face_models_file
    from fewshot_fastai.datasets.faces import face_chip, face_landmarks
    det, sp = dlib.get_frontal_face_detector(), dlib.shape_predictor(face_models_file('shape_predictor_5_face_landmarks.dat'))
    rec = dlib.face_recognition_model_v1(face_models_file('dlib_face_recognition_resnet_model_v1.dat'))
    net, chips, ref, chip_diff = load_dlib_face_resnet().eval(), [], [], 0
    for im in photos:
        arr = np.asarray(im)
        boxes = det(arr, 1)
        box = max(boxes, key=lambda b: b.area()) if len(boxes) else dlib.rectangle(0, 0, arr.shape[1] - 1, arr.shape[0] - 1)
        chip = dlib.get_face_chip(arr, sp(arr, box), size=150, padding=0.25)
        chips.append(chip); ref.append(np.array(rec.compute_face_descriptor(chip)))
        chip_diff = max(chip_diff, int(np.abs(face_chip(arr, face_landmarks(arr, 1, 'hog')[0]).astype(int) - chip).max()))
    with torch.no_grad(): ours_e = torch.cat([net(torch.from_numpy(np.stack(chips[i:i+50])).permute(0, 3, 1, 2).float()/255)
                                             for i in range(0, len(chips), 50)]).numpy()
    parity = dict(images=len(chips), embedding_max_abs=float(np.abs(ours_e - np.stack(ref)).max()), chip_max_abs_grey_levels=chip_diff)
    print(f'parity with dlib on {len(chips)} ORL photos: embeddings max |ours - dlib| = {parity["embedding_max_abs"]:.2e} '
          f'(same chips); our chips vs dlib\'s get_face_chip: max {chip_diff} grey levels', flush=True)
except ImportError as e:
    print(f'parity: dlib not importable ({e})', flush=True)

# --- the folds ------------------------------------------------------------------------------------------------------
peer_all = {}
if peer is not None:
    for kind in ('clean',) + DEGRADED:
        ims = photos if kind == 'clean' else [degrade(im, kind, i) for i, im in enumerate(photos)]
        peer_all[kind] = peer_embed(ims)
        print(f'peer {kind}: a face found in {peer_all[kind][1]} of {len(ims)} photos, {1000*peer_all[kind][2]:.0f} ms per photo', flush=True)

t0 = time.time()
rows, held = [], []
for k, test_subjects in enumerate(folds):
    if a.only_folds and k + 1 not in a.only_folds: continue
    test_idx = [i for i, l in enumerate(cf.label_names()) if l in set(test_subjects)]
    train_cf = cf.subset(lambda c: c not in set(test_subjects))
    test_lbl = [cf.labels[i] for i in test_idx]
    learn = r(train_cf, **params)
    eps = episodes(test_lbl, a.episodes, 7919*a.seed + k)
    row = dict(fold=k + 1, fit_seconds=learn.model_config.stats['train_seconds'])
    for kind in ('clean',) + DEGRADED:
        ims = [photos[i] if kind == 'clean' else degrade(photos[i], kind, i) for i in test_idx]
        t = time.perf_counter(); e = embed(learn, ims); sec = (time.perf_counter() - t)/len(ims)
        s = similarity(learn, e, e)
        row[kind] = dict(eer=eer_of(s, test_lbl), ms_per_image=round(1000*sec, 1))
        if kind == 'clean': row['id_1shot'] = identification(s, test_lbl, eps)
        if peer is not None:
            ps = peer_scores(peer_all[kind][0][test_idx])
            row[kind]['peer_eer'] = eer_of(ps, test_lbl)
            if kind == 'clean': row['peer_id_1shot'] = identification(ps, test_lbl, eps)
    if a.inner:   # every training subject scored once, held out from a fit on the others
        order = sorted(train_cf.classes); random.Random(a.seed).shuffle(order)
        inner = []
        for j in range(a.inner):
            part = set(order[j::a.inner])
            inner_test = train_cf.subset(lambda c: c in part)
            inner.append(pairs_eer(r(train_cf.subset(lambda c: c not in part), **params), inner_test.images, inner_test.labels)['eer'])
        held.append(sum(inner)/len(inner))
    rows.append(row)
    c = row['clean']
    print(f'fold {k+1}/{a.folds}: subjects {test_subjects}: EER ours {c["eer"]:.2f}%'
          + (f' | peer {c["peer_eer"]:.2f}%' if peer else '') + f'; {len(eps)}x {len(test_subjects)}-way 1-shot: ours '
          f'{100*np.mean(row["id_1shot"]):.2f}%' + (f' | peer {100*np.mean(row["peer_id_1shot"]):.2f}%' if peer else '')
          + ''.join(f'; {kind} EER ours {row[kind]["eer"]:.2f}%' + (f' | peer {row[kind]["peer_eer"]:.2f}%' if peer else '') for kind in DEGRADED)
          + f'; fit {row["fit_seconds"]:.0f} s, {c["ms_per_image"]:.0f} ms per image'
          + (f'; held-out training subjects: {held[-1]:.2f}%' if a.inner else ''), flush=True)

mean = lambda key, kind='clean': round(sum(rw[kind][key] for rw in rows)/len(rows), 2)
def id_summary(key):
    m, h = interval95([x for rw in rows for x in rw[key]])
    return dict(accuracy_percent=round(100*m, 2), ci95=round(100*h, 2))
out = dict(dataset='orl_faces', recipe=a.recipe, params=r.settings(params), folds=a.folds, seed=a.seed, only_folds=a.only_folds,
           eer_percent=mean('eer'), eer_per_fold=[rw['clean']['eer'] for rw in rows],
           id_1shot=id_summary('id_1shot'), episodes_per_fold=a.episodes,
           degraded={kind: dict(eer_percent=mean('eer', kind), **({'peer_eer_percent': mean('peer_eer', kind)} if peer else {})) for kind in DEGRADED},
           ms_per_image=mean('ms_per_image'), parity=parity,
           held_out_training_subjects_eer=round(sum(held)/len(held), 2) if held else None, inner=a.inner,
           fit_seconds_per_fold=round(sum(rw['fit_seconds'] for rw in rows)/len(rows), 1), wall_seconds=round(time.time() - t0, 1))
if peer is not None:
    out['peer'] = dict(package=f'face_recognition {getattr(peer, "__version__", "?")}, dlib {dlib.__version__}',
                       eer_percent=mean('peer_eer'), eer_per_fold=[rw['clean']['peer_eer'] for rw in rows],
                       id_1shot=id_summary('peer_id_1shot'), faces_found=peer_all['clean'][1],
                       ms_per_image=round(1000*peer_all['clean'][2], 1))
    print(f'mean EER ours {out["eer_percent"]:.2f}% | peer {out["peer"]["eer_percent"]:.2f}%; 1-shot identification ours '
          f'{out["id_1shot"]["accuracy_percent"]:.2f}% | peer {out["peer"]["id_1shot"]["accuracy_percent"]:.2f}%; '
          f'ms per image ours {out["ms_per_image"]:.1f} (batched) | peer {out["peer"]["ms_per_image"]:.1f}', flush=True)
print(json.dumps(out))
if a.record:
    ff.recipes.record_figure(a.recipe, f"{out['eer_percent']:.2f}% equal error rate on ORL faces of subjects unseen in the fit "
                             f"({a.folds} folds, seed {a.seed}; per fold {' / '.join(f'{e:.2f}' for e in out['eer_per_fold'])})"
                             + (f", face_recognition {out['peer']['eer_percent']:.2f}% on the same pairs" if peer else ''),
                             'python bench/orl_faces.py')
