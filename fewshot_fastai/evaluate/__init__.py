"""Every evaluation protocol in one place: N-way K-shot episodes and their accuracy with a 95% interval, Lake-format
runs (each item alone and one-to-one), pair verification EER, Omniglot's within-alphabet trials on the alphabets a
training set lacks, and the one-shot generation measures, open-set recognition ("unknown"). `NWayEval`, the command line, the bench scripts and the
notebooks all call these."""
from .intervals import interval95
from .episodes import episode_accuracy, naive_episode_accuracy
from .runs import runs_error, one_to_one
from .pairs import pairs_eer
from .alphabets import unseen_alphabets, alphabet_episodes, within_alphabet_error, drawer_groups
from .generation import OneShotTrial, oneshot_trials, recognisability, diversity
from .open_set import eer_threshold, auroc, open_set_report

__all__ = ['interval95', 'episode_accuracy', 'naive_episode_accuracy', 'runs_error', 'one_to_one', 'pairs_eer',
           'unseen_alphabets', 'alphabet_episodes', 'within_alphabet_error', 'drawer_groups', 'OneShotTrial',
           'oneshot_trials', 'recognisability', 'diversity', 'eer_threshold', 'auroc', 'open_set_report']
