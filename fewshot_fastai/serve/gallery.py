"""`Gallery`: a support set that lives in an SQLite file (`store.Store`), shared by every process that opens it, with
an open-set threshold ("unknown") and, for large galleries, a faiss index in front of the exact scores."""
import hashlib, io, threading
from pathlib import Path
import numpy as np
import torch
from PIL import Image
from ..inference.embedding import embed, similarity
from ..inference.support import SupportSet, check_queries
from ..methods import check_method, create_method
from .._distrib import unwrap_model
from .._checks import renamed
from ..evaluate.open_set import eer_threshold
from .store import Store, model_digest
from .search import Snapshot, build_index, matrix_similarity, metric_of

__all__ = ['Gallery', 'check_label', 'MAX_LABEL']

MAX_LABEL = 100   # characters in a label

def check_label(
    label, # a class label from a user
) -> str:
    "`label` if it is a usable class name: 1-100 characters, no '/', '\\\\' or control characters, not '.' or '..', no edge spaces"
    if not isinstance(label, str): raise TypeError(f'label: must be a string, not {type(label).__name__}')
    if not label: raise ValueError('label: empty')
    if len(label) > MAX_LABEL: raise ValueError(f'label: {len(label)} characters; at most {MAX_LABEL}')
    if '/' in label or '\\' in label: raise ValueError(f'label {label!r}: may not hold "/" or "\\"')
    if label in ('.', '..'): raise ValueError(f'label {label!r}: not a class name')
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in label): raise ValueError(f'label {label!r}: holds a control character')
    if label != label.strip(): raise ValueError(f'label {label!r}: begins or ends with a space')
    return label

def _image_digest(x) -> str:
    "sha256 of an image as given: a file's bytes, bytes, or the pixels of a PIL image / array / tensor"
    if isinstance(x, (bytes, bytearray, memoryview)): return hashlib.sha256(bytes(x)).hexdigest()
    if isinstance(x, (str, Path)): return hashlib.sha256(Path(x).read_bytes()).hexdigest()
    if isinstance(x, Image.Image): return hashlib.sha256(f'{x.mode}{x.size}'.encode() + x.tobytes()).hexdigest()
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return hashlib.sha256(f'{a.dtype}{a.shape}'.encode() + np.ascontiguousarray(a).tobytes()).hexdigest()

def _thumbnail(x, side:int=128) -> bytes|None:
    "A PNG of at most `side` pixels a side, for the page (None when the image is not a PIL-readable one)"
    from ..data.images import to_image
    from fastai.vision.core import PILImage
    try: im = to_image(x, PILImage)
    except (TypeError, ValueError, OSError): return None
    im = im.copy(); im.thumbnail((side, side))
    buf = io.BytesIO(); im.save(buf, format='PNG')
    return buf.getvalue()

class Gallery:
    """A persistent `SupportSet`: enrolled images are encoded once and kept in an SQLite file (WAL), one row per image
    (label, sha256 of the image, float32 embedding, thumbnail, time). Every process that opens the file sees the others'
    changes (a version counter, read before each answer). The same scores as `SupportSet` on the same images; answers
    say "unknown" below `threshold`, calibrated from the gallery itself (leave one out) or taken from the model."""
    @renamed(mode='method')
    def __init__(
        self,
        path, # the gallery file: created when absent; refused when another model built it
        learn, # the learner (e.g. `ff.load_model(folder)`) whose embeddings it holds
        method:str='mean', # a registered classifier (`ff.methods`): 'mean', 'prototype', or yours
        threshold:float|None=None, # "unknown" below this score; None: calibrated (`calibration`)
        read_only:bool=False, # open the file read-only: enrolments and deletions are refused
        max_bytes:int|None=None, # refuse enrolments that would grow the file past this size (507 from the server)
        bs:int=64, # images per encoder batch
        tta=None, # test-time augmentation, as in `SupportSet`; None: the learner's own
        index:str='ivf', # above `index_above` images: 'ivf' (faiss, approximate; the measured choice, bench/RESULTS.md), 'flat' (faiss, exact), 'hnsw', or 'none'
        index_above:int=50_000, # images from which queries go through the index (candidates, then exact class scores)
        candidates:int=64, # nearest images the index returns per query
        thumbnails:bool=True, # keep a small PNG of each image (the web page shows them)
    ):
        check_method(method, 'Gallery')
        if index not in ('flat', 'ivf', 'hnsw', 'none'): raise ValueError(f"Gallery: index={index!r}: use 'flat', 'ivf', 'hnsw' or 'none'")
        if threshold is not None and not (isinstance(threshold, (int, float)) and np.isfinite(threshold)):
            raise ValueError(f'Gallery: threshold={threshold!r} must be a finite number or None')
        self.learn, self.method, self.bs, self.tta, self.thumbnails = learn, method, bs, tta, thumbnails
        self.index_kind, self.index_above, self.candidates = index, index_above, candidates
        self.metric, self._encoding = metric_of(learn.model), threading.Lock()
        self.digest = model_digest(unwrap_model(learn.model))
        self.dim = int(self._encode([np.full((32, 32), 255, np.uint8)]).shape[1])
        self.store = Store(path, self.digest, self.dim, read_only=read_only, max_bytes=max_bytes)
        self.path, self.read_only = self.store.path, read_only
        self.fixed_threshold = None if threshold is None else float(threshold)
        self._snap, self._lock, self._cal = None, threading.Lock(), None

    def __repr__(self):
        s = self.snapshot()
        return f'{type(self).__name__}({self.path}, {len(s.labels)} labels, {len(s.ids)} images)'

    # ---- reading
    def _encode(self, images) -> np.ndarray:
        with self._encoding:   # one batch through the model at a time: the learner's loaders are not made for threads
            return embed(self.learn, images, self.bs, tta=self.tta).cpu().numpy().astype(np.float32)

    def snapshot(self) -> Snapshot:
        "What the file holds now, from memory when nothing changed since the last look (one cheap query to know)"
        version = self.store.version()
        with self._lock:
            s = self._snap
            if s is not None and s.version == version: return s
            if s is not None and s.version[1] == version[1]:   # only additions since: read the new rows
                ids, lbl, emb = self.store.rows(after=int(s.ids[-1]) if len(s.ids) else 0)
                ids, lbl, emb = np.concatenate([s.ids, ids]), s.row_labels + lbl, np.concatenate([s.emb, emb])
            else: ids, lbl, emb = self.store.rows()
            pos, labels = {}, []
            for l in lbl:
                if l not in pos: pos[l] = len(labels); labels.append(l)
            codes = np.array([pos[l] for l in lbl], dtype=np.int64)
            new = Snapshot(version, ids, lbl, emb, labels, codes)
            if self.index_kind != 'none' and len(ids) >= self.index_above and self.metric is not None:
                build_index(new, s, self.index_kind, self.metric)
            self._snap = new
            return new

    @property
    def labels(self) -> list[str]: return list(self.snapshot().labels)
    def __len__(self): return len(self.snapshot().labels)
    @property
    def n_images(self) -> int: return len(self.snapshot().ids)

    def classes(self) -> list[dict]:
        "[{'label', 'images'}] of every class, by label"
        return [dict(label=l, images=n) for l, n in self.store.classes()]

    # ---- changes
    def add(
        self,
        label:str, # the class: a new one, or more images of one already there
        images, # one image or a list: paths, image file bytes, PIL images, arrays or tensors
        digests:list|None=None, # sha256 of each image's file bytes when `images` were decoded from them (the server's uploads)
    ) -> dict:
        """Encode `images` and store them under `label` in one transaction; an image already there (same sha256 under
        the same label) is not stored twice -> {'label', 'added', 'images' (the class's count after)}"""
        check_label(label)
        images = list(images) if isinstance(images, (list, tuple)) else [images]
        if not images: raise ValueError(f'label {label!r}: no images')
        if self.read_only: self.store._check_writable()
        if digests is not None and len(digests) != len(images): raise ValueError(f'{len(digests)} digests for {len(images)} images')
        digests, seen, keep = digests or [_image_digest(x) for x in images], set(), []
        for d, x in zip(digests, images):
            if d not in seen: seen.add(d); keep.append((d, x))
        emb = self._encode([x for _, x in keep])   # outside the transaction: the file is locked only to write
        rows = [(d, e, _thumbnail(x) if self.thumbnails else None) for (d, x), e in zip(keep, emb)]
        added, n = self.store.add(label, rows)
        return dict(label=label, added=added, images=n)

    def add_embeddings(
        self,
        labels:list, # the class of each row
        embeddings, # (N, D) float32 embeddings made by this gallery's model (e.g. by `ff.embed` on another machine)
        digests:list, # a unique key per row within its label, e.g. the sha256 of the image file it was made from
    ) -> dict:
        """Store rows encoded elsewhere, in one transaction (rows already there under the same label and key are skipped)
        -> {'added', 'images': {label: count after}}. The gallery cannot check that this model made them: only their size."""
        e = np.asarray(embeddings, dtype=np.float32)
        if e.ndim != 2 or e.shape[1] != self.dim: raise ValueError(f'Gallery.add_embeddings: embeddings of shape {e.shape}; this model makes (N, {self.dim})')
        if not np.isfinite(e).all(): raise ValueError('Gallery.add_embeddings: embeddings hold NaN or infinite values')
        if not len(labels) == len(digests) == len(e): raise ValueError(f'Gallery.add_embeddings: {len(labels)} labels, {len(digests)} digests, {len(e)} embeddings')
        for l in set(labels): check_label(l)
        if self.read_only: self.store._check_writable()
        added, counts = self.store.add_many(zip(labels, map(str, digests), e, [None]*len(e)))
        return dict(added=added, images=counts)

    def remove(
        self,
        label:str, # the class
    ) -> int:
        "Delete every image of `label` in one transaction -> how many; KeyError when there is no such label"
        n = self.store.remove(label)
        if not n: raise KeyError(f'no class {label!r} in the gallery')
        return n

    # ---- scores
    def _similarity(self, eq:torch.Tensor, es:torch.Tensor) -> torch.Tensor:
        "The model's `similarity`, as `SupportSet` computes it; by one matrix product for a thousand images or more (8x faster at 10,000)"
        if self.metric is not None and (len(eq)*len(es) > 1 << 18 or len(es) >= 1024): return matrix_similarity(self.metric, eq, es)
        return similarity(self.learn, eq, es)

    def _class_scores(self, s:Snapshot, eq:torch.Tensor, rows=None) -> torch.Tensor:
        "Query x class scores by the gallery's classifier, over every class or over the classes of `rows` only"
        emb, codes, n = torch.from_numpy(s.emb), s.codes, len(s.labels)
        if rows is not None: emb, codes, n = emb[rows], np.unique(s.codes[rows], return_inverse=True)[1], None
        clf = create_method(self.method, self._similarity).process_support_set(emb, torch.from_numpy(np.asarray(codes)), n)
        return clf(eq)

    def scores(
        self,
        queries, # query images: paths, bytes, PIL images or tensors
    ) -> tuple[list[str], torch.Tensor]:
        "(labels, query x label scores (Q, n_labels)): every class scored exactly, as `SupportSet.scores`"
        check_queries('Gallery.scores', queries)
        s = self.snapshot()
        if not s.labels: raise ValueError('Gallery: no classes enrolled yet')
        eq = torch.from_numpy(self._encode(queries))
        return list(s.labels), self._class_scores(s, eq).cpu()

    def classify(
        self,
        queries, # query images
    ) -> tuple[list[str], torch.Tensor]:
        "-> (best label per query, scores (Q, n_labels)); closed-set, as `SupportSet.classify`"
        labels, sc = self.scores(queries)
        return [labels[i] for i in sc.argmax(1).tolist()], sc

    def top(
        self,
        queries, # query images (or a (Q,D) float32 array of embeddings with `embedded=True`)
        k:int=3, # classes per query
        embedded:bool=False, # `queries` are embeddings already
    ) -> list[list[tuple[str, float]]]:
        """The `k` best (label, score) per query. Up to `index_above` images every class is scored; above, the index
        gives each query's `candidates` nearest images and the classes among them are scored exactly."""
        if not embedded: check_queries('Gallery.top', queries)
        s = self.snapshot()
        if not s.labels: raise ValueError('Gallery: no classes enrolled yet')
        eq = torch.from_numpy(np.asarray(queries, np.float32) if embedded else self._encode(queries))
        out = []
        if s.index is None:
            sc = self._class_scores(s, eq)
            v, i = sc.topk(min(k, sc.shape[1]), dim=1)
            return [[(s.labels[c], float(x)) for x, c in zip(vr.tolist(), ir.tolist())] for vr, ir in zip(v, i)]
        q = eq.numpy()
        if self.metric == 'cosine': q = q/np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-8)
        _, near = s.index.search(np.ascontiguousarray(q, np.float32), min(self.candidates, s.n_indexed))
        for qi in range(len(q)):
            cls = np.unique(s.codes[near[qi][near[qi] >= 0]])
            rows = np.concatenate([s.rows_of[c] for c in cls])
            sc = self._class_scores(s, eq[qi:qi+1], rows)[0]   # classes in `cls` order (np.unique sorts both the same)
            v, i = sc.topk(min(k, len(sc)))
            out.append([(s.labels[cls[c]], float(x)) for x, c in zip(v.tolist(), i.tolist())])
        return out

    # ---- unknown
    def calibration(
        self,
        max_queries:int=200, # enrolled images scored leave-one-out
        max_rows:int=20_000, # at most about this many gallery images take part
        seed:int=0, # which images are drawn as queries
        far:float=0.05, # with impostor scores only (one image per class): the share of them the threshold lets through
    ) -> dict:
        """The open-set threshold and where it comes from: `threshold` given ('override'); else from the gallery, leave one
        out ('gallery': each sampled image scored against the gallery without it; genuine = its own class, impostor = the
        best other class; the threshold where both error rates meet, `ff.evaluate.eer_threshold`), when at least 10 of
        each; with one image per class there are no genuine scores: the `1 - far` quantile of at least 10 impostor
        scores ('impostors': an unseen query scores like an impostor, so about `far` of them are let through); else the
        model's calibrated pair threshold ('model', siamese models); else none (never "unknown"). Kept in memory and
        recomputed once the gallery has grown by 5% or lost a class since."""
        if not 0 < far < 1: raise ValueError(f'Gallery.calibration: far={far!r} must be between 0 and 1')
        if self.fixed_threshold is not None: return dict(threshold=self.fixed_threshold, source='override')
        s = self.snapshot()
        args = (max_queries, max_rows, seed, far)
        with self._lock:
            if self._cal is not None:
                was_args, was_n, was_removals, cal = self._cal
                # kept until the gallery has grown by 5% or lost a class: recomputing it (leave one out) at every
                # enrolment would cost each answer of a busy gallery more than the answer itself
                if was_args == args and was_removals == s.version[1] and len(s.ids) - was_n < max(1, 0.05*was_n): return cal
        cal = self._calibrate(s, max_queries, max_rows, seed, far)
        with self._lock: self._cal = (args, len(s.ids), s.version[1], cal)
        return cal

    def _calibrate(self, s, max_queries, max_rows, seed, far) -> dict:
        rng = np.random.default_rng(seed)
        gen, imp = [], []
        if len(s.labels) >= 2:
            counts = np.bincount(s.codes, minlength=len(s.labels))
            picks = rng.choice(len(s.ids), min(max_queries, len(s.ids)), replace=False)
            emb = torch.from_numpy(s.emb)
            for i in picks:
                c = s.codes[i]
                if len(s.ids) > max_rows:   # the query's class and random others, about `max_rows` images in all
                    others = rng.choice(len(s.ids), max_rows, replace=False)
                    rows = np.union1d(others, np.nonzero(s.codes == c)[0])
                else: rows = np.arange(len(s.ids))
                rows = rows[rows != i]
                cls, codes = np.unique(s.codes[rows], return_inverse=True)
                if len(cls) < 2 and counts[c] < 2: continue
                clf = create_method(self.method, self._similarity).process_support_set(emb[rows], torch.from_numpy(codes), len(cls))
                sc = clf(emb[i:i+1])[0]
                own = np.nonzero(cls == c)[0]
                if len(own): gen.append(float(sc[own[0]]))
                rest = sc[torch.from_numpy(cls != c)]
                if len(rest): imp.append(float(rest.max()))
        if len(gen) >= 10 and len(imp) >= 10:
            return dict(threshold=eer_threshold(gen, imp), source='gallery', genuine=len(gen), impostor=len(imp))
        if len(imp) >= 10 and len(gen) < 10:
            return dict(threshold=float(np.quantile(imp, 1 - far)), source='impostors', genuine=len(gen), impostor=len(imp))
        loss = getattr(self.learn, 'loss_func', None)
        if getattr(loss, 'calibrated', False) and self.metric in ('euclidean', 'sqeuclidean'):
            t = -float(loss.thresh)   # the pair threshold is a distance; scores are minus distances
            return dict(threshold=t if self.metric == 'euclidean' else -t*t, source='model')
        return dict(threshold=None, source='none', genuine=len(gen), impostor=len(imp))

    def answer(
        self,
        queries, # query images
        k:int=3, # classes per query in `top`
    ) -> list[dict]:
        "{'label' (None when unknown), 'unknown', 'top': [{'label', 'score'}], 'threshold'} per query"
        tops, t = self.top(queries, k), self.calibration()['threshold']
        res = []
        for top in tops:
            unknown = t is not None and top[0][1] < t
            res.append(dict(label=None if unknown else top[0][0], unknown=unknown, threshold=t,
                            top=[dict(label=l, score=round(v, 6)) for l, v in top]))
        return res

    def support_set(self) -> SupportSet:
        "The same classes as a `SupportSet` (in memory; its scores equal the gallery's)"
        s = self.snapshot()
        ss = SupportSet(self.learn, method=self.method, tta=self.tta, bs=self.bs)
        ss.emb = {l: torch.from_numpy(s.emb[s.codes == c]) for c, l in enumerate(s.labels)}
        return ss

    def close(self):
        "Close the gallery's database connection (also on leaving a `with` block)"
        self.store.close()
    def __enter__(self): return self
    def __exit__(self, *a): self.close()
