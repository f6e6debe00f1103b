"""Paired comparisons between two aligners' scores over the same units (in a study: targets).

A small study (a few targets x a few seeds) gives paired samples: the two aligners' L1 on the
same unit. The mean difference gets a bootstrap confidence interval (scipy.stats.bootstrap: BCa,
or percentile when BCa is degenerate; ``ci_method`` says which was used) and a two-sided sign-flip
permutation p-value (scipy.stats.permutation_test: exact when all 2^n sign patterns fit in the
resamples, else random flips; ``p_method`` says which). With n pairs the exact test cannot give a
p below 2/2^n (the two patterns with every sign alike); ``min_p_value`` states that floor, so a
reader sees at once what the design could have shown.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats


def _mean_difference(a, b, axis=-1):
    return np.mean(np.asarray(a) - np.asarray(b), axis=axis)


def smallest_p_value(n_pairs: int, n_resamples: int = 9999) -> float:
    """The smallest two-sided sign-flip p-value n pairs can give: 2/2^n when the test is exact
    (2^n <= n_resamples), else 2/(n_resamples + 1) (scipy's random-flip p counts the observed
    pattern)."""
    if n_pairs < 1:
        raise ValueError("a paired test needs at least 1 pair")
    if 2.0 ** n_pairs <= n_resamples:
        return float(2.0 ** (1 - n_pairs))
    return float(min(1.0, 2.0 / (n_resamples + 1)))


def paired_comparison(a, b, *, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0) -> dict:
    """Compare paired scores ``a`` and ``b`` (lower is better for L1): mean of a - b, its
    confidence interval (and the method that gave it), the permutation p-value, the smallest p
    the design can give, and how often a is below b."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("paired comparison needs two 1-D arrays of the same length")
    if len(a) < 2:
        raise ValueError("paired comparison needs at least 2 pairs")
    diff = a - b
    exact = 2.0 ** len(a) <= n_resamples
    out = {"n_pairs": int(len(a)), "mean_a": float(a.mean()), "mean_b": float(b.mean()),
           "mean_difference": float(diff.mean()), "a_better_fraction": float(np.mean(diff < 0)),
           "confidence": confidence, "min_p_value": smallest_p_value(len(a), n_resamples),
           "p_method": "exact sign-flip" if exact else f"sign-flip, {n_resamples} random flips"}
    if np.ptp(diff) == 0:  # every pair differs by the same amount: no sampling spread at all
        out.update(ci_low=float(diff[0]), ci_high=float(diff[0]), ci_method="degenerate",
                   p_value=1.0 if diff[0] == 0 else out["min_p_value"])
        return out
    method = "BCa"
    with warnings.catch_warnings():
        warnings.simplefilter("error", stats.DegenerateDataWarning)
        try:
            ci = stats.bootstrap((diff,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                                 method="BCa", rng=np.random.default_rng(seed)).confidence_interval
            if not (np.isfinite(ci.low) and np.isfinite(ci.high)):
                raise ValueError("BCa interval is not finite")
        except (stats.DegenerateDataWarning, ValueError):
            method = "percentile (BCa degenerate)"
            ci = stats.bootstrap((diff,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                                 method="percentile", rng=np.random.default_rng(seed)).confidence_interval
    test = stats.permutation_test((a, b), _mean_difference, permutation_type="samples", vectorized=True,
                                  n_resamples=n_resamples, alternative="two-sided",
                                  rng=np.random.default_rng(seed))
    out.update(ci_low=float(ci.low), ci_high=float(ci.high), ci_method=method, p_value=float(test.pvalue))
    return out


def mean_ci(values, *, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0) -> dict:
    """Mean of ``values`` (None entries left out) with a percentile bootstrap confidence interval
    (None with fewer than 2 values; the value itself when they are all equal)."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    out = {"mean": float(x.mean()) if len(x) else None, "ci_low": None, "ci_high": None, "n": int(len(x)),
           "confidence": confidence}
    if len(x) < 2:
        return out
    if np.ptp(x) == 0:
        out.update(ci_low=float(x[0]), ci_high=float(x[0]))
        return out
    ci = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples, method="percentile",
                         rng=np.random.default_rng(seed)).confidence_interval
    out.update(ci_low=float(ci.low), ci_high=float(ci.high))
    return out
