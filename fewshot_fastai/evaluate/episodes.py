"""N-way K-shot episodes: accuracy with every distinct image encoded once, and the pair-by-pair reference."""
import time
import torch
from ..data.items import IndexedView
from ..inference import embed, support_scores, class_scores, image_batch, model_device
from .._distrib import unwrap_model
from .._checks import renamed

__all__ = ['episode_accuracy', 'naive_episode_accuracy']

@renamed(mode='method')
def episode_accuracy(
    learn, # a learner whose model has `encode` and `similarity`
    images, # the images the episodes index
    episodes, # `Episode`s (e.g. from `EpisodeSampler`)
    bs:int=256, # images per encoder batch
    method:str='mean', # a registered classifier (`ff.methods`): 'mean', 'prototype', ...
    tta=None, # test-time augmentation, as in `ff.embed`; 0: none; None: the learner's own
) -> dict:
    """Accuracy over `episodes` (indices into `images`), encoding each unique image once; each episode's queries are
    answered by the classifier `method` (see `support_scores`).
    -> dict(accuracy, encoder_passes, seconds, per_episode accuracies, outcomes (1/0 per query, episode by episode))"""
    t = time.time()
    uniq = sorted({i for e in episodes for i in (*e.support, *e.query)})
    pos = {i: k for k, i in enumerate(uniq)}
    emb = embed(learn, IndexedView(images, uniq), bs, tta=tta)   # read bs at a time: bounded memory on lazy galleries
    per, outcomes = [], []
    for e in episodes:
        es, eq = emb[[pos[i] for i in e.support]], emb[[pos[i] for i in e.query]]
        pred = support_scores(learn, eq, es, e.support_labels, e.n_way, method).argmax(1)
        ok = (pred.cpu() == torch.tensor(e.query_labels)).int().tolist()
        outcomes += ok; per.append(sum(ok)/len(ok))
    return dict(accuracy=sum(outcomes)/len(outcomes), encoder_passes=len(uniq), seconds=time.time() - t,
                per_episode=per, outcomes=outcomes)

def naive_episode_accuracy(
    learn, # a siamese learner
    images, # the images the episodes index
    episodes, # `Episode`s
    bs:int=256, # pairs per batch
) -> dict:
    """The seed-style evaluation `episode_accuracy` replaces: every (query, support) pair goes through the full
    siamese forward, two encoder passes per pair. Same scores; for speed comparisons."""
    t, passes, correct, total = time.time(), 0, 0, 0
    learn.model.eval()
    m = unwrap_model(learn.model)
    dev = model_device(m)
    for e in episodes:
        pairs = [(images[q], images[s]) for q in e.query for s in e.support]
        sims = []
        with torch.no_grad():
            for i in range(0, len(pairs), bs):
                chunk = pairs[i:i+bs]
                a, b = (image_batch(learn.dls, [p[k] for p in chunk]).to(dev) for k in (0, 1))
                sims.append(m.similarity(m.encode(a), m.encode(b)).float())
                passes += 2*len(a)
        sim = torch.cat(sims).view(len(e.query), len(e.support))
        pred = class_scores(sim, e.support_labels, e.n_way).argmax(1)
        correct += (pred.cpu() == torch.tensor(e.query_labels)).sum().item(); total += len(e.query)
    return dict(accuracy=correct/total, encoder_passes=passes, seconds=time.time() - t)
