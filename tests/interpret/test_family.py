"""The CAM family: each method against its definition computed by hand (plain hooks, autograd, loops), on real photos
and a real ResNet block; smoothing, pairs, transformer token maps and hook safety"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from fastai.vision.all import create_head, create_body, resnet18, set_seed, PILImageBW
import fewshot_fastai as ff
from fewshot_fastai.interpret import CAM_METHODS

def _all_hooks(model):
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules())

@pytest.fixture(scope='module')
def setup():
    "A ResNet-18 body + fastai head (seeded) on two of skimage's photos at 64 px, its layer3, activations and gradients"
    from skimage import data
    set_seed(0)
    body = create_body(resnet18(), pretrained=False)
    model = nn.Sequential(body, create_head(512, 5)).eval()
    x = ff.models.imagenet_batch([data.chelsea(), data.coffee()], size=64)
    layer = body[6]
    acts = []
    h = layer.register_forward_hook(lambda m, i, o: acts.append(o))
    try: logits = model(x)
    finally: h.remove()
    t = logits.argmax(1)
    g, = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), acts[0])
    return model, x, layer, t, acts[0].detach(), g.detach()

def _svd_projection(m):
    "The first principal component projection, by numpy, one map at a time"
    out = []
    for a in m.numpy():
        r = a.reshape(a.shape[0], -1).T
        r = r - r.mean(0)
        vt = np.linalg.svd(r, full_matrices=False)[2]
        out.append((r @ vt[0]).reshape(a.shape[1:]))
    return torch.tensor(np.stack(out))

def test_each_method_is_its_definition(setup):
    model, x, layer, t, A, G = setup
    def by_hand_score(xb, rows, edit=None):
        "target logits of `xb` (images `rows`), with the layer's output changed by `edit`"
        h = layer.register_forward_hook(lambda m, i, o: edit(o)) if edit else None
        try:
            with torch.no_grad(): return model(xb).gather(1, t[rows][:, None])[:, 0]
        finally:
            if h: h.remove()
    s0 = by_hand_score(x, torch.arange(2))
    up = F.interpolate(A, size=x.shape[-2:], mode='bilinear', align_corners=True)
    masks = (up - up.amin((2, 3), keepdim=True))/(up.amax((2, 3), keepdim=True) - up.amin((2, 3), keepdim=True) + 1e-8)
    score_w = torch.stack([torch.stack([by_hand_score(x[b:b+1]*masks[b, k], torch.tensor([b]))[0] for k in range(A.shape[1])]).softmax(0)
                           for b in range(2)])
    def zeroed(k):
        def edit(o): o = o.clone(); o[:, k] = 0; return o
        return edit
    abl_w = torch.stack([torch.stack([(s0[b] - by_hand_score(x[b:b+1], torch.tensor([b]), zeroed(k))[0])/s0[b] for k in range(A.shape[1])])
                         for b in range(2)])
    g2 = G**2
    alpha = torch.where(G != 0, g2/(2*g2 + A.sum((2, 3), keepdim=True)*g2*G + 1e-6), torch.zeros_like(G))
    want = {'grad-cam': (G.mean((2, 3))[..., None, None]*A).sum(1),
            'hires-cam': (G*A).sum(1),
            'grad-cam++': ((alpha*F.relu(G)).sum((2, 3))[..., None, None]*A).sum(1),
            'xgrad-cam': ((G*A/(A.sum((2, 3), keepdim=True) + 1e-7)).sum((2, 3))[..., None, None]*A).sum(1),
            'layer-cam': (F.relu(G)*A).sum(1),
            'eigen-cam': _svd_projection(A),
            'eigen-grad-cam': _svd_projection(G*A),
            'score-cam': (score_w[..., None, None]*A).sum(1),
            'ablation-cam': (abl_w[..., None, None]*A).sum(1)}
    assert set(want) == set(CAM_METHODS)
    for method, w in want.items():
        res = ff.interpret.cam_result(model, x, method=method, layer=layer)
        if method.startswith('eigen'):   # a component's sign is arbitrary: ours agrees with the channels' sum
            ref = (A if method == 'eigen-cam' else G*A).sum(1)
            c = lambda u, v: ((u - u.mean((1, 2), keepdim=True))*(v - v.mean((1, 2), keepdim=True))).sum((1, 2))
            assert (c(res.raw, ref) > 0).all(), method
            w = w*torch.sign(c(w, ref))[:, None, None]
        assert torch.allclose(res.raw, w, rtol=1e-3, atol=1e-4*w.abs().max()), method
        assert torch.allclose(res.maps, ff.interpret.normalize_maps(F.relu(res.raw), x.shape[-2:]), atol=1e-6), method
        assert torch.equal(res.target, t) and res.method == method
    assert _all_hooks(model) == 0

def test_smoothing_and_several_layers(setup):
    model, x, layer, t, A, G = setup
    # eigen_smooth: the principal component of the method's weighted activations
    res = ff.interpret.cam_result(model, x, method='grad-cam', layer=layer, eigen_smooth=True)
    w = _svd_projection(G.mean((2, 3))[..., None, None]*A)
    assert torch.allclose(res.raw.abs(), w.abs(), rtol=1e-3, atol=1e-4*w.abs().max())
    # aug_smooth: each view's map is mapped back, so the mirror image's smoothed map is the mirror of the image's
    m = ff.cam(model, x, target=t, method='grad-cam', layer=layer, aug_smooth=True)
    mf = ff.cam(model, x.flip(-1), target=t, method='grad-cam', layer=layer, aug_smooth=True)
    assert torch.allclose(mf, m.flip(-1), atol=1e-5) and not torch.allclose(m, m.flip(-1), atol=1e-2)
    # several layers: each one's map scaled, then averaged
    l2 = model[0][5]
    both = ff.cam(model, x, target=t, method='layer-cam', layer=[l2, layer])
    one = [ff.cam(model, x, target=t, method='layer-cam', layer=l) for l in (l2, layer)]
    assert torch.allclose(both, ff.interpret.normalize_maps((one[0] + one[1])/2), atol=1e-5)
    assert _all_hooks(model) == 0

class _Boom(nn.Module):
    def forward(self, x): raise RuntimeError('boom')

def test_hooks_removed_after_an_error_in_every_method():
    model = nn.Sequential(ff.models.conv4(1), nn.Sequential(_Boom())).eval()
    x = torch.rand(2, 1, 32, 32)
    for method in CAM_METHODS:
        with pytest.raises(RuntimeError, match='boom'): ff.cam(model, x, method=method, layer=model[0][3])
        assert _all_hooks(model) == 0, method
    with pytest.raises(ValueError, match="method 'gradcam'"): ff.cam(model, x, method='gradcam')

def test_pair_and_support_maps_through_the_family(omni_dls):
    set_seed(0)
    learn = ff.siamese_learner(omni_dls, 'conv4', head='contrastive', encoder_kwargs=dict(hidden=16))
    a, b = omni_dls.valid.one_batch()[0][:3], omni_dls.valid.one_batch()[1][:3]
    model = learn.model.eval()
    old = ff.similarity_maps(learn, a, b, method='grad-cam')
    for method in CAM_METHODS:
        pm = ff.similarity_maps(learn, a, b, method=method)
        assert pm.a.shape == pm.b.shape == a.shape[:1] + a.shape[-2:] and pm.method == method, method
        assert torch.allclose(pm.score, old.score, atol=1e-5)   # the model's own score of each pair
    # grad-cam with the partner's embedding fixed is the one-pass Grad-CAM of the pair (the gradient wrt one side)
    eb = model.head.embed(model.encoder(b)).detach()
    m, raw, s = ff.interpret.partner_maps(model, a, eb, method='grad-cam')
    assert torch.allclose(F.relu(raw), old.raw_a, atol=1e-6) and torch.allclose(s, old.score, atol=1e-5)   # the one-pass maps are ReLU'd
    assert _all_hooks(model) == 0

@pytest.mark.parametrize('arch', ['vit_tiny_patch16_224', 'deit_tiny_distilled_patch16_224', 'swin_tiny_patch4_window7_224'])
def test_transformer_token_maps_need_no_reshape(arch):
    import timm
    set_seed(0)
    model = timm.create_model(arch, pretrained=False, num_classes=3, img_size=112 if 'swin' not in arch else 224).eval()
    size = 224 if 'swin' in arch else 112
    x = torch.randn(1, 3, size, size)
    for method in ('grad-cam', 'eigen-cam'):
        res = ff.interpret.cam_result(model, x, method=method)
        assert res.maps.shape == (1, size, size) and torch.isfinite(res.maps).all() and res.maps.max() == 1, (arch, method)
        assert ('norm1' in res.layer) and type(model).__name__ in res.layer
        grid = 7 if 'swin' in arch else size//16
        assert res.raw.shape == (1, grid, grid)
    assert _all_hooks(model) == 0

def test_support_maps_explain_the_match_with_a_class_prototype(omni_small):
    cf = ff.ClassFolder(omni_small)
    set_seed(0)
    dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0.25, n_way=5, n_query=2,
                                                  episodes_per_epoch=4, valid_episodes=2)
    learn = ff.episodic_learner(dls, 'conv4', encoder_kwargs=dict(hidden=16))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    support = {c: cf.files_of(c)[:2] for c in cf.classes[:3]}
    queries = [cf.files_of(c)[5] for c in cf.classes[:3]]
    sm = ff.interpret.support_maps(learn, queries, support)
    # the label explained by default is the nearest prototype's: the answer of the prototype classifier
    assert sm.labels == ff.classify(learn, queries, support, method='prototype', tta=0, progress=False)[0]
    assert sm.maps.shape == (3, 28, 28) and sm.raw.shape == (3, 14, 14) and sm.method == 'grad-cam++'
    # the target is that label's prototype: the same maps as partner_maps with the prototype computed by hand
    model = learn.model.eval()
    x = ff.inference.image_batch(learn.dls, queries)
    protos = {c: model.pool(model.encoder(ff.inference.image_batch(learn.dls, ims))).mean(0) for c, ims in support.items()}
    want = ff.interpret.partner_maps(model, x, torch.stack([protos[l] for l in sm.labels]).detach(), method='grad-cam++',
                                     layer=model.encoder[6])
    assert torch.allclose(sm.raw, want[1], atol=1e-5) and torch.allclose(sm.score, want[2], atol=1e-5)
    other = [l for l in support if l != sm.labels[0]][0]
    assert not torch.allclose(ff.interpret.support_maps(learn, queries[:1], support, label=other).raw, sm.raw[:1])
    with pytest.raises(ValueError, match="label 'nope'"): ff.interpret.support_maps(learn, queries, support, label='nope')
    assert _all_hooks(model) == 0
