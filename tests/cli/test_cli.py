"""The `fewshot-fastai` command on the shared images: train -> eval -> classify -> verify -> similarity -> cam
round trip, and each kind of user mistake (one line on stderr naming the file or argument, exit status 2).
Training and one mistake run as real processes (`python -m fewshot_fastai`); the other calls run the same `main` in
this process, as the console script does, which spares each one the ~5 s of importing torch and fastai."""
import csv, io, json, os, subprocess, sys
from pathlib import Path
import pytest
from _cli import run

@pytest.fixture(scope='module')
def trained(omni_small, tmp_path_factory):
    out = tmp_path_factory.mktemp('cli')/'run'
    r = run('train', omni_small, '--out', out, '--recipe', 'pairs', '--epochs', 2, '--set', 'bs=32', process=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return out

def test_train_writes_everything(trained):
    assert {p.name for p in trained.iterdir()} == {'model', 'loss.png', 'results.png', 'metrics.json', '.fewshot-run'}
    # a contrastive head has no weights of its own: the encoder is the whole ONNX export
    assert {p.name for p in (trained/'model').iterdir()} == {'config.json', 'model.safetensors', 'encoder.onnx'}
    m = json.loads((trained/'metrics.json').read_text())
    assert m['recipe'] == 'pairs' and m['epochs'] == 2 and m['params']['bs'] == 32 and len(m['valid_classes']) == 5
    assert 0 <= m['final']['accuracy'] <= 1 and m['verification_accuracy'] == m['final']['accuracy']

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
    assert ev['n_way'] == 5 and ev['episodes'] == 20 and ev['classes'] == 24
    assert ev['pairs'] == 480*479//2 and ev['same_pairs'] == 24*20*19//2 and 0 <= ev['eer'] <= 100
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
    # eval's accuracy and 95% interval, recomputed from the same 20 episodes' accuracies (mean +- 1.96 sd/sqrt(n))
    import statistics
    cf = ff.ClassFolder(omni_small, min_per_class=2)
    per = ff.episode_accuracy(learn, cf.images, ff.data.EpisodeSampler(cf.labels, 5, 1, 1, 20, seed=0).episodes())['per_episode']
    mean, half = statistics.mean(per), 1.96*statistics.stdev(per)/len(per)**0.5
    assert half > 0 and ev['accuracy'] == round(mean, 4) and ev['ci95'] == [round(mean - half, 4), round(mean + half, 4)]
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
    r = run('similarity', trained, queries[0][0], queries[2][0], '--out', tmp_path/'maps2', '--json', '--method', 'hires-cam', '--aug-smooth')
    assert r.returncode == 0 and json.loads(r.stdout)['method'] == 'hires-cam', r.stderr

def test_train_picks_drawings_for_omniglot_and_keeps_its_inference_configuration(omni_small, tmp_path):
    out = tmp_path/'draw'
    r = run('train', omni_small, '--out', out, '--epochs', 1, '--set', 'episodes_per_epoch=2', '--set', 'n_way=5')
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'recipe: drawings, picked from the images' in r.stderr
    cfg = json.loads((out/'model'/'config.json').read_text())
    assert cfg['recipe'] == 'drawings' and cfg['image']['ink_center']['fill'] == 0.8 and cfg['tta']['views'] == 'affine'
    assert {p.name for p in out.iterdir()} == {'model', 'loss.png', 'metrics.json', '.fewshot-run'}   # valid_pct=0: no results to show
    import fewshot_fastai as ff
    learn = ff.load_model(out/'model')
    f = sorted(omni_small.rglob('*.png'))[0]
    # the saved model prepares a new image as ink_center + resize does: what training saw
    x = learn.dls.image_batch([f])[0, 0].cpu()
    from PIL import Image
    import numpy as np
    ref = ff.datasets.ink_center(Image.open(f), fill=0.8).resize((32, 32), 2)
    assert np.abs(x.numpy()*255 - np.asarray(ref, float)).max() <= 1

def _copy_classes(src, dest, classes):
    import shutil
    for c in classes: shutil.copytree(src/c, dest/c)
    return dest

def test_faces_picked_for_orl_and_eval_gives_its_eer(orl, tmp_path):
    import fewshot_fastai as ff
    from fewshot_fastai.evaluate import pairs_eer
    subjects = sorted(p.name for p in orl.iterdir() if p.is_dir())
    fit, test = _copy_classes(orl, tmp_path/'fit', subjects[:6]), _copy_classes(orl, tmp_path/'test', subjects[6:10])
    out = tmp_path/'faces'
    r = run('train', fit, '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'recipe: faces, picked from the images (grey photos with a face found in 24 of the 24 looked at: dlib' in r.stderr
    assert '60 photos aligned, ' in r.stdout + r.stderr   # each of the 60 once
    m = json.loads((out/'metrics.json').read_text())
    assert m['recipe'] == 'faces' and m['epochs'] == 0 and m['params']['size'] == 150 and m['tta'] == {'views': 'flip', 'px': 0}
    # the alignment is part of the saved model: eval below applies it with no flag
    assert json.loads((out/'model'/'config.json').read_text())['image']['face_align'] == dict(size=150, padding=0.25, upsample=1, detector='hog+cnn')
    r = run('eval', out, test, '--n-way', 4, '--episodes', 10, '--json')
    assert r.returncode == 0, r.stderr[-2000:]
    ev = json.loads(r.stdout)
    # the same figure as the Python API on the saved model (its flip views and whitening applied with no flag)
    cf = ff.ClassFolder(test)
    assert ev['pairs'] == 40*39//2 and ev['eer'] == pairs_eer(ff.load_model(out/'model'), cf.images, cf.labels)['eer']
    assert ev['photos_aligned'] == 40 and 0 <= ev['no_face'] <= 2 and 'pairs: 40 photos aligned' in r.stderr

def test_eval_scores_lake_runs_from_a_zip_and_a_folder(trained, omni_small, tmp_path):
    import shutil
    import fewshot_fastai as ff
    from fewshot_fastai.evaluate import runs_error
    folder = ff.datasets.write_runs(omni_small, tmp_path/'all_runs', n_runs=3, n_way=5, seed=1)
    zipped = shutil.make_archive(str(tmp_path/'zips'/'all_runs'), 'zip', tmp_path, 'all_runs')
    res = []
    for path in (folder, zipped):
        r = run('eval', trained, '--runs', path, '--json')
        assert r.returncode == 0, r.stderr[-2000:]
        res.append(json.loads(r.stdout))
    assert res[0] == res[1] and res[0]['runs'] == 3 and res[0]['runs_trials'] == 15
    ref = runs_error(ff.load_model(trained/'model'), ff.datasets.load_runs(folder))
    assert res[0]['runs_error'] == ref['error'] and res[0]['runs_one_to_one_error'] == ref['one_to_one_error']

@pytest.mark.parametrize('args,msg', [
    (['train', 'NOPE', '--out', 'x'], 'NOPE: no such folder'),
    (['train', '{data}', '--out', 'x', '--recipe', 'knn'], "unknown recipe 'knn': choose from drawings, faces, pairs, photos"),
    (['train', '{data}', '--out', 'x', '--set', 'colour=1'], "recipe 'drawings' has no parameter 'colour'"),
    (['train', '{data}', '--out', 'x', '--recipe', 'pairs', '--set', 'epochs=many'], "epochs='many' is not a int"),
    (['train', '{data}', '--out', 'x', '--set', 'ink_center=2'], 'ink_center=2.0: must be a number in 0..1'),
    (['train', '{data}', '--out', 'x', '--recipe', 'faces', '--epochs', '3'], '--epochs: the faces recipe trains nothing'),
    (['train', '{data}', '--out', 'x', '--recipe', 'pairs', '--epochs', '0'], 'epochs=0: must be a number in 1..10000'),
    (['train', '{data}', '--out', 'x', '--set', 'size=4'], 'size=4: must be a number in 16..512'),
    (['train', '{data}', '--out', 'x', '--recipe', 'pairs', '--set', 'bs=4000'], 'no training batches'),
    (['train', '{data}', '--out', 'x', '--recipe', 'pairs', '--set', 'lr=nan'], 'lr=nan: must be a number in'),
    (['train', '{data}', '--out', '{model}'], 'holds an earlier run; give a new folder, or --force'),
    (['train', '{data}', '--out', '{model}/metrics.json'], 'a file, not a folder'),
    (['eval', '{model}'], 'give DATA (a folder of class folders) or --runs'),
    (['eval', '{model}', '--runs', 'nowhere.zip'], '--runs nowhere.zip: no such file or folder'),
    (['eval', '{tmp}', '{data}'], 'not a model folder'),
    (['eval', '{model}', '{data}', '--n-way', '99'], '--n-way 99'),
    (['classify', '{model}', 'missing.png', '--support', '{data}'], 'missing.png: no such file or folder'),
    (['classify', '{model}', '{data}', '--support', 'nosuchdir'], '--support nosuchdir: no such folder'),
    (['verify', '{model}', 'a.png', 'b.png'], 'a.png: no such image file'),
])
def test_user_errors_are_one_line(args, msg, trained, omni_small, tmp_path):
    fill = dict(data=omni_small, model=trained, tmp=tmp_path)
    # the first mistake in a real process: its exit status and stderr as a shell sees them
    r = run(*[a.format(**fill) for a in args], timeout=300, process=args[1] == 'NOPE')
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and msg in lines[0] and 'Traceback' not in r.stderr, r.stderr[-2000:]

def test_gan_command(omni_small, tmp_path):
    r = run('gan', omni_small, '--out', tmp_path/'gan', '--epochs', 1, '--bs', 32, '--invert', '--json')
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res['loss'] == 'hinge' and res['images'] == 480 and len(res['samples']) == 1 and Path(res['samples'][0]).is_file()
    assert (tmp_path/'gan'/'losses.png').is_file() and (tmp_path/'gan'/'metrics.json').is_file()
    # the offline ImageNet weights are installed with the package's extras: the distance is measured, never skipped
    assert [e for e, _ in res['frechet']] == [0, 1] and all(d > 0 for _, d in res['frechet'])

def test_force_replaces_an_earlier_run_as_a_whole_and_cam_names_never_collide(omni_small, trained, tmp_path):
    out = tmp_path/'run'
    r = run('train', omni_small, '--out', out, '--recipe', 'pairs', '--epochs', 1, '--set', 'head=l1', '--set', 'bs=32')
    assert r.returncode == 0, r.stderr[-2000:]
    assert {'encoder_head.onnx', 'encoder.onnx'} <= {p.name for p in (out/'model').iterdir()} and (out/'results.png').is_file()
    r = run('train', omni_small, '--out', out, '--epochs', 1, '--set', 'episodes_per_epoch=2', '--set', 'n_way=5', '--force')
    assert r.returncode == 0, r.stderr[-2000:]
    # nothing of the siamese run is left beside the new one
    assert {p.name for p in out.iterdir()} == {'model', 'loss.png', 'metrics.json', '.fewshot-run'}
    assert {p.name for p in (out/'model').iterdir()} == {'config.json', 'model.safetensors', 'encoder.onnx'}
    assert sorted(p.name for p in tmp_path.iterdir()) == ['run']
    # two images of one name in two folders: two overlays
    files = sorted(omni_small.rglob('*.png'))
    (tmp_path/'a').mkdir(); (tmp_path/'b').mkdir()
    (tmp_path/'a'/'x.png').write_bytes(files[0].read_bytes()); (tmp_path/'b'/'x.png').write_bytes(files[30].read_bytes())
    sup = tmp_path/'sup'
    for f in (files[1], files[31]): (sup/f.parent.name).mkdir(parents=True); (sup/f.parent.name/f.name).write_bytes(f.read_bytes())
    r = run('cam', trained, tmp_path/'a'/'x.png', tmp_path/'b'/'x.png', '--support', sup, '--out', tmp_path/'cams', '--json')
    assert r.returncode == 0, r.stderr[-2000:]
    pngs = [Path(o['png']) for o in json.loads(r.stdout)]
    assert len(set(pngs)) == 2 and all(p.is_file() for p in pngs)

def test_gan_command_oneshot_and_other_losses(omni_small, tmp_path):
    r = run('gan', omni_small, '--out', tmp_path/'one', '--oneshot', '--epochs', 1, '--bs', 32, '--invert', '--json')
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res['oneshot'] and res['classes'] == 24 and res['images'] == 480
    from PIL import Image
    assert Image.open(res['grid']).size[0] > 400 and (tmp_path/'one'/'models'/'oneshot_gan.pth').is_file()
    other = 'dagan' if res['generator'] == 'warp' else 'warp'
    r = run('gan', omni_small, '--out', tmp_path/'two', '--oneshot', '--generator', other, '--epochs', 1, '--bs', 32, '--invert', '--json')
    assert r.returncode == 0 and json.loads(r.stdout)['generator'] == other
    r = run('gan', omni_small, '--out', tmp_path/'dc', '--loss', 'dcgan', '--epochs', 1, '--bs', 32, '--json')
    assert r.returncode == 0 and json.loads(r.stdout)['loss'] == 'dcgan'
    r = run('gan', omni_small, '--out', tmp_path/'x', '--loss', 'lsgan')
    last = r.stderr.strip().splitlines()[-1]   # our contract: exit 2, one line naming the flag and its choices, nothing made
    assert r.returncode == 2 and '--loss' in last and 'lsgan' in last and all(c in last for c in ('hinge', 'wgan-gp', 'dcgan'))
    assert not (tmp_path/'x').exists()

def test_demo_settings_are_the_pairs_recipes(monkeypatch, tmp_path):
    "The demo's flags, when not given, take the `pairs` recipe's defaults (read from the recipe, so they cannot drift)"
    import fewshot_fastai as ff
    from fewshot_fastai.cli.commands import _parser
    from fewshot_fastai.cli.demo import demo
    from fewshot_fastai.cli.common import UserError
    pairs = ff.recipe('pairs')
    real = pairs.params()
    monkeypatch.setattr(type(pairs), 'params', lambda self: {**real, 'size': (36, real['size'][1])} if self.name == 'pairs' else real)
    a = _parser().parse_args(['demo', '--train', 'nope', '--out', str(tmp_path/'d'), '--lr', '0.01'])
    with pytest.raises(UserError, match='--train nope'): demo(a)
    assert (a.size, a.head, a.arch, a.epochs, a.lr) == (36, real['head'][0], real['arch'][0], real['epochs'][0], 0.01)
