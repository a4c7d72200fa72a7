"Lazy ClassFolder: same batches as the eager one for the same seed, workers under every start method, errors naming the file"
import multiprocessing as mp
import shutil
import pytest
import torch
from fastai.vision.all import Resize, PILImageBW, set_seed
import fewshot_fastai as ff

def test_automatic_choice_from_headers(omni_small):
    eager = ff.ClassFolder(omni_small)
    assert not eager.lazy and isinstance(eager.images, list)
    est = ff.data.decoded_bytes(eager.files)
    assert est == len(eager)*105*105        # Omniglot: 105x105, 1 byte per pixel ('1' mode is one band)
    lazy = ff.ClassFolder(omni_small, max_bytes=est - 1)
    assert lazy.lazy and isinstance(lazy.images, ff.data.LazyImages) and lazy.files == eager.files
    assert ff.ClassFolder(omni_small, lazy=True).lazy and not ff.ClassFolder(omni_small, lazy=False, max_bytes=1).lazy
    sub = lazy.subset(lambda c: c == lazy.classes[0])
    assert isinstance(sub.images, ff.data.LazyImages) and len(sub.images) == 20

def _pairs(cf, seed):
    set_seed(seed)   # before building: each fastai DataLoader seeds its own shuffling rng when it is made
    dls = ff.SiameseDataLoaders.from_class_folder(cf, valid_pct=0.25, seed=0, item_tfms=Resize(28), bs=16,
                                                  img_cls=PILImageBW, num_workers=0)
    return dls.one_batch(), next(iter(dls.valid))

def test_lazy_pairs_equal_eager(omni_small):
    (ta, tb, ty), (va, vb, vy) = _pairs(ff.ClassFolder(omni_small), 3)
    (la, lb, ly), (wa, wb, wy) = _pairs(ff.ClassFolder(omni_small, lazy=True), 3)
    for e, l in [(ta, la), (tb, lb), (ty, ly), (va, wa), (vb, wb), (vy, wy)]: assert torch.equal(e, l)

def _episodes(cf, seed, **kw):
    set_seed(seed)
    dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0.25, n_way=5, n_query=2,
                                                  episodes_per_epoch=4, valid_episodes=3, rotations=4, **kw)
    return dls, [b for b in dls.train], [b for b in dls.valid]

def test_lazy_episodes_equal_eager(omni_small):
    _, tr_e, va_e = _episodes(ff.ClassFolder(omni_small), 5)
    dls, tr_l, va_l = _episodes(ff.ClassFolder(omni_small, lazy=True), 5)
    assert isinstance(dls.train.dataset.x, ff.data.LazyImageTensor)
    for be, bl in zip(tr_e + va_e, tr_l + va_l):
        assert all(torch.equal(a, b) for a, b in zip(be, bl))
    # N-way evaluation on a lazy gallery gives the eager answer
    learn = ff.episodic_learner(dls, 'conv4')
    cf, lz = ff.ClassFolder(omni_small), ff.ClassFolder(omni_small, lazy=True)
    eps = ff.data.EpisodeSampler(cf.labels, n_way=5, k_shot=1, n_query=1, n_episodes=5, seed=0).episodes()
    assert ff.episode_accuracy(learn, cf.images, eps) | {'seconds': 0} == ff.episode_accuracy(learn, lz.images, eps) | {'seconds': 0}

def test_lazy_gan_data_equal_eager(omni1):
    e = ff.gan.gan_images(omni1, 32, invert=True, max_images=40)
    l = ff.gan.gan_images(omni1, 32, invert=True, max_images=40, lazy=True)
    assert isinstance(l, ff.data.LazyImageTensor) and torch.equal(e, l[:])
    dls = ff.GANDataLoaders.from_folder(omni1, size=32, invert=True, max_images=64, bs=32, lazy=True)
    assert dls.one_batch()[1].shape == (32, 1, 32, 32)

@pytest.mark.parametrize('method,lazy', [('fork', True), ('spawn', True), ('forkserver', True), ('spawn', False)])
def test_workers_under_every_start_method(omni_small, method, lazy):
    "2 DataLoader workers started with `method` (lazy: they decode the images); the sampler travels with its data"
    cf = ff.ClassFolder(omni_small, lazy=lazy)
    dls = ff.SiameseDataLoaders.from_class_folder(cf, valid_pct=0.25, seed=0, item_tfms=Resize(28), bs=16,
                                                  img_cls=PILImageBW, num_workers=2,
                                                  multiprocessing_context=mp.get_context(method))
    ref = ff.SiameseDataLoaders.from_class_folder(cf, valid_pct=0.25, seed=0, item_tfms=Resize(28), bs=16,
                                                  img_cls=PILImageBW, num_workers=0)
    got, want = [b for b in dls.valid], [b for b in ref.valid]
    assert len(got) == len(want) and all(torch.equal(a, b) for g, w in zip(got, want) for a, b in zip(g, w))

def test_corrupt_file_named_at_first_use_or_verify(omni_small, tmp_path):
    root = shutil.copytree(omni_small, tmp_path/'omni')
    bad = sorted(root.rglob('*.png'))[5]
    bad.write_bytes(b'not a png at all')
    with pytest.raises(ValueError, match=str(bad.name)): ff.ClassFolder(root)              # eager: at once
    cf = ff.ClassFolder(root, lazy=True)                                                  # lazy: listing only
    with pytest.raises(ValueError, match=f'{bad.name}: not a readable image'): cf.verify()
    with pytest.raises(ValueError, match=bad.name): cf.images[cf.files.index(bad)]
    with pytest.raises(ValueError, match=bad.name): ff.data.decoded_bytes([bad])

def test_rotations_and_mirror_images_as_classes(omni_small):
    """rotations=8: each training character gives 8 classes, its 4 rotations and their mirror images, the same in the
    eager and the lazy path; every view of an (asymmetric) drawing differs from the other 7"""
    from fewshot_fastai.data.episode_loaders import _split
    cf, lz = ff.ClassFolder(omni_small), ff.ClassFolder(omni_small, lazy=True)
    held, xt, yt, _, _, names = _split(cf, 28, PILImageBW, 8, 0.25, 0, None)
    _, lt, lyt, _, _, _ = _split(lz, 28, PILImageBW, 8, 0.25, 0, None)
    n = len(xt)//8
    assert len(xt) == len(lt) == 8*n and yt == lyt and len(set(yt)) == 8*(len(cf.classes) - len(held))
    assert torch.equal(xt[:], lt[:])
    img = xt[0]
    assert torch.equal(xt[n], img.rot90(1, (-2, -1))) and torch.equal(xt[4*n], img.flip(-1))
    assert torch.equal(xt[6*n], img.flip(-1).rot90(2, (-2, -1))) and torch.equal(xt[6*n], img.flip(-2))
    assert len({xt[k*n].numpy().tobytes() for k in range(8)}) == 8
    assert {names[yt[k*n]].rsplit('@', 1)[1] for k in range(8)} == {'0', '90', '180', '270', 'm0', 'm90', 'm180', 'm270'}
    set_seed(0)
    dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0.25, n_way=5, n_query=2,
                                                  episodes_per_epoch=4, valid_episodes=3, rotations=8)
    assert dls.one_batch()[0].shape == (15, 1, 28, 28)
