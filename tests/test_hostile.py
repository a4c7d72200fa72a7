"""Hostile and unlucky use, round two: output folders that overlap the data, model files that ask for the network, other
files or unbounded resources, images in every container, bounds checked before training, one-line errors for every
command, SIGTERM during a save, and the Python API given the wrong things. Real commands, real files, real processes."""
import json, os, shutil, signal, socket, subprocess, sys, threading, time, warnings
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image
import fewshot_fastai as ff
from _data import copy_subset
from _cli import run, one_line_error

# ---------------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope='module')
def chars(omni1, tmp_path_factory) -> Path:
    "8 real Omniglot characters x 6 drawers, and a NOTES.txt beside them, as a user's data folder"
    d = copy_subset(omni1, tmp_path_factory.mktemp('d')/'chars8', 8, 6)
    (d/'NOTES.txt').write_text('my notes\n')
    return d

@pytest.fixture(scope='module')
def pairs_run(chars, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('runs')/'pairs1'
    r = run('train', chars, '--recipe', 'pairs', '--epochs', 1, '--set', 'bs=8', '--out', out)
    assert r.returncode == 0, r.stderr[-2000:]
    return out

@pytest.fixture(scope='module')
def faces4(orl, tmp_path_factory) -> Path:
    return copy_subset(orl, tmp_path_factory.mktemp('d')/'faces4', 4, 10)

@pytest.fixture(scope='module')
def faces_run(faces4, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('runs')/'faces'
    r = run('train', faces4, '--recipe', 'faces', '--out', out)
    assert r.returncode == 0, r.stderr[-2000:]
    return out

def _tree(d:Path) -> dict:
    "{relative path: bytes} of every file under `d`"
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob('*')) if p.is_file()}

def _copy_model(src:Path, dest:Path, **config) -> Path:
    "A copy of the model folder `src` with fields of its config.json replaced (None: removed)"
    shutil.copytree(src, dest)
    cfg = json.loads((dest/'config.json').read_text())
    for k, v in config.items():
        if v is None: cfg.pop(k, None)
        else: cfg[k] = v
    (dest/'config.json').write_text(json.dumps(cfg))
    return dest

@pytest.fixture
def no_network(monkeypatch):
    "Every connection attempt fails the test"
    def refuse(*a, **k): raise AssertionError(f'network access: {a[1:] if len(a) > 1 else a}')
    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket, 'create_connection', refuse)

def _mount_tmpfs(path:Path, size:str='1m', ro=False):
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}' + (',ro' if ro else ''), 'tmpfs', str(path)], capture_output=True)
    if r.returncode: pytest.skip(f'cannot mount a tmpfs here ({r.stderr.decode().strip()[:80]})')

# ------------------------------------------------------------------------ 1, 6, 8: --out never loses what it should not
def test_out_never_overlaps_the_data_and_force_replaces_only_a_run(chars, pairs_run, tmp_path):
    before = _tree(chars)
    for out, msg in ((chars, 'is the data folder'), (chars/'sub', 'is inside the data folder'), (chars.parent, 'holds the data folder')):
        for force in ([], ['--force']):
            one_line_error(run('train', chars, '--recipe', 'pairs', '--epochs', 1, '--set', 'bs=8', '--out', out, *force), msg)
    assert _tree(chars) == before and not (chars/'sub').exists()
    mine = tmp_path/'mine'; mine.mkdir(); (mine/'thesis.tex').write_text('years of work')
    one_line_error(run('train', chars, '--recipe', 'pairs', '--epochs', 1, '--out', mine, '--force'), 'not a fewshot-fastai run')
    assert (mine/'thesis.tex').read_text() == 'years of work'
    # a run of ours is refused without --force (every command alike), and a folder of the user's even with it
    other = tmp_path/'other'; shutil.copytree(pairs_run, other)
    two = [str(f) for f in sorted(chars.rglob('*.png'))[:2]]
    for cmd in (['train', chars, '--recipe', 'pairs', '--epochs', 1], ['gan', chars, '--epochs', 1, '--bs', 8],
                ['similarity', pairs_run, *two], ['cam', pairs_run, two[0], '--support', chars]):
        one_line_error(run(*cmd, '--out', other), 'holds an earlier run')
        one_line_error(run(*cmd, '--out', mine, '--force'), 'not a fewshot-fastai run')
    assert _tree(other) == _tree(pairs_run) and (mine/'thesis.tex').read_text() == 'years of work'
    one_line_error(run('similarity', pairs_run, *two, '--out', pairs_run/'model', '--force'), 'is inside the model')
    one_line_error(run('cam', pairs_run, two[0], '--support', chars, '--out', chars/'cams'), 'is inside the support folder')
    assert _tree(chars) == before

def test_symlinked_out_is_written_through(chars, pairs_run, tmp_path):
    target = tmp_path/'target'
    shutil.copytree(pairs_run, target)
    link = tmp_path/'linkrun'; link.symlink_to(target)
    r = run('train', chars, '--recipe', 'pairs', '--epochs', 1, '--set', 'bs=8', '--set', 'seed=1', '--out', link, '--force')
    assert r.returncode == 0, r.stderr[-2000:]
    assert link.is_symlink() and (target/'model'/'config.json').is_file()
    assert json.loads((target/'metrics.json').read_text())['params']['seed'] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]   # no temporary left
    learn = ff.load_model(target/'model')
    mlink = tmp_path/'mlink'; (tmp_path/'mtarget').mkdir(); mlink.symlink_to(tmp_path/'mtarget')
    ff.save_model(learn, mlink)
    assert mlink.is_symlink() and (tmp_path/'mtarget'/'model.safetensors').is_file()

def test_gan_checks_before_it_creates(chars, pairs_run, tmp_path):
    out = tmp_path/'g'
    one_line_error(run('gan', tmp_path/'nosuch', '--out', out), 'no such folder')
    one_line_error(run('gan', chars, '--out', out, '--epochs', 0), '--epochs 0')
    one_line_error(run('gan', chars, '--out', out, '--generator', 'dagan'), 'only with --oneshot')
    assert not out.exists()
    before = (pairs_run/'metrics.json').read_bytes()
    one_line_error(run('gan', chars, '--out', pairs_run, '--epochs', 1), 'holds an earlier run')
    assert (pairs_run/'metrics.json').read_bytes() == before

# ------------------------------------------------------------------------------- 2, 4, 9, 10: what a model file may ask
def test_model_files_name_only_what_the_registry_knows(pairs_run, tmp_path, no_network):
    src = pairs_run/'model'
    cases = [(dict(arch='mobilenet_v3_small', encoder_kwargs={'weights': 'IMAGENET1K_V1'}), "'weights' is not a parameter"),
             (dict(arch='resnet10t', encoder_kwargs={'checkpoint_path': '/etc/passwd'}), "'checkpoint_path' is not a parameter"),
             (dict(encoder_kwargs={'pretrained': True}), "'pretrained' is not a parameter"),
             (dict(encoder_kwargs={'hidden': 6000}), 'parameters, more than'),
             (dict(encoder_kwargs={'hidden': 'x'}), 'numbers, flags'),
             (dict(size=[2100, 40]), 'ints in 8..512'),
             (dict(tta={'views': 'affine', 'degrees': list(range(64)), 'scales': [1 + i/100 for i in range(64)]}), 'at most 64'),
             (dict(tta={'views': 'shift', 'px': 1000000000}), 'at most 16 px'),
             (dict(calibration={'thresh': float('nan'), 'scale': 1., 'calibrated': True}), 'NaN'),
             (dict(support_labels=['a', 'a']), 'distinct strings')]
    for i, (fields, msg) in enumerate(cases):
        with pytest.raises(ValueError, match=msg): ff.load_model(_copy_model(src, tmp_path/f'm{i}', **fields))
    deep = _copy_model(src, tmp_path/'deep'); (deep/'config.json').write_text('[' * 100000 + ']' * 100000)
    one_line_error(run('verify', deep, src/'config.json', src/'config.json'), 'nested too deeply')
    ff.load_model(src)   # the real one loads, with the network blocked

def test_model_files_are_read_as_regular_files_of_the_folder(pairs_run, tmp_path):
    src = pairs_run/'model'
    z = _copy_model(src, tmp_path/'zero'); (z/'model.safetensors').unlink(); (z/'model.safetensors').symlink_to('/dev/zero')
    with pytest.raises(ValueError, match='symbolic link'): ff.load_model(z)
    out = _copy_model(src, tmp_path/'out'); (out/'model.safetensors').unlink(); (out/'model.safetensors').symlink_to(src/'model.safetensors')
    with pytest.raises(ValueError, match='symbolic link'): ff.load_model(out)
    d = _copy_model(src, tmp_path/'dir'); (d/'model.safetensors').unlink(); (d/'model.safetensors').mkdir()
    with pytest.raises(ValueError, match='not a regular file'): ff.load_model(d)
    fifo = _copy_model(src, tmp_path/'fifo'); (fifo/'config.json').unlink(); os.mkfifo(fifo/'config.json')
    res = []
    t = threading.Thread(target=lambda: res.append(pytest.raises(ValueError, ff.load_model, fifo)), daemon=True)
    t.start(); t.join(30)
    assert res and 'not a regular file' in str(res[0].value)

def test_nan_weights_are_refused(pairs_run, tmp_path):
    from safetensors.torch import load_file, save_file
    m = _copy_model(pairs_run/'model', tmp_path/'nan', weights_sha256=None)
    t = load_file(m/'model.safetensors')
    k = next(k for k, v in t.items() if v.is_floating_point())
    t[k] = torch.full_like(t[k], float('nan'))
    save_file(t, m/'model.safetensors', metadata={'format': 'fewshot_fastai/1'})
    with pytest.raises(ValueError, match='NaN or infinite'): ff.load_model(m)

# ------------------------------------------------------------------------------------------ 3: images of any container
def _variants(src:Path, d:Path) -> dict:
    "The same drawing as 8-bit grey, 16-bit grey, ink on a transparent RGBA and LA background, a palette PNG, and RGB"
    g = np.asarray(Image.open(src).convert('L'))
    d.mkdir(exist_ok=True)
    out = {'L': Image.fromarray(g, 'L'), 'I;16': Image.fromarray(g.astype(np.uint16)*257),
           'RGBA': Image.fromarray(np.dstack([np.zeros_like(g)]*3 + [255 - g]), 'RGBA'),
           'LA': Image.fromarray(np.dstack([np.zeros_like(g), 255 - g]), 'LA'),
           'P': Image.fromarray(g, 'P'), 'RGB': Image.fromarray(np.dstack([g]*3), 'RGB')}
    out['P'].putpalette([v for i in range(256) for v in (i, i, i)])
    paths = {}
    for k, im in out.items(): im.save(d/f'{k.replace(";", "")}.png'); paths[k] = d/f'{k.replace(";", "")}.png'
    return paths

def test_every_container_reaches_the_network_alike(chars, tmp_path):
    src = sorted(chars.rglob('*.png'))[0]
    paths = _variants(src, tmp_path/'v')
    assert Image.open(paths['I;16']).mode == 'I;16' and Image.open(paths['RGBA']).mode == 'RGBA'
    ref = np.asarray(ff.data.decode_image(paths['L'])).astype(int)
    assert ref.min() < 50 and ref.max() > 200   # a drawing: ink and paper
    for k, p in paths.items():
        got = np.asarray(ff.data.decode_image(p).convert('L')).astype(int)
        assert np.abs(got - ref).max() <= 1, k
    # and the same embedding through a learner
    cf = ff.ClassFolder(chars)
    from fastai.vision.all import PILImageBW
    dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0, n_way=5, n_query=1, episodes_per_epoch=1)
    learn = ff.episodic_learner(dls, 'conv4')
    e = ff.embed(learn, list(paths.values()))
    assert (e - e[:1]).norm(dim=1).max() < 1e-2*e[0].norm()

def test_arrays_and_tensors_follow_one_rule():
    from fastai.vision.all import PILImageBW, PILImage
    px = lambda x, cls=PILImageBW: np.asarray(ff.data.to_image(x, cls)).reshape(-1)[0]
    assert px(np.full((8, 8), 0.5)) == px(torch.full((8, 8), 0.5)) == px(np.full((8, 8), 128, np.uint8)) == 128
    assert px(np.full((8, 8), 30000, np.uint16)) == round(30000/257)
    assert px(np.full((8, 8, 3), 0.25, np.float32), PILImage) == px(torch.full((3, 8, 8), 0.25), PILImage) == 64
    assert px(np.dstack([np.zeros((8, 8, 3)), np.zeros((8, 8))])) == 255   # fully transparent: the white background
    for bad, msg in ((torch.full((8, 8), float('nan')), 'NaN'), (np.full((8, 8), np.inf), 'NaN or infinite'),
                     (np.full((8, 8), 300), '0..255'), (np.full((8, 8), 1.5), r'\[0, 1\]'), (np.zeros((2, 8, 8, 3)), 'shape')):
        with pytest.raises(ValueError, match=msg): ff.data.to_image(bad, PILImageBW)
    for bad in (5, [1, 2], {'a': 1}):
        with pytest.raises(TypeError, match='cannot make an image of'): ff.data.to_image(bad, PILImageBW)

# ------------------------------------------------------------------------------------ 4, 12: bounds before any training
@pytest.mark.parametrize('args,msg', [
    (['--recipe', 'pairs', '--set', 'size=100000'], 'size=100000: must be a number in 16..512'),
    (['--recipe', 'photos', '--set', 'size=2100,40'], 'size=(2100, 40): must be numbers in 16..512'),
    (['--recipe', 'drawings', '--set', 'tta_px=-1'], 'tta_px=-1: must be a number in 0..16'),
    (['--recipe', 'drawings', '--set', 'hidden=0'], 'hidden=0: must be a number in 1..1024'),
    (['--recipe', 'drawings', '--minutes', 'inf'], 'minutes=inf'),
    (['--recipe', 'drawings', '--epochs', '100000000'], 'epochs=100000000'),
])
def test_bounds_are_checked_before_training(args, msg, chars, tmp_path):
    r = run('train', chars, '--out', tmp_path/'r', *args)
    one_line_error(r, msg)
    assert 'epoch' not in r.stdout and not (tmp_path/'r').exists()

def test_pairs_on_too_few_classes_and_faces_on_a_small_folder(chars, faces4, tmp_path):
    five = tmp_path/'five'
    for i, c in enumerate(sorted({p.parent for p in chars.rglob('*.png')})[:5]): shutil.copytree(c, five/f'c{i}')
    one_line_error(run('train', five, '--recipe', 'pairs', '--epochs', 1, '--out', tmp_path/'p'), 'pairs need at least 2 on each side')
    two = tmp_path/'two'
    for c in sorted(faces4.iterdir())[:2]: shutil.copytree(c, two/c.name)   # 20 images, fewer than a batch of 32
    r = run('train', two, '--recipe', 'faces', '--out', tmp_path/'f')
    assert r.returncode == 0, r.stderr[-2000:]

def test_eval_arguments(pairs_run, chars, tmp_path):
    one_line_error(run('eval', pairs_run, chars, '--max-pairs-images', -5), '--max-pairs-images -5')
    bad = tmp_path/'runs.zip'; bad.write_text('not a zip')
    one_line_error(run('eval', pairs_run, '--runs', bad), 'not a zip archive')

# ------------------------------------------------------------------------------------------------ 5: cam on faces models
def test_cam_and_similarity_work_for_faces_models(faces_run, faces4, tmp_path):
    a, b = sorted(faces4.rglob('*.pgm'))[:2]
    r = run('similarity', faces_run, a, b, '--out', tmp_path/'s', '--json')
    assert r.returncode == 0, r.stderr[-2000:]
    assert Path(json.loads(r.stdout)['png']).is_file()
    r = run('cam', faces_run, a, '--support', faces4, '--out', tmp_path/'c', '--json')
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res[0]['label'] == a.parent.name and Path(res[0]['png']).is_file()

# ------------------------------------------------------------------------------------------------- 7: hidden folders
def test_hidden_folders_and_files_are_never_classes(chars, tmp_path):
    d = tmp_path/'h'; shutil.copytree(chars, d)
    some = sorted(d.rglob('*.png'))[:3]
    first_class = some[0].parent
    (first_class/'.ipynb_checkpoints').mkdir(); shutil.copy(some[0], first_class/'.ipynb_checkpoints'/'x.png')
    (d/'.git'/'objects').mkdir(parents=True)
    for i, f in enumerate(some): shutil.copy(f, d/'.git'/'objects'/f'{i}.png')
    shutil.copy(some[1], first_class/'.hidden.png')
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        cf = ff.ClassFolder(d)
    assert cf.classes == ff.ClassFolder(chars).classes and len(cf) == len(ff.ClassFolder(chars))
    assert any('hidden' in str(x.message) and '3 hidden' in str(x.message) for x in w), [str(x.message) for x in w]

# --------------------------------------------------------------------------------- 9: one line for every mistake
@pytest.mark.parametrize('args,msg', [
    (['--train', 'nosuch'], '--train nosuch: an Omniglot set'),
    (['--size', '4'], 'size=4: must be a number in 16..512'),
    (['--arch', 'nosuch'], '--arch nosuch: not an encoder'),
    (['--epochs', '0'], 'epochs=0'),
    (['--lr', '-1'], 'lr=-1.0'),
])
def test_demo_mistakes_are_one_line(args, msg, tmp_path):
    one_line_error(run('demo', '--out', tmp_path/'demo', *args), msg)
    assert not (tmp_path/'demo').exists()

def test_out_naming_a_file(pairs_run, chars, tmp_path):
    f = tmp_path/'file.txt'; f.write_text('x')
    a, b = sorted(chars.rglob('*.png'))[:2]
    one_line_error(run('similarity', pairs_run, a, b, '--out', f), 'a file, not a folder')
    one_line_error(run('cam', pairs_run, a, '--support', chars, '--out', f), 'a file, not a folder')
    one_line_error(run('demo', '--out', f), 'a file, not a folder')
    m = _copy_model(pairs_run/'model', tmp_path/'m'); (m/'model.safetensors').unlink(); (m/'model.safetensors').mkdir()
    one_line_error(run('verify', m, a, b), 'not a regular file')

def test_read_only_and_full_disks_are_one_line_with_nothing_half_written(chars, pairs_run, tmp_path):
    ro = tmp_path/'ro'
    _mount_tmpfs(ro, ro=True)
    try: one_line_error(run('train', chars, '--recipe', 'pairs', '--epochs', 1, '--set', 'bs=8', '--out', ro/'run'), 'cannot write in')
    finally: subprocess.run(['umount', str(ro)])
    full = tmp_path/'full'
    _mount_tmpfs(full, size='4m')
    try:
        shutil.copytree(pairs_run, full/'run', ignore=shutil.ignore_patterns('model', '*.png'))
        (full/'filler').write_bytes(b'x'*(4*2**20 - 256*2**10))   # 256 kB left: less than a model and its figures
        before = _tree(full/'run')
        r = run('train', chars, '--recipe', 'pairs', '--epochs', 1, '--set', 'bs=8', '--out', full/'run', '--force')
        assert r.returncode == 2 and 'disk is full' in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]
        assert _tree(full/'run') == before and sorted(p.name for p in full.iterdir()) == ['filler', 'run']
    finally: subprocess.run(['umount', str(full)])

def test_a_read_only_cache_with_runs(pairs_run, tmp_path, monkeypatch, omni1):
    runs = tmp_path/'runs'
    ff.datasets.write_runs(omni1, runs, n_runs=1)
    z = shutil.make_archive(str(tmp_path/'all_runs'), 'zip', runs)
    cache = tmp_path/'cache'
    _mount_tmpfs(cache, ro=True)
    try:
        monkeypatch.setenv('FEWSHOT_CACHE', str(cache))
        one_line_error(run('eval', pairs_run, '--runs', z), 'set FEWSHOT_CACHE to a writable folder')
    finally: subprocess.run(['umount', str(cache)])

# ---------------------------------------------------------------------------------------- 11, 14: the Python API
def test_support_labels_are_strings_and_may_not_collide(pairs_run, chars):
    learn = ff.load_model(pairs_run/'model')
    a, b = sorted(chars.rglob('*.png'))[:2]
    with pytest.raises(ValueError, match="both '1'"): ff.SupportSet(learn, {1: a, '1': b, 'x': a})
    ss = ff.SupportSet(learn, {1: a, 'x': b})
    assert ss.labels == ['1', 'x']
    ss.remove('1', 0)   # one position, as an int
    assert ss.labels == ['x']

def test_api_mistakes_are_clear(pairs_run, chars, tmp_path):
    learn = ff.load_model(pairs_run/'model')
    a, b = [str(p) for p in sorted(chars.rglob('*.png'))[:2]]
    for bad in (5, [a, b]):
        with pytest.raises(TypeError, match='cannot make an image of'): ff.predict_pair(learn, bad, b)
    with pytest.raises(ValueError, match='not a readable image'): ff.predict_pair(learn, b'not an image', b)
    with pytest.raises(ValueError, match='NaN'): ff.predict_pair(learn, torch.full((28, 28), float('nan')), b)
    same, p = ff.predict_pair(learn, Path(a).read_bytes(), b)   # the bytes of an image file are an image
    assert (same, p) == ff.predict_pair(learn, a, b)
    cf = ff.ClassFolder(chars)
    from fastai.vision.all import PILImageBW
    dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0, n_way=5, n_query=1, episodes_per_epoch=1)
    epi = ff.episodic_learner(dls, 'conv4')
    with pytest.raises(TypeError, match='pair \\(siamese\\) model'): ff.predict_pair(epi, a, b)
    ss = ff.SupportSet(learn, {'a': a})
    with pytest.raises(TypeError, match='a list of images'): ss.classify(a)
    with pytest.raises(TypeError, match='support must be a dict'): ff.classify(learn, [a], support=[a, b])
    with pytest.raises(ValueError, match='1 second images'): ff.similarity_maps(learn, [a, a], [b])
    with pytest.raises(ValueError, match='no images'): ff.similarity_maps(learn, [], [])
    with pytest.raises(ValueError, match="layer 'layer3'"): ff.similarity_maps(learn, [a], [b], layer='layer3')
    with pytest.raises(ValueError, match='NaN'): ff.similarity_maps(learn, torch.full((1, 1, 28, 28), float('nan')), [b])

# --------------------------------------------------------------------------------------- 13: SIGTERM during a save
SAVER = '''
import sys, time
import fewshot_fastai.cli.train as t
real = t.save_model
def slow(learn, path, **kw):
    real(learn, path, **kw)
    print('saving', file=sys.__stdout__, flush=True); time.sleep(60)
t.save_model = slow
from fewshot_fastai.cli import main
sys.exit(main(sys.argv[1:]))
'''

def test_sigterm_during_a_save_leaves_no_temporary(chars, tmp_path):
    out = tmp_path/'runs'/'r'
    p = subprocess.Popen([sys.executable, '-c', SAVER, 'train', str(chars), '--recipe', 'pairs', '--epochs', '1', '--set', 'bs=8',
                          '--out', str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    try:
        deadline = time.time() + 300
        while time.time() < deadline:   # the child prints 'saving' once the model is written into its temporary folder
            line = p.stdout.readline()
            if 'saving' in line or not line: break
        assert [q for q in out.parent.iterdir() if q.name.startswith('.r.')], 'no temporary folder while saving'
        p.send_signal(signal.SIGTERM)
        rc = p.wait(60)
    finally: p.kill()
    assert rc == 143 and 'terminated' in p.stderr.read()
    assert list(out.parent.iterdir()) == []   # neither the run nor its temporary
