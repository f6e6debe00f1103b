"""Metrics: small pure functions over numpy arrays.

Index instruments: distances between a model's indices and a target profile. The L1 distance
depends on the constants C (see the README); the signed per-dimension error shows its direction,
and rank agreement across several targets does not depend on C at all.

Order balance (measurement v4): every wording is rendered with its scale in order and reversed,
and a wording's primary index is the mean of its renderings' indices. Indices are linear in the
expected answers, so that is the indices of the order-averaged answers; on a distribution
instrument the same mean averages each question's answer shares over the option orders. A
split's ``l1`` is the mean over its wordings of the distance of the balanced indices.

Distribution instruments: the Jensen-Shannon distance (base 2, in [0, 1]) between the model's
answer distribution on an item and a country's answer shares, the similarity 1 - JSD averaged
over items (Durmus et al. 2023), and the ranking of countries by that similarity.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

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


def order_balance(wordings: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(wording names in first-seen order, averaging matrix [W, V]) for renderings whose wordings
    are ``wordings`` (one name per rendering): row w averages the renderings of wording w."""
    names = list(dict.fromkeys(wordings))
    matrix = np.zeros((len(names), len(wordings)))
    for v, name in enumerate(wordings):
        matrix[names.index(name), v] = 1.0
    return names, matrix / matrix.sum(axis=1, keepdims=True)


def order_balanced(per_rendering, matrix: np.ndarray):
    """Balanced indices [..., W, D] from indices per rendering [..., V, D] and an
    :func:`order_balance` matrix [W, V] (numpy arrays or torch tensors, differentiable)."""
    if hasattr(per_rendering, "new_tensor"):  # a torch tensor
        matrix = per_rendering.new_tensor(matrix)
    return matrix @ per_rendering


def balanced_distance(per_rendering, wordings: Sequence[str], target, name: str = "l1") -> np.ndarray:
    """[..., W] distance of each wording's balanced indices to ``target`` [D]; the split's figure
    is their mean. ``per_rendering`` [..., V, D], ``wordings`` the wording of each rendering."""
    _, matrix = order_balance(wordings)
    return distance(order_balanced(np.asarray(per_rendering, float), matrix), target, name)


# -- references and direction (measurement v4) ---------------------------------------------------
# A score stands beside its references: the content-free respondent (every index = C, what a
# pure position answerer scores once orders are balanced) and the world mean profile. "Aligned"
# needs more than a lower L1: the change against the naive model must point towards the target
# (directedness) and keep its sign when the scale is reversed (mirror).

def content_free_l1(constants, target) -> float:
    """L1 of a content-free respondent (every index = its constant C) to ``target`` [D]."""
    return float(distance(np.asarray(constants, float), target))


def relative_l1(value: float | None, reference: float | None) -> float | None:
    """``value / reference`` (below 1: closer than the reference); None without a positive reference."""
    if value is None or reference is None or not reference > 0:
        return None
    return float(value) / float(reference)


def directedness(aligned, naive, target) -> float | None:
    """Cosine between the change (aligned - naive) and the way to go (target - naive), over every
    entry of the arrays (e.g. wordings x dimensions of balanced indices; ``target`` broadcasts).
    1: straight towards the target; 0: sideways; -1: away. None when either vector is zero."""
    change = np.ravel(np.asarray(aligned, float) - np.asarray(naive, float))
    way = np.ravel(np.broadcast_to(np.asarray(target, float), np.shape(naive)) - np.asarray(naive, float))
    norm = float(np.linalg.norm(change) * np.linalg.norm(way))
    return float(change @ way / norm) if norm > 1e-12 else None


def mirror(change_in_order, change_reversed) -> float | None:
    """Pearson correlation between the index change against the naive model under in-order
    renderings and under the reversed renderings of the same wordings (paired entries). A content
    effect keeps its sign when the scale is reversed (positive); a position effect flips it
    (negative). None with fewer than 3 pairs or a constant side."""
    a, b = np.ravel(np.asarray(change_in_order, float)), np.ravel(np.asarray(change_reversed, float))
    if a.shape != b.shape:
        raise ValueError("mirror needs the two orders' changes for the same wordings and dimensions")
    if len(a) < 3 or np.ptp(a) < 1e-12 or np.ptp(b) < 1e-12:
        return None
    return float(np.corrcoef(a, b)[0, 1])


# The verdict "aligned": every check must be measured and pass (docs/diagnostics.md, Protocol).
# (name, rule, threshold): held-out balanced L1 minus naive's and minus content-free's strictly
# below 0; directedness and mirror strictly above 0.
ALIGNED_CHECKS = (("below_naive", "<", 0.0), ("below_content_free", "<", 0.0),
                  ("directedness", ">", 0.0), ("mirror", ">", 0.0))


def aligned_verdict(l1: float, naive_l1: float, content_free: float, direction: float | None,
                    mirror_value: float | None) -> dict:
    """The verdict ``aligned`` of an alignment from its held-out balanced L1, the naive model's,
    the content-free L1, its directedness and its mirror correlation, with every check's value."""
    values = {"below_naive": l1 - naive_l1, "below_content_free": l1 - content_free,
              "directedness": direction, "mirror": mirror_value}
    checks = {}
    for name, rule, threshold in ALIGNED_CHECKS:
        value = values[name]
        passed = None if value is None else bool(value < threshold if rule == "<" else value > threshold)
        checks[name] = {"value": value, "threshold": threshold, "rule": rule, "passed": passed}
    failed = [n for n, c in checks.items() if c["passed"] is not True]
    return {"directedness": direction, "mirror": mirror_value, "aligned": not failed, "checks": checks,
            "failed": failed}


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


def js_distance(p, q) -> np.ndarray:
    """Jensen-Shannon distance, base 2, between distributions over the last axis (broadcast).

    Each side is normalised to sum 1 first (as scipy does); 0 means identical, 1 disjoint. NaN
    where a side has no mass (e.g. an item a country was not asked).
    """
    p, q = np.broadcast_arrays(np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64))
    if p.shape[-1] < 1:
        raise ValueError("a distribution needs at least one option")
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
