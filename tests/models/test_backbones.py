"WRN and ResNet-12: shapes, the registry, and use by the siamese/episodic learners and CAM"
import pytest
import torch
import fewshot_fastai as ff
from fastai.vision.all import PILImageBW


@pytest.mark.parametrize('depth,widen,size,out', [(10, 1, 28, 7), (16, 2, 32, 8)])
def test_wrn_shapes(depth, widen, size, out):
    net = ff.wrn(n_in=1, depth=depth, widen=widen, drop=0.1)
    y = net(torch.randn(2, 1, size, size))
    assert y.shape == (2, 64*widen, out, out) and net.nf == 64*widen
    assert len([m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]) == depth - 3   # stem + 6n
    with pytest.raises(ValueError, match='6n\\+4'): ff.wrn(depth=15)


def test_resnet12_shapes():
    net = ff.resnet12(n_in=3, widths=(8, 16, 24, 32), drop=0.1)
    y = net(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 32, 2, 2) and net.nf == 32
    assert sum(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) for m in net.modules()) == 12
    with pytest.raises(ValueError, match='4 block widths'): ff.resnet12(widths=(8, 16))


def test_registry_and_learners(omni_dls, omni_small):
    assert ff.resolve_arch('wrn') is ff.wrn and ff.resolve_arch('resnet12') is ff.resnet12
    enc = ff.create_encoder('wrn', n_in=1, depth=10, widen=1)
    assert enc(torch.zeros(1, 1, 28, 28)).shape == (1, 64, 7, 7)
    learn = ff.siamese_learner(omni_dls, 'resnet12', head='contrastive', encoder_kwargs=dict(widths=(8, 8, 16, 16)))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    a, b, _ = omni_dls.one_batch()
    assert learn.model(a, b).shape == (len(a),)
    cf = ff.ClassFolder(omni_small)
    edls = ff.EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, n_way=5, n_query=2, valid_n_way=5,
                                                   episodes_per_epoch=2, valid_episodes=2, device='cpu')
    elearn = ff.episodic_learner(edls, 'wrn', encoder_kwargs=dict(depth=10, widen=1))
    with elearn.no_bar(), elearn.no_logging(): elearn.fit(1, 1e-3)
    assert 0 <= elearn.recorder.values[-1][-1] <= 1
    maps = ff.similarity_maps(learn, a[:2], b[:2])   # Grad-CAM on the last spatial block of ResNet-12
    assert maps.a.shape == (2, 28, 28) and torch.isfinite(maps.a).all()


def test_conv4_pool_first_same_function_in_eval():
    """pool_first (conv, maxpool, BN, ReLU) has the same parameters and output shape as Conv4; with the same weights and
    BN scales > 0 it computes the same thing in eval mode (max commutes with an increasing per-channel map)"""
    torch.manual_seed(0)
    a, b = ff.conv4(1, hidden=16), ff.conv4(1, hidden=16, pool_first=True)
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]
    for m in a.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 2); m.bias.data.normal_(); m.running_mean.normal_(); m.running_var.uniform_(0.5, 2)
    for pa, pb in zip(list(a.parameters()) + list(a.buffers()), list(b.parameters()) + list(b.buffers())):
        pb.data.copy_(pa.data)   # the same layers in another order: copy by position (the state_dict keys differ)
    x = torch.rand(3, 1, 40, 40)
    ya, yb = a.eval()(x), b.eval()(x)
    assert ya.shape == yb.shape == (3, 16, 2, 2) and torch.allclose(ya, yb, atol=1e-5)
    for m in b.modules():   # a negative BN scale turns max into min: then the two differ, as they should
        if isinstance(m, torch.nn.BatchNorm2d): m.weight.data.neg_()
    for m in a.modules():
        if isinstance(m, torch.nn.BatchNorm2d): m.weight.data.neg_()
    assert not torch.allclose(a(x), b(x), atol=1e-3)
    # in training the BN statistics are those of the pooled maps: another function, still trainable
    y = b.train()(x); y.sum().backward()
    assert all(p.grad is not None for p in b.parameters())
