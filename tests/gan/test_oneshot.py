"""One-shot generation (DAGAN) on the real Omniglot images: the generator's drawings depend on their source, the loader
pairs two drawings of one class, the learner trains on fastai's GAN loop, `generate_like` draws new images, and the
bench's recognisability of real drawings is the classifier's one-shot accuracy."""
import torch
import pytest
from fastai.vision.all import PILImageBW, set_seed
import fewshot_fastai as ff

@pytest.fixture(scope='module')
def dls(omni_small):
    return ff.OneShotDataLoaders.from_folder(omni_small, invert=True, bs=16, n_valid=16)

def test_generator_output_depends_on_its_source_and_noise(dls):
    set_seed(0)
    g = ff.gan.OneShotGenerator(32, 1, z_dim=8, nf=8).eval()
    src, _ = dls.one_batch()
    src = src[:2].as_subclass(torch.Tensor)
    z = torch.randn(1, 8).expand(2, -1)
    with torch.no_grad():
        a = g.draw(src, z)
        b = g.draw(src.flip(0), z)                           # the same noise, the sources swapped
        c = g.draw(src, torch.randn(2, 8))                   # the same sources, other noise
    assert a.shape == (2, 1, 32, 32) and a.min() >= -1 and a.max() <= 1
    assert torch.allclose(a, b.flip(0), atol=1e-6) and not torch.allclose(a[0], a[1], atol=1e-3)
    assert not torch.allclose(a, c, atol=1e-3)
    with torch.no_grad(): pair = g(src)
    assert pair.shape == (2, 2, 32, 32) and torch.equal(pair[:, :1], src)   # (source, drawn): what the critic judges

def test_pairs_are_two_drawings_of_one_class(dls):
    ds, cf = dls.train.dataset, dls.class_folder
    for i in range(0, len(ds), 97):
        src, pair = ds[i]
        assert torch.equal(pair[:1], src)
        j = [k for k in ds.others[i] if torch.equal(ds.x[k], pair[1:])]
        assert j and all(cf.labels[k] == cf.labels[i] and k != i for k in j)
    v = dls.valid.dataset
    assert all(torch.equal(v[k][1], v[k][1]) for k in range(len(v)))             # validation: fixed partners
    assert any(not torch.equal(ds[k][1], ds[k][1]) for k in range(50))           # training: fresh ones
    with pytest.raises(ValueError, match='alone in their class'): ff.gan.OneShotPairs(ds.x[:3], [0, 0, 1])

def test_learner_trains_and_generates_like_its_source(dls):
    set_seed(0)
    learn = ff.oneshot_learner(dls, nf=8)
    assert isinstance(learn.model.critic, ff.gan.DiffAugment) and learn.model.critic.critic[0].weight.shape[1] == 2
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    gen_loss, crit_loss = learn.recorder.values[-1][:2]
    assert all(map(torch.isfinite, map(torch.tensor, (gen_loss, crit_loss))))
    assert any(not torch.equal(p, q) for p, q in zip(learn.gen_ema.parameters(), learn.model.generator.parameters()))
    src = dls.class_folder.files[0]
    ims = ff.generate_like(learn, src, n=4, seed=1)
    assert len(ims) == 4 and all(im.size == (32, 32) and im.mode == 'L' for im in ims)
    again = ff.generate_like(learn, src, n=4, seed=1)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(ims, again))          # the seed fixes them
    assert len({im.tobytes() for im in ims}) == 4                                # four different drawings
    other = ff.generate_like(learn, dls.class_folder.files[100], n=4, seed=1)
    assert any(a.tobytes() != b.tobytes() for a, b in zip(ims, other))         # another source, other drawings
    with pytest.raises(ValueError, match='not a one-shot generator'): ff.generate_like(ff.gan_learner(ff.GANDataLoaders.from_folder(dls.class_folder.root, bs=16)), src)

def test_recognisability_of_real_drawings_is_the_one_shot_accuracy(omni_small):
    "The bench's figure for real drawings equals `episode_accuracy` on the same trials (another code path)"
    set_seed(0)
    cf = ff.ClassFolder(omni_small)
    dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0, n_way=5, n_query=1, episodes_per_epoch=1)
    learn = ff.episodic_learner(dls, 'conv4')
    trials = ff.evaluate.oneshot_trials(cf, n_way=4, n_trials=12, n_real=2, seed=3)
    assert all(len(t.support) == 4 and t.label in t.support and t.support[t.label] == [t.source] and t.source not in t.real
               and len(t.real) == 2 for t in trials)
    rec = ff.evaluate.recognisability(learn, trials)
    images, eps = [], []
    for t in trials:
        classes = sorted(t.support)
        sup = list(range(len(images), len(images) + len(classes))); images += [t.support[c][0] for c in classes]
        qry = list(range(len(images), len(images) + len(t.real))); images += t.real
        eps.append(ff.data.Episode(classes, sup, list(range(len(classes))), qry, [classes.index(t.label)]*len(t.real)))
    acc = ff.episode_accuracy(learn, images, eps)['accuracy']
    assert rec == pytest.approx(acc, abs=1e-9) and 0 < rec < 1
    # and the same as ff.classify asked trial by trial (one support set at a time: another code path)
    right = sum(l == t.label for t in trials for l in ff.classify(learn, t.real, t.support, progress=False)[0])
    assert rec == pytest.approx(right/sum(len(t.real) for t in trials), abs=1e-9)
    # generated candidates that are the support image itself are always recognised; diversity of copies is 0
    assert ff.evaluate.recognisability(learn, trials, [[t.source]*2 for t in trials]) == 1.0
    assert ff.evaluate.diversity(learn, [[t.source]*3 for t in trials[:3]]) == pytest.approx(0, abs=1e-5)
    assert ff.evaluate.diversity(learn, [t.real + [t.source] for t in trials[:3]]) > 0

def test_source_consistency_adds_the_pooled_l1_in_generator_steps_only(dls):
    from types import SimpleNamespace as NS
    src, pair = dls.one_batch()
    pair = pair.as_subclass(torch.Tensor)
    cb = ff.gan.SourceConsistency(weight=3., pool=4)
    for gen_mode in (True, False):
        learn = NS(training=True, gan_trainer=NS(gen_mode=gen_mode), pred=pair, loss_grad=torch.tensor(0.5), loss=None)
        cb.learn = learn
        cb.after_loss()
        a, b = (torch.nn.functional.avg_pool2d(t, 4) for t in (pair[:, :1], pair[:, 1:]))
        want = 0.5 + 3*(b - a).abs().mean() if gen_mode else torch.tensor(0.5)
        assert torch.allclose(learn.loss_grad, want) and (learn.loss is None) == (not gen_mode)
    learn = ff.oneshot_learner(dls, nf=8, consistency=2.)
    assert any(isinstance(c, ff.gan.SourceConsistency) and c.weight == 2. for c in learn.cbs)

def test_mode_seeking_penalises_a_generator_that_ignores_its_noise(dls):
    from types import SimpleNamespace as NS
    src, _ = dls.one_batch()
    src = src.as_subclass(torch.Tensor)[:4]
    set_seed(0)
    g = ff.gan.OneShotGenerator(32, 1, z_dim=8, nf=8)
    cb = ff.gan.ModeSeeking(weight=1.)
    def term(gen):
        learn = NS(training=True, gan_trainer=NS(gen_mode=True), pred=torch.cat([src, src], 1), loss_grad=torch.tensor(0.),
                   loss=None, model=NS(generator=gen))
        cb.learn = learn; cb.after_loss()
        return float(learn.loss_grad)
    torch.manual_seed(1); with_noise = term(g)
    torch.manual_seed(1)
    z1, z2 = torch.randn(4, 8), torch.randn(4, 8)
    a, b = g.draw(src, z1), g.draw(src, z2)
    want = 1/((a - b).abs().mean((1, 2, 3))/(z1 - z2).abs().mean(1)).mean()
    assert with_noise == pytest.approx(float(want), rel=1e-4)
    with torch.no_grad():   # a generator whose noise projections are zero draws the same image whatever the noise
        for lin in (g.z_low, g.z_mid): lin.weight.zero_(); lin.bias.zero_()
    assert term(g) > 1000*with_noise

def test_warp_generator_bends_its_source(dls):
    set_seed(0)
    g = ff.gan.WarpGenerator(32, 1, z_dim=8, nf=8, max_shift=0.25).eval()
    src, _ = dls.one_batch()
    src = src[:3].as_subclass(torch.Tensor)
    with torch.no_grad():
        assert torch.allclose(g.draw(src), src, atol=1e-5)               # a zero field at the start: the source itself
        # a constant field of 2 px to the right of the sampling point: the drawing moves 2 px left, background enters
        g.coarse.bias.copy_(torch.tensor([torch.atanh(torch.tensor(0.25)).item(), 0.]))   # 2*0.25*tanh(b) = 4/32
        out = g.draw(src)
    assert torch.allclose(out[..., :-2], src[..., 2:], atol=1e-4) and torch.allclose(out[..., -1], torch.tensor(-1.))
    with torch.no_grad():
        for head in (g.coarse, g.fine): torch.nn.init.normal_(head.weight, std=0.05)
        z = torch.randn(1, 8).expand(3, -1)
        a, b, c = g.draw(src, z), g.draw(src.flip(0), z), g.draw(src, torch.randn(3, 8))
    assert a.min() >= -1 and a.max() <= 1
    assert torch.allclose(a, b.flip(0), atol=1e-5) and not torch.allclose(a, c, atol=1e-3)   # source and noise both matter
    assert (a - src).abs().mean() > 0.01
    with pytest.raises(ValueError, match='max_shift'): ff.gan.WarpGenerator(max_shift=0)

def test_warp_learner_trains_and_draws(dls):
    set_seed(0)
    learn = ff.oneshot_learner(dls, nf=8, generator='warp', consistency=0)
    assert isinstance(learn.model.generator, ff.gan.WarpGenerator) and learn.generator_config.generator == 'warp'
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    src = dls.class_folder.files[0]
    ims = ff.generate_like(learn, src, n=3, seed=1)
    assert len(ims) == 3 and all(im.size == (32, 32) for im in ims) and len({im.tobytes() for im in ims}) == 3
    with pytest.raises(ValueError, match="generator='gan'"): ff.oneshot_learner(dls, generator='gan')
