"Packaging floors: every import the package makes is declared in setup.py, and the demo names its extra"
import ast, os, re, subprocess, sys
from importlib.metadata import packages_distributions, requires
from pathlib import Path
import pytest

ROOT = Path(__file__).parents[1]

def _setup_requirements():
    "install_requires and extras_require of setup.py, read without running setup()"
    tree = ast.parse((ROOT/'setup.py').read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, 'id', '') == 'setup')
    kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg in ('install_requires', 'extras_require')}
    return kw['install_requires'], kw['extras_require']

def _name(req): return re.split(r'[<>=!\[; ]', req, maxsplit=1)[0].lower().replace('_', '-')

def _imports():
    "(top-level module, at module level?) for every absolute import in fewshot_fastai/"
    out = set()
    for f in (ROOT/'fewshot_fastai').rglob('*.py'):
        tree = ast.parse(f.read_text())
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import): mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0: mods = [node.module]
            else: continue
            out |= {(m.split('.')[0], id(node) in top) for m in mods}
    return out

def test_every_import_is_declared():
    base, extras = _setup_requirements()
    base_names = {_name(r) for r in base}
    extra_names = {_name(r) for rs in extras.values() for r in rs}
    dists = packages_distributions()
    dists.setdefault('dlib', dists.get('_dlib_pybind11', ['dlib']))   # dlib-bin's package imports its extension module
    undeclared = []
    for mod, module_level in sorted(_imports()):
        if mod in sys.stdlib_module_names or mod == 'fewshot_fastai': continue
        names = {d.lower().replace('_', '-') for d in dists.get(mod, [mod])}
        allowed = base_names if module_level else base_names | extra_names
        if not names & allowed: undeclared.append(f'{mod} ({", ".join(sorted(names))})')
    assert not undeclared, f'imported but not in setup.py: {undeclared}'

def test_fastai_floor_brings_what_we_import():
    "fasttransform and plum came with fastai 2.8: the declared floor must be at least that"
    base, _ = _setup_requirements()
    fastai = next(r for r in base if _name(r) == 'fastai')
    floor = tuple(int(x) for x in re.search(r'>=\s*([\d.]+)', fastai).group(1).split('.')[:2])
    assert floor >= (2, 8), fastai
    installed = {_name(r) for r in requires('fastai')}
    assert {'fasttransform', 'plum-dispatch'} <= installed

def test_demo_names_its_extra_when_missing(tmp_path):
    "Without scikit-image the demo stops at once with one line naming the extra, exit status 2"
    code = ("import sys; sys.modules['skimage'] = None\n"
            "import importlib.util as u; f = u.find_spec\n"
            "u.find_spec = lambda n, *a: None if n == 'skimage' else f(n, *a)\n"
            "from fewshot_fastai.cli import main; sys.exit(main(['demo', '--out', sys.argv[1]]))")
    r = subprocess.run([sys.executable, '-c', code, str(tmp_path/'out')], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == "fewshot-fastai demo needs scikit-image: pip install 'fewshot_fastai[demo]'"
    assert not (tmp_path/'out').exists()
