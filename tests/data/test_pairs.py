"Balanced pair sampling, class-level splits and the pair DataBlock, on real images"
import pickle, random
import numpy as np
import pytest
import torch
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from fastai.vision.all import Resize, PILImageBW
import fewshot_fastai as ff

def test_split_is_by_class(omni_dls):
    tr, va = set(omni_dls.train_classes), set(omni_dls.valid_classes)
    assert tr and va and not tr & va and len(va) == 6
    cf = omni_dls.class_folder
    train_labels = {cf.classes[cf.labels[i]] for i in omni_dls.train.dataset.items}
    valid_labels = {cf.classes[cf.labels[i]] for i in omni_dls.valid.dataset.items}
    assert train_labels == tr and valid_labels == va

def test_validation_pairs_fixed_balanced_and_inside_split(omni_dls):
    s = ff.data.pairs.find_pair_sampler(omni_dls)
    va = list(omni_dls.valid.dataset.items)
    pairs = {a: s.valid_pairs[a] for a in va}
    assert sum(same for _, same in pairs.values()) == len(va)//2   # exactly half same
    for a, (b, same) in pairs.items():
        assert b != a and s.is_valid[b]                              # partner from validation classes
        assert (s.labels[a] == s.labels[b]) == same
    y1 = torch.cat([b[2] for b in omni_dls.valid]); y2 = torch.cat([b[2] for b in omni_dls.valid])
    assert torch.equal(y1, y2)                                       # same pairs every epoch

def test_validation_pairs_reproducible_with_seed(omni_small):
    mk = lambda seed: ff.SiameseDataLoaders.from_folder(omni_small, valid_pct=0.25, seed=seed, item_tfms=Resize(28),
                                                        num_workers=0, img_cls=PILImageBW)
    s0, s0b, s1 = (ff.data.pairs.find_pair_sampler(mk(k)) for k in (0, 0, 1))
    assert s0.valid_pairs == s0b.valid_pairs and s0.valid_pairs != s1.valid_pairs

def test_training_pairs_fresh_each_epoch_and_balanced(omni_dls):
    random.seed(0); np.random.seed(0)   # the sampler draws from the global streams: the same draws whatever ran before
    s = ff.data.pairs.find_pair_sampler(omni_dls)
    tr = [int(i) for i in omni_dls.train.dataset.items]
    epoch = lambda: [s.encodes([a])[2].item() for a in tr]
    e1, e2 = epoch(), epoch()
    assert e1 != e2                                                  # fresh pairs at every draw
    same = sum(e1) + sum(e2)
    assert 0.4 < same/(2*len(tr)) < 0.6                              # 50/50 on average
    partners, rng = set(), random.Random(0)
    for a in tr[:100]:
        x = s.encodes([a])
        assert x[0].size == (105, 105)
    for _ in range(200):
        a = tr[np.random.randint(len(tr))]
        for same_flag in (True, False):
            b = s._partner(a, same_flag, rng)
            assert not s.is_valid[b] and (s.labels[a] == s.labels[b]) == same_flag and b != a
            partners.add(b)
    assert len(partners) > 50

def test_batches_grayscale_and_rgb(omni_small, orl):
    dls = ff.SiameseDataLoaders.from_folder(omni_small, valid_pct=0.25, seed=0, item_tfms=Resize(32), bs=8, num_workers=0)
    a, b, y = dls.one_batch()
    assert a.shape == b.shape == (8, 3, 32, 32) and y.shape == (8,) and a.max() <= 1
    faces = ff.SiameseDataLoaders.from_folder(orl, valid_pct=0.2, seed=0, item_tfms=Resize((56, 46)), bs=8,
                                              img_cls=PILImageBW, num_workers=0)
    a, b, y = faces.one_batch()
    assert a.shape == (8, 1, 56, 46) and set(y.tolist()) <= {0, 1}
    assert len(faces.valid_classes) == 8 and all(c.startswith('s') for c in faces.valid_classes)

def test_group_split_holds_out_whole_alphabets(omni1):
    dls = ff.SiameseDataLoaders.from_folder(omni1, valid_pct=0.2, seed=0, group=ff.datasets.alphabet_of,
                                            item_tfms=Resize(28), num_workers=0)
    va = {ff.datasets.alphabet_of(c) for c in dls.valid_classes}; tr = {ff.datasets.alphabet_of(c) for c in dls.train_classes}
    assert len(va) == 1 and not va & tr

def test_explicit_valid_classes(omni_small):
    cf = ff.ClassFolder(omni_small)
    dls = ff.SiameseDataLoaders.from_class_folder(cf, valid_classes=cf.classes[:3], item_tfms=Resize(28), num_workers=0)
    assert dls.valid_classes == cf.classes[:3]
    with pytest.raises(ValueError, match='valid_classes not found'):
        ff.SiameseDataLoaders.from_class_folder(cf, valid_classes=['Klingon/character01'])
    with pytest.raises(ValueError, match='valid_pct'): ff.data.class_split(cf.classes, valid_pct=1.5)

def test_show_batch_titles(omni_dls):
    omni_dls.show_batch(max_n=4)
    titles = [ax.get_title() for ax in plt.gcf().axes if ax.get_title()]
    assert len(titles) == 4 and set(titles) <= {'same', 'different'}
    plt.close('all')

def test_sampler_pickles_with_data_exports_without(omni_dls):
    "Pickling (DataLoader workers under spawn/forkserver) keeps the images; export (`new_empty`) drops them"
    s = ff.data.pairs.find_pair_sampler(omni_dls)
    a = int(omni_dls.valid.dataset.items[0])
    s2 = pickle.loads(pickle.dumps(s))
    x, x2 = s.encodes([a]), s2.encodes([a])
    assert np.array_equal(np.array(x[0]), np.array(x2[0])) and np.array_equal(np.array(x[1]), np.array(x2[1]))
    assert isinstance(omni_dls, ff.SiameseDataLoaders)
    empty = ff.data.pairs.find_pair_sampler(omni_dls.new_empty())
    assert empty.images is None and empty.img_cls is PILImageBW
    assert len(pickle.dumps(empty)) < 10_000
    with pytest.raises(RuntimeError, match='exported without its images'): empty.encodes([0])
    assert empty.encodes(['a', 'b']) == ['a', 'b']   # pairs pass through for inference
    assert s.images is not None and np.array_equal(np.array(s.encodes([a])[0]), np.array(x[0]))   # the original keeps them
    assert s.images is not None                      # the training loaders keep theirs
