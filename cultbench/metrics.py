"""Metrics between a model's indices and a target profile: small pure functions over numpy arrays.

The L1 distance depends on the constants C (see the README); the signed per-dimension error shows
its direction, and rank agreement across several targets does not depend on C at all.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import stats

from cultbench.errors import CultbenchError, did_you_mean


def _l1(diff: np.ndarray) -> np.ndarray:
    return np.abs(diff).sum(-1)


def _l2(diff: np.ndarray) -> np.ndarray:
    return np.sqrt((diff ** 2).sum(-1))


def _mean_abs(diff: np.ndarray) -> np.ndarray:
    return np.abs(diff).mean(-1)


# Distance between index vectors, over the last axis.
DISTANCES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"l1": _l1, "l2": _l2, "mean-abs": _mean_abs}


def check_distance(name: str) -> str:
    if name not in DISTANCES:
        raise CultbenchError(f"unknown distance {name!r}; distances: {', '.join(DISTANCES)}."
                             f"{did_you_mean(name, DISTANCES)}")
    return name


def distance(indices, target, name: str = "l1") -> np.ndarray:
    """Distance between indices [..., D] and a target [D]."""
    return DISTANCES[check_distance(name)](np.asarray(indices, float) - np.asarray(target, float))


def signed_error(indices, target) -> np.ndarray:
    """Model minus target, per dimension (positive: the model scores higher)."""
    return np.asarray(indices, float) - np.asarray(target, float)


def rank_agreement(model_scores, target_scores) -> dict:
    """Kendall tau and Spearman rho between two score lists over the same targets (or dimensions).

    Needs at least 3 pairs; with fewer, or with a constant list, both are None.
    """
    a, b = np.asarray(model_scores, float), np.asarray(target_scores, float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("rank agreement needs two 1-D arrays of the same length")
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return {"kendall_tau": None, "spearman_rho": None, "n": int(len(a))}
    return {"kendall_tau": float(stats.kendalltau(a, b).statistic),
            "spearman_rho": float(stats.spearmanr(a, b).statistic), "n": int(len(a))}
