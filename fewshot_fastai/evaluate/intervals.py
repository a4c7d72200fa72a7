"""The one 95% interval every figure of the package reports."""
import math

__all__ = ['interval95']

def interval95(
    outcomes, # per-trial outcomes (1/0 for right/wrong) or per-episode accuracies
) -> tuple[float, float]:
    """`(mean, half)`: the mean of `outcomes` and the half-width of its 95% normal-approximation interval,
    1.96 x the standard error of the mean (sample standard deviation). Outcomes of single trials give the binomial
    interval of an accuracy or error rate; per-episode accuracies give the interval few-shot papers report. One outcome: `half` is NaN."""
    xs = [float(x) for x in outcomes]
    if not xs: raise ValueError('interval95: no outcomes')
    mean = sum(xs)/len(xs)
    if len(xs) == 1: return mean, math.nan   # one outcome: its spread cannot be measured
    sd = math.sqrt(sum((x - mean)**2 for x in xs)/(len(xs) - 1))
    return mean, 1.96*sd/math.sqrt(len(xs))
