"Embedding whitening fitted on a cohort of other identities: total covariance (ZCA) or within-class covariance (WCCN)"
import torch
from torch import nn
import torch.nn.functional as F

__all__ = ['Whitening', 'fit_whitening']

class Whitening(nn.Module):
    "Embeddings (N,D) -> L2-normalised `(e - mean) @ W`, float32: compare them with `ff.inference.similarity` as before"
    def __init__(
        self,
        mean:torch.Tensor, # the cohort's mean embedding, (D,)
        W:torch.Tensor, # the whitening matrix, (D,D)
    ):
        super().__init__()
        self.register_buffer('mean', mean.float()); self.register_buffer('W', W.float())
    def forward(
        self,
        e:torch.Tensor, # embeddings, (N,D)
    ):
        "(N,D) float32, unit length"
        if e.ndim != 2 or e.shape[1] != len(self.mean):
            raise ValueError(f'Whitening: embeddings must be (N,{len(self.mean)}), got shape {tuple(e.shape)}')
        return F.normalize((e.float().to(self.W.device) - self.mean) @ self.W, dim=-1)

def fit_whitening(
    cohort:torch.Tensor, # embeddings of a cohort that holds none of the identities to compare (e.g. the training ones), (C,D)
    labels=None, # the identity of each cohort embedding: whiten the within-identity covariance (WCCN); None: the total covariance
    shrink:float=1.0, # ridge added to the covariance before inverting: `shrink` times its mean eigenvalue (> 0)
) -> Whitening:
    """Fit a `Whitening` on `cohort`: the covariance `S` (total, or pooled within each identity when `labels` is
    given: within-class covariance normalisation, Hatch et al. 2006) is shrunk to `S + shrink*tr(S)/D*I` and
    `W = (S + ...)^-1/2` (symmetric, ZCA). Directions in which the cohort varies a lot (lighting, pose, or the
    identities' common part) then count less in a distance. A cohort smaller than D needs the ridge, hence `shrink > 0`.
    Verification's classic post-processing: sklearn's PCA(whiten=True) has no ridge and its LDA keeps at most
    identities-1 dimensions, so it is written here (a few lines of torch, in float64)."""
    if cohort.ndim != 2 or len(cohort) < 2: raise ValueError(f'fit_whitening: cohort must be (C,D) with C >= 2, got shape {tuple(cohort.shape)}')
    if not shrink > 0: raise ValueError(f'fit_whitening: shrink={shrink} must be > 0')
    c = cohort.detach().double().cpu()
    mean = c.mean(0)
    if labels is None: X = c - mean
    else:
        labels = labels.view(-1).tolist() if isinstance(labels, torch.Tensor) else list(labels)
        if len(labels) != len(c): raise ValueError(f'fit_whitening: {len(labels)} labels for {len(c)} cohort embeddings')
        index = {l: i for i, l in enumerate(dict.fromkeys(labels))}   # any hashable identity: names or class indices
        lbl = torch.tensor([index[l] for l in labels])
        groups = [c[lbl == u] for u in lbl.unique()]
        if all(len(g) < 2 for g in groups): raise ValueError('fit_whitening: labels: no identity has 2 or more embeddings, so there is no within-identity covariance')
        X = torch.cat([g - g.mean(0) for g in groups])
    S = X.T @ X/len(X)
    D = S.shape[0]
    if not S.trace() > 0: raise ValueError('fit_whitening: the cohort embeddings do not vary (zero covariance): nothing to whiten')
    ev, V = torch.linalg.eigh(S + shrink*S.trace()/D*torch.eye(D, dtype=S.dtype))
    return Whitening(mean, V @ torch.diag(ev.rsqrt()) @ V.T).to(cohort.device)
