"""Fixtures of the serving tests: two small seeded model folders (episodic and pair) on real Omniglot characters,
their characters' files, and `Server`: `fewshot-fastai serve` in a real subprocess on 127.0.0.1."""
import os, signal, socket, subprocess, sys, time
from pathlib import Path
import pytest

def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

class Server:
    "`fewshot-fastai serve MODEL --gallery G ARGS` on a free port; `url`; stopped (SIGTERM, then SIGKILL) on exit"
    def __init__(self, model, gallery, *args, timeout=90):
        import httpx
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.log = Path(gallery).with_suffix(f'.{self.port}.log')
        self.proc = subprocess.Popen([sys.executable, '-m', 'fewshot_fastai', 'serve', str(model), '--gallery', str(gallery),
                                      '--port', str(self.port), *map(str, args)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, 'w'), start_new_session=True)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None: raise RuntimeError(f'the server exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}')
            try:
                if httpx.get(self.url + '/healthz', timeout=2).status_code == 200: return
            except httpx.HTTPError: pass
            time.sleep(0.3)
        self.stop(); raise RuntimeError(f'the server did not answer in {timeout} s: {self.log.read_text()[-2000:]}')

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try: self.proc.wait(20)
            except subprocess.TimeoutExpired: os.killpg(self.proc.pid, signal.SIGKILL); self.proc.wait(10)
    def __enter__(self): return self
    def __exit__(self, *a): self.stop()

@pytest.fixture(scope='module')
def chars(omni_small) -> dict:
    "{label: 6 image files} of 8 real Omniglot characters; labels without '/'"
    import fewshot_fastai as ff
    cf = ff.ClassFolder(omni_small)
    return {c.replace('/', '-'): cf.files_of(c)[:6] for c in cf.classes[:8]}

@pytest.fixture(scope='module')
def episodic_model(omni_small, tmp_path_factory) -> Path:
    "An untrained seeded Conv4 prototypical model folder (28x28 grey)"
    import fewshot_fastai as ff
    from fastai.vision.all import PILImageBW, set_seed
    set_seed(0)
    dls = ff.EpisodeDataLoaders.from_class_folder(ff.ClassFolder(omni_small), size=28, img_cls=PILImageBW, valid_pct=0.25,
                                                  n_way=3, n_query=2, episodes_per_epoch=2, valid_episodes=1)
    return ff.save_model(ff.episodic_learner(dls, 'conv4'), tmp_path_factory.mktemp('models')/'episodic')

@pytest.fixture(scope='module')
def pair_model(omni_dls, tmp_path_factory) -> Path:
    "An untrained seeded Conv4 siamese model folder with the contrastive head"
    import fewshot_fastai as ff
    from fastai.vision.all import set_seed
    set_seed(0)
    return ff.save_model(ff.siamese_learner(omni_dls, 'conv4', head='contrastive'), tmp_path_factory.mktemp('models')/'pairs')

@pytest.fixture(scope='session')
def Serve():
    "The `Server` class: `with Serve(model, gallery, *flags) as s: ...`"
    return Server
