"""The faithfulness metrics: the imputation against an exact case, and each metric telling a map that points at the
evidence from one that points away, with a score whose evidence is known (a region of a real photo) and with a real
ImageNet classifier"""
import pytest
import torch
import fewshot_fastai as ff
from fewshot_fastai.interpret.metrics import impute, deletion_insertion, road, confidence_change, class_score

@pytest.fixture(scope='module')
def photo():
    from skimage import data
    return ff.models.imagenet_batch([data.chelsea(), data.coffee()], size=64)

def test_imputation_is_exact_on_a_linear_image():
    "A plane satisfies every weighted-mean equation: removed pixels come back as they were (no noise)"
    yy, xx = torch.meshgrid(torch.arange(16.), torch.arange(20.), indexing='ij')
    img = torch.stack([0.3*yy - 0.2*xx + 1, 0.1*xx])
    removed = torch.zeros(16, 20, dtype=torch.bool); removed[3:9, 4:15] = True; removed[12, 2] = True
    out = impute(img, removed, noise=0)
    assert torch.allclose(out, img, atol=1e-5) and torch.equal(out[:, ~removed], img[:, ~removed])
    noisy = impute(img, removed, noise=0.1, generator=torch.Generator().manual_seed(0))
    assert 0.05 < (noisy - img)[:, removed].std() < 0.15 and torch.equal(noisy[:, ~removed], img[:, ~removed])

def _box_score(x0, y0, x1, y1):
    "A score whose evidence is known: the energy of a box of each image (its texture and contrast)"
    return lambda xb, rows: xb[:, :, y0:y1, x0:x1].pow(2).mean((1, 2, 3))

def test_metrics_prefer_the_map_on_the_evidence(photo):
    score = _box_score(8, 8, 24, 24)
    right = torch.zeros(2, 64, 64); right[:, 8:24, 8:24] = 1 + photo[:, :, 8:24, 8:24].pow(2).mean(1)   # the box's strongest pixels first
    wrong = torch.zeros(2, 64, 64); wrong[:, 40:56, 40:56] = 1
    di_r, di_w = deletion_insertion(score, photo, right, steps=10), deletion_insertion(score, photo, wrong, steps=10)
    assert (di_r['deletion'] < di_w['deletion']).all() and (di_r['insertion'] > di_w['insertion']).all()
    ro_r, ro_w = road(score, photo, right, percentiles=(10, 30)), road(score, photo, wrong, percentiles=(10, 30))
    assert (ro_r['combined'] > ro_w['combined']).all() and (ro_r['morf'] < ro_w['morf']).all()
    # the same seed, the same noise: reproducible
    assert torch.equal(road(score, photo, right, percentiles=(10,))['morf'], road(score, photo, right, percentiles=(10,))['morf'])

def test_confidence_change_and_curves_with_a_real_classifier():
    "On a real ImageNet classifier: average drop and increase are the definitions' arithmetic on its softmax; the curves start where the image is"
    from skimage import data
    model = ff.efficientnet_lite0(pretrained=True).eval()
    x = ff.models.imagenet_batch([data.chelsea(), data.coffee()], size=224)
    res = ff.interpret.cam_result(model, x)
    s = class_score(model, res.target)
    with torch.no_grad():
        p = model(x).softmax(1).gather(1, res.target[:, None])[:, 0]
        pm = model(x*res.maps[:, None]).softmax(1).gather(1, res.target[:, None])[:, 0]
    c = confidence_change(s, x, res.maps)
    assert c['average_drop'] == pytest.approx(100*float((torch.relu(p - pm)/p).mean()), rel=1e-5)
    assert c['increase'] == pytest.approx(100*float((pm > p).float().mean())) and torch.allclose(c['base'], p)
    # with one step the deletion curve runs from the image (p) to the baseline image, the insertion from the blurred one to the image
    d = deletion_insertion(s, x, res.maps, steps=1)
    with torch.no_grad(): p0 = model(torch.zeros_like(x)).softmax(1).gather(1, res.target[:, None])[:, 0]
    assert torch.allclose(d['deletion'], (p + p0)/2, atol=1e-5) and d['insertion'].shape == (2,)
