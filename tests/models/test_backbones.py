"WRN and ResNet-12: shapes, the registry, and use by the siamese/episodic learners and CAM"
import pytest
import torch
import fewshot_fastai as ff
from fastai.vision.all import PILImageBW


@pytest.mark.parametrize('depth,widen,size,out', [(10, 1, 28, 7), (16, 2, 32, 8)])
def test_wrn_shapes(depth, widen, size, out):
    net = ff.models.wrn(n_in=1, depth=depth, widen=widen, drop=0.1)
    y = net(torch.randn(2, 1, size, size))
    assert y.shape == (2, 64*widen, out, out) and net.nf == 64*widen
    assert len([m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]) == depth - 3   # stem + 6n
    with pytest.raises(ValueError, match='6n\\+4'): ff.models.wrn(depth=15)


def test_resnet12_shapes():
    net = ff.models.resnet12(n_in=3, widths=(8, 16, 24, 32), drop=0.1)
    y = net(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 32, 2, 2) and net.nf == 32
    assert sum(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) for m in net.modules()) == 12
    with pytest.raises(ValueError, match='4 block widths'): ff.models.resnet12(widths=(8, 16))


def test_registry_and_learners(omni_dls, omni_small):
    assert ff.models.resolve_arch('wrn') is ff.models.wrn and ff.models.resolve_arch('resnet12') is ff.models.resnet12
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
    # the N-way column: accuracy over the 2 fixed validation episodes of 5 x 2 queries, reproduced by a second pass
    acc = elearn.recorder.values[-1][-1]
    assert acc == pytest.approx(elearn.validate()[-1]) and (20*acc) == pytest.approx(round(20*acc))
    maps = ff.similarity_maps(learn, a[:2], b[:2])   # Grad-CAM on the last spatial block of ResNet-12
    assert maps.a.shape == (2, 28, 28) and torch.isfinite(maps.a).all()


def test_conv4_pool_first_same_function_in_eval():
    """pool_first (conv, maxpool, BN, ReLU) has the same parameters and output shape as Conv4; with the same weights and
    BN scales > 0 it computes the same thing in eval mode (max commutes with an increasing per-channel map)"""
    torch.manual_seed(0)
    a, b = ff.models.conv4(1, hidden=16), ff.models.conv4(1, hidden=16, pool_first=True)
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

def test_conv4_widths_and_strided_blocks(omni_small, tmp_path):
    """Per-block widths and stride-2 blocks: the output shape of Conv4, the conv multiply-adds of the strided/narrow
    blocks cut as documented, bad arguments named; a learner with them saves and loads (JSON turns tuples into lists)"""
    x = torch.rand(2, 1, 32, 32)
    base = ff.models.conv4(1, pool_first=True)
    for kw in [dict(strided=(1,)), dict(strided=(0, 1)), dict(hidden=(32, 64, 64, 64)), dict(hidden=[16, 24, 32, 48])]:
        net = ff.models.conv4(1, pool_first=True, **kw)
        w = kw.get('hidden', (64,)*4)
        assert net(x).shape == (2, w[-1], 2, 2) and net.nf == w[-1]
        assert [m.out_channels for m in net if isinstance(m, torch.nn.Conv2d)] == list(w)
    def conv_macs(net):   # multiply-adds of the convolutions, from the shapes each one produces
        macs, hooks = [], [m.register_forward_hook(lambda m, i, o: macs.append(o[0].numel()*m.in_channels*9))
                           for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
        net(x); [h.remove() for h in hooks]
        return macs
    full, strided = conv_macs(base), conv_macs(ff.models.conv4(1, pool_first=True, strided=(1,)))
    assert strided[1]*4 == full[1] and strided[0] == full[0] and strided[2:] == full[2:]
    assert conv_macs(ff.models.conv4(1, hidden=(32, 64, 64, 64)))[1]*2 == full[1]
    with pytest.raises(ValueError, match='hidden'): ff.models.conv4(1, hidden=(32, 64))
    with pytest.raises(ValueError, match='strided'): ff.models.conv4(1, strided=(4,))
    cf = ff.ClassFolder(omni_small)
    dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=32, img_cls=PILImageBW, n_way=3, n_query=1, valid_n_way=3,
                                                  episodes_per_epoch=2, valid_episodes=1, device='cpu')
    learn = ff.episodic_learner(dls, 'conv4', encoder_kwargs=dict(hidden=(16, 32, 32, 32), strided=(1,), pool_first=True))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    ff.save_model(learn, tmp_path/'m')
    files = cf.files[:4]
    assert torch.allclose(ff.embed(learn, files), ff.embed(ff.load_model(tmp_path/'m'), files), atol=1e-5)
