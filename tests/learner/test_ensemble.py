"ff.ensemble_learner: members trained apart, classified together"
import pytest
import torch
from fastai.vision.all import PILImageBW, set_seed
import fewshot_fastai as ff


def _member(cf, seed, size=28, hidden=16):
    dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=size, img_cls=PILImageBW, n_way=5, n_query=2, valid_n_way=5,
                                                  episodes_per_epoch=4, valid_episodes=2, device='cpu', seed=seed)
    set_seed(seed)
    learn = ff.episodic_learner(dls, 'conv4', pool='flatten', encoder_kwargs=dict(hidden=hidden))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    return learn


def test_ensemble_sums_member_scores(omni_small, tmp_path):
    """Its embeddings are the members' side by side, so every class score is the sum of the members' scores; the
    inference entry points take it; a member saved and loaded back gives the same ensemble"""
    cf = ff.ClassFolder(omni_small)
    a, b = _member(cf, 0), _member(cf, 1)
    ens = ff.ensemble_learner([a, b])
    files = cf.files[::20][:8]
    ea, eb, ee = ff.embed(a, files), ff.embed(b, files), ff.embed(ens, files)
    assert ee.shape == (8, ea.shape[1] + eb.shape[1]) and torch.allclose(ee, torch.cat([ea, eb], 1), atol=1e-6)
    # scores of query images against class prototypes: the ensemble's equal the sum of the members'
    sup = cf.files_by_class(2, classes=cf.classes[:5])
    queries = [f for f, l in zip(cf.files, cf.label_names()) if l in sup][2::20]
    _, sa = ff.classify(a, queries, sup, progress=False)
    _, sb = ff.classify(b, queries, sup, progress=False)
    labels, se = ff.classify(ens, queries, sup, progress=False)
    assert torch.allclose(se, sa + sb, rtol=1e-4, atol=1e-3)
    assert labels == [list(sup)[i] for i in (sa + sb).argmax(1).tolist()]
    eps = ff.data.EpisodeSampler(cf.labels, 5, 1, 2, 3, seed=0).episodes()
    # the episode protocol on the ensemble (with 1-px test-time views) answers each query by the members' summed scores
    res = ff.episode_accuracy(ens, cf.images, eps, tta=1)
    want = []
    for e in eps:
        sup_e = {c: [cf.images[i] for i, l in zip(e.support, e.support_labels) if l == c] for c in range(e.n_way)}
        q = [cf.images[i] for i in e.query]
        s_sum = sum(ff.classify(m, q, sup_e, progress=False, tta=1)[1] for m in (a, b))
        want += (s_sum.argmax(1) == torch.tensor(e.query_labels)).int().tolist()
    assert res['outcomes'] == want and res['accuracy'] == pytest.approx(sum(want)/len(want))
    # members round-trip through save_model / load_model; the ensemble itself points to them
    ff.save_model(a, tmp_path/'a'); ff.save_model(b, tmp_path/'b')
    back = ff.ensemble_learner([ff.load_model(tmp_path/'a'), ff.load_model(tmp_path/'b')])
    assert torch.allclose(ff.embed(back, files), ee, atol=1e-5)
    with pytest.raises(ValueError, match='ensemble'): ff.save_model(ens, tmp_path/'e')


def test_ensemble_rejects_mismatched_members(omni_small, omni_dls):
    cf = ff.ClassFolder(omni_small)
    a = _member(cf, 0)
    with pytest.raises(ValueError, match='size'): ff.ensemble_learner([a, _member(cf, 1, size=32)])
    with pytest.raises(TypeError, match=r'learners \[1\]'): ff.ensemble_learner([a, ff.siamese_learner(omni_dls, ff.models.conv4, head='l1')])
    with pytest.raises(ValueError, match='no learners'): ff.ensemble_learner([])
