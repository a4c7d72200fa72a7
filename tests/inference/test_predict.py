"predict_pair on paths, PIL images and tensors; identical answers after export/load_learner"
import numpy as np
import pytest
import torch
from PIL import Image
from fastai.learner import load_learner
import fewshot_fastai as ff

@pytest.fixture(scope='module')
def trained(omni_dls):
    learn = ff.siamese_learner(omni_dls, ff.models.conv4, head='contrastive')
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(3, 3e-3)
    return learn

def test_predict_pair_input_kinds_agree(trained):
    cf = trained.dls.class_folder
    fa, fb = cf.files[0], cf.files[1]
    pil_a, pil_b = Image.open(fa), Image.open(fb)
    t_a = torch.tensor(np.array(pil_a.convert('L')))                  # (H,W) uint8
    t_b = torch.tensor(np.array(pil_b.convert('L')))[None].float()/255  # (1,H,W) float in [0,1]
    same, p = ff.predict_pair(trained, fa, fb)
    assert isinstance(same, bool) and 0 <= p <= 1 and same == (p > 0.5)
    for a, b in [(pil_a, pil_b), (t_a, t_b), (str(fa), pil_b)]:
        assert ff.predict_pair(trained, a, b)[1] == pytest.approx(p, abs=1e-5)
    assert trained.predict_pair(fa, fb)[1] == pytest.approx(p, abs=1e-5)

def test_predictions_follow_the_model(trained):
    "Over many unseen-character pairs, same pairs score higher than different ones"
    cf, s = trained.dls.class_folder, ff.data.pairs.find_pair_sampler(trained.dls)
    pairs = list(s.valid_pairs.items())[:80]
    probs = ff.predict_pairs(trained, [(cf.files[a], cf.files[b]) for a, (b, _) in pairs])
    same = torch.tensor([flag for _, (_, flag) in pairs])
    assert probs[same].mean() > probs[~same].mean() + 0.1

def test_export_load_learner_same_predictions(trained, tmp_path):
    cf = trained.dls.class_folder
    pairs = [(cf.files[i], cf.files[j]) for i, j in [(0, 1), (0, 300), (5, 250), (40, 41)]]
    before = ff.predict_pairs(trained, pairs)
    trained.export(tmp_path/'siamese.pkl')
    assert (tmp_path/'siamese.pkl').stat().st_size < 5e6     # the model, not the dataset
    learn2 = load_learner(tmp_path/'siamese.pkl')
    assert torch.allclose(ff.predict_pairs(learn2, pairs), before, atol=1e-5)   # learn2 on the CPU: GPU rounding
    assert learn2.loss_func.thresh == trained.loss_func.thresh

def test_bad_inputs(trained, tmp_path):
    f = trained.dls.class_folder.files[0]
    with pytest.raises(FileNotFoundError, match='nope.png'): ff.predict_pair(trained, tmp_path/'nope.png', f)
    (tmp_path/'bad.png').write_bytes(b'not an image')
    with pytest.raises(ValueError, match='bad.png: not a readable image'): ff.predict_pair(trained, tmp_path/'bad.png', f)
    with pytest.raises(ValueError, match=r'\(H,W\) or \(C,H,W\)'): ff.predict_pair(trained, torch.rand(2, 5, 8, 8), f)
    with pytest.raises(ValueError, match='in \\[0, 1\\]'): ff.predict_pair(trained, torch.randn(1, 8, 8)*3, f)
