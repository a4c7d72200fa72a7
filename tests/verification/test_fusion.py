"ff.verification.fit_fusion: scores of two real verification systems of ORL faces (an untrained Conv4, raw pixels) fused"
import pytest
import numpy as np
import torch
import torch.nn.functional as F
import fewshot_fastai as ff

@pytest.fixture(scope='module')
def systems(orl_conv4):
    """Two systems' score matrices for 30 cohort subjects and 10 others: cosine of an untrained Conv4's embeddings, and
    cosine of the faces' pixels (28x23 grey, each image centred); with the subject labels"""
    learn, cf = orl_conv4
    names = sorted(cf.classes)
    cohort = cf.subset(lambda c: c in set(names[:30])); other = cf.subset(lambda c: c in set(names[30:]))
    def pixels(sub):
        x = torch.stack([torch.from_numpy(np.asarray(im.convert('L').resize((23, 28)), dtype=np.float32)).flatten() for im in sub.images])
        return F.normalize(x - x.mean(1, keepdim=True), dim=1)
    out = {}
    for name, sub in (('cohort', cohort), ('other', other)):
        e, p = F.normalize(ff.embed(learn, sub.images), dim=1), pixels(sub)
        out[name] = (e @ e.T, p @ p.T, sub.labels)
    return out

def pair_eer(s, labels):
    i, j = torch.triu_indices(len(labels), len(labels), 1)
    lbl = torch.tensor(labels)
    return ff.verification.equal_error_rate(s[i, j], lbl[i] == lbl[j])

def test_fusion_is_the_weighted_sum_of_impostor_z_scores(systems):
    (ca, cb, cl), (ta, tb, tl) = systems['cohort'], systems['other']
    fus = ff.verification.fit_fusion([ca, cb], cl, weights=[3, 1])
    assert fus.weights == pytest.approx([0.75, 0.25])
    # the impostor statistics, by a plain loop over the cohort's pairs
    imp = [(x, y) for x in range(len(cl)) for y in range(x + 1, len(cl)) if cl[x] != cl[y]]
    assert len(imp) == 300*299//2 - 30*45
    for s, m, sd in ((ca, fus.means[0], fus.stds[0]), (cb, fus.means[1], fus.stds[1])):
        v = np.array([s[x, y].item() for x, y in imp])
        assert m == pytest.approx(v.mean(), abs=1e-6) and sd == pytest.approx(v.std(ddof=1), rel=1e-5)
    out = fus(ta, tb)
    assert out.dtype == torch.float32 and out.shape == ta.shape
    assert torch.allclose(out, 0.75*(ta - fus.means[0])/fus.stds[0] + 0.25*(tb - fus.means[1])/fus.stds[1], atol=1e-5)

def test_fusion_ignores_each_systems_scale_and_beats_each_system(systems):
    (ca, cb, cl), (ta, tb, tl) = systems['cohort'], systems['other']
    fus = ff.verification.fit_fusion([ca, cb], cl)
    # a system whose scores are 100x larger and shifted gets the same fused scores: z-normalisation, not a plain sum
    rescaled = ff.verification.fit_fusion([ca, 100*cb + 5], cl)
    assert torch.allclose(fus(ta, tb), rescaled(ta, 100*tb + 5), atol=1e-4)
    assert not torch.allclose((ta + tb).argsort(), (ta + 100*tb + 5).argsort())   # ... which a plain sum would not
    eer_a, eer_b, eer_f = pair_eer(ta, tl), pair_eer(tb, tl), pair_eer(fus(ta, tb), tl)
    assert eer_f < min(eer_a, eer_b), (eer_a, eer_b, eer_f)   # the two systems err on different pairs
    assert pair_eer(ff.verification.fit_fusion([ca, cb], cl, [1, 0])(ta, tb), tl) == pytest.approx(eer_a, abs=1e-6)   # weight 0: that system is ignored

def test_fusion_errors(systems):
    ca, cb, cl = systems['cohort']
    with pytest.raises(ValueError, match='is empty'): ff.verification.fit_fusion([], cl)
    with pytest.raises(ValueError, match=r'cohort_scores\[1\] must be \(300,300\)'): ff.verification.fit_fusion([ca, cb[:10]], cl)
    with pytest.raises(ValueError, match='2 weights for 1 systems'): ff.verification.fit_fusion([ca], cl, [1, 2])
    with pytest.raises(ValueError, match='weights must be >= 0'): ff.verification.fit_fusion([ca, cb], cl, [1, -1])
    with pytest.raises(ValueError, match='one identity'): ff.verification.fit_fusion([ca[:10, :10]], cl[:10])
    with pytest.raises(ValueError, match=r'cohort_scores\[0\]: the impostor scores do not vary'): ff.verification.fit_fusion([torch.ones(300, 300), cb], cl)
    fus = ff.verification.fit_fusion([ca, cb], cl)
    with pytest.raises(ValueError, match='fitted on 2 systems, called with 1'): fus(ca)
    with pytest.raises(ValueError, match='one shape'): fus(ca, cb[:5])
