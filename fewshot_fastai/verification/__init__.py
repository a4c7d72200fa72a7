"""Verification scoring maths: thresholds, equal error rate, calibration, score normalisation, embedding whitening
and score fusion."""
from .scores import best_threshold, equal_error_rate, fit_logistic, calibration_error, score_norm
from .whitening import Whitening, fit_whitening
from .fusion import ScoreFusion, fit_fusion

__all__ = ['best_threshold', 'equal_error_rate', 'fit_logistic', 'calibration_error', 'score_norm', 'Whitening',
           'fit_whitening', 'ScoreFusion', 'fit_fusion']
