"Verification score fusion: several systems' scores of the same pairs, each z-normalised on impostor pairs of a cohort, summed with weights"
import torch

__all__ = ['ScoreFusion', 'fit_fusion']

class ScoreFusion:
    "Fuses the score matrices of several verification systems (higher = more similar): `sum_k w_k*(s_k - mean_k)/std_k`"
    def __init__(
        self,
        means:list, # each system's mean impostor score on the cohort
        stds:list, # each system's impostor score standard deviation on the cohort (> 0)
        weights:list, # each system's weight (>= 0, summing to 1)
    ):
        if not len(means) == len(stds) == len(weights): raise ValueError(f'ScoreFusion: {len(means)} means, {len(stds)} stds, {len(weights)} weights')
        self.means, self.stds, self.weights = [float(m) for m in means], [float(s) for s in stds], [float(w) for w in weights]
    def __call__(
        self,
        *scores:torch.Tensor, # one score tensor per system, in the order of fitting, all of one shape
    ) -> torch.Tensor:
        "The fused scores, float32, the shape of each input"
        if len(scores) != len(self.weights): raise ValueError(f'ScoreFusion: fitted on {len(self.weights)} systems, called with {len(scores)} score tensors')
        shapes = {tuple(s.shape) for s in scores}
        if len(shapes) != 1: raise ValueError(f'ScoreFusion: the systems\' scores must have one shape, got {sorted(shapes)}')
        return sum(w*(s.float() - m)/sd for s, m, sd, w in zip(scores, self.means, self.stds, self.weights))
    def __repr__(self):
        return 'ScoreFusion(' + ', '.join(f'w={w:.3g}: (s - {m:.4g})/{sd:.4g}' for m, sd, w in zip(self.means, self.stds, self.weights)) + ')'

def fit_fusion(
    cohort_scores:list, # per system, the (C,C) scores of a cohort's C items against each other (identities unlike those to compare)
    labels, # the identity of each of the C cohort items (any hashable)
    weights:list|None=None, # per system, its weight (>= 0; normalised to sum to 1); None: equal weights
) -> ScoreFusion:
    """Fit a `ScoreFusion`: each system's scores are put on one scale by the mean and standard deviation of its
    scores of the cohort's *impostor* pairs (different identities), then summed with `weights`. Linear fusion of
    z-normalised scores is the standard way to combine verification systems (e.g. a frozen pre-trained network and a
    network trained on the cohort's identities). The weights are given, not fitted: a logistic regression on the
    cohort's pairs (the usual learned fusion) would over-trust a system trained on those very identities, so choose
    them on held-out identities instead. A dozen lines of torch: sklearn and torchmetrics have no score fusion."""
    if not len(cohort_scores): raise ValueError('fit_fusion: cohort_scores is empty: give one (C,C) score matrix per system')
    labels = labels.view(-1).tolist() if isinstance(labels, torch.Tensor) else list(labels)
    C = len(labels)
    for k, s in enumerate(cohort_scores):
        if s.ndim != 2 or tuple(s.shape) != (C, C): raise ValueError(f'fit_fusion: cohort_scores[{k}] must be ({C},{C}) for {C} labels, got shape {tuple(s.shape)}')
    weights = [1.0]*len(cohort_scores) if weights is None else [float(w) for w in weights]
    if len(weights) != len(cohort_scores): raise ValueError(f'fit_fusion: {len(weights)} weights for {len(cohort_scores)} systems')
    if min(weights) < 0 or not sum(weights) > 0: raise ValueError(f'fit_fusion: weights must be >= 0 and not all 0, got {weights}')
    index = {l: i for i, l in enumerate(dict.fromkeys(labels))}
    lbl = torch.tensor([index[l] for l in labels])
    i, j = torch.triu_indices(C, C, 1)
    impostor = lbl[i] != lbl[j]
    if not impostor.any(): raise ValueError('fit_fusion: labels: the cohort holds one identity, so it has no impostor pairs')
    means, stds = [], []
    for k, s in enumerate(cohort_scores):
        v = s.detach().double().cpu()[i[impostor], j[impostor]]
        sd = v.std() if len(v) > 1 else torch.tensor(0.)
        if not sd > 0: raise ValueError(f'fit_fusion: cohort_scores[{k}]: the impostor scores do not vary: no scale to normalise by')
        means.append(v.mean().item()); stds.append(sd.item())
    return ScoreFusion(means, stds, [w/sum(weights) for w in weights])
