"""Shared fixtures. Tests read the real Omniglot / ORL images from ``$FEWSHOT_DATA`` (the Makefile sets it to
../shared/data) and keep every extraction in a per-session cache folder."""
import os, warnings
from pathlib import Path
import pytest
from _data import copy_subset

DATA = os.environ.get('FEWSHOT_DATA')

if os.environ.get('PYTEST_XDIST_WORKER'):
    # several pytest workers share the cores: one thread each (and in the processes they start), or every worker's
    # OpenMP pool spins on every core and the suite runs many times slower
    os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = '1'
    import torch
    torch.set_num_threads(1)

@pytest.fixture(scope='session', autouse=True)
def _full_float32():
    "On a CUDA GPU, float32 convolutions and matmuls in full precision: PyTorch's default TF32 rounds to ~1e-3, and the\n    tests compare answers (batched vs one by one, GPU vs CPU after export) at 1e-5"
    import torch
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield

@pytest.fixture(scope='session', autouse=True)
def _cache(tmp_path_factory):
    os.environ['FEWSHOT_CACHE'] = str(tmp_path_factory.mktemp('cache'))
    warnings.filterwarnings('ignore', category=FutureWarning)  # torch.jit deprecation noise from timm
    yield

@pytest.fixture(scope='session')
def data_dir() -> Path:
    if not DATA or not Path(DATA).is_dir():
        pytest.fail('FEWSHOT_DATA must name the folder with the shared Omniglot/ORL zips (run tests via `make test`)')
    return Path(DATA)

@pytest.fixture(scope='session')
def omni1(data_dir):
    import fewshot_fastai as ff
    return ff.omniglot('background_small1')

@pytest.fixture(scope='session')
def orl(data_dir):
    import fewshot_fastai as ff
    return ff.orl_faces()

def _held_out(dls, cf=None):
    "The `ClassFolder` of the classes `dls` held out for validation (of `cf`, default the loaders' own folder)"
    keep = set(dls.valid_classes)
    return (cf if cf is not None else dls.class_folder).subset(lambda c: c in keep)

@pytest.fixture(scope='session')
def held_out():
    "`held_out(dls, cf=None)`: the held-out (validation) classes of `dls` as a `ClassFolder`"
    return _held_out

@pytest.fixture(scope='session')
def unseen_files(omni_dls, held_out) -> dict:
    "{class: its image files} of the characters `omni_dls` holds out (never trained on)"
    u = held_out(omni_dls)
    return u.files_by_class()

@pytest.fixture(scope='session')
def omni_small(omni1, tmp_path_factory):
    "24 real Omniglot characters x 20 drawers, nested Alphabet/characterNN like the original"
    return copy_subset(omni1, tmp_path_factory.mktemp('omni_small'), 24, 20)

@pytest.fixture(scope='session')
def omni_dls(omni_small):
    import fewshot_fastai as ff
    from fastai.vision.all import Resize, PILImageBW
    return ff.SiameseDataLoaders.from_folder(omni_small, valid_pct=0.25, seed=0, item_tfms=Resize(28), bs=32,
                                             img_cls=PILImageBW, num_workers=0)

@pytest.fixture(scope='session')
def orl_conv4(orl):
    "An untrained Conv4 episodic learner on the real ORL faces at 28x23 (seed 0), and their ClassFolder: embeds faces for the verification tests"
    import fewshot_fastai as ff
    from fastai.vision.all import PILImageBW, set_seed
    cf = ff.ClassFolder(orl)
    set_seed(0)
    dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=(28, 23), img_cls=PILImageBW, valid_pct=0.2, n_way=5,
                                                  n_query=2, episodes_per_epoch=2, valid_episodes=1)
    return ff.episodic_learner(dls, 'conv4'), cf

# the slowest files first (each one worker's, `--dist loadfile`): the two workers then end together, rather than one
# idling while the other runs a long file it was handed last
SLOW_FIRST = ['tests/learner/test_siamese.py', 'tests/serve/test_server.py', 'tests/cli/test_cli.py', 'tests/distrib/test_ddp.py',
              'tests/learner/test_classifier.py', 'tests/recipes/test_recipes.py', 'tests/callbacks/test_nway.py', 'tests/test_hostile.py']

def pytest_collection_modifyitems(session, config, items):
    rank = {f: i for i, f in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split('::')[0], len(rank)))   # stable: the rest keep their order
