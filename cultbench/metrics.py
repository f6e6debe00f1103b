"""Metrics: small pure functions over numpy arrays.

Index instruments: distances between a model's indices and a target profile. The L1 distance
depends on the constants C (see the README); the signed per-dimension error shows its direction,
and rank agreement across several targets does not depend on C at all.

Distribution instruments: the Jensen-Shannon distance (base 2, in [0, 1]) between the model's
answer distribution on an item and a country's answer shares, the similarity 1 - JSD averaged
over items (Durmus et al. 2023), and the ranking of countries by that similarity.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from cultbench.errors import CultbenchError, did_you_mean


# Written with Python operators only, so they take numpy arrays and torch tensors alike (the
# gradient aligner differentiates them).
def _l1(diff: np.ndarray) -> np.ndarray:
    return abs(diff).sum(-1)


def _l2(diff: np.ndarray) -> np.ndarray:
    return ((diff ** 2).sum(-1)) ** 0.5


def _mean_abs(diff: np.ndarray) -> np.ndarray:
    return abs(diff).mean(-1)


# Distance between index vectors, over the last axis (numpy arrays or torch tensors).
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
    from scipy import stats  # scipy loads in about a second: only where a rank is computed

    return {"kendall_tau": float(stats.kendalltau(a, b).statistic),
            "spearman_rho": float(stats.spearmanr(a, b).statistic), "n": int(len(a))}


def js_distance(p, q) -> np.ndarray:
    """Jensen-Shannon distance, base 2, between distributions over the last axis (broadcast).

    Each side is normalised to sum 1 first (as scipy does); 0 means identical, 1 disjoint. NaN
    where a side has no mass (e.g. an item a country was not asked).
    """
    p, q = np.broadcast_arrays(np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64))
    if p.shape[-1] < 1:
        raise ValueError("a distribution needs at least one option")
    from scipy.spatial.distance import jensenshannon  # as in rank_agreement: scipy only when used

    with np.errstate(invalid="ignore", divide="ignore"):
        out = jensenshannon(p, q, base=2, axis=-1)
    empty = (np.nansum(p, axis=-1) <= 0) | (np.nansum(q, axis=-1) <= 0) | np.isnan(p).any(-1) | np.isnan(q).any(-1)
    return np.where(empty, np.nan, out)


def similarity(distances) -> float:
    """1 - mean Jensen-Shannon distance over the items that have one (NaN skipped); NaN if none."""
    d = np.asarray(distances, dtype=np.float64).ravel()
    d = d[~np.isnan(d)]
    return float(1.0 - d.mean()) if len(d) else float("nan")


def rank_by_similarity(similarities: Mapping[str, float]) -> list[tuple[str, float]]:
    """Countries (or any targets) from the most to the least similar; NaN last; ties by name."""
    def key(entry):
        name, value = entry
        return (np.isnan(value), -value if not np.isnan(value) else 0.0, name)

    return sorted(((str(k), float(v)) for k, v in similarities.items()), key=key)
