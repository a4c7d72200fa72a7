"""The real `fewshot-fastai` command on the shared images: train -> eval -> classify -> verify -> similarity -> cam
round trip, and each kind of user mistake (one line on stderr naming the file or argument, exit status 2)"""
import csv, io, json, os, subprocess, sys
from pathlib import Path
import pytest

def run(*args, timeout=600):
    env = {**os.environ, 'PYTHONWARNINGS': 'ignore'}
    return subprocess.run([sys.executable, '-m', 'fewshot_fastai', *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)

@pytest.fixture(scope='module')
def trained(omni_small, tmp_path_factory):
    out = tmp_path_factory.mktemp('cli')/'run'
    r = run('train', omni_small, '--out', out, '--method', 'siamese', '--epochs', 2, '--episodes', 10, '--bs', 32)
    assert r.returncode == 0, r.stderr[-3000:]
    return out

def test_train_writes_everything(trained):
    assert {p.name for p in trained.iterdir()} == {'model', 'loss.png', 'results.png', 'metrics.json'}
    assert {p.name for p in (trained/'model').iterdir()} == {'config.json', 'model.safetensors', 'encoder.onnx', 'encoder_head.onnx'} \
        or {p.name for p in (trained/'model').iterdir()} == {'config.json', 'model.safetensors', 'encoder.onnx'}
    m = json.loads((trained/'metrics.json').read_text())
    assert m['method'] == 'siamese' and m['epochs'] == 2 and len(m['valid_classes']) == 5
    assert '5way_1shot' in m['final'] and 0 <= m['final']['5way_1shot'] <= 1

def test_eval_classify_verify_round_trip(trained, omni_small, tmp_path):
    m = json.loads((trained/'metrics.json').read_text())
    # a support folder of the held-out classes (1 image each) and query images of those classes
    sup, qdir = tmp_path/'support', tmp_path/'queries'
    queries = []
    for c in m['valid_classes']:
        files = sorted((omni_small/c).glob('*.png'))
        (sup/c).mkdir(parents=True); (sup/c/files[0].name).write_bytes(files[0].read_bytes())
        qdir.mkdir(exist_ok=True)
        for f in files[1:3]:
            q = qdir/f'{c.replace("/", "_")}_{f.name}'; q.write_bytes(f.read_bytes()); queries.append((q, c))
    r = run('eval', trained, omni_small, '--n-way', 5, '--episodes', 20, '--json')
    assert r.returncode == 0, r.stderr[-2000:]
    ev = json.loads(r.stdout)
    assert ev['n_way'] == 5 and ev['episodes'] == 20 and ev['ci95'][0] <= ev['accuracy'] <= ev['ci95'][1]
    r = run('classify', trained, '--support', sup, qdir, '--json')
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(r.stdout)
    assert [Path(o['query']).name for o in rows] == sorted(q.name for q, _ in queries)
    assert all(set(o) == {'query', 'label', 'score'} and o['label'] in m['valid_classes'] for o in rows)
    # the Python API on the same model and files gives the same labels
    import fewshot_fastai as ff
    learn = ff.load_model(trained/'model')
    labels, _ = ff.classify(learn, [Path(o['query']) for o in rows], {c: [next((sup/c).iterdir())] for c in m['valid_classes']},
                            progress=False)
    assert [o['label'] for o in rows] == labels
    r = run('classify', trained, '--support', sup, queries[0][0], queries[1][0], '--csv')
    assert r.returncode == 0 and list(csv.DictReader(io.StringIO(r.stdout)))[0]['query'] == str(queries[0][0])
    r = run('verify', trained, queries[0][0], queries[1][0], '--json')
    v = json.loads(r.stdout)
    assert r.returncode == 0 and isinstance(v['same'], bool) and 0 <= v['probability'] <= 1
    assert v['same'] == learn.predict_pair(queries[0][0], queries[1][0])[0]
    r = run('similarity', trained, queries[0][0], queries[2][0], '--out', tmp_path/'maps', '--json')
    assert r.returncode == 0 and Path(json.loads(r.stdout)['png']).is_file()
    r = run('cam', trained, queries[0][0], '--support', sup, '--out', tmp_path/'cams', '--json')
    assert r.returncode == 0 and Path(json.loads(r.stdout)[0]['png']).is_file()

def test_train_with_ink_center_keeps_it_in_the_model(omni_small, tmp_path):
    out = tmp_path/'ink'
    r = run('train', omni_small, '--out', out, '--epochs', 1, '--episodes-per-epoch', 5, '--episodes', 5, '--ink-center', 0.75)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((out/'model'/'config.json').read_text())['image']['ink_center']['fill'] == 0.75
    import fewshot_fastai as ff
    learn = ff.load_model(out/'model')
    f = sorted(omni_small.rglob('*.png'))[0]
    # the saved model prepares a new image as ink_center + resize does: what training saw
    x = learn.dls.image_batch([f])[0, 0].cpu()
    from PIL import Image
    import numpy as np
    ref = ff.ink_center(Image.open(f), fill=0.75).resize((28, 28), 2)
    assert np.abs(x.numpy()*255 - np.asarray(ref, float)).max() <= 1

@pytest.mark.parametrize('args,msg', [
    (['train', 'NOPE', '--out', 'x'], 'NOPE: no such folder'),
    (['train', '{data}', '--out', 'x', '--method', 'knn'], "argument --method: invalid choice: 'knn'"),
    (['train', '{data}', '--out', 'x', '--ink-center', '2'], '--ink-center 2.0'),
    (['eval', '{tmp}', '{data}'], 'not a model folder'),
    (['eval', '{model}', '{data}', '--n-way', '99'], '--n-way 99'),
    (['classify', '{model}', 'missing.png', '--support', '{data}'], 'missing.png: no such file or folder'),
    (['classify', '{model}', '{data}', '--support', 'nosuchdir'], '--support nosuchdir: no such folder'),
    (['verify', '{model}', 'a.png', 'b.png'], 'a.png: no such image file'),
])
def test_user_errors_are_one_line(args, msg, trained, omni_small, tmp_path):
    fill = dict(data=omni_small, model=trained, tmp=tmp_path)
    r = run(*[a.format(**fill) for a in args], timeout=300)
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and msg in lines[0] and 'Traceback' not in r.stderr, r.stderr[-2000:]

def test_gan_command(omni_small, tmp_path):
    r = run('gan', omni_small, '--out', tmp_path/'gan', '--epochs', 1, '--bs', 32, '--invert', '--json')
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res['loop'] == 'dcgan' and res['images'] == 480 and len(res['samples']) == 1 and Path(res['samples'][0]).is_file()
    assert (tmp_path/'gan'/'losses.png').is_file() and (tmp_path/'gan'/'metrics.json').is_file()
    assert res['frechet'] is None or [e for e, _ in res['frechet']] == [0, 1]
