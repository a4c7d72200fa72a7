"""Pair verification: the equal error rate over every pair of a set of images."""
import torch
from ..inference import embed, similarity
from ..verification.scores import equal_error_rate

__all__ = ['pairs_eer']

def pairs_eer(
    learn, # a learner whose model has `encode` and `similarity`
    images, # images of several identities
    labels, # the identity of each image
    tta=None, # test-time augmentation (see `embed`); None: the learner's own
) -> dict:
    """Verification over every pair of `images` (each embedded once): the equal error rate of the model's scores.
    -> dict(eer (percent), pairs, same_pairs)"""
    lbl = torch.as_tensor(list(labels))
    if len(lbl) < 2 or len(lbl.unique()) < 2: raise ValueError('pairs_eer: needs images of at least 2 identities')
    e = embed(learn, images, tta=tta)
    i, j = torch.triu_indices(len(e), len(e), 1)
    same = lbl[i] == lbl[j]
    if not same.any(): raise ValueError('pairs_eer: no identity has 2 images, so there is no same pair')
    scores = similarity(learn, e, e)[i, j]
    return dict(eer=round(100*equal_error_rate(scores, same), 2), pairs=len(i), same_pairs=int(same.sum()))
