"""Paired comparisons between two aligners' scores over the same units (in a study: targets).

A small study (a few targets x a few seeds) gives paired samples: the two aligners' L1 on the
same unit. The mean difference gets a bootstrap confidence interval (scipy.stats.bootstrap: BCa,
or percentile when BCa is degenerate; ``ci_method`` says which was used) and a two-sided sign-flip
permutation p-value (scipy.stats.permutation_test: exact when all 2^n sign patterns fit in the
resamples, else random flips; ``p_method`` says which). With n pairs the exact test cannot give a
p below 2/2^n (the two patterns with every sign alike); ``min_p_value`` states that floor, so a
reader sees at once what the design could have shown.

``toward_target`` asks whether aligners' index changes point toward their targets: the slope and
correlation of (aligned − naive) on (target − naive) over targets and dimensions, with a p from
permuting which target goes with which change.
"""

from __future__ import annotations

import itertools
import math
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


def toward_target(changes, ways, *, draws: int = 99_999, seed: int = 0) -> dict:
    """Does a change point toward the target? ``changes`` [T, D]: per target (the unit; seeds
    averaged first) the change of the indices against the naive model (aligned − naive);
    ``ways`` [T, D]: the way to go (target − naive). The least-squares slope, intercept and
    Pearson correlation of the change on the way, pooled over targets and dimensions (slope 1:
    all the way to the target; 0: no movement toward it; negative: away), and a two-sided
    target-permutation p: which target's way goes with which target's change is permuted (a
    whole row of ``ways`` at a time, so the dimensions stay together). Every permutation when
    T! <= ``draws`` (``p_method`` "exact", smallest p 1/T!), else ``draws`` seeded random ones,
    p = (1 + as extreme) / (draws + 1), smallest p 1/(draws + 1). The pooled means and variances
    do not change under a permutation, so the slope and the correlation give the same p."""
    y, x = np.asarray(changes, dtype=float), np.asarray(ways, dtype=float)
    if y.shape != x.shape or y.ndim != 2:
        raise ValueError("toward_target needs changes and ways of the same shape [targets, dimensions]")
    n = len(y)
    if n < 2:
        raise ValueError("toward_target needs at least 2 targets")
    xc, yc = x - x.mean(), y - y.mean()
    sxx, syy = float((xc ** 2).sum()), float((yc ** 2).sum())
    out = {"n_targets": int(n), "n_points": int(y.size), "slope": None, "intercept": None, "pearson_r": None,
           "p_value": None}
    exact = math.factorial(n) <= draws
    out.update(p_method="exact target permutation" if exact else f"target permutation, {draws} random draws",
               draws=math.factorial(n) if exact else draws,
               min_p_value=1.0 / math.factorial(n) if exact else 1.0 / (draws + 1))
    if sxx <= 0:  # every target the same way to go: no slope to estimate
        return out
    products = yc @ xc.T  # [i, j]: target i's change against target j's way
    observed = float(np.trace(products))
    out.update(slope=observed / sxx, intercept=float(y.mean() - observed / sxx * x.mean()),
               pearson_r=observed / math.sqrt(sxx * syy) if syy > 0 else None)
    if exact:
        perms = np.array(list(itertools.permutations(range(n))))
    else:
        perms = np.random.default_rng(seed).permuted(np.tile(np.arange(n), (draws, 1)), axis=1)
    permuted = products[np.arange(n), perms].sum(axis=1)
    extreme = int(np.sum(np.abs(permuted) >= abs(observed) - 1e-9 * max(1.0, abs(observed))))
    out["p_value"] = extreme / len(perms) if exact else (1 + extreme) / (draws + 1)
    return out
