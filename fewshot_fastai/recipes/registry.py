"""The recipe registry (as timm's model registry): each recipe is a function registered under a name; what it was
measured at is read from `measured.json` beside this module, which `record_figure` (called by the bench scripts with
`--record`) rewrites. `names()`, `recipe(name)`, `pick(data)` (a recipe for a folder, from what its images look like) and
`overrides(name, ['key=value', ...])` (typed parameters from strings, for the command line and the benchmarks)."""
import datetime, inspect, json, math
from dataclasses import dataclass
from pathlib import Path
from fastcore.docments import docments
from .._checks import MAX_SIZE
from .._files import replacing_file

__all__ = ['Recipe', 'BOUNDS', 'MAX_SIZE', 'MEASURED', 'check_bound', 'register', 'measured', 'record_figure', 'names', 'recipe', 'pick', 'overrides', 'class_folder']

@dataclass
class Recipe:
    "A named recipe: `fn(data, **params)` -> a fitted Learner whose inference configuration `ff.save_model` keeps"
    name: str   # what `ff.recipe(name)` looks up
    fn: callable   # `fn(data, **params)` -> the fitted Learner
    data: str   # the kind of data it is for
    @property
    def figure(self) -> str:
        "What it was measured at, and when (from `measured.json`; the runs themselves are rows of bench/RESULTS.md)"
        m = measured().get(self.name)
        return f"{m['figure']} ({m['date']})" if m else 'not measured yet'
    @property
    def command(self) -> str:
        "The command that reproduces `figure`"
        return measured().get(self.name, {}).get('command', '')
    def __call__(
        self,
        data, # a folder of class folders, or a `ClassFolder`
        **params, # the recipe's parameters to override
    ):
        "Run the recipe on `data`: -> the fitted Learner"
        self.check(params); self.check_values(params)
        return self.fn(data, **params)
    @property
    def doc(self) -> str: return inspect.getdoc(self.fn) or ''
    def params(self) -> dict:
        "{parameter: (default, documentation)} of the recipe's own settings (not `data`)"
        docs = docments(self.fn)
        return {k: (p.default, docs.get(k) or '') for k, p in inspect.signature(self.fn).parameters.items()
                if k != 'data' and p.kind == p.POSITIONAL_OR_KEYWORD}
    def settings(
        self,
        params:dict, # the parameters given (overrides)
    ) -> dict:
        "Every setting of a run with `params` (the defaults, overridden), as JSON-able values: what to record beside a figure"
        out = {k: d for k, (d, _) in self.params().items() if k not in _NOT_SETTINGS} | {k: v for k, v in params.items() if k not in _NOT_SETTINGS}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
    def check(
        self,
        params:dict, # {parameter: value}
    ):
        "A one-line error for a parameter the recipe does not have"
        bad = [k for k in params if k not in self.params()]
        if bad: raise ValueError(f'recipe {self.name!r} has no parameter {bad[0]!r}; its parameters: {", ".join(self.params())}')

    def check_values(
        self,
        params:dict, # {parameter: value}
    ):
        "A one-line error, before any work, for a value outside `BOUNDS` (so that a legal run fits a 24 GB machine)"
        for k, v in params.items():
            if k in BOUNDS: check_bound(f'recipe {self.name!r}', k, v)

# What a recipe parameter may be, whatever the recipe: (low, high), inclusive, for a number or each number of a tuple.
# Sizes and widths are bounded so that a legal run fits 24 GB (a 512 px batch of Conv4 maps already takes several GB);
# `load_model` applies the same size bound, so what `train` accepts it loads.
BOUNDS = dict(epochs=(1, 10000), minutes=(1e-3, 7*24*60), size=(16, MAX_SIZE), hidden=(1, 1024), bs=(1, 4096),
              lr=(1e-8, 10), valid_pct=(0, 0.95), n_way=(2, 1000), n_query=(1, 1000), episodes_per_epoch=(1, 100000),
              tta_px=(0, 16), tta_degrees=(0, 90), elastic=(0, 16), rotate=(0, 180), zoom=(1, 4), ink_center=(0, 1),
              shrink=(1e-8, 1e6), grid=(1, 16), rotations=(1, 8), seed=(0, 2**32 - 1), finetune=(0, 10000))

def check_bound(
    where:str, # what to name in the error
    key:str, # the parameter
    value, # its value: a number, or a tuple/list of numbers
):
    "`value` (or each of its numbers) finite and within `BOUNDS[key]`, else a ValueError naming both"
    low, high = BOUNDS[key]
    vals = list(value) if isinstance(value, (tuple, list)) else [value]
    for v in vals:
        if v is None and key == 'minutes': continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not low <= v <= high:
            raise ValueError(f'{where}: {key}={value!r}: must be {"numbers" if len(vals) > 1 else "a number"} in {low:g}..{high:g}')
    return value

_RECIPES: dict[str, Recipe] = {}
_NOT_SETTINGS = ('cbs', 'quiet', 'extra_tfms')   # objects, not JSON-able settings

def register(
    name:str, # the recipe's name
    data:str, # the kind of data it is for
):
    "Decorator: register a recipe function under `name`, with the kind of data it is for"
    def deco(fn):
        if name in _RECIPES: raise ValueError(f'recipe {name!r} is registered twice')
        _RECIPES[name] = Recipe(name, fn, data)
        return fn
    return deco

MEASURED = Path(__file__).with_name('measured.json')

def measured(
    path=None, # the file (default `MEASURED`, shipped with the package)
) -> dict:
    "`{recipe: {figure, command, date}}`: each recipe's headline figure, as the bench last recorded it"
    return json.loads(Path(path or MEASURED).read_text())

def record_figure(
    name:str, # a registered recipe
    figure:str, # the headline figure, in words
    command:str, # the command that measured it
    path=None, # the file (default `MEASURED`)
    date:str|None=None, # ISO date (default: today)
) -> dict:
    "Replace `name`'s figure in `measured.json` (all-or-nothing: a temporary sibling renamed over it) -> its entry"
    if name not in _RECIPES: raise ValueError(f'unknown recipe {name!r}: choose from {", ".join(names())}')
    path = Path(path or MEASURED)
    allm = measured(path) if path.exists() else {}
    allm[name] = dict(figure=figure, command=command, date=date or datetime.date.today().isoformat())
    with replacing_file(path) as tmp: Path(tmp).write_text(json.dumps(dict(sorted(allm.items())), indent=1, ensure_ascii=False) + '\n')
    return allm[name]

def names() -> list[str]:
    "The registered recipe names"
    return sorted(_RECIPES)

def recipe(
    name:str, # a name from `names()`
) -> Recipe:
    "The recipe registered as `name`: call it as `recipe(name)(data, **params)`"
    if name not in _RECIPES: raise ValueError(f'unknown recipe {name!r}: choose from {", ".join(names())}')
    return _RECIPES[name]

def _parse(name:str, key:str, text:str, default):
    "`text` as the type of `default` (bool, int, float, str, a tuple of them, or None: a number or a string)"
    try:
        if isinstance(default, bool) or default is None and text.lower() in ('true', 'false'):
            if text.lower() not in ('true', 'false', '1', '0', 'yes', 'no'): raise ValueError
            return text.lower() in ('true', '1', 'yes')
        if isinstance(default, (tuple, list)):
            parts = [t for t in text.split(',') if t]
            kind = type(default[0]) if default else str
            return tuple(kind(t) for t in parts)
        if isinstance(default, int): return int(text)
        if isinstance(default, float): return float(text)
        if default is None:
            if text.lower() == 'none': return None
            for kind in (int, float):
                try: return kind(text)
                except ValueError: pass
        return text
    except ValueError:
        raise ValueError(f'recipe {name!r}: {key}={text!r} is not a {type(default).__name__} (default {default!r})') from None

def overrides(
    name:str, # the recipe
    items, # 'key=value' strings; a tuple parameter takes 'a,b'
) -> dict:
    "Typed recipe parameters from 'key=value' strings, checked against the recipe's signature (one-line errors)"
    r, out = recipe(name), {}
    params = r.params()
    for item in items:
        if '=' not in item: raise ValueError(f'--set {item!r}: use KEY=VALUE (recipe {name!r} parameters: {", ".join(params)})')
        key, text = item.split('=', 1)
        key = key.strip().replace('-', '_')
        r.check({key: None})
        out[key] = _parse(name, key, text.strip(), params[key][0])
    return out

def class_folder(
    data, # a folder of class folders, or a `ClassFolder` (returned as it is)
    **kwargs, # `ClassFolder` arguments
):
    "A `ClassFolder` from a folder (or one given)"
    from ..data.items import ClassFolder
    if isinstance(data, ClassFolder): return data
    if not Path(data).is_dir(): raise FileNotFoundError(f'{data}: no such folder (one folder of images per class)')
    return ClassFolder(data, **kwargs)

def _faces_found(images) -> tuple[int, str]:
    "(photos of `images` with a face dlib's detector finds, '' or why nobody looked)"
    from ..datasets.faces import face_landmarks
    try: return sum(face_landmarks(im.convert('RGB'), 1)[1] for im in images), ''
    except ImportError as e: return 0, str(e).split(':')[0] + " (pip install 'fewshot_fastai[faces]')"

def pick(
    data, # a folder of class folders, or a `ClassFolder`
    n:int=24, # images to look at
) -> tuple[str, str]:
    """The recipe for `data` from what its images look like, and why: line drawings (grey, nearly every pixel
    black or white, mostly background) -> 'drawings'; photos in which dlib's detector finds a face in most -> 'faces';
    other photos, colour or grey -> 'photos'."""
    import numpy as np
    cf = class_folder(data)
    step = max(1, len(cf.files)//n)
    extreme, colour, ims = [], False, []
    for i in range(0, len(cf.files), step)[:n]:
        im = cf.images[i]
        ims.append(im)
        a = np.asarray(im.convert('RGB'), dtype=np.int16)
        colour |= bool(np.abs(a - a.mean(-1, keepdims=True)).max() > 16)
        g = a.mean(-1)
        extreme.append(float(((g < 40) | (g > 215)).mean()))
    share = sum(extreme)/len(extreme)
    if not colour and share > 0.9:
        return 'drawings', f'grey images with {share:.0%} of pixels black or white: line drawings'
    found, why = _faces_found(ims)
    kind = f'{"colour" if colour else "grey"} photos'
    if found > len(ims)/2:
        return 'faces', f'{kind} with a face found in {found} of the {len(ims)} looked at: dlib\'s face network on aligned chips'
    return 'photos', (f'{kind}, ' + (f'a face found in only {found} of the {len(ims)} looked at' if not why else f'faces not looked for: {why}')
                      + ': the photos recipe, frozen ImageNet features whitened on your classes')
