"""The support/query contract: a classifier written against it in ten lines (nearest neighbour: a class's score is
its best shot's) works unchanged in classify, SupportSet, episode_accuracy, NWayEval, save_model/load_model and the
CLI's eval and classify; the built-in 'mean' and 'prototype' give the scores they always gave."""
import json
import pytest
import torch
from fastai.vision.all import set_seed
import fewshot_fastai as ff
from fewshot_fastai.methods import FewShotClassifier, register_method
from _cli import run

@register_method('nearest')
class Nearest(FewShotClassifier):
    "A class's score is the query's score with the closest of its shots"
    def forward(self, queries):
        sim = self.similarity(queries, self.support)                       # (Q, S)
        out = sim.new_full((len(queries), self.n_classes), float('-inf'))
        return out.scatter_reduce(1, self.labels.expand_as(sim), sim, 'amax')

@pytest.fixture(scope='module')
def setup(omni_small):
    set_seed(0)
    cf = ff.ClassFolder(omni_small)
    dls = ff.EpisodeDataLoaders.from_class_folder(cf, n_way=5, size=28, seed=0, valid_pct=0.25)
    return ff.episodic_learner(dls, 'conv4'), cf

def _by_hand(learn, queries, support):
    "Nearest neighbour from the similarities themselves: for each query, the label of its most similar shot"
    labels = [l for l, ims in support.items() for _ in ims]
    sim = ff.inference.similarity(learn, ff.embed(learn, queries, tta=0), ff.embed(learn, [x for ims in support.values() for x in ims], tta=0))
    return [labels[i] for i in sim.argmax(1).tolist()]

def test_a_new_classifier_works_through_every_entry_point(setup, tmp_path):
    learn, cf = setup
    support = {c: cf.files_of(c)[:3] for c in cf.classes[:6]}
    queries = [f for c in cf.classes[:6] for f in cf.files_of(c)[3:6]]
    want = _by_hand(learn, queries, support)
    assert 'nearest' in ff.methods.list_methods()
    labels, scores = ff.classify(learn, queries, support, method='nearest', tta=0, progress=False)
    assert labels == want and scores.shape == (18, 6)
    ss = ff.SupportSet(learn, support, method='nearest', tta=0)
    assert ss.classify(queries)[0] == want
    # episodes: K=3 shots, so 'nearest' and 'mean' differ in general; NWayEval reports episode_accuracy's figure
    eps = ff.data.EpisodeSampler(cf.labels, 5, 3, 2, 8, seed=0).episodes()
    acc = ff.episode_accuracy(learn, cf.images, eps, method='nearest', tta=0)['accuracy']
    cb = ff.NWayEval(cf.images, cf.labels, n_way=5, k_shot=3, n_query=2, n_episodes=8, seed=0, method='nearest')
    cb.learn = learn
    assert cb.evaluate() == acc > 0.2   # chance: 0.2
    # saved with the model, the support set keeps its classifier
    ff.save_model(learn, tmp_path/'m', support=ss)
    back = ff.load_model(tmp_path/'m')
    assert json.loads((tmp_path/'m'/'config.json').read_text())['support_mode'] == 'nearest'
    assert back.support_set.method == 'nearest' and back.support_set.classify(queries)[0] == ss.classify(queries)[0]
    # the CLI (in this process, where the classifier is registered): --method takes it
    r = run('classify', tmp_path/'m', queries[0], '--support', cf.root, '--method', 'nearest', '--json')
    assert r.returncode == 0, r.stderr
    # the old spellings, for one release: `mode=` (with a DeprecationWarning) and `--mode`, the same answers
    with pytest.warns(DeprecationWarning, match="'mode' is now 'method'"):
        assert ff.classify(learn, queries, support, mode='nearest', tta=0, progress=False)[0] == want
    old = run('classify', tmp_path/'m', queries[0], '--support', cf.root, '--mode', 'nearest', '--json')
    assert old.returncode == 0 and json.loads(old.stdout) == json.loads(r.stdout) and '--mode' not in run('classify', '--help').stdout
    r = run('eval', tmp_path/'m', cf.root, '--n-way', 5, '--k-shot', 3, '--n-query', 1, '--episodes', 4, '--method', 'nearest', '--json')
    assert r.returncode == 0, r.stderr
    cli_eps = ff.data.EpisodeSampler(cf.labels, 5, 3, 1, 4, seed=0).episodes()
    assert json.loads(r.stdout)['accuracy'] == round(ff.episode_accuracy(back, cf.images, cli_eps, method='nearest')['accuracy'], 4)

def test_the_builtin_classifiers_keep_their_scores(setup):
    learn, cf = setup
    e = ff.embed(learn, cf.images[:40], tta=0)
    es, eq, lbl = e[:30], e[30:], torch.arange(30) % 6
    sim = ff.inference.similarity(learn, eq, es)
    onehot = torch.nn.functional.one_hot(lbl, 6).float()
    assert torch.allclose(ff.inference.support_scores(learn, eq, es, lbl, 6, 'mean'), sim @ onehot / onehot.sum(0), atol=1e-6)
    protos = torch.stack([es[lbl == k].mean(0) for k in range(6)])
    assert torch.allclose(ff.inference.support_scores(learn, eq, es, lbl, 6, 'prototype'),
                          ff.inference.similarity(learn, eq, protos), atol=1e-5)
    with pytest.raises(ValueError, match="support: method 'bogus': use .*'mean' or 'nearest' or 'prototype'"):
        ff.inference.support_scores(learn, eq, es, lbl, 6, 'bogus')
    with pytest.raises(TypeError, match='not a FewShotClassifier subclass'): register_method('x')(object)

def test_a_model_file_naming_an_unknown_classifier_is_refused(setup, tmp_path):
    learn, cf = setup
    ff.save_model(learn, tmp_path/'m', support=ff.SupportSet(learn, {c: cf.files_of(c)[:1] for c in cf.classes[:2]}))
    cfg = json.loads((tmp_path/'m'/'config.json').read_text()); cfg['support_mode'] = 'knn17'
    (tmp_path/'m'/'config.json').write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="field 'support_mode'"): ff.load_model(tmp_path/'m')
