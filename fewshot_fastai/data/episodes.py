"""N-way K-shot episodes over any labelled set of images (easyfsl-style contract: the sampler needs only
labels, plus optional groups and drawers), including Lake-style within-alphabet, cross-drawer episodes."""
import random
from dataclasses import dataclass
from pathlib import Path
from .._checks import check_int

__all__ = ['Episode', 'EpisodeSampler']

@dataclass
class Episode:
    "Indices into the dataset: `support` (N*K, class-major) and `query` (N*Q); labels are 0..N-1 within the episode"
    classes: list        # the N dataset labels, in episode order
    support: list        # dataset indices of the N*K support images, class-major
    support_labels: list # their episode labels, 0..N-1
    query: list          # dataset indices of the N*Q query images
    query_labels: list   # their episode labels, 0..N-1
    @property
    def n_way(self): return len(self.classes)
    @property
    def k_shot(self): return len(self.support)//len(self.classes)

class EpisodeSampler:
    """Samples N-way K-shot Q-query episodes from `labels` (one per image). With `groups` (label -> group,
    e.g. `alphabet_of`), all N classes of an episode come from one group; with `drawers` (one per image), the
    K support images come from K drawers and the queries from Q other drawers, the same drawers for every
    class of the episode (as in Lake et al.'s one-shot runs). `seed` fixes the episodes (`episodes()` then
    always returns the same list); `seed=None` gives fresh ones at every iteration."""
    def __init__(
        self,
        labels, # class of every image
        n_way:int=5, # classes per episode
        k_shot:int=1, # support images per class
        n_query:int=1, # query images per class
        n_episodes:int=100, # episodes per epoch (fixed ones when `seed` is given)
        seed:int|None=None, # fixed episodes drawn with this seed; None: fresh ones each time
        groups=None, # label -> group (e.g. `alphabet_of`): all classes of an episode from one group
        drawers=None, # drawer of each image: support from one drawer, queries from another (Lake's protocol)
        names=None, # class names, for error messages
    ):
        for arg, v, low in [('n_way', n_way, 2), ('k_shot', k_shot, 1), ('n_query', n_query, 1), ('n_episodes', n_episodes, 1)]:
            check_int('EpisodeSampler', arg, v, low)
        self.n_way, self.k_shot, self.n_query, self.n_episodes, self.seed = n_way, k_shot, n_query, n_episodes, seed
        self.drawers, self.names = (None if drawers is None else list(drawers)), names
        by_class = {}
        for i, l in enumerate(labels): by_class.setdefault(l, []).append(i)
        self.by_class = by_class
        name = (lambda l: names[l]) if names is not None else str
        need = k_shot + n_query
        small = [l for l, idx in by_class.items() if len(idx) < need]
        if small: raise ValueError(f'class {name(small[0])!r} has {len(by_class[small[0]])} images, fewer than '
                                   f'k_shot + n_query = {need}' + (f' ({len(small)} such classes)' if len(small) > 1 else ''))
        all_pools = {}
        for l in by_class: all_pools.setdefault(groups(name(l)) if groups else None, []).append(l)
        self.pools = {g: sorted(ls) for g, ls in all_pools.items() if len(ls) >= n_way}
        if not self.pools:
            where = 'in any one group' if groups else 'in the dataset'
            raise ValueError(f'n_way={n_way} exceeds the {max(map(len, all_pools.values()))} classes available {where}')
        if self.drawers is not None:
            for g, ls in self.pools.items():
                common = set.intersection(*({self.drawers[i] for i in by_class[l]} for l in ls))
                if len(common) < need:
                    raise ValueError(f'the classes of group {g!r} share {len(common)} drawers, fewer than '
                                     f'k_shot + n_query = {need}')

    def _episode(self, rng:random.Random) -> Episode:
        classes = rng.sample(self.pools[rng.choice(sorted(self.pools, key=str))], self.n_way)
        sup, qry = [], []
        if self.drawers is not None:
            common = set.intersection(*({self.drawers[i] for i in self.by_class[c]} for c in classes))
            ds = rng.sample(sorted(common), self.k_shot + self.n_query)
            for c in classes:
                by_drawer = {self.drawers[i]: i for i in self.by_class[c]}
                sup.append([by_drawer[d] for d in ds[:self.k_shot]]); qry.append([by_drawer[d] for d in ds[self.k_shot:]])
            return self._make(classes, sup, qry)
        for c in classes:
            idx = rng.sample(self.by_class[c], self.k_shot + self.n_query)
            sup.append(idx[:self.k_shot]); qry.append(idx[self.k_shot:])
        return self._make(classes, sup, qry)

    def _make(self, classes, sup, qry) -> Episode:
        return Episode(classes, [i for s in sup for i in s], [j for j, s in enumerate(sup) for _ in s],
                       [i for q in qry for i in q], [j for j, q in enumerate(qry) for _ in q])

    def episodes(self) -> list[Episode]:
        "`n_episodes` episodes: the same ones at every call when `seed` is set"
        rng = random.Random(self.seed) if self.seed is not None else random.Random()
        return [self._episode(rng) for _ in range(self.n_episodes)]

    def __iter__(self): return iter(self.episodes())
    def __len__(self): return self.n_episodes
