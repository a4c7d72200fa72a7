"Encoders, heads, SiameseModel and its splitter"
import os, subprocess, sys
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastai.vision.all import resnet18
import fewshot_fastai as ff

def test_koch_net_paper_shapes():
    net = ff.models.koch_net()                         # 105x105 grey -> 4096 sigmoid features, as in Koch et al.
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [(64, 10), (128, 7), (128, 4), (256, 4)]
    assert net[-2].in_features == 256*6*6
    out = net(torch.rand(2, 1, 105, 105))
    assert out.shape == (2, 4096) and 0 <= out.min() and out.max() <= 1
    small = ff.models.koch_net(size=96, width=0.25, emb_dim=64)
    assert small(torch.rand(3, 1, 96, 96)).shape == (3, 64)
    with pytest.raises(ValueError, match='size=56 is too small'): ff.models.koch_net(size=56)

def test_conv4_and_create_encoder():
    assert ff.models.conv4()(torch.rand(2, 1, 28, 28)).shape == (2, 64, 1, 1)
    enc = ff.create_encoder(resnet18, n_in=1)
    assert enc(torch.rand(2, 1, 64, 64)).shape == (2, 512, 2, 2)
    timm_enc = ff.create_encoder('resnet10t', n_in=1)
    assert timm_enc(torch.rand(2, 1, 64, 64)).shape[1] == 512
    with pytest.raises(ValueError, match="unknown encoder 'no_such_net_v9'"): ff.create_encoder('no_such_net_v9')

def _state_shapes(m): return [(k, tuple(v.shape)) for k, v in m.state_dict().items()]

def test_one_registry_of_encoder_names(omni_dls, omni_small):
    "A name builds the same network through every entry point (torchvision's efficientnet_b0, not timm's)"
    import torchvision
    from fastai.vision.all import PILImageBW
    direct = ff.create_encoder('efficientnet_b0', n_in=1)
    assert ff.models.resolve_arch('efficientnet_b0') is torchvision.models.efficientnet_b0
    siam = ff.siamese_learner(omni_dls, 'efficientnet_b0', head='l1').model.encoder
    edls = ff.EpisodeDataLoaders.from_class_folder(ff.ClassFolder(omni_small), size=28, img_cls=PILImageBW, n_way=3,
                                                   n_query=1, episodes_per_epoch=2, valid_episodes=2)
    epi = ff.episodic_learner(edls, 'efficientnet_b0').model.encoder
    assert _state_shapes(direct) == _state_shapes(siam) == _state_shapes(epi)
    assert ff.models.resolve_arch('conv4') is ff.models.conv4 and ff.models.resolve_arch('resnet10t') == 'resnet10t'   # ours; timm-only

@pytest.fixture
def no_network(monkeypatch):
    "Any connection attempt fails, as on an offline machine: the test cannot download even where there is internet"
    import socket
    def refuse(*a, **k): raise OSError('network disabled in this test')
    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket, 'create_connection', refuse)

def test_pretrained_offline_fails_clearly(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))  # no cached torchvision weights
    with pytest.raises(ff.models.PretrainedUnavailable, match=r"resnet18 could not be loaded.*pretrained=False"):
        ff.create_encoder(resnet18, pretrained=True)
    # timm goes through the Hugging Face hub; in offline mode it fails at once
    code = "import socket\ndef refuse(*a, **k): raise OSError('offline')\nsocket.socket.connect = refuse\n" \
           "import fewshot_fastai as ff\ntry: ff.create_encoder('resnet10t', pretrained=True)\nexcept ff.models.PretrainedUnavailable as e: print('CLEAR', e)"
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_HOME': str(tmp_path)}
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=120).stdout
    assert out.startswith('CLEAR pretrained weights for resnet10t could not be loaded')

def _imagenet_batch(*imgs):
    x = torch.cat([F.interpolate(torch.tensor(i).permute(2, 0, 1)[None].float()/255, size=(224, 224),
                                 mode='bilinear', antialias=True) for i in imgs])
    return (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None])/torch.tensor([0.229, 0.224, 0.225])[:, None, None]

def test_offline_efficientnet_lite0_classifies_imagenet():
    import skimage.data as skd   # a dev dependency: a missing one fails the test rather than skipping it
    m = ff.efficientnet_lite0(pretrained=True).eval()
    with torch.no_grad(): p = m(_imagenet_batch(skd.chelsea(), skd.coffee())).softmax(-1)
    assert 281 <= int(p[0].argmax()) <= 285 and p[0, 281:286].sum() > 0.8   # a cat
    assert int(p[1].argmax()) in (504, 967, 968)                            # coffee mug / espresso / cup
    random_init = ff.efficientnet_lite0(pretrained=False).eval()
    with torch.no_grad(): q = random_init(_imagenet_batch(skd.chelsea())).softmax(-1)
    assert q[0, 281:286].sum() < 0.1

def test_efficientnet_lite0_grayscale_stem_sums_rgb():
    rgb, grey = ff.efficientnet_lite0(pretrained=True), ff.efficientnet_lite0(pretrained=True, n_in=1)
    assert torch.allclose(grey.conv_stem.weight, rgb.conv_stem.weight.sum(1, keepdim=True))
    enc = ff.create_encoder('efficientnet_lite0', n_in=1, pretrained=True)
    assert enc(torch.rand(2, 1, 64, 64)).shape == (2, 1280, 2, 2)

@pytest.mark.parametrize('head,out_shape', [('concat', (4, 2)), ('l1', (4,)), ('contrastive', (4,))])
def test_siamese_model_heads(head, out_shape):
    enc = ff.models.conv4(n_in=1)
    m = ff.SiameseModel(enc, ff.models.heads.HEADS[head](64, True)).eval()
    a, b = torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28)
    out = m(a, b)
    assert out.shape == out_shape
    # one shared encoder: the pair forward equals comparing separately encoded images
    assert torch.allclose(out, m.compare(m.encode(a), m.encode(b)), atol=1e-5)
    if head != 'concat': assert torch.allclose(out, m(b, a), atol=1e-5)  # symmetric heads
    if head == 'contrastive': assert torch.allclose(m(a, a), torch.zeros(4), atol=1e-3)

def test_splitter_groups():
    m = ff.SiameseModel(ff.models.conv4(), ff.models.L1Head(64))
    enc, head = ff.siamese_splitter(m)
    assert {id(p) for p in enc} == {id(p) for p in m.encoder.parameters()}
    assert {id(p) for p in head} == {id(p) for p in m.head.parameters()}

def test_contrastive_loss_and_threshold():
    loss = ff.losses.ContrastiveLoss(margin=1.0)
    d = torch.tensor([0.0, 0.2, 0.3, 1.5]); y = torch.tensor([1, 1, 0, 0])
    # same: d^2/2 ; different: relu(1-d)^2/2
    assert loss(d, y).item() == pytest.approx(np.mean([0, 0.04, 0.49, 0])/2)
    assert ff.verification.best_threshold(torch.tensor([0.1, 0.2, 0.6, 0.9]), torch.tensor([1, 1, 0, 0])) == pytest.approx(0.4)
    loss.thresh = 0.4
    assert loss.decodes(loss.activation(d)).tolist() == [1, 1, 1, 0]

def test_equal_error_rate():
    s = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4]); y = torch.tensor([1, 1, 0, 1, 0, 0])
    assert ff.verification.equal_error_rate(s, y) == pytest.approx(1/3)   # at t=0.7: FAR 1/3 == FRR 1/3
    assert ff.verification.equal_error_rate(s, torch.tensor([1, 1, 1, 0, 0, 0])) == 0
    with pytest.raises(ValueError, match='both same and different'): ff.verification.equal_error_rate(s, torch.ones(6))

def test_create_pair_head_is_what_learners_and_load_model_build(omni_dls, tmp_path):
    "Heads come from one factory: the learner's head and the one `load_model` rebuilds are its output, for every head"
    for head in ff.models.HEADS:
        learn = ff.siamese_learner(omni_dls, ff.models.conv4, head=head, emb_dim=16)
        built = ff.models.create_pair_head(head, 64, (1, 1), emb_dim=16)
        assert type(learn.model.head) is type(built) is ff.models.HEADS[head]
        assert [p.shape for p in learn.model.head.parameters()] == [p.shape for p in built.parameters()]
    again = ff.load_model(ff.save_model(learn, tmp_path/'m'))
    assert type(again.model.head) is ff.models.HEADS[head]
    with pytest.raises(ValueError, match="unknown head 'nope'"): ff.models.create_pair_head('nope', 64, (1, 1))
