"""Generation as augmentation: generated variants added to support sets (`with_generated`) and swapped into training
batches (`GeneratedVariants`), on the real Omniglot drawings, with a warp generator whose field is set by hand so
that what it draws is known exactly."""
import numpy as np
import pytest
import torch
from PIL import Image
from fastai.vision.all import PILImageBW, set_seed
from fastai.vision.core import TensorImage
import fewshot_fastai as ff

SHIFT = float(np.arctanh(0.25))   # coarse bias: 2*max_shift*tanh(b) = 0.125 of [-1, 1], i.e. 2 px at 32 px

@pytest.fixture(scope='module')
def gen(omni_small):
    set_seed(0)
    dls = ff.OneShotDataLoaders.from_folder(omni_small, invert=True, bs=16, n_valid=16)
    learn = ff.oneshot_learner(dls, nf=8, generator='warp', ema=None, consistency=0)
    return learn

def _shift_field(learn, px_left=True):
    g = learn.model.generator
    with torch.no_grad():
        for head in (g.coarse, g.fine): head.weight.zero_(); head.bias.zero_()
        g.coarse.bias[0] = SHIFT if px_left else 0.

def test_with_generated_adds_variants_after_the_real_images(gen, omni_small):
    cf = ff.ClassFolder(omni_small)
    files = {}
    for f, l in zip(cf.files, cf.label_names()): files.setdefault(l, []).append(f)
    labels = sorted(files)[:3]
    support = {l: files[l][:2] if k == 0 else files[l][:1] for k, l in enumerate(labels)}
    torch.nn.init.normal_(gen.model.generator.fine.weight, std=0.05)
    out = ff.gan.with_generated(gen, support, n=3, seed=5)
    assert list(out) == labels
    for l in labels:
        assert out[l][:len(support[l])] == support[l] and len(out[l]) == 4*len(support[l])
        assert all(isinstance(im, Image.Image) and im.size == (32, 32) for im in out[l][len(support[l]):])
    again = ff.gan.with_generated(gen, support, n=3, seed=5)
    assert all(a.tobytes() == b.tobytes() for l in labels for a, b in zip(out[l][2:], again[l][2:]))
    with pytest.raises(ValueError, match='support'): ff.gan.with_generated(gen, {})

def test_generated_variants_replace_training_images_by_what_the_generator_draws(gen, omni_small):
    _shift_field(gen)
    cf = ff.ClassFolder(omni_small)
    # white background, dark ink, float in [0, 1], at the generator's size: as a drawings batch after IntToFloatTensor
    x = TensorImage(torch.stack([torch.tensor(np.asarray(im.convert('L').resize((32, 32), Image.BILINEAR)), dtype=torch.float32)
                                 for im in cf.images[::40][:6]])[:, None]/255)
    tfm = ff.gan.GeneratedVariants(gen, p=1.)
    out = tfm(x, split_idx=0)
    # every image moved 2 px left, the uncovered columns are background (white: the generator's polarity is undone)
    assert torch.allclose(out[..., :-2], x[..., 2:], atol=1e-4) and torch.allclose(out[..., -1], torch.tensor(1.))
    assert torch.equal(tfm(x, split_idx=1), x)                                    # never on validation batches
    assert torch.equal(ff.gan.GeneratedVariants(gen, p=0.)(x, split_idx=0), x)
    half = ff.gan.GeneratedVariants(gen, p=0.5)
    torch.manual_seed(0)
    changed = [(o != i).any().item() for o, i in zip(half(x.repeat(8, 1, 1, 1), split_idx=0), x.repeat(8, 1, 1, 1))]
    assert 10 < sum(changed) < 38
    # other sizes go through the generator's size and back
    x28 = TensorImage(torch.nn.functional.interpolate(x, size=(28, 28), mode='bilinear'))
    o28 = tfm(x28, split_idx=0)
    assert o28.shape == x28.shape and (o28 - x28).abs().mean() > 0.01
    with pytest.raises(TypeError, match='IntToFloatTensor'): tfm(TensorImage((x*255).byte()), split_idx=0)
    with pytest.raises(ValueError, match='channels'): tfm(TensorImage(x.repeat(1, 3, 1, 1)), split_idx=0)
    with pytest.raises(ValueError, match='p='): ff.gan.GeneratedVariants(gen, p=2)

def test_drawings_recipe_trains_with_generated_variants(gen, omni_small):
    _shift_field(gen)
    tfm = ff.gan.GeneratedVariants(gen, p=1.)
    learn = ff.recipe('drawings')(omni_small, epochs=1, episodes_per_epoch=2, n_way=5, n_query=1, size=32, extra_tfms=[tfm],
                                  rotate=0, zoom=1., elastic=0)
    assert learn.model_config.stats['epochs'] == 1
    assert tfm in learn.dls.train.after_batch.fs and tfm not in learn.dls.valid.after_batch.fs
    # training batches are the drawings moved 8 px left: their rightmost 6 columns are background, which the
    # ink-centred drawings themselves are not
    with torch.no_grad(): gen.model.generator.coarse.bias[0] = 20.   # tanh -> 1: the largest shift, 0.25 of the side
    right = lambda: learn.dls.train.one_batch()[0][..., -6:].float()
    assert torch.allclose(right(), torch.tensor(1.))
    tfm.prob = 0.
    assert right().min() < 0.5
    assert 'extra_tfms' not in ff.recipe('drawings').settings({'extra_tfms': [tfm]})
