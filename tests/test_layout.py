"""The package's layout holds: a root of user verbs, every name that used to be at the root reachable under its
sub-package, no private name imported across packages, no module at the root that only `__init__` imports, and no
import cycle between the sub-packages (an AST scan of every import, including those inside functions)."""
import ast, importlib
from pathlib import Path
import pytest
import fewshot_fastai as ff

PKG = Path(ff.__file__).parent

# Every name of the root `__all__` before the layout change (commit 2bc10c3), and where it lives now.
OLD_ROOT = {
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
    'inference': ['support_scores', 'shift_views', 'flip_views', 'affine_views', 'one_to_one'],
    'callbacks': ['naive_episode_accuracy', 'DistribSupport', 'AdditiveMargin'],
    'interpret': ['pair_top_losses', 'episode_top_losses', 'CamResult', 'cam_result', 'PairMaps', 'last_conv_layer',
                  'cam_bbox'],
    'gan': ['NoiseImages', 'gan_images', 'dcgan_generator', 'dcgan_critic', 'dcgan_init', 'dcgan_losses', 'wgan_losses',
            'GANFixes', 'GANStats', 'GANNaNStop', 'frechet_distance', 'FrechetFeatures', 'lite0_features',
            'plot_gan_losses'],
    '_distrib': ['unwrap_model', 'is_main_process'],   # plumbing, private on purpose
}
STILL_ROOT = ['omniglot', 'orl_faces', 'ClassFolder', 'SiameseImage', 'SiameseDataLoaders', 'EpisodeDataLoaders',
              'ClassifierDataLoaders', 'efficientnet_lite0', 'create_encoder', 'SiameseModel', 'siamese_splitter',
              'ProtoNet', 'siamese_learner', 'episodic_learner', 'classifier_learner', 'ensemble_learner', 'NWayEval',
              'PairAccuracy', 'FitThreshold', 'predict_pair', 'predict_pairs', 'classify', 'embed', 'SupportSet',
              'episode_accuracy', 'tta_views', 'cam', 'grad_cam', 'similarity_maps', 'show_cam', 'show_pair_cam',
              'show_cams', 'CAMCallback', 'GANDataLoaders', 'gan_learner', 'dcgan_learner', 'wgan_learner', 'generate',
              'GANSamples', 'GANFrechet', 'GANCheckpoint', 'resume_gan', 'save_model', 'load_model', 'export_onnx',
              'recipe']

def test_root_is_the_user_verbs():
    assert len(ff.__all__) <= 60
    assert set(STILL_ROOT) <= set(ff.__all__)
    assert all(hasattr(ff, n) for n in ff.__all__)
    # the 137 old root names: 47 still at the root (with __version__), 90 under a sub-package, none lost
    assert len(STILL_ROOT) + 1 + sum(map(len, OLD_ROOT.values())) == 137

@pytest.mark.parametrize('sub', sorted(OLD_ROOT))
def test_old_root_names_reachable_under_their_subpackage(sub):
    mod = importlib.import_module(f'fewshot_fastai.{sub}')
    for name in OLD_ROOT[sub]:
        assert hasattr(mod, name), f'ff.{sub}.{name}'
        if not sub.startswith('_'): assert name in mod.__all__, f'{name} missing from ff.{sub}.__all__'
        assert not hasattr(ff, name) or name in ff.__all__ or name in ('learner',)

def test_subpackages_export_what_they_define():
    for sub in ('data', 'datasets', 'models', 'verification', 'callbacks', 'interpret', 'gan', 'recipes', 'cli'):
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
