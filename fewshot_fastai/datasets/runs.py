"""Lake et al.'s official Omniglot one-shot classification runs (`all_runs.zip`): 20 runs x 20 trials.
Each `runNN/` holds `training/class01..20.png` (one image per class, one drawer), `test/item01..20.png` (another
drawer) and `class_labels.txt` with lines `runNN/test/itemYY.png runNN/training/classXX.png`."""
import random, shutil
from dataclasses import dataclass
from pathlib import Path
from ..data.sources import fetch_zip, check_hash, file_hash, cache_dir, safe_extract
from .sources import OMNIGLOT_URL
from ..data.items import ClassFolder
from .naming import alphabet_of, drawer_of

__all__ = ['LAKE_RUNS_URL', 'Run', 'lake_runs', 'load_runs', 'write_runs']

LAKE_RUNS_URL = OMNIGLOT_URL + 'one-shot-classification/all_runs.zip'

@dataclass
class Run:
    "One run: `test[i]`'s true class is `training[answers[i]]`"
    name: str   # the run's folder name ('run01')
    training: list   # the support images, one per class
    test: list   # the query images
    answers: list   # for each test image, the index of its class in `training`

def lake_runs(
    path=None, # `all_runs.zip` or its extracted folder; default: look in $FEWSHOT_DATA / cache, else download
    url:str|None=None, # a mirror of `all_runs.zip`
    checksum:str|None=None, # its md5/sha256 (none is published, so None by default)
) -> Path:
    "Folder holding `run01`..`run20`"
    if path is not None:
        path = Path(path).expanduser()
        if not path.exists(): raise FileNotFoundError(f'{path}: no such runs zip or folder')
        if path.is_file():   # extracted once per content: two zips of the same name never share a cached copy
            check_hash(path, checksum)
            dest = cache_dir()/f'{path.stem}-{file_hash(path, "sha256")[:16]}'
            if not dest.is_dir():
                try: safe_extract(path, dest)
                except FileExistsError: pass   # another process extracted the same zip meanwhile
            path = dest
    else: path = fetch_zip('all_runs.zip', url or LAKE_RUNS_URL, checksum)
    if not any(path.glob('run*/class_labels.txt')):
        inner = [d for d in path.iterdir() if d.is_dir() and any(d.glob('run*/class_labels.txt'))]
        if len(inner) != 1: raise FileNotFoundError(f'{path}: no runNN/class_labels.txt found')
        path = inner[0]
    return path

def load_runs(
    path, # `all_runs.zip` or its extracted folder
) -> list[Run]:
    "The runs in `path` (zip or folder), checked: every listed file exists, every test item is answered once"
    root = lake_runs(path)
    runs = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith('run')):
        labels = d/'class_labels.txt'
        if not labels.is_file(): raise FileNotFoundError(f'{labels}: missing')
        training = sorted((d/'training').glob('class*.png'))
        test = sorted((d/'test').glob('item*.png'))
        tidx = {f.relative_to(root).as_posix(): i for i, f in enumerate(training)}
        answers = {}
        for n, line in enumerate(labels.read_text().split('\n'), 1):
            if not line.strip(): continue
            parts = line.split()
            if len(parts) != 2: raise ValueError(f'{labels}:{n}: expected "test_path training_path", got {line!r}')
            item, cls = parts
            if not (root/item).is_file(): raise FileNotFoundError(f'{labels}:{n}: {root/item} does not exist')
            if cls not in tidx: raise FileNotFoundError(f'{labels}:{n}: {root/cls} is not a training image of {d.name}')
            answers[(root/item).resolve()] = tidx[cls]
        missing = [f.name for f in test if f.resolve() not in answers]
        if missing or len(answers) != len(test): raise ValueError(f'{labels}: no answer for {missing or "some items"}')
        runs.append(Run(d.name, training, test, [answers[f.resolve()] for f in test]))
    if not runs: raise FileNotFoundError(f'{root}: no runNN folders')
    return runs

def write_runs(
    omniglot_dir, # an Omniglot folder (`Alphabet/characterNN/*.png`)
    out, # folder to write `runNN/` into
    n_runs:int=20, # how many runs
    n_way:int=20, # characters per run
    seed:int=0, # seed of the choices
    alphabets=None, # restrict to these alphabets (default: all with at least `n_way` characters)
) -> Path:
    """Write one-shot runs in Lake's exact format from an Omniglot folder (a test fixture, or runs over other
    alphabets): each run takes `n_way` characters of one alphabet, class images from one drawer and test items
    from another, in shuffled order; `alphabets` restricts the alphabets used. Returns `out`."""
    cf, out, rng = ClassFolder(omniglot_dir, decode=False), Path(out), random.Random(seed)
    by_alpha = {}
    for c in cf.classes: by_alpha.setdefault(alphabet_of(c), []).append(c)
    alphabets = sorted(a for a, cs in by_alpha.items() if len(cs) >= n_way and (alphabets is None or a in alphabets))
    if not alphabets: raise ValueError(f'{omniglot_dir}: no alphabet has {n_way} characters')
    files = {}
    for f, l in zip(cf.files, cf.label_names()): files[(l, drawer_of(f))] = f
    for r in range(1, n_runs+1):
        run = out/f'run{r:02d}'
        (run/'training').mkdir(parents=True); (run/'test').mkdir()
        chars = rng.sample(by_alpha[rng.choice(alphabets)], n_way)
        d_train, d_test = rng.sample(sorted({d for (l, d) in files if l == chars[0]}), 2)
        order = rng.sample(range(n_way), n_way)
        lines = []
        for j, c in enumerate(chars): shutil.copy(files[(c, d_train)], run/'training'/f'class{j+1:02d}.png')
        for i, j in enumerate(order):
            shutil.copy(files[(chars[j], d_test)], run/'test'/f'item{i+1:02d}.png')
            lines.append(f'{run.name}/test/item{i+1:02d}.png {run.name}/training/class{j+1:02d}.png')
        (run/'class_labels.txt').write_text('\n'.join(lines) + '\n')
    return out
