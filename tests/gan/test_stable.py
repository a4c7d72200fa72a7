"""GAN training for small data: hinge loss + spectral-norm critic, WGAN-GP's penalty, DiffAugment, the generator's
moving average, and `ff.gan_learner` training on real Omniglot images with checkpoint/resume"""
from types import SimpleNamespace
import pytest
import torch
from torch import nn
import fewshot_fastai as ff
from fewshot_fastai.gan.stable import hinge_losses, sn_critic, diff_augment, DiffAugment, GradientPenalty

def test_hinge_losses_follow_the_formula():
    g, c = hinge_losses()
    real, fake = torch.tensor([[2.], [0.5], [-1.]]), torch.tensor([[-2.], [0.], [1.5]])
    assert c(real, fake).item() == pytest.approx((0 + 0.5 + 2)/3 + (0 + 1 + 2.5)/3)
    assert g(fake, None, None).item() == pytest.approx(-(-2 + 0 + 1.5)/3)

def test_sn_critic_layers_are_spectrally_normalised():
    torch.manual_seed(0)
    crit = sn_critic(32, 1, nf=16)
    x = torch.randn(8, 1, 32, 32)
    for _ in range(30): crit(x)   # power iterations converge in training mode
    convs = [m for m in crit.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and crit(x).shape == (8, 1)
    sig = [torch.linalg.matrix_norm(m.weight.flatten(1), 2).item() for m in convs]
    assert all(abs(s - 1) < 0.05 for s in sig), sig
    assert not any(isinstance(m, nn.BatchNorm2d) for m in crit.modules())

def test_diff_augment_is_differentiable_and_changes_only_in_training():
    torch.manual_seed(0)
    x = torch.ones(16, 1, 32, 32, requires_grad=True)
    y = diff_augment(x, ('translation',))
    assert y.shape == x.shape and set(y.unique().tolist()) <= {-1., 1.}   # padded with the background, -1
    assert (y == -1).any() and (y == 1).any()
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    c = diff_augment(torch.ones(4, 1, 32, 32), ('cutout',))
    assert ((c == 0).flatten(1).sum(1) == 16*16).all()   # a square of half the side, per image
    crit = DiffAugment(nn.Flatten(), ('brightness',))
    x = torch.rand(4, 1, 8, 8)
    assert not torch.equal(crit(x), x.flatten(1))
    crit.eval(); assert torch.equal(crit(x), x.flatten(1))
    with pytest.raises(ValueError, match="unknown policy 'rotate'"): DiffAugment(nn.Flatten(), ('rotate',))

def test_gradient_penalty_of_a_linear_critic():
    "f(x) = a * sum(x) has gradient norm |a| sqrt(n) everywhere: the penalty is weight * (|a| sqrt(n) - 1)^2"
    a, n = 0.05, 3*8*8
    crit = nn.Sequential(nn.Flatten(), nn.Linear(n, 1, bias=False)); crit[1].weight.data.fill_(a)
    gan = nn.Module(); gan.generator, gan.critic = nn.Sequential(nn.Linear(4, n), nn.Unflatten(1, (3, 8, 8))), crit
    cb = GradientPenalty(weight=10.)
    cb.learn = SimpleNamespace(training=True, gan_trainer=SimpleNamespace(gen_mode=False), model=gan,
                               xb=(torch.randn(5, 3, 8, 8),), yb=(torch.randn(5, 4),), loss_grad=torch.tensor(0.3), loss=None)
    cb.after_loss()
    assert cb.learn.loss_grad.item() == pytest.approx(0.3 + 10*(a*n**0.5 - 1)**2, rel=1e-5)
    cb.learn.gan_trainer.gen_mode = True; cb.learn.loss_grad = torch.tensor(0.3)
    cb.after_loss(); assert cb.learn.loss_grad.item() == pytest.approx(0.3)   # generator steps: no penalty

@pytest.fixture(scope='module')
def dls(omni_small):
    return ff.GANDataLoaders.from_folder(omni_small, size=32, invert=True, bs=32, n_valid=32)

@pytest.mark.parametrize('loss', ['hinge', 'wgan-gp'])
def test_gan_learner_trains_with_ema_samples_and_resumes(dls, tmp_path, loss):
    torch.manual_seed(0)
    smp = ff.GANSamples(n=8, save=False)
    learn = ff.gan_learner(dls, loss, generator=ff.gan.dcgan_generator(32, 1, nf=16), cbs=[smp, ff.GANCheckpoint('ck')], path=tmp_path)
    assert isinstance(learn.model.critic, DiffAugment)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    st = learn.gan_stats.steps
    assert st['gen'] and st['crit'] and all(torch.isfinite(torch.tensor(v)).all() for v in st.values())
    ema, gen = learn.gen_ema, learn.model.generator
    assert not any(p.requires_grad for p in ema.parameters())
    assert any(not torch.equal(e, p) for e, p in zip(ema.parameters(), gen.parameters()))
    # the samples are the moving average's
    assert torch.allclose(smp.grids[1], smp.grid()) and torch.equal(ff.generate(ema, smp.z), ff.generate(ff.gan.callbacks.sampling_generator(learn), smp.z))
    again = ff.gan_learner(dls, loss, generator=ff.gan.dcgan_generator(32, 1, nf=16), path=tmp_path)
    assert ff.resume_gan(again, 'ck') == 1
    assert all(torch.equal(a, b) for a, b in zip(again.gen_ema.parameters(), ema.parameters()))
    with pytest.raises(ValueError, match="loss='lsgan'"): ff.gan_learner(dls, 'lsgan')
