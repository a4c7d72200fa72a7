"ff.verification.fit_whitening (total-covariance ZCA and within-identity WCCN) on embeddings of real ORL faces"
import pytest
import torch
import fewshot_fastai as ff

@pytest.fixture(scope='module')
def embs(orl_conv4):
    "A Conv4's embeddings (its live channels, of 64) of 30 cohort subjects' faces (300 > 64, so the covariance is full rank) and of 3 others"
    learn, cf = orl_conv4
    names = sorted(cf.classes)
    cohort = cf.subset(lambda c: c in set(names[:30])); other = cf.subset(lambda c: c in set(names[30:33]))
    c, e = ff.embed(learn, cohort.images), ff.embed(learn, other.images)
    live = c.std(0) > 1e-3   # an untrained Conv4 has channels that ReLU keeps at 0: no variance to whiten there
    return learn, c[:, live], torch.tensor(cohort.labels), e[:, live]

def cov(x): x = x.double() - x.double().mean(0); return x.T @ x/len(x)

def test_total_whitening_makes_the_cohort_covariance_the_identity(embs):
    _, c, _, e = embs
    D = c.shape[1]
    assert len(c) == 300 and 32 < D <= 64
    w = ff.verification.fit_whitening(c, shrink=1e-6)
    z = (c - w.mean) @ w.W
    assert torch.allclose(cov(z), torch.eye(D, dtype=torch.float64), atol=1e-3)
    assert torch.allclose(w.W, w.W.T, atol=1e-5)   # symmetric (ZCA): no rotation of the embedding space
    out = w(e)
    assert out.dtype == torch.float32 and out.shape == e.shape
    assert torch.allclose(out.norm(dim=1), torch.ones(len(e)), atol=1e-5)
    assert torch.allclose(out, torch.nn.functional.normalize((e - c.mean(0)) @ w.W, dim=-1), atol=1e-5)

def test_within_identity_whitening(embs):
    _, c, lbl, _ = embs
    w = ff.verification.fit_whitening(c, lbl, shrink=1e-6)
    z = (c - w.mean) @ w.W
    D = c.shape[1]
    within = torch.cat([z[lbl == u] - z[lbl == u].mean(0) for u in lbl.unique()]).double()
    assert torch.allclose(within.T @ within/len(within), torch.eye(D, dtype=torch.float64), atol=1e-3)
    assert not torch.allclose(w.W, ff.verification.fit_whitening(c, shrink=1e-6).W, atol=1e-2)   # labels change what is whitened
    # the ridge: W^-2 = S + shrink * mean eigenvalue * I
    S = cov(torch.cat([c[lbl == u] - c[lbl == u].mean(0) for u in lbl.unique()]))
    ridge = S + 0.5*S.trace()/D*torch.eye(D, dtype=torch.float64)
    W = ff.verification.fit_whitening(c, [f's{int(u)}' for u in lbl], shrink=0.5).W.double()   # names work as identities too
    assert torch.allclose(W @ ridge @ W, torch.eye(D, dtype=torch.float64), atol=1e-3)

def test_whitened_embeddings_score_with_the_learner(embs):
    learn, c, lbl, e = embs
    w = ff.verification.fit_whitening(c, lbl)
    s = ff.inference.similarity(learn, w(e), w(e))
    assert s.shape == (30, 30)
    assert torch.allclose(s.diagonal(), torch.zeros(30), atol=1e-5) and (s <= 1e-5).all()   # -d^2 of unit vectors

def test_bad_input_is_named(embs):
    _, c, lbl, e = embs
    with pytest.raises(ValueError, match='shrink=0'): ff.verification.fit_whitening(c, shrink=0)
    with pytest.raises(ValueError, match='299 labels for 300'): ff.verification.fit_whitening(c, lbl[:-1])
    with pytest.raises(ValueError, match='no identity has 2'): ff.verification.fit_whitening(c[:5], torch.arange(5))
    with pytest.raises(ValueError, match='cohort must be'): ff.verification.fit_whitening(c[0])
    with pytest.raises(ValueError, match='do not vary'): ff.verification.fit_whitening(c[:1].repeat(5, 1))
    with pytest.raises(ValueError, match=rf'must be \(N,{c.shape[1]}\)'): ff.verification.fit_whitening(c)(e[:, :10])
