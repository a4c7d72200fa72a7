"""Few-shot classifiers on one support/query contract (`FewShotClassifier`: `process_support_set`, then `forward`)
and their registry (`register_method`, `list_methods`, `create_method`): 'mean', 'prototype', 'simpleshot',
'matching', 'baseline', 'baseline++' (inductive), 'bd-cspn' and 'pt-map' (transductive: they read the batch of queries)."""
from .base import FewShotClassifier, register_method, list_methods, create_method, check_method
from .prototypes import class_scores, MeanScore, Prototype
from .inductive import SimpleShot, Matching, Baseline, BaselinePlusPlus
from .transductive import BDCSPN, PTMAP

__all__ = ['FewShotClassifier', 'register_method', 'list_methods', 'create_method', 'check_method', 'class_scores',
           'MeanScore', 'Prototype', 'SimpleShot', 'Matching', 'Baseline', 'BaselinePlusPlus', 'BDCSPN', 'PTMAP']
