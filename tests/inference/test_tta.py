"Test-time augmentation by shifts (a package part usable by embed, episode_accuracy, NWayEval, classify) and the one-to-one assignment"
import itertools
import pytest
import torch
import fewshot_fastai as ff


def test_shift_views():
    x = torch.arange(2*1*5*5, dtype=torch.float).view(2, 1, 5, 5)
    v = ff.inference.shift_views(x, 1)
    assert len(v) == 5 and all(t.shape == x.shape for t in v)
    assert torch.equal(v[0], x)                               # the image itself
    assert torch.equal(v[1][..., 1:], x[..., :-1])            # content moved right by one pixel
    assert torch.equal(v[1][..., 0], x[..., 0])               # edge replicated
    assert torch.equal(v[3][..., 1:, :], x[..., :-1, :])      # moved down


def test_embed_tta_is_the_mean_over_views(omni_dls, omni_small):
    learn = ff.siamese_learner(omni_dls, ff.models.conv4, head='contrastive')
    imgs = sorted(omni_small.rglob('*.png'))[:3]
    e0, e2 = ff.embed(learn, imgs), ff.embed(learn, imgs, tta=2)
    x = ff.inference.image_batch(learn.dls, imgs).as_subclass(torch.Tensor).to(ff.inference.model_device(learn.model))
    with torch.no_grad(): manual = torch.stack([learn.model.encode(v) for v in ff.inference.shift_views(x, 2)]).mean(0)
    assert torch.allclose(e2, manual, atol=1e-5) and not torch.allclose(e0, e2, atol=1e-4)
    assert torch.allclose(e0, learn.model.encode(x).detach(), atol=1e-5)


def test_flip_views_and_callable_tta(omni_dls, omni_small):
    x = torch.arange(2*1*4*5, dtype=torch.float).view(2, 1, 4, 5)
    v = ff.inference.flip_views(x)
    assert len(v) == 2 and torch.equal(v[0], x) and torch.equal(v[1][..., 0], x[..., -1])   # mirrored left-right
    v2 = ff.inference.flip_views(x, px=1)
    assert len(v2) == 10 and torch.equal(v2[5], x.flip(-1)) and torch.equal(v2[6][..., 1:], x.flip(-1)[..., :-1])
    learn = ff.siamese_learner(omni_dls, ff.models.conv4, head='contrastive')
    imgs = sorted(omni_small.rglob('*.png'))[:3]
    x = ff.inference.image_batch(learn.dls, imgs).as_subclass(torch.Tensor).to(ff.inference.model_device(learn.model))
    learn.model.eval()
    with torch.no_grad(): manual = (learn.model.encode(x) + learn.model.encode(x.flip(-1)))/2
    assert torch.allclose(ff.embed(learn, imgs, tta=ff.inference.flip_views), manual, atol=1e-5)
    with pytest.raises(ValueError, match='tta'): ff.embed(learn, imgs, tta=-2)
    ss = ff.SupportSet(learn, {'a': imgs[:1], 'b': imgs[1:2]}, tta=ff.inference.flip_views)
    assert torch.allclose(ss.emb['a'][0], manual[0], atol=1e-5)

def test_tta_through_episode_accuracy_nway_and_classify(omni_dls, omni_small):
    learn = ff.siamese_learner(omni_dls, ff.models.conv4, head='contrastive')
    cf = ff.ClassFolder(omni_small)
    eps = ff.data.EpisodeSampler(cf.labels, 5, 1, 1, 6, seed=0).episodes()
    r = ff.episode_accuracy(learn, cf.images, eps, tta=2)
    cb = ff.NWayEval(cf.images, cf.labels, n_way=5, n_episodes=6, seed=0, tta=2)
    cb.learn = learn
    assert cb.evaluate() == r['accuracy']
    support = {c: [cf.files[cf.labels.index(i)]] for i, c in enumerate(cf.classes[:4])}
    queries = [cf.files[cf.labels.index(i) + 1] for i in range(4)]
    labels, scores = ff.classify(learn, queries, support, progress=False, tta=2)
    ss = ff.SupportSet(learn, support, tta=2)
    assert torch.allclose(scores, ss.scores(queries)) and list(labels) == list(ss.classify(queries)[0])
    with pytest.raises(ValueError, match='tta'): ff.SupportSet(learn, support, tta=-1)


def test_one_to_one_assignment():
    s = torch.tensor([[0.9, 0.8, 0.1], [0.95, 0.2, 0.3], [0.1, 0.7, 0.6]])
    assert s.argmax(1).tolist() == [0, 0, 1]                  # two queries pick class 0 on their own
    assert ff.evaluate.one_to_one(s).tolist() == [1, 0, 2]             # each class once, largest total score
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        r = torch.rand(5, 5, generator=g)
        best = max(itertools.permutations(range(5)), key=lambda p: sum(r[i, p[i]] for i in range(5)))
        assert ff.evaluate.one_to_one(r).tolist() == list(best)
    with pytest.raises(ValueError, match='queries <= classes'): ff.evaluate.one_to_one(torch.rand(4, 3))


def test_affine_views_rotate_and_zoom():
    x = torch.rand(3, 1, 8, 8)
    assert len(ff.inference.affine_views(x)) == 1 and torch.equal(ff.inference.affine_views(x)[0], x)   # no rotation, no zoom: the image
    v = ff.inference.affine_views(x, degrees=(0, 90), scales=(1., 2.), px=1)
    assert len(v) == 2*2*5 and all(t.shape == x.shape for t in v)
    assert torch.equal(v[0], x) and torch.equal(v[1][..., 1:], x[..., :-1])   # the first view's shifts come first
    r = ff.inference.affine_views(x, degrees=(90,))[0]   # a quarter turn maps pixel centres onto pixel centres
    assert torch.allclose(r, torch.rot90(x, 1, (-2, -1)), atol=1e-5)
    # a zoom by 2 doubles the distance of a dot from the centre of the image
    dot = torch.zeros(1, 1, 32, 32); dot[..., 18:20, 20:22] = 1.   # centre (18.5, 20.5); the image's is (15.5, 15.5)
    z = ff.inference.affine_views(dot, scales=(2.,))[0][0, 0]
    ys, xs = torch.meshgrid(torch.arange(32.), torch.arange(32.), indexing='ij')
    cy, cx = (z*ys).sum()/z.sum(), (z*xs).sum()/z.sum()
    assert abs(cy - (15.5 + 2*3)) < 0.3 and abs(cx - (15.5 + 2*5)) < 0.3
    with pytest.raises(ValueError, match='scales'): ff.inference.affine_views(x, scales=(0.,))
    with pytest.raises(ValueError, match='degrees'): ff.inference.affine_views(x, degrees=())


def test_affine_views_as_tta(omni_dls, omni_small):
    from functools import partial
    learn = ff.siamese_learner(omni_dls, ff.models.conv4, head='contrastive')
    imgs = sorted(omni_small.rglob('*.png'))[:3]
    x = ff.inference.image_batch(learn.dls, imgs).as_subclass(torch.Tensor).to(ff.inference.model_device(learn.model))
    learn.model.eval()
    tta = partial(ff.inference.affine_views, degrees=(-5, 0, 5), px=2)
    with torch.no_grad(): manual = torch.stack([learn.model.encode(v) for v in tta(x)]).mean(0)
    assert torch.allclose(ff.embed(learn, imgs, tta=tta), manual, atol=1e-5)
    assert not torch.allclose(ff.embed(learn, imgs, tta=2), manual, atol=1e-4)   # the rotated views count
