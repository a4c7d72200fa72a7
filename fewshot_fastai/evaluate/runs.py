"""Lake's one-shot runs: each test item labelled alone, and the one-to-one assignment of a run's items to its classes."""
import torch
from ..inference import classify

__all__ = ['runs_error', 'one_to_one']

def one_to_one(
    scores:torch.Tensor, # query x class scores (Q, C), higher is better, with Q <= C
) -> torch.Tensor:
    """Transductive labels when every query belongs to a different class (Lake's one-shot runs): the one-to-one
    assignment of queries to classes with the largest total score (Hungarian method, scipy's
    `linear_sum_assignment`). -> (Q,) class indices. Report it apart from `argmax`, which labels each query alone."""
    from scipy.optimize import linear_sum_assignment
    s = torch.as_tensor(scores).detach().float().cpu()
    if s.ndim != 2 or s.shape[0] > s.shape[1]:
        raise ValueError(f'one_to_one: scores must be (queries, classes) with queries <= classes, got {tuple(s.shape)}')
    rows, cols = linear_sum_assignment(s.numpy(), maximize=True)
    out = torch.empty(s.shape[0], dtype=torch.long)
    out[torch.as_tensor(rows)] = torch.as_tensor(cols)
    return out

def runs_error(
    learn, # a learner whose model has `encode` and `similarity`
    runs, # Lake-format runs (`ff.datasets.load_runs`)
    tta=None, # test-time augmentation (see `embed`); None: the learner's own
) -> dict:
    """Error of Lake's one-shot protocol over `runs`: each test item is labelled alone with the class image it matches
    best (the headline), and apart, with the one-to-one (Hungarian) assignment of each run's items to its classes.
    -> dict(error, one_to_one_error (percent), trials, ci95 (half-width of `error`'s interval, percent), wrong (1/0 per item))"""
    from .intervals import interval95
    alone, hung = [], []
    for run in runs:
        # the support's labels are the class positions; `classify` answers them as strings, its scores in that order
        _, scores = classify(learn, run.test, {str(j): f for j, f in enumerate(run.training)}, progress=False, tta=tta)
        alone += [int(int(k) != t) for k, t in zip(scores.argmax(1), run.answers)]
        hung += [int(int(k) != t) for k, t in zip(one_to_one(scores), run.answers)]
    n = len(alone)
    if not n: raise ValueError('runs_error: the runs hold no test items')
    return dict(error=round(100*sum(alone)/n, 2), one_to_one_error=round(100*sum(hung)/n, 2), trials=n,
                ci95=round(100*interval95(alone)[1], 2), wrong=alone)
