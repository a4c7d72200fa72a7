"ff.verification.score_norm (S-norm / AS-norm) on scores of real ORL faces"
import pytest
import torch
import fewshot_fastai as ff

@pytest.fixture(scope='module')
def scores(orl_conv4):
    "Raw scores of 3 subjects' faces against each other and against a cohort of 6 other subjects, from a Conv4"
    learn, cf = orl_conv4
    test = cf.subset(lambda c: c in {'s1', 's2', 's3'})
    cohort = cf.subset(lambda c: c in {'s4', 's5', 's6', 's7', 's8', 's9'})
    e, c = ff.embed(learn, test.images), ff.embed(learn, cohort.images)
    return ff.inference.similarity(learn, e, e), ff.inference.similarity(learn, e, c), torch.tensor(test.labels)

def test_formula_symmetry_and_top(scores):
    s, c, _ = scores
    assert s.shape == (30, 30) and c.shape == (30, 60)
    for top in (None, 10):
        n = ff.verification.score_norm(s, c, c, top=top)
        for a, b in [(0, 1), (3, 17), (29, 5)]:
            ca, cb = (c[a].topk(top).values, c[b].topk(top).values) if top else (c[a], c[b])
            want = ((s[a, b] - ca.mean())/ca.std() + (s[a, b] - cb.mean())/cb.std())/2
            assert float(n[a, b]) == pytest.approx(float(want), rel=1e-4, abs=1e-5)
        assert torch.allclose(n, n.t(), atol=1e-5)   # s is symmetric, and so is its S-norm
    # a rectangular case: a against b equals b against a, transposed
    assert torch.allclose(ff.verification.score_norm(s[:10, 10:], c[:10], c[10:]), ff.verification.score_norm(s[10:, :10], c[10:], c[:10]).t(), atol=1e-5)
    assert torch.allclose(ff.verification.score_norm(s, c, c, top=60), ff.verification.score_norm(s, c, c), atol=1e-5)   # top >= C: all of them
    assert not torch.allclose(ff.verification.score_norm(s, c, c, top=5), ff.verification.score_norm(s, c, c), atol=1e-3)

def test_bad_shapes_are_named(scores):
    s, c, _ = scores
    with pytest.raises(ValueError, match='scores must be'): ff.verification.score_norm(s[0], c, c)
    with pytest.raises(ValueError, match='cohort_b'): ff.verification.score_norm(s, c, c[:5])
    with pytest.raises(ValueError, match='cohort_a'): ff.verification.score_norm(s, c[:, :1], c)
    with pytest.raises(ValueError, match='top=1'): ff.verification.score_norm(s, c, c, top=1)
