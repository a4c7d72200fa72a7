"""Few-shot classifiers side by side with easyfsl's own implementations, in one run: the same frozen features (the
`drawings` model's embeddings of Omniglot's 3 unseen alphabets), the same within-alphabet episodes, for every method
both libraries have (prototypes, SimpleShot, BD-CSPN, PT-MAP); then every method of ours on those episodes.

easyfsl (1.5.0) is a bench-only peer: `pip install --no-deps --target DIR easyfsl==1.5.0` and `PYTHONPATH=DIR`; without
it the peer rows are skipped (and say so). Its classifiers take a backbone; here `nn.Identity()` on the features.
SimpleShot is compared with the same centre for both (the training set's mean embedding, as its paper: easyfsl's
`feature_centering` + L2 `feature_normalization`, our `SimpleShot.mean`). Accuracy: mean of episode accuracies with the
95% interval (`ff.evaluate.interval95`); time: ms per episode (support set processed + queries scored). Last line JSON."""
import argparse, json, time, warnings
import numpy as np
import torch

def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='out/drawings_small1', help='the drawings model folder (python bench/omniglot_oneshot.py --save DIR)')
    p.add_argument('--settings', nargs='+', default=['20x1', '5x5'], help='N-way x K-shot')
    p.add_argument('--episodes', type=int, default=100, help='per unseen alphabet')
    p.add_argument('--n-query', type=int, default=5)
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)

def easyfsl_classifiers(centre):
    "easyfsl's classifiers of the methods we share, or {} when it is not installed"
    try: from easyfsl.methods import PrototypicalNetworks, SimpleShot, BDCSPN, PTMAP
    except ImportError: return {}
    from torch import nn
    return {'prototype': lambda: PrototypicalNetworks(nn.Identity()),
            'simpleshot': lambda: SimpleShot(nn.Identity(), feature_centering=centre, feature_normalization=2),
            'bd-cspn': lambda: BDCSPN(nn.Identity()), 'pt-map': lambda: PTMAP(nn.Identity())}

def run_ours(name, sim, centre, s, sl, q, n):
    import fewshot_fastai as ff
    clf = ff.methods.create_method(name, sim)
    if name == 'simpleshot': clf.mean = centre
    return clf.process_support_set(s, sl, n)(q)

def run_peer(make, s, sl, q, n):
    clf = make()
    clf.process_support_set(s, sl)
    return clf(q)

def main(argv=None):
    a = parse(argv)
    warnings.filterwarnings('ignore')
    import fewshot_fastai as ff
    torch.manual_seed(a.seed)
    learn = ff.load_model(a.model)
    sim = lambda x, y: ff.inference.similarity(learn, x, y)
    centre = ff.embed(learn, ff.ClassFolder(ff.omniglot('background_small1')).images).mean(0)   # the training set's mean
    alph = ff.evaluate.unseen_alphabets(['background_small1'])
    feats = {name: (ff.embed(learn, cf.images), cf.labels) for name, cf in alph.items()}
    peers = easyfsl_classifiers(centre)
    print('easyfsl:', 'installed' if peers else 'not installed (peer rows skipped)', flush=True)
    out = dict(model=a.model, episodes_per_alphabet=a.episodes, n_query=a.n_query, peer='easyfsl 1.5.0' if peers else None, rows=[])
    for setting in a.settings:
        n_way, k_shot = map(int, setting.split('x'))
        episodes = []
        for name, (e, labels) in feats.items():
            for ep in ff.data.EpisodeSampler(labels, min(n_way, len(set(labels))), k_shot, a.n_query, a.episodes, seed=a.seed).episodes():
                episodes.append((e[ep.support], torch.tensor(ep.support_labels), e[ep.query], torch.tensor(ep.query_labels), ep.n_way))
        runners = [(m, 'ours', lambda s, sl, q, n, m=m: run_ours(m, sim, centre, s, sl, q, n)) for m in ff.methods.list_methods()]
        runners += [(m, 'easyfsl', lambda s, sl, q, n, mk=mk: run_peer(mk, s, sl, q, n)) for m, mk in peers.items()]
        for m, who, fn in sorted(runners, key=lambda r: (r[0], r[1] != 'ours')):
            accs, t = [], time.perf_counter()
            with torch.no_grad():
                for s, sl, q, ql, n in episodes: accs.append(float((fn(s, sl, q, n).argmax(1) == ql).float().mean()))
            ms = 1000*(time.perf_counter() - t)/len(episodes)
            mean, half = ff.evaluate.interval95(accs)
            row = dict(setting=setting, method=m, by=who, accuracy=round(100*mean, 2), ci95=round(100*half, 2), ms_per_episode=round(ms, 2))
            out['rows'].append(row)
            print(f'{setting} {m:12s} {who:8s} {100*mean:6.2f}% +- {100*half:.2f}  {ms:7.2f} ms/episode', flush=True)
    print(json.dumps(out))

if __name__ == '__main__': main()
