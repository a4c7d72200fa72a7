"""The same learners, callbacks and inference on a CUDA GPU, in mixed precision; and a model trained on the GPU
used on the CPU. Marked `gpu`: skipped where torch sees no CUDA device (CI never has one)."""
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import pytest
import torch
from fastai.learner import load_learner
from fastai.vision.all import Resize, PILImageBW, set_seed
import fewshot_fastai as ff

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')]

def _fit(learn, n=1, lr=1e-3):
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(n, lr)

@pytest.fixture(scope='module')
def unseen_of(held_out):
    return held_out

def test_pretrained_siamese_on_gpu_everything(omni_small, unseen_of, tmp_path):
    "efficientnet_lite0 (Normalize stats live on the GPU) + every inference entry point + export to a CPU machine"
    dls = ff.SiameseDataLoaders.from_folder(omni_small, valid_pct=0.25, seed=0, item_tfms=Resize(32), bs=16, num_workers=0)
    assert dls.device.type == 'cuda'
    unseen = unseen_of(dls)
    nway = ff.NWayEval(unseen.images, unseen.labels, n_way=3, n_episodes=4, seed=0)
    learn = ff.siamese_learner(dls, 'efficientnet_lite0', head='contrastive', pretrained=True, cbs=[nway, ff.CAMCallback(2)],
                               path=tmp_path)
    learn.fine_tune(1, 1e-3)
    assert next(learn.model.parameters()).device.type == 'cuda'
    # the callback's last figure is the accuracy of its episodes under the trained model, recomputed here
    assert nway.last['accuracy'] == ff.episode_accuracy(learn, unseen.images, nway.episodes)['accuracy']
    a, b = unseen.files[0], unseen.files[25]
    same, p = ff.predict_pair(learn, a, b)
    sup = unseen.files_by_class(1)
    labels, scores = ff.classify(learn, unseen.files[1::7], sup, progress=False)
    assert ff.embed(learn, [a]).device.type == 'cuda'
    pm = ff.similarity_maps(learn, [a], [b])
    assert torch.isfinite(pm.a).all() and (tmp_path/'models'/'cam_epoch0.png').exists()
    learn.export(tmp_path/'gpu.pkl')
    cpu = load_learner(tmp_path/'gpu.pkl', cpu=True)
    assert next(cpu.model.parameters()).device.type == 'cpu'
    assert ff.predict_pair(cpu, a, b)[1] == pytest.approx(p, abs=1e-3)
    assert ff.classify(cpu, unseen.files[1::7], sup, progress=False)[0] == labels

@pytest.mark.parametrize('prec', ['to_fp16', 'to_bf16'])
def test_mixed_precision_siamese_and_episodic(omni_small, unseen_of, prec):
    set_seed(0)
    dls = ff.SiameseDataLoaders.from_folder(omni_small, valid_pct=0.25, seed=0, item_tfms=Resize(28), bs=16,
                                            img_cls=PILImageBW, num_workers=0)
    learn = getattr(ff.siamese_learner(dls, ff.models.conv4, head='contrastive'), prec)()
    _fit(learn, 2, 3e-3)
    assert all(torch.isfinite(torch.tensor(v[:2])).all() for v in learn.recorder.values)
    edls = ff.EpisodeDataLoaders.from_class_folder(ff.ClassFolder(omni_small), size=28, img_cls=PILImageBW, n_way=5,
                                                   n_query=3, episodes_per_epoch=10, valid_episodes=5)
    assert edls.device.type == 'cuda'
    cf = ff.ClassFolder(omni_small)
    nway = ff.NWayEval(cf.images, cf.labels, n_way=5, n_episodes=5, seed=0)
    elearn = getattr(ff.episodic_learner(edls, 'conv4', cbs=nway), prec)()
    _fit(elearn, 2, 3e-3)
    assert next(elearn.model.parameters()).device.type == 'cuda' and 0 <= nway.last['accuracy'] <= 1
    assert torch.isfinite(torch.tensor(elearn.recorder.values[-1][:2])).all()

def test_gan_on_gpu_mixed_precision(omni1, tmp_path):
    dls = ff.GANDataLoaders.from_folder(omni1, size=32, invert=True, max_images=256, bs=32)
    assert dls.device.type == 'cuda'
    smp, fr = ff.GANSamples(n=8), ff.GANFrechet(ff.gan.lite0_features(32), n=64)
    learn = ff.dcgan_learner(dls, cbs=[smp, fr, ff.GANCheckpoint('g')], path=tmp_path).to_fp16()
    with learn.no_bar(), learn.no_logging(): learn.fit(2)
    assert next(learn.model.parameters()).device.type == 'cuda' and len(fr.history) == 3
    assert all(torch.isfinite(torch.tensor(d)) for _, d in fr.history)
    again = ff.dcgan_learner(dls, path=tmp_path)
    assert ff.resume_gan(again, 'g') == 2

@pytest.mark.parametrize('loss', ['hinge', 'wgan-gp'])
def test_stable_and_oneshot_gans_on_gpu_mixed_precision(omni_small, tmp_path, loss):
    "The new GAN parts under to_fp16: spectral norm, DiffAugment, the gradient penalty, the moving average, one-shot pairs"
    dls = ff.GANDataLoaders.from_folder(omni_small, size=32, invert=True, bs=32)
    learn = ff.gan_learner(dls, loss, cbs=[ff.GANCheckpoint('s')], path=tmp_path).to_fp16()
    with learn.no_bar(), learn.no_logging(): learn.fit(2)
    assert next(learn.gen_ema.parameters()).device.type == 'cuda'
    assert torch.isfinite(torch.tensor(learn.recorder.values[-1][:2])).all()
    assert ff.resume_gan(ff.gan_learner(dls, loss, path=tmp_path), 's') == 2
    odls = ff.OneShotDataLoaders.from_folder(omni_small, invert=True, bs=32)
    olearn = ff.oneshot_learner(odls, loss).to_fp16()
    with olearn.no_bar(), olearn.no_logging(): olearn.fit(1)
    assert torch.isfinite(torch.tensor(olearn.recorder.values[-1][:2])).all()
    assert len(ff.generate_like(olearn, odls.class_folder.files[0], 4)) == 4

def test_cam_on_gpu():
    from skimage import data
    model = ff.efficientnet_lite0(pretrained=True).eval().cuda()
    res = ff.interpret.cam_result(model, ff.models.imagenet_batch([data.chelsea()]).cuda())
    assert res.method == 'cam' and res.target.tolist() == [285] and res.maps.device.type == 'cuda'
    plt.close('all')

def test_unfitted_learner_model_on_cpu_dls_on_gpu(omni_small, unseen_of):
    """A learner built on a GPU machine but not fitted keeps its model on the CPU while its `dls` sit on the GPU
    (fastai moves the model in `before_fit`). As fastai's own `_set_device` does, every entry point sends its batch
    to the model's device; the answers equal those of the same model on the GPU."""
    dls = ff.SiameseDataLoaders.from_folder(omni_small, valid_pct=0.25, seed=0, item_tfms=Resize(28), bs=16,
                                            img_cls=PILImageBW, num_workers=0)
    set_seed(0)
    learn = ff.siamese_learner(dls, ff.models.conv4, head='l1')
    assert dls.device.type == 'cuda' and next(learn.model.parameters()).device.type == 'cpu'
    unseen = unseen_of(dls)
    files = unseen.files[::9]
    pairs = list(zip(files[:-1], files[1:]))
    sup = unseen.files_by_class(1)
    eps = ff.data.EpisodeSampler(unseen.labels, 3, 1, 2, 4, seed=0).episodes()
    def answers():
        return (ff.embed(learn, files, tta=1).cpu(), ff.predict_pairs(learn, pairs), ff.classify(learn, files, sup, progress=False)[0],
                ff.episode_accuracy(learn, unseen.images, eps)['accuracy'], ff.evaluate.naive_episode_accuracy(learn, unseen.images, eps)['accuracy'])
    on_cpu = answers()
    assert on_cpu[0].device.type == 'cpu'
    # embeddings kept on the CPU (stored, or from ONNX) score against the model wherever it is
    s_cpu = ff.inference.similarity(learn, on_cpu[0][:3], on_cpu[0][3:6])
    learn.model.cuda()
    on_gpu = answers()
    assert torch.allclose(on_cpu[0], on_gpu[0], atol=1e-4) and torch.allclose(on_cpu[1], on_gpu[1], atol=1e-4)
    assert on_cpu[2:] == on_gpu[2:]
    assert torch.allclose(ff.inference.similarity(learn, on_cpu[0][:3], on_cpu[0][3:6]).cpu(), s_cpu.cpu(), atol=1e-4)
