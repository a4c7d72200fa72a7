"""Trains learner kinds one after the other, a few batches each, under `learn.distrib_ctx(cpu=True)`; launched by
tests/distrib/test_ddp.py with `torchrun --nproc_per_node 2` (gloo, 127.0.0.1): one launch for every kind. Each rank
saves each kind's final weights, the batches it trained on and its N-way column to OUT/KIND/rank{R}.pt.
Usage: worker.py KINDS DATA OUT   (KINDS: comma-separated of siamese | episodic | classifier | dcgan | oneshot;
siamese-nocpu: launched without `cpu=True`, which must fail with a clear message)"""
import sys, warnings
warnings.filterwarnings('ignore')
from pathlib import Path
import torch
from fastai.callback.core import Callback
from fastai.distributed import *  # noqa: F401,F403  patches Learner.distrib_ctx
from fastai.torch_core import rank_distrib, num_distrib, set_seed
from fastai.vision.all import Resize, PILImageBW
import fewshot_fastai as ff

class Batches(Callback):
    "A fingerprint of every training batch this rank saw"
    order = 100
    def before_fit(self): self.seen = []
    def before_batch(self):
        if self.training: self.seen.append(float(self.learn.xb[0].float().sum()))

def build(kind, data):
    "The learner and, for N-way kinds, the NWayEval callback: the same construction in every process"
    set_seed(0)
    if kind == 'siamese':
        dls = ff.SiameseDataLoaders.from_folder(data, valid_pct=0.25, seed=0, item_tfms=Resize(28), bs=16,
                                                img_cls=PILImageBW, num_workers=0)
        unseen = dls.class_folder.subset(lambda c: c in set(dls.valid_classes))
        nway = ff.NWayEval(unseen.images, unseen.labels, n_way=3, n_episodes=6, seed=0)
        return ff.siamese_learner(dls, ff.models.conv4, head='contrastive', cbs=nway), nway
    if kind == 'episodic':
        cf = ff.ClassFolder(data)
        dls = ff.EpisodeDataLoaders.from_class_folder(cf, size=28, img_cls=PILImageBW, valid_pct=0.25, n_way=3, n_query=2,
                                                      episodes_per_epoch=8, valid_episodes=4)
        unseen = cf.subset(lambda c: c in set(dls.valid_classes))
        nway = ff.NWayEval(unseen.images, unseen.labels, n_way=3, n_episodes=6, seed=0)
        return ff.episodic_learner(dls, 'conv4', cbs=nway), nway
    if kind == 'classifier':   # classifier pre-training: the episode temperature is idle, DDP must allow it
        cf = ff.ClassFolder(data)
        dls = ff.ClassifierDataLoaders.from_class_folder(cf, size=28, bs=16, img_cls=PILImageBW, valid_pct=0.25,
                                                         valid_n_way=3, n_query=2, valid_episodes=4, rotations=4)
        unseen = cf.subset(lambda c: c in set(dls.valid_classes))
        nway = ff.NWayEval(unseen.images, unseen.labels, n_way=3, n_episodes=6, seed=0)
        return ff.classifier_learner(dls, 'conv4', cbs=nway), nway
    if kind == 'dcgan':
        dls = ff.GANDataLoaders.from_folder(data, size=32, invert=True, max_images=128, bs=16)
        torch.manual_seed(0)
        return ff.dcgan_learner(dls, ff.gan.dcgan_generator(32, 1, nf=8), ff.gan.dcgan_critic(32, 1, nf=8)), None
    if kind == 'oneshot':   # the new GAN parts: hinge loss, spectral-norm pair critic, DiffAugment, the generator's average
        dls = ff.OneShotDataLoaders.from_folder(data, size=32, invert=True, bs=16, n_valid=16)
        torch.manual_seed(0)
        return ff.oneshot_learner(dls, nf=8), None
    raise ValueError(kind)

def run(kind, data, out):
    "Train `kind` under DDP and save what the test compares to OUT/KIND/rank{R}.pt"
    learn, nway = build(kind.removesuffix('-nocpu'), data)
    rec = Batches()
    learn.add_cb(rec)
    # '-nocpu': launched as a user would on CPU without telling accelerate; must fail with a clear message
    ctx = learn.distrib_ctx() if kind.endswith('-nocpu') else learn.distrib_ctx(cpu=True, sync_bn=False)
    with learn.no_bar(), ctx: learn.fit(2, 1e-3)
    res = dict(rank=rank_distrib(), world=num_distrib(), state={k: v.detach().clone() for k, v in learn.model.state_dict().items()},
               seen=rec.seen, wrapped_type=type(learn.model).__name__,
               thresh=(getattr(learn.loss_func, 'thresh', None), getattr(learn.loss_func, 'scale', None)))
    if nway is not None: res.update(nway=nway.last['accuracy'], episodes=[(e.support, e.query) for e in nway.episodes])
    if getattr(learn, 'gen_ema', None) is not None: res['ema'] = {k: v.detach().clone() for k, v in learn.gen_ema.state_dict().items()}
    (out/kind).mkdir(parents=True, exist_ok=True)
    torch.save(res, out/kind/f'rank{rank_distrib()}.pt')

if __name__ == '__main__':
    kinds, data, out = sys.argv[1].split(','), Path(sys.argv[2]), Path(sys.argv[3])
    for kind in kinds: run(kind, data, out)
