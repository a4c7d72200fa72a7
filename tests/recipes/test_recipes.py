"""The recipes on the real shared images at tiny settings: each trains or fits, and round-trips through save_model /
load_model with its inference configuration (TTA, ink centring, whitening) and the same answers; the registry's errors"""
import json
from functools import partial
import pytest
import torch
import fewshot_fastai as ff
from fewshot_fastai.evaluate import pairs_eer

def test_registry_lists_each_recipe_with_its_figure_and_command():
    assert ff.recipes.names() == ['drawings', 'faces', 'pairs', 'photos']
    for n in ff.recipes.names():
        r = ff.recipe(n)
        assert r.fn is getattr(ff.recipes, n) and '%' in r.figure and r.command.startswith('python bench/')
        assert all(doc for _, doc in r.params().values()), f'{n}: a parameter without documentation'
    with pytest.raises(ValueError, match="unknown recipe 'cats': choose from drawings, faces, pairs, photos"): ff.recipe('cats')

def test_figures_live_in_one_data_file_that_the_bench_rewrites(tmp_path, monkeypatch):
    "The shipped measured.json names every recipe; record_figure replaces one entry whole and the figure reads it"
    shipped = ff.recipes.measured()
    assert sorted(shipped) == ff.recipes.names() and all({'figure', 'command', 'date'} <= set(v) for v in shipped.values())
    f = tmp_path/'measured.json'
    f.write_text(json.dumps(shipped))
    monkeypatch.setattr(ff.recipes.registry, 'MEASURED', f)
    e = ff.recipes.record_figure('pairs', '90.0% on test pairs', 'python bench/siamese_verification.py', date='2026-12-03')
    assert ff.recipes.measured() == {**shipped, 'pairs': e} and ff.recipe('pairs').figure == '90.0% on test pairs (2026-12-03)'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['measured.json']   # no temporary left beside it
    with pytest.raises(ValueError, match="unknown recipe 'cats'"): ff.recipes.record_figure('cats', 'x', 'y')
    assert ff.recipes.measured()['pairs'] == e

def test_overrides_are_typed_by_the_defaults_and_checked():
    o = ff.recipes.overrides('photos', ['size=112,92', 'flip=false', 'shrink=0.5', 'whiten=wccn', 'taps=blocks.3,blocks.4'])
    assert o == dict(size=(112, 92), flip=False, shrink=0.5, whiten='wccn', taps=('blocks.3', 'blocks.4'))
    assert ff.recipes.overrides('drawings', ['minutes=2.5', 'epochs=3', 'tta-px=0']) == dict(minutes=2.5, epochs=3, tta_px=0)
    for bad, msg in [('colour=1', "recipe 'drawings' has no parameter 'colour'"), ('size=big', "size='big' is not a int"),
                     ('size', "--set 'size': use KEY=VALUE"), ('channels_last=maybe', "channels_last='maybe' is not a bool")]:
        with pytest.raises(ValueError, match=msg): ff.recipes.overrides('drawings', [bad])

def test_pick_tells_drawings_faces_and_photos(omni_small, orl, tmp_path):
    assert ff.recipes.pick(omni_small)[0] == 'drawings'
    name, why = ff.recipes.pick(orl)
    assert name == 'faces' and 'grey photos with a face found in' in why
    # real photos without faces (skimage's cat and coffee cup, cut into classes): photos
    from skimage import data as skd
    from PIL import Image
    for c, img in (('cat', skd.chelsea()), ('cup', skd.coffee())):
        (tmp_path/c).mkdir()
        for i in range(3): Image.fromarray(img[30*i:30*i + 250, 40*i:40*i + 300]).save(tmp_path/c/f'{i}.png')
    name, why = ff.recipes.pick(tmp_path)
    assert name == 'photos' and why.startswith('colour photos, a face found in only 0 of the 6')

@pytest.fixture(scope='module')
def drawn(omni_small):
    cf = ff.ClassFolder(omni_small)
    return ff.recipe('drawings')(cf, epochs=1, episodes_per_epoch=2, n_way=5, n_query=2, valid_pct=0.25), cf

def test_drawings_trains_and_carries_its_inference_configuration(drawn, tmp_path):
    learn, cf = drawn
    assert learn.model_config.stats['epochs'] == 1 and len(learn.dls.valid_classes) == 6
    cfg = learn.model_config
    assert cfg.recipe == 'drawings' and cfg.tta == dict(views='affine', degrees=[-5., 0., 5.], scales=[1.], px=3)
    imgs = cf.images[:6]
    own = ff.embed(learn, imgs)   # no tta argument: the recipe's 15 views
    explicit = ff.embed(learn, imgs, tta=partial(ff.inference.affine_views, degrees=(-5, 0, 5), px=3))
    assert torch.allclose(own, explicit) and not torch.allclose(own, ff.embed(learn, imgs, tta=0), atol=1e-3)
    ff.save_model(learn, tmp_path/'m')
    saved = json.loads((tmp_path/'m'/'config.json').read_text())
    assert saved['tta'] == cfg.tta and saved['image']['ink_center']['fill'] == 0.8 and saved['recipe'] == 'drawings'
    back = ff.load_model(tmp_path/'m')
    assert torch.allclose(ff.embed(back, imgs), own, atol=1e-5)
    support = cf.files_by_class(1, classes=cf.classes[:5])
    queries = [f for f, l in zip(cf.files, cf.label_names()) if l in support][1::4]
    a, sa = ff.classify(learn, queries, support, progress=False)
    b, sb = ff.SupportSet(back, support).classify(queries)
    assert a == b and torch.allclose(sa, sb, atol=1e-4)
    _, s0 = ff.classify(learn, queries, support, progress=False, tta=0)
    assert not torch.allclose(sa, s0, rtol=0.05, atol=0)   # the TTA was applied by default, and can be switched off

def test_drawings_fits_a_time_budget(omni_small):
    "The epochs are those the probe says fit the budget: several here, and each one recorded"
    minutes = 0.1
    learn = ff.recipe('drawings')(omni_small, minutes=minutes, episodes_per_epoch=4, n_way=5, n_query=2)
    s = learn.model_config.stats
    assert s['epochs'] == int(minutes*60/s['epoch_seconds']) >= 2, s
    assert len(learn.recorder.values) == s['epochs']
    with pytest.raises(ValueError, match='minutes=0'): ff.recipe('drawings')(omni_small, minutes=0)

@pytest.fixture(scope='module')
def photoed(orl):
    cf = ff.ClassFolder(orl)
    fit_cf, test_cf = cf.subset(lambda c: c in cf.classes[:8]), cf.subset(lambda c: c in cf.classes[8:14])
    return ff.recipe('photos')(fit_cf, size=(112, 92)), fit_cf, test_cf

def test_photos_whitens_on_its_identities_and_keeps_it(photoed, tmp_path):
    learn, fit_cf, test_cf = photoed
    w = learn.model.whitening
    assert isinstance(w, ff.verification.Whitening) and learn.model_config.tta == dict(views='flip', px=0)
    # fitted on the fit identities' embeddings (flip views averaged): they come out centred
    raw = torch.stack([torch.stack([learn.model.encode(v).float() for v in ff.inference.flip_views(ff.inference.image_batch(learn.dls, [im]))]).mean(0)[0]
                       for im in fit_cf.images[:3]])
    assert torch.allclose(ff.embed(learn, fit_cf.images[:3]), w(raw), atol=1e-5)
    ff.save_model(learn, tmp_path/'f')
    back = ff.load_model(tmp_path/'f')
    assert isinstance(back.model.whitening, ff.verification.Whitening)
    assert torch.allclose(ff.embed(back, test_cf.images), ff.embed(learn, test_cf.images), atol=1e-5)
    # whitening on other identities helps unseen ones, as in the benchmark
    plain = ff.recipe('photos')(fit_cf, size=(112, 92), whiten='none')
    assert plain.model.whitening is None
    assert pairs_eer(learn, test_cf.images, test_cf.labels)['eer'] < pairs_eer(plain, test_cf.images, test_cf.labels)['eer']
    with pytest.raises(ValueError, match="whiten='zca'"): ff.recipe('photos')(fit_cf, whiten='zca')

def test_photos_onnx_includes_the_whitening(photoed, tmp_path):
    ort = pytest.importorskip('onnxruntime')
    learn, _, test_cf = photoed
    path, = ff.export_onnx(learn, tmp_path/'enc.onnx')
    x = ff.inference.image_batch(learn.dls, test_cf.images[:4])
    out = ort.InferenceSession(str(path)).run(None, {'images': x.numpy()})[0]
    assert torch.allclose(torch.from_numpy(out), ff.embed(learn, test_cf.images[:4], tta=0), atol=1e-4)

def test_pairs_trains_a_verifier_that_round_trips(omni_small, tmp_path):
    learn = ff.recipe('pairs')(omni_small, epochs=1, bs=32)
    s = learn.model_config.stats
    assert s['epochs'] == 1 and s['held_out_classes'] == 5
    # the reported figure is the model's own decisions on the held-out pairs, recomputed from their distances
    d, y = learn.get_preds(act=lambda o: o)
    acc = ((d.view(-1) < learn.loss_func.thresh).long() == y.view(-1).long()).float().mean().item()
    assert s['verification_accuracy'] == round(acc, 4) and s['valid_pairs'] == len(y) and acc > 0.5
    assert learn.model_config.recipe == 'pairs' and learn.model_config.tta is None
    ff.save_model(learn, tmp_path/'p')
    back = ff.load_model(tmp_path/'p')
    files = sorted(omni_small.rglob('*.png'))
    assert torch.allclose(ff.predict_pairs(back, [(files[0], files[1]), (files[0], files[40])]),
                          ff.predict_pairs(learn, [(files[0], files[1]), (files[0], files[40])]), atol=1e-5)
