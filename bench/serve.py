"""Serving benchmark: `fewshot-fastai serve` (a real uvicorn on 127.0.0.1) under concurrent httpx clients.

Parts (`--part`, default all):
- `load`: classify requests/s and p50 / p99 latency, at each gallery size (`--sizes`) and number of workers
  (`--workers`). Galleries up to the real pool are real Omniglot drawings (background_small1 and 2, and their 90, 180
  and 270 degree rotations as further classes) embedded by the model; beyond it, synthetic classes: centres drawn
  from a Gaussian fitted to the real class means, each image a centre plus a real image's offset from its class mean.
  Queries are real drawings sent as PNG files. Above `--index-above` images the server searches a faiss index.
- `mixed`: `--mixed-seconds` of enrolments (new classes of 3 real drawings) and classifications at once against two
  workers, then a tally from the gallery file: every enrolment answered 201 present with its 3 images, none doubled.
- `index`: in-process, at the largest size: faiss flat (exact) / IVF / HNSW against the exact scan of every class
  (recall@1 of the answered label, ms per query, build seconds).
- `bandwidth`: the exact scan's GB/s (one query against every embedding, a matrix-vector product) against the
  machine's memory read bandwidth (a sum over the same array).

Every loop is bounded by a count and a time. Last line: one JSON object."""
import argparse, json, os, signal, socket, subprocess, sys, tempfile, threading, time, warnings
from pathlib import Path
import numpy as np

def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='out/drawings_small1', help='a model folder (`python bench/omniglot_oneshot.py --save DIR` makes the drawings one)')
    p.add_argument('--part', nargs='+', default=['bandwidth', 'index', 'load', 'mixed'], choices=['bandwidth', 'index', 'load', 'mixed'])
    p.add_argument('--sizes', type=int, nargs='+', default=[100, 10_000, 100_000, 1_000_000], help='gallery images')
    p.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    p.add_argument('--clients', type=int, default=4, help='concurrent client threads (one connection each)')
    p.add_argument('--requests', type=int, default=600, help='classify requests per measurement, at most')
    p.add_argument('--seconds', type=float, default=30., help='seconds per measurement, at most')
    p.add_argument('--index', default='ivf', choices=['flat', 'ivf', 'hnsw'], help="the server's index above --index-above")
    p.add_argument('--index-above', type=int, default=50_000)
    p.add_argument('--mixed-seconds', type=float, default=60.)
    p.add_argument('--queries', type=int, default=200, help='queries of the index part')
    p.add_argument('--hnsw-max', type=int, default=200_000, help='the index part builds HNSW only up to this many images (its build is slow)')
    p.add_argument('--work', default=None, help='folder for the gallery files (default: a temporary one)')
    p.add_argument('--startup-timeout', type=float, default=900.)
    return p.parse_args(argv)

# ---- data
def real_pool(learn):
    "(PNG bytes of each real drawing, its label, its embedding): both small background sets and their rotations"
    import io
    import fewshot_fastai as ff
    from PIL import Image
    cf = ff.ClassFolder(ff.omniglot('background_small1')).merge(ff.ClassFolder(ff.omniglot('background_small2')))
    files, labels = cf.files, cf.label_names()
    ims, lbls, pngs = [], [], []
    for deg in (0, 90, 180, 270):
        for f, l in zip(files, labels):
            im = Image.open(f).convert('L')
            if deg: im = im.rotate(deg)
            b = io.BytesIO(); im.save(b, 'PNG')
            ims.append(im); lbls.append(f'{l.replace("/", "-")}-r{deg}'); pngs.append(b.getvalue())
    t = time.time()
    emb = ff.embed(learn, ims).numpy().astype(np.float32)
    print(f'real pool: {len(ims)} drawings ({len(files)} files x 4 rotations) embedded in {time.time() - t:.0f} s, {emb.shape[1]}-d', flush=True)
    return pngs, lbls, emb

def synthetic(emb, labels, n, seed=0, per_class=20):
    "`n` synthetic embeddings in classes of `per_class`, shaped like the real ones (see the module's text)"
    rng = np.random.default_rng(seed)
    lab = np.asarray(labels)
    classes, codes = np.unique(lab, return_inverse=True)
    means = np.stack([emb[codes == c].mean(0) for c in range(len(classes))])
    resid = emb - means[codes]
    L = np.linalg.cholesky(np.cov(means, rowvar=False) + 1e-6*np.eye(emb.shape[1]))
    n_cls = -(-n // per_class)
    out, out_lbl = np.empty((n, emb.shape[1]), np.float32), []
    for start in range(0, n_cls, 10_000):   # in blocks: 1M x D at once is fine, the temporaries need not be
        k = min(10_000, n_cls - start)
        centres = means.mean(0) + rng.standard_normal((k, emb.shape[1])) @ L.T
        block = np.repeat(centres, per_class, 0) + resid[rng.integers(0, len(resid), k*per_class)]
        lo = start*per_class
        m = min(len(block), n - lo)
        out[lo:lo + m] = block[:m]
        out_lbl += [f'syn{start + j//per_class}' for j in range(m)]
    return out, out_lbl

def build_gallery(path, learn, pool, n):
    "A gallery file of `n` images: real ones first, synthetic beyond"
    import fewshot_fastai as ff
    pngs, lbls, emb = pool
    g = ff.Gallery(path, learn, index='none')
    if g.n_images == n: return g
    assert g.n_images == 0, f'{path}: holds {g.n_images} images, not {n}'
    t = time.time()
    r = min(n, len(emb))
    keys = [f'real{i}' for i in range(len(emb))]
    step = max(1, r // 50) if n <= len(emb) else 1   # a small gallery: drawings spread over many classes
    idx = (list(range(0, len(emb), step)) + [i for i in range(len(emb)) if i % step])[:r]
    g.add_embeddings([lbls[i] for i in idx], emb[idx], [keys[i] for i in idx])
    if n > r:
        syn, sl = synthetic(emb, lbls, n - r)
        for lo in range(0, len(syn), 100_000):
            g.add_embeddings(sl[lo:lo + 100_000], syn[lo:lo + 100_000], [f'syn{j}' for j in range(lo, min(lo + 100_000, len(syn)))])
    print(f'gallery {path.name}: {g.n_images} images, {len(g)} classes, built in {time.time() - t:.0f} s', flush=True)
    return g

# ---- the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

class Server:
    def __init__(self, model, gallery, workers, a):
        import httpx
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.log = Path(gallery).with_suffix(f'.{self.port}.log')
        t = time.time()
        self.proc = subprocess.Popen([sys.executable, '-m', 'fewshot_fastai', 'serve', str(model), '--gallery', str(gallery),
                                      '--port', str(self.port), '--workers', str(workers), '--index', a.index,
                                      '--index-above', str(a.index_above)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, 'w'), start_new_session=True)
        end = t + a.startup_timeout
        clients = [httpx.Client(base_url=self.url, timeout=a.startup_timeout) for _ in range(2*workers)]
        ready = set()
        while time.time() < end and len(ready) < len(clients):
            if self.proc.poll() is not None: raise RuntimeError(f'the server exited: {self.log.read_text()[-2000:]}')
            for i, c in enumerate(clients):   # each connection's worker loads the gallery (and builds its index) on its first answer
                if i in ready: continue
                try:
                    if c.get('/healthz').status_code == 200: ready.add(i)
                except httpx.HTTPError: time.sleep(0.5)
        for c in clients: c.close()
        if len(ready) < len(clients): self.stop(); raise RuntimeError(f'the server did not answer in {a.startup_timeout} s')
        self.startup = time.time() - t

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try: self.proc.wait(30)
            except subprocess.TimeoutExpired: os.killpg(self.proc.pid, signal.SIGKILL); self.proc.wait(10)

def hammer(url, pngs, a, seed=0):
    "`a.clients` threads posting /classify until `a.requests` answers or `a.seconds` -> figures"
    import httpx
    rng = np.random.default_rng(seed)
    order = rng.integers(0, len(pngs), a.requests + 8*a.clients)
    lat, errors, lock, nxt = [], [], threading.Lock(), iter(range(len(order)))
    def client(warm):
        with httpx.Client(base_url=url, timeout=60) as c:
            for _ in range(3):   # warm-up: the connection, the worker's caches
                c.post('/classify', files={'image': ('q.png', pngs[order[warm]], 'image/png')})
            barrier.wait()
            while time.monotonic() < stop_at:
                with lock:
                    i = next(nxt, None)
                    if i is None or len(lat) >= a.requests: return
                t = time.perf_counter()
                try: r = c.post('/classify', files={'image': ('q.png', pngs[order[i]], 'image/png')})
                except httpx.HTTPError as e:
                    with lock: errors.append(type(e).__name__); continue
                dt = time.perf_counter() - t
                with lock:
                    if r.status_code == 200: lat.append(dt)
                    else: errors.append(r.status_code)
    barrier = threading.Barrier(a.clients + 1)
    stop_at = float('inf')
    ts = [threading.Thread(target=client, args=(w,)) for w in range(a.clients)]
    for t in ts: t.start()
    barrier.wait()
    t0 = time.monotonic(); stop_at = t0 + a.seconds
    for t in ts: t.join(a.seconds + 120)
    wall = time.monotonic() - t0
    lat = np.array(lat)*1000
    return dict(requests=len(lat), errors=len(errors), req_per_s=round(len(lat)/wall, 1),
                p50_ms=round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
                p99_ms=round(float(np.percentile(lat, 99)), 1) if len(lat) else None)

# ---- parts
def part_bandwidth(emb):
    import torch
    x = torch.from_numpy(np.ascontiguousarray(emb))
    q = x[:1].T.contiguous()
    gb = x.numel()*4/1e9
    def best(f, n=5):
        f(); ts = []
        for _ in range(n):
            t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
        return min(ts)
    scan = best(lambda: x @ q)
    read = best(lambda: x.sum())
    res = dict(array_gb=round(gb, 2), scan_gb_s=round(gb/scan, 1), scan_ms=round(scan*1000, 1), read_gb_s=round(gb/read, 1),
               threads=torch.get_num_threads())
    print(f'bandwidth: exact scan of {gb:.2f} GB (one query): {scan*1000:.1f} ms = {gb/scan:.1f} GB/s; '
          f'memory read (sum): {gb/read:.1f} GB/s; {torch.get_num_threads()} threads', flush=True)
    return res

def part_index(g, pool, a):
    "faiss flat / IVF / HNSW against the exact scan of every class, on the same queries"
    import fewshot_fastai as ff
    pngs, lbls, emb = pool
    rng = np.random.default_rng(1)
    q = emb[rng.choice(len(emb), a.queries, replace=False)]
    q = q + 0.3*np.std(q)*rng.standard_normal(q.shape).astype(np.float32)   # a new drawing is near, not on, an enrolled one
    exact = ff.Gallery(g.path, g.learn, index='none')
    t = time.time()
    truth = [r[0][0] for lo in range(0, len(q), 20) for r in exact.top(q[lo:lo + 20], k=1, embedded=True)]
    exact_ms = (time.time() - t)*1000/len(q)
    print(f'index: exact scan of every class, {g.n_images} images: {exact_ms:.0f} ms/query (batches of 20)', flush=True)
    res = dict(images=g.n_images, exact_ms_per_query=round(exact_ms, 1))
    for kind in ('flat', 'ivf', 'hnsw'):
        if kind == 'hnsw' and g.n_images > a.hnsw_max:
            print(f'  hnsw: skipped above --hnsw-max {a.hnsw_max}'); continue
        gi = ff.Gallery(g.path, g.learn, index=kind, index_above=1)
        t = time.time(); gi.snapshot(); build = time.time() - t
        ts, got = [], []
        for v in q:   # one query per call, as the server answers
            t = time.perf_counter(); got.append(gi.top(v[None], k=1, embedded=True)[0][0][0]); ts.append(time.perf_counter() - t)
        rec = float(np.mean([x == y for x, y in zip(got, truth)]))
        res[kind] = dict(recall_at_1=round(rec, 4), p50_ms=round(1000*float(np.median(ts)), 2), build_s=round(build, 1))
        print(f'  {kind}: recall@1 {rec:.4f} against the exact scan, p50 {1000*np.median(ts):.2f} ms/query, built in {build:.1f} s', flush=True)
        del gi
    return res

def part_load(a, learn, pool, work):
    rows = []
    for n in a.sizes:
        g = build_gallery(work/f'g{n}.db', learn, pool, n); g.close()
        for w in a.workers:
            s = Server(a.model, work/f'g{n}.db', w, a)
            try: r = hammer(s.url, pool[0][:4000] if n >= 10_000 else pool[0][::7], a)
            finally: s.stop()
            r.update(images=n, workers=w, startup_s=round(s.startup, 1), path='index' if n >= a.index_above else 'matrix')
            print(f'load: {n:>9,} images, {w} worker(s): {r["req_per_s"]} req/s, p50 {r["p50_ms"]} ms, p99 {r["p99_ms"]} ms '
                  f'({r["requests"]} answered, {r["errors"]} errors; {r["path"]}; ready in {r["startup_s"]} s)', flush=True)
            rows.append(r)
    return rows

def part_mixed(a, learn, pool, work):
    "Enrolments and classifications at once on a copy of the 10,000-image gallery, two workers, then the tally"
    import httpx, shutil, sqlite3
    src = work/'g10000.db'
    build_gallery(src, learn, pool, 10_000).close()
    path = work/'mixed.db'
    for suffix in ('', '-wal', '-shm'):
        if Path(f'{path}{suffix}').exists(): os.remove(f'{path}{suffix}')
    shutil.copy(src, path)
    pngs = pool[0]
    answered, refused, failed, lat_c, lock = {}, [], [], [], threading.Lock()
    s = Server(a.model, path, 2, a)
    stop_at = time.monotonic() + a.mixed_seconds
    def enrol(t):
        rng = np.random.default_rng(100 + t)
        with httpx.Client(base_url=s.url, timeout=60) as c:
            for n in range(100_000):
                if time.monotonic() >= stop_at: return
                label = f'mix-{t}-{n}'
                files = [('images', (f'{j}.png', pngs[j], 'image/png')) for j in rng.choice(len(pngs), 3, replace=False)]
                try: r = c.post(f'/classes/{label}/images', files=files)
                except httpx.HTTPError: failed.append(label); continue
                with lock:
                    if r.status_code == 201: answered[label] = r.json()['images']
                    else: refused.append((label, r.status_code))
    def classify(t):
        rng = np.random.default_rng(200 + t)
        with httpx.Client(base_url=s.url, timeout=60) as c:
            while time.monotonic() < stop_at:
                tt = time.perf_counter()
                r = c.post('/classify', files={'image': ('q.png', pngs[rng.integers(len(pngs))], 'image/png')})
                with lock:
                    if r.status_code == 200: lat_c.append(time.perf_counter() - tt)
                    else: refused.append(('classify', r.status_code))
    ts = [threading.Thread(target=enrol, args=(t,)) for t in range(2)] + [threading.Thread(target=classify, args=(t,)) for t in range(2)]
    try:
        for t in ts: t.start()
        for t in ts: t.join(a.mixed_seconds + 120)
    finally: s.stop()
    db = sqlite3.connect(path)
    rows = dict(db.execute("SELECT label, COUNT(*) FROM images WHERE label LIKE 'mix-%' GROUP BY label"))
    doubled = db.execute("SELECT COUNT(*) FROM (SELECT label, sha256 FROM images GROUP BY label, sha256 HAVING COUNT(*) > 1)").fetchone()[0]
    integrity = db.execute('PRAGMA integrity_check').fetchone()[0]
    lost = [l for l, n in answered.items() if rows.get(l) != n or n != 3]
    unanswered_present = [l for l in rows if l not in answered]
    lat = np.array(lat_c)*1000
    res = dict(seconds=a.mixed_seconds, enrolments_answered=len(answered), classifications=len(lat),
               classify_p50_ms=round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
               refused=len(refused), client_errors=len(failed), lost=len(lost), doubled=doubled,
               present_unanswered=len(unanswered_present), integrity=integrity, total_images=sum(rows.values()) + 10_000)
    print(f'mixed {a.mixed_seconds:.0f} s, 2 workers: {len(answered)} enrolments answered 201, {len(lat)} classifications '
          f'(p50 {res["classify_p50_ms"]} ms), refused {len(refused)}, client errors {len(failed)}; tally: lost {len(lost)}, '
          f'doubled {doubled}, present but unanswered {len(unanswered_present)}, integrity {integrity}', flush=True)
    return res

def main(argv=None):
    a = parse(argv)
    warnings.filterwarnings('ignore')
    import torch
    import fewshot_fastai as ff
    if not Path(a.model).is_dir():
        sys.exit(f'--model {a.model}: no such model folder (python bench/omniglot_oneshot.py --save {a.model} trains the drawings one)')
    learn = ff.load_model(a.model)
    tmp = None if a.work else tempfile.TemporaryDirectory(prefix='serve_bench_')
    work = Path(a.work or tmp.name); work.mkdir(parents=True, exist_ok=True)
    res = dict(model=str(a.model), recipe=learn.model_config.recipe, cpus=os.cpu_count(), clients=a.clients)
    pool = real_pool(learn)
    res['real_pool'] = len(pool[2])
    if 'bandwidth' in a.part or 'index' in a.part:
        big = build_gallery(work/f'g{max(a.sizes)}.db', learn, pool, max(a.sizes))
        if 'bandwidth' in a.part: res['bandwidth'] = part_bandwidth(big.snapshot().emb)
        if 'index' in a.part: res['index'] = part_index(big, pool, a)
        big.close(); del big
    if 'load' in a.part: res['load'] = part_load(a, learn, pool, work)
    if 'mixed' in a.part: res['mixed'] = part_mixed(a, learn, pool, work)
    print(json.dumps(res))

if __name__ == '__main__': main()
