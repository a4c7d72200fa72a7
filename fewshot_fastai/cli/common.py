"""What the commands share: one-line user errors, output folders that never hold anything but our runs, image and
model lookup, matplotlib off-screen, table rendering."""
import csv, io, json, os, tempfile, warnings
from contextlib import contextmanager
from pathlib import Path
from ..data.items import ClassFolder
from ..deploy import load_model

__all__ = ['UserError', 'RUN_MARKER', 'check_out', 'writing_run', 'plt', 'images', 'model', 'support', 'render', 'save_figure']

class UserError(Exception):
    "A mistake in what the user asked for: printed as one line, exit status 2"

RUN_MARKER = '.fewshot-run'   # every run folder a command writes holds it: `--force` replaces only such a folder
# what the commands wrote before the marker existed: a folder of only these names (and a metrics.json) is a run too
_RUN_NAMES = ('metrics.json', 'model', 'models', 'siamese.pkl', 'encoder.onnx')

def _is_run(folder:Path) -> bool:
    if (folder/RUN_MARKER).is_file(): return True
    names = [p.name for p in folder.iterdir()]
    return 'metrics.json' in names and all(n in _RUN_NAMES or n.endswith(('.png', '.onnx')) for n in names)

def _within(a:Path, b:Path) -> bool: return a == b or b in a.parents

def check_out(
    out, # the --out argument
    force:bool, # --force given
    inputs:dict, # {what: path} read by the command (data, model, support, images): --out must not overlap them
) -> Path:
    """The real path of --out (symbolic links resolved), checked before anything is read or written: not a file, not
    inside, equal to or above an input, and either new, empty, or an earlier run of ours (its marker) with --force.
    Creates nothing."""
    if not str(out).strip(): raise UserError("--out '': give a folder for the run")
    real = Path(os.path.realpath(Path(out).expanduser()))
    if real.exists() and not real.is_dir(): raise UserError(f'--out {out}: a file, not a folder')
    for what, path in inputs.items():
        if path is None: continue
        rp = Path(os.path.realpath(Path(path).expanduser()))
        if _within(real, rp) or _within(rp, real):
            where = 'is' if real == rp else 'is inside' if _within(real, rp) else 'holds'
            raise UserError(f'--out {out}: {where} {what} {path}; write the run to a folder of its own')
    existing = next(d for d in (real.parent, *real.parents) if d.exists())
    try: os.rmdir(tempfile.mkdtemp(prefix='.fewshot-probe-', dir=existing))   # a real write, before any work
    except OSError as e: raise UserError(f'--out {out}: cannot write in {existing} ({e.strerror or e})') from None
    if real.is_dir() and any(real.iterdir()):
        if not _is_run(real):
            first = sorted(p.name for p in real.iterdir())[0]
            raise UserError(f'--out {out}: holds files that are not a fewshot-fastai run (such as {first!r}); give a new or '
                            'empty folder (--force replaces only an earlier run)')
        if not force: raise UserError(f'--out {out}: holds an earlier run; give a new folder, or --force to replace it as a whole')
    return real

@contextmanager
def writing_run(
    out:Path, # the folder `check_out` returned
    cmd:str, # the command writing it
):
    "Yields a temporary sibling folder; on success it replaces `out` as a whole (with the run marker), else it is removed"
    from .._files import replacing_folder
    with replacing_folder(out, keep=lambda name: True) as tmp:
        yield tmp
        (tmp/RUN_MARKER).write_text(json.dumps(dict(command=cmd)) + '\n')

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
        if p.is_dir():
            found = sorted(get_image_files(p))
            shown = [f for f in found if not any(part.startswith('.') for part in f.relative_to(p).parts)]
            if len(shown) < len(found): warnings.warn(f'{p}: {len(found) - len(shown)} hidden image file(s) skipped (a name starting with a dot on the way)')
            out += shown
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
    return cf.files_by_class()

def save_figure(fig, path):
    "`fig` as a PNG at `path`, all-or-nothing, then closed (`ff.interpret.save_figure`)"
    from ..interpret.show import save_figure as save
    save(fig, path)
    plt().close('all')

def render(rows, as_json:bool, as_csv:bool) -> str:
    "A list of dicts (or one dict) as JSON, CSV or an aligned table"
    if isinstance(rows, dict) and not as_csv: rows_l = [rows]
    else: rows_l = rows if isinstance(rows, list) else [rows]
    json.dumps(rows, allow_nan=False, default=str)   # a NaN or infinite result is an error, in every format
    if as_json: return json.dumps(rows, indent=1)
    keys = list(rows_l[0]) if rows_l else []
    if as_csv:
        buf = io.StringIO(); w = csv.DictWriter(buf, keys); w.writeheader(); w.writerows(rows_l)
        return buf.getvalue().rstrip('\n')
    cells = [[str(r[k]) for k in keys] for r in rows_l]
    width = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    line = lambda vals: '  '.join(v.ljust(w) for v, w in zip(vals, width)).rstrip()
    return '\n'.join([line(keys), *(line(c) for c in cells)])
