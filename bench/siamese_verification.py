"""Pair verification accuracy on unseen Omniglot characters after a short CPU training run.
Usage: python bench/siamese_verification.py [--head contrastive] [--epochs 10] [--size 28]
Prints the training log and, on its last line, one JSON object."""
import argparse, json, os, warnings
import torch
import fewshot_fastai as ff
from fewshot_fastai.recipes import omniglot_verification

p = argparse.ArgumentParser(description=__doc__)
p.add_argument('--train', default='background_small1')
p.add_argument('--head', default='contrastive', choices=['contrastive', 'l1', 'concat'])
p.add_argument('--arch', default='conv4')
p.add_argument('--size', type=int, default=28)
p.add_argument('--epochs', type=int, default=10)
p.add_argument('--lr', type=float, default=3e-3)
p.add_argument('--bs', type=int, default=64)
p.add_argument('--no-augment', action='store_true')
a = p.parse_args()
warnings.filterwarnings('ignore', category=FutureWarning)
learn, stats = omniglot_verification(a.train, a.size, a.head, a.arch, a.epochs, a.lr, a.bs, augment=not a.no_augment, quiet=False)
stats.update(torch_threads=torch.get_num_threads(), cpus=os.cpu_count(), version=ff.__version__)
print(json.dumps(stats))
