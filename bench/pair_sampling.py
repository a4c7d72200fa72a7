"""Pair sampling speed on the full Omniglot background layout (964 characters x 20 drawers).
The folder is made from the shared `background_small1` images (each of its 136 characters copied into ~7
character folders), written to a temporary folder and removed at the end.
Usage: python bench/pair_sampling.py [--classes 964] [--draws 50000]
Prints pairs/s of the `PairSampler` draw alone (`encodes`) and of whole training items through the DataLoader's
item transforms (PairSampler + Resize(28) + ToTensor); last line JSON."""
import argparse, json, os, random, shutil, tempfile, time, warnings
from pathlib import Path
import fewshot_fastai as ff
from fastai.vision.all import Resize, PILImageBW

p = argparse.ArgumentParser(description=__doc__)
p.add_argument('--classes', type=int, default=964)
p.add_argument('--draws', type=int, default=50_000)
p.add_argument('--items', type=int, default=5_000)
a = p.parse_args()
warnings.filterwarnings('ignore')

src = Path(ff.omniglot('background_small1'))
chars = sorted({f.parent for f in src.rglob('*.png')})
tmp = Path(tempfile.mkdtemp(prefix='pairs964_'))
try:
    for k in range(a.classes):
        c = chars[k % len(chars)]
        out = tmp/f'{c.parent.name}_{k//len(chars)}'/c.name; out.mkdir(parents=True)
        for f in sorted(c.glob("*.png")): shutil.copyfile(f, out/f.name)
    t = time.time()
    dls = ff.SiameseDataLoaders.from_folder(tmp, valid_pct=0.2, seed=0, item_tfms=Resize(28), img_cls=PILImageBW,
                                            bs=64, num_workers=0)
    build_s = time.time() - t
    s = ff.data.pairs.find_pair_sampler(dls)
    train = [int(i) for i in dls.train.dataset.items]
    rng = random.Random(0)
    anchors = [train[rng.randrange(len(train))] for _ in range(a.draws)]
    t = time.time()
    for i in anchors: s.encodes([i])
    draw_rate = a.draws/(time.time() - t)
    dl = dls.train
    t = time.time()
    for k in range(a.items): dl.after_item(dl.do_item(rng.randrange(len(train))))   # positions in the training subset
    item_rate = a.items/(time.time() - t)
    res = dict(classes=len(dls.class_folder.classes), images=len(dls.class_folder), train_images=len(train),
               dls_build_seconds=round(build_s, 1), sampler_pairs_per_s=round(draw_rate), items_per_s=round(item_rate))
    print(f"{res['classes']} classes, {res['images']} images: sampler {res['sampler_pairs_per_s']} pairs/s, "
          f"whole items (sampler + Resize + ToTensor) {res['items_per_s']} pairs/s; DataLoaders built in {build_s:.1f}s")
    print(json.dumps(res))
finally: shutil.rmtree(tmp, ignore_errors=True)
