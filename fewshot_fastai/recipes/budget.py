"Training for a number of epochs, or as many as fit in a time budget (the shared loop of the recipes)"
import math, time
from fastai.callback.core import Callback

__all__ = ['PhaseTimer', 'fit_recipe']

class PhaseTimer(Callback):
    "Seconds spent in the training and in the validation phase of each epoch"
    def before_fit(self): self.train_s, self.valid_s = [], []
    def before_train(self): self.t = time.time()
    def after_train(self): self.train_s.append(time.time() - self.t)
    def before_validate(self): self.t = time.time()
    def after_validate(self): self.valid_s.append(time.time() - self.t)

def _epochs_in(minutes:float, probe, steps:int, probe_steps:int) -> tuple[int, float]:
    """Epochs of `steps` training steps that fit `minutes`, from `probe(cbs)`: a throw-away learner trained 2 epochs
    of `probe_steps` steps (the second is timed; the first pays for warm-up). The training phase scales with the steps
    per epoch, the validation phase does not. -> (epochs, the estimated seconds of one epoch)"""
    timer = PhaseTimer()
    probe([timer])
    tr, va = timer.train_s[-1], timer.valid_s[-1] if timer.valid_s else 0.
    per_epoch = tr*steps/probe_steps + va
    return max(1, math.floor(minutes*60/per_epoch)), per_epoch

def fit_recipe(
    learn, # the learner to train
    epochs:int, # one-cycle epochs, when `minutes` is None
    lr:float, # the one-cycle maximum learning rate
    minutes:float|None=None, # a budget: the epochs that fit it, timed on `probe`
    probe=None, # `probe(cbs)`: trains a throw-away copy of the recipe for 2 short epochs (with `minutes`)
    steps:int=0, probe_steps:int=0, # training steps per epoch of the real run and of the probe
    quiet:bool=True, # no progress bar or table
    cbs=None, # callbacks for this fit
) -> dict:
    "Fit `learn` with one-cycle; -> dict(epochs, train_seconds, and with `minutes` the probe's epoch_seconds)"
    per_epoch = None
    if minutes is not None:
        if not minutes > 0: raise ValueError(f'minutes={minutes}: a training budget must be > 0')
        epochs, per_epoch = _epochs_in(minutes, probe, steps, probe_steps)
    if not (isinstance(epochs, int) and epochs >= 1): raise ValueError(f'epochs={epochs!r}: train at least 1 epoch')
    if not len(learn.dls.train): raise ValueError('no training batches: the batch size is larger than the training data')
    if not lr > 0: raise ValueError(f'lr={lr}: a learning rate must be a number > 0')
    t = time.time()
    if quiet:
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, lr, cbs=cbs)
    else: learn.fit_one_cycle(epochs, lr, cbs=cbs)
    losses = [float(l) for l in learn.recorder.losses]
    if not losses: raise ValueError('training ran no batch')
    if not math.isfinite(losses[-1]):
        raise ValueError(f'training diverged: the last training loss is {losses[-1]} (lr={lr}); try a lower learning rate')
    return dict(epochs=epochs, train_seconds=round(time.time() - t, 1)) | ({} if per_epoch is None else dict(epoch_seconds=per_epoch))
