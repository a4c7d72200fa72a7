"""Training throughput of a siamese or episodic learner, in one process or in each of the processes of
`torchrun --nproc_per_node N` (through fastai's `learn.distrib_ctx(cpu=True)` on CPU). Used by bench/scale.py.
Usage: [torchrun --nproc_per_node 2] bench/scale_train.py KIND DATA [--epochs 3]; rank 0 prints one JSON line."""
import argparse, json, sys, time, warnings
warnings.filterwarnings('ignore')
import torch
from fastai.callback.core import Callback
from fastai.distributed import *  # noqa: F401,F403
from fastai.torch_core import rank_distrib, num_distrib, set_seed
from fastai.vision.all import Resize, PILImageBW
import fewshot_fastai as ff

class TrainClock(Callback):
    "Seconds and images of each training phase (validation excluded)"
    order = 100
    def before_fit(self): self.times, self.items = [], []
    def before_train(self): self.t, self.n = time.perf_counter(), 0
    def after_batch(self):
        if self.training: self.n += sum(len(t) for t in self.learn.xb if t.ndim == 4)   # images: both of a pair, all of an episode
    def after_train(self): self.times.append(time.perf_counter() - self.t); self.items.append(self.n)

def build(kind, data, size=28, arch='conv4', bs=64, n_way=20, workers=0):
    set_seed(0)
    if kind == 'siamese':
        dls = ff.SiameseDataLoaders.from_folder(data, valid_pct=0.2, seed=0, item_tfms=Resize(size), bs=bs,
                                                img_cls=PILImageBW, num_workers=workers)
        return ff.siamese_learner(dls, arch, head='contrastive')
    cf = ff.ClassFolder(data)
    dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=size, img_cls=PILImageBW, valid_pct=0.2, n_way=n_way, n_query=5,
                                                  episodes_per_epoch=40, valid_episodes=5)
    return ff.episodic_learner(dls, arch)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('kind', choices=['siamese', 'episodic']); p.add_argument('data'); p.add_argument('--epochs', type=int, default=3)
    a = p.parse_args()
    learn = build(a.kind, a.data)
    clock = TrainClock(); learn.add_cb(clock)
    if num_distrib() > 1:
        with learn.no_bar(), learn.no_logging(), learn.distrib_ctx(cpu=True, sync_bn=False): learn.fit(a.epochs, 1e-3)
    else:
        with learn.no_bar(), learn.no_logging(): learn.fit(a.epochs, 1e-3)
    # all epochs but the first (warm-up); images counted on this rank, summed over ranks
    secs, items = sum(clock.times[1:]), torch.tensor(float(sum(clock.items[1:])))
    if num_distrib() > 1: torch.distributed.all_reduce(items)
    if rank_distrib() == 0:
        print(json.dumps(dict(kind=a.kind, processes=max(1, num_distrib()), seconds=round(secs, 2), images=int(items),
                              images_per_s=round(float(items)/secs, 1), threads_per_process=torch.get_num_threads())))
