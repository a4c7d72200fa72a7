"siamese_learner: a normal fastai Learner (fit, fine_tune, lr_find, show_results) on real Omniglot and ORL pairs"
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import pytest
import torch
from fastai.vision.all import Resize, PILImageBW, Normalize, set_seed
import fewshot_fastai as ff

def _quiet_fit(learn, n, lr=3e-3):
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(n, lr)

# (head, epochs, lr, accuracy to beat): measured 0.85-0.87 / 0.70-0.79 / 0.70-0.74 over seeds 0 and 1; chance is 0.5
@pytest.mark.parametrize('head,epochs,lr,min_acc', [('contrastive', 4, 3e-3, 0.7), ('l1', 6, 1e-2, 0.62), ('concat', 8, 1e-2, 0.6)])
def test_training_learns_on_unseen_characters(omni_dls, head, epochs, lr, min_acc):
    set_seed(0)
    learn = ff.siamese_learner(omni_dls, ff.conv4, head=head)
    _quiet_fit(learn, epochs, lr)
    losses = [v[0] for v in learn.recorder.values]
    acc = learn.recorder.values[-1][2]
    assert losses[-1] < losses[0]
    assert acc > min_acc, f'{head}: validation pair accuracy {acc} on unseen characters'

def test_contrastive_threshold_chosen_on_validation(omni_dls):
    learn = ff.siamese_learner(omni_dls, ff.conv4, head='contrastive')
    _quiet_fit(learn, 2)
    reported = learn.recorder.values[-1][2]  # read first: get_preds resets the recorder (it fires before_fit)
    d, y = learn.get_preds(act=lambda x: x)
    assert learn.loss_func.thresh == pytest.approx(ff.best_threshold(d, y))
    acc = ((d < learn.loss_func.thresh).long() == y).float().mean().item()
    assert reported == pytest.approx(acc, abs=1e-6)

def test_fine_tune_freezes_then_unfreezes_pretrained_encoder(omni_small):
    dls = ff.SiameseDataLoaders.from_folder(omni_small, valid_pct=0.25, seed=0, item_tfms=Resize(32), bs=32, num_workers=0)
    learn = ff.siamese_learner(dls, 'efficientnet_lite0', head='l1', pretrained=True)
    assert any(isinstance(t, Normalize) for t in dls.after_batch.fs)      # ImageNet stats added
    assert not any(p.requires_grad for p in learn.model.encoder.parameters() if p.ndim > 1)
    assert all(p.requires_grad for p in learn.model.head.parameters())
    before = learn.model.encoder.conv_stem.weight.clone()
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(1, 1e-3)
    assert all(p.requires_grad for p in learn.model.encoder.parameters())
    assert not torch.equal(before, learn.model.encoder.conv_stem.weight)  # encoder trained after unfreezing
    assert len(learn.opt.param_groups) == 2

def test_lr_find_and_show_results(omni_dls):
    learn = ff.siamese_learner(omni_dls, 'resnet18', head='concat')
    with learn.no_bar(): res = learn.lr_find(num_it=12, show_plot=False)
    assert res.valley > 0 and len(learn.recorder.losses) > 0
    learn.show_results(max_n=4)
    titles = [ax.get_title() for ax in plt.gcf().axes if ax.get_title()]
    assert len(titles) == 4 and all(t.startswith('pred: ') and '\ntruth: ' in t for t in titles)
    plt.close('all')

def test_orl_faces_contrastive(orl):
    dls = ff.SiameseDataLoaders.from_folder(orl, valid_pct=0.2, seed=1, item_tfms=Resize((56, 46)), bs=32,
                                            img_cls=PILImageBW, num_workers=0)
    learn = ff.siamese_learner(dls, ff.conv4, head='contrastive')
    _quiet_fit(learn, 3)
    assert learn.recorder.values[-1][2] > 0.7

def test_bad_head(omni_dls):
    with pytest.raises(ValueError, match="unknown head 'dot'"): ff.siamese_learner(omni_dls, ff.conv4, head='dot')
    with pytest.raises(ValueError, match="unknown head 'dot'"): ff.pair_loss('dot')
