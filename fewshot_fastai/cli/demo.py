"""`fewshot-fastai demo`: the pairs recipe on Omniglot, with figures, CAMs and an export round trip (`make demo`)."""
import json
from pathlib import Path
from .._files import write_file
from ..recipes import recipe
from ..datasets.sources import omniglot, OMNIGLOT
from ..models.registry import known_arch
from .common import UserError, check_out, writing_run
from ..inference import predict_pairs
from ..data.pairs import find_pair_sampler
from ..models.pretrained import efficientnet_lite0, imagenet_batch
from ..interpret.maps import cam_result
from ..interpret.show import show_cams, cam_bbox, save_figure

__all__ = ['demo']

def demo(a):
    "Train the pairs recipe on Omniglot; write figures, CAMs, the exported learner and metrics.json to `a.out`"
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import torch
    from fastai.learner import load_learner
    defaults = {k: d for k, (d, _) in recipe('pairs').params().items()}
    for k in ('head', 'arch', 'size', 'epochs', 'lr'):   # flags not given: the recipe's own settings
        if getattr(a, k) is None: setattr(a, k, defaults[k])
    if a.train not in OMNIGLOT: raise UserError(f'--train {a.train}: an Omniglot set, one of {", ".join(OMNIGLOT)}')
    if not known_arch(a.arch): raise UserError(f'--arch {a.arch}: not an encoder of our registry (ff.list_encoders())')
    recipe('pairs').check_values(dict(size=a.size, epochs=a.epochs, lr=a.lr))   # the recipe's bounds, before any work
    out = check_out(a.out, a.force, {})
    with writing_run(out, 'demo') as tmp: _demo(a, tmp, out, plt, torch, load_learner)

def _demo(a, out, final, plt, torch, load_learner):
    "The demo's work, written into the temporary folder `out` that becomes `final`"
    print(f'The pairs recipe: a siamese {a.arch} ({a.head} head) on Omniglot {a.train}, {a.size}px, {a.epochs} epochs; '
          'validation = pairs of characters unseen in training', flush=True)
    learn = recipe('pairs')(omniglot(a.train), epochs=a.epochs, size=a.size, head=a.head, arch=a.arch, lr=a.lr, quiet=False)
    stats = dict(recipe='pairs', train=a.train, size=a.size, head=a.head, arch=a.arch, lr=a.lr, **learn.model_config.stats)
    dls = learn.dls
    def save(name, fig=None):   # every file all-or-nothing
        save_figure(fig, out/name); plt.close('all')
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
    stats.update(export_roundtrip_identical=same, outputs=sorted({p.name for p in out.iterdir()} | {'metrics.json'}))
    write_file(out/'metrics.json', json.dumps(stats, indent=1, allow_nan=False))
    print(f"\nPair verification accuracy on {stats['held_out_classes']} unseen characters ({stats['valid_pairs']} pairs): "
          f"{stats['verification_accuracy']:.1%} after {stats['train_seconds']:.0f}s of training")
    print(f'Export/load_learner gives identical predictions: {same}')
    print(f'Figures and model in {final}/: ' + ', '.join(stats['outputs']))
    print(json.dumps(stats))

def _imagenet_cam(path) -> dict:
    "CAM of efficientnet_lite0 (offline ImageNet weights) on skimage's cat and coffee photos, with boxes"
    from skimage import data
    from PIL import Image
    photos = [Image.fromarray(getattr(data, n)()).resize((224, 224)) for n in ('chelsea', 'coffee')]
    res = cam_result(efficientnet_lite0(pretrained=True).eval(), imagenet_batch(photos))
    fig = show_cams(photos, res.maps, [f'ImageNet class {t} ({res.method})' for t in res.target.tolist()])
    save_figure(fig, path)
    return dict(classes=res.target.tolist(), boxes=[cam_bbox(m) for m in res.maps])
