"SupportSet: the support encoded once across many query batches, labels and shots added and removed; argument checks"
import pytest
import torch
from fastai.callback.hook import Hook
from fastai.vision.all import set_seed
import fewshot_fastai as ff

@pytest.fixture(scope='module')
def learn(omni_dls):
    set_seed(0)
    learn = ff.siamese_learner(omni_dls, ff.models.conv4, head='contrastive')
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 3e-3)
    return learn

@pytest.fixture(scope='module')
def unseen(unseen_files): return unseen_files

class Count:
    "Images through the encoder: a forward hook on it"
    def __init__(self, learn): self.n, self.hook = 0, Hook(learn.model.encoder, self.count, detach=True)
    def count(self, m, i, o): self.n += len(i[0])

def test_support_encoded_once(learn, unseen):
    support = {c: fs[:2] for c, fs in unseen.items()}
    queries = [f for fs in unseen.values() for f in fs[2:]]
    c = Count(learn)
    try:
        ss = ff.SupportSet(learn, support, bs=16)
        assert c.n == 2*len(support)                       # every support image once
        got = [ss.classify(queries[i:i+10]) for i in range(0, len(queries), 10)]
        assert c.n == 2*len(support) + len(queries)       # afterwards only the queries, over 11 query batches
    finally: c.hook.remove()
    labels = [l for g in got for l in g[0]]
    ref_labels, ref_scores = ff.classify(learn, queries, support, progress=False)
    assert labels == ref_labels and torch.allclose(torch.cat([g[1] for g in got]), ref_scores, atol=1e-5)
    assert ss.predict(queries[0]) == (ref_labels[0], pytest.approx(float(ref_scores[0].max()), abs=1e-5))

def test_add_and_remove(learn, unseen):
    names = list(unseen)
    ss = ff.SupportSet(learn, {names[0]: unseen[names[0]][:1]})
    ss.add(names[1], unseen[names[1]][0]).add(names[0], unseen[names[0]][1:3])
    assert ss.labels == names[:2] and [len(e) for e in ss.emb.values()] == [3, 1]
    full = ff.SupportSet(learn, {names[0]: unseen[names[0]][:3], names[1]: unseen[names[1]][:1]})
    q = unseen[names[0]][5:9]
    assert torch.allclose(ss.scores(q), full.scores(q), atol=1e-5)
    ss.remove(names[0], positions=[1, 2])
    assert torch.allclose(ss.scores(q), ff.SupportSet(learn, {names[0]: unseen[names[0]][:1], names[1]: unseen[names[1]][:1]}).scores(q), atol=1e-5)
    ss.remove(names[1])
    assert ss.labels == names[:1]
    with pytest.raises(KeyError, match='no label'): ss.remove('nope')
    with pytest.raises(IndexError, match='has 1 shots'): ss.remove(names[0], positions=[4])
    with pytest.warns(DeprecationWarning, match="'shots' is now 'positions'"): full.remove(names[0], shots=[0, 1])   # for one release
    assert [len(e) for e in full.emb.values()] == [1, 1]
    with pytest.raises(ValueError, match=f"label {names[2]!r} has no images"): ss.add(names[2], [])
    with pytest.raises(ValueError, match="label 'x' has no images"): ff.classify(learn, q, {'x': []})
    with pytest.raises(ValueError, match="method 'best'"): ff.SupportSet(learn, method='best')
    with pytest.raises(ValueError, match='no labels'): ff.SupportSet(learn).classify(q)

@pytest.mark.parametrize('arg,value', [('n_way', 0), ('n_way', 1), ('k_shot', -1), ('k_shot', 0), ('n_query', 0),
                                       ('n_episodes', 0), ('k_shot', 1.5)])
def test_episode_sampler_rejects_impossible_arguments(arg, value):
    kw = dict(n_way=2, k_shot=1, n_query=1, n_episodes=3) | {arg: value}
    with pytest.raises(ValueError, match=f'{arg}={value!r}'): ff.data.EpisodeSampler([0, 0, 1, 1, 2, 2], **kw)
