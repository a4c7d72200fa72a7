"""The gallery's search: what one version of the file holds in memory (`Snapshot`), the model's similarity as a
matrix product where its form is known (`metric_of`, `matrix_similarity`), and the faiss index of large galleries."""
import numpy as np
import torch
from .._distrib import unwrap_model

__all__ = ['Snapshot', 'metric_of', 'matrix_similarity', 'build_index']

class Snapshot:
    "What one version of the gallery holds, in memory: never changed after it is built (a reader keeps a whole one)"
    def __init__(self, version, ids, row_labels, emb, labels, codes):
        self.version, self.ids, self.row_labels, self.emb = version, ids, row_labels, emb
        self.labels, self.codes = labels, codes               # class names in order of enrolment; class index per row
        self.index, self.rows_of = None, None

def metric_of(model) -> str|None:
    "How the model's `similarity` relates to the embeddings, for the matrix and faiss paths: 'cosine', 'sqeuclidean', 'euclidean', or None (only the model's own)"
    from ..models.protonet import ProtoNet
    from ..models.siamese import SiameseModel
    from ..models.heads import DistanceHead, CosineHead
    m = unwrap_model(model)
    if isinstance(m, ProtoNet): return 'sqeuclidean'
    if isinstance(m, SiameseModel):
        if type(m.head) is CosineHead: return 'cosine'
        if type(m.head) is DistanceHead: return 'euclidean'
    return None

def matrix_similarity(metric:str, eq:torch.Tensor, es:torch.Tensor) -> torch.Tensor:
    "The model's similarity of every query with every support embedding by one matrix product: (Q,D),(S,D) -> (Q,S)"
    eq, es = eq.float(), es.float()
    if metric == 'cosine':
        return torch.nn.functional.normalize(eq, dim=-1, eps=1e-8) @ torch.nn.functional.normalize(es, dim=-1, eps=1e-8).t()
    d2 = (eq.pow(2).sum(1, keepdim=True) - 2*eq @ es.t() + es.pow(2).sum(1)[None]).clamp_min(0)
    return -d2 if metric == 'sqeuclidean' else -d2.clamp_min(1e-12).sqrt()

def build_index(new:Snapshot, old:Snapshot|None, kind:str, metric:str):
    """Put a faiss index of `new`'s embeddings in `new.index` (`old`'s, extended, when rows were only added since) and
    the rows of each class in `new.rows_of`. `kind`: 'flat' (exact), 'ivf' or 'hnsw'; `metric`: as `metric_of` gives"""
    import faiss   # the `serve` extra
    x = np.ascontiguousarray(new.emb, dtype=np.float32)
    if metric == 'cosine': x = x/np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)
    if old is not None and old.index is not None and old.version[1] == new.version[1]:
        index = old.index   # faiss indexes grow in place; the old snapshot keeps answering with the rows it had
        index.add(x[len(old.ids):])
    else:
        ip = metric == 'cosine'
        d = x.shape[1]
        if kind == 'flat': index = faiss.IndexFlatIP(d) if ip else faiss.IndexFlatL2(d)
        elif kind == 'hnsw':
            index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2)
            index.hnsw.efSearch = 128
        else:
            nlist = int(4*np.sqrt(len(x)))
            quant = faiss.IndexFlatIP(d) if ip else faiss.IndexFlatL2(d)
            index = faiss.IndexIVFFlat(quant, d, nlist, faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2)
            rng = np.random.default_rng(0)
            index.train(x[rng.choice(len(x), min(len(x), 64*nlist), replace=False)])
            index.nprobe = 32
        index.add(x)
    new.index, new.n_indexed = index, len(x)
    order = np.argsort(new.codes, kind='stable')
    bounds = np.searchsorted(new.codes[order], np.arange(len(new.labels) + 1))
    new.rows_of = [order[bounds[c]:bounds[c+1]] for c in range(len(new.labels))]

