"Support-set classification: `SupportSet` (labelled images encoded once, thread-safe) and `classify`"
import threading
from pathlib import Path
import numpy as np
from PIL import Image
import torch
from fastai.learner import Learner
from .._checks import check_int, renamed
from .views import _check_tta
from functools import partial
from ..methods import check_method, create_method
from .embedding import embed, similarity

__all__ = ['SupportSet', 'classify']

def check_queries(where:str, queries):
    "A sequence of images, not one image (a path string would be taken for a sequence of its characters)"
    if isinstance(queries, (str, Path, bytes, Image.Image, np.ndarray)) or isinstance(queries, torch.Tensor) and queries.ndim < 4:
        raise TypeError(f'{where}: queries must be a list of images (or a (B,C,H,W) batch); got one {type(queries).__name__}: '
                        'wrap it in a list, or use .predict(image)')

class SupportSet:
    """The support images of each label, encoded once: `classify(queries)` and `predict(query)` encode only the
    queries. Safe to share between threads: each call scores one consistent snapshot of the labels. Labels and shots can be added (`add`) or removed (`remove`) later; `ff.save_model(learn, path,
    support=ss)` stores it beside the model and `ff.load_model` gives it back (`learn.support_set`)."""
    @renamed(mode='method')
    def __init__(
        self,
        learn:Learner, # a siamese or episodic learner
        support:dict|None=None, # {label: image or images (paths, PIL, tensors)}
        bs:int=256, # images per encoder batch
        method:str='mean', # a registered classifier (`ff.methods`): 'mean' score over the K shots, 'prototype' (class-mean embedding), or yours
        tta=None, # test-time augmentation, as in `ff.embed`; 0: none; None: the learner's own
    ):
        check_method(method, 'SupportSet'); check_int('SupportSet', 'bs', bs); _check_tta('SupportSet', tta)
        self.learn, self.bs, self.method, self.tta, self.emb = learn, bs, method, tta, {}
        # shared between threads (e.g. a web server's workers): changes hold the lock; scoring reads a snapshot under it
        self._lock = threading.RLock()
        self.update(support or {})

    def __getstate__(self): return {k: v for k, v in self.__dict__.items() if k != '_lock'}
    def __setstate__(self, d): self.__dict__.update(d); self._lock = threading.RLock()

    @property
    def labels(self) -> list: return list(self.emb)
    def __len__(self): return len(self.emb)
    def __repr__(self): return f'{type(self).__name__}({len(self)} labels, {sum(len(e) for e in self.emb.values())} shots)'

    def update(
        self,
        support:dict, # {label: image or images}
    ):
        "Add the shots of several labels ({label: images}), encoded together in batches of `bs`; labels are kept as strings"
        if not isinstance(support, dict): raise TypeError(f'SupportSet: support must be a dict {{label: images}}, not a {type(support).__name__}')
        items = {}
        for k, v in support.items():
            if str(k) in items: raise ValueError(f'SupportSet: labels {next(l for l in support if str(l) == str(k))!r} and {k!r} are both {str(k)!r} as strings')
            items[str(k)] = list(v) if isinstance(v, (list, tuple)) else [v]
        if (empty := [k for k, v in items.items() if not v]):
            raise ValueError(f'SupportSet: label {empty[0]!r} has no images' + (f' ({len(empty)} such labels)' if len(empty) > 1 else ''))
        e, start = embed(self.learn, [x for v in items.values() for x in v], self.bs, tta=self.tta), 0   # outside the lock
        with self._lock:
            emb = dict(self.emb)   # a new dict: a snapshot taken before stays whole
            for k, v in items.items():
                emb[k] = torch.cat([emb[k], e[start:start+len(v)]]) if k in emb else e[start:start+len(v)]
                start += len(v)
            self.emb = emb
        return self

    def add(
        self,
        label, # the class label
        images, # one image or a list: paths, PIL images or tensors
    ):
        "Encode `images` (one or a list) as shots of `label`, a new label or more shots of one already there"
        return self.update({label: images})

    @renamed(shots='positions')
    def remove(
        self,
        label, # the class label
        positions=None, # positions of the shots to remove (an int or a list); None: the whole label
    ):
        "Remove `label`, or only its shots at `positions` (the label goes when none is left)"
        label = str(label)
        if isinstance(positions, int) and not isinstance(positions, bool): positions = [positions]
        if positions is not None and (not isinstance(positions, (list, tuple, range)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in positions)):
            raise TypeError(f'SupportSet.remove: positions must be an int or a list of ints, not {positions!r}')
        with self._lock:
            emb = dict(self.emb)
            if label not in emb: raise KeyError(f'SupportSet: no label {label!r} (labels: {list(emb)[:10]})')
            if positions is not None:
                drop = set(positions)
                if not drop <= set(range(len(emb[label]))):
                    raise IndexError(f'SupportSet: label {label!r} has {len(emb[label])} shots; cannot remove {sorted(drop)}')
                keep = [i for i in range(len(emb[label])) if i not in drop]
            if positions is not None and keep: emb[label] = emb[label][keep]
            else: del emb[label]
            self.emb = emb
        return self

    @renamed(mode='method')
    def scores(
        self,
        queries, # query images: paths, PIL images or tensors
        progress:bool=False, # show a progress bar
        method:str|None=None, # a registered classifier ('mean', 'prototype', ...); default: the set's
    ) -> torch.Tensor:
        "Query x label scores (Q, n_labels), on the CPU; only the queries go through the encoder"
        return self._scores(queries, progress, method)[1]

    def _scores(self, queries, progress=False, method=None):
        "(labels, scores) from one snapshot of the support set, consistent even while another thread changes it"
        check_queries('SupportSet.classify', queries)
        with self._lock: emb = self.emb   # replaced, never changed in place: this dict stays as it is
        if not emb: raise ValueError('SupportSet: no labels; add some with .add(label, images)')
        method = method or self.method
        check_method(method, 'SupportSet')
        eq = embed(self.learn, queries, self.bs, progress, tta=self.tta)
        es = torch.cat(list(emb.values())).to(eq.device)
        lbl = [i for i, e in enumerate(emb.values()) for _ in range(len(e))]
        clf = create_method(method, partial(similarity, self.learn)).process_support_set(es, lbl, len(emb))   # the contract
        # on the CPU, where fastai's `get_preds` returns predictions, wherever the model runs
        return list(emb), (torch.cat([clf(eq[i:i+self.bs]).cpu() for i in range(0, len(eq), self.bs)]) if len(eq)
                           else torch.empty(0, len(emb)))

    @renamed(mode='method')
    def classify(
        self,
        queries, # query images: paths, PIL images or tensors
        progress:bool=False, # show a progress bar
        method:str|None=None, # a registered classifier ('mean', 'prototype', ...); default: the set's
    ):
        "-> (labels, scores (Q, n_labels)) for the query images"
        labels, scores = self._scores(queries, progress, method)
        return [labels[i] for i in scores.argmax(1).tolist()], scores

    @renamed(mode='method')
    def predict(
        self,
        query, # one image: path, PIL image or tensor
        method:str|None=None, # a registered classifier ('mean', 'prototype', ...); default: the set's
    ):
        "-> (label, score) for one query image"
        labels, scores = self.classify([query], method=method)
        return labels[0], float(scores[0].max())

@renamed(mode='method')
def classify(
    learn:Learner, # a siamese or episodic learner
    queries, # query images: paths, PIL images or tensors
    support:dict, # {label: images}
    bs:int=256, # images per encoder batch
    progress:bool=True, # show a progress bar
    method:str='mean', # a registered classifier (`ff.methods`): 'mean' score over the K shots, 'prototype' (class-mean embedding), or yours
    tta=None, # test-time augmentation, as in `ff.embed`; 0: none; None: the learner's own
):
    """Label each query image with the support class it matches best. `support` maps label -> images (paths, PIL
    or tensors). Every image is encoded once (through a `SupportSet`); K>1 shots are combined by `method` (see
    `support_scores`). -> (labels, scores (Q, n_labels))"""
    if not isinstance(support, dict): raise TypeError(f'classify: support must be a dict {{label: images}}, not a {type(support).__name__}')
    if not support: raise ValueError('classify: empty support set')
    check_queries('classify', queries)
    return SupportSet(learn, support, bs, method, tta).classify(queries, progress)
