"""Serving a model: `Gallery` (a support set kept in SQLite, shared by processes, with an "unknown" answer) and
`create_app` (the HTTP API and web page, FastAPI; `fewshot-fastai serve` runs it with uvicorn)."""
from .store import GalleryError, GalleryFull, GalleryReadOnly, model_digest
from .gallery import Gallery, check_label

__all__ = ['Gallery', 'GalleryError', 'GalleryFull', 'GalleryReadOnly', 'model_digest', 'check_label', 'create_app']

def create_app(*args, **kwargs):
    "The ASGI app (see `ff.serve.app.create_app`); FastAPI is imported only when an app is made"
    from .app import create_app as make
    return make(*args, **kwargs)
