"""`DistribSupport`: the callbacks that make fastai's `learn.distrib_ctx()` work for our learners."""
import warnings
from fastai.callback.core import Callback
from fastai.torch_core import num_distrib
from .._distrib import unwrap_model, patch_fastai_distributed

__all__ = ['DistribSupport', 'DistribSupportAfter', 'distrib_callbacks']

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
        patch_fastai_distributed()
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
