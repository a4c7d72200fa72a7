"""Hostile and unlucky use of the command line and the Python API, counted: each probe is run and its outcome sorted
into 'error' (exit status 2 with one line, or an exception of the documented kinds with a message), 'worked' (it did
what a user would expect), or a defect: 'traceback' (exit status 1, or an exception we do not document), 'nan' (NaN
in an output), 'lost' (a file outside the run changed), 'hang' (past its time limit). Prints one line per probe, then
the counts; last line JSON. Run: python bench/hostile_probes.py (FEWSHOT_DATA as for the tests; ~2 min on 2 cores)."""
import contextlib, io, json, os, random, shutil, signal, struct, sys, tempfile, threading, warnings, zlib
from pathlib import Path
import numpy as np
from PIL import Image

warnings.filterwarnings('ignore')
import torch
import fewshot_fastai as ff
from fewshot_fastai.cli import main

CLEAR = (ValueError, TypeError, FileNotFoundError, NotADirectoryError, KeyError, IndexError)

def cli(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: rc = main([str(a) for a in args])
        except SystemExit as e: rc = e.code
    o, e = out.getvalue(), err.getvalue()
    lines = [l for l in e.splitlines() if l.strip()]
    if 'nan' in o.lower().replace('nan-', '') and 'NaN' in o or 'NaN' in o: return 'nan', o[:100]
    if rc == 2 and lines and 'Traceback' not in e: return 'error', lines[-1][:150]
    if rc == 0: return 'worked', (o.strip().splitlines() or [''])[-1][:150]
    return 'traceback', (lines[-1] if lines else f'exit {rc}')[:150]

def api(fn) -> tuple[str, str]:
    res = []
    def go():
        try: r = fn(); res.append(('nan', str(r)[:100]) if 'nan' in str(r) else ('worked', str(r)[:100]))
        except CLEAR as e: res.append(('error', f'{type(e).__name__}: {str(e)[:140]}'))
        except Exception as e: res.append(('traceback', f'{type(e).__name__}: {str(e)[:140]}'))
    t = threading.Thread(target=go, daemon=True); t.start(); t.join(60)
    return res[0] if res else ('hang', 'past 60 s')

def png_chunks_truncated(src:Path, dest:Path): dest.write_bytes(src.read_bytes()[:len(src.read_bytes())//2])

def main_():
    tmp = Path(tempfile.mkdtemp(prefix='probes-'))
    src = ff.omniglot('background_small1')
    classes = sorted({p.parent for p in src.rglob('*.png')})
    data = tmp/'chars'
    for i, c in enumerate(random.Random(0).sample(classes, 8)):
        shutil.copytree(c, data/f'c{i}', ignore=lambda d, names: sorted(names)[6:])
    imgs = sorted(data.rglob('*.png'))
    a, b = imgs[0], imgs[7]
    run = tmp/'run'
    assert cli('train', data, '--recipe', 'pairs', '--epochs', 1, '--set', 'bs=8', '--out', run)[0] == 'worked'
    learn = ff.load_model(run/'model')
    from fastai.vision.all import PILImageBW
    cf = ff.ClassFolder(data)
    epi_dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0, n_way=5, n_query=1, episodes_per_epoch=1)
    epi = ff.episodic_learner(epi_dls, 'conv4')
    ff.save_model(epi, tmp/'epi')
    # odd files
    odd = tmp/'odd'; odd.mkdir()
    (odd/'text.png').write_text('not an image')
    png_chunks_truncated(a, odd/'trunc.png')
    Image.new('L', (1, 1), 0).save(odd/'one.png')
    Image.new('L', (4000, 1), 255).save(odd/'thin.png')
    Image.fromarray(np.asarray(Image.open(a).convert('RGB'))).convert('CMYK').save(odd/'cmyk.jpg')
    Image.open(a).convert('RGB').save(odd/'photo.webp')
    Image.open(a).convert('1').save(odd/'bilevel.png')
    (odd/'ünïcödé näme.png').write_bytes(a.read_bytes())
    # a PNG header declaring a 100k x 100k image (a decompression bomb), with no data
    ihdr = struct.pack('>IIBBBBB', 100000, 100000, 8, 0, 0, 0, 0)
    chunk = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    (odd/'bomb.png').write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IEND', b''))
    one_class = tmp/'one_class'; shutil.copytree(data/'c0', one_class/'c0')
    empty = tmp/'empty'; empty.mkdir()
    mixed = tmp/'mixed'; shutil.copytree(data, mixed)
    for i, f in enumerate(sorted(mixed.rglob('*.png'))[::3]):   # the same drawings in other containers
        g = np.asarray(Image.open(f).convert('L'))
        [lambda: Image.fromarray(g.astype(np.uint16)*257).save(f), lambda: Image.fromarray(np.dstack([np.zeros_like(g)]*3 + [255 - g]), 'RGBA').save(f),
         lambda: Image.fromarray(g).convert('P').save(f)][i % 3]()
    loop = tmp/'loop'; shutil.copytree(data, loop); (loop/'c0'/'back').symlink_to(loop)
    def model_with(name, **fields):
        d = tmp/f'm_{name}'; shutil.copytree(run/'model', d)
        cfg = json.loads((d/'config.json').read_text()); cfg.update(fields); (d/'config.json').write_text(json.dumps(cfg))
        return d
    cut = tmp/'m_cut'; shutil.copytree(run/'model', cut); w = (cut/'model.safetensors').read_bytes(); (cut/'model.safetensors').write_bytes(w[:len(w)//2])
    other = tmp/'m_other'; shutil.copytree(run/'model', other); shutil.copy(tmp/'epi'/'model.safetensors', other/'model.safetensors')
    noweights = tmp/'m_now'; shutil.copytree(run/'model', noweights); (noweights/'model.safetensors').unlink()
    (tmp/'m_array').mkdir(); (tmp/'m_array'/'config.json').write_text('[1, 2]'); shutil.copy(run/'model'/'model.safetensors', tmp/'m_array')
    (tmp/'m_empty').mkdir(); (tmp/'m_empty'/'config.json').write_text(''); shutil.copy(run/'model'/'model.safetensors', tmp/'m_empty')
    norun = tmp/'norun'; (norun/'sub').mkdir(parents=True)
    before = {p: p.read_bytes() for p in data.rglob('*') if p.is_file()}

    probes = [
        ('train: DATA is a file', lambda: cli('train', a, '--out', tmp/'o1')),
        ('train: one class', lambda: cli('train', one_class, '--recipe', 'pairs', '--out', tmp/'o2')),
        ('train: no classes', lambda: cli('train', empty, '--out', tmp/'o3')),
        ('train: images in 16-bit, RGBA and palette PNGs', lambda: cli('train', mixed, '--recipe', 'pairs', '--epochs', 1, '--set', 'bs=8', '--out', tmp/'o4')),
        ('train: a corrupt image among them', lambda: (shutil.copy(odd/'trunc.png', mixed/'c0'/'zz.png'), cli('train', mixed, '--recipe', 'pairs', '--epochs', 1, '--set', 'bs=8', '--out', tmp/'o5'), (mixed/'c0'/'zz.png').unlink())[1]),
        ('train: a symbolic link loop in DATA', lambda: cli('train', loop, '--recipe', 'pairs', '--epochs', 1, '--set', 'bs=8', '--out', tmp/'o6')),
        ('train: --set nosuch=1', lambda: cli('train', data, '--recipe', 'pairs', '--set', 'nosuch=1', '--out', tmp/'o7')),
        ('train: --set size=abc', lambda: cli('train', data, '--recipe', 'pairs', '--set', 'size=abc', '--out', tmp/'o8')),
        ('train: --set lr=1e400', lambda: cli('train', data, '--recipe', 'pairs', '--set', 'lr=1e400', '--out', tmp/'o9')),
        ('train: --set valid_pct=1', lambda: cli('train', data, '--recipe', 'pairs', '--set', 'valid_pct=1', '--out', tmp/'o10')),
        ('train: --set bs=-8', lambda: cli('train', data, '--recipe', 'pairs', '--set', 'bs=-8', '--out', tmp/'o11')),
        ('train: --set n_way=1 (drawings)', lambda: cli('train', data, '--recipe', 'drawings', '--set', 'n_way=1', '--out', tmp/'o12')),
        ('train: --set rotations=3', lambda: cli('train', data, '--recipe', 'drawings', '--set', 'rotations=3', '--epochs', 1, '--set', 'episodes_per_epoch=1', '--set', 'n_way=5', '--out', tmp/'o13')),
        ('train: --recipe nosuch', lambda: cli('train', data, '--recipe', 'nosuch', '--out', tmp/'o14')),
        ('train: --epochs -3', lambda: cli('train', data, '--recipe', 'pairs', '--epochs', -3, '--out', tmp/'o15')),
        ('train: --out empty string', lambda: cli('train', data, '--recipe', 'pairs', '--epochs', 1, '--out', '')),
        ('train: --out under /proc', lambda: cli('train', data, '--recipe', 'pairs', '--epochs', 1, '--set', 'bs=8', '--out', '/proc/fewshot')),
        ('train: --out a folder above a non-run folder', lambda: cli('train', data, '--recipe', 'pairs', '--epochs', 1, '--out', norun, '--force')),
        ('train: --out the model folder being read elsewhere (run/model)', lambda: cli('train', data, '--recipe', 'pairs', '--epochs', 1, '--out', run/'model', '--force')),
        ('eval: a data folder as MODEL', lambda: cli('eval', data, data)),
        ('eval: --n-way 1', lambda: cli('eval', run, data, '--n-way', 1)),
        ('eval: --k-shot 0', lambda: cli('eval', run, data, '--k-shot', 0)),
        ('eval: --episodes 0', lambda: cli('eval', run, data, '--episodes', 0)),
        ('eval: --seed -1', lambda: cli('eval', run, data, '--seed', -1)),
        ('eval: --k-shot 50 (more than the images)', lambda: cli('eval', run, data, '--k-shot', 50)),
        ('eval: --runs a folder without runs', lambda: cli('eval', run, '--runs', data)),
        ('eval: the episodic model on DATA', lambda: cli('eval', tmp/'epi', data, '--episodes', 5, '--max-pairs-images', 20)),
        ('classify: a support folder of one class', lambda: cli('classify', run, a, '--support', one_class)),
        ('classify: a text file as query', lambda: cli('classify', run, odd/'text.png', '--support', data)),
        ('classify: an empty query folder', lambda: cli('classify', run, empty, '--support', data)),
        ('classify: a unicode file name', lambda: cli('classify', run, odd/'ünïcödé näme.png', '--support', data, '--json')),
        ('classify: --csv and --json', lambda: cli('classify', run, a, '--support', data, '--csv', '--json')),
        ('verify: a text file named .png', lambda: cli('verify', run, odd/'text.png', b)),
        ('verify: a truncated PNG', lambda: cli('verify', run, odd/'trunc.png', b)),
        ('verify: a decompression bomb header', lambda: cli('verify', run, odd/'bomb.png', b)),
        ('verify: a 1x1 image', lambda: cli('verify', run, odd/'one.png', b, '--json')),
        ('verify: a 4000x1 image', lambda: cli('verify', run, odd/'thin.png', b, '--json')),
        ('verify: a CMYK JPEG', lambda: cli('verify', run, odd/'cmyk.jpg', b, '--json')),
        ('verify: a WebP', lambda: cli('verify', run, odd/'photo.webp', b, '--json')),
        ('verify: a 1-bit PNG', lambda: cli('verify', run, odd/'bilevel.png', b, '--json')),
        ('verify: the episodic model', lambda: cli('verify', tmp/'epi', a, b)),
        ('verify: a folder as image', lambda: cli('verify', run, data, b)),
        ('similarity: a folder as image', lambda: cli('similarity', run, data, b, '--out', tmp/'o16')),
        ('cam: --support missing', lambda: cli('cam', run, a, '--support', tmp/'nosuch', '--out', tmp/'o17')),
        ('cam: the episodic model', lambda: cli('cam', tmp/'epi', a, '--support', data, '--out', tmp/'o18', '--json')),
        ('gan: --size 48', lambda: cli('gan', data, '--out', tmp/'o19', '--size', 48)),
        ('gan: a folder with no images', lambda: cli('gan', empty, '--out', tmp/'o20')),
        ('gan: --bs 0', lambda: cli('gan', data, '--out', tmp/'o21', '--bs', 0)),
        ('recipes: nosuch', lambda: cli('recipes', 'nosuch')),
        ('model: kind x', lambda: cli('verify', model_with('kind', kind='x'), a, b)),
        ('model: a 10 MB string field', lambda: cli('verify', model_with('str', recipe='x'*10**7), a, b)),
        ('model: config.json an array', lambda: cli('verify', tmp/'m_array', a, b)),
        ('model: config.json empty', lambda: cli('verify', tmp/'m_empty', a, b)),
        ('model: weights cut in half', lambda: cli('verify', cut, a, b)),
        ('model: weights of another model', lambda: cli('verify', other, a, b)),
        ('model: no weights file', lambda: cli('verify', noweights, a, b)),
        ('model: arch a hub reference', lambda: cli('verify', model_with('hub', arch='hf-hub:timm/resnet18.a1_in1k'), a, b)),
        ('model: encoder_kwargs pretrained_cfg_overlay', lambda: cli('verify', model_with('cfg', arch='resnet10t', encoder_kwargs={'pretrained_cfg_overlay': {'file': '/etc/passwd'}}), a, b)),
        ('model: n_in 0', lambda: cli('verify', model_with('nin', n_in=0), a, b)),
        ('model: emb_dim 10**9', lambda: cli('verify', model_with('emb', emb_dim=10**9), a, b)),
        ('model: image mode CMYK', lambda: cli('verify', model_with('mode', image={'mode': 'CMYK'}), a, b)),
        ('api: SupportSet.add with no images', lambda: api(lambda: ff.SupportSet(learn).add('x', []))),
        ('api: SupportSet.remove of a missing label', lambda: api(lambda: ff.SupportSet(learn, {'a': a}).remove('nosuch'))),
        ('api: SupportSet.remove of shot 5 of 1', lambda: api(lambda: ff.SupportSet(learn, {'a': a}).remove('a', 5))),
        ('api: classify mode bogus', lambda: api(lambda: ff.classify(learn, [a], {'x': [b]}, method='bogus'))),
        ('api: embed bs=0', lambda: api(lambda: ff.embed(learn, [a], bs=0))),
        ('api: predict_pairs bs=-1', lambda: api(lambda: ff.predict_pairs(learn, [(a, b)], bs=-1))),
        ('api: predict_pairs of a non-pair', lambda: api(lambda: ff.predict_pairs(learn, [a]))),
        ('api: load_model(None)', lambda: api(lambda: ff.load_model(None))),
        ('api: save_model to /proc', lambda: api(lambda: ff.save_model(learn, '/proc/fewshot_model'))),
        ('api: to_image of an empty array', lambda: api(lambda: ff.data.to_image(np.zeros((0, 5)), PILImageBW))),
        ('api: to_image of a complex array', lambda: api(lambda: ff.data.to_image(np.zeros((5, 5), complex), PILImageBW))),
        ('api: to_image of a bool array', lambda: api(lambda: np.asarray(ff.data.to_image(np.ones((5, 5), bool), PILImageBW)).max())),
        ('api: to_image of an int64 tensor 0..255', lambda: api(lambda: np.asarray(ff.data.to_image(torch.full((5, 5), 200), PILImageBW)).max())),
        ('api: to_image of a half tensor', lambda: api(lambda: np.asarray(ff.data.to_image(torch.full((5, 5), .5, dtype=torch.half), PILImageBW)).max())),
        ('api: to_image of a (1,H,W,3) array', lambda: api(lambda: ff.data.to_image(np.zeros((1, 5, 5, 3)), PILImageBW))),
        ('api: predict_pair of two PIL images in RGBA', lambda: api(lambda: ff.predict_pair(learn, Image.open(a).convert('RGBA'), Image.open(b).convert('RGBA')))),
        ('api: predict_pair of an Inf tensor', lambda: api(lambda: ff.predict_pair(learn, torch.full((28, 28), float('inf')), b))),
        ('api: cam of a pair model', lambda: api(lambda: ff.cam(learn, [a]))),
        ('api: cam with layer 7', lambda: api(lambda: ff.similarity_maps(learn, [a], [b], layer=7))),
        ('api: similarity_maps method bogus', lambda: api(lambda: ff.similarity_maps(learn, [a], [b], method='bogus'))),
        ('api: ClassFolder(min_per_class=0)', lambda: api(lambda: ff.ClassFolder(data, min_per_class=0))),
        ('api: ClassFolder of a file', lambda: api(lambda: ff.ClassFolder(a))),
        ('api: recipe pairs with size=10**6', lambda: api(lambda: ff.recipe('pairs')(data, size=10**6))),
        ('api: recipe drawings with grid', lambda: api(lambda: ff.recipe('drawings')(data, grid=3))),
        ('api: SupportSet with a label of None and "None"', lambda: api(lambda: ff.SupportSet(learn, {None: a, 'None': b}))),
    ]
    counts, rows = {}, []
    for name, probe in probes:
        kind, what = probe()
        counts[kind] = counts.get(kind, 0) + 1
        rows.append((name, kind, what))
        print(f'{kind:9s} {name}: {what}', flush=True)
    after = {p: p.read_bytes() for p in data.rglob('*') if p.is_file()}
    if after != before: counts['lost'] = counts.get('lost', 0) + 1; print('lost      the data folder changed')
    shutil.rmtree(tmp, ignore_errors=True)
    defects = sum(v for k, v in counts.items() if k not in ('error', 'worked'))
    print(json.dumps(dict(probes=len(probes), **counts, defects=defects)))

if __name__ == '__main__': main_()
