"""`fewshot-fastai serve MODEL --gallery G`: the HTTP API and page (`ff.serve.create_app`) run by uvicorn."""
import json, os, socket, sys, tempfile
from .common import UserError, model as load_user_model

__all__ = ['serve']

NEEDS = {'fastapi': 'fastapi', 'uvicorn': 'uvicorn', 'multipart': 'python-multipart', 'prometheus_client': 'prometheus-client'}

def _check(a):
    import importlib.util
    if (miss := [d for m, d in NEEDS.items() if importlib.util.find_spec(m) is None]):
        raise UserError(f"serve needs {' and '.join(miss)}: pip install 'fewshot_fastai[serve]'")
    if not 0 < a.port < 65536: raise UserError(f'--port {a.port}: must be 1..65535')
    for name, v in (('--workers', a.workers), ('--max-pixels', a.max_pixels), ('--max-files', a.max_files), ('--index-above', a.index_above)):
        if v < 1: raise UserError(f'{name} {v}: must be at least 1')
    if a.threads is not None and a.threads < 1: raise UserError(f'--threads {a.threads}: must be at least 1')
    for name, v in (('--max-request-mb', a.max_request_mb), ('--max-gallery-mb', a.max_gallery_mb)):
        if v is not None and not v > 0: raise UserError(f'{name} {v}: must be above 0')
    with socket.socket() as s:   # a port in use is one line here, not a uvicorn traceback later
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try: s.bind((a.host, a.port))
        except OSError as e: raise UserError(f'{a.host}:{a.port}: cannot listen there ({e.strerror})') from None

def serve(a) -> int:
    _check(a)
    import uvicorn
    from ..serve.app import create_app, ENV
    learn = load_user_model(a.model)
    mp = lambda v: None if v is None else int(v*2**20)
    opts = dict(max_request_bytes=mp(a.max_request_mb), max_pixels=a.max_pixels, max_files=a.max_files, method=a.method,
                threshold=a.threshold, read_only=a.read_only, max_bytes=mp(a.max_gallery_mb), index=a.index, index_above=a.index_above)
    threads = a.threads or max(1, (os.cpu_count() or 1)//a.workers)
    app = create_app(learn, a.gallery, name=str(a.model), **opts)   # refuses a gallery of another model, a bad file, ... in one line, before listening
    g = app.state.gallery
    print(f'serving {a.model} on http://{a.host}:{a.port}/ (API docs at /docs): gallery {g.path}, {len(g)} classes, '
          f'{g.n_images} images; {a.workers} worker(s), {threads} torch thread(s) each', file=sys.stderr, flush=True)
    if a.workers == 1:
        import torch
        torch.set_num_threads(threads)
        uvicorn.run(app, host=a.host, port=a.port, log_level='warning')
        return 0
    g.close()
    folder = a.model
    from pathlib import Path
    if (Path(folder)/'model').is_dir() and not (Path(folder)/'config.json').exists(): folder = str(Path(folder)/'model')
    with tempfile.TemporaryDirectory(prefix='fewshot-metrics-') as prom:
        os.environ['PROMETHEUS_MULTIPROC_DIR'] = prom   # the workers' metrics, summed at /metrics
        os.environ[ENV] = json.dumps(dict(model=folder, gallery=str(a.gallery), threads=threads, name=str(a.model), **opts))
        uvicorn.run('fewshot_fastai.serve.app:app_from_env', factory=True, host=a.host, port=a.port, workers=a.workers, log_level='warning')
    return 0
