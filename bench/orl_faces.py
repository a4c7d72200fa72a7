"""ORL faces verification on subjects unseen in training: k-fold over the 40 subjects. Each fold trains on the
other subjects (or, for --method frozen, only fits a whitening on them), then scores every pair of the held-out
subjects' images (embeddings computed once) and reports the equal error rate. The defaults are the best measured
recipe (README): --method frozen, no training at all: ImageNet efficientnet_lite0's blocks.4 output at 224x184,
pooled to a 3x3 grid (ff.TapGrid), mirror-image TTA, scored after whitening (ff.fit_whitening, total covariance)
fitted on the training subjects' images. Levers are chosen on the training subjects alone: --inner 4 scores every
training subject held out from the fit (nested cross-validation), --hold a share of them. --method classifier gives
the best trained recipe: Conv4 (width 96, pool-first, flattened final maps) pre-trained as a cosine classifier with
a CosFace margin of 0.1, mirror images in training and at test time, two models per fold; --fuse N fuses such
Conv4s with the frozen scores (ff.fit_fusion). Last line: one JSON object."""
import argparse, json, random, time, warnings
import torch
from functools import partial
from fastai.vision.all import PILImageBW, PILImage, Resize, Rotate, Zoom, Brightness, Flip, RandomErasing, set_seed
import fewshot_fastai as ff

p = argparse.ArgumentParser(description=__doc__)
p.add_argument('--method', default='frozen', choices=['protonet', 'classifier', 'siamese', 'frozen'],
               help='classifier: pre-training as a cosine classifier over the training subjects (ff.classifier_learner); '
               'frozen: no training, ImageNet efficientnet_lite0 taps (ff.TapGrid) scored after WCCN on the training subjects')
p.add_argument('--bs', type=int, default=32, help='classifier batch size')
p.add_argument('--head', default='cosine', choices=['cosine', 'linear'], help='classifier head')
p.add_argument('--arch', default=None, help='default: conv4 (efficientnet_lite0 for --method frozen)')
p.add_argument('--pretrained', action='store_true', help='ImageNet weights (always with --method frozen)')
p.add_argument('--folds', type=int, default=5)
p.add_argument('--epochs', type=int, default=60)
p.add_argument('--episodes-per-epoch', type=int, default=50)
p.add_argument('--size', type=int, nargs=2, default=None, help='image rows, columns (default 56 46; 224 184 for --method frozen)')
p.add_argument('--lr', type=float, default=3e-3)
p.add_argument('--seed', type=int, default=0)
p.add_argument('--tta', type=int, default=None, help='test-time augmentation: embeddings averaged over shifts by N px (0: none; '
               'default 2, 0 for --method frozen)')
p.add_argument('--flip', action=argparse.BooleanOptionalAction, default=True, help='left-right mirror images: in training (fastai Flip) and at test time '
               '(ff.flip_views, combined with --tta shifts)')
p.add_argument('--n-way', type=int, default=10, help='classes per training episode (protonet)')
p.add_argument('--margin', type=float, default=0.1, help='classifier: CosFace additive margin (ff.AdditiveMargin) in training')
p.add_argument('--pool-first', action=argparse.BooleanOptionalAction, default=None,
               help='conv4: each block pools before its BN and ReLU (the default; --no-pool-first: the classic order)')
p.add_argument('--brightness', type=float, default=0.2, help='fastai Brightness(max_lighting) in training (0: none; '
               'rows measured before commit 134f8ad ran without it: the loaders skipped training-only transforms)')
p.add_argument('--cohort-top', type=int, default=50, help='AS-norm: each image\'s closest cohort images (the EERs '
               'with ff.score_norm are reported beside the raw one; cohort: the training subjects\' images)')
p.add_argument('--shrink', type=float, default=1.0, help='ff.fit_whitening\'s ridge for the whitened EERs reported beside the '
               'raw one (cohort: the training subjects\' images; total covariance, and within-subject: WCCN)')
p.add_argument('--hold', type=float, default=0.0, help='share of the training subjects held out to monitor training '
               '(their EERs are printed, for choosing); 0: train on all of them (valid_pct=0), nothing to monitor')
p.add_argument('--inner', type=int, default=0, help='nested cross-validation for choosing levers: split each fold\'s training '
               'subjects into K parts and run K times, each holding one part out (fit on the rest); the held-out EERs (and the '
               'test ones) are the means of the K runs. Every training subject is scored, not a --hold share (0: off)')
p.add_argument('--hold-seed', type=int, default=None, help='which training subjects --hold holds out (ff.class_split\'s '
               'seed; default: --seed). Other values give other held-out subjects for the same test folds')
p.add_argument('--ensemble', type=int, default=None, help='train this many models per fold (seeds differ) and score with all '
               'of them (ff.ensemble_learner: the members\' similarities summed); default 2 (1 for --method frozen)')
p.add_argument('--pool', default=None, choices=['avg', 'flatten'], help='embedding of the encoder\'s final maps: averaged '
               'over positions, or flattened (keeps where each feature is on the face); default: flatten (protonet, classifier)')
p.add_argument('--hidden', type=int, default=None, help='Conv4 channels (default 96)')
p.add_argument('--monitor', action=argparse.BooleanOptionalAction, default=True, help='with --hold: validation episodes '
               'on the held-out subjects after each epoch, as the older rows ran (--no-monitor: scored once at the end only; '
               'faster screens, since nothing reads the per-epoch figures)')
p.add_argument('--rotate', type=float, default=8, help='fastai Rotate(max_deg) in training (p=0.75)')
p.add_argument('--zoom', type=float, default=1.1, help='fastai Zoom(max_zoom) in training (p=0.75)')
p.add_argument('--erase', type=float, default=0, help="fastai RandomErasing(p) in training (0: none)")
p.add_argument('--taps', nargs='+', default=['blocks.4'], help='--method frozen: the layers ff.TapGrid taps')
p.add_argument('--grid', type=int, nargs=2, default=[3, 3], help='--method frozen: the grid each tapped map is pooled to')
p.add_argument('--fuse', type=int, default=0, help='--method frozen: also train this many Conv4s per fold with the --method '
               'classifier recipe (56x46 grey, width 96, pool-first, flattened maps, CosFace 0.1, flip + 2-px shift TTA; '
               'summed as one system) and fuse their scores with the frozen ones (--fuse-with; ff.fit_fusion: each z-normalised '
               'on the training subjects\' impostor pairs); the headline is then the fused EER (0: no fusion)')
p.add_argument('--fuse-weight', type=float, default=0.8, help='--fuse: the frozen system\'s weight (the Conv4s\' is 1 minus it); '
               'the fused EERs at weights 0.5-0.9 are printed too')
p.add_argument('--fuse-with', default=None, choices=['raw', 'whiten', 'wccn'], help='--fuse: which frozen scores are fused '
               '(default: --score\'s, i.e. whiten)')
p.add_argument('--only-folds', type=int, nargs='+', default=None, help='run only these folds (1-based; e.g. to split a long screen '
               'over processes; the JSON then averages over them only)')
p.add_argument('--fuse-epochs', type=int, default=60, help='--fuse: the Conv4s\' training epochs')
p.add_argument('--score', default=None, choices=['raw', 'snorm', 'asnorm', 'whiten', 'wccn', 'fuse'], help='which EER is the headline '
               '(eer_percent; all are printed): default raw, whiten for --method frozen (its embeddings are scored after total-covariance '
               'whitening on the training subjects, chosen over WCCN by --inner 4), '
               'fuse with --fuse')
a = p.parse_args()
if a.margin and a.method not in ('classifier', 'frozen'): raise SystemExit('--margin: only with --method classifier (--margin 0 for the others)')
warnings.filterwarnings('ignore', category=FutureWarning)

frozen = a.method == 'frozen'
if a.arch is None: a.arch = 'efficientnet_lite0' if frozen else 'conv4'
if a.size is None: a.size = [224, 184] if frozen else [56, 46]
if a.tta is None: a.tta = 0 if frozen else 2
if a.fuse and not frozen: raise SystemExit('--fuse: only with --method frozen (it fuses trained Conv4s with the frozen taps)')
if a.fuse < 0 or not 0 <= a.fuse_weight <= 1: raise SystemExit(f'--fuse {a.fuse} --fuse-weight {a.fuse_weight}: need >= 0 and a weight in [0, 1]')
if a.score is None: a.score = 'fuse' if a.fuse else 'whiten' if frozen else 'raw'
if a.score == 'fuse' and not a.fuse: raise SystemExit('--score fuse: needs --fuse N (N > 0)')
if a.fuse_with is None: a.fuse_with = a.score if a.score in ('raw', 'whiten', 'wccn') else 'whiten'
if a.pool_first is None: a.pool_first = a.arch == 'conv4'
if frozen:
    a.pretrained = True
    if a.ensemble not in (None, 1): raise SystemExit('--ensemble: not with --method frozen (nothing is trained)')
    a.epochs, a.margin = 0, 0
if a.ensemble is None: a.ensemble = 1 if frozen else 2
cf = ff.ClassFolder(ff.orl_faces())
subjects = cf.classes[:]
random.Random(a.seed).shuffle(subjects)
folds = [subjects[i::a.folds] for i in range(a.folds)]
img_cls = PILImage if a.pretrained else PILImageBW
aug = [Rotate(max_deg=a.rotate, p=0.75), Zoom(max_zoom=a.zoom, p=0.75)] + ([Brightness(a.brightness, p=0.5)] if a.brightness else []) + ([Flip(p=0.5)] if a.flip else []) + ([RandomErasing(p=a.erase, max_count=1)] if a.erase else [])
tta = partial(ff.flip_views, px=a.tta) if a.flip else a.tta
if a.pool_first and a.arch != 'conv4': raise SystemExit('--pool-first: only with --arch conv4 (--no-pool-first for the others)')
if a.hidden is not None and a.arch != 'conv4': raise SystemExit('--hidden: only with --arch conv4')
if a.pool is not None and a.method == 'siamese': raise SystemExit('--pool: protonet or classifier only')
if a.method != 'siamese' and a.pool is None: a.pool = 'flatten'
if not a.monitor and a.method == 'siamese': raise SystemExit('--no-monitor: protonet or classifier only (a pair learner validates on its held-out subjects)')
if a.arch == 'conv4' and a.hidden is None: a.hidden = 96
enc_kw = {'taps': a.taps, 'grid': a.grid} if frozen else {'pool_first': a.pool_first, 'hidden': a.hidden} if a.arch == 'conv4' else None
if a.ensemble > 1 and a.method == 'siamese': raise SystemExit('--ensemble: protonet or classifier only')
if not 0 <= a.hold < 1: raise SystemExit(f'--hold: a share in [0, 1), got {a.hold}')
if a.only_folds and not set(a.only_folds) <= set(range(1, a.folds + 1)): raise SystemExit(f'--only-folds {a.only_folds}: folds are 1 to {a.folds}')
if a.inner and (a.hold or a.inner < 2): raise SystemExit(f'--inner {a.inner}: K >= 2, and not with --hold (it holds out every part in turn)')
eers, minutes, first = [], [], []
normed = {'raw': [], 'snorm': [], 'asnorm': [], 'whiten': [], 'wccn': []} | ({'fuse': []} if a.fuse else {})   # test EERs with ff.score_norm (all cohort scores / the top
# --cohort-top) and with embeddings whitened on the cohort (ff.fit_whitening)
held = {k: [] for k in normed}   # the same five on the held-out *training* subjects (for choosing)
FUSE_WEIGHTS = [0.5, 0.6, 0.7, 0.8, 0.9]
by_weight, held_by_weight = {w: [] for w in FUSE_WEIGHTS}, {w: [] for w in FUSE_WEIGHTS}   # --fuse: fused EERs per frozen weight

frozen_learn, frozen_emb = None, {}   # --method frozen: an image's embedding does not depend on the fold, so each file is embedded once
def embed(learn, sub_cf):
    "Embeddings (with the TTA) of `sub_cf`'s images, in its order"
    if not frozen: return ff.embed(learn, sub_cf.images, tta=tta)
    todo = [i for i, f in enumerate(sub_cf.files) if f not in frozen_emb]
    if todo:
        for i, e in zip(todo, ff.embed(learn, [sub_cf.images[i] for i in todo], tta=tta)): frozen_emb[sub_cf.files[i]] = e
    return torch.stack([frozen_emb[f] for f in sub_cf.files])

def fold_eers(learn, emb, labels, cohort=None, cohort_labels=None, conv=None):
    """Raw EER (percent) over every pair of `emb`; with cohort embeddings `cohort` (and their subjects) also the
    S-norm and AS-norm ones and those of the embeddings whitened on the cohort (ff.fit_whitening: total, within-subject).
    `conv`: (learner, its embeddings of the same images, of the cohort) of a second system (--fuse), whose raw scores
    are fused with the frozen ones (--fuse-with): 'fuse' at --fuse-weight, and ('fuse', w) for each of FUSE_WEIGHTS"""
    i, j = torch.triu_indices(len(emb), len(emb), 1)
    lbl = torch.tensor(labels)
    same = lbl[i] == lbl[j]
    out = {'raw': ff.inference.similarity(learn, emb, emb)}
    if cohort is not None:
        c = ff.inference.similarity(learn, emb, cohort)
        out.update(snorm=ff.score_norm(out['raw'], c, c), asnorm=ff.score_norm(out['raw'], c, c, top=a.cohort_top))
        whitening = {'raw': lambda x: x, 'whiten': ff.fit_whitening(cohort, shrink=a.shrink),
                     'wccn': ff.fit_whitening(cohort, cohort_labels, shrink=a.shrink)}
        for key in ('whiten', 'wccn'): out[key] = ff.inference.similarity(learn, whitening[key](emb), whitening[key](emb))
        if conv is not None:
            c_learn, c_emb, c_cohort = conv
            wc = whitening[a.fuse_with](cohort)
            cohort_scores = [ff.inference.similarity(learn, wc, wc), ff.inference.similarity(c_learn, c_cohort, c_cohort)]
            test_scores = (out[a.fuse_with], ff.inference.similarity(c_learn, c_emb, c_emb))
            fused = lambda w: ff.fit_fusion(cohort_scores, cohort_labels, [w, 1 - w])(*test_scores)
            out['fuse'] = fused(a.fuse_weight)
            out.update({('fuse', w): fused(w) for w in FUSE_WEIGHTS})
    return {k: 100*ff.equal_error_rate(v[i, j], same) for k, v in out.items()}, len(i), int(same.sum())

def classifier(data_cf, split, hold, size, img_cls, arch, enc_kw, pool, pretrained=False):
    "An untrained cosine-classifier learner over `data_cf`'s subjects (--method classifier, and the --fuse Conv4s)"
    dls = ff.ClassifierDataLoaders.from_class_folder(data_cf, size=tuple(size), bs=a.bs, img_cls=img_cls, **split,
                                                     valid_n_way=len(hold), k_shot=3, n_query=3, batch_tfms=aug)
    return ff.classifier_learner(dls, arch, head=a.head, pretrained=pretrained, encoder_kwargs=enc_kw, pool=pool)

def fit(learn, epochs, margin):
    "One-cycle training, quietly, with a CosFace margin (ff.AdditiveMargin) when `margin`"
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, a.lr, cbs=[ff.AdditiveMargin(margin)] if margin else [])

for k, test_subjects in enumerate(folds):
    if a.only_folds and k + 1 not in a.only_folds: continue
    train_cf = cf.subset(lambda c: c not in set(test_subjects))
    test_cf = cf.subset(lambda c: c in set(test_subjects))
    # held-out training subjects (the set to choose levers on; also monitoring): --hold draws one share of them,
    # --inner K partitions them into K parts, each held out in turn (nested cross-validation: every training subject is
    # scored once per fold, all others fit); --hold 0: none, train on all
    hs = a.seed if a.hold_seed is None else a.hold_seed
    if a.inner:
        order = sorted(train_cf.classes); random.Random(hs).shuffle(order)
        holds = [set(order[j::a.inner]) for j in range(a.inner)]
    else: holds = [ff.class_split(train_cf.classes, a.hold, hs) if a.hold else set()]
    runs_e, runs_h, runs_first, trained = [], [], [], 0.0
    for hold in holds:
        t = time.time()
        split = {'valid_classes': sorted(hold)} if hold and a.monitor else {'valid_pct': 0}
        data_cf = train_cf if hold and a.monitor else train_cf.subset(lambda c: c not in hold)   # --no-monitor: drop them
        members = []
        for m in range(a.ensemble):
            set_seed(a.seed + k + 1000*m)   # member 0: the seed of a single model
            if frozen:   # nothing to train: the loaders only prepare the images (size, RGB, ImageNet statistics); built once
                if frozen_learn is None:
                    dls = ff.ClassifierDataLoaders.from_class_folder(data_cf, size=tuple(a.size), bs=a.bs, img_cls=img_cls, valid_pct=0)
                    frozen_learn = ff.episodic_learner(dls, a.arch, pretrained=True, encoder_kwargs=enc_kw, pool=a.pool, metrics=[])
                learn = frozen_learn
            elif a.method == 'classifier':
                learn = classifier(data_cf, split, hold, a.size, img_cls, a.arch, enc_kw, a.pool, a.pretrained)
            elif a.method == 'protonet':
                dls = ff.EpisodeDataLoaders.from_class_folder(data_cf, size=tuple(a.size), img_cls=img_cls, **split,
                                                              n_way=a.n_way, k_shot=3, n_query=3, valid_n_way=len(hold),
                                                              episodes_per_epoch=a.episodes_per_epoch, batch_tfms=aug)
                learn = ff.episodic_learner(dls, a.arch, pretrained=a.pretrained, encoder_kwargs=enc_kw, pool=a.pool)
            else:
                if not hold: raise SystemExit('--method siamese needs held-out subjects (--hold > 0)')
                dls = ff.SiameseDataLoaders.from_class_folder(train_cf, valid_classes=sorted(hold), seed=a.seed, img_cls=img_cls,
                                                              item_tfms=Resize(tuple(a.size)), batch_tfms=aug, bs=32)
                learn = ff.siamese_learner(dls, a.arch, head='contrastive', pretrained=a.pretrained, encoder_kwargs=enc_kw)
            if not frozen: fit(learn, a.epochs, a.margin)
            members.append(learn)
        learn = ff.ensemble_learner(members) if len(members) > 1 else members[0]
        conv = []   # --fuse: the Conv4s, with the --method classifier recipe
        for m in range(a.fuse):
            set_seed(a.seed + k + 1000*m)
            conv.append(classifier(data_cf, split, hold, (56, 46), PILImageBW, 'conv4', {'pool_first': True, 'hidden': 96}, 'flatten'))
            fit(conv[-1], a.fuse_epochs, 0.1)
        conv = (ff.ensemble_learner(conv) if len(conv) > 1 else conv[0]) if conv else None
        trained += time.time() - t
        conv_tta = partial(ff.flip_views, px=2) if a.flip else 2
        def conv_of(sub_cf, cohort_cf):   # (learner, embeddings of sub_cf, of cohort_cf) for fold_eers, or None
            return (conv, ff.embed(conv, sub_cf.images, tta=conv_tta), ff.embed(conv, cohort_cf.images, tta=conv_tta)) if conv else None
        fit_cf = train_cf.subset(lambda c: c not in set(hold))   # the subjects trained on: the score-norm cohort
        cohort = embed(learn, fit_cf)
        e, n_pairs, n_same = fold_eers(learn, embed(learn, test_cf), test_cf.labels, cohort, fit_cf.labels, conv_of(test_cf, fit_cf))
        runs_e.append(e)
        if len(members) > 1:   # the first member alone (the single model of the same seed): a paired comparison
            runs_first.append(fold_eers(members[0], ff.embed(members[0], test_cf.images, tta=tta), test_cf.labels)[0]['raw'])
        if hold:
            hold_cf = train_cf.subset(lambda c: c in set(hold))
            h, _, _ = fold_eers(learn, embed(learn, hold_cf), hold_cf.labels, cohort, fit_cf.labels, conv_of(hold_cf, fit_cf))
            runs_h.append(h)
    minutes.append(trained/60/len(holds))   # training time of one model set (a mean over the --inner runs)
    if runs_first: first.append(sum(runs_first)/len(runs_first))
    mean = lambda runs: {key: sum(r[key] for r in runs)/len(runs) for key in runs[0]}   # over the --inner runs (one otherwise)
    e = mean(runs_e)
    for w in by_weight if a.fuse else []: by_weight[w].append(e.pop(('fuse', w)))
    eers.append(e[a.score])
    for key in normed: normed[key].append(e[key])
    if runs_h:
        h = mean(runs_h)
        for w in held_by_weight if a.fuse else []: held_by_weight[w].append(h.pop(('fuse', w)))
        for key in held: held[key].append(h[key])
    names = {'snorm': 'S-norm', 'asnorm': 'AS-norm', 'whiten': 'whitened', 'wccn': 'WCCN', 'fuse': 'fused'}
    mon = ' / '.join(f'{names.get(key, key)} {v:.2f}' for key, v in h.items()) + '%' + (f' (mean of {a.inner} inner folds)' if a.inner else '') if runs_h else 'none (--hold 0)'
    print(f'fold {k+1}/{a.folds}: subjects {test_subjects}: EER ({a.score}) {e[a.score]:.2f}% over {n_pairs} pairs ({n_same} same); '
          + ', '.join(f'{names.get(key, key)} {e[key]:.2f}%' for key in normed) + f'; held-out training subjects: {mon}; '
          f'trained {minutes[-1]:.1f} min' + (f'; first member alone: EER {first[-1]:.2f}%' if first else ''), flush=True)
res = dict(dataset='orl_faces', method=a.method, arch=a.arch, pretrained=a.pretrained, folds=a.folds, epochs=a.epochs,
           size=a.size, tta=a.tta, flip=a.flip, n_way=a.n_way, pool_first=a.pool_first, brightness=a.brightness, margin=a.margin, lr=a.lr, **({'head': a.head, 'bs': a.bs} if a.method == 'classifier' else {}),
           score=a.score, eer_percent=round(sum(eers)/len(eers), 2), eer_per_fold=[round(e, 2) for e in eers],
           **({'taps': a.taps, 'grid': a.grid} if frozen else {}), cohort_top=a.cohort_top, shrink=a.shrink,
           **({'fuse': a.fuse, 'fuse_weight': a.fuse_weight, 'fuse_epochs': a.fuse_epochs, 'fuse_with': a.fuse_with,
               'eer_fuse_by_weight': {w: round(sum(v)/len(v), 2) for w, v in by_weight.items()},
               'held_out_eer_fuse_by_weight': {w: round(sum(v)/len(v), 2) for w, v in held_by_weight.items()} if a.hold or a.inner else None} if a.fuse else {}),
           **{f'eer_{k}_percent': round(sum(v)/len(v), 2) for k, v in normed.items()},
           **{f'eer_{k}_per_fold': [round(e, 2) for e in v] for k, v in normed.items()},
           held_out_training_subjects_eer={k: round(sum(v)/len(v), 2) for k, v in held.items()} if a.hold or a.inner else None,
           only_folds=a.only_folds, hold=a.hold, inner=a.inner, hold_seed=a.hold_seed, monitor=a.monitor, ensemble=a.ensemble, hidden=a.hidden, pool=a.pool, erase=a.erase, rotate=a.rotate, zoom=a.zoom,
           train_minutes_per_fold=round(sum(minutes)/len(minutes), 2),
           **({'first_member_eer_percent': round(sum(first)/len(first), 2), 'first_member_eer_per_fold': [round(e, 2) for e in first]} if first else {}))
print(json.dumps(res))
