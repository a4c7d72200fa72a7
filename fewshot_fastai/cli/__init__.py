"""`fewshot-fastai`, the command line: `main.py` parses and dispatches; one module per command family (`train.py`:
train, eval, recipes; `predict.py`: classify, verify, similarity, cam; `gan.py`; `demo.py`); `common.py` is what they share."""
from .commands import main

__all__ = ['main']
