"`Column`: a recorder column whose value a callback computes itself (fastai `Metric`s accumulate over batches)"
from fastai.learner import Metric

__all__ = ['Column']

class Column(Metric):
    "A recorder column named `name`; its value is `get()`, read once when the Recorder logs the epoch"
    def __init__(
        self,
        name:str, # the column's name in the recorder
        get, # () -> the value to log for the epoch
    ): self._name, self.get = name, get
    def reset(self):
        "Nothing to reset: the value is computed by `get`"
    def accumulate(
        self,
        learn, # the learner (unused: nothing accumulates over batches)
    ):
        "Nothing to accumulate"
    @property
    def value(self): return self.get()
    @property
    def name(self): return self._name
