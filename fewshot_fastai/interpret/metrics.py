"""How faithful a map is to the model: perturb the image where the map says the evidence is (or is not) and watch the
target score. All take a `score(images, rows) -> (n,)` callable (`class_score` for a classifier's softmax probability
of a class, `partner_score` for the similarity of a pair or to a class prototype), the images (B,C,H,W) as the model
takes them, and maps (B,H,W).

- `confidence_change`: the image multiplied by its map (Chattopadhay et al. 2018): *average drop* (mean of
  max(0, p - p_masked)/p, lower is better) and *increase in confidence* (share of images where p_masked > p).
- `deletion_insertion` (Petsiuk et al. 2018): the most relevant pixels first removed (set to the baseline) or inserted
  (into the blurred image) in `steps`; the areas under the score curves (deletion: lower is better; insertion: higher).
- `road` (Rong et al. 2022, Remove And Debias): the most (MoRF) or least (LeRF) relevant pixels of each percentile
  replaced by a noisy linear imputation from their neighbours, so that the removal itself leaks no shape; the score
  change averaged over the percentiles, and (LeRF - MoRF)/2 (higher is better)."""
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ['class_score', 'partner_score', 'confidence_change', 'deletion_insertion', 'road', 'impute']

def class_score(
    model, # a classifier (eval mode)
    target:torch.Tensor, # the class explained for each image, (B,)
):
    "score(images, rows): the softmax probability of each row's target class"
    def score(xb, rows):
        with torch.no_grad(): return model(xb).float().softmax(1).gather(1, target[rows][:, None])[:, 0]
    return score

def partner_score(
    model, # a SiameseModel or ProtoNet (eval mode)
    partner:torch.Tensor, # the embeddings compared with: the pairs' other images, or class prototypes, (B,D)
):
    "score(images, rows): the model's similarity of each row to its partner embedding"
    def score(xb, rows):
        with torch.no_grad():
            f = model.encoder(xb)
            e = model.head.embed(f) if hasattr(model, 'head') else model.pool(f) if f.ndim == 4 else f
            return model.similarity(e, partner[rows]).float()
    return score

def _batched(score, xs:torch.Tensor, rows:torch.Tensor, bs:int) -> torch.Tensor:
    return torch.cat([score(xs[i:i+bs], rows[i:i+bs]) for i in range(0, len(xs), bs)])

def confidence_change(
    score, # score(images, rows) -> (n,): e.g. `class_score(model, target)`
    x:torch.Tensor, # images, (B,C,H,W)
    maps:torch.Tensor, # maps in [0,1], (B,H,W)
) -> dict:
    "-> dict(average_drop (%), increase (% of images), base (B,), masked (B,)) of the image multiplied by its map"
    rows = torch.arange(len(x), device=x.device)
    p, pm = score(x, rows), score(x*maps[:, None].to(x), rows)
    drop = (F.relu(p - pm)/p.clamp_min(1e-12))
    return dict(average_drop=float(100*drop.mean()), increase=float(100*(pm > p).float().mean()), base=p, masked=pm)

def _blur(x:torch.Tensor, k:int=11, sigma:float=5.) -> torch.Tensor:
    "A Gaussian blur of each channel (the insertion's starting image)"
    t = torch.arange(k, dtype=torch.float32, device=x.device) - k//2
    g = torch.exp(-t**2/(2*sigma**2)); g = (g/g.sum()).to(x.dtype)
    c = x.shape[1]
    y = F.conv2d(F.pad(x, (k//2, k//2, 0, 0), mode='reflect'), g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(F.pad(y, (0, 0, k//2, k//2), mode='reflect'), g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)

def deletion_insertion(
    score, # score(images, rows) -> (n,)
    x:torch.Tensor, # images, (B,C,H,W)
    maps:torch.Tensor, # maps, (B,H,W): the order in which pixels are removed / inserted
    steps:int=20, # points of each curve after the first
    baseline:float=0., # what deleted pixels become (0: the mean colour of normalised inputs)
    bs:int=64, # images a forward pass
) -> dict:
    "-> dict(deletion (B,), insertion (B,)): the areas under the score curves (trapezoids over the fraction of pixels)"
    B, _, H, W = x.shape
    # each pixel's rank, most relevant first; at step s the first round(s*H*W/steps) of them are changed
    rank = maps.flatten(1).argsort(1, descending=True).argsort(1)
    counts = torch.tensor([round(s*H*W/steps) for s in range(steps + 1)], device=x.device)
    blurred = _blur(x)
    out = {}
    for kind in ('deletion', 'insertion'):
        batch, rows = [], []
        for b in range(B):
            m = (rank[b][None] < counts[:, None]).view(steps + 1, 1, H, W).to(x.dtype)
            if kind == 'deletion': batch.append(x[b]*(1 - m) + baseline*m)
            else: batch.append(blurred[b]*(1 - m) + x[b]*m)
            rows += [b]*(steps + 1)
        curve = _batched(score, torch.cat(batch), torch.tensor(rows, device=x.device), bs).view(B, steps + 1)
        out[kind] = ((curve[:, 1:] + curve[:, :-1])/2).mean(1)
    return out

# ROAD's neighbour weights: the four direct neighbours 1/6 each, the four diagonal ones 1/12 each
_NEIGHBOURS = [((0, 1), 1/6), ((0, -1), 1/6), ((1, 0), 1/6), ((-1, 0), 1/6),
               ((1, 1), 1/12), ((1, -1), 1/12), ((-1, 1), 1/12), ((-1, -1), 1/12)]

def impute(
    img:torch.Tensor, # one image, (C,H,W)
    removed:torch.Tensor, # pixels to replace, (H,W) bool
    noise:float=0.01, # std of the noise added to the imputed values
    generator:torch.Generator|None=None, # the noise's random stream
) -> torch.Tensor:
    """The image with each removed pixel the weighted mean of its neighbours (removed ones included, so the values are
    one sparse linear system, solved for all channels at once), plus noise. Written here: torchvision and fastai have
    inpainting by neither linear systems nor neighbour weights."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve
    C, H, W = img.shape
    rm = removed.cpu().numpy()
    ys, xs = np.nonzero(rm)
    n = len(ys)
    if n == 0: return img.clone()
    idx = -np.ones((H, W), dtype=np.int64); idx[ys, xs] = np.arange(n)
    vals = img.detach().float().cpu().numpy().reshape(C, H, W)
    diag = np.zeros(n); rhs = np.zeros((n, C))
    r_i, c_i, v_i = [], [], []
    for (dy, dx), w in _NEIGHBOURS:
        ny, nx = ys + dy, xs + dx
        ok = (ny >= 0) & (ny < H) & (nx >= 0) & (nx < W)
        e, nyk, nxk = np.nonzero(ok)[0], ny[ok], nx[ok]
        diag[e] += w
        unknown = rm[nyk, nxk]
        r_i.append(e[unknown]); c_i.append(idx[nyk[unknown], nxk[unknown]]); v_i.append(np.full(unknown.sum(), -w))
        rhs[e[~unknown]] += w*vals[:, nyk[~unknown], nxk[~unknown]].T
    rows_ = np.concatenate([np.arange(n), *r_i]); cols = np.concatenate([np.arange(n), *c_i]); data = np.concatenate([diag, *v_i])
    sol = spsolve(coo_matrix((data, (rows_, cols)), shape=(n, n)).tocsc(), rhs).reshape(n, C)
    out = img.detach().clone()
    fill = torch.as_tensor(sol, dtype=img.dtype, device=img.device).t()
    out[:, torch.as_tensor(ys, device=img.device), torch.as_tensor(xs, device=img.device)] = \
        fill + noise*torch.randn(fill.shape, generator=generator).to(fill)
    return out

def road(
    score, # score(images, rows) -> (n,)
    x:torch.Tensor, # images, (B,C,H,W)
    maps:torch.Tensor, # maps, (B,H,W)
    percentiles=(10, 20, 30, 40, 50, 60, 70, 80, 90), # shares of the pixels removed, in %
    noise:float=0.01, # std of the imputation's noise
    seed:int=0, # the noise's seed
    bs:int=64, # images a forward pass
) -> dict:
    """-> dict(morf (B,), lerf (B,), combined (B,)): the score change (perturbed - original), averaged over the
    percentiles, removing the most relevant (MoRF: lower is better) or least relevant (LeRF: higher is better) pixels;
    combined = (LeRF - MoRF)/2 (higher is better)"""
    g = torch.Generator().manual_seed(seed)
    B, _, H, W = x.shape
    rows = torch.arange(B, device=x.device)
    base = score(x, rows)
    out = {}
    for kind in ('morf', 'lerf'):
        imgs, rr = [], []
        for b in range(B):
            order = maps[b].flatten().argsort(descending=kind == 'morf')
            for pct in percentiles:
                removed = torch.zeros(H*W, dtype=torch.bool); removed[order[:round(pct/100*H*W)].cpu()] = True
                imgs.append(impute(x[b], removed.view(H, W), noise, g)); rr.append(b)
        s = _batched(score, torch.stack(imgs), torch.tensor(rr, device=x.device), bs).view(B, len(percentiles))
        out[kind] = (s - base[:, None]).mean(1)
    out['combined'] = (out['lerf'] - out['morf'])/2
    return out
