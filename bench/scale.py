"""Scale-out benchmark (2-core CPU unless a GPU is present). Parts:
  loading: a synthetic folder-per-class dataset of --images RGB 224 px JPEGs made from the shared Omniglot images
           (a few hundred distinct files, hard-linked into 2,500 classes x 20), written to a temp folder and removed
           at the end; eager vs lazy ClassFolder with 0 and 2 DataLoader workers, each in a fresh process: time to
           the first batch of pairs, peak memory of the process tree (proportional set size, PSS: the main process
           plus its DataLoader workers, shared pages split between them; sampled every 0.1 s) and images/s over
           --batches batches.
  loop:    our fastai training loop against a plain PyTorch loop over the same model, DataLoader and optimizer
           (Adam, same settings), siamese and episodic, interleaved epochs, medians of the per-epoch ratios.
  gpu:     single-GPU training throughput (images/s, training phase only) in float32, with `to_fp16()` and with
           `to_bf16()`, siamese and episodic, for the small Conv4 set-up of `procs` (28 px) and a larger one
           (ResNet-12 at 84 px); needs CUDA.
  procs:   training throughput with 1 vs 2 processes (torchrun, gloo, fastai's distrib_ctx) on this machine.
           On 2 cores this measures the overhead of distribution, not a speed-up.
Usage: python bench/scale.py [--part all|loading|loop|procs|gpu] [--images 50000]; last line: one JSON object."""
import argparse, json, os, shutil, socket, statistics, subprocess, sys, tempfile, threading, time, warnings
from pathlib import Path

HERE = Path(__file__).parent

def make_folder(root:Path, n_images:int, per_class:int=20, distinct:int=400) -> Path:
    "RGB 224 px JPEGs made from the shared Omniglot images, tinted; `distinct` files hard-linked into the rest"
    import numpy as np
    from PIL import Image
    import fewshot_fastai as ff
    src = sorted(Path(ff.omniglot('background_small1')).rglob('*.png'))[:distinct]
    rng = np.random.default_rng(0)
    base = root/'_distinct'; base.mkdir(parents=True)
    made = []
    for i, f in enumerate(src):
        g = np.asarray(Image.open(f).convert('L').resize((224, 224)), dtype=np.float32)/255
        tint = rng.uniform(0.2, 1.0, 3)
        rgb = (g[..., None]*tint + (1 - g[..., None])*rng.uniform(0, 0.3, 3))*255
        out = base/f'{i:04d}.jpg'; Image.fromarray(rgb.astype(np.uint8)).save(out, quality=90); made.append(out)
    for k in range(n_images):
        d = root/f'class{k//per_class:05d}'
        if k % per_class == 0: d.mkdir()
        os.link(made[k % len(made)], d/f'{k:06d}.jpg')
    shutil.rmtree(base)
    return root

def _tree_pss(pid:int) -> int:
    "Proportional set size of a process and its children (DataLoader workers): shared pages counted once in all"
    import psutil
    try:
        p = psutil.Process(pid)
        return sum(q.memory_full_info().pss for q in [p, *p.children(recursive=True)])
    except psutil.Error: return 0

def loading_child(folder:str, lazy:bool, workers:int, batches:int):
    "Runs in a fresh process: build pair DataLoaders, time the first batch and `batches` more; print JSON"
    import psutil
    from fastai.vision.all import Resize
    import fewshot_fastai as ff
    peak, stop = [0], threading.Event()
    def sample():
        while not stop.is_set(): peak[0] = max(peak[0], _tree_pss(os.getpid())); time.sleep(0.1)
    threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    cf = ff.ClassFolder(folder, lazy=lazy)
    dls = ff.SiameseDataLoaders.from_class_folder(cf, valid_pct=0.1, seed=0, item_tfms=Resize(224), bs=64, num_workers=workers)
    it = iter(dls.train)
    next(it)
    first = time.perf_counter() - t0
    t1, n = time.perf_counter(), 0
    for _ in range(batches): a, b, _y = next(it); n += len(a) + len(b)
    rate = n/(time.perf_counter() - t1)
    stop.set(); time.sleep(0.15)
    print(json.dumps(dict(lazy=lazy, workers=workers, images=len(cf), first_batch_s=round(first, 1),
                          peak_mem_gb=round(peak[0]/2**30, 2), images_per_s=round(rate, 1))))

def part_loading(a):
    tmp = Path(tempfile.mkdtemp(prefix='scale_'))
    try:
        t = time.perf_counter(); make_folder(tmp/'data', a.images)
        print(f'made {a.images} RGB 224 px images in {time.perf_counter() - t:.0f}s', flush=True)
        rows = []
        for lazy in (False, True):
            for workers in (0, 2):
                r = subprocess.run([sys.executable, __file__, '--child', str(tmp/'data'), str(int(lazy)), str(workers), str(a.batches)],
                                   capture_output=True, text=True, timeout=3600)
                line = [l for l in r.stdout.splitlines() if l.startswith('{')]
                if r.returncode or not line: raise RuntimeError(r.stderr[-3000:])
                rows.append(json.loads(line[-1])); print(rows[-1], flush=True)
        return dict(loading=rows)
    finally: shutil.rmtree(tmp, ignore_errors=True)

def _interleave(run_ours, run_plain, n):
    ours, plain = [], []
    run_ours(); run_plain()                               # warm-up
    for _ in range(n):
        t = time.perf_counter(); run_ours(); ours.append(time.perf_counter() - t)
        t = time.perf_counter(); run_plain(); plain.append(time.perf_counter() - t)
    return dict(ours_s=round(statistics.median(ours), 3), plain_s=round(statistics.median(plain), 3),
                ratio=round(statistics.median(o/p for o, p in zip(ours, plain)), 3))

def part_loop(a):
    "fastai's loop (training phase only) vs a plain PyTorch loop over the same model, DataLoader and optimizer"
    import copy, torch
    from fastai.callback.core import Callback
    from fastai.optimizer import Adam
    sys.path.insert(0, str(HERE))
    from scale_train import build
    import fewshot_fastai as ff
    class NoValidate(Callback):
        order = 100
        def before_validate(self):
            from fastai.callback.core import CancelValidException
            raise CancelValidException()
    res = {}
    for kind in ('siamese', 'episodic'):
        learn = build(kind, ff.omniglot('background_small1'))
        learn.opt_func, learn.wd = Adam, 0.
        learn.add_cb(NoValidate())
        model = copy.deepcopy(learn.model)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99), eps=1e-5)   # fastai's Adam defaults
        loss_func, dl = learn.loss_func, learn.dls.train
        def plain():
            model.train()
            for b in dl:
                *xb, y = (t.as_subclass(torch.Tensor) for t in b)   # plain tensors, as a plain PyTorch loop has
                loss = loss_func(model(*xb), y)
                opt.zero_grad(); loss.backward(); opt.step()
        def ours():
            with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
        res[kind] = _interleave(ours, plain, a.loop_epochs)
        print(kind, res[kind], flush=True)
    return dict(loop=res)

def part_procs(a):
    import fewshot_fastai as ff
    data, out = str(ff.omniglot('background_small1')), {}
    for kind in ('siamese', 'episodic'):
        rows = []
        for n in (1, 2):
            cmd = [sys.executable, str(HERE/'scale_train.py'), kind, data]
            if n > 1:
                with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
                cmd = [str(Path(sys.executable).with_name('torchrun')), '--nproc_per_node', str(n), '--master_addr', '127.0.0.1',
                       '--master_port', str(port), *cmd[1:]]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
            line = [l for l in r.stdout.splitlines() if l.startswith('{')]
            if r.returncode or not line: raise RuntimeError(r.stderr[-3000:])
            rows.append(json.loads(line[-1])); print(rows[-1], flush=True)
        out[kind] = dict(one=rows[0], two=rows[1], ratio_2_over_1=round(rows[1]['images_per_s']/rows[0]['images_per_s'], 3))
    return dict(procs=out, note='2 CPU cores: the ratio measures the cost of distribution, not a speed-up')

def part_gpu(a):
    "Single-GPU training throughput, float32 vs fastai's mixed precision (CUDA only: fastai's MixedPrecision needs it)"
    import torch
    if not torch.cuda.is_available(): return dict(gpu='no CUDA device')
    sys.path.insert(0, str(HERE))
    from scale_train import build, TrainClock
    import fewshot_fastai as ff
    data, rows = ff.omniglot('background_small1'), []
    setups = [dict(size=28, arch='conv4', bs=64, n_way=20), dict(size=84, arch='resnet12', bs=128, n_way=20)]
    for setup in setups:
        for kind in ('siamese', 'episodic'):
            for prec in ('fp32', 'to_fp16', 'to_bf16'):
                learn = build(kind, data, workers=4 if kind == 'siamese' else 0, **setup)
                if prec != 'fp32': learn = getattr(learn, prec)()
                clock = TrainClock(); learn.add_cb(clock)
                with learn.no_bar(), learn.no_logging(): learn.fit(a.gpu_epochs, 1e-3)
                torch.cuda.synchronize()
                secs, items = sum(clock.times[1:]), sum(clock.items[1:])   # the first epoch is warm-up
                rows.append(dict(kind=kind, arch=setup['arch'], size=setup['size'], precision=prec,
                                 images_per_s=round(items/secs, 1), final_loss=round(float(learn.recorder.losses[-1]), 4)))
                print(rows[-1], flush=True)
    return dict(gpu=rows, device=torch.cuda.get_device_name())

if __name__ == '__main__':
    warnings.filterwarnings('ignore')
    if len(sys.argv) > 1 and sys.argv[1] == '--child':
        loading_child(sys.argv[2], bool(int(sys.argv[3])), int(sys.argv[4]), int(sys.argv[5])); sys.exit()
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--part', default='all', choices=['all', 'loading', 'loop', 'procs', 'gpu'])
    p.add_argument('--images', type=int, default=50_000)
    p.add_argument('--batches', type=int, default=20)
    p.add_argument('--loop-epochs', type=int, default=5)
    p.add_argument('--gpu-epochs', type=int, default=3)
    a = p.parse_args()
    import torch
    res = dict(cpus=os.cpu_count(), cuda=torch.cuda.is_available())
    if a.part in ('all', 'loading'): res.update(part_loading(a))
    if a.part in ('all', 'loop'): res.update(part_loop(a))
    if a.part in ('all', 'procs'): res.update(part_procs(a))
    if a.part in ('all', 'gpu'): res.update(part_gpu(a))
    print(json.dumps(res))
