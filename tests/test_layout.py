"""The package's layout holds: a root of user verbs, the names of each sub-package's contract reachable there, no private
name imported across packages, no module at the root that only `__init__` imports, `callbacks` running the protocols
of `evaluate` without reaching past it, and no import cycle between the sub-packages (an AST scan of every import,
including those inside functions)."""
import ast, importlib, inspect
from pathlib import Path
import pytest
import fewshot_fastai as ff

PKG = Path(ff.__file__).parent

# Names users reach through a sub-package (not the root): each must stay there and in its `__all__`.
SUBPACKAGE_NAMES = {
    'data': ['fetch_zip', 'safe_extract', 'download', 'check_hash', 'cache_dir', 'LazyImages', 'IndexedView',
             'decoded_bytes', 'label_of', 'PairSampler', 'class_split', 'Elastic', 'EpisodeSampler', 'Episode',
             'ClassBatches', 'to_image'],
    'datasets': ['alphabet_of', 'omniglot_strokes', 'read_strokes', 'render_strokes', 'perturb_strokes',
                 'drop_hidden_taps', 'stroke_file', 'StrokeImages', 'with_strokes', 'ink_center', 'InkCenter',
                 'drawer_of', 'lake_runs', 'load_runs', 'write_runs'],
    'models': ['koch_net', 'conv4', 'wrn', 'resnet12', 'imagenet_batch', 'TapGrid', 'resolve_arch',
               'PretrainedUnavailable', 'ConcatHead', 'L1Head', 'DistanceHead', 'CosineHead', 'CosineClassifier',
               'EnsembleEncoder'],
    'losses': ['ContrastiveLoss', 'pair_loss', 'same_probability'],
    'verification': ['best_threshold', 'equal_error_rate', 'fit_logistic', 'calibration_error', 'score_norm',
                     'Whitening', 'fit_whitening', 'ScoreFusion', 'fit_fusion'],
    'learner': ['SiameseLearner', 'EpisodicLearner'],
    'inference': ['support_scores', 'shift_views', 'flip_views', 'affine_views'],
    'methods': ['FewShotClassifier', 'register_method', 'list_methods', 'create_method', 'MeanScore', 'Prototype'],
    'evaluate': ['episode_accuracy', 'naive_episode_accuracy', 'runs_error', 'one_to_one', 'pairs_eer', 'interval95',
                 'unseen_alphabets', 'alphabet_episodes', 'within_alphabet_error', 'oneshot_trials',
                 'recognisability', 'diversity'],
    'callbacks': ['NWayEval', 'DistribSupport', 'AdditiveMargin'],
    'interpret': ['pair_top_losses', 'episode_top_losses', 'CamResult', 'cam_result', 'PairMaps', 'last_conv_layer',
                  'cam_bbox'],
    'gan': ['NoiseImages', 'gan_images', 'dcgan_generator', 'dcgan_critic', 'dcgan_init', 'dcgan_losses', 'wgan_losses',
            'GANFixes', 'GANStats', 'GANNaNStop', 'frechet_distance', 'FrechetFeatures', 'lite0_features',
            'plot_gan_losses', 'OneShotGenerator', 'WarpGenerator'],
    '_distrib': ['unwrap_model', 'is_main_process'],   # plumbing, private on purpose
}

def test_root_is_the_user_verbs():
    assert len(ff.__all__) <= 60 and len(set(ff.__all__)) == len(ff.__all__)
    stray = [n for n, v in vars(ff).items() if not n.startswith('_') and n not in ff.__all__ and not inspect.ismodule(v)]
    assert not stray, f'root names outside __all__: {stray}'
    for n in ff.__all__:
        if n == '__version__': continue
        v = getattr(ff, n)
        assert callable(v), f'ff.{n} is not a verb, a class or a factory'
        # a root name is the sub-package's own object, not a second definition
        home = importlib.import_module(v.__module__)
        assert v.__module__.startswith('fewshot_fastai.') and getattr(home, n) is v, n

@pytest.mark.parametrize('sub', sorted(SUBPACKAGE_NAMES))
def test_subpackage_names_reachable(sub):
    mod = importlib.import_module(f'fewshot_fastai.{sub}')
    for name in SUBPACKAGE_NAMES[sub]:
        assert hasattr(mod, name), f'ff.{sub}.{name}'
        if not sub.startswith('_'): assert name in mod.__all__, f'{name} missing from ff.{sub}.__all__'
        assert not hasattr(ff, name) or name in ff.__all__ or name in ('learner',)

@pytest.mark.parametrize('old,new', [('callbacks', 'episode_accuracy'), ('callbacks', 'runs_error'),
                                     ('gan', 'oneshot_trials')])
def test_moved_protocols_answer_at_their_old_place_with_a_warning(old, new):
    mod = importlib.import_module(f'fewshot_fastai.{old}')
    with pytest.warns(DeprecationWarning, match=f'ff.evaluate.{new}'): f = getattr(mod, new)
    assert f is getattr(ff.evaluate, new)
    with pytest.raises(AttributeError): getattr(mod, 'no_such_name')

def test_subpackages_export_what_they_define():
    for sub in ('data', 'datasets', 'models', 'verification', 'methods', 'callbacks', 'evaluate', 'interpret', 'gan', 'recipes', 'cli'):
        mod = importlib.import_module(f'fewshot_fastai.{sub}')
        assert mod.__all__ and all(hasattr(mod, n) for n in mod.__all__), sub

def _modules():
    "{dotted module name: parsed tree} of every module of the package"
    out = {}
    for f in sorted(PKG.rglob('*.py')):
        rel = f.relative_to(PKG.parent).with_suffix('')
        parts = list(rel.parts)
        if parts[-1] == '__init__': parts = parts[:-1]
        out['.'.join(parts)] = (ast.parse(f.read_text()), f.name == '__init__.py')
    return out

def _imports(name, tree, is_pkg):
    "[(imported module, [names])] of every `import` / `from ... import` in `tree`, relative ones resolved"
    base = name.split('.') if is_pkg else name.split('.')[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level: mod = '.'.join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
            else: mod = node.module or ''
            yield mod, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names: yield a.name, []

def _unit(mod):
    "The layout unit of a module: its sub-package, or the root module itself (`fewshot_fastai.learner`)"
    parts = mod.split('.')
    return '.'.join(parts[:2]) if len(parts) > 1 else mod

def test_no_private_name_crosses_packages():
    bad = []
    for name, (tree, is_pkg) in _modules().items():
        for mod, names in _imports(name, tree, is_pkg):
            if not mod.startswith('fewshot_fastai'): continue
            if _unit(mod) != _unit(name):
                bad += [f'{name}: {n} from {mod}' for n in names if n.startswith('_') and n != '__version__']
    assert not bad, bad

def test_no_root_module_only_init_imports():
    mods = _modules()
    users = {m: set() for m in mods}
    for name, (tree, is_pkg) in mods.items():
        for mod, names in _imports(name, tree, is_pkg):
            for target in [mod] + [f'{mod}.{n}' for n in names]:
                if target in users and target != name: users[target].add(name)
    root = [m for m in mods if m.count('.') == 1 and not m.split('.')[1].startswith('__')
            and m.split('.')[1] not in ('_version',) and not (PKG/m.split('.')[1]).is_dir()]
    lonely = [m for m in root if users[m] <= {'fewshot_fastai'}]
    assert not lonely, f'root modules that only __init__ imports: {lonely}'

def _unit_graph(mods) -> dict:
    "{unit: units it imports} over the package, the root `__init__` left out (it gathers everything)"
    graph = {}
    for name, (tree, is_pkg) in mods.items():
        if name == 'fewshot_fastai': continue
        for mod, _ in _imports(name, tree, is_pkg):
            if mod.startswith('fewshot_fastai.') and _unit(name) != _unit(mod): graph.setdefault(_unit(name), set()).add(_unit(mod))
    return graph

def _cycles(graph:dict) -> list:
    "Import cycles of `graph`, each as the path that closes it"
    cycles, state = [], {}
    def visit(u, path):
        state[u] = 'open'
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 'open': cycles.append(path[path.index(v):] + [v])
            elif v not in state: visit(v, path + [v])
        state[u] = 'done'
    for u in sorted(graph):
        if u not in state: visit(u, [u])
    return cycles

def test_no_import_cycle_between_subpackages():
    graph = _unit_graph(_modules())
    assert 'fewshot_fastai.data' in graph and not _cycles(graph), _cycles(graph)
    assert 'fewshot_fastai.models' not in graph.get('fewshot_fastai.data', set())   # data never imports models

def test_cycle_scan_sees_a_cycle_through_a_function_level_import():
    mods = {'fewshot_fastai.a.y': (ast.parse('from ..b.x import f'), False),
            'fewshot_fastai.b.x': (ast.parse('def g():\n    from ..a.y import h'), False)}
    assert _cycles(_unit_graph(mods)) == [['fewshot_fastai.a', 'fewshot_fastai.b', 'fewshot_fastai.a']]

def test_callbacks_reach_the_protocols_only_through_evaluate():
    mods = _modules()
    bad = [f'{name} imports {mod}' for name, (tree, is_pkg) in mods.items() if _unit(name) == 'fewshot_fastai.callbacks'
           for mod, _ in _imports(name, tree, is_pkg) if _unit(mod) in ('fewshot_fastai.inference', 'fewshot_fastai.datasets')]
    assert not bad, bad
    assert any(_unit(mod) == 'fewshot_fastai.evaluate' for mod, _ in _imports('fewshot_fastai.callbacks.nway', *mods['fewshot_fastai.callbacks.nway']))

def test_no_object_new_outside_the_ctor():
    "Objects are built through their constructors (`ClassFolder.from_items`), never `object.__new__`"
    bad = [str(f.relative_to(PKG)) for f in PKG.rglob('*.py') if 'object.__new__' in f.read_text()]
    assert not bad, bad

def test_no_history_in_code():
    "Measured figures and their dates live in bench/RESULTS.md and recipes/measured.json, not in the code's text"
    import re
    date, issue = re.compile(r'\b20\d\d-[01]\d-[0-3]\d\b'), re.compile(r'\bissues? #?\d+', re.I)
    files = list(PKG.rglob('*.py')) + list((PKG.parent/'tests').rglob('*.py'))
    bad = [f'{f.name}:{n}' for f in files for n, line in enumerate(f.read_text().splitlines(), 1)
           if issue.search(line) or (f.is_relative_to(PKG) and date.search(line))]
    assert not bad, bad

def test_no_attribute_shadows_a_module_of_its_package():
    "`ff.recipes.drawings` is the recipe function and nothing else: no package attribute hides a module of the same name"
    import pkgutil
    bad = []
    for info in pkgutil.walk_packages([str(PKG)], 'fewshot_fastai.'):
        if not info.ispkg: continue
        pkg = importlib.import_module(info.name)
        for m in pkgutil.iter_modules(pkg.__path__):
            importlib.import_module(f'{info.name}.{m.name}')
            v = getattr(pkg, m.name, None)
            if not inspect.ismodule(v): bad.append(f'{info.name}.{m.name} is a {type(v).__name__}, not its module')
    assert not bad, bad
