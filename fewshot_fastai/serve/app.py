"""The HTTP API and web page over a `Gallery` (FastAPI; uvicorn runs it): enrol classes from a few images, list and
delete them, classify an image (with "unknown"), verify a pair, health and Prometheus metrics. Every mistake is a 4xx
(507 / 503 where the disk or the file refuses) with `{"error": "one line"}`; the gallery changes in whole transactions."""
import base64, hashlib, io, json, os, time, warnings
from pathlib import Path
from PIL import Image, UnidentifiedImageError
from ..data.images import canonical_image
from .gallery import Gallery, check_label
from .store import GalleryFull, GalleryReadOnly
from ..config import model_config

__all__ = ['LIMITS', 'ApiError', 'create_app', 'app_from_env']

# the documented limits; `fewshot-fastai serve --max-request-mb / --max-pixels / --max-files` change them
LIMITS = dict(max_request_bytes=20*2**20, max_pixels=40_000_000, max_files=32)
PAGE = Path(__file__).with_name('page')

class ApiError(Exception):
    "An answer other than success: its status and one line"
    def __init__(self, status:int, msg:str): super().__init__(msg); self.status, self.msg = status, msg

def _err(status:int, msg:str):
    from fastapi.responses import JSONResponse   # the `serve` extra: imported when an app runs
    return JSONResponse({'error': msg}, status_code=status)

class _BodyLimit:
    """ASGI middleware: a request body over `limit` bytes is answered 413 before the app sees it (by its
    Content-Length, or counted as it streams). Starlette and FastAPI put no bound on a body, hence this."""
    def __init__(self, app, limit:int): self.app, self.limit = app, limit
    async def __call__(self, scope, receive, send):
        if scope['type'] != 'http': return await self.app(scope, receive, send)
        too_big = _err(413, f'request body over {self.limit:,} bytes (the server\'s --max-request-mb)')
        length = dict(scope.get('headers') or []).get(b'content-length')
        if length is not None:
            try: n = int(length)
            except ValueError: return await _err(400, 'Content-Length: not a number')(scope, receive, send)
            if n > self.limit: return await too_big(scope, receive, send)
        body, more = [], True
        total = 0
        while more:   # read the whole body, bounded, then hand it on: a request over the limit never reaches the parser
            msg = await receive()
            if msg['type'] == 'http.disconnect': return
            chunk = msg.get('body', b''); total += len(chunk)
            if total > self.limit: return await too_big(scope, receive, send)
            body.append(chunk); more = msg.get('more_body', False)
        data, sent = b''.join(body), False
        async def replay():
            nonlocal sent
            if sent: return await receive()
            sent = True
            return {'type': 'http.request', 'body': data, 'more_body': False}
        return await self.app(scope, replay, send)

def decode_upload(
    data:bytes, # the uploaded file's bytes
    name:str, # its field and file name, for the error
    max_pixels:int, # refuse images of more pixels (decompression bombs)
) -> Image.Image:
    "The uploaded image fully decoded as 8-bit 'L' or 'RGB'; an ApiError naming the file when it cannot be one"
    if not data: raise ApiError(400, f'{name}: an empty file (0 bytes)')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise ApiError(415, f'{name}: not an image (no PNG, JPEG, BMP, GIF, TIFF, WebP or PGM header)') from None
        except Image.DecompressionBombError:
            raise ApiError(413, f'{name}: too many pixels (at most {max_pixels:,})') from None
        w, h = im.size
        if w*h > max_pixels: raise ApiError(413, f'{name}: {w}x{h} pixels, more than the {max_pixels:,} allowed (--max-pixels)')
        if w == 0 or h == 0: raise ApiError(400, f'{name}: an image of no pixels ({w}x{h})')
        try:
            im.load()
            return canonical_image(im, name)
        except Image.DecompressionBombError:
            raise ApiError(413, f'{name}: too many pixels (at most {max_pixels:,})') from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ApiError(400, f'{name}: a truncated or damaged image ({str(e).splitlines()[0][:80] if str(e) else type(e).__name__})') from None

def _metrics():
    "Prometheus metrics of this app, one registry per app; in a multi-process server (PROMETHEUS_MULTIPROC_DIR set) collected over all workers"
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client import multiprocess
    reg, multi = CollectorRegistry(), bool(os.environ.get('PROMETHEUS_MULTIPROC_DIR'))
    own = None if multi else reg
    req = Counter('fewshot_requests_total', 'HTTP requests answered', ['endpoint', 'status'], registry=own)
    lat = Histogram('fewshot_request_seconds', 'Time to answer a request', ['endpoint'], registry=own,
                    buckets=(.005, .01, .02, .03, .05, .075, .1, .2, .5, 1, 2, 5, 10))
    if multi:
        scrape = CollectorRegistry()
        multiprocess.MultiProcessCollector(scrape)
        return req, lat, scrape
    return req, lat, reg

class _GalleryCollector:
    "Gallery size as Prometheus gauges, read from the file at each scrape (the same for every worker)"
    def __init__(self, gallery): self.g = gallery
    def collect(self):
        from prometheus_client.core import GaugeMetricFamily
        s = self.g.snapshot()
        yield GaugeMetricFamily('fewshot_gallery_classes', 'Classes enrolled', value=len(s.labels))
        yield GaugeMetricFamily('fewshot_gallery_images', 'Images enrolled', value=len(s.ids))

_ERRORS = {400: 'a bad label, or a file that is not a whole image (truncated, empty)', 404: 'no such class',
           409: 'nothing enrolled yet', 413: 'too big: the request body, an image\'s pixels, or the number of files',
           415: 'not an image', 422: 'a required field is missing', 503: 'the gallery is read-only',
           507: 'the gallery is full (its size limit, or the disk)'}

def create_app(
    model, # a learner, or a model folder written by `ff.save_model`
    gallery, # a `Gallery`, or the path of its SQLite file (made when absent)
    max_request_bytes:int=LIMITS['max_request_bytes'], # bigger request bodies are answered 413
    max_pixels:int=LIMITS['max_pixels'], # bigger images are answered 413 (decompression bombs)
    max_files:int=LIMITS['max_files'], # more files in one enrolment are answered 413
    name:str|None=None, # what /healthz calls the model (default: the folder's name, or the recipe and encoder)
    **gallery_kwargs, # `Gallery` options when `gallery` is a path: method, threshold, read_only, max_bytes, index, ...
):
    """The ASGI app: `POST /classes/{label}/images`, `GET /classes`, `DELETE /classes/{label}`, `POST /classify`,
    `POST /verify`, `GET /healthz`, `GET /metrics`, the page at `/`, OpenAPI docs at `/docs`. Run it with
    `uvicorn.run(app)` or `fewshot-fastai serve`."""
    from fastapi import FastAPI, File, Query, Request, UploadFile, Path as Path_
    from pydantic import BaseModel
    class _Error(BaseModel): error:str
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from ..deploy import load_model
    learn = load_model(model) if isinstance(model, (str, Path)) else model
    g = gallery if isinstance(gallery, Gallery) else Gallery(gallery, learn, **gallery_kwargs)
    cfg = model_config(learn)
    kind = getattr(cfg, 'kind', None)
    name = name or (Path(model).name if isinstance(model, (str, Path)) else
                    ' '.join(str(v) for v in (cfg.recipe, cfg.kind, cfg.arch) if v) if cfg else None or type(learn.model).__name__)
    app = FastAPI(title='fewshot_fastai', description='Enrol classes from a few images; recognise, verify, or say "unknown".',
                  version=__import__('fewshot_fastai').__version__)
    app.state.gallery, app.state.learn = g, learn
    req_count, latency, registry = _metrics()
    from prometheus_client import generate_latest, CONTENT_TYPE_LATEST
    registry.register(_GalleryCollector(g))

    @app.middleware('http')
    async def measure(request:Request, call_next):
        t = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get('route')
        endpoint = getattr(route, 'path_format', None) or getattr(route, 'path', 'other')
        req_count.labels(endpoint, str(response.status_code)).inc()
        latency.labels(endpoint).observe(time.perf_counter() - t)
        return response
    app.add_middleware(_BodyLimit, limit=max_request_bytes)

    @app.exception_handler(ApiError)
    async def _api(request, e): return _err(e.status, e.msg)
    @app.exception_handler(RequestValidationError)
    async def _invalid(request, e):
        first = e.errors()[0] if e.errors() else {}
        loc = [str(x) for x in first.get('loc', ()) if x not in ('body', 'query', 'path')]
        what = f"field {'.'.join(loc)!r}" if first.get('loc', ('',))[0] == 'body' else f"{'.'.join(loc) or 'request'}"
        msg = first.get('msg', 'invalid request')
        if first.get('type') == 'missing': msg = 'required (multipart/form-data)' if first.get('loc', ('',))[0] == 'body' else 'required'
        return _err(422, f'{what}: {msg}')
    @app.exception_handler(StarletteHTTPException)
    async def _http(request, e):
        msg = e.detail if isinstance(e.detail, str) else json.dumps(e.detail)
        if e.status_code == 404 and msg == 'Not Found': msg = f'no such endpoint: {request.method} {request.url.path} (the API is at /docs)'
        if e.status_code == 405: msg = f'{request.method} is not allowed on {request.url.path} (the API is at /docs)'
        if e.status_code == 400 and 'form' in msg.lower(): msg = f'the request body is not readable multipart/form-data ({msg})'
        return _err(e.status_code, msg)

    def read_images(files:list, field:str) -> tuple[list, list]:
        if len(files) > max_files: raise ApiError(413, f'{len(files)} files in {field!r}; at most {max_files} per request (--max-files)')
        ims, digests = [], []
        for i, f in enumerate(files):
            data = f.file.read()
            ims.append(decode_upload(data, f"{field}[{i}] {f.filename!r}" if f.filename else f'{field}[{i}]', max_pixels))
            digests.append(hashlib.sha256(data).hexdigest())
        return ims, digests

    def label_of(label:str) -> str:
        try: return check_label(label)
        except (ValueError, TypeError) as e: raise ApiError(400, str(e)) from None

    def writing(fn):
        "A gallery change: the disk and the file's refusals as 507 / 503"
        try: return fn()
        except GalleryFull as e: raise ApiError(507, str(e)) from None
        except GalleryReadOnly as e: raise ApiError(503, str(e)) from None

    def need_classes():
        if not g.snapshot().labels: raise ApiError(409, 'the gallery has no classes yet: enrol some with POST /classes/{label}/images')

    lab = lambda: Path_(description='the class name: up to 100 characters, any script; no / or \\, no control characters, no edge spaces, not . or ..')
    err = lambda *codes: {c: {'model': _Error, 'description': _ERRORS[c]} for c in codes}
    @app.post('/classes/{label:path}/images', status_code=201, summary='Enrol images of a class', responses=err(400, 413, 415, 422, 503, 507))
    def enrol(label:str=lab(), images:list[UploadFile]=File(..., description='one or more image files')):
        label = label_of(label)
        ims, digests = read_images(images, 'images')
        return writing(lambda: g.add(label, ims, digests=digests))

    @app.get('/classes', summary='The enrolled classes')
    def classes():
        return {'classes': g.classes()}

    @app.get('/classes/{label:path}/thumbnails', summary='Small PNGs of a class, as data URLs', responses=err(400))
    def thumbnails(label:str=lab(), limit:int=Query(4, ge=1, le=32, description='at most this many')):
        label = label_of(label)
        return {'label': label, 'thumbnails': [f'data:image/png;base64,{base64.b64encode(b).decode()}' for _, b in g.store.thumbnails(label, limit)]}

    @app.delete('/classes/{label:path}', summary='Delete a class and its images', responses=err(400, 404, 503))
    def delete(label:str=lab()):
        label = label_of(label)
        try: n = writing(lambda: g.remove(label))
        except KeyError: raise ApiError(404, f'no class {label!r} in the gallery') from None
        return {'label': label, 'deleted': n}

    @app.post('/classify', summary='The best classes for an image, or "unknown"', responses=err(400, 409, 413, 415, 422))
    def classify(image:UploadFile=File(..., description='the image to recognise'), k:int=Query(3, ge=1, le=100, description='classes in `top`'),
                 overlay:bool=Query(False, description='add the similarity maps of the image and the answer, as a PNG data URL')):
        (im,), _ = read_images([image], 'image')
        need_classes()
        ans = g.answer([im], k)[0]
        if overlay: ans['overlay'] = _overlay(learn, g, im, ans['top'][0]['label'])
        return ans

    @app.post('/verify', summary='Same class or not, for a pair of images (pair models)', responses=err(400, 413, 415, 422))
    def verify(a:UploadFile=File(..., description='the first image'), b:UploadFile=File(..., description='the second image')):
        if kind != 'siamese': raise ApiError(400, f'this model ({kind or "unknown kind"}) does not verify pairs: use POST /classify')
        (ia,), _ = read_images([a], 'a'); (ib,), _ = read_images([b], 'b')
        with g._encoding: same, p = learn.predict_pair(ia, ib)
        return {'same': bool(same), 'probability': round(float(p), 6)}

    @app.get('/healthz', summary='Liveness and what the gallery holds')
    def healthz():
        s, cal = g.snapshot(), g.calibration()
        return {'status': 'ok', 'classes': len(s.labels), 'images': len(s.ids), 'model': name, 'model_sha256': g.digest,
                'threshold': cal['threshold'], 'threshold_source': cal['source'], 'read_only': g.read_only}

    @app.get('/metrics', summary='Prometheus metrics')
    def metrics(): return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get('/', response_class=HTMLResponse, include_in_schema=False)
    def page(): return HTMLResponse((PAGE/'index.html').read_text(), headers={'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; style-src 'self'"})
    @app.get('/page.js', include_in_schema=False)
    def page_js(): return Response((PAGE/'page.js').read_text(), media_type='text/javascript')
    @app.get('/page.css', include_in_schema=False)
    def page_css(): return Response((PAGE/'page.css').read_text(), media_type='text/css')
    return app

def _overlay(learn, g:Gallery, im, label:str) -> str|None:
    "The similarity maps of `im` and the first enrolled image of `label` (its thumbnail), as a PNG data URL; None for a model without maps"
    from ..interpret.pairs import similarity_maps
    from ..interpret.show import show_pair_cam
    from ..inference import image_batch
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    thumbs = g.store.thumbnails(label, 1)
    if not thumbs: return None
    ref = Image.open(io.BytesIO(thumbs[0][1])); ref.load()
    try:
        with g._encoding:
            pm = similarity_maps(learn, [im], [ref])
            x = image_batch(learn.dls, [im, ref])
        fig = show_pair_cam(x[0], x[1], pm.a[0], pm.b[0], float(pm.score[0]))[0].figure
    except (TypeError, ValueError, RuntimeError, NotImplementedError, AttributeError):
        return None
    buf = io.BytesIO(); fig.savefig(buf, format='png', bbox_inches='tight', dpi=80); plt.close(fig)
    return f'data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'

ENV = 'FEWSHOT_SERVE'

def app_from_env():
    "The app `fewshot-fastai serve` asks uvicorn for (one per worker process), from the JSON in $FEWSHOT_SERVE"
    import torch
    cfg = json.loads(os.environ[ENV])
    torch.set_num_threads(cfg.pop('threads'))
    return create_app(cfg.pop('model'), cfg.pop('gallery'), **cfg)
