"""Pair verification accuracy of the `pairs` recipe on unseen Omniglot characters after a short CPU training run.
Usage: python bench/siamese_verification.py [--train background_small1] [--set head=l1] [--epochs 12]
Prints the training log and, on its last line, one JSON object."""
import argparse, json, os, warnings
import torch
import fewshot_fastai as ff

p = argparse.ArgumentParser(description=__doc__)
p.add_argument('--train', default='background_small1')
p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', dest='overrides', help='a recipe parameter')
p.add_argument('--epochs', type=int, default=None, help="default: the recipe's")
p.add_argument('--record', action='store_true', help="write the figure to the recipe's measured.json (run with the defaults)")
a = p.parse_args()
warnings.filterwarnings('ignore', category=FutureWarning)
params = ff.recipes.overrides('pairs', a.overrides) | ({'epochs': a.epochs} if a.epochs else {})
r = ff.recipe('pairs')
learn = r(ff.omniglot(a.train), quiet=False, **params)
stats = dict(train=a.train, recipe='pairs', params=r.settings(params),
             **learn.model_config.stats, torch_threads=torch.get_num_threads(), cpus=os.cpu_count(), version=ff.__version__)
print(json.dumps(stats))
if a.record:
    ff.recipes.record_figure('pairs', f"{100*stats['verification_accuracy']:.1f}% pair verification accuracy on "
                             f"{stats['held_out_classes']} Omniglot characters unseen in training ({stats['valid_pairs']} fixed pairs), "
                             f"after {stats['train_seconds']:.0f} s of training on {os.cpu_count()} CPU cores", 'python bench/siamese_verification.py')
