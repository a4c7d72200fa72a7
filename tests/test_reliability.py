"""Hostile and unlucky use: saves killed at random moments or failing half-way, crafted model and checkpoint files,
concurrent readers: every save is all-or-nothing and every crafted file is refused in one line naming it."""
import json, os, random, signal, subprocess, sys, time
from pathlib import Path
import pytest
import torch
import fewshot_fastai as ff

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope='module')
def tiny(omni_small):
    "An untrained Conv4 episodic learner on real Omniglot images, and two images"
    from fastai.vision.all import PILImageBW, set_seed
    set_seed(0)
    cf = ff.ClassFolder(omni_small)
    dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0, n_way=5, n_query=1, episodes_per_epoch=1)
    return ff.episodic_learner(dls, 'conv4'), cf.files[:2]

def _versions(learn, imgs):
    "Two support sets over the same two images with their labels swapped: a config/weights mixture answers wrongly"
    return ff.SupportSet(learn, {'a': imgs[0], 'b': imgs[1]}), ff.SupportSet(learn, {'b': imgs[0], 'a': imgs[1]})

def _consistent(path, learn, imgs) -> str:
    "Load `path` and check that each label's stored embedding is that of its image: -> which version"
    back = ff.load_model(path)
    ss = back.support_set
    e0, e1 = ff.embed(learn, [imgs[0]]), ff.embed(learn, [imgs[1]])
    if ss.labels == ['a', 'b']: assert torch.allclose(ss.emb['a'], e0) and torch.allclose(ss.emb['b'], e1); return 'v1'
    assert ss.labels == ['b', 'a'] and torch.allclose(ss.emb['b'], e0) and torch.allclose(ss.emb['a'], e1); return 'v2'

# A writer factory: it builds the learner once, then on each 'go' forks a writer that saves the two versions in turn
# until it is killed (forking spares each round the seconds of importing torch and fastai); 'reap PID' waits for it.
CHILD = '''
import os, sys, torch, fewshot_fastai as ff
from fastai.vision.all import PILImageBW, set_seed
torch.set_num_threads(1)   # no OpenMP worker threads to be lost across fork
set_seed(0)
cf = ff.ClassFolder(sys.argv[2])
dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0, n_way=5, n_query=1, episodes_per_epoch=1)
learn = ff.episodic_learner(dls, 'conv4')
imgs = cf.files[:2]
v = [ff.SupportSet(learn, {'a': imgs[0], 'b': imgs[1]}), ff.SupportSet(learn, {'b': imgs[0], 'a': imgs[1]})]
print('ready', flush=True)
for line in sys.stdin:
    if line.startswith('reap'):
        os.waitpid(int(line.split()[1]), 0); print('dead', flush=True); continue
    pid = os.fork()
    if pid == 0:
        i = 0
        while True:
            ff.save_model(learn, sys.argv[1], support=v[i % 2]); i += 1
    print(pid, flush=True)
'''

def test_save_killed_at_random_moments_leaves_a_whole_model(tiny, omni_small, tmp_path):
    learn, imgs = tiny
    v1, _ = _versions(learn, imgs)
    path = tmp_path/'model'
    ff.save_model(learn, path, support=v1)
    rng, seen = random.Random(0), set()
    p = subprocess.Popen([sys.executable, '-c', CHILD, str(path), str(omni_small)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    try:
        assert p.stdout.readline().strip() == 'ready'
        for k in range(12):
            p.stdin.write('go\n'); p.stdin.flush()
            writer = int(p.stdout.readline())
            t_end = time.time() + rng.uniform(0.05, 0.6)
            while time.time() < t_end: seen.add(_consistent(path, learn, imgs))   # a reader beside the writer
            os.kill(writer, signal.SIGKILL)
            p.stdin.write(f'reap {writer}\n'); p.stdin.flush()
            assert p.stdout.readline().strip() == 'dead'
            seen.add(_consistent(path, learn, imgs))   # after the kill: the old or the new model, never a mixture
    finally:
        p.kill(); p.wait()
    assert seen == {'v1', 'v2'}   # the writers did replace the model while we read
    ff.save_model(learn, path, support=v1)   # a later save clears what the killed writers left
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model']

def test_a_failing_save_keeps_the_previous_model(tiny, tmp_path, monkeypatch):
    import safetensors.torch
    learn, imgs = tiny
    v1, v2 = _versions(learn, imgs)
    ff.save_model(learn, tmp_path/'m', support=v1)
    def broken(tensors, filename, metadata=None):
        Path(filename).write_bytes(b'half a file'); raise OSError('disk full')
    monkeypatch.setattr(safetensors.torch, 'save_file', broken)
    with pytest.raises(OSError, match='disk full'): ff.save_model(learn, tmp_path/'m', support=v2)
    assert _consistent(tmp_path/'m', learn, imgs) == 'v1' and sorted(p.name for p in tmp_path.iterdir()) == ['m']

def test_save_refuses_a_folder_with_other_files(tiny, tmp_path):
    learn, _ = tiny
    (tmp_path/'notes.txt').write_text('mine')
    with pytest.raises(ValueError, match="holds 'notes.txt'"): ff.save_model(learn, tmp_path)
    assert (tmp_path/'notes.txt').read_text() == 'mine'

def _edit(path, fn):
    cfg = json.loads((path/'config.json').read_text()); res = fn(cfg)
    (path/'config.json').write_text(json.dumps(cfg if res is None else res))

@pytest.mark.parametrize('edit,msg', [
    (lambda c: c.update(arch='hf-hub:timm/resnet18.a1_in1k'), "field 'arch' = \"hf-hub:timm/resnet18.a1_in1k\": expected an encoder name"),
    (lambda c: [1, 2], 'not a JSON object'),
    (lambda c: c.pop('n_in') and None, "missing field 'n_in'"),
    (lambda c: c.update(kind='nonsense'), "field 'kind' = \"nonsense\""),
    (lambda c: c.update(size=[28, 10**6]), "field 'size'"),
    (lambda c: c.update(tta={'views': 'spin'}), "field 'tta'"),
    (lambda c: c.update(encoder_kwargs={'hidden': 32}), 'its tensors do not fit the model'),
    (lambda c: c.update(encoder_kwargs={'hidden': 10**9}), "field 'encoder_kwargs'"),
    (lambda c: c.update(encoder_kwargs={'depth': 'x'}), "field 'encoder_kwargs': 'depth' is not a parameter"),
    (lambda c: c.update(encoder_kwargs={'n_blocks': -1}), 'cannot build the model it describes'),
])
def test_a_crafted_config_is_refused_naming_the_file_and_field(tiny, tmp_path, edit, msg):
    learn, _ = tiny
    path = ff.save_model(learn, tmp_path/'m')
    _edit(path, edit)
    t = time.time()
    with pytest.raises(ValueError, match=msg.replace('[', r'\[').replace('(', r'\(')) as e: ff.load_model(path)
    assert str(path/'config.json') in str(e.value) or str(path/'model.safetensors') in str(e.value)
    assert time.time() - t < 10   # no network lookups

def test_truncated_or_foreign_weights_are_refused(tiny, tmp_path):
    learn, _ = tiny
    path = ff.save_model(learn, tmp_path/'m')
    w = path/'model.safetensors'
    w.write_bytes(w.read_bytes()[:1000])
    with pytest.raises(ValueError, match='does not match'): ff.load_model(path)
    _edit(path, lambda c: c.pop('weights_sha256') and None)
    with pytest.raises(ValueError, match='not a readable safetensors file'): ff.load_model(path)

class _Boom:
    def __reduce__(self): return (os.system, (f'touch {_Boom.marker}',))

@pytest.fixture(scope='module')
def gan_dls(omni_small):
    return ff.GANDataLoaders.from_folder(omni_small, size=32, invert=True, bs=32, n_valid=32)

def _gan(dls, path):
    torch.manual_seed(0)
    return ff.dcgan_learner(dls, ff.gan.dcgan_generator(32, 1, nf=8), ff.gan.dcgan_critic(32, 1, nf=8), path=path)

def test_a_crafted_gan_checkpoint_is_refused_not_run(gan_dls, tmp_path):
    learn = _gan(gan_dls, tmp_path)
    _Boom.marker = tmp_path/'ran'
    (tmp_path/'models').mkdir()
    torch.save({'model': _Boom()}, tmp_path/'models'/'gan_gan.pth')
    with pytest.raises(ValueError, match='refused, nothing run'): ff.resume_gan(learn, 'gan')
    assert not _Boom.marker.exists()

def test_a_failing_gan_checkpoint_keeps_the_last_good_one(gan_dls, tmp_path, monkeypatch):
    learn = _gan(gan_dls, tmp_path)
    learn.add_cb(ff.GANCheckpoint('ck'))
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    good = (tmp_path/'models'/'ck_gan.pth').read_bytes()
    def broken(obj, f, *a, **k):
        Path(f).write_bytes(good[:len(good)//3]); raise OSError('disk full')
    monkeypatch.setattr(torch, 'save', broken)
    with pytest.raises(OSError, match='disk full'), learn.no_bar(), learn.no_logging(): learn.fit(1)
    monkeypatch.undo()
    assert (tmp_path/'models'/'ck_gan.pth').read_bytes() == good and len(list((tmp_path/'models').iterdir())) == 1
    assert ff.resume_gan(_gan(gan_dls, tmp_path), 'ck') == 1

def test_support_set_shared_between_threads(tiny, omni_small):
    "4 threads classify (240 calls) while another adds, removes and re-adds labels: no exception, every answer a label"
    import threading
    learn, _ = tiny
    cf = ff.ClassFolder(omni_small)
    by = cf.files_by_class(classes=cf.classes[:8])
    ss = ff.SupportSet(learn, {c: fs[:1] for c, fs in list(by.items())[:4]})
    queries = [fs[5] for fs in by.values()]
    errors, answers = [], []
    def reader():
        try:
            for _ in range(60):
                labels, scores = ss.classify(queries)
                answers.append(all(l in by for l in labels) and scores.shape[0] == len(queries) and 4 <= scores.shape[1] <= 8)
        except Exception as e: errors.append(repr(e))
    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads: t.start()
    i = 0
    while any(t.is_alive() for t in threads):
        c = cf.classes[4 + i % 4]
        ss.add(c, by[c][:2])
        ss.remove(c, positions=[0])
        if i % 3 == 0: ss.remove(c)
        i += 1
    assert not errors, errors[:3]
    assert len(answers) == 240 and all(answers) and i > 10

def test_two_runs_zips_of_one_name_are_never_confused(omni_small, tmp_path):
    import shutil
    zips = []
    for n in (2, 3):
        folder = ff.datasets.write_runs(omni_small, tmp_path/f'w{n}'/'all_runs', n_runs=n, n_way=5, seed=n)
        zips.append(shutil.make_archive(str(tmp_path/f'z{n}'/'all_runs'), 'zip', folder.parent, 'all_runs'))
    assert [len(ff.datasets.load_runs(z)) for z in zips] == [2, 3]

def test_symlinked_folders_are_followed_once(omni_small, tmp_path):
    import shutil, warnings
    root = tmp_path/'data'
    for c in sorted(p for p in omni_small.glob('*/*') if p.is_dir())[:3]: shutil.copytree(c, root/c.name)
    first = sorted(root.iterdir())[0]
    (first/'self').symlink_to(first, target_is_directory=True)   # a loop: c1/self -> c1
    (root/'again').symlink_to(first, target_is_directory=True)   # a second way to one class
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        cf = ff.ClassFolder(root, decode=False)
    assert cf.classes == sorted(p.name for p in root.iterdir() if not p.is_symlink())
    assert len(cf.files) == 60 and sum('through a symbolic link' in str(x.message) for x in w) == 2

def test_a_huge_image_is_a_one_line_error(tmp_path):
    "A PNG whose header says 15,000 x 15,000 (PIL's decompression-bomb guard): refused, naming the file"
    import struct, zlib
    from PIL import Image
    for c in ('a', 'b'): (tmp_path/c).mkdir(); Image.new('L', (8, 8)).save(tmp_path/c/'1.png'); Image.new('L', (8, 8)).save(tmp_path/c/'2.png')
    raw = (tmp_path/'a'/'2.png').read_bytes()
    ihdr = struct.pack('>II', 15000, 15000) + raw[24:29]
    bomb = raw[:16] + ihdr + struct.pack('>I', zlib.crc32(b'IHDR' + ihdr)) + raw[33:]
    (tmp_path/'a'/'2.png').write_bytes(bomb)
    with pytest.raises(ValueError, match=r'2.png: refused, too large an image'): ff.ClassFolder(tmp_path)
