"ff.datasets.ink_center / ff.datasets.InkCenter on real Omniglot drawings: centring, scale, invariances, loaders, save/load"
import json
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from fastai.vision.all import PILImageBW, Resize
import fewshot_fastai as ff

@pytest.fixture(scope='module')
def drawings(omni_small):
    cf = ff.ClassFolder(omni_small)
    return [cf.images[i] for i in range(0, len(cf.images), 37)][:12]

def _ink(im, thr=128): return np.asarray(im.convert('L')) < thr

def test_centre_of_mass_and_box(drawings):
    moved = 0
    for im in drawings:
        out = ff.datasets.ink_center(im, fill=0.7)
        assert out.size == im.size and out.mode == 'L'
        ys, xs = np.nonzero(_ink(out))
        # the ink's centre of mass lands in the middle; the longer side of its box is 70% of the side
        assert abs(ys.mean() + 0.5 - 52.5) < 1.5 and abs(xs.mean() + 0.5 - 52.5) < 1.5
        assert abs(max(np.ptp(ys), np.ptp(xs)) + 1 - 0.7*105) < 3
        ys0, xs0 = np.nonzero(_ink(im))
        moved += abs(ys0.mean() - 52) + abs(xs0.mean() - 52) > 3
    assert moved >= 3   # the drawings were off centre to begin with: the test is not vacuous

def test_same_answer_wherever_and_however_large_it_was_drawn(drawings):
    for im in drawings[:6]:
        g = im.convert('L')
        shifted = Image.new('L', g.size, 255); shifted.paste(g, (9, -6))   # moved by whole pixels (the ink stays inside)
        if _ink(shifted).sum() != _ink(g).sum(): continue
        a, b = np.asarray(ff.datasets.ink_center(g), float), np.asarray(ff.datasets.ink_center(shifted), float)
        assert np.abs(a - b).max() <= 1
        small = Image.new('L', g.size, 255); small.paste(g.resize((70, 70), Image.BILINEAR), (20, 5))   # drawn smaller
        ia, ib = _ink(ff.datasets.ink_center(g)), _ink(ff.datasets.ink_center(small))
        assert (ia & ib).sum()/(ia | ib).sum() > 0.6   # the same shape, at the same place and size
        raw = _ink(small)
        assert (ia & raw).sum()/(ia | raw).sum() < 0.5   # which it was not before

def test_light_ink_blank_images_and_bad_arguments(drawings):
    im = drawings[0].convert('L')
    dark = np.asarray(ff.datasets.ink_center(im), int)
    light = np.asarray(ff.datasets.ink_center(ImageOps.invert(im), ink='light'), int)
    assert np.abs((255 - light) - dark).max() <= 1
    rgb = ff.datasets.ink_center(im.convert('RGB'))
    assert rgb.mode == 'RGB' and np.abs(np.asarray(rgb.convert('L'), int) - dark).max() <= 1
    blank = Image.new('L', (40, 30), 255)
    assert np.array_equal(np.asarray(ff.datasets.ink_center(blank)), np.asarray(blank))
    for kw, word in [(dict(fill=0), 'fill'), (dict(fill=1.5), 'fill'), (dict(ink='black'), 'ink'), (dict(threshold=0), 'threshold')]:
        with pytest.raises(ValueError, match=word): ff.datasets.ink_center(im, **kw)
        with pytest.raises(ValueError, match=word): ff.datasets.InkCenter(**kw)

def test_item_transform_keeps_fastai_types(omni_small, drawings):
    f = next(p for p in omni_small.rglob('*.png'))
    x = PILImageBW.create(f)
    y = ff.datasets.InkCenter(fill=0.6)(x)
    assert isinstance(y, PILImageBW) and y.size == x.size
    assert np.array_equal(np.asarray(y), np.asarray(ff.datasets.ink_center(x, fill=0.6)))
    # in a pair DataBlock, before Resize
    dls = ff.SiameseDataLoaders.from_folder(omni_small, valid_pct=0.25, seed=0, item_tfms=[ff.datasets.InkCenter(), Resize(28)],
                                            bs=8, img_cls=PILImageBW, num_workers=0)
    b = dls.one_batch()
    assert b[0].shape == (8, 1, 28, 28)

def test_loaders_apply_it_at_training_and_inference_and_save_model_keeps_it(omni_small, tmp_path):
    cf = ff.ClassFolder(omni_small)
    prep = ff.datasets.InkCenter(fill=0.75)
    dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0.25, n_way=5, n_query=2,
                                                  episodes_per_epoch=3, valid_episodes=2, prep=prep)
    plain = ff.EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0.25, n_way=5, n_query=2,
                                                    episodes_per_epoch=3, valid_episodes=2)
    assert dls.prep is prep
    # a training image (rotation 0 of the first training file) is what image_batch makes of its file at inference
    i = next(i for i, l in enumerate(cf.labels) if cf.classes[l] in dls.train_classes)
    x_train = dls.train.dataset.x[0].float()/255
    assert torch.allclose(dls.image_batch([cf.files[i]])[0].cpu(), x_train, atol=1e-6)
    assert not torch.allclose(plain.image_batch([cf.files[i]])[0].cpu(), x_train, atol=0.05)
    learn = ff.episodic_learner(dls, 'conv4', pool='flatten')
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    folder = ff.save_model(learn, tmp_path/'m')
    assert json.loads((folder/'config.json').read_text())['image']['ink_center'] == dict(fill=0.75, ink='dark', threshold=128)
    again = ff.load_model(folder)
    q = cf.files[:6]
    assert torch.allclose(ff.embed(learn, q).cpu(), ff.embed(again, q).cpu(), atol=1e-5)
    assert repr(again.dls.prep) == repr(prep)
    # export / load_learner (pickle) keeps it too
    learn.export(tmp_path/'m.pkl')
    from fastai.learner import load_learner
    back = load_learner(tmp_path/'m.pkl')
    assert torch.allclose(ff.embed(back, q).cpu(), ff.embed(learn, q).cpu(), atol=1e-5)
    # a prep that JSON cannot describe is refused by name, not dropped
    odd = ff.EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0.25, n_way=5, n_query=2,
                                                  episodes_per_epoch=3, valid_episodes=2, prep=ImageOps.autocontrast)
    with pytest.raises(ValueError, match='prep'): ff.save_model(ff.episodic_learner(odd, 'conv4'), tmp_path/'odd')

def test_pair_learner_saves_the_item_transform(omni_small, tmp_path):
    dls = ff.SiameseDataLoaders.from_folder(omni_small, valid_pct=0.25, seed=0, item_tfms=[ff.datasets.InkCenter(fill=0.9), Resize(28)],
                                            bs=8, img_cls=PILImageBW, num_workers=0)
    learn = ff.siamese_learner(dls, ff.models.conv4, head='cosine')
    folder = ff.save_model(learn, tmp_path/'pair')
    assert json.loads((folder/'config.json').read_text())['image']['ink_center']['fill'] == 0.9
    again = ff.load_model(folder)
    q = sorted(omni_small.rglob('*.png'))[:4]
    assert torch.allclose(ff.embed(learn, q).cpu(), ff.embed(again, q).cpu(), atol=1e-5)
