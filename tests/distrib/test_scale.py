"""Scale-out on one CPU: loaders on the default device, our methods reached through a parallel wrapper, and float32
distances, prototypes and losses under autocast (fastai's own to_fp16/to_bf16 need CUDA; see tests/test_gpu.py)"""
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn
from fastai.torch_core import default_device
from fastai.vision.all import PILImageBW, set_seed
import fewshot_fastai as ff

@pytest.fixture(scope='module')
def edls(omni_small):
    return ff.EpisodeDataLoaders.from_class_folder(ff.ClassFolder(omni_small), size=28, img_cls=PILImageBW, valid_pct=0.25,
                                                   n_way=5, n_query=3, episodes_per_epoch=10, valid_episodes=5)

def test_loaders_on_the_default_device(edls, omni1):
    "Episode and GAN loaders follow default_device() as DataBlock loaders do (None left the model where it was)"
    gdls = ff.GANDataLoaders.from_folder(omni1, size=32, invert=True, max_images=64, bs=32)
    for dls in (edls, gdls):
        assert dls.device is not None and dls.device == default_device()
        assert dls.one_batch()[0].device.type == default_device().type

def _wrapped(learn):
    "The learner's model inside nn.DataParallel, as DistributedDataParallel wraps it during a distributed fit"
    learn.model = nn.DataParallel(learn.model)   # on a CPU-only machine it forwards to the module itself
    return learn

def test_siamese_methods_through_a_wrapper(omni_dls, held_out):
    set_seed(0)
    learn = ff.siamese_learner(omni_dls, ff.models.conv4, head='cosine')
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    cf = omni_dls.class_folder
    unseen = held_out(omni_dls)
    sup = unseen.files_by_class(1)
    queries = unseen.files[1::9]
    eps = ff.data.EpisodeSampler(unseen.labels, n_way=3, k_shot=1, n_query=1, n_episodes=4, seed=0).episodes()
    a, b = cf.files[0], cf.files[30]
    before = (ff.embed(learn, queries), ff.classify(learn, queries, sup, progress=False), ff.predict_pair(learn, a, b),
              ff.episode_accuracy(learn, unseen.images, eps)['accuracy'], ff.similarity_maps(learn, [a], [b]).score)
    _wrapped(learn)
    after = (ff.embed(learn, queries), ff.classify(learn, queries, sup, progress=False), ff.predict_pair(learn, a, b),
             ff.episode_accuracy(learn, unseen.images, eps)['accuracy'], ff.similarity_maps(learn, [a], [b]).score)
    assert torch.allclose(before[0], after[0]) and before[1][0] == after[1][0] and before[2] == after[2]
    assert before[3] == after[3] and torch.allclose(before[4], after[4])
    assert len(learn.show_cam(2).axes) == 4          # similarity maps, not the image-classifier path
    plt.close('all')
    nway = ff.NWayEval(unseen.images, unseen.labels, n_way=3, n_episodes=4, seed=0)
    learn.add_cb(nway)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)      # NWayEval during fit, model wrapped
    assert nway.last['accuracy'] == ff.episode_accuracy(learn, unseen.images, nway.episodes)['accuracy']

def test_episodic_and_gan_callbacks_through_a_wrapper(edls, omni1):
    learn = _wrapped(ff.episodic_learner(edls, 'conv4'))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert ff.embed(learn, [torch.rand(1, 28, 28)]).shape == (1, 64)
    gdls = ff.GANDataLoaders.from_folder(omni1, size=32, invert=True, max_images=64, bs=32)
    torch.manual_seed(0)
    smp, fr = ff.GANSamples(n=4, save=False), ff.GANFrechet(ff.gan.FrechetFeatures(ff.models.conv4(3)), n=32)
    glearn = ff.dcgan_learner(gdls, ff.gan.dcgan_generator(32, 1, nf=8), ff.gan.dcgan_critic(32, 1, nf=8), cbs=[smp, fr])
    with glearn.no_bar(), glearn.no_logging(): glearn.fit(1)
    grid, dist = smp.grid(), fr.measure()
    glearn.model = nn.DataParallel(glearn.model)
    assert torch.equal(smp.grid(), grid) and fr.measure() == pytest.approx(dist)

def test_float32_distances_under_autocast():
    "fp16 autocast: the contrastive distance of identical embeddings has a finite gradient, in float32"
    torch.manual_seed(0)
    head = ff.models.DistanceHead(32, maps=False, emb_dim=16)
    f = torch.randn(4, 32, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.float16):
        e = head.embed(f)                             # a Linear under autocast: fp16 embeddings
        assert e.dtype == torch.float16
        d = head.compare(e, e.detach().clone())       # identical pairs: d ~ 1e-6
        assert d.dtype == torch.float32
        loss = ff.losses.ContrastiveLoss()(d, torch.ones(4))
    assert loss.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(f.grad).all()
    cos = ff.models.CosineHead(32, maps=False, emb_dim=16)
    with torch.autocast('cpu', dtype=torch.bfloat16): assert cos.similarity(cos.embed(f), cos.embed(f)).dtype == torch.float32

def test_protonet_squared_distances_exact_under_autocast():
    "Squared distances from differences in float32: zero for a query equal to its prototype (cdist's mm path is not)"
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Flatten(), nn.Linear(16, 64))
    net = ff.ProtoNet(enc)
    x = torch.randn(30, 16)*10 + 50                   # large norms: ||a||^2 + ||b||^2 - 2ab cancels badly
    x = torch.cat([x, x])                             # 30 support (one per class), then the same 30 as queries
    labels = torch.arange(30)
    logits = net(x, labels)
    assert logits.dtype == torch.float32 and torch.equal(logits.diagonal(), torch.zeros(30))
    e = enc(x).double()
    assert torch.allclose(logits.double(), -torch.cdist(e[30:], e[:30]).pow(2), rtol=1e-4, atol=1e-3)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        lb = net(x, labels)
        protos = ff.models.protonet.prototypes(enc(x[:30]), labels)
    assert lb.dtype == torch.float32 and protos.dtype == torch.float32 and (lb.diagonal() == 0).all()

def test_episodic_training_step_under_autocast(edls):
    learn = ff.episodic_learner(edls, 'conv4')
    x, sy, qy = edls.one_batch()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = learn.model(x, sy)
        loss = learn.loss_func(out, qy)
    assert out.dtype == torch.float32 and loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in learn.model.parameters() if p.grad is not None)
