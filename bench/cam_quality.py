"""How faithful each CAM method's maps are, by the metrics of `ff.interpret.metrics`, on two kinds of data:

- photos: `efficientnet_lite0` (offline ImageNet weights) on six of skimage's photos (cat, coffee, astronaut, rocket,
  cat, tissue) at 224 px, its last block, each photo's predicted class: average drop and increase in confidence,
  deletion / insertion AUC (softmax probability), ROAD combined (percentiles 20-80);
- pairs: the `pairs` recipe (Conv4, contrastive head, 28 px) trained on Omniglot background_small1 for its default epochs
  (`--epochs` to change), `--n-pairs` same-character validation pairs of held-out characters; each method at three
  layers of the encoder (14x14, 7x7 and the 3x3 last spatial block) explains the first image with the similarity to
  the second as the target: deletion / insertion AUC (erased pixels become paper, inserted ones come into the blurred
  drawing), ROAD combined, and the *ink lift*: the share of the map's mass on ink pixels over the share of ink in the
  drawing (1: no more on the strokes than on paper).

The pair default of `similarity_maps` is the method and layer with the best ROAD (the debiased one of these metrics).
Last line: one JSON object."""
import argparse, json, time, warnings
import torch
import fewshot_fastai as ff
from fewshot_fastai.interpret.metrics import class_score, partner_score, confidence_change, deletion_insertion, road

warnings.filterwarnings('ignore')
p = argparse.ArgumentParser(description=__doc__)
p.add_argument('--part', nargs='+', default=['photos', 'pairs'], choices=['photos', 'pairs'])
p.add_argument('--epochs', type=int, default=None, help="pairs: the recipe's epochs (default: its own)")
p.add_argument('--minutes', type=float, default=None, help='pairs: train for this long instead of a number of epochs')
p.add_argument('--n-pairs', type=int, default=24)
p.add_argument('--methods', nargs='+', default=list(ff.interpret.CAM_METHODS))
a = p.parse_args()
PCTS = (20, 40, 60, 80)
out = {}

def table(rows, cols):
    print('| ' + ' | '.join(cols) + ' |'); print('|' + '---|'*len(cols))
    for r in rows: print('| ' + ' | '.join(str(r[c]) for c in cols) + ' |')

if 'photos' in a.part:
    from skimage import data
    model = ff.efficientnet_lite0(pretrained=True).eval()
    x = ff.models.imagenet_batch([data.chelsea(), data.coffee(), data.astronaut(), data.rocket(), data.cat(),
                                  data.immunohistochemistry()])
    layer = model.blocks[-1]
    rows = []
    for method in ['cam', *a.methods]:
        t = time.perf_counter()
        res = ff.interpret.cam_result(model, x, method=method, layer=None if method == 'cam' else layer)
        secs = (time.perf_counter() - t)/len(x)
        s = class_score(model, res.target)
        c, di, ro = confidence_change(s, x, res.maps), deletion_insertion(s, x, res.maps), road(s, x, res.maps, PCTS)
        rows.append(dict(method=method, average_drop=round(c['average_drop'], 1), increase=round(c['increase'], 1),
                         deletion=round(float(di['deletion'].mean()), 4), insertion=round(float(di['insertion'].mean()), 4),
                         road=round(float(ro['combined'].mean()), 4), ms_per_map=round(1000*secs, 1)))
        print(json.dumps(dict(part='photos', **rows[-1])), flush=True)
    table(rows, ['method', 'average_drop', 'increase', 'deletion', 'insertion', 'road', 'ms_per_map'])
    out['photos'] = rows

if 'pairs' in a.part:
    kw = dict(minutes=a.minutes) if a.minutes else dict(epochs=a.epochs) if a.epochs else {}
    t = time.perf_counter()
    learn = ff.recipe('pairs')(ff.omniglot('background_small1'), **kw)
    print(f'pairs model: {learn.model_config.stats} in {time.perf_counter() - t:.0f}s', flush=True)
    model = learn.model.eval()
    sampler = ff.data.pairs.find_pair_sampler(learn.dls)
    cf = learn.dls.class_folder
    same = [(i, j) for i, (j, lab) in sampler.valid_pairs.items() if lab][:a.n_pairs]
    from fewshot_fastai.inference import image_batch
    xa = image_batch(learn.dls, [cf.files[i] for i, _ in same]).float()
    xb = image_batch(learn.dls, [cf.files[j] for _, j in same]).float()
    paper = float(xa.flatten().median())   # the drawings' background as the model sees it
    ink = (xa[:, 0] - paper).abs() > 0.5*(xa[:, 0] - paper).abs().amax((1, 2), keepdim=True)
    with torch.no_grad(): eb = model.head.embed(model.encoder(xb))
    s = partner_score(model, eb)
    layers = {'14x14': model.encoder[6], '7x7': model.encoder[10], '3x3 (last spatial)': model.encoder[14]}
    rows = []
    for method in a.methods:
        for lname, layer in layers.items():
            maps, raw, _ = ff.interpret.partner_maps(model, xa, eb, method=method, layer=layer)
            di, ro = deletion_insertion(s, xa, maps, baseline=paper), road(s, xa, maps, PCTS)
            lift = ((maps*ink).sum((1, 2))/maps.sum((1, 2)).clamp_min(1e-12)/ink.float().mean((1, 2))).mean()
            rows.append(dict(method=method, layer=lname, deletion=round(float(di['deletion'].mean()), 4),
                             insertion=round(float(di['insertion'].mean()), 4), road=round(float(ro['combined'].mean()), 4),
                             ink_lift=round(float(lift), 3)))
            print(json.dumps(dict(part='pairs', **rows[-1])), flush=True)
    table(rows, ['method', 'layer', 'deletion', 'insertion', 'road', 'ink_lift'])
    best = max(rows, key=lambda r: r['road'])
    print(f"pairs: best ROAD {best['road']} with {best['method']} at {best['layer']} (ink lift {best['ink_lift']})")
    out['pairs'] = dict(rows=rows, best=best, stats=learn.model_config.stats, n_pairs=len(same))
print(json.dumps(out))
