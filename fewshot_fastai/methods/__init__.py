"""Few-shot classifiers on one support/query contract (`FewShotClassifier`: `process_support_set`, then `forward`)
and their registry (`register_method`, `list_methods`, `create_method`): 'mean' and 'prototype' here."""
from .base import FewShotClassifier, register_method, list_methods, create_method, check_method
from .prototypes import class_scores, MeanScore, Prototype

__all__ = ['FewShotClassifier', 'register_method', 'list_methods', 'create_method', 'check_method', 'class_scores',
           'MeanScore', 'Prototype']
