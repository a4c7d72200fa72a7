"""Open-set recognition: a query of a class nobody enrolled should be answered "unknown". The threshold between the
scores of enrolled classes (genuine) and of the best wrong class (impostor), AUROC of enrolled vs unseen queries, and
the table of what a threshold does to both."""
import numpy as np

__all__ = ['eer_threshold', 'auroc', 'open_set_report']

def _arr(x, name):
    a = np.asarray(x, dtype=np.float64).ravel()
    if not len(a): raise ValueError(f'{name}: no scores')
    if not np.isfinite(a).all(): raise ValueError(f'{name}: NaN or infinite scores')
    return a

def eer_threshold(
    genuine, # scores a query gets from its own class (higher is closer)
    impostor, # best scores a query gets from classes not its own
) -> float:
    """The threshold `t` (answer "unknown" below it) where the share of genuine scores below `t` equals the share of
    impostor scores at or above it; midway between the two scores where the rates cross"""
    g, i = np.sort(_arr(genuine, 'genuine')), np.sort(_arr(impostor, 'impostor'))
    cand = np.unique(np.concatenate([g, i]))
    cand = np.concatenate([cand, [cand[-1] + 1e-6]])
    frr = np.searchsorted(g, cand, side='left')/len(g)          # genuine < t
    far = 1 - np.searchsorted(i, cand, side='left')/len(i)      # impostor >= t
    k = int(np.argmin(np.abs(frr - far)))
    return float(cand[k] if k == 0 else (cand[k-1] + cand[k])/2)

def auroc(
    positive, # scores that should rank high (e.g. the best score of enrolled-class queries)
    negative, # scores that should rank low (e.g. the best score of unseen-class queries)
) -> float:
    "Area under the ROC curve: the probability a positive outscores a negative (ties count half); Mann-Whitney's U, by sorting"
    p, n = _arr(positive, 'positive'), np.sort(_arr(negative, 'negative'))
    below = np.searchsorted(n, p, side='left'); ties = np.searchsorted(n, p, side='right') - below
    return float((below + ties/2).sum()/(len(p)*len(n)))

def open_set_report(
    known_pred, # the closed-set answer (best label) for each query of an enrolled class
    known_true, # the true label of each of those queries
    known_best, # the best score of each of those queries
    unseen_best, # the best score of each query of a class never enrolled
    threshold:float, # "unknown" below this score
) -> dict:
    """What `threshold` does: share of unseen queries answered "unknown", accuracy on enrolled ones (a correct label
    and not "unknown"), the closed-set accuracy it is compared with, and AUROC of enrolled vs unseen best scores"""
    kp, kt = list(known_pred), list(known_true)
    kb, ub = _arr(known_best, 'known_best'), _arr(unseen_best, 'unseen_best')
    if not (len(kp) == len(kt) == len(kb)): raise ValueError(f'open_set_report: {len(kp)} answers, {len(kt)} labels, {len(kb)} scores')
    right = np.array([a == b for a, b in zip(kp, kt)])
    return dict(threshold=float(threshold), unseen_unknown=float((ub < threshold).mean()),
                known_accuracy=float((right & (kb >= threshold)).mean()), closed_accuracy=float(right.mean()),
                known_unknown=float((kb < threshold).mean()), auroc=auroc(kb, ub), n_known=len(kb), n_unseen=len(ub))
