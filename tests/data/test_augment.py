"Elastic distortions (a training batch transform) on real Omniglot drawings"
import numpy as np
import pytest
import torch
from PIL import Image
from fasttransform import Pipeline
from fastai.vision.core import TensorImage
import fewshot_fastai as ff


@pytest.fixture(scope='module')
def drawings(omni1):
    "8 real characters at 40 px, float in [0, 1] (white background), as after IntToFloatTensor"
    files = sorted(omni1.rglob('*.png'))[::200][:8]
    arr = np.stack([np.asarray(Image.open(f).convert('L').resize((40, 40), Image.BILINEAR)) for f in files])
    return TensorImage(torch.tensor(arr, dtype=torch.float32)[:, None]/255)


def test_elastic_bends_each_image_its_own_way(drawings):
    torch.manual_seed(0)
    x = TensorImage(torch.cat([drawings[:1]]*4 + [drawings]))   # four copies of one drawing, then eight others
    y = ff.data.Elastic(magnitude=2., p=1.)(x, split_idx=0)
    assert y.shape == x.shape and y.dtype == x.dtype and isinstance(y, TensorImage)
    assert not torch.allclose(y, x, atol=1e-3)
    assert all(not torch.allclose(y[i], y[j], atol=1e-3) for i in range(4) for j in range(i + 1, 4))   # own field each
    assert y.min() >= x.min() - 1e-5 and y.max() <= x.max() + 1e-5   # interpolation: no new intensities
    ink_x, ink_y = (1 - x).sum((1, 2, 3)), (1 - y).sum((1, 2, 3))
    change = (ink_y - ink_x).abs()/ink_x   # local stretching thins or thickens a stroke; it does not vanish or swell
    assert change.max() < 0.6 and change.mean() < 0.25
    # a bend, not a global move: no shift of the whole image by up to 2 px reproduces the result
    for i in range(4):
        best = min((torch.roll(x[i], (dy, dx), (1, 2)) - y[i]).abs().mean().item() for dy in range(-2, 3) for dx in range(-2, 3))
        assert best > 1e-3


def test_elastic_size_follows_magnitude(drawings):
    torch.manual_seed(1)
    small = (ff.data.Elastic(magnitude=0.5, p=1.)(drawings, split_idx=0) - drawings).abs().mean()
    big = (ff.data.Elastic(magnitude=3., p=1.)(drawings, split_idx=0) - drawings).abs().mean()
    assert 0 < small < big
    assert torch.allclose(ff.data.Elastic(magnitude=0., p=1.)(drawings, split_idx=0), drawings, atol=1e-5)
    assert torch.equal(ff.data.Elastic(magnitude=3., p=0.)(drawings, split_idx=0), drawings)


def test_elastic_only_in_training_and_on_uint8(drawings):
    pipe = Pipeline([ff.data.Elastic(magnitude=3., p=1.)])
    pipe.split_idx = 1   # validation: untouched
    assert torch.equal(pipe(drawings), drawings)
    pipe.split_idx = 0
    assert not torch.allclose(pipe(drawings), drawings, atol=1e-3)
    u8 = TensorImage((drawings*255).to(torch.uint8))
    out = ff.data.Elastic(magnitude=2., p=1.)(u8, split_idx=0)
    assert out.dtype == torch.uint8 and out.shape == u8.shape and not torch.equal(out, u8)


def test_elastic_bad_arguments():
    with pytest.raises(ValueError, match='magnitude'): ff.data.Elastic(magnitude=-1)
    with pytest.raises(ValueError, match=r'\bp\b'): ff.data.Elastic(p=1.5)
    with pytest.raises(ValueError, match='Elastic: grid=1; it must be an integer >= 2'): ff.data.Elastic(grid=1)


def _on_byte_grid(x):
    "True where a float image is exactly k/255, as IntToFloatTensor makes it; interpolated pixels mostly are not"
    return torch.isclose(x*255, (x*255).round(), atol=1e-3)


@pytest.mark.parametrize('kind', ['episodes', 'classifier'])
def test_batch_tfms_act_on_training_batches_only(omni1, kind):
    """A regression: the loaders' batch transforms once sat in a Pipeline without split_idx, so fastai skipped those
    marked training-only (split_idx 0: `ff.data.Elastic`, fastai's `Brightness`/`Contrast`); its affine ones ran anyway"""
    from fastai.vision.all import PILImageBW
    cf = ff.ClassFolder(omni1).subset(lambda c: c.startswith('Greek'))
    kw = dict(size=28, img_cls=PILImageBW, valid_classes=lambda c: c.endswith(('01', '02', '03', '04', '05')),
              batch_tfms=[ff.data.Elastic(2., p=1.)])
    if kind == 'episodes': dls = ff.EpisodeDataLoaders.from_class_folder(cf, n_way=5, n_query=2, episodes_per_epoch=2, **kw)
    else: dls = ff.ClassifierDataLoaders.from_class_folder(cf, bs=16, valid_n_way=5, **kw)
    x = dls.train.one_batch()[0]
    assert _on_byte_grid(x).float().mean() < 0.9   # bent: resampled pixels
    xv = dls.valid.one_batch()[0]
    assert _on_byte_grid(xv).all()                  # validation images as stored
    if kind == 'classifier':   # its episodic fine-tuning loaders carry the same transforms
        assert _on_byte_grid(dls.episodes(n_way=5, n_query=2, episodes_per_epoch=2).train.one_batch()[0]).float().mean() < 0.9
