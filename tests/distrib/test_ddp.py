"""Two real CPU processes (torchrun, gloo, 127.0.0.1) train every learner kind, one after the other in one launch,
through fastai's `learn.distrib_ctx()` on real Omniglot images: weights identical on both ranks, different data per
rank, the N-way column equal to a single-process evaluation of the same weights, and every run ends (timeout)."""
import importlib.util, os, socket, subprocess, sys
from pathlib import Path
import pytest
import torch
import fewshot_fastai as ff

HERE = Path(__file__).parent
spec = importlib.util.spec_from_file_location('ddp_worker', HERE/'worker.py')
worker = importlib.util.module_from_spec(spec); spec.loader.exec_module(worker)

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _launch(kind, data, out, timeout=300):
    torchrun = Path(sys.executable).with_name('torchrun')
    cmd = [str(torchrun), '--nproc_per_node', '2', '--master_addr', '127.0.0.1', '--master_port', str(_free_port()),
           str(HERE/'worker.py'), kind, str(data), str(out)]
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)

KINDS = ['siamese', 'episodic', 'classifier', 'dcgan', 'oneshot']

@pytest.fixture(scope='module')
def trained(omni_small, tmp_path_factory):
    "One two-process launch that trains every kind (a process group and its start-up paid once)"
    out = tmp_path_factory.mktemp('ddp')
    r = _launch(','.join(KINDS), omni_small, out, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out

@pytest.mark.parametrize('kind', KINDS)
def test_two_processes_train_in_step(kind, omni_small, trained):
    a, b = (torch.load(trained/kind/f'rank{k}.pt', weights_only=False) for k in (0, 1))
    assert (a['rank'], b['rank'], a['world']) == (0, 1, 2)
    assert a['state'].keys() == b['state'].keys()
    diff = [k for k in a['state'] if not torch.equal(a['state'][k], b['state'][k])]
    assert not diff, f'{kind}: parameters differ between ranks: {diff[:5]}'
    assert len(a['seen']) == len(b['seen']) > 0 and a['seen'] != b['seen']   # each rank trained on its own data
    # the weights moved: compare with the same learner, freshly built
    fresh, nway = worker.build(kind, omni_small)
    assert any(not torch.equal(v, a['state'][k]) for k, v in fresh.model.state_dict().items())
    if 'ema' in a:   # the generator's moving average: updated alike on both ranks, and not the generator itself
        assert all(torch.equal(a['ema'][k], b['ema'][k]) for k in a['ema'])
        assert any(not torch.equal(v, a['state'][f'generator.{k}']) for k, v in a['ema'].items())
    if kind == 'siamese':   # the threshold and calibration are fitted on the validation pairs of both ranks, gathered
        assert a['thresh'] == b['thresh'] and a['thresh'][0] is not None
        fresh.model.load_state_dict(a['state'])
        d, y = fresh.get_preds(act=lambda o: o)
        assert a['thresh'] == pytest.approx(ff.verification.fit_logistic(d, y), rel=1e-4)
    if nway is not None:
        assert a['nway'] == b['nway']
        fresh.model.load_state_dict(a['state'])
        assert [(e.support, e.query) for e in nway.episodes] == a['episodes']
        single = ff.episode_accuracy(fresh, nway.images, nway.episodes)['accuracy']
        assert a['nway'] == pytest.approx(single), f'{kind}: N-way under DDP {a["nway"]} vs one process {single}'

def test_cpu_launch_without_cpu_flag_is_a_clear_error(omni_small, tmp_path):
    "Its own launch: once a process group of `cpu=True` runs exists, accelerate no longer checks"
    r = _launch('siamese-nocpu', omni_small, tmp_path)
    assert r.returncode != 0 and not (tmp_path/'siamese-nocpu').exists()
    assert 'accelerate does not distribute this run' in r.stderr and 'learn.distrib_ctx(cpu=True)' in r.stderr
