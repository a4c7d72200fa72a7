"N-way K-shot episodes and Lake's one-shot runs format, on real Omniglot images"
import shutil
import pytest
import fewshot_fastai as ff
from fewshot_fastai.data.episodes import EpisodeSampler
from fewshot_fastai.datasets.naming import drawer_of
from fewshot_fastai.datasets.runs import load_runs, write_runs

@pytest.fixture(scope='module')
def cf2(data_dir):
    return ff.ClassFolder(ff.omniglot('background_small2'), decode=False)

def test_random_episode_shapes_and_labels(cf2):
    eps = EpisodeSampler(cf2.labels, n_way=5, k_shot=3, n_query=2, n_episodes=20).episodes()
    for e in eps:
        assert len(set(e.classes)) == 5 and len(e.support) == 15 and len(e.query) == 10
        assert not set(e.support) & set(e.query)
        for i, l in zip(e.support + e.query, e.support_labels + e.query_labels):
            assert cf2.labels[i] == e.classes[l]

def test_seeded_episodes_are_fixed(cf2):
    a = EpisodeSampler(cf2.labels, 20, 1, 1, 10, seed=3).episodes()
    assert a == EpisodeSampler(cf2.labels, 20, 1, 1, 10, seed=3).episodes()
    assert a != EpisodeSampler(cf2.labels, 20, 1, 1, 10, seed=4).episodes()
    fresh = EpisodeSampler(cf2.labels, 20, 1, 1, 10)
    assert fresh.episodes() != fresh.episodes()

def test_within_alphabet_cross_drawer(cf2):
    drawers = [drawer_of(f) for f in cf2.files]
    s = EpisodeSampler(cf2.labels, 20, 1, 1, 30, seed=0, groups=ff.datasets.alphabet_of, drawers=drawers, names=cf2.classes)
    for e in s.episodes():
        assert len({ff.datasets.alphabet_of(cf2.classes[c]) for c in e.classes}) == 1
        assert len({drawers[i] for i in e.support}) == 1 and len({drawers[i] for i in e.query}) == 1
        assert drawers[e.support[0]] != drawers[e.query[0]]

def test_episode_errors(cf2):
    with pytest.raises(ValueError, match='n_way=200 exceeds the 156 classes'): EpisodeSampler(cf2.labels, n_way=200)
    biggest = max(sum(ff.datasets.alphabet_of(c) == a for c in cf2.classes) for a in {ff.datasets.alphabet_of(c) for c in cf2.classes})
    with pytest.raises(ValueError, match=f'n_way=50 exceeds the {biggest} classes available in any one group'):
        EpisodeSampler(cf2.labels, n_way=50, groups=ff.datasets.alphabet_of, names=cf2.classes)
    with pytest.raises(ValueError, match="class 'Greek/character01' has 20 images, fewer than k_shot \\+ n_query = 25"):
        EpisodeSampler(cf2.labels, n_way=5, k_shot=20, n_query=5, names=cf2.classes)
    with pytest.raises(ValueError, match='not an Omniglot file name'): drawer_of('face.pgm')

def test_tagalog_has_17_characters(cf2):
    tag = cf2.subset(lambda c: c.startswith('Tagalog/'))
    assert len(tag.classes) == 17
    with pytest.raises(ValueError, match='n_way=20 exceeds the 17'): EpisodeSampler(tag.labels, n_way=20)

@pytest.fixture(scope='module')
def runs_dir(tmp_path_factory, data_dir):
    return write_runs(ff.omniglot('background_small2'), tmp_path_factory.mktemp('runs')/'all_runs', n_runs=20)

def test_runs_fixture_exact_format(runs_dir):
    assert sorted(p.name for p in runs_dir.iterdir()) == [f'run{i:02d}' for i in range(1, 21)]
    r = runs_dir/'run07'
    assert sorted(p.name for p in (r/'training').iterdir()) == [f'class{i:02d}.png' for i in range(1, 21)]
    assert sorted(p.name for p in (r/'test').iterdir()) == [f'item{i:02d}.png' for i in range(1, 21)]
    first = (r/'class_labels.txt').read_text().splitlines()[0]
    assert first.startswith('run07/test/item01.png run07/training/class') and first.endswith('.png')

def test_load_runs_folder_and_zip(runs_dir, tmp_path):
    runs = load_runs(runs_dir)
    assert len(runs) == 20 and sum(len(r.test) for r in runs) == 400
    for r in runs:
        assert sorted(r.answers) == list(range(20))   # each class is asked once per run
        # test items are the same characters drawn by another drawer, never a copy of the class image
        assert all(t.read_bytes() != r.training[a].read_bytes() for t, a in zip(r.test, r.answers))
    z = shutil.make_archive(str(tmp_path/'all_runs'), 'zip', runs_dir)
    zruns = load_runs(z)
    assert [r.answers for r in zruns] == [r.answers for r in runs]

def test_load_runs_errors(runs_dir, tmp_path):
    bad = shutil.copytree(runs_dir, tmp_path/'bad')
    lbl = bad/'run03'/'class_labels.txt'
    lbl.write_text(lbl.read_text().replace('item05.png', 'item99.png'))
    with pytest.raises(FileNotFoundError, match='class_labels.txt:5: .*item99.png does not exist'): load_runs(bad)
    with pytest.raises(FileNotFoundError, match='no such runs'): load_runs(tmp_path/'nothing.zip')
