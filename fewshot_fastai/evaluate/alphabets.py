"""Omniglot's within-alphabet protocol: the alphabets a training set lacks, and N-way 1-shot episodes inside each of
them with the support drawn by one person and the queries by another (Lake et al.'s one-shot runs)."""
from ..data.items import ClassFolder
from ..data.episodes import EpisodeSampler
from ..datasets.naming import alphabet_of, drawer_of
from ..datasets.sources import omniglot
from .episodes import episode_accuracy
from .intervals import interval95

__all__ = ['drawer_groups', 'unseen_alphabets', 'alphabet_episodes', 'within_alphabet_error']

SMALL_SETS = ('background_small1', 'background_small2')

def drawer_groups(
    cf:ClassFolder, # Omniglot classes (`Alphabet/characterNN`, files `NNNN_DD.png`)
) -> dict:
    "`EpisodeSampler` keywords for within-alphabet, cross-drawer episodes over `cf`: groups, drawers, names"
    return dict(groups=alphabet_of, drawers=[drawer_of(f) for f in cf.files], names=cf.classes)

def unseen_alphabets(
    train, # the Omniglot sets (names for `ff.omniglot`, or ClassFolders) a model was trained on
    among=SMALL_SETS, # the Omniglot sets to take the unseen alphabets from
) -> dict:
    "`{alphabet: ClassFolder}`: every alphabet of the sets `among` that no set of `train` holds, in name order"
    as_cf = lambda s, **kw: s if isinstance(s, ClassFolder) else ClassFolder(omniglot(s), **kw)
    seen = {alphabet_of(c) for s in train for c in as_cf(s, decode=False).classes}
    out = {}
    for s in among:
        cf = as_cf(s)
        for a in sorted({alphabet_of(c) for c in cf.classes} - seen - set(out)):
            out[a] = cf.subset(lambda c, a=a: alphabet_of(c) == a)
    return dict(sorted(out.items()))

def alphabet_episodes(
    cf:ClassFolder, # the classes of one alphabet (or several: each episode stays inside one)
    n_way:int=20, # classes per episode (fewer when the alphabet has fewer: Tagalog has 17)
    n_episodes:int=100, # episodes
    seed:int=0, # seed of the episodes
    k_shot:int=1, # support drawings per class
    n_query:int=1, # query drawings per class
) -> list:
    "Within-alphabet, cross-drawer N-way K-shot episodes over `cf`; N is `n_way` or the alphabet's class count if smaller"
    return EpisodeSampler(cf.labels, min(n_way, len(cf.classes)), k_shot, n_query, n_episodes, seed=seed,
                          **drawer_groups(cf)).episodes()

def within_alphabet_error(
    learn, # a learner `episode_accuracy` accepts
    alphabets:dict, # `{name: ClassFolder}` (e.g. `unseen_alphabets(...)`)
    n_way:int=20, # classes per episode (capped by each alphabet's count)
    n_episodes:int=100, # episodes per alphabet
    seed:int=0, # seed of the episodes
    tta=None, # test-time augmentation (see `embed`); None: the learner's own
) -> dict:
    """The within-alphabet one-shot error on each alphabet (percent) and their mean, with the 95% interval of the error
    over all the trials pooled. -> dict(error, errors {'Name (N-way)': %}, ci95 (half-width, percent), trials)"""
    if not alphabets: raise ValueError('within_alphabet_error: no alphabets given')
    errors, outcomes = {}, []
    for name, cf in alphabets.items():
        r = episode_accuracy(learn, cf.images, alphabet_episodes(cf, n_way, n_episodes, seed), tta=tta)
        errors[f'{name} ({min(n_way, len(cf.classes))}-way)'] = round(100*(1 - r['accuracy']), 2)
        outcomes += r['outcomes']
    return dict(error=round(sum(errors.values())/len(errors), 2), errors=errors,
                ci95=round(100*interval95(outcomes)[1], 2), trials=len(outcomes))
