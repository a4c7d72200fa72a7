"""`ff.Gallery`: a support set in a real SQLite file, on real Omniglot drawings and a real (seeded) model."""
import sqlite3, subprocess, sys, textwrap
import numpy as np
import pytest
import torch
import fewshot_fastai as ff
from fewshot_fastai.serve import Gallery, GalleryError, GalleryFull, GalleryReadOnly

@pytest.fixture(scope='module')
def learn(episodic_model): return ff.load_model(episodic_model)

def _support(chars, k=4): return {l: fs[:k] for l, fs in chars.items()}

def test_scores_equal_a_support_set_and_survive_reopening(learn, chars, tmp_path):
    path = tmp_path/'g.db'
    g = Gallery(path, learn)
    for l, fs in _support(chars).items(): assert g.add(l, fs) == dict(label=l, added=4, images=4)
    queries = [fs[5] for fs in chars.values()]
    labels, scores = g.classify(queries)
    ss_labels, ss_scores = ff.SupportSet(learn, _support(chars)).classify(queries)
    assert g.labels == list(_support(chars)) and labels == ss_labels
    assert torch.allclose(scores, ss_scores, atol=1e-6)
    for mode in ('prototype',):   # every registered classifier reads the same rows
        gp = Gallery(path, learn, method=mode)
        assert torch.allclose(gp.scores(queries)[1], ff.SupportSet(learn, _support(chars), method=mode).scores(queries), atol=1e-6)
        gp.close()
    g.close()
    again = Gallery(path, learn)   # a new process would read the same file
    assert again.n_images == 32 and torch.allclose(again.scores(queries)[1], ss_scores, atol=1e-6)
    assert sqlite3.connect(path).execute('PRAGMA journal_mode').fetchone()[0] == 'wal'

def test_same_bytes_once_and_removal(learn, chars, tmp_path):
    g = Gallery(tmp_path/'g.db', learn)
    l, fs = next(iter(chars.items()))
    assert g.add(l, [fs[0], fs[0], fs[1]]) == dict(label=l, added=2, images=2)   # the same file twice in one call: once
    assert g.add(l, [fs[1], fs[2]]) == dict(label=l, added=1, images=3)          # already there: not again
    other = list(chars)[1]
    g.add(other, chars[other][:2])
    assert g.remove(l) == 3 and g.labels == [other] and g.n_images == 2
    with pytest.raises(KeyError, match='no class'): g.remove(l)
    for bad, msg in (('a/b', 'may not hold'), ('..', 'not a class name'), (' x', 'space'), ('', 'empty'), ('x'*101, 'at most'), ('a\nb', 'control')):
        with pytest.raises(ValueError, match=msg): g.add(bad, fs[:1])
    assert g.add('José García 北京', fs[:1])['images'] == 1 and 'José García 北京' in g.labels
    assert g.store.integrity() == 'ok'

def test_embeddings_made_elsewhere(learn, chars, tmp_path):
    "Rows encoded outside the gallery (`ff.embed`) score as the same images enrolled through `add`"
    sup = _support(chars, 3)
    files = [f for fs in sup.values() for f in fs]
    labels = [l for l, fs in sup.items() for _ in fs]
    g = Gallery(tmp_path/'g.db', learn)
    e = ff.embed(learn, files).cpu().numpy()
    got = g.add_embeddings(labels, e, [str(f) for f in files])
    assert got['added'] == len(files) and got['images'] == {l: 3 for l in sup}
    assert g.add_embeddings(labels[:2], e[:2], [str(f) for f in files[:2]])['added'] == 0   # the same keys: skipped
    queries = [fs[5] for fs in chars.values()]
    assert torch.allclose(g.scores(queries)[1], ff.SupportSet(learn, sup).scores(queries), atol=1e-5)
    for bad, msg in ((dict(embeddings=e[:, :3]), 'shape'), (dict(embeddings=e*np.nan), 'NaN'), (dict(digests=['k']), 'digests'),
                     (dict(labels=['a/b']*len(e)), 'may not hold')):
        args = dict(labels=labels, embeddings=e, digests=[str(f) for f in files]) | bad
        with pytest.raises(ValueError, match=msg): g.add_embeddings(**args)
    assert g.n_images == len(files)

def test_a_second_process_sees_the_changes(learn, chars, episodic_model, tmp_path):
    path = tmp_path/'g.db'
    g = Gallery(path, learn)
    labels = list(chars)
    g.add(labels[0], chars[labels[0]][:3])
    assert g.n_images == 3   # a snapshot in memory now
    code = textwrap.dedent(f'''
        import fewshot_fastai as ff
        from fewshot_fastai.serve import Gallery
        g = Gallery({str(path)!r}, ff.load_model({str(episodic_model)!r}))
        g.add({labels[1]!r}, {[str(f) for f in chars[labels[1]][:2]]!r})
        g.remove({labels[0]!r})
        print(g.n_images)''')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == '2', out.stderr[-800:]
    assert g.labels == [labels[1]] and g.n_images == 2   # no stale cache: the version counter moved
    assert g.classify([chars[labels[1]][4]])[0] == [labels[1]]

def test_another_models_gallery_is_refused(learn, pair_model, chars, tmp_path):
    path = tmp_path/'g.db'
    Gallery(path, learn).add(next(iter(chars)), next(iter(chars.values()))[:1])
    with pytest.raises(GalleryError, match='built by another model'): Gallery(path, ff.load_model(pair_model))
    (tmp_path/'junk.db').write_bytes(b'not a database at all' * 100)
    with pytest.raises(GalleryError, match='not a gallery'): Gallery(tmp_path/'junk.db', learn)
    sqlite3.connect(tmp_path/'other.db').execute('CREATE TABLE t(x)')
    with pytest.raises(GalleryError, match='not a gallery'): Gallery(tmp_path/'other.db', learn)

def test_read_only_and_full(learn, chars, tmp_path):
    path = tmp_path/'g.db'
    labels = list(chars)
    Gallery(path, learn).add(labels[0], chars[labels[0]][:2]).get('images')
    ro = Gallery(path, learn, read_only=True)
    with pytest.raises(GalleryReadOnly, match='read-only'): ro.add(labels[1], chars[labels[1]][:1])
    with pytest.raises(GalleryReadOnly): ro.remove(labels[0])
    assert ro.labels == [labels[0]]
    small = Gallery(tmp_path/'small.db', learn, max_bytes=48*1024)   # SQLite's own page limit: the real "full" error
    n = 0
    with pytest.raises(GalleryFull, match='full'):
        for l in labels*20:
            small.add(f'{l}-{n}', chars[l]); n += 1
    assert small.store.integrity() == 'ok'
    assert sum(c['images'] for c in small.classes()) == 6*n   # every answered enrolment whole, the refused one absent

def test_unknown_threshold_from_the_gallery(learn, chars, tmp_path):
    g = Gallery(tmp_path/'g.db', learn)
    labels = list(chars)
    g.add(labels[0], chars[labels[0]][:2])
    assert g.calibration()['source'] == 'none' and g.answer([chars[labels[0]][3]])[0]['unknown'] is False
    for l in labels[:6]: g.add(l, chars[l][:5])
    cal = g.calibration()
    assert cal['source'] == 'gallery' and cal['genuine'] >= 10 and cal['impostor'] >= 10
    top = g.top([chars[labels[7]][0]], k=3)[0]
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]
    fixed = Gallery(tmp_path/'g.db', learn, threshold=top[0][1] + 1)
    a = fixed.answer([chars[labels[7]][0]])[0]
    assert a['unknown'] and a['label'] is None and fixed.calibration()['source'] == 'override'
    fixed = Gallery(tmp_path/'g.db', learn, threshold=top[0][1] - 1)
    assert fixed.answer([chars[labels[7]][0]])[0]['label'] == top[0][0]

def test_one_image_per_class_takes_the_impostor_quantile(learn, chars, tmp_path):
    "No class has two images, so no genuine score: the threshold is the 1 - far quantile of leave-one-out impostor scores"
    one = {f'{l}-{i}': fs[i] for l, fs in chars.items() for i in range(2)}   # 16 classes of one drawing each
    g = Gallery(tmp_path/'g.db', learn)
    for l, f in one.items(): g.add(l, f)
    imp = []
    for l, f in one.items():   # each image against a support set of all the others, recomputed outside the gallery
        ss = ff.SupportSet(learn, {o: [x] for o, x in one.items() if o != l})
        imp.append(float(ss.scores([f]).max()))
    cal = g.calibration()
    assert cal['source'] == 'impostors' and cal['impostor'] == len(one) and cal['genuine'] == 0
    assert cal['threshold'] == pytest.approx(np.quantile(imp, 0.95), abs=1e-5)
    g2 = Gallery(tmp_path/'g.db', learn)
    assert g2.calibration(far=0.5)['threshold'] == pytest.approx(np.quantile(imp, 0.5), abs=1e-5)
    with pytest.raises(ValueError, match='far'): g2.calibration(far=1.5)

def test_the_threshold_is_kept_until_the_gallery_grows_5_percent(learn, chars, tmp_path):
    g = Gallery(tmp_path/'g.db', learn)
    labels = list(chars)
    for l in labels[:6]: g.add(l, chars[l][:5])   # 30 images: 5% is 1.5
    cal = g.calibration()
    g.add(labels[6], chars[labels[6]][:1])
    assert g.calibration() is cal                  # one more image: the same calibration, not recomputed
    g.add(labels[6], chars[labels[6]][1:3])
    again = g.calibration()
    assert again is not cal and again['genuine'] >= cal['genuine']   # 3 more (10%): recomputed
    g.remove(labels[6])
    assert g.calibration() is not again            # a class removed: recomputed

@pytest.mark.parametrize('index', ['flat', 'hnsw'])
def test_index_agrees_with_the_exact_scores(learn, chars, tmp_path, index):
    pytest.importorskip('faiss')
    path = tmp_path/'g.db'
    for l, fs in chars.items(): Gallery(path, learn).add(l, fs[:4])
    exact = Gallery(path, learn, index='none')
    indexed = Gallery(path, learn, index=index, index_above=10, candidates=8)
    queries = [fs[5] for fs in chars.values()] + [fs[4] for fs in chars.values()]
    assert indexed.snapshot().index is not None and exact.snapshot().index is None
    te, ti = exact.top(queries, k=1), indexed.top(queries, k=1)
    assert [t[0][0] for t in te] == [t[0][0] for t in ti]
    assert np.allclose([t[0][1] for t in te], [t[0][1] for t in ti], atol=1e-5)   # the candidates' classes scored exactly
    indexed.add('new', [list(chars.values())[0][5]])   # the index grows with the gallery
    assert indexed.top([list(chars.values())[0][5]], k=1)[0][0][0] == 'new'
