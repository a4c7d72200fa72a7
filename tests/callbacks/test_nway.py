"Support-set classification, the NWayEval callback and episodic (prototypical) training, on real Omniglot"
import pytest
import torch
from fastai.vision.all import PILImageBW, set_seed, load_learner
import fewshot_fastai as ff
from fewshot_fastai.callbacks.nway import NWayEval
from fewshot_fastai.evaluate import episode_accuracy, naive_episode_accuracy
from fewshot_fastai.data.episode_loaders import EpisodeDataLoaders
from fewshot_fastai.data.episodes import EpisodeSampler

@pytest.fixture(scope='module')
def trained(omni_dls):
    set_seed(0)
    learn = ff.siamese_learner(omni_dls, ff.models.conv4, head='contrastive')
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(4, 3e-3)
    return learn

@pytest.fixture(scope='module')
def unseen(omni_dls, held_out):
    "The validation characters of `omni_dls`, never seen in training"
    return held_out(omni_dls)

def test_classify_support_set(trained, unseen):
    "Balanced: 2 support images and 18 queries for every one of the 6 unseen classes (chance 1/6)"
    sup = {c: [] for c in unseen.classes}
    queries, truth = [], []
    for f, im, l in zip(unseen.files, unseen.images, unseen.label_names()):
        if len(sup[l]) < 2: sup[l].append(im)                 # 2-shot support, PIL images
        else: queries.append(f); truth.append(l)
    assert len(sup) == 6 and all(truth.count(c) == 18 for c in sup)
    labels, scores = ff.classify(trained, queries, sup, progress=False)
    assert scores.shape == (len(queries), len(sup)) and set(labels) <= set(sup)
    acc = sum(a == b for a, b in zip(labels, truth))/len(truth)
    assert acc > 0.5, f'{acc} on 6-way 2-shot (chance 1/6; measured 0.59-0.89 over seeds 0-2)'
    # scores are per-class means of the pair similarities
    es = ff.inference.embed(trained, sup[unseen.classes[0]]); eq = ff.inference.embed(trained, queries[:3])
    assert torch.allclose(scores[:3, 0], ff.inference.similarity(trained, eq, es).mean(1), atol=1e-5)
    with pytest.raises(ValueError, match='empty support'): ff.classify(trained, queries, {})

def test_episode_accuracy_encodes_each_image_once(trained, unseen):
    eps = EpisodeSampler(unseen.labels, n_way=5, k_shot=5, n_query=1, n_episodes=10, seed=0).episodes()
    res = episode_accuracy(trained, unseen.images, eps)
    assert res['encoder_passes'] == len({i for e in eps for i in e.support + e.query}) <= 10*(5*5 + 5)
    assert res['accuracy'] > 0.6, res   # 5-way (chance 0.2); measured 0.70-0.96 over seeds 0-2
    # the seed-style evaluation (full forward per query x support pair) gives the same answer, at more passes
    naive = naive_episode_accuracy(trained, unseen.images, eps)
    assert naive['accuracy'] == pytest.approx(res['accuracy'])
    assert naive['encoder_passes'] == 10*2*(5*1*5*5)

def test_prototype_mode_scores_class_means(trained, unseen):
    "K>1 shots: 'prototype' scores each query against the class's mean embedding; equal to 'mean' for K=1"
    sup = {unseen.classes[l]: [im for im, m in zip(unseen.images, unseen.labels) if m == l][:5] for l in range(4)}
    queries = [im for im, m in zip(unseen.images, unseen.labels) if m < 4][5::20]
    _, s_proto = ff.classify(trained, queries, sup, progress=False, method='prototype')
    _, s_mean = ff.classify(trained, queries, sup, progress=False)
    eq = ff.embed(trained, queries)
    protos = torch.stack([ff.embed(trained, v).mean(0) for v in sup.values()])
    assert torch.allclose(s_proto, ff.inference.similarity(trained, eq, protos), atol=1e-5)
    assert not torch.allclose(s_proto, s_mean)
    one = {k: v[:1] for k, v in sup.items()}
    assert torch.allclose(ff.classify(trained, queries, one, progress=False, method='prototype')[1],
                          ff.classify(trained, queries, one, progress=False)[1], atol=1e-5)
    eps = EpisodeSampler(unseen.labels, n_way=5, k_shot=5, n_query=2, n_episodes=10, seed=0).episodes()
    assert episode_accuracy(trained, unseen.images, eps, method='prototype')['accuracy'] > 0.6   # measured 0.73-0.94
    with pytest.raises(ValueError, match="method 'median'"): ff.classify(trained, queries, sup, progress=False, method='median')
    with pytest.raises(ValueError, match='NWayEval'): NWayEval(unseen.images, unseen.labels, n_way=5, method='median')

def test_nway_column_in_recorder(omni_dls, unseen):
    cb = NWayEval(unseen.images, unseen.labels, n_way=5, n_episodes=20, seed=0)
    learn = ff.siamese_learner(omni_dls, ff.models.conv4, head='l1', cbs=cb)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 3e-3)
    assert learn.recorder.metric_names[-2] == '5way_1shot'
    vals = [v[-1] for v in learn.recorder.values]
    assert len(vals) == 2 and vals[-1] == cb.last['accuracy']
    # the column is the accuracy of the final weights on the callback's own episodes, each distinct image encoded once
    again = episode_accuracy(learn, unseen.images, cb.episodes)
    assert vals[-1] == pytest.approx(again['accuracy'])
    assert cb.last['encoder_passes'] == len({i for e in cb.episodes for i in (*e.support, *e.query)})
    assert len(cb.episodes) == 20 and all(e.n_way == 5 and len(e.query) == 5 for e in cb.episodes)
    assert cb.metric not in learn.metrics   # removed after fit
    with learn.no_bar(): learn.validate()   # a plain validate does not need it

def test_episodic_protonet_learns(omni_small, tmp_path):
    cf = ff.ClassFolder(omni_small)
    dls = EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0.25, n_way=5, n_query=3,
                                               episodes_per_epoch=20, valid_episodes=20, rotations=4)
    x, sy, qy = dls.one_batch()
    assert x.shape == (5*1 + 5*3, 1, 28, 28) and sy.tolist() == list(range(5)) and len(qy) == 15
    assert not set(dls.train_classes) & set(dls.valid_classes)
    set_seed(0)
    learn = ff.episodic_learner(dls, 'conv4')
    with learn.no_bar(), learn.no_logging():
        learn.lr_find(num_it=10, show_plot=False)
        learn.fit_one_cycle(3, 3e-3)
    assert learn.recorder.values[-1][2] > 0.5   # 5-way accuracy on unseen characters; chance is 0.2
    # export keeps the model and the image preparation, not the dataset; classify gives the same answer after reload
    learn.export(tmp_path/'proto.pkl')
    assert (tmp_path/'proto.pkl').stat().st_size < 2e6
    learn2 = load_learner(tmp_path/'proto.pkl')
    sup = cf.files_by_class(1, classes=dls.valid_classes)
    queries = [f for f, l in zip(cf.files, cf.label_names()) if l in sup][1::7]
    l1, s1 = ff.classify(learn, queries, sup, progress=False)
    l2, s2 = ff.classify(learn2, queries, sup, progress=False)
    assert l1 == l2 and torch.allclose(s1.cpu(), s2.cpu(), atol=1e-5)   # learn2 sits on the CPU (load_learner)

def test_within_group_training_episodes(omni_small):
    cf = ff.ClassFolder(omni_small)
    dls = EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0.25, n_way=2, n_query=1,
                                               episodes_per_epoch=10, rotations=4, group=ff.datasets.alphabet_of)
    s, names = dls.train.dataset.sampler, cf.classes
    for _ in range(10):
        e = s._episode(__import__('random'))
        assert len({(ff.datasets.alphabet_of(names[c//4]), c % 4) for c in e.classes}) == 1   # one alphabet, one rotation
