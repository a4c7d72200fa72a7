"Documentation: every public name documented and in the API reference; the site checker finds broken links and pages"
import inspect, shutil, sys
from pathlib import Path
import pytest
import fewshot_fastai as ff
from fastcore.docments import docments

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT/'docs'))
import build, check  # noqa: E402

SKIP_PARAMS = {'self', 'cls'}


def _undocumented_params(obj):
    "Parameters of `obj` without a docments comment (variadic ones and inherited constructors are exempt)"
    if inspect.isclass(obj) and '__init__' not in vars(obj): return []   # documented where the constructor is defined
    fn = obj.__init__ if inspect.isclass(obj) else obj
    sig = inspect.signature(fn)
    variadic = {n for n, p in sig.parameters.items() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    dm = docments(obj, full=True)
    return [k for k, v in dm.items() if k not in SKIP_PARAMS | variadic | {'return'} and k in sig.parameters and v['docment'] is None]


def _public_objects():
    "Every documented name: the functions and classes of each sub-package's `__all__` (the root's verbs among them)"
    for name, obj in (e for entries in build.public_api().values() for e in entries):
        yield name, obj
        if inspect.isclass(obj):
            for mname, meth in build.public_methods(obj): yield f'{name}.{mname}', meth


def test_every_public_name_has_a_docstring():
    missing = [name for name, obj in _public_objects() if not (obj.__doc__ or "").strip()]   # own docstring, not an inherited one
    assert not missing, f'public names without a docstring: {missing}'


def test_every_parameter_is_documented():
    missing = {name: ps for name, obj in _public_objects() if callable(obj) and (ps := _undocumented_params(obj))}
    assert not missing, f'parameters without a docments comment: {missing}'


def test_api_reference_has_every_name_with_source_line():
    from nbdev.config import get_config
    cfg = get_config(ROOT)
    pages = build.api_markdown(cfg.git_url, cfg.branch)
    text = '\n'.join(pages.values())
    absent = [name for name, _ in _public_objects() if f'{{ #{name} }}' not in text]
    assert not absent, f'not in the API reference: {absent}'
    # each source link points at the line that defines the object
    entry = pages['api/learner.md'].split('{ #siamese_learner }')[1]
    line = int(entry.split('learner.py#L')[1].split('"')[0])
    src = (ROOT/'fewshot_fastai/learner.py').read_text().splitlines()[line - 1:]
    decorators = next(i for i, l in enumerate(src) if not l.startswith('@'))   # the link starts at the decorators
    assert src[decorators].startswith('def siamese_learner('), src[:decorators + 1]
    assert '| dls |' in entry.split('###')[0] and 'Details' in entry   # the docments table


def test_prose_links_to_api_entries():
    names = {'siamese_learner': 'learner', 'SupportSet': 'inference', '.anchors': {'SupportSet.add'}}
    md = build._link_names('Use `ff.siamese_learner`, `SupportSet.add`, `other`; see [x](01_siamese.ipynb).\n'
                           '```python\n`siamese_learner`\n```', names, 'own_data.md')
    assert '[`ff.siamese_learner`](api/learner.md#siamese_learner)' in md
    assert '[`SupportSet.add`](api/inference.md#SupportSet.add)' in md
    assert '`other`' in md and '[x](siamese.md)' in md
    assert '```python\n`siamese_learner`\n```' in md   # code blocks untouched


def _tiny_site(tmp_path):
    site = tmp_path/'site'; (site/'api').mkdir(parents=True)
    (site/'index.html').write_text('<h1 id="top">Home</h1><a href="api/a.html#f">f</a><a href="api/a.html#nope">x</a>'
                                   '<img src="missing.png"><a href="https://example.org/x">ext</a>')
    (site/'api'/'a.html').write_text('<h3 id="f">f</h3><a href="../index.html#top">up</a><a href="../gone.html">gone</a>')
    return site


def test_link_check_finds_broken_links(tmp_path):
    bad = check.check_links(_tiny_site(tmp_path))
    assert sorted(bad) == sorted(['index.html: api/a.html#nope (no such anchor)', 'index.html: missing.png (missing file)',
                                  'api/a.html: ../gone.html (missing file)'])


@pytest.mark.skipif(shutil.which('chromium') is None, reason='chromium is installed by `make test` (apt)')
def test_browser_check_reports_console_errors_and_missing_images(tmp_path):
    site = tmp_path/'site'; site.mkdir()
    icon = '<link rel="icon" href="data:,">'   # no favicon request (its 404 would be a console error)
    (site/'ok.html').write_text(icon + '<article><h1>Fine page</h1><img src="data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7">'
                                '<table></table></article>')
    (site/'bad.html').write_text(icon + '<article><h1>Bad page</h1><img src="nothere.png"></article>'
                                 '<script>console.error("boom")</script>')
    pages = [('ok.html', 'Fine', ['img', 'table']), ('bad.html', 'Bad', ['table'])]
    problems = check.check_browser(site, out=tmp_path/'shots', pages=pages, search=False)
    assert not [p for p in problems if p.startswith('ok.html')], problems
    bad = [p for p in problems if p.startswith('bad.html')]
    assert any('console error: boom' in p for p in bad), bad
    assert any('image did not load' in p and 'nothere.png' in p for p in bad), bad
    assert any("no element matches 'table'" in p for p in bad), bad
    assert (tmp_path/'shots'/'ok.png').stat().st_size > 1000


def _choices(fn, param) -> list[str]:
    "The quoted values (`'a', 'b' or 'c'`) the docments comment of `fn`'s `param` names"
    import re
    return re.findall(r"'([^']+)'", docments(fn)[param] or '')

def test_documented_choices_are_accepted(omni_dls, omni_small):
    """Each value a parameter's documentation offers is one the code accepts (the docs once said 'gradcam' where the
    code took 'grad-cam'), and an undocumented value is refused"""
    import torch
    from torch import nn
    from fastai.vision.all import set_seed
    set_seed(0)
    net = nn.Sequential(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()),
                        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))).eval()
    x = torch.rand(2, 1, 16, 16)
    learn = ff.siamese_learner(omni_dls, 'conv4', head='cosine')
    a, b = omni_dls.class_folder.files[:1], omni_dls.class_folder.files[30:31]
    gdls = ff.GANDataLoaders.from_folder(omni_small, size=32, n_in=1, bs=16)
    cases = [(ff.interpret.cam_result, 'method', lambda m: ff.interpret.cam_result(net, x, method=m)),
             (ff.cam, 'method', lambda m: ff.cam(net, x, method=m)),
             (ff.similarity_maps, 'method', lambda m: ff.similarity_maps(learn, a, b, method=m)),
             (ff.inference.support_scores, 'method', lambda m: ff.inference.support_scores(learn, torch.rand(2, 8), torch.rand(3, 8), [0, 1, 1], 2, method=m)),
             (ff.gan_learner, 'loss', lambda m: ff.gan_learner(gdls, loss=m)),
             (ff.gan.diff_augment, 'policy', lambda m: ff.gan.diff_augment(torch.rand(2, 1, 8, 8), (m,)))]
    for fn, param, call in cases:
        offered = _choices(fn, param)
        assert len(offered) >= 2, (fn.__name__, param, offered)
        for value in offered: call(value)   # raises if the code refuses a documented value
        with pytest.raises(ValueError): call('gradcam')
