"""The classifiers beside the prototypes (SimpleShot, Matching, Baseline, Baseline++, BD-CSPN, PT-MAP): each on real Omniglot
episodes through `episode_accuracy` and `classify`, each checked against what its paper defines, and BD-CSPN on a
hand-made cases where only the batch of queries can give the right answer."""
import math
import pytest
import torch
import torch.nn.functional as F
from fastai.vision.all import set_seed
import fewshot_fastai as ff
from fewshot_fastai.methods import create_method

NEW = ['simpleshot', 'matching', 'baseline', 'baseline++', 'bd-cspn', 'pt-map']
cos = lambda a, b: F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T

@pytest.fixture(scope='module')
def setup(omni_small):
    "An untrained Conv4 (seed 0) on 24 real characters, their embeddings, and 5-way episodes of 1 and 5 shots"
    set_seed(0)
    cf = ff.ClassFolder(omni_small)
    dls = ff.EpisodeDataLoaders.from_class_folder(cf, n_way=5, size=28, seed=0, valid_pct=0.25)
    learn = ff.episodic_learner(dls, 'conv4')
    return learn, cf, ff.embed(learn, cf.images, tta=0), torch.tensor(cf.labels)

@pytest.mark.parametrize('k_shot', [1, 5])
def test_every_method_beats_chance_on_real_episodes(setup, k_shot):
    learn, cf, _, _ = setup
    eps = ff.data.EpisodeSampler(cf.labels, 5, k_shot, 5, 20, seed=0).episodes()
    acc = {m: ff.episode_accuracy(learn, cf.images, eps, method=m, tta=0)['accuracy'] for m in NEW}
    # measured (untrained encoder): 0.42-0.46 with 1 shot, 0.60-0.68 with 5; chance 0.2
    assert all(a > (0.3 if k_shot == 1 else 0.45) for a in acc.values()), acc
    support = cf.files_by_class(k_shot, classes=cf.classes[:5])
    queries = [f for c in cf.classes[:5] for f in cf.files_of(c)[k_shot:k_shot + 2]]
    for m in NEW:
        labels, scores = ff.classify(learn, queries, support, method=m, tta=0, progress=False)
        assert scores.shape == (10, 5) and torch.isfinite(scores).all() and len(labels) == 10

def _split(emb, lbl, k=3, n=5):
    "Support (k a class) and queries (the next 4 a class) of the first n classes, labels 0..n-1"
    s_idx = [i for c in range(n) for i in (lbl == c).nonzero().flatten()[:k].tolist()]
    q_idx = [i for c in range(n) for i in (lbl == c).nonzero().flatten()[k:k + 4].tolist()]
    return emb[s_idx], lbl[s_idx], emb[q_idx], lbl[q_idx]

def test_each_method_is_what_its_paper_defines(setup):
    learn, cf, emb, lbl = setup
    s, sl, q, ql = _split(emb, lbl)
    sim = lambda a, b: ff.inference.similarity(learn, a, b)
    run = lambda m: create_method(m, sim).process_support_set(s, sl, 5)(q)
    # SimpleShot: centred on the support mean, normalised, nearest centroid by Euclidean distance
    c = s.mean(0)
    z = lambda e: F.normalize(e - c, dim=-1)
    cent = torch.stack([z(s)[sl == k].mean(0) for k in range(5)])
    assert torch.allclose(run('simpleshot'), -torch.cdist(z(q), cent), atol=1e-5)
    # ... or on a mean given (the training classes')
    given = create_method('simpleshot', sim); given.mean = emb.mean(0)
    zz = lambda e: F.normalize(e - emb.mean(0), dim=-1)
    cent2 = torch.stack([zz(s)[sl == k].mean(0) for k in range(5)])
    assert torch.allclose(given.process_support_set(s, sl, 5)(q), -torch.cdist(zz(q), cent2), atol=1e-5)
    # Matching: log of the softmax attention each class's shots receive
    att = torch.softmax(cos(q, s), 1)
    assert torch.allclose(run('matching').exp(), torch.stack([att[:, sl == k].sum(1) for k in range(5)], 1), atol=1e-5)
    # Baseline / Baseline++: the head fits its support (better than it does the queries), the same support gives
    # the same head, and the scores are the head's on the normalised queries
    for m in ('baseline', 'baseline++'):
        clf = create_method(m, sim).process_support_set(s, sl, 5)
        fit = (clf(s).argmax(1) == sl).float().mean()
        assert fit >= 0.8 and fit > (clf(q).argmax(1) == ql).float().mean(), (m, fit)   # it fitted its support
        assert torch.equal(clf(q), create_method(m, sim).process_support_set(s, sl, 5)(q))
    lin = create_method('baseline', sim).process_support_set(s, sl, 5)
    assert torch.allclose(lin(q), F.normalize(q, dim=-1) @ lin.w + lin.b, atol=1e-5)
    plus = create_method('baseline++', sim).process_support_set(s, sl, 5)
    assert torch.allclose(plus(q), 10*cos(q, plus.w.T), atol=1e-4)

def test_bd_cspn_answers_from_the_batch_of_queries():
    """Two classes on the unit circle: shots at 0 and 90 degrees; the batch's class-1 queries sit at 40 degrees and its
    class-0 queries at -30, both sets pulled towards class 0. Alone, a query at 40 degrees is nearer the class-0 shot
    (what the prototypes answer); with its batch, BD-CSPN's shift between support and queries puts it with class 1"""
    at = lambda deg: torch.tensor([[math.cos(math.radians(deg)), math.sin(math.radians(deg))]])
    s, sl = torch.cat([at(0), at(90)]), torch.tensor([0, 1])
    q = torch.cat([at(40)]*5 + [at(-30)]*5)
    truth = torch.tensor([1]*5 + [0]*5)
    sim = lambda a, b: cos(a, b)
    proto = create_method('prototype', sim).process_support_set(s, sl, 2)
    bd = create_method('bd-cspn', sim).process_support_set(s, sl, 2)
    assert (proto(q).argmax(1) == torch.tensor([0]*10)).all()        # inductive: every query called class 0
    assert (bd(q).argmax(1) == truth).all()                           # with the batch: right
    # the same query at 40 degrees in a batch pulled the other way (its companions at 100 degrees): class 0 this time
    other = torch.cat([at(40)]*5 + [at(100)]*5)
    assert bd(other).argmax(1).tolist() == [0]*5 + [1]*5

def test_pt_map_assigns_a_balanced_batch():
    """Shots at 0 and 90 degrees; the batch holds five queries at 10 degrees (class 0) and five at 40 (class 1): each
    alone is nearer the class-0 shot, but PT-MAP's transport gives each class half the batch, and the five at 40
    degrees are the ones nearer class 1. Its assignment rows sum to 1 and columns to 5."""
    at = lambda deg: torch.tensor([[math.cos(math.radians(deg)), math.sin(math.radians(deg))]])
    s, sl = torch.cat([at(0), at(90)]), torch.tensor([0, 1])
    q = torch.cat([at(10)]*5 + [at(40)]*5)
    sim = lambda a, b: cos(a, b)
    assert (create_method('prototype', sim).process_support_set(s, sl, 2)(q).argmax(1) == 0).all()
    plan = create_method('pt-map', sim).process_support_set(s, sl, 2)(q)
    assert plan.argmax(1).tolist() == [0]*5 + [1]*5
    assert torch.allclose(plan.sum(1), torch.ones(10), atol=1e-4) and torch.allclose(plan.sum(0), torch.full((2,), 5.), atol=1e-3)
