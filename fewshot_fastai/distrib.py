"""Distributed-safe helpers: the model behind a `DistributedDataParallel` wrapper, the main process, and
`DistribSupport`, the callback that makes fastai's `learn.distrib_ctx()` work for our learners."""
import warnings
import torch
from fastai.callback.core import Callback
from fastai.torch_core import rank_distrib, num_distrib

__all__ = ['unwrap_model', 'is_main_process', 'DistribSupport', 'DistribSupportAfter', 'distrib_callbacks']

def unwrap_model(
    model:torch.nn.Module, # a model, possibly wrapped
) -> torch.nn.Module:
    "The module inside DistributedDataParallel / DataParallel (accelerate's `extract_model_from_parallel`), else `model`"
    if not isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)): return model
    from accelerate.utils import extract_model_from_parallel
    return extract_model_from_parallel(model)

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

def _patch_fastai_distributed():
    "fastai 2.8 broadcasts the shuffled indices as CUDA tensors whatever the backend, so gloo (CPU) runs fail at once"
    from fastai.distributed import DistributedDL
    DistributedDL._broadcast = _broadcast

class DistribSupport(Callback):
    """Runs before fastai's `DistributedTrainer` (order 11) sets up `DistributedDataParallel`:
    - several processes but accelerate not distributing (torchrun on CPU without `cpu=True`) -> a clear error;
    - `sync_bn=True` (fastai's default) off CUDA, where `SyncBatchNorm` does not run -> a warning, and plain
      per-process BatchNorm;
    - models whose parts train in turn (GANs): every parameter is registered with DDP and unused parameters are
      allowed, then the phase's freezing is restored;
    - a `ProtoNet` with a classifier head (`classifier_learner`): unused parameters are allowed (the head is idle on
      episodes, the episode temperature on classifier batches)."""
    order = 10
    _trainer = None
    def before_fit(self):
        self._trainer = next((cb for cb in self.learn.cbs if type(cb).__name__ == 'DistributedTrainer'), None)
        if self._trainer is None: return
        _patch_fastai_distributed()
        acc = self._trainer.accelerator
        if num_distrib() > 1 and acc.num_processes == 1:
            raise RuntimeError(f'{num_distrib()} processes were launched, but accelerate does not distribute this run '
                               f'(device {acc.device}). On CPU use learn.distrib_ctx(cpu=True), or launch with '
                               '`accelerate launch --cpu`.')
        if self._trainer.sync_bn and acc.device.type != 'cuda':
            warnings.warn(f'SyncBatchNorm needs CUDA; on {acc.device.type} (gloo) each process keeps its own BatchNorm '
                          'statistics (sync_bn is switched off). Pass learn.distrib_ctx(sync_bn=False) to silence this.')
            self._trainer.sync_bn = False
        self._frozen = None
        gan = hasattr(self.learn, 'gan_trainer')
        # a ProtoNet with a classifier uses its head on classifier batches and its episode temperature on episodes
        if gan or getattr(unwrap_model(self.learn.model), 'classifier', None) is not None:
            from accelerate.utils import DistributedDataParallelKwargs
            if acc.ddp_handler is None: acc.ddp_handler = DistributedDataParallelKwargs(find_unused_parameters=True)
            else: acc.ddp_handler.find_unused_parameters = True
        if gan:
            self._frozen = [p for p in self.learn.model.parameters() if not p.requires_grad]
            for p in self._frozen: p.requires_grad_(True)   # DDP registers only parameters that require grad

class DistribSupportAfter(Callback):
    "Restores the GAN phase's frozen parameters once `DistributedTrainer` (order 11) has wrapped the model"
    order = 12
    def before_fit(self):
        sup = next((cb for cb in self.learn.cbs if isinstance(cb, DistribSupport)), None)
        if sup is None or sup._trainer is None: return
        for p in sup._frozen or []: p.requires_grad_(False)
        sup._frozen = None
        inner = unwrap_model(self.learn.model)
        # fastai's GANTrainer calls `learn.model.switch`, which DDP does not forward to the module it wraps
        if inner is not self.learn.model and hasattr(inner, 'switch'): self.learn.model.switch = inner.switch

def distrib_callbacks() -> list:
    "The callbacks every fewshot_fastai learner carries for `learn.distrib_ctx()`; they do nothing outside it"
    return [DistribSupport(), DistribSupportAfter()]
