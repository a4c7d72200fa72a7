"""Classifier pre-training for few-shot learning: `ClassifierDataLoaders` (every training image once per epoch, in
shuffled batches; validation episodes of held-out classes), `classifier_learner` (a ProtoNet with a classifier
head), episodic fine-tuning on the same split, and save/load of the result. Real Omniglot characters."""
import collections
import pytest
import torch
from fastai.vision.all import PILImageBW, set_seed
import fewshot_fastai as ff

@pytest.fixture(scope='module')
def cls_dls(omni_small):
    cf = ff.ClassFolder(omni_small)
    return ff.ClassifierDataLoaders.from_class_folder(cf, size=28, bs=32, img_cls=PILImageBW, valid_pct=0.25,
                                                      valid_n_way=5, n_query=3, valid_episodes=20, rotations=4)

def test_batches_cover_every_training_image_once(cls_dls):
    dls = cls_dls
    n_train = len(dls.train_classes)
    assert dls.c == 4*n_train and len(dls.vocab) == dls.c and not set(dls.train_classes) & set(dls.valid_classes)
    assert all(v.rsplit('@', 1)[0] in dls.train_classes for v in dls.vocab)
    x, sy, y = dls.one_batch()
    assert x.shape == (32, 1, 28, 28) and sy.numel() == 0 and y.min() >= 0 and y.max() < dls.c
    assert 0 <= float(x.min()) and float(x.max()) <= 1   # IntToFloatTensor ran
    ds = dls.train.dataset
    def epoch():
        seen = collections.Counter()
        for xb, _, yb in dls.train:
            seen.update(yb.tolist())
        return seen
    first, order1 = epoch(), ds.order.clone()
    second, order2 = epoch(), ds.order.clone()
    # every rotated training image is drawn once per epoch (all but the last partial batch), 20 per class
    assert sum(first.values()) == len(dls.train)*32 == (len(ds.labels)//32)*32
    assert max(first.values()) <= 20 and sum(20 - v for v in first.values()) + 20*(dls.c - len(first)) < 32
    assert not torch.equal(order1, order2)   # a new order each epoch
    # the validation set is episodes of held-out characters
    xv, svy, qvy = dls.valid.one_batch()
    assert xv.shape[0] == 5 + 15 and svy.tolist() == list(range(5)) and len(qvy) == 15

def test_bad_arguments_are_named(omni_small, cls_dls):
    cf = ff.ClassFolder(omni_small)
    with pytest.raises(ValueError, match='bs=100000'):
        ff.ClassifierDataLoaders.from_class_folder(cf, size=28, bs=100000, img_cls=PILImageBW, valid_pct=0.25)
    edls = ff.EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0.25, n_way=5)
    with pytest.raises(TypeError, match='ClassifierDataLoaders'): ff.classifier_learner(edls, 'conv4')
    with pytest.raises(ValueError, match='n_classes'):
        ff.ProtoNet(ff.models.conv4(1), 'avg')(torch.zeros(4, 1, 28, 28), torch.zeros(0, dtype=torch.long))

def test_cosine_head_and_normalised_embeddings():
    torch.manual_seed(0)
    m = ff.ProtoNet(ff.models.conv4(1), 'flatten', normalize=True, n_classes=7, n_features=64)   # 28 px: Conv4 ends in 1x1 maps
    x = torch.rand(6, 1, 28, 28)
    m.eval()
    e, f = m.encode(x), m.features(x)
    assert torch.allclose(e.norm(dim=-1), torch.ones(6), atol=1e-5)
    w = m.classifier.weight
    manual = m.classifier.scale*(f/f.norm(dim=-1, keepdim=True)) @ (w/w.norm(dim=-1, keepdim=True)).t()
    assert torch.allclose(m(x, torch.zeros(0, dtype=torch.long)), manual, atol=1e-5)
    # an episode: minus the scaled squared distance of each query to its class prototype
    sl = torch.tensor([0, 1])
    assert torch.allclose(m(x, sl), -m.scale*(e[2:, None] - e[None, :2]).pow(2).sum(-1), atol=1e-5)

def test_pretraining_learns_new_classes_then_finetunes_and_saves(cls_dls, tmp_path):
    set_seed(0)
    learn = ff.classifier_learner(cls_dls, 'conv4', pool='flatten')
    assert isinstance(learn, ff.learner.EpisodicLearner) and learn.model.classifier.weight.shape[0] == cls_dls.c
    with learn.no_bar(), learn.no_logging():
        before = learn.validate()[1]
        learn.fit_one_cycle(4, 1e-2)
    after = learn.recorder.values[-1][2]
    # 5-way 1-shot accuracy on characters never trained on: chance is 0.2, and it has to rise with training
    assert after > 0.5 and after > before + 0.1, (before, after)
    # the prototypes of `classify` use the same embeddings as the validation episodes
    eps = cls_dls.valid.dataset.episodes
    r = ff.episode_accuracy(learn, cls_dls.valid.dataset.x, eps)
    assert r['accuracy'] == pytest.approx(after, abs=1e-6)
    # episodic fine-tuning on the same split, same model
    edls = cls_dls.episodes(n_way=5, n_query=3, episodes_per_epoch=10)
    assert edls.valid_classes == cls_dls.valid_classes and edls.train_classes == cls_dls.train_classes
    learn.dls = edls
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4)
    assert learn.recorder.values[-1][2] > 0.5
    # pickle-free round trip: the classifier head and the normalisation are rebuilt from the JSON
    again = ff.load_model(ff.save_model(learn, tmp_path/'cls'))
    assert again.model.normalize and again.model.classifier.weight.shape == learn.model.classifier.weight.shape
    imgs = [cls_dls.valid.dataset.x[i].float()/255 for i in range(6)]
    assert torch.allclose(ff.embed(learn, imgs), ff.embed(again, imgs), atol=1e-5)

def test_channels_last_gives_the_same_answers_and_trains(cls_dls):
    "fastai's `to_channelslast` (the benchmarks' speed lever on CPU) on our learners: same embeddings, still trains"
    import fastai.callback.channelslast  # noqa: F401  patches Learner.to_channelslast
    set_seed(0)
    learn = ff.classifier_learner(cls_dls, 'conv4', pool='flatten')
    imgs = [cls_dls.valid.dataset.x[i] for i in range(8)]
    before = ff.embed(learn, imgs).cpu()   # the model sits on the CPU until fit moves it to the dls' device
    learn.to_channelslast(use_amp=False)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert learn.model.encoder[0].weight.is_contiguous(memory_format=torch.channels_last)
    learn.model.to(memory_format=torch.contiguous_format)
    after = ff.embed(learn, imgs).cpu()
    assert not torch.allclose(before, after)   # it trained
    learn.model.to(memory_format=torch.channels_last)
    assert torch.allclose(ff.embed(learn, imgs).cpu(), after, atol=1e-5)   # same answers in either memory format

def test_additive_margin_on_training_batches_only(cls_dls, omni_small):
    "CosFace margin: training logits lose exactly margin*scale at the target; validation episodes are untouched"
    from fastai.callback.core import Callback
    seen = collections.defaultdict(list)
    class Grab(Callback):
        def __init__(self, order, tag): self.order, self.tag = order, tag
        def after_pred(self): seen[(self.tag, self.training)].append((self.learn.pred.detach().clone(), self.learn.yb[0].clone()))
    set_seed(0)
    learn = ff.classifier_learner(cls_dls, 'conv4')
    cb = ff.callbacks.AdditiveMargin(0.3)
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 3e-3, cbs=[Grab(0, 'before'), cb, Grab(2, 'after')])
    scale = float(learn.model.classifier.scale)   # after the last step; compare with the last training batch's scale
    for (b, y), (a, _) in zip(seen[('before', True)], seen[('after', True)]):
        diff = b - a
        assert torch.allclose(diff.gather(1, y[:, None]).squeeze(1), diff.gather(1, y[:, None]).squeeze(1)[0].expand(len(y)))
        assert float(diff.abs().sum() - diff.gather(1, y[:, None]).abs().sum()) < 1e-4   # only the target's logit moves
    last = seen[('before', True)][-1][0] - seen[('after', True)][-1][0]
    assert 0.3*scale*0.9 < float(last.max()) < 0.3*scale*1.1
    assert all(torch.equal(b, a) for (b, _), (a, _) in zip(seen[('before', False)], seen[('after', False)]))
    assert learn.recorder.values[-1][2] > 0.4   # 5-way accuracy on held-out characters after 2 epochs; chance is 0.2
    with pytest.raises(ValueError, match='margin=1.5'): ff.callbacks.AdditiveMargin(1.5)
    edls = ff.EpisodeDataLoaders.from_class_folder(ff.ClassFolder(omni_small), size=28, img_cls=PILImageBW, valid_pct=0.25, n_way=5)
    with pytest.raises(TypeError, match='cosine classifier'):
        plain = ff.episodic_learner(edls, 'conv4')
        with plain.no_bar(), plain.no_logging(): plain.fit(1, cbs=ff.callbacks.AdditiveMargin())

@pytest.mark.parametrize('lazy', [False, True])
def test_valid_pct_zero_trains_on_every_class(omni_small, lazy):
    "valid_pct=0, as fastai's RandomSplitter(0): every character trains, there are no validation episodes, fit runs"
    cf = ff.ClassFolder(omni_small, lazy=lazy)
    dls = ff.ClassifierDataLoaders.from_class_folder(cf, size=28, bs=32, img_cls=PILImageBW, valid_pct=0, rotations=4)
    assert dls.valid_classes == [] and dls.train_classes == cf.classes and dls.c == 4*len(cf.classes)
    assert len(dls.valid) == 0 and tuple(dls.size) == (28, 28)
    with pytest.raises(ValueError, match='valid_pct'):   # a pair split still needs held-out classes
        ff.SiameseDataLoaders.from_class_folder(cf, valid_pct=0)
    set_seed(0)
    learn = ff.classifier_learner(dls, 'conv4')
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    train_loss, valid_loss, acc = learn.recorder.values[-1]
    assert train_loss > 0 and valid_loss is None and acc is None
    # the episodes of fine-tuning keep the split: all classes train
    eps = dls.episodes(n_way=5, n_query=2, episodes_per_epoch=2)
    assert eps.valid_classes == [] and len(eps.valid) == 0 and len(eps.train) == 2
    # new images are still prepared as in training, and embedded
    assert ff.embed(learn, cf.images[:3]).shape[0] == 3

def test_classifier_loaders_take_the_episode_loaders_arguments(omni_small):
    "One declaration: the split / image / validation arguments are `EpisodeDataLoaders.from_class_folder`'s, defaults included"
    import inspect
    mine = inspect.signature(ff.ClassifierDataLoaders.from_class_folder).parameters
    theirs = inspect.signature(ff.EpisodeDataLoaders.from_class_folder).parameters
    shared = [k for k in mine if k in theirs and k not in ('cf', 'valid_n_way', 'num_workers')]
    assert {'size', 'valid_pct', 'seed', 'rotations', 'img_cls', 'prep'} <= set(shared)
    assert all(mine[k].default == theirs[k].default for k in shared)
    with pytest.raises(TypeError, match="unexpected argument 'n_way'"):
        ff.ClassifierDataLoaders.from_class_folder(ff.ClassFolder(omni_small), n_way=5)
    dls = ff.ClassifierDataLoaders.from_class_folder(ff.ClassFolder(omni_small), size=20, seed=3, valid_n_way=4, img_cls=PILImageBW)
    assert dls.valid.dataset.episodes[0].n_way == 4 and dls.train.one_batch()[0].shape[-2:] == (20, 20)
