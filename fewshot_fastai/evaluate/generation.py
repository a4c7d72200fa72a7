"""The one-shot generation measures (Boutin et al. 2022, "Diversity vs. Recognizability"): within-alphabet trials,
`recognisability` (the share of generated images a one-shot classifier assigns to their source's class) and
`diversity` (their spread in that classifier's embedding space), each beside the same figure for real drawings."""
import random
from dataclasses import dataclass, field
from pathlib import Path
from ..data.items import ClassFolder
from ..data.episodes import Episode
from ..datasets.naming import alphabet_of
from ..inference import embed
from .episodes import episode_accuracy

__all__ = ['OneShotTrial', 'oneshot_trials', 'recognisability', 'diversity']

@dataclass
class OneShotTrial:
    "A within-alphabet one-shot trial: one drawing of each of `n_way` classes in `support`; `label`'s is `source`"
    label: str   # the source's class
    source: object   # the source drawing (a path)
    support: dict = field(default_factory=dict)   # {label: [one drawing]} for the trial's classes
    real: list = field(default_factory=list)   # other drawings of `label` (by other people)

def oneshot_trials(
    path, # folder of class folders (e.g. Omniglot alphabets the classifier and the generator never saw), or a `ClassFolder`
    n_way:int=20, # classes per trial, all of one group
    n_trials:int=100, # trials
    n_real:int=1, # real drawings of the source's class kept per trial (other people's)
    group=None, # label -> group (default: the alphabet, `Alphabet/characterNN`)
    seed:int=0, # seed of the draws
) -> list:
    "Trials for `recognisability`: each picks one group, `n_way` of its classes, one drawing each, and `n_real` more of the first"
    group = group or alphabet_of
    cf = path if isinstance(path, ClassFolder) else ClassFolder(path)
    files = {l: cf.files_of(l) for l in cf.classes}
    groups = {}
    for l in files:
        if len(files[l]) > n_real: groups.setdefault(group(l), []).append(l)
    usable = sorted(g for g, ls in groups.items() if len(ls) >= n_way)
    if not usable: raise ValueError(f'oneshot_trials: no group of {cf.root} has {n_way} classes with {n_real + 1}+ images')
    rng, trials = random.Random(seed), []
    for t in range(n_trials):
        classes = rng.sample(sorted(groups[usable[t % len(usable)]]), n_way)
        picks = {c: rng.sample(files[c], n_real + 1 if c == classes[0] else 1) for c in classes}
        trials.append(OneShotTrial(classes[0], picks[classes[0]][0], {c: p[:1] for c, p in picks.items()}, picks[classes[0]][1:]))
    return trials

def _trial_episodes(trials, candidates):
    "(images, `Episode`s) of the trials: one episode each, its queries the candidates; a path used twice is encoded once"
    images, pos, eps = [], {}, []
    def at(im):
        key = str(im) if isinstance(im, (str, Path)) else id(im)   # `images` keeps the objects alive, so ids stay theirs
        if key not in pos: pos[key] = len(images); images.append(im)
        return pos[key]
    for i, t in enumerate(trials):
        classes = sorted(t.support)
        sup = [(at(im), k) for k, c in enumerate(classes) for im in t.support[c]]   # class-major, as `Episode` wants
        query = [at(im) for im in (t.real if candidates is None else candidates[i])]
        eps.append(Episode(classes, [p for p, _ in sup], [k for _, k in sup], query, [classes.index(t.label)]*len(query)))
    return images, eps

def recognisability(
    classifier, # a one-shot classifier (a Learner `ff.episode_accuracy` accepts)
    trials:list, # `oneshot_trials`
    candidates:list|None=None, # per trial, images that claim the source's class (generated ones); None: the trials' real drawings
) -> float:
    """The share of `candidates` that `classifier` assigns to their trial's source class against the trial's support
    (its one-shot accuracy on episodes whose queries are the candidates; every image is encoded once)"""
    return episode_accuracy(classifier, *_trial_episodes(trials, candidates))['accuracy']

def diversity(
    classifier, # a Learner whose embeddings `ff.embed` gives
    groups:list, # lists of images, each of one class (generated from one source, or real drawings of one class)
) -> float:
    "The mean distance of a group's embeddings to their mean, averaged over the groups (0: all alike)"
    groups = [list(g) for g in groups]
    spread = [(e - e.mean(0)).norm(dim=1).mean().item()
              for e in embed(classifier, [im for g in groups for im in g]).float().split([len(g) for g in groups])]
    return sum(spread)/len(spread)
