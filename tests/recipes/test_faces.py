"""The `faces` recipe on real ORL photos: FaceAlign inside the saved model (classify, SupportSet, load_model apply it
with no flag), ONNX on aligned chips, fine-tuning the face encoder in the fastai loop"""
import json
import pytest
import torch
import fewshot_fastai as ff
from fastai.vision.core import PILImage
from fewshot_fastai.evaluate import pairs_eer

pytest.importorskip('dlib')

@pytest.fixture(scope='module')
def split(orl):
    cf = ff.ClassFolder(orl)
    return cf.subset(lambda c: c in cf.classes[:4]), cf.subset(lambda c: c in cf.classes[4:10])

@pytest.fixture(scope='module')
def learn(split):
    return ff.recipe('faces')(split[0])

def test_faces_aligns_embeds_and_round_trips(learn, split, tmp_path):
    fit_cf, test_cf = split
    s = learn.model_config.stats
    assert s['photos'] == 40 and 0 <= s['no_face'] <= 2 and learn.model_config.arch == 'face_resnet'
    assert isinstance(learn.dls.prep, ff.datasets.FaceAlign)
    # unseen people are told apart (the bench measures the figure; here: far better than chance)
    assert pairs_eer(learn, test_cf.images, test_cf.labels)['eer'] < 5
    ff.save_model(learn, tmp_path/'m')
    assert json.loads((tmp_path/'m'/'config.json').read_text())['image']['face_align'] == dict(size=150, padding=0.25, upsample=1, detector='hog+cnn')
    back = ff.load_model(tmp_path/'m')
    assert isinstance(back.dls.prep, ff.datasets.FaceAlign) and back.model_config.recipe == 'faces'
    photos = test_cf.images[:6]
    assert torch.allclose(ff.embed(back, photos), ff.embed(learn, photos), atol=1e-5)
    # raw photos in, aligned inside: the embedding of a photo is the embedding of its chip
    chip = back.dls.prep.chip(photos[0])
    x = torch.from_numpy(__import__('numpy').asarray(chip)).permute(2, 0, 1)[None].float()/255
    with torch.no_grad(): direct = back.model.whitening(back.model.encode(x))   # the recipe's WCCN, kept in the folder
    assert chip.size == (150, 150) and torch.allclose(ff.embed(back, photos[:1], tta=0), direct, atol=1e-4)
    support = test_cf.files_by_class(1)
    queries = [f for f, l in zip(test_cf.files, test_cf.label_names()) if l in support][1::3]
    truth = [q.parent.name for q in queries]
    names, _ = ff.SupportSet(back, support).classify(queries)
    assert sum(n == t for n, t in zip(names, truth)) >= 0.9*len(queries)

def test_old_faces_folders_load_as_photos(orl, tmp_path):
    cf = ff.ClassFolder(orl)
    old = ff.recipe('photos')(cf.subset(lambda c: c in cf.classes[:3]), size=(64, 56))
    old.model_config.recipe = 'faces'   # what a folder of the ImageNet-taps recipe said before it was named photos
    ff.save_model(old, tmp_path/'old')
    assert ff.load_model(tmp_path/'old').model_config.recipe == 'photos'

def test_onnx_takes_aligned_chips(learn, split, tmp_path):
    ort = pytest.importorskip('onnxruntime')
    path, = ff.export_onnx(learn, tmp_path/'face.onnx')
    x = ff.inference.image_batch(learn.dls, split[1].images[:3])   # aligned by the loaders' FaceAlign, as the caller must
    assert tuple(x.shape) == (3, 3, 150, 150)
    out = ort.InferenceSession(str(path)).run(None, {'images': x.numpy()})[0]
    assert torch.allclose(torch.from_numpy(out), ff.embed(learn, split[1].images[:3], tta=0), atol=1e-4)

def test_the_face_encoder_fine_tunes_in_the_fastai_loop(split):
    fit_cf = split[0]
    dls = ff.EpisodeDataLoaders.from_class_folder(fit_cf, n_way=2, k_shot=1, n_query=1, episodes_per_epoch=2, valid_pct=0.5,
                                                  valid_episodes=1, size=150, prep=ff.datasets.FaceAlign(), img_cls=PILImage)
    learn = ff.episodic_learner(dls, 'face_resnet', pretrained=True)
    before = learn.model.encoder.fc.weight.detach().clone()
    learn.fine_tune(1, 1e-4, freeze_epochs=0)
    assert len(learn.recorder.values) == 1 and not torch.equal(before, learn.model.encoder.fc.weight)

def test_face_align_arguments_and_counts(orl):
    for kw, msg in [(dict(detector='mtcnn'), "detector='mtcnn': one of hog, hog\\+cnn, cnn"), (dict(upsample=5), 'upsample=5'),
                    (dict(size=8), 'size=8'), (dict(padding=-1), 'padding=-1')]:
        with pytest.raises(ValueError, match=msg): ff.datasets.FaceAlign(**kw)
    from PIL import Image
    a = ff.datasets.FaceAlign(detector='hog')
    blank = Image.new('RGB', (92, 112), (128, 128, 128))   # no face: cut from the whole photo, and counted
    assert a(blank).size == (150, 150) and (a.found, a.missed) == (0, 1)
    a(ff.ClassFolder(orl).images[0])
    assert (a.found, a.missed) == (1, 1) and a.counts() == '2 photos aligned, 1 without a detected face (cut from the whole photo)'
    with pytest.raises(ValueError, match="whiten='zca'"): ff.recipe('faces')(orl, whiten='zca')

def test_the_recipe_fine_tunes_with_a_margin_when_asked(split):
    learn = ff.recipe('faces')(split[0], finetune=1, whiten='none')
    s = learn.model_config.stats
    assert s['epochs'] == 1 and s['photos'] == 40 and len(learn.recorder.values) == 1   # after the head's epoch: one of all
    cbs = [type(c).__name__ for c in learn.cbs]
    assert 'AdditiveMargin' in cbs and learn.model.classifier.weight.shape == (4, 128)
    fresh = ff.models.load_dlib_face_resnet()
    assert not torch.equal(fresh.fc.weight, learn.model.encoder.fc.weight)
    with pytest.raises(ValueError, match='finetune=-1'): ff.recipe('faces')(split[0], finetune=-1)
