"Real-data helpers for tests, importable from any test folder"
import random, shutil
from pathlib import Path

def copy_subset(src:Path, dest:Path, n_classes:int, n_per_class:int, seed=0) -> Path:
    "Copy `n_classes` class folders (first `n_per_class` images each) of a real dataset into `dest`"
    classes = sorted({p.parent for p in src.rglob('*') if p.suffix.lower() in ('.png', '.pgm')})
    for c in random.Random(seed).sample(classes, n_classes):
        out = dest/c.relative_to(src); out.mkdir(parents=True)
        for f in sorted(c.iterdir())[:n_per_class]: shutil.copy(f, out/f.name)
    return dest
