"""Paired comparisons between two aligners' scores over the same targets and seeds.

A small study (a few targets x a few seeds) gives paired samples: the two aligners' L1 on the
same target with the same seed. The mean difference gets a bootstrap confidence interval
(scipy.stats.bootstrap, BCa; percentile when BCa is degenerate) and a two-sided sign-flip
permutation p-value (scipy.stats.permutation_test, exact when the pairs are few).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats


def _mean_difference(a, b, axis=-1):
    return np.mean(np.asarray(a) - np.asarray(b), axis=axis)


def paired_comparison(a, b, *, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0) -> dict:
    """Compare paired scores ``a`` and ``b`` (lower is better for L1): mean of a - b, its
    confidence interval, the permutation p-value, and how often a is below b."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("paired comparison needs two 1-D arrays of the same length")
    if len(a) < 2:
        raise ValueError("paired comparison needs at least 2 pairs")
    diff = a - b
    out = {"n_pairs": int(len(a)), "mean_a": float(a.mean()), "mean_b": float(b.mean()),
           "mean_difference": float(diff.mean()), "a_better_fraction": float(np.mean(diff < 0)),
           "confidence": confidence}
    if np.ptp(diff) == 0:  # every pair differs by the same amount: no sampling spread at all
        out.update(ci_low=float(diff[0]), ci_high=float(diff[0]), ci_method="degenerate",
                   p_value=1.0 if diff[0] == 0 else float(2.0 ** (1 - len(diff))))
        return out
    rng = np.random.default_rng(seed)
    method = "BCa"
    with warnings.catch_warnings():
        warnings.simplefilter("error", stats.DegenerateDataWarning)
        try:
            ci = stats.bootstrap((diff,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                                 method="BCa", rng=rng).confidence_interval
        except (stats.DegenerateDataWarning, ValueError):
            method = "percentile"
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
