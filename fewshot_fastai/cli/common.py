"""What the commands share: one-line user errors, image and model lookup, matplotlib off-screen, table rendering."""
import csv, io, json
from pathlib import Path
from ..data.items import ClassFolder
from ..deploy import load_model

__all__ = ['UserError', 'plt', 'images', 'model', 'support', 'render', 'save_figure']

class UserError(Exception):
    "A mistake in what the user asked for: printed as one line, exit status 2"

def plt():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt

def images(paths) -> list[Path]:
    "Image files from files and folders (searched recursively), in a stable order; errors name the path"
    from fastai.data.transforms import get_image_files
    out = []
    for p in map(Path, paths):
        if p.is_dir(): out += sorted(get_image_files(p))
        elif p.is_file(): out.append(p)
        else: raise UserError(f'{p}: no such file or folder')
    if not out: raise UserError(f'no image files in {", ".join(map(str, paths))}')
    return out

def model(path):
    p = Path(path)
    if (p/'model').is_dir() and not (p/'config.json').exists(): p = p/'model'   # the folder `train --out` wrote
    if not (p/'config.json').is_file(): raise UserError(f'{path}: not a model folder (no config.json; `fewshot-fastai train` writes one)')
    return load_model(p)

def support(folder) -> dict:
    "{label: image files} from a folder of class folders (one image per class is enough)"
    if not Path(folder).is_dir(): raise UserError(f'--support {folder}: no such folder (one folder of images per class)')
    cf = ClassFolder(folder, min_per_class=1)
    return {c: [f for f, l in zip(cf.files, cf.label_names()) if l == c] for c in cf.classes}

def save_figure(fig, path):
    "`fig` as a PNG at `path`, all-or-nothing, then closed"
    from .._files import replacing_file
    with replacing_file(path) as tmp: fig.savefig(tmp, format='png', dpi=80, bbox_inches='tight')
    plt().close('all')

def render(rows, as_json:bool, as_csv:bool) -> str:
    "A list of dicts (or one dict) as JSON, CSV or an aligned table"
    if isinstance(rows, dict) and not as_csv: rows_l = [rows]
    else: rows_l = rows if isinstance(rows, list) else [rows]
    if as_json: return json.dumps(rows, indent=1)
    keys = list(rows_l[0]) if rows_l else []
    if as_csv:
        buf = io.StringIO(); w = csv.DictWriter(buf, keys); w.writeheader(); w.writerows(rows_l)
        return buf.getvalue().rstrip('\n')
    cells = [[str(r[k]) for k in keys] for r in rows_l]
    width = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    line = lambda vals: '  '.join(v.ljust(w) for v, w in zip(vals, width)).rstrip()
    return '\n'.join([line(keys), *(line(c) for c in cells)])
