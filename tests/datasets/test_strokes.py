"Omniglot pen strokes: loading (local and downloaded), rendering that matches the PNGs, perturbations, StrokeImages"
import functools, http.server, random, threading
import numpy as np
import pytest
import torch
from PIL import Image
import fewshot_fastai as ff
from fastai.vision.all import PILImageBW


@pytest.fixture(scope='module')
def strokes1(data_dir): return ff.datasets.omniglot_strokes('background_small1')


@pytest.fixture(scope='module')
def files(omni1): return sorted(omni1.rglob('*.png'))


def _ink(im): return np.array(im.convert('L')) < 128


def _iou(a, b): return (a & b).sum()/(a | b).sum()


def test_loader_layout_matches_images(omni1, strokes1, files):
    txt = sorted(strokes1.rglob('*.txt'))
    assert len(txt) == len(files) == 136*20
    assert all(ff.datasets.stroke_file(f, strokes1).is_file() for f in files[::50])


def test_download_from_local_server(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv('FEWSHOT_CACHE', str(tmp_path/'cache'))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(data_dir))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f'http://127.0.0.1:{srv.server_address[1]}/strokes_background_small2.zip'
        p = ff.datasets.omniglot_strokes('background_small2', data_dir=tmp_path/'empty', url=url)   # the md5 is checked
    finally: srv.shutdown()
    assert p.is_relative_to(tmp_path/'cache') and len(list(p.glob('*/*/*.txt'))) == 156*20
    with pytest.raises(ValueError, match="unknown Omniglot stroke set 'evaluation'"): ff.datasets.omniglot_strokes('evaluation')


def test_read_strokes_and_bad_file(strokes1, files, tmp_path):
    st = ff.datasets.read_strokes(ff.datasets.stroke_file(files[0], strokes1))
    assert st and all(s.ndim == 2 and s.shape[1] == 2 for s in st)
    allp = np.concatenate(st)
    assert allp.min() > -1 and allp.max() < 106   # image coordinates, y downwards
    bad = tmp_path/'bad.txt'; bad.write_text('START\n1,2,3\noops\n')
    with pytest.raises(ValueError, match="bad.txt: not a stroke line: 'oops'"): ff.datasets.read_strokes(bad)


def test_rendering_reproduces_the_pngs(strokes1, files):
    "At 105 px the rendered strokes cover the same pixels as the PNG of that drawing"
    sample = files[::91][:30]
    ious = [_iou(_ink(Image.open(f)), _ink(ff.datasets.render_strokes(ff.datasets.read_strokes(ff.datasets.stroke_file(f, strokes1))))) for f in sample]
    assert np.mean(ious) > 0.85 and min(ious) > 0.6, (np.mean(ious), min(ious))
    # any size: same drawing, scaled
    small = ff.datasets.render_strokes(ff.datasets.read_strokes(ff.datasets.stroke_file(sample[0], strokes1)), size=28)
    assert small.size == (28, 28) and 0 < _ink(small).sum() < 28*28/2


def _feat(im):
    "Blurred ink, centred and normalised: nearest neighbours by correlation tolerate a few pixels of shift"
    from PIL import ImageFilter
    a = 255 - np.array(im.convert('L').filter(ImageFilter.GaussianBlur(3)), dtype=np.float64)
    a -= a.mean()
    return a/np.linalg.norm(a)


def test_perturbed_drawings_stay_the_same_character(strokes1, files):
    """A re-drawing differs from the original and stays on the canvas, yet is recognised as its character (nearest of
    20 by blurred-ink correlation) at least as often as another person's drawing of it is (measured: 15-18 vs 6-7)"""
    rng = random.Random(0)
    chars = [i*20 for i in range(0, 136, 7)]   # 20 characters, first drawer
    refs = [_feat(Image.open(files[i])) for i in chars]
    nearest = lambda im: int(np.argmax([(_feat(im)*r).sum() for r in refs]))
    hits = human = 0
    for k, i in enumerate(chars):
        st = ff.datasets.read_strokes(ff.datasets.stroke_file(files[i], strokes1))
        new = ff.datasets.perturb_strokes(st, rng)
        allp = np.concatenate(new)
        assert allp.min() >= 0 and allp.max() <= 105
        im = ff.datasets.render_strokes(new)
        assert _iou(_ink(im), _ink(Image.open(files[i]))) < 0.95   # a new image
        hits += nearest(im) == k
        human += nearest(Image.open(files[i + 1])) == k             # drawer 2's PNG of the same character
    assert hits >= max(12, human), (hits, human)
    st = ff.datasets.read_strokes(ff.datasets.stroke_file(files[0], strokes1))       # reproducible from the generator's seed
    a, b = ff.datasets.perturb_strokes(st, random.Random(3)), ff.datasets.perturb_strokes(st, random.Random(3))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_stroke_images_mix_and_compounds(strokes1, files):
    fs = files[:40]   # 2 characters x 20 drawers
    plain = ff.datasets.StrokeImages(fs, strokes1, p=0.)
    assert np.array_equal(np.array(plain[3]), np.array(Image.open(fs[3]).convert('L')))
    drawn = ff.datasets.StrokeImages(fs, strokes1, p=1., seed=0)
    a, b = np.array(drawn[3]), np.array(drawn[3])
    assert not np.array_equal(a, b)              # a new drawing at every access
    comp = ff.datasets.StrokeImages(fs, strokes1, p=0., compounds=[(0, 20)])
    assert len(comp) == 41
    union = np.minimum(np.array(Image.open(fs[0]).convert('L')), np.array(Image.open(fs[20]).convert('L')))
    assert np.array_equal(np.array(comp[40]), union)
    assert np.array_equal(np.array(comp.originals[40]), union)
    with pytest.raises(ValueError, match='p > 0 needs `strokes_dir`'): ff.datasets.StrokeImages(fs, None, p=0.5)


def test_with_strokes_classes_and_episode_loaders(omni1, strokes1):
    cf = ff.ClassFolder(omni1)
    tr = ff.datasets.with_strokes(cf, strokes1, p=0.5, n_compounds=30, seed=0)
    assert len(tr.classes) == 136 + 30 and len(tr.labels) == len(tr.files) == len(tr.images)
    new = tr.classes[136:]
    assert all('+' in c for c in new)
    for c in new[:5]:   # a compound joins two characters of one alphabet, drawer by drawer
        a, b = c.split('+')
        assert ff.datasets.alphabet_of(a) == a.split('/')[0] and (omni1/a.split('/')[0]/b).is_dir()
        drawers = [ff.datasets.drawer_of(tr.files[i]) for i, l in enumerate(tr.labels) if tr.classes[l] == c]
        assert len(drawers) == len(set(drawers)) >= 2
    hold = ff.data.class_split(cf.classes, 0.1, 0)
    kw = dict(size=28, img_cls=PILImageBW, valid_classes=hold, n_way=10, n_query=2, valid_n_way=5, episodes_per_epoch=3,
              valid_episodes=4, seed=0, device='cpu')
    dls = ff.EpisodeDataLoaders.from_class_folder(tr, **kw)
    ref = ff.EpisodeDataLoaders.from_class_folder(cf, **kw)
    # validation never sees re-drawn images: the same fixed episodes as without strokes
    for (x, sl, ql), (xr, slr, qlr) in zip(dls.valid, ref.valid):
        assert torch.equal(x, xr) and torch.equal(ql, qlr)
    x, sl, ql = dls.one_batch()
    assert x.shape == (10*3, 1, 28, 28)
    with pytest.raises(ValueError, match='only .* pairs of characters'): ff.datasets.with_strokes(cf, strokes1, n_compounds=10**6)


def test_with_strokes_compounds_only_is_eager_and_unions(omni1):
    cf = ff.ClassFolder(omni1)
    tr = ff.datasets.with_strokes(cf, None, p=0, n_compounds=5, seed=0)
    assert isinstance(tr.images, list) and not tr.lazy and len(tr.images) == len(tr.files) == len(tr.labels)
    comp = tr.classes[len(cf.classes)]
    a, b = comp.split('+')
    b = f'{a.split("/")[0]}/{b}'
    i = tr.labels.index(len(cf.classes))   # first drawing of the first compound class
    d = ff.datasets.drawer_of(tr.files[i])
    ia = next(k for k, f in enumerate(cf.files) if cf.classes[cf.labels[k]] == a and ff.datasets.drawer_of(f) == d)
    ib = next(k for k, f in enumerate(cf.files) if cf.classes[cf.labels[k]] == b and ff.datasets.drawer_of(f) == d)
    union = np.minimum(np.array(cf.images[ia].convert('L')), np.array(cf.images[ib].convert('L')))
    assert np.array_equal(np.array(tr.images[i]), union)


def test_redrawn_episodes_in_a_worker(omni1, strokes1):
    "Training episodes drawn in a DataLoader worker process (drawing beside training)"
    cf = ff.ClassFolder(omni1).subset(lambda c: c.startswith('Latin'))
    tr = ff.datasets.with_strokes(cf, strokes1, p=1.0, seed=0)
    dls = ff.EpisodeDataLoaders.from_class_folder(tr, size=28, img_cls=PILImageBW, valid_pct=0.2, n_way=5, n_query=1,
                                                  valid_n_way=3, episodes_per_epoch=2, valid_episodes=1, device='cpu',
                                                  num_workers=1)
    batches = [b for _ in range(2) for b in dls.train]
    assert len(batches) == 4 and all(x.shape == (10, 1, 28, 28) for x, _, _ in batches)
    assert not torch.equal(batches[0][0], batches[2][0])
