"""Verification scores: the accuracy-best threshold, the equal error rate, Platt scaling (`fit_logistic`) and its
calibration error, and score normalisation against a cohort."""
import torch

__all__ = ['best_threshold', 'equal_error_rate', 'fit_logistic', 'calibration_error', 'score_norm']

def best_threshold(
    dist:torch.Tensor, # distances, (N,)
    same:torch.Tensor, # 1 for same pairs, 0 for different, (N,)
) -> float:
    "Threshold `t` maximising the accuracy of `dist < t` for labels `same`; midway between neighbouring distances"
    d, order = dist.view(-1).float().sort()
    y = same.view(-1).to(order.device)[order].float()
    # predicting 'same' for the k smallest distances: correct = same among them + different among the rest
    correct = torch.cat([y.new_zeros(1), y.cumsum(0)]) + (1 - y).sum() - torch.cat([y.new_zeros(1), (1 - y).cumsum(0)])
    k = int(correct.argmax())
    if k == 0: return float(d[0]) - 1e-6
    if k == len(d): return float(d[-1]) + 1e-6
    return float((d[k-1] + d[k])/2)

def equal_error_rate(
    scores:torch.Tensor, # scores of 'same', higher for more similar, (N,)
    same:torch.Tensor, # 1 for same pairs, 0 for different, (N,)
) -> float:
    """Verification EER: the error where false accepts (different pairs scored >= t) equal false rejects (same
    pairs scored < t), over all thresholds t; scores rise with 'same'. Averages the two rates at the crossing."""
    s, order = scores.view(-1).float().sort(descending=True)
    y = same.view(-1).to(order.device)[order].float()
    n_same, n_diff = y.sum(), (1 - y).sum()
    if n_same == 0 or n_diff == 0: raise ValueError('equal_error_rate needs both same and different pairs')
    far = (1 - y).cumsum(0)/n_diff          # accepting the k+1 highest scores
    frr = 1 - y.cumsum(0)/n_same
    k = int((far - frr).abs().argmin())
    return float((far[k] + frr[k])/2)

def score_norm(
    scores:torch.Tensor, # verification scores of every a against every b, higher for more similar, (A,B)
    cohort_a:torch.Tensor, # scores of each a against the cohort (e.g. images of the training identities), (A,C)
    cohort_b:torch.Tensor, # scores of each b against the same cohort, (B,C)
    top:int|None=None, # only each item's `top` highest cohort scores (adaptive S-norm); None: all of them
) -> torch.Tensor:
    """Symmetric score normalisation (S-norm): each score becomes the mean of its z-scores against the two sides'
    cohort scores, `((s - mu_a)/sd_a + (s - mu_b)/sd_b)/2`, so that a face (or drawing) that resembles everything
    no longer passes every threshold; `top` keeps each item's closest impostors (AS-norm). The cohort must hold
    none of the identities compared. float32, (A,B). Speaker verification's standard; neither fastai nor
    torchmetrics has it, hence here."""
    if scores.ndim != 2: raise ValueError(f'score_norm: scores must be (A,B), got shape {tuple(scores.shape)}')
    for name, c, n in (('cohort_a', cohort_a, scores.shape[0]), ('cohort_b', cohort_b, scores.shape[1])):
        if c.ndim != 2 or c.shape[0] != n: raise ValueError(f'score_norm: {name} must be ({n},C), got shape {tuple(c.shape)}')
        if c.shape[1] < 2: raise ValueError(f'score_norm: {name} has {c.shape[1]} cohort score(s): at least 2 are needed')
    if cohort_a.shape[1] != cohort_b.shape[1]:
        raise ValueError(f'score_norm: cohort_a has {cohort_a.shape[1]} cohort scores per item, cohort_b {cohort_b.shape[1]}')
    if top is not None and top < 2: raise ValueError(f'score_norm: top={top} must be >= 2 (or None for all)')
    def stats(c):
        c = c.float()
        if top is not None: c = c.topk(min(top, c.shape[1]), dim=1).values
        return c.mean(1), c.std(1).clamp_min(1e-12)
    (ma, sa), (mb, sb) = stats(cohort_a), stats(cohort_b)
    s = scores.float()
    return ((s - ma[:, None])/sa[:, None] + (s - mb[None])/sb[None])/2

def fit_logistic(
    dist:torch.Tensor, # distances, (N,)
    same:torch.Tensor, # 1 for same pairs, 0 for different, (N,)
    l2:float=1e-6, # ridge penalty on the two parameters
    iters:int=100, # at most this many Newton steps
) -> tuple[float, float]:
    """Logistic regression of `same` on the distance, `p = sigmoid(scale*(thresh - dist))`, by Newton's method
    in float64 (a small `l2` penalty keeps the slope finite on separable pairs). -> (thresh, scale)"""
    # two parameters: Newton's method is exact and quick; torch/sklearn optimisers would add a dependency or tuning
    d = dist.detach().view(-1).double().cpu(); y = same.detach().view(-1).double().cpu()
    if len(d) != len(y): raise ValueError(f'fit_logistic: {len(d)} distances but {len(y)} labels')
    if y.min() == y.max(): raise ValueError('fit_logistic needs both same and different pairs')
    mu, sd = d.mean(), d.std().clamp_min(1e-12)
    X = torch.stack([torch.ones_like(d), (d - mu)/sd], 1)
    w = torch.zeros(2, dtype=torch.float64)
    for _ in range(iters):
        p = torch.sigmoid(X @ w)
        g = X.t() @ (p - y)/len(y) + l2*w
        H = (X.t()*(p*(1 - p))) @ X/len(y) + l2*torch.eye(2, dtype=torch.float64)
        step = torch.linalg.solve(H, g)
        w = w - step
        if step.abs().max() < 1e-10: break
    b0, b1 = float(w[0]), float(w[1])/float(sd)      # p = sigmoid(b0 + b1*(d - mu))
    if b1 >= 0: raise ValueError('fit_logistic: same pairs are not closer than different ones; cannot calibrate')
    return float(mu) - b0/b1, -b1

def calibration_error(
    prob:torch.Tensor, # predicted probabilities of 'same', (N,)
    same:torch.Tensor, # 1 for same pairs, 0 for different, (N,)
    n_bins:int=10, # number of equal-width bins
) -> float:
    "Expected calibration error of probabilities `prob` of 'same' against labels `same`: equal-width bins, weighted by size"
    p, y = prob.detach().view(-1).double().cpu(), same.detach().view(-1).double().cpu()
    bins = (p*n_bins).long().clamp(max=n_bins - 1)
    return float(sum((p[bins == k].mean() - y[bins == k].mean()).abs()*(bins == k).sum()
                     for k in range(n_bins) if (bins == k).any())/len(p))
