"""fastai's own verbs on our learners, on the shared images: predict, test_dl + get_preds, show_batch / show_results,
ClassificationInterpretation and plot_top_losses, for pair and episodic learners, also after load_learner"""
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import pytest
import torch
from PIL import Image
from fastai.interpret import ClassificationInterpretation, Interpretation
from fastai.learner import load_learner
from fastai.vision.all import Resize, PILImageBW, set_seed
import fewshot_fastai as ff

def _titles(): return [ax.get_title() for fig in map(plt.figure, plt.get_fignums()) for ax in fig.axes if ax.get_title()]

@pytest.fixture(scope='module', params=['contrastive', 'l1', 'concat'])
def pair_learn(request, omni_dls):
    set_seed(0)
    learn = ff.siamese_learner(omni_dls, ff.models.conv4, head=request.param)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 3e-3)
    return learn

@pytest.fixture(scope='module')
def pairs(omni_dls):
    cf = omni_dls.class_folder
    s = ff.data.pairs.find_pair_sampler(omni_dls)
    return [(cf.files[a], cf.files[b]) for a, (b, _) in list(s.valid_pairs.items())[:10]]

def test_pair_predict_test_dl_get_preds(pair_learn, pairs, tmp_path):
    a, b = pairs[0]
    label, idx, probs = pair_learn.predict((a, b))
    p = ff.predict_pair(pair_learn, a, b)[1]
    assert label in ('same', 'different') and int(idx) == int(label == 'same')
    p_same = float(probs[1]) if probs.numel() == 2 else float(probs)
    assert p_same == pytest.approx(p, abs=1e-5) and (label == 'same') == (p > 0.5)
    # PIL images, tensors and a SiameseImage give the same answer
    pil = (Image.open(a), Image.open(b))
    assert pair_learn.predict(pil)[0] == label and pair_learn.predict(ff.SiameseImage(*pil))[0] == label
    # test_dl + get_preds: the numbers of predict_pairs, one row per pair
    preds, targs = pair_learn.get_preds(dl=pair_learn.dls.test_dl(pairs))
    assert targs is None and len(preds) == len(pairs)
    got = preds[:, 1] if preds.ndim == 2 else preds
    assert torch.allclose(got, ff.predict_pairs(pair_learn, pairs), atol=1e-5)
    # the same after export / load_learner (no training data)
    pair_learn.export(tmp_path/'pairs.pkl')
    again = load_learner(tmp_path/'pairs.pkl')
    assert again.predict((a, b))[0] == label
    assert torch.allclose(again.get_preds(dl=again.dls.test_dl(pairs))[0], preds, atol=1e-5)

def test_pair_interpretation(pair_learn):
    interp = ClassificationInterpretation.from_learner(pair_learn)
    cm = interp.confusion_matrix()
    assert list(interp.vocab) == ['different', 'same'] and list(pair_learn.dls.vocab) == ['different', 'same'] and cm.shape == (2, 2)
    y = torch.cat([b[2] for b in pair_learn.dls.valid])
    assert cm.sum() == len(y) and cm[1].sum() == int(y.sum())      # rows: the true classes
    acc = (cm[0, 0] + cm[1, 1])/cm.sum()
    with pair_learn.no_bar(): assert acc == pytest.approx(pair_learn.validate()[1], abs=1e-6)   # the accuracy metric
    plt.close('all')
    Interpretation.from_learner(pair_learn).plot_top_losses(4)
    titles = _titles()
    assert len(titles) == 4 and plt.gcf()._suptitle.get_text() == 'prediction / truth / loss / p(same)'
    for t in titles:
        pred, truth, loss, p = t.split(' / ')
        assert {pred, truth} <= {'same', 'different'} and float(loss) >= 0 and 0 <= float(p) <= 1
    plt.close('all')

@pytest.fixture(scope='module')
def epi(omni_small):
    cf = ff.ClassFolder(omni_small)
    dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0.25, n_way=5, n_query=3,
                                                  episodes_per_epoch=20, valid_episodes=5, rotations=4)
    set_seed(0)
    learn = ff.episodic_learner(dls, 'conv4')
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 3e-3)
    return learn, cf

def test_episodic_show_batch_and_results(epi):
    learn, cf = epi
    plt.close('all')
    learn.dls.show_batch()
    titles = _titles()
    sup = [t for t in titles if t.startswith('support: ')]
    assert len(sup) == 5 and len([t for t in titles if t.startswith('query: ')]) == 10
    assert all(t.split(': ')[1].split('@')[0] in cf.classes for t in sup)    # training classes (rotation-tagged)
    plt.close('all')
    learn.dls.valid.show_batch()
    assert all(t.split(': ')[1] in learn.dls.valid_classes for t in _titles())
    plt.close('all')
    learn.show_results(max_n=6)
    fig = plt.gcf()
    preds = [ax for ax in fig.axes if ax.get_title().startswith('pred: ')]
    assert len(preds) == 6 and all(ax.title.get_color() in ('green', 'red') for ax in preds)
    plt.close('all')

def test_episodic_get_preds_and_interpretation(epi):
    learn, cf = epi
    probs, targs = learn.get_preds()
    assert probs.shape == (5*15, 5) and targs.shape == (5*15,)
    assert torch.allclose(probs.sum(1), torch.ones(75), atol=1e-5)
    with learn.no_bar(): acc = learn.validate()[1]
    assert (probs.argmax(1) == targs).float().mean().item() == pytest.approx(acc, abs=1e-6)
    plt.close('all')
    Interpretation.from_learner(learn).plot_top_losses(4)   # fastai's own method, reaching ours by type dispatch
    titles = [ax.get_title() for ax in plt.gcf().axes]
    assert len(titles) == 12 and titles[0].startswith('query, loss') and titles[1].startswith('truth: ')
    losses = [float(t.split('loss ')[1]) for t in titles[::3]]
    # the true and predicted classes by their names in the episodes (the held-out characters)
    assert all(t.split(': ')[1].split(' (')[0] in learn.dls.valid_classes for t in titles[1::3] + titles[2::3])
    assert Interpretation.plot_top_losses.__module__ == 'fastai.interpret'   # fastai's method, not patched
    assert losses == sorted(losses, reverse=True)
    plt.close('all')

def test_episodic_predict_against_a_support_set(epi, tmp_path):
    learn, cf = epi
    valid = learn.dls.valid_classes[:4]
    files = cf.files_by_class(classes=valid)
    support = {c: fs[:1] for c, fs in files.items()}
    q = files[valid[2]][5]
    label, idx, probs = learn.predict(q, support=support)
    labels, scores = ff.classify(learn, [q], support, progress=False, method='prototype')
    assert label == labels[0] == valid[int(idx)] and probs.shape == (4,) and float(probs.sum()) == pytest.approx(1, abs=1e-5)
    with pytest.raises(ValueError, match=r'support set: learn.predict\(query, support='): learn.predict(q)
    learn.export(tmp_path/'epi.pkl')
    again = load_learner(tmp_path/'epi.pkl')
    assert isinstance(again, ff.learner.EpisodicLearner) and again.predict(q, support=support)[0] == label
