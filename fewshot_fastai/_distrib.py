"""Private distributed-safe helpers (not API): the model behind a `DistributedDataParallel` wrapper, the loader behind
fastai's `DistributedDL`, the main process, and the gloo fix `callbacks.distrib.DistribSupport` applies."""
import torch
from fastai.torch_core import rank_distrib, num_distrib

__all__ = ['unwrap_model', 'plain_dl', 'is_main_process', 'patch_fastai_distributed']

def unwrap_model(
    model:torch.nn.Module, # a model, possibly wrapped
) -> torch.nn.Module:
    "The module inside DistributedDataParallel / DataParallel (accelerate's `extract_model_from_parallel`), else `model`"
    if not isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)): return model
    from accelerate.utils import extract_model_from_parallel
    return extract_model_from_parallel(model)

def plain_dl(dl):
    "The DataLoader inside fastai's `DistributedDL` (which `learn.distrib_ctx()` puts in place during fit), else `dl`"
    while hasattr(dl, 'dl') and type(dl).__name__ == 'DistributedDL': dl = dl.dl
    return dl

def is_main_process() -> bool:
    "True in the process that writes files (rank 0), and when not distributed"
    return rank_distrib() == 0

def _broadcast(self, t, rank):
    "fastai's `DistributedDL._broadcast`, on the device the process group's backend needs (CPU tensors for gloo)"
    import torch.distributed as dist
    dev = 'cuda' if dist.get_backend() == 'nccl' else 'cpu'
    t = torch.tensor(t, dtype=torch.long, device=dev)
    dist.broadcast(t, rank)
    return t.cpu().tolist()

def patch_fastai_distributed():
    "fastai 2.8 broadcasts the shuffled indices as CUDA tensors whatever the backend, so gloo (CPU) runs fail at once"
    from fastai.distributed import DistributedDL
    DistributedDL._broadcast = _broadcast
