"CAM, Grad-CAM, similarity maps, boxes, hook safety and the CAM callback, on real images and real components"
import gc, os
import numpy as np
import psutil
import pytest
import torch
from torch import nn
from PIL import Image
from fastai.layers import Flatten
from fastai.vision.all import create_head, create_body, resnet18, PILImageBW, set_seed
import fewshot_fastai as ff

def _all_hooks(model):
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules())

@pytest.fixture(scope='module')
def lite0():
    return ff.efficientnet_lite0(pretrained=True).eval()

@pytest.fixture(scope='module')
def natural():
    from skimage import data
    return ff.models.imagenet_batch([data.chelsea(), data.coffee()])

def test_exact_cam_is_the_logit_decomposition_pretrained(lite0, natural):
    res = ff.interpret.cam_result(lite0, natural)
    assert res.method == 'cam' and res.target.tolist() == [285, 967]     # Egyptian cat, espresso
    logit = res.logits.gather(1, res.target[:, None])[:, 0]
    # sum of the map before upsampling (already divided by h*w, the GAP scaling) == logit - classifier bias
    assert torch.allclose(res.raw.sum((1, 2)), logit - lite0.get_classifier().bias[res.target], atol=1e-3)
    assert torch.allclose(res.raw.sum((1, 2)) + res.bias, logit, atol=1e-3)
    maps = res.maps
    assert maps.shape == (2, 224, 224) and maps.min() >= 0 and maps.max() <= 1
    assert torch.allclose(maps.amax((1, 2)), torch.ones(2)) and torch.allclose(maps.amin((1, 2)), torch.zeros(2))
    # explaining another class gives another map, still exact
    other = ff.interpret.cam_result(lite0, natural, target=967)
    assert torch.allclose(other.raw.sum((1, 2)) + other.bias, other.logits[:, 967], atol=1e-3)
    assert not torch.allclose(other.maps[0], maps[0], atol=0.05)

def test_exact_cam_fastai_concat_pool_head(omni1):
    "fastai create_head (concat pooling, BatchNorm, no hidden layer) on a Conv4 body: the max half counts too"
    set_seed(0)
    model = nn.Sequential(ff.models.conv4(1), create_head(64, 5, lin_ftrs=[]))
    cf = ff.ClassFolder(omni1, decode=True).subset(lambda c: c.startswith('Greek'))
    x = ff.data.image_tensor(cf.images[:16], 40, PILImageBW).float()/255
    model.train(); model(x)                            # non-trivial BatchNorm running statistics
    res = ff.interpret.cam_result(model, x, target=torch.arange(16) % 5)
    assert res.method == 'cam'
    assert torch.allclose(res.raw.sum((1, 2)) + res.bias, res.logits.gather(1, res.target[:, None])[:, 0], atol=1e-4)
    assert res.maps.shape == (16, 40, 40)
    # the default head has a hidden layer with ReLU: not affine, so auto falls back to Grad-CAM
    deep = nn.Sequential(ff.models.conv4(1), create_head(64, 5)).eval()
    assert ff.interpret.cam_result(deep, x).method == 'grad-cam'
    with pytest.raises(ValueError, match="grad-cam"): ff.cam(deep, x, method='cam')

def test_box_follows_the_map_on_a_blob_image():
    "A model whose CAM is the image brightness: the box is around the blob, wherever the blob is"
    conv = nn.Conv2d(1, 1, 1); conv.weight.data.fill_(1.); conv.bias.data.zero_()
    model = nn.Sequential(nn.Sequential(conv, nn.ReLU()), nn.Sequential(nn.AdaptiveAvgPool2d(1), Flatten(), nn.Linear(1, 2))).eval()
    yy, xx = torch.meshgrid(torch.arange(64.), torch.arange(64.), indexing='ij')
    for cy, cx in [(20, 40), (45, 12)]:
        img = torch.exp(-((yy - cy)**2 + (xx - cx)**2)/(2*4.**2))[None, None]
        res = ff.interpret.cam_result(model, img, target=int(model[1][2].weight[:, 0].argmax()))
        assert res.method == 'cam'
        x0, y0, x1, y1 = ff.interpret.cam_bbox(res.maps[0], 0.2)
        # the blob exceeds 20% of its peak within r = 4*sqrt(2 ln 5) ~ 7.2 px of its centre
        assert abs((x0 + x1)/2 - cx) <= 1 and abs((y0 + y1)/2 - cy) <= 1
        assert 12 <= x1 - x0 <= 16 and 12 <= y1 - y0 <= 16
    # largest connected region only: a second, smaller blob is left out
    m = np.zeros((50, 50)); m[5:25, 5:25] = 1.; m[40:44, 40:44] = 0.9
    assert ff.interpret.cam_bbox(m) == (5, 5, 24, 24)
    with pytest.raises(ValueError, match='thresh'): ff.interpret.cam_bbox(m, 1.5)

def test_grad_cam_with_inplace_relu_resnet():
    "torchvision ResNet blocks apply ReLU(inplace=True) to bn1's output: module backward hooks fail there, ours not"
    set_seed(0)
    body = create_body(resnet18(), pretrained=False)
    model = nn.Sequential(body, create_head(512, 3)).eval()
    x = torch.randn(2, 3, 64, 64)
    layer = body[4][0].bn1
    res = ff.interpret.cam_result(model, x, layer=layer)
    assert res.method == 'grad-cam' and res.maps.shape == (2, 64, 64) and torch.isfinite(res.maps).all()
    assert (res.raw.flatten(1).amax(1) > 0).all()                       # not an all-zero map
    # the same Grad-CAM computed by hand: a plain forward hook, autograd.grad, channel weights = mean gradient
    for lay in (body[6], body):
        acts = []
        h = lay.register_forward_hook(lambda m, i, o: acts.append(o))
        try: logits = model(x)
        finally: h.remove()
        t = logits.argmax(1)
        g, = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), acts[0])
        manual = (g.mean((2, 3))[:, :, None, None]*acts[0]).sum(1).detach()   # signed, as exact CAM's raw maps
        ours = ff.interpret.cam_result(model, x, layer=lay)
        assert ours.method == 'grad-cam' and (manual.flatten(1).amax(1) > 0).all()
        assert torch.allclose(ours.raw, manual, atol=1e-6) and torch.equal(ours.target, t)
        # the maps: the positive part, scaled, as for exact CAM
        assert torch.allclose(ours.maps, ff.interpret.maps.normalize_maps(torch.relu(manual), x.shape[-2:]), atol=1e-6)
    assert ff.interpret.last_conv_layer(model, x) is body                       # the last block with spatial output
    assert ff.interpret.cam_result(model, x).maps.shape == (2, 64, 64)
    assert _all_hooks(model) == 0
    h = layer.register_full_backward_hook(lambda *a: None)
    try:
        with pytest.raises(RuntimeError, match='inplace'): model(x).sum().backward()
    finally: h.remove()

class _Boom(nn.Module):
    def forward(self, x): raise RuntimeError('boom')

def test_hooks_removed_even_when_forward_raises():
    model = nn.Sequential(ff.models.conv4(1), nn.Sequential(_Boom())).eval()
    x = torch.rand(2, 1, 32, 32)
    for method in ('auto', 'grad-cam'):
        with pytest.raises(RuntimeError, match='boom'): ff.cam(model, x, method=method, layer=model[0][3])
        assert _all_hooks(model) == 0
    with pytest.raises(RuntimeError, match='boom'): ff.interpret.last_conv_layer(model, x)
    assert _all_hooks(model) == 0

def test_memory_flat_over_1000_calls():
    set_seed(0)
    model = nn.Sequential(ff.models.conv4(1, hidden=16), create_head(16, 4)).eval()   # Grad-CAM path
    exact = nn.Sequential(ff.models.conv4(1, hidden=16), create_head(16, 4, lin_ftrs=[])).eval()
    x = torch.rand(2, 1, 32, 32)
    proc = psutil.Process(os.getpid())
    for _ in range(50): ff.cam(model, x); ff.cam(exact, x)
    gc.collect(); before = proc.memory_info().rss
    for _ in range(1000): ff.cam(model, x); ff.cam(exact, x)
    gc.collect(); grown = (proc.memory_info().rss - before)/2**20
    assert grown < 20, f'RSS grew by {grown:.1f} MiB over 1000 calls'
    assert _all_hooks(model) == _all_hooks(exact) == 0

def test_similarity_maps_exact_for_cosine_head(omni_dls):
    set_seed(0)
    learn = ff.siamese_learner(omni_dls, ff.models.conv4, head='cosine', encoder_kwargs=dict(n_blocks=3))  # 3x3 maps
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 3e-3)
    a, b, _ = omni_dls.valid.one_batch()
    pm = ff.similarity_maps(learn, a[:6], b[:6])
    assert pm.method == 'exact' and pm.a.shape == (6, 28, 28) and pm.b.shape == (6, 28, 28)
    assert pm.raw_a.shape == (6, 3, 3) and (pm.a.flatten(1).std(1) > 0).all()
    m = learn.model.eval()
    with torch.no_grad():
        ea, eb = m.encode(a[:6]), m.encode(b[:6])
        cos = m.similarity(ea, eb)
        bias = m.head.proj.bias
        part_a = (eb/eb.norm(dim=1, keepdim=True)) @ bias/ea.norm(dim=1)
        part_b = (ea/ea.norm(dim=1, keepdim=True)) @ bias/eb.norm(dim=1)
    assert torch.allclose(pm.score, cos, atol=1e-5)
    assert torch.allclose(pm.raw_a.sum((1, 2)), cos - part_a, atol=1e-4)
    assert torch.allclose(pm.raw_b.sum((1, 2)), cos - part_b, atol=1e-4)
    grad = ff.similarity_maps(learn, a[:6], b[:6], method='grad-cam')
    assert grad.method == 'grad-cam' and torch.allclose(grad.score, cos, atol=1e-5)
    with pytest.raises(TypeError, match='similarity_maps'): ff.cam(learn, a[:2])

def test_similarity_maps_gradient_for_contrastive(omni_dls):
    set_seed(0)
    learn = ff.siamese_learner(omni_dls, ff.models.conv4, head='contrastive')
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 3e-3)
    a, b, _ = omni_dls.valid.one_batch()
    same = ff.similarity_maps(learn, a[:4], b[:4], method='grad-cam')
    assert same.raw_a.shape == (4, 3, 3)        # Conv4's 1x1 output at 28 px: the last spatial block is explained
    diff = ff.similarity_maps(learn, a[:4], b[:4], sign=-1, method='grad-cam')
    assert same.method == diff.method == 'grad-cam'
    # the pair default (bench/cam_quality.py): Grad-CAM++ at Conv4's last block that keeps half the side, 14x14 at 28 px
    auto = ff.similarity_maps(learn, a[:4], b[:4])
    assert auto.method == 'grad-cam++' and auto.raw_a.shape == (4, 14, 14) and '(14, 14)' in auto.layer
    want = ff.interpret.partner_maps(learn.model, a[:4], learn.model.head.embed(learn.model.encoder(b[:4])).detach(),
                                     method='grad-cam++', layer=learn.model.encoder[6])
    assert torch.allclose(auto.raw_a, want[1], atol=1e-6) and torch.allclose(auto.score, same.score, atol=1e-5)
    assert same.a.shape == (4, 28, 28) and 0 <= same.a.min() and same.a.max() <= 1
    assert torch.allclose(same.score, diff.score)
    assert not torch.allclose(same.raw_a, diff.raw_a)                  # what makes them similar vs different
    with pytest.raises(ValueError, match='exact'): ff.similarity_maps(learn, a[:2], b[:2], method='exact')
    assert _all_hooks(learn.model) == 0

def test_cam_callback_saves_overlays(omni_dls, tmp_path):
    set_seed(0)
    cb = ff.CAMCallback(n=3, every_epoch=True)
    learn = ff.siamese_learner(omni_dls, ff.models.conv4, head='cosine', cbs=cb, path=tmp_path)
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-3)
    assert [p.name for p in cb.saved] == ['cam_epoch0.png', 'cam_epoch1.png']
    for p in cb.saved:
        assert p.parent == tmp_path/'models'
        im = np.asarray(Image.open(p))
        assert im.shape[0] > 100 and im.std() > 10                     # a real figure, not a blank canvas
    fig = learn.show_cam(2)
    assert len(fig.axes) == 4

def test_cam_from_paths_and_pil_with_a_fastai_learner(orl, tmp_path):
    "A plain fastai image Learner prepares paths / PIL images itself (its test_dl); the exact CAM still holds"
    from fastai.vision.all import ImageDataLoaders, Resize, Learner, get_image_files, PILImage
    dls = ImageDataLoaders.from_folder(orl, valid_pct=0.25, seed=0, item_tfms=Resize((56, 46)), bs=16, num_workers=0)
    learn = Learner(dls, nn.Sequential(ff.models.conv4(3, n_blocks=3), create_head(64, dls.c, lin_ftrs=[])), path=tmp_path)
    files = get_image_files(orl)[:3]
    by_path = ff.interpret.cam_result(learn, files)
    by_pil = ff.interpret.cam_result(learn, [PILImage.create(f) for f in files])
    assert by_path.method == 'cam' and by_path.maps.shape == (3, 56, 46)
    assert torch.allclose(by_path.maps, by_pil.maps, atol=1e-5)
    assert torch.allclose(by_path.raw.sum((1, 2)) + by_path.bias, by_path.logits.gather(1, by_path.target[:, None])[:, 0], atol=1e-4)
    assert ff.cam(learn, files[0]).shape == (1, 56, 46)
    with pytest.raises(TypeError, match='need a Learner'): ff.cam(learn.model, files)

def test_grad_cam_of_a_layer_whose_output_is_changed_in_place_later():
    "A BasicBlock adds the shortcut into bn2's output in place: the map must be of bn2's own output, not of that sum"
    import torch.nn.functional as F
    set_seed(0)
    body = create_body(resnet18(), pretrained=False)
    model = nn.Sequential(body, create_head(512, 3)).eval()
    x = torch.randn(2, 3, 64, 64)
    blk = body[7][1]
    with torch.no_grad(): z = body[7][0](body[:7](x))
    a = blk.bn2(blk.conv2(blk.relu(blk.bn1(blk.conv1(z)))))   # bn2's output, computed apart
    logits = model[1](F.relu(a + z))
    t = logits.argmax(1)
    g, = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), a)
    manual = (g.mean((2, 3))[:, :, None, None]*a).sum(1).detach()
    res = ff.interpret.cam_result(model, x, layer=blk.bn2)
    assert torch.allclose(res.logits, logits.detach(), atol=1e-5) and torch.allclose(res.raw, manual, atol=1e-5)

def test_save_figure_is_all_or_nothing_and_closes(tmp_path):
    "`ff.interpret.save_figure`: a whole PNG or nothing (a failing write leaves the earlier file), and the figure closed"
    import matplotlib.pyplot as plt
    from PIL import Image
    fig, ax = plt.subplots(); ax.plot([0, 1], [1, 0])
    path = ff.interpret.save_figure(fig, tmp_path/'a.png')
    assert Image.open(path).size[0] > 10 and not plt.fignum_exists(fig.number)
    before = path.read_bytes()
    bad, ax = plt.subplots(); ax.plot([0, 1], [0, 1])
    def full_disk(target, **kw):   # half a file written, then the disk is full
        with open(target, 'wb') as f: f.write(b'half')
        raise OSError(28, 'No space left on device')
    bad.savefig = full_disk
    with pytest.raises(OSError, match='No space'): ff.interpret.save_figure(bad, path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ['a.png']
    assert not plt.fignum_exists(bad.number)
