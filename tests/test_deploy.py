"Deployment without pickle: safetensors + JSON round trips for pair and episodic learners, and ONNX checked with onnxruntime"
import json
import numpy as np
import pytest
import torch
from fastai.vision.all import Resize, PILImageBW, set_seed
import fewshot_fastai as ff

@pytest.fixture(scope='module')
def unseen(unseen_files): return unseen_files

def _queries(unseen): return [f for fs in unseen.values() for f in fs[3:8]]

@pytest.mark.parametrize('head', ['contrastive', 'l1'])
def test_pair_learner_round_trip(omni_dls, unseen, head, tmp_path):
    set_seed(0)
    learn = ff.siamese_learner(omni_dls, ff.models.conv4, head=head)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 3e-3)
    support = ff.SupportSet(learn, {c: fs[:2] for c, fs in unseen.items()})
    folder = ff.save_model(learn, tmp_path/'model', support=support)
    assert sorted(p.name for p in folder.iterdir()) == ['config.json', 'model.safetensors']   # nothing to unpickle
    cfg = json.loads((folder/'config.json').read_text())
    assert cfg['head'] == head and cfg['image']['mode'] == 'L' and cfg['image']['resize']['size'] == [28, 28]
    again = ff.load_model(folder)
    assert isinstance(again, ff.learner.SiameseLearner) and len(again.dls.train_ds) == 0
    q = _queries(unseen)
    a, b = q[0], q[7]
    assert again.predict_pair(a, b) == (learn.predict_pair(a, b)[0], pytest.approx(learn.predict_pair(a, b)[1], abs=1e-5))
    assert again.predict((a, b))[0] == learn.predict((a, b))[0]
    l1, s1 = support.classify(q)
    l2, s2 = again.support_set.classify(q)
    assert l1 == l2 and torch.allclose(s1, s2, atol=1e-5) and again.support_set.labels == support.labels
    assert torch.allclose(ff.similarity_maps(learn, [a], [b]).score, ff.similarity_maps(again, [a], [b]).score, atol=1e-5)
    if head == 'contrastive': assert again.loss_func.thresh == learn.loss_func.thresh and again.loss_func.calibrated

def test_episodic_and_pretrained_round_trip(omni_small, omni_dls, unseen, tmp_path):
    cf = ff.ClassFolder(omni_small)
    dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0.25, n_way=5, n_query=2,
                                                  episodes_per_epoch=5, valid_episodes=2)
    learn = ff.episodic_learner(dls, 'conv4', pool='flatten')
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    again = ff.load_model(ff.save_model(learn, tmp_path/'epi'))
    sup, q = {c: fs[:1] for c, fs in unseen.items()}, _queries(unseen)
    assert ff.classify(again, q, sup, progress=False)[0] == ff.classify(learn, q, sup, progress=False)[0]
    assert again.predict(q[0], support=sup)[0] == learn.predict(q[0], support=sup)[0]
    # a pretrained encoder's ImageNet normalisation travels in the JSON
    pdls = ff.SiameseDataLoaders.from_folder(omni_small, valid_pct=0.25, seed=0, item_tfms=Resize(32), bs=16, num_workers=0)
    plearn = ff.siamese_learner(pdls, 'efficientnet_lite0', head='cosine', pretrained=True)
    folder = ff.save_model(plearn, tmp_path/'lite0')
    assert json.loads((folder/'config.json').read_text())['image']['normalize']['mean'] == pytest.approx([0.485, 0.456, 0.406])
    p2 = ff.load_model(folder)
    assert torch.allclose(ff.embed(plearn, q[:4]).cpu(), ff.embed(p2, q[:4]).cpu(), atol=1e-5)   # plearn unfitted: its model is still on the CPU

def test_one_typed_config_is_built_saved_and_loaded(omni_small, omni_dls, tmp_path):
    "Learners carry a `ModelConfig` (not a loose dict): checked on change, saved as the JSON it describes, loaded back equal"
    learn = ff.siamese_learner(omni_dls, 'conv4', head='l1', encoder_kwargs=dict(hidden=8))
    cfg = learn.model_config
    assert isinstance(cfg, ff.ModelConfig) and (cfg.kind, cfg.arch, cfg.head, cfg.n_in, cfg.size) == ('siamese', 'conv4', 'l1', 1, [28, 28])
    with pytest.raises(TypeError, match="no field 'recipie'"): cfg.update(recipie='pairs')   # a typo is not a silent new key
    with pytest.raises(ValueError, match="kind='pairs'"): ff.ModelConfig(kind='pairs', arch='conv4', n_in=1, size=[28, 28])
    cfg.update(recipe='pairs', stats=dict(epochs=3))
    with pytest.warns(DeprecationWarning, match='model_config'): old = learn.fewshot_config
    assert old == cfg.to_json() and old['recipe'] == 'pairs' and 'stats' not in old
    saved = json.loads((ff.save_model(learn, tmp_path/'m')/'config.json').read_text())
    assert {k: saved[k] for k in cfg.to_json()} == cfg.to_json() and 'stats' not in saved and 'pool' not in saved
    back = ff.load_model(tmp_path/'m').model_config
    assert back == ff.ModelConfig(**{**cfg.to_json()}) and back.stats == {}
    epi = ff.episodic_learner(ff.EpisodeDataLoaders.from_class_folder(ff.ClassFolder(omni_small), size=28, img_cls=PILImageBW,
                              valid_pct=0.25, n_way=5, n_query=2, episodes_per_epoch=2, valid_episodes=1), 'conv4', pool='flatten')
    assert (epi.model_config.kind, epi.model_config.pool, epi.model_config.head) == ('episodic', 'flatten', None)
    assert ff.load_model(ff.save_model(epi, tmp_path/'e')).model_config == epi.model_config

def test_a_koch_folder_saved_with_the_old_keyword_names_loads(omni_small, tmp_path):
    "koch_net's `img_size` / `n_embed` are now `size` / `emb_dim`: a folder of the previous release loads, the same model"
    dls = ff.SiameseDataLoaders.from_folder(omni_small, valid_pct=0.25, seed=0, item_tfms=Resize(96), bs=8, img_cls=PILImageBW, num_workers=0)
    learn = ff.siamese_learner(dls, 'koch_net', head='l1', encoder_kwargs=dict(size=96, width=0.125, emb_dim=16))
    folder = ff.save_model(learn, tmp_path/'k')
    cfg = json.loads((folder/'config.json').read_text())
    assert cfg['encoder_kwargs'] == dict(size=96, width=0.125, emb_dim=16)
    cfg['encoder_kwargs'] = dict(img_size=96, width=0.125, n_embed=16)   # as the previous release wrote it
    (folder/'config.json').write_text(json.dumps(cfg))
    back = ff.load_model(folder)
    assert back.model_config.encoder_kwargs == dict(size=96, width=0.125, emb_dim=16)
    files = dls.class_folder.files[:3]
    assert torch.allclose(ff.embed(back, files), ff.embed(learn, files), atol=1e-6)
    with pytest.warns(DeprecationWarning, match="'img_size' is now 'size'"): ff.models.koch_net(img_size=96, width=0.125)

def test_onnx_matches_the_model(omni_dls, unseen, tmp_path):
    ort = pytest.importorskip('onnxruntime')   # the `deploy` extra; make test installs it
    set_seed(0)
    learn = ff.siamese_learner(omni_dls, ff.models.conv4, head='l1')
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 3e-3)
    files = ff.export_onnx(learn, tmp_path/'enc.onnx')
    assert [f.name for f in files] == ['enc.onnx', 'enc_head.onnx']
    enc = ort.InferenceSession(str(files[0]), providers=['CPUExecutionProvider'])
    q = _queries(unseen)
    x = ff.inference.image_batch(learn.dls, q)
    e_onnx = torch.from_numpy(enc.run(None, {'images': x.cpu().numpy()})[0])     # a batch of 30: dynamic axis
    e_ref = ff.embed(learn, q)
    assert e_onnx.shape == e_ref.shape and (e_onnx - e_ref.cpu()).abs().max() < 1e-4
    head = ort.InferenceSession(str(files[1]), providers=['CPUExecutionProvider'])
    out = head.run(None, {'ea': e_onnx[:5].numpy(), 'eb': e_onnx[5:10].numpy()})[0]
    with torch.no_grad(): ref = learn.model.compare(e_ref[:5], e_ref[5:10])
    assert np.abs(out - ref.cpu().numpy()).max() < 1e-4
    # classify with ONNX embeddings gives the model's labels
    sup = {c: fs[:1] for c, fs in unseen.items()}
    es = torch.from_numpy(enc.run(None, {'images': ff.inference.image_batch(learn.dls, [v[0] for v in sup.values()]).cpu().numpy()})[0])
    onnx_labels = [list(sup)[i] for i in ff.inference.support_scores(learn, e_onnx, es, list(range(len(sup))), len(sup)).argmax(1).tolist()]
    assert onnx_labels == ff.classify(learn, q, sup, progress=False)[0]

def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='config.json: missing'): ff.load_model(tmp_path)
    (tmp_path/'config.json').write_text(json.dumps({'format': 'other'})); (tmp_path/'model.safetensors').write_bytes(b'')
    with pytest.raises(Exception): ff.load_model(tmp_path)
