"""Check the built site in `_docs/`: links, API coverage, and a real browser.

1. Every internal `href`/`src` in every page resolves to a file, and every `#fragment` to an element id in it.
   Source links into the repository resolve to an existing file and line of this checkout.
2. Every root verb and every function/class of a sub-package's `__all__` has its entry (an element with that id) on its API page.
3. Debian's `chromium`, driven by Playwright (`executable_path`: no browser download), loads the home page, a
   tutorial and an API page from `python -m http.server` on 127.0.0.1; each must show its heading, load every image
   (a figure on the home page and the tutorial, a parameter table on the API page), log no console error and make
   no failed request; the search box must find `siamese_learner`. Screenshots go to `_docs/_check/`.
Usage: `python docs/check.py` (after `python docs/build.py`); exits 1 naming every failure.
"""
import re, shutil, socket, subprocess, sys, time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse, unquote

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT/'_docs'
sys.path.insert(0, str(Path(__file__).parent))
import build  # noqa: E402  (docs/build.py: page_of, the API groups and the repository URL)


class _Page(HTMLParser):
    "The ids and the (attribute, url) references of one HTML page"
    def __init__(self):
        super().__init__(); self.ids, self.refs = set(), []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get('id'): self.ids.add(a['id'])
        if tag == 'a' and a.get('name'): self.ids.add(a['name'])
        for k in ('href', 'src'):
            if a.get(k) and not (tag == 'link' and a.get('rel') in ('preconnect', 'dns-prefetch')): self.refs.append(a[k])


def parse(path):
    p = _Page(); p.feed(path.read_text(encoding='utf-8')); return p


def check_links(site=SITE):
    "Broken internal links, image references and source links, as 'page: url (why)'"
    from nbdev.config import get_config
    cfg = get_config(ROOT)
    pages = {f: parse(f) for f in site.rglob('*.html') if '_check' not in f.parts}
    bad = []
    for f, page in pages.items():
        for ref in page.refs:
            u = urlparse(ref)
            if u.scheme in ('mailto', 'data', 'javascript'): continue
            if u.scheme in ('http', 'https'):
                prefix = f'{cfg.git_url}/blob/{cfg.branch}/'
                if ref.startswith(prefix):   # a source link: the file and the line must exist in this checkout
                    src = ROOT/unquote(u.path[len(urlparse(prefix).path):])
                    line = int(u.fragment[1:]) if u.fragment.startswith('L') else 1
                    if not src.is_file() or line > len(src.read_text().splitlines()):
                        bad.append(f'{f.relative_to(site)}: {ref} (no such file or line)')
                continue
            if u.path.startswith('/'):   # absolute (404.html): relative to where the site is served, `doc_baseurl`
                base = cfg.doc_baseurl.rstrip('/') + '/'
                if not u.path.startswith(base): bad.append(f'{f.relative_to(site)}: {ref} (outside {base})'); continue
                target = site/unquote(u.path[len(base):])
            else: target = f if not u.path else (f.parent/unquote(u.path)).resolve()
            if target.is_dir(): target = target/'index.html'
            if not target.exists(): bad.append(f'{f.relative_to(site)}: {ref} (missing file)'); continue
            if u.fragment and target.suffix == '.html':
                ids = pages[target].ids if target in pages else parse(target).ids
                if unquote(u.fragment) not in ids: bad.append(f'{f.relative_to(site)}: {ref} (no such anchor)')
    return bad


def check_api(site=SITE):
    "Public names (the root's user verbs and every sub-package's functions and classes) without an entry on their API page"
    missing = []
    entries = [(n, p) for p, es in build.public_api().items() for n, _ in es] + build.root_verbs()
    for name, page_name in entries:
        page = site/'api'/f'{page_name}.html'
        if not page.exists() or name not in parse(page).ids: missing.append(f'{name} (expected on {page.relative_to(site)})')
    return missing


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


# what each page must show: (path, heading text in its h1, CSS selectors that must match)
PAGES = [('index.html', 'fewshot_fastai', ['img']),
         ('siamese.html', 'Siamese networks', ['img', 'div.highlight']),
         ('api/learner.html', 'ff.learner: learners', ['h3#siamese_learner', 'table', 'a.src-link'])]


def check_browser(site=SITE, out=None, pages=PAGES, search=True):
    "Render pages in headless chromium; problems as strings; screenshots saved to `out`"
    from playwright.sync_api import sync_playwright
    exe = shutil.which('chromium') or shutil.which('chromium-browser')
    if exe is None: return ['chromium not found: `apt-get install chromium` (the CI script installs it)']
    out = Path(out or site/'_check'); out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    server = subprocess.Popen([sys.executable, '-m', 'http.server', str(port), '--bind', '127.0.0.1', '--directory', str(site)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    problems = []
    try:
        for _ in range(100):   # wait until the server answers
            try: socket.create_connection(('127.0.0.1', port), timeout=0.2).close(); break
            except OSError: time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=['--no-sandbox'])
            page = browser.new_page(viewport={'width': 1280, 'height': 900})
            errors = []
            page.on('console', lambda m: errors.append(f'console {m.type}: {m.text}') if m.type == 'error' else None)
            page.on('pageerror', lambda e: errors.append(f'page error: {e}'))
            page.on('requestfailed', lambda r: errors.append(f'request failed: {r.url}'))
            page.on('response', lambda r: errors.append(f'HTTP {r.status}: {r.url}') if r.status >= 400 else None)
            for path, heading, selectors in pages:
                errors.clear()
                page.goto(f'http://127.0.0.1:{port}/{path}', wait_until='networkidle')
                h1 = page.locator('article h1').first.inner_text() if page.locator('article h1').count() else ''
                if heading not in h1: problems.append(f'{path}: h1 is {h1!r}, expected it to contain {heading!r}')
                for sel in selectors:
                    if not page.locator(sel).count(): problems.append(f'{path}: no element matches {sel!r}')
                broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
                problems += [f'{path}: image did not load: {src}' for src in broken]
                page.screenshot(path=str(out/(path.replace('/', '_').replace('.html', '.png'))))
                problems += [f'{path}: {e}' for e in errors]
            # client-side search (Material's lunr index, no network): the API entry must be found
            if not search: browser.close(); return problems
            errors.clear()
            page.goto(f'http://127.0.0.1:{port}/index.html', wait_until='networkidle')
            page.locator('label.md-search__icon, .md-search__input').first.click()
            page.locator('input.md-search__input').press_sequentially('siamese_learner', delay=30)   # key events, as a person types
            try: page.wait_for_selector('.md-search-result__item', timeout=10_000)
            except Exception: problems.append('search: no result for "siamese_learner"')
            else:
                hits = page.locator('.md-search-result__item a').evaluate_all("as => as.map(a => a.getAttribute('href'))")
                if not any('api/learner.html' in h for h in hits): problems.append(f'search: "siamese_learner" did not find the API entry: {hits[:5]}')
            page.screenshot(path=str(out/'search.png'))
            problems += [f'search: {e}' for e in errors]
            browser.close()
    finally:
        server.terminate(); server.wait(timeout=10)
    return problems


def main():
    if not (SITE/'index.html').exists(): sys.exit(f'{SITE}/index.html not found: run `make docs` first')
    failures = [('broken link', b) for b in check_links()] + [('API entry missing', m) for m in check_api()]
    failures += [('browser', b) for b in check_browser()]
    for kind, what in failures: print(f'{kind}: {what}')
    if failures: sys.exit(1)
    print(f'docs check passed: links, API entries, {len(PAGES)} pages + search in chromium; screenshots in {SITE/"_check"}')


if __name__ == '__main__':
    main()
