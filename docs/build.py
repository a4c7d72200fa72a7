"""Build the documentation site into `_docs/` without Quarto.

1. nbdev's own processing (`nbdev.serve.proc_nbs`, the step `nbdev_docs` runs before Quarto) turns `nbs/*.ipynb`
   into `_proc/`: `show_doc` cells executed, `#| hide` cells gone, front matter from the title cell.
2. nbconvert's `MarkdownExporter` turns each processed notebook into Markdown with its stored outputs and figures,
   honouring the Quarto cell options nbdev leaves for Quarto (`echo: false`, `output: false`).
3. The API reference is generated here, one page per sub-package, for every function and class in its `__all__`
   (the root's `__all__` is the index page's list of user verbs): fastcore's show_doc renderer
   (signature + docstring), its docments table, and a link to the source file and line.
4. mkdocs with the Material theme renders the site (navigation, client-side search, code highlighting), `--strict`,
   so that a broken internal link or anchor fails the build.

Why mkdocs + Material rather than Sphinx/myst-nb: the pages are Markdown after steps 1-3, Material gives search and
navigation with no network access at view time (`font: false`), and `use_directory_urls: false` gives a site
that also opens from `file://`.
Usage: `python docs/build.py` (what `make docs` runs); then open `_docs/index.html`.
"""
import importlib, inspect, json, os, re, shutil, subprocess, sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT/'_build'/'site'          # the Markdown tree mkdocs reads (generated; git-ignored)

# API pages: one per sub-package or module of the public API, in reading order (module -> page name, title).
# A page documents every name in that module's `__all__` that is defined under it (re-exports are documented once,
# where they are defined); the root's user verbs are listed on the index page and link to their entries.
API_GROUPS = [('fewshot_fastai.data', 'data', 'ff.data: sources, folders, splits, pairs, episodes, augmentation'),
              ('fewshot_fastai.datasets', 'datasets', 'ff.datasets: Omniglot and ORL, pen strokes, Lake runs, ink centring'),
              ('fewshot_fastai.models', 'models', 'ff.models: the encoder registry, encoders, heads, siamese, protonet'),
              ('fewshot_fastai.losses', 'losses', 'ff.losses'),
              ('fewshot_fastai.verification', 'verification', 'ff.verification: thresholds, EER, calibration, whitening, fusion'),
              ('fewshot_fastai.methods', 'methods', 'ff.methods: few-shot classifiers on one support/query contract'),
              ('fewshot_fastai.evaluate', 'evaluate', 'ff.evaluate: every evaluation protocol (episodes, runs, pairs, alphabets, generation)'),
              ('fewshot_fastai.callbacks', 'callbacks', 'ff.callbacks: N-way evaluation, thresholds, margin, several processes'),
              ('fewshot_fastai.config', 'config', 'ff.config: the typed configuration a learner carries and a model folder saves'),
              ('fewshot_fastai.learner', 'learner', 'ff.learner: learners'),
              ('fewshot_fastai.inference', 'inference', 'ff.inference: pairs, support sets, embeddings, test-time views'),
              ('fewshot_fastai.interpret', 'interpret', 'ff.interpret: CAM, similarity maps, top losses'),
              ('fewshot_fastai.gan', 'gan', 'ff.gan: GANs'),
              ('fewshot_fastai.recipes', 'recipes', 'ff.recipes: the measured settings for a kind of data'),
              ('fewshot_fastai.deploy', 'deploy', 'ff.deploy: safetensors and ONNX'),
              ('fewshot_fastai.serve', 'serve', 'ff.serve: the gallery in SQLite and the HTTP app (`fewshot-fastai serve`; its OpenAPI schema at /docs of the running server)')]
# fastai callback events are documented by fastai; our callbacks' event methods are not listed as API
CALLBACK_EVENTS = {'after_create', 'before_fit', 'before_epoch', 'before_train', 'before_batch', 'after_pred', 'after_loss',
                   'before_backward', 'after_backward', 'before_step', 'after_step', 'after_batch', 'after_train',
                   'before_validate', 'after_validate', 'after_epoch', 'after_fit', 'after_cancel_batch',
                   'after_cancel_train', 'after_cancel_validate', 'after_cancel_epoch', 'after_cancel_fit'}


def page_of(obj):
    "API page name of `obj`, from the module that defines it"
    mod = getattr(obj, '__module__', None) or ''
    for prefix, page, _ in API_GROUPS:
        if mod == prefix or mod.startswith(prefix + '.'): return page
    raise ValueError(f'{obj!r} is defined in {mod!r}, which no API page covers: add it to API_GROUPS in docs/build.py')


def public_methods(cls):
    "Public functions, classmethods and staticmethods defined in `cls`'s own body (inherited ones are documented where defined)"
    out = []
    for n, v in vars(cls).items():
        if isinstance(v, (classmethod, staticmethod)): v = v.__func__
        if not n.startswith('_') and inspect.isfunction(v) and n not in CALLBACK_EVENTS: out.append((n, v))
    return out


def _documentable(obj) -> bool:
    "Functions and classes get entries; constants (URLs, tables of checksums) are described by their module's entries"
    return inspect.isfunction(obj) or inspect.isclass(obj)


def public_api():
    "{page: [(name, obj)]}: every function and class in each API module's `__all__`, on the page of its defining module"
    pages, seen = defaultdict(list), set()
    for mod_name, page, _ in API_GROUPS:
        mod = importlib.import_module(mod_name)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if not _documentable(obj) or id(obj) in seen or page_of(obj) != page: continue
            seen.add(id(obj)); pages[page].append((name, obj))
    return pages


def root_verbs():
    "[(name, page)] of `fewshot_fastai.__all__` (less `__version__`): each is documented on its sub-package's page"
    ff = importlib.import_module('fewshot_fastai')
    return [(n, page_of(getattr(ff, n))) for n in ff.__all__ if n != '__version__']


def source_link(obj, git_url, branch):
    "Link to the file and first line that define `obj` in the repository"
    obj = inspect.unwrap(obj)
    path = Path(inspect.getsourcefile(obj)).resolve().relative_to(ROOT)
    line = inspect.getsourcelines(obj)[1]
    return f'{git_url}/blob/{branch}/{path.as_posix()}#L{line}'


def signature_of(obj, name):
    "`def name(...)` / `class Name(...)` without the parameter comments (the table below has them); long ones one per line"
    kind = 'class' if inspect.isclass(obj) else 'def'
    try: sig = inspect.signature(obj)
    except (TypeError, ValueError): return f'{kind} {name.split(".")[-1]}(...)'
    params = [str(p) for p in sig.parameters.values()]
    ret = '' if sig.return_annotation is inspect.Signature.empty or kind == 'class' else f' -> {inspect.formatannotation(sig.return_annotation)}'
    one = f'{kind} {name.split(".")[-1]}({", ".join(params)}){ret}'
    return one if len(one) <= 100 else f'{kind} {name.split(".")[-1]}(\n    ' + ',\n    '.join(params) + f'\n){ret}'


def render_entry(name, obj, git_url, branch, level=3):
    "Markdown for one API entry: heading with an anchor, source link, signature + docstring, docments table"
    from fastcore.docments import DocmentTbl
    h = '#' * level
    md = [f'{h} {name} {{ #{name} }}', '',
          f'<a class="src-link" href="{source_link(obj, git_url, branch)}">source</a>', '']
    md += [f'```python\n{signature_of(obj, name)}\n```', '']
    doc = inspect.getdoc(obj) or ''
    if doc: md.append(doc)
    try: tbl = DocmentTbl(obj)._repr_markdown_()
    except Exception: tbl = ''   # objects without a signature (a `fastuple`'s *args) have no table
    if tbl: md += ['', tbl]
    return '\n'.join(md) + '\n'


def api_markdown(git_url, branch):
    "{page: markdown} for the API reference, plus its index page; every public name has one `{#name}` anchor"
    pages, out = public_api(), {}
    titles = {p: t for _, p, t in API_GROUPS if p}
    index = ['# API reference', '',
             'The root of `fewshot_fastai` (imported as `ff`) holds the user verbs; everything else is reached through '
             'its sub-package (`ff.data.Elastic`, `ff.verification.fit_whitening`). Each entry has its signature, '
             'a table of its parameters and a link to its source.', '',
             '## The root: `ff.<name>`', '',
             ', '.join(f'[`ff.{n}`]({p}.md#{n})' for n, p in root_verbs()), '']
    for _, page, title in API_GROUPS:
        if page is None or page not in pages: continue
        body = [f'# {title}', '']
        index += [f'## [{title}]({page}.md)', '']
        index += [', '.join(f'[`{n}`]({page}.md#{n})' for n, _ in pages[page]), '']
        for name, obj in pages[page]:
            body.append(render_entry(name, obj, git_url, branch))
            if inspect.isclass(obj):
                for mname, meth in public_methods(obj):
                    body.append(render_entry(f'{name}.{mname}', meth, git_url, branch, level=4))
        out[f'api/{page}.md'] = '\n'.join(body)
    out['api/index.md'] = '\n'.join(index)
    return out


def http_api_markdown(dest:Path) -> str:
    """The HTTP API page, from the OpenAPI schema of a real `ff.serve.create_app` (the routes do not depend on the
    model: a seeded, untrained Conv4 on 4 generated images and an empty gallery in a temporary file stand in for one);
    the schema itself is written beside it as `openapi.json`."""
    import tempfile, warnings
    import numpy as np
    import fewshot_fastai as ff
    from fastai.vision.all import PILImageBW, set_seed
    from PIL import Image
    set_seed(0)
    ims = [Image.fromarray(np.random.default_rng(i).integers(0, 255, (28, 28), dtype=np.uint8)) for i in range(4)]
    cf = ff.ClassFolder.from_items('generated', ['a', 'b'], [f'{i}.png' for i in range(4)], [0, 0, 1, 1], images=ims)
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as d:
        warnings.simplefilter('ignore')
        dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0, n_way=2, n_query=1,
                                                      k_shot=1, episodes_per_epoch=1)
        schema = ff.serve.create_app(ff.episodic_learner(dls, 'conv4'), Path(d)/'g.db').openapi()
    (dest/'openapi.json').write_text(json.dumps(schema, indent=1))
    md = ['# HTTP API: `fewshot-fastai serve`', '',
          '`fewshot-fastai serve MODEL --gallery GALLERY.db` (or `ff.serve.create_app(model, gallery)` in your own ASGI '
          'server) answers JSON over HTTP; every mistake is a 4xx (507 for a full gallery, 503 for a read-only one) '
          'with `{"error": "one line"}`. The running server has interactive docs at `/docs` and its schema at '
          '`/openapi.json`; the same schema, from this version, is [here](openapi.json). The page at `/` enrols, '
          'recognises and deletes classes from the browser. Limits: `fewshot-fastai serve --help`.', '']
    for path, ops in schema['paths'].items():
        for method, op in ops.items():
            md += [f'## `{method.upper()} {path}`', '', op.get('summary', ''), '']
            params = [(q['name'], q['in'], (q.get('schema') or {}).get('type', ''), q.get('description', '')) for q in op.get('parameters', [])]
            body = op.get('requestBody', {}).get('content', {})
            for ctype, c in body.items():
                ref = c.get('schema', {}).get('$ref', '').split('/')[-1]
                for name, f in schema.get('components', {}).get('schemas', {}).get(ref, {}).get('properties', {}).items():
                    kind = 'file' + ('s' if f.get('type') == 'array' else '')
                    params.append((name, f'body ({ctype})', kind, f.get('description', '')))
            if params:
                md += ['| name | in | type | description |', '|---|---|---|---|'] + [f'| `{n}` | {w} | {t} | {d} |' for n, w, t, d in params] + ['']
            md += ['Answers:', ''] + [f'- {code}: {r.get("description", "")}' for code, r in op.get('responses', {}).items()] + ['']
    return '\n'.join(md)


_DIRECTIVE = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')

def _quarto_options(nb):
    "Turn the Quarto cell options nbdev leaves in code cells into nbconvert tags, and strip them from the source"
    for cell in nb.cells:
        cell.metadata.pop('execution', None)   # nbdev's timing floats, which nbformat's schema rejects
        if cell.cell_type != 'code': continue
        lines, opts = cell.source.splitlines(), {}
        while lines and _DIRECTIVE.match(lines[0]):
            k, v = _DIRECTIVE.match(lines.pop(0)).groups()
            opts[k] = v.lower()
        cell.source = '\n'.join(lines)
        tags = set(cell.metadata.get('tags', []))
        if opts.get('echo') == 'false' or 'hide_input' in opts: tags.add('remove_input')
        if opts.get('output') == 'false': tags.add('remove_output')
        if opts.get('include') == 'false' or 'hide' in opts: tags.add('remove_cell')
        cell.metadata['tags'] = sorted(tags)
    return nb


def _link_names(md, names, here):
    "Link `ff.name` / `name` / `Name.method` in prose to its API entry, and `NN_name.ipynb` links to their pages"
    parts = re.split(r'(```.*?```)', md, flags=re.S)
    def sub(m):
        prefix, nm, meth = m.group(1) or '', m.group(2), m.group(3) or ''
        if nm not in names: return m.group(0)
        anchor = nm + meth if (nm + meth) in names['.anchors'] else nm
        rel = os.path.relpath(SRC/f'api/{names[nm]}.md', (SRC/here).parent).replace(os.sep, '/')
        return f'[`{prefix}{nm}{meth}`]({rel}#{anchor})'
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r'(?<!\[)`(ff\.(?:[a-z]+\.)?)?([A-Za-z_][A-Za-z0-9_]*)(\.[A-Za-z_][A-Za-z0-9_]*)?`(?!\])', sub, parts[i])
        parts[i] = re.sub(r'\]\((\d+[a-zA-Z0-9]*_[\w-]+)\.ipynb(#[^)]*)?\)', lambda m: f']({slug_of(m.group(1) + ".ipynb")}.md{m.group(2) or ""})', parts[i])
    return ''.join(parts)


def notebook_page(nb_path, slug, names):
    "Markdown (and its figure files) of one processed notebook, written under SRC"
    import nbformat, yaml
    from nbconvert import MarkdownExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    nb = nbformat.read(str(nb_path), as_version=4)
    head = []
    if nb.cells and nb.cells[0].cell_type == 'raw' and nb.cells[0].source.startswith('---'):
        meta = yaml.safe_load(nb.cells.pop(0).source.strip().strip('-')) or {}
        head = [f"# {meta.get('title', slug)}", '']
        if meta.get('description'): head += [f"<p class=\"page-description\">{meta['description']}</p>", '']
    for cell in nb.cells:
        if cell.cell_type == 'markdown': cell.source = _link_names(cell.source, names, f'{slug}.md')
    _quarto_options(nb)
    exporter = MarkdownExporter()
    exporter.register_preprocessor(TagRemovePreprocessor(remove_cell_tags={'remove_cell'}, remove_input_tags={'remove_input'},
                                                         remove_all_outputs_tags={'remove_output'}, enabled=True), enabled=True)
    body, res = exporter.from_notebook_node(nb, resources={'output_files_dir': f'{slug}_files'})
    for fname, data in res.get('outputs', {}).items():
        (SRC/fname).parent.mkdir(parents=True, exist_ok=True)
        (SRC/fname).write_bytes(data)
    (SRC/f'{slug}.md').write_text('\n'.join(head) + body)


def slug_of(nb_name):
    "nbdev's page name for a notebook: `01_siamese.ipynb` -> `siamese`; the readme notebook -> `index`"
    from nbdev.config import nbpath2html, get_config
    if nb_name == get_config().readme_nb: return 'index'
    return nbpath2html(nb_name).stem


def mkdocs_config(tutorials, api_pages, cfg):
    "mkdocs.yml as a dict: Material theme without web fonts, search, strict link and anchor validation"
    nav = [{'Home': 'index.md'}, {'Tutorials': [{t: f'{s}.md'} for s, t in tutorials]}, {'Guide': 'guide.md'}, {'Benchmarks': 'benchmarks.md'},
           {'API reference': [{'Overview': 'api/index.md'}] + [{t: f'api/{p}.md'} for p, t in api_pages]}]
    return {'site_name': cfg.title, 'site_description': cfg.description, 'site_url': cfg.doc_url or None,
            # no `repo_url`: Material would ask the GitHub API for stars at every page view; a footer link instead
            'extra': {'social': [{'icon': 'fontawesome/brands/github', 'link': cfg.git_url}]}, 'docs_dir': str(SRC), 'site_dir': str(ROOT/'_docs'),
            'use_directory_urls': False, 'nav': nav,
            'theme': {'name': 'material', 'font': False, 'features': ['navigation.sections', 'navigation.top', 'toc.follow', 'search.highlight'],
                      'palette': {'primary': 'indigo'}},
            'extra_css': ['extra.css'], 'plugins': ['search'],
            'markdown_extensions': ['tables', 'attr_list', 'md_in_html', 'admonition', 'toc',
                                    {'pymdownx.highlight': {'use_pygments': True}}, 'pymdownx.superfences'],
            'validation': {'nav': {'omitted_files': 'warn', 'not_found': 'warn'},
                           'links': {'not_found': 'warn', 'anchors': 'warn', 'absolute_links': 'warn', 'unrecognized_links': 'warn'}}}


def build(n_workers=2):
    "Process the notebooks, write the Markdown tree and the API pages, run `mkdocs build --strict` into `_docs/`"
    import nbformat, yaml
    from nbdev.config import get_config
    from nbdev.serve import proc_nbs
    os.chdir(ROOT)
    cfg = get_config()
    proc = proc_nbs(str(cfg.nbs_path), n_workers=n_workers)
    shutil.rmtree(SRC, ignore_errors=True); SRC.mkdir(parents=True)
    shutil.copy(ROOT/'docs'/'extra.css', SRC/'extra.css')
    shutil.copy(ROOT/'docs'/'guide.md', SRC/'guide.md')            # what is in it, GPUs, processes, big folders
    shutil.copy(ROOT/'bench'/'RESULTS.md', SRC/'benchmarks.md')     # every measured run, dated
    pages = public_api()
    names = {n: p for p, entries in pages.items() for n, _ in entries}
    names['.anchors'] = {f'{n}.{m}' for entries in pages.values() for n, o in entries if inspect.isclass(o) for m, _ in public_methods(o)}
    tutorials = []
    for nb_path in sorted(Path(proc).glob('*.ipynb')):
        slug = slug_of(nb_path.name)
        notebook_page(nb_path, slug, names)
        if slug != 'index':
            title = nbformat.read(str(cfg.nbs_path/nb_path.name), as_version=4).cells[0].source.splitlines()[0].lstrip('# ')
            tutorials.append((slug, title.split(':')[0]))
    for rel, md in api_markdown(cfg.git_url, cfg.branch).items():
        (SRC/rel).parent.mkdir(parents=True, exist_ok=True)
        (SRC/rel).write_text(md)
    api_pages = [(p, t) for _, p, t in API_GROUPS if p in pages]
    (SRC/'api'/'http.md').write_text(http_api_markdown(SRC/'api'))
    api_pages.append(('http', 'HTTP API: fewshot-fastai serve'))
    yml = ROOT/'_build'/'mkdocs.yml'
    yml.write_text(yaml.safe_dump(mkdocs_config(tutorials, api_pages, cfg), sort_keys=False))
    shutil.rmtree(ROOT/'_docs', ignore_errors=True)
    subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--strict', '--quiet', '-f', str(yml)], check=True,
                   env={**os.environ, 'NO_MKDOCS_2_WARNING': '1'})
    print(f"built {len(tutorials)} tutorials, {len(api_pages)} API pages, {sum(map(len, pages.values()))} public names "
          f"-> {ROOT/'_docs'/'index.html'}")


if __name__ == '__main__':
    build()
