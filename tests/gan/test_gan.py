"DCGAN / WGAN loops on fastai's GANLearner, on real Omniglot and ORL images: phases, clipping, NaN stop, metric"
from copy import deepcopy
from functools import partial
import warnings
import pytest
import torch
from fastai.callback.core import Callback
import fewshot_fastai as ff

@pytest.fixture(scope='module')
def omni_gan(omni1):
    "256 real Omniglot characters, inverted (bright ink) at 32 px, batches of 32: 8 steps per epoch"
    return ff.GANDataLoaders.from_folder(omni1, size=32, invert=True, max_images=256, bs=32)

def _nets(seed=0):
    torch.manual_seed(seed)
    return ff.gan.dcgan_generator(32, 1, nf=16), ff.gan.dcgan_critic(32, 1, nf=16)

class PhaseLog(Callback):
    "Per training step: which model was trained, and which parameters changed"
    order = 100
    def before_fit(self): self.log = []
    def before_batch(self):
        if not self.training: return
        m = self.learn.model
        self.phase = self.learn.gan_trainer.gen_mode
        self.before = [p.detach().clone() for p in m.generator.parameters()], [p.detach().clone() for p in m.critic.parameters()]
    def after_batch(self):
        if not self.training: return
        m = self.learn.model
        g = any(not torch.equal(a, b) for a, b in zip(self.before[0], m.generator.parameters()))
        c = any(not torch.equal(a, b) for a, b in zip(self.before[1], m.critic.parameters()))
        self.log.append(("G" if self.phase else 'C', g, c))

def test_data_inverted_and_normalised(omni1, orl):
    dls = ff.GANDataLoaders.from_folder(omni1, size=32, invert=True, max_images=128, bs=32)
    z, x = dls.one_batch()
    assert z.shape == (32, 100) and x.shape == (32, 1, 32, 32)
    assert x.min() >= -1 and x.max() <= 1 and x.mean() < -0.5          # inverted: mostly dark background
    plain = ff.GANDataLoaders.from_folder(omni1, size=32, max_images=128, bs=32).one_batch()[1]
    assert plain.mean() > 0.5
    faces = ff.GANDataLoaders.from_folder(orl, size=64, bs=16).one_batch()[1]
    assert faces.shape == (16, 1, 64, 64) and -1 <= faces.min() < faces.max() <= 1
    with pytest.raises(FileNotFoundError, match='no-such'): ff.GANDataLoaders.from_folder(omni1/'no-such')
    with pytest.raises(ValueError, match='fewer than one batch'): ff.GANDataLoaders.from_folder(omni1, max_images=8, bs=32)
    with pytest.raises(ValueError, match='size=48'): ff.gan.dcgan_generator(48)
    # RGB and 64 px nets: shapes and ranges
    g, c = ff.gan.dcgan_generator(64, 3, nf=8), ff.gan.dcgan_critic(64, 3, nf=8)
    fake = g(torch.randn(2, 100))
    assert fake.shape == (2, 3, 64, 64) and fake.abs().max() <= 1 and c(fake).shape == (2, 1)
    rgb = ff.GANDataLoaders.from_folder(orl, size=64, n_in=3, bs=16).one_batch()[1]
    assert rgb.shape == (16, 3, 64, 64)

@pytest.mark.parametrize('kind', ['dcgan', 'wgan'])
def test_only_the_phase_model_changes(omni_gan, kind):
    gen, crit = _nets()
    make = ff.dcgan_learner if kind == 'dcgan' else partial(ff.wgan_learner, n_critic=2)
    log = PhaseLog()
    learn = make(omni_gan, gen, crit, cbs=log)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert {p for p, _, _ in log.log} == {'C', 'G'}
    for phase, g_changed, c_changed in log.log:
        assert (g_changed, c_changed) == ((True, False) if phase == 'G' else (False, True)), log.log

@pytest.mark.parametrize('gen_first', [True, False])
def test_phases_follow_gen_first_and_n_critic_across_epochs(omni_gan, gen_first):
    gen, crit = _nets()
    log = PhaseLog()
    learn = ff.wgan_learner(omni_gan, gen, crit, n_critic=2, gen_first=gen_first, cbs=log)
    with learn.no_bar(), learn.no_logging(): learn.fit(2)
    seq = ''.join(p for p, _, _ in log.log)
    cycle = 'GCC' if gen_first else 'CCG'
    assert len(seq) == 16 and seq == (cycle*6)[:16], seq        # 8 steps per epoch; the rhythm crosses the epoch

class Wasserstein(Callback):
    "E[f(real)] - E[f(fake)] of each critic step's batch, computed afresh with the weights that step used"
    order = 100
    def before_fit(self): self.w = []
    def after_loss(self):
        if not self.training or self.learn.gan_trainer.gen_mode: return
        # copies, so that BatchNorm's running statistics and autograd's saved tensors stay untouched
        crit, gen = deepcopy(self.learn.model.critic), deepcopy(self.learn.model.generator)
        with torch.no_grad():
            real, noise = self.learn.xb[0], self.learn.yb[0]   # GANTrainer swaps them in critic steps
            self.w.append((crit(real).mean() - crit(gen(noise)).mean()).item())

def test_wgan_clipping_and_wasserstein_column(omni_gan):
    gen, crit = _nets()
    rec = Wasserstein()
    learn = ff.wgan_learner(omni_gan, gen, crit, clip=0.01, cbs=rec)
    with learn.no_bar(), learn.no_logging(): learn.fit(2)
    assert max(p.abs().max().item() for p in learn.model.critic.parameters()) <= 0.01 + 1e-7
    assert learn.recorder.metric_names[3:6] == ['gen_loss', 'crit_loss', 'wasserstein']
    # the wasserstein column is E[f(real)] - E[f(fake)], recomputed here from the critic and generator at each critic step
    assert len(rec.w) == len(learn.gan_stats.steps['w']) == 14
    assert rec.w == pytest.approx(learn.gan_stats.steps['w'], abs=1e-5)
    assert [row[4] for row in learn.recorder.values] == pytest.approx([sum(rec.w[:7])/7, sum(rec.w[7:])/7], abs=1e-5)
    st = learn.gan_stats.steps
    assert (len(st['crit']), len(st['gen'])) == (14, 2)          # CCCCCG CCCCCG CCCC over 2 x 8 steps

class PoisonCritic(Callback):
    "Makes the critic's weights NaN at training step 3"
    order = 100
    def before_batch(self):
        if self.training and self.learn.iter == 3:
            with torch.no_grad():
                for p in self.learn.model.critic.parameters(): p.fill_(float('nan'))

def test_nan_stops_cleanly(omni_gan):
    gen, crit = _nets()
    learn = ff.dcgan_learner(omni_gan, gen, crit, cbs=PoisonCritic())
    with warnings.catch_warnings(record=True) as w, learn.no_bar(), learn.no_logging():
        warnings.simplefilter('always')
        learn.fit(3)                                            # returns; no exception
    assert learn.gan_stopped and 'loss is nan at epoch 0, step 3' in learn.gan_stopped
    assert any(issubclass(x.category, RuntimeWarning) and 'GAN training stopped' in str(x.message) for x in w)
    assert learn.recorder.values == []                          # stopped inside the first epoch

def test_frechet_distance(omni1):
    feats = ff.gan.lite0_features(size=32)
    real = ff.gan.gan_images(omni1, 32, invert=True, max_images=200).float()/127.5 - 1
    f = feats(real)
    assert f.shape == (200, 1280)
    scale = ff.gan.frechet_distance(f[:100], f[100:])
    assert scale > 0
    assert abs(ff.gan.frechet_distance(f, f)) < 1e-6*scale*100 and abs(ff.gan.frechet_distance(f, f[torch.randperm(200)])) < 1e-3
    noise = feats(torch.rand(200, 1, 32, 32)*2 - 1)
    assert ff.gan.frechet_distance(f, noise) > 3*scale
    assert ff.gan.frechet_distance(f, noise) == pytest.approx(ff.gan.frechet_distance(noise, f), rel=1e-6)
    with pytest.raises(ValueError, match='features'): ff.gan.frechet_distance(f, f[:, :10])

def test_samples_frechet_checkpoint_resume(omni_gan, tmp_path):
    gen, crit = _nets()
    smp, fr = ff.GANSamples(n=16, nrow=4), ff.GANFrechet(ff.gan.lite0_features(32), n=64)
    learn = ff.dcgan_learner(omni_gan, gen, crit, cbs=[smp, fr, ff.GANCheckpoint('ck')], path=tmp_path)
    with learn.no_bar(), learn.no_logging(): learn.fit(2)
    assert [p.name for p in smp.saved] == ['samples_epoch001.png', 'samples_epoch002.png']
    assert smp.grids[2].shape[0] == 3 and not torch.equal(smp.grids[1], smp.grids[2])
    assert [e for e, _ in fr.history] == [0, 1, 2]
    # the last value, recomputed from the final generator on the fixed noise and an independent read of the real images
    x = omni_gan.train.dataset.x
    real = fr.features(x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:64]].float()/127.5 - 1)
    fake = fr.features(ff.generate(learn.model.generator, torch.randn(64, 100, generator=torch.Generator().manual_seed(1))))
    assert fr.history[-1][1] == pytest.approx(ff.gan.frechet_distance(real, fake), rel=1e-4)
    # generated images are farther from the real ones than real images from other real images
    other = fr.features(x[torch.randperm(len(x), generator=torch.Generator().manual_seed(5))[:64]].float()/127.5 - 1)
    assert all(d > ff.gan.frechet_distance(real, other) for _, d in fr.history)
    assert learn.recorder.metric_names[-2] == 'frechet' and learn.recorder.values[-1][-1] == fr.history[-1][1]
    fig = ff.gan.plot_gan_losses(learn, fr)
    assert len(fig.axes) == 2
    # resume into a fresh learner: same weights, optimizer state and phase; training goes on from epoch 2
    gen2, crit2 = _nets(seed=1)
    smp2 = ff.GANSamples(n=16, nrow=4)
    again = ff.dcgan_learner(omni_gan, gen2, crit2, cbs=smp2, path=tmp_path)
    assert ff.resume_gan(again, 'ck') == 2
    assert all(torch.equal(a, b) for a, b in zip(learn.model.parameters(), again.model.parameters()))
    s1, s2 = learn.opt.state_dict()['state'], again.opt.state_dict()['state']
    moments = [(a['grad_avg'], b['grad_avg']) for a, b in zip(s1, s2) if 'grad_avg' in a]
    assert moments and all(torch.equal(a, b) for a, b in moments)
    log = PhaseLog(); again.add_cb(log)
    with again.no_bar(), again.no_logging(): again.fit(1)
    assert [p.name for p in smp2.saved] == ['samples_epoch003.png'] and log.log[0][0] == 'C'
    with pytest.raises(FileNotFoundError, match='no GAN checkpoint'): ff.resume_gan(again, 'nope')

def test_old_channel_keyword_still_works_with_a_deprecation_warning(orl):
    "`n_channels` is now `n_in` (one word for channels): the old keyword answers alike for one release, and says so"
    import warnings
    new = ff.GANDataLoaders.from_folder(orl, size=32, n_in=3, bs=8, max_images=16).one_batch()[1]
    with pytest.warns(DeprecationWarning, match="'n_channels' is now 'n_in'"):
        old = ff.GANDataLoaders.from_folder(orl, size=32, n_channels=3, bs=8, max_images=16).one_batch()[1]
    assert old.shape == new.shape == (8, 3, 32, 32)
    with pytest.warns(DeprecationWarning): g = ff.gan.dcgan_generator(32, n_channels=3)
    assert g(torch.zeros(2, 100)).shape == (2, 3, 32, 32)
    with pytest.raises(TypeError, match="give 'n_in' only"): ff.gan.sn_critic(32, n_channels=1, n_in=1)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        ff.gan.sn_critic(32, n_in=1)   # the new name: no warning
