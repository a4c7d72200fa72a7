"""Model folders written by an earlier release (`tests/fixtures/models/`, made by `tests/fixtures/make_models.py`:
tiny drawings and pairs models, and the faces recipe's (dlib's network, whitening, alignment), their `config.json` as that release wrote it, their weights made again from a seed) still load, and
answer as they answered then."""
import json, shutil, sys
from pathlib import Path
import pytest
import torch
import fewshot_fastai as ff

MODELS = Path(__file__).parent/'fixtures'/'models'
sys.path.insert(0, str(MODELS.parent))
from weights import write_weights  # noqa: E402

def _files(answers, name):
    "The answers name files inside a dataset: ORL's person/file for `faces`, else Omniglot's Alphabet/characterNN/file"
    root = Path(ff.orl_faces() if name == 'faces' else ff.omniglot('background_small2'))
    return [root/f for f in answers['files']]

@pytest.mark.parametrize('name', ['drawings', 'pairs', 'faces'])
def test_saved_folders_of_the_earlier_release_answer_the_same(name, tmp_path):
    if name == 'faces': pytest.importorskip('dlib')   # its image preparation aligns with dlib's detector and landmarks
    folder = shutil.copytree(MODELS/name, tmp_path/name)   # a copy: nothing may write beside the fixtures
    want = json.loads((folder/'answers.json').read_text())
    cfg = json.loads((folder/'config.json').read_text())
    digest = write_weights(folder, json.loads((folder/'weights.json').read_text()))
    if digest != cfg['weights_sha256']:   # the same tensors, serialised by another safetensors: the digest follows them
        (folder/'config.json').write_text(json.dumps({**cfg, 'weights_sha256': digest}, indent=1))
    learn = ff.load_model(folder)
    assert learn.model_config.recipe == name and learn.model_config.kind == cfg['kind']
    files = _files(want, name)
    assert torch.allclose(ff.embed(learn, files).cpu(), torch.tensor(want['embeddings']), atol=1e-5)
    if 'pair_probabilities' in want:
        got = ff.predict_pairs(learn, [(files[0], files[1]), (files[0], files[2])])
        assert torch.allclose(got.cpu(), torch.tensor(want['pair_probabilities']), atol=1e-5)
        assert cfg['calibration']['calibrated'] and learn.loss_func.calibrated
    else:
        got = ff.classify(learn, [files[1], files[3]], {'a': [files[0]], 'b': [files[2]]}, progress=False)[1]
        assert torch.allclose(got, torch.tensor(want['classify']), atol=1e-4)
        prep = dict(drawings=('affine', 'ink_center'), faces=('flip', 'face_align'))[name]
        assert cfg['tta']['views'] == prep[0] and prep[1] in cfg['image']   # the recipe's inference configuration came back
    if name == 'faces':   # the whitening fitted on the recipe's people is part of the model, and the photos are aligned
        assert learn.model.whitening is not None and isinstance(learn.dls.prep, ff.datasets.FaceAlign)
    # and what this release saves of it loads to the same answers again
    again = ff.load_model(ff.save_model(learn, tmp_path/'again'))
    assert torch.allclose(ff.embed(again, files).cpu(), torch.tensor(want['embeddings']), atol=1e-5)
