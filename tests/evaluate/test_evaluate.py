"`ff.evaluate`: the protocols in one place, on real Omniglot alphabets and an untrained seeded encoder"
import math, statistics, zipfile
import pytest
import torch
from fastai.vision.all import set_seed
import fewshot_fastai as ff

@pytest.fixture(scope='module')
def small2(data_dir):
    return ff.ClassFolder(ff.omniglot('background_small2'))

@pytest.fixture(scope='module')
def learner(small2):
    "An untrained seeded Conv4 episodic learner at 28 px: embeddings are deterministic, accuracy above chance on drawings"
    set_seed(0)
    dls = ff.EpisodeDataLoaders.from_class_folder(small2, n_way=5, size=28, seed=0)
    return ff.episodic_learner(dls, 'conv4')

def test_interval95_is_the_normal_interval_of_the_mean():
    xs = [1]*37 + [0]*13
    mean, half = ff.evaluate.interval95(xs)
    assert mean == statistics.fmean(xs) and half == pytest.approx(1.96*statistics.stdev(xs)/math.sqrt(len(xs)), rel=1e-12)
    assert ff.evaluate.interval95([0.5, 0.5, 0.5]) == (0.5, 0.0)
    assert math.isnan(ff.evaluate.interval95([1])[1])
    with pytest.raises(ValueError, match='no outcomes'): ff.evaluate.interval95([])

def test_unseen_alphabets_are_those_the_training_set_lacks(data_dir, small2):
    "Against the zips' own member names, not the ClassFolder the function uses"
    def alphabets(name):
        with zipfile.ZipFile(data_dir/f'images_{name}.zip') as z:
            return {p.split('/')[1] for p in z.namelist() if p.count('/') >= 3 and p.endswith('.png')}
    expect = sorted(alphabets('background_small2') - alphabets('background_small1'))
    got = ff.evaluate.unseen_alphabets(['background_small1'], among=['background_small2'])
    assert list(got) == expect and len(expect) >= 2
    for a, cf in got.items():
        assert {ff.datasets.alphabet_of(c) for c in cf.classes} == {a}
        assert len(cf.classes) == len([c for c in small2.classes if c.startswith(a + '/')])
    assert ff.evaluate.unseen_alphabets(['background_small1', 'background_small2']) == {}

def test_alphabet_episodes_stay_in_one_alphabet_across_drawers(small2):
    alpha = ff.evaluate.unseen_alphabets(['background_small1'], among=['background_small2'])
    cf = next(iter(alpha.values()))
    eps = ff.evaluate.alphabet_episodes(cf, n_way=100, n_episodes=5, seed=1)
    assert all(e.n_way == len(cf.classes) for e in eps)   # capped by the alphabet's classes
    for e in eps:
        drawers = lambda idx: {ff.datasets.drawer_of(cf.files[i]) for i in idx}
        assert len(drawers(e.support)) == 1 and drawers(e.support).isdisjoint(drawers(e.query))
    assert ff.evaluate.alphabet_episodes(cf, 5, 5, seed=1) == ff.evaluate.alphabet_episodes(cf, 5, 5, seed=1)

def test_within_alphabet_error_pools_the_per_alphabet_episodes(learner):
    alpha = dict(list(ff.evaluate.unseen_alphabets(['background_small1'], among=['background_small2']).items())[:2])
    r = ff.evaluate.within_alphabet_error(learner, alpha, n_way=5, n_episodes=6, seed=2, tta=0)
    outcomes = []
    for name, cf in alpha.items():
        one = ff.evaluate.episode_accuracy(learner, cf.images, ff.evaluate.alphabet_episodes(cf, 5, 6, seed=2), tta=0)
        assert r['errors'][f'{name} (5-way)'] == round(100*(1 - one['accuracy']), 2)
        assert one['per_episode'] == [sum(one['outcomes'][5*k:5*k + 5])/5 for k in range(6)]
        outcomes += one['outcomes']
    assert r['trials'] == len(outcomes) == 2*6*5
    assert r['error'] == round(sum(r['errors'].values())/2, 2) and r['error'] < 80   # chance: 80% error
    assert r['ci95'] == round(100*ff.evaluate.interval95(outcomes)[1], 2) > 0

def test_runs_error_counts_each_item_and_its_interval(learner, small2, tmp_path):
    runs = ff.datasets.load_runs(ff.datasets.write_runs(ff.omniglot('background_small2'), tmp_path/'runs', n_runs=3,
                                                        n_way=5, seed=0))
    r = ff.evaluate.runs_error(learner, runs, tta=0)
    assert r['trials'] == len(r['wrong']) == sum(len(run.test) for run in runs) == 15
    assert r['error'] == round(100*sum(r['wrong'])/15, 2) and r['ci95'] == round(100*ff.evaluate.interval95(r['wrong'])[1], 2)
    # one run by hand, with class names: its items labelled alone by the best-matching class image
    names = [f'class{j + 1:02d}' for j in range(5)]
    labels, _ = ff.classify(learner, runs[0].test, dict(zip(names, runs[0].training)), progress=False, tta=0)
    assert r['wrong'][:5] == [int(l != names[t]) for l, t in zip(labels, runs[0].answers)]
    assert r['error'] < 80 and r['one_to_one_error'] < 80   # chance: 80% at 5-way, even untrained

def test_class_folder_files_of_from_items_and_merge(data_dir):
    a, b = ff.ClassFolder(ff.omniglot('background_small1')), ff.ClassFolder(ff.omniglot('background_small2'))
    c = a.classes[3]
    assert a.files_of(c) == sorted((a.root/c).glob('*.png')) and len(a.files_of(c)) == 20
    with pytest.raises(KeyError, match='no class'): a.files_of('nosuch')
    m = a.merge(b)
    shared = set(a.classes) & set(b.classes)
    assert len(m.classes) == len(a.classes) + len(b.classes) - len(shared)
    assert all(m.files_of(x) == a.files_of(x) for x in list(shared)[:3])   # a shared class comes from the first
    k = len(a.files) + 7
    assert m.label_names()[k] == b.label_names()[b.files.index(m.files[k])] and m.images[k] is b.images[b.files.index(m.files[k])]
    sub = ff.ClassFolder.from_items(a.root, ['x', 'y'], a.files[:4], [0, 0, 1, 1], a.images[:4])
    assert sub.files_of('y') == a.files[2:4] and not sub.lazy and len(sub) == 4
    with pytest.raises(ValueError, match='3 files, 2 labels'): ff.ClassFolder.from_items(a.root, ['x'], a.files[:3], [0, 0])
