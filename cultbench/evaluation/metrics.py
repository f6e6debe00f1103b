"""Metrics: small pure functions over numpy arrays, and their declarations in the metric registry
(``cultbench.evaluation.metric_registry``, re-exported here: import the registry from this module, so that
cultbench's own metrics are declared; docs/metrics.md: adding a metric).

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

from cultbench.columns import Column, Table, best_mark, best_title, delta, fmt, fmt_ci, fmt_stat
from cultbench.errors import CultbenchError, did_you_mean
from cultbench.evaluation.metric_registry import (DISTRIBUTION, INDEX, KINDS, METRICS, Metric, ScoredSplit,  # noqa: F401
                                       compute_metrics, get_metric, metrics_for, primary_metric,
                                       register_metric, unregister_metric, versus_naive)


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


def record_content_free_l1(record, split: str = "heldout") -> float:
    """A result record's content-free L1 on ``split``: as recorded (measurement v4), else (older
    entries) computed the same way from its constants and target scores on its compared dimensions."""
    recorded = record["metrics"][split].get("content_free_l1")
    if recorded is not None:
        return float(recorded)
    dims = record["aligner"]["dimensions"]
    return content_free_l1([record["constants"][d] for d in dims], [record["target"]["scores"][d] for d in dims])


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
# The minimum effect: the held-out balanced L1 must be below the naive model's and below the
# content-free L1 by at least this share of the content-free L1 (the target's distance from
# "knowing nothing"). 5%: above every false positive the content-free testbed control gave (a
# random search 0.7% below naive and content-free, an icl-profile 2.1%; docs/testbed.md), and about
# three times the standard error wording noise alone gives the difference of two three-wording
# means (the bundled naive model's held-out wordings: SD 2.1 points, SE of the difference
# 2.1 x sqrt(2/3) = 1.7 points, 1.6% of its content-free L1 109).
MIN_EFFECT = 0.05
# (name, rule, threshold): held-out balanced L1 minus naive's and minus content-free's below
# -MIN_EFFECT x the content-free L1 (the threshold recorded in points); directedness and mirror above 0.
ALIGNED_CHECKS = (("below_naive", "<", -MIN_EFFECT), ("below_content_free", "<", -MIN_EFFECT),
                  ("directedness", ">", 0.0), ("mirror", ">", 0.0))
SCALED_BY_CONTENT_FREE = ("below_naive", "below_content_free")  # thresholds in shares of the content-free L1


def check_threshold(name: str, content_free: float) -> float:
    """The threshold of the verdict's check ``name`` (ALIGNED_CHECKS): the L1 checks' in L1 points
    (their share x the content-free L1), the others as they are."""
    share = next(s for n, _, s in ALIGNED_CHECKS if n == name)
    return share * content_free if name in SCALED_BY_CONTENT_FREE else share


def aligned_verdict(l1: float, naive_l1: float, content_free: float, direction: float | None,
                    mirror_value: float | None) -> dict:
    """The verdict ``aligned`` of an alignment from its held-out balanced L1, the naive model's,
    the content-free L1, its directedness and its mirror correlation, with every check's value and
    threshold (the L1 checks' thresholds in L1 points: ``MIN_EFFECT`` x the content-free L1)."""
    values = {"below_naive": l1 - naive_l1, "below_content_free": l1 - content_free,
              "directedness": direction, "mirror": mirror_value}
    checks = {}
    for name, rule, _ in ALIGNED_CHECKS:
        value = values[name]
        threshold = check_threshold(name, content_free)
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


# -- the declarations (cultbench.evaluation.metric_registry; docs/metrics.md) --------------------------------
# Registration order is the order of the leaderboard's columns: an index row shows l1 and
# option_mass, then (after the verdict and cost, ``column_place="detail"``) signed_error; a
# distribution row similarity, jsd, rank, option_mass.

_PROBABILITY = {"$ref": "#/$defs/probability"}
_OPTIONAL_PROBABILITY = {"anyOf": [{"$ref": "#/$defs/probability"}, {"type": "null"}]}


def _gap(row: dict):
    a, b = row["l1"]["heldout"]["mean"], row["l1"]["train"]["mean"]
    return None if a is None or b is None else a - b


def _l1_columns(table: Table) -> list[Column]:
    return [
        Column("l1_heldout", "L1 held-out", lambda r: r["l1"]["heldout"]["mean"],
               lambda r: fmt_stat(r["l1"]["heldout"]) + best_mark(r), split="heldout",
               title=lambda r: best_title(r, "lowest held-out L1")),
        Column("delta_heldout", "Δ vs naive (held-out)", delta("heldout"), lambda r: fmt(delta("heldout")(r), "+.2f"),
               split="heldout"),
        Column("l1_train", "L1 train", lambda r: r["l1"]["train"]["mean"], lambda r: fmt_stat(r["l1"]["train"]),
               split="train"),
        Column("delta_train", "Δ vs naive (train)", delta("train"), lambda r: fmt(delta("train")(r), "+.2f"),
               split="train"),
        Column("gap", "L1 held-out − train (+: transfers less)", _gap, lambda r: fmt(_gap(r), "+.2f")),
    ]


def _l1_summary_columns(table: Table) -> list[Column]:
    return [
        Column("sum_l1_heldout", "L1 held-out [95% CI]", lambda e: e["l1"]["heldout"]["mean"],
               lambda e: fmt_ci(e["l1"]["heldout"]), split="heldout"),
        Column("sum_delta_heldout", "Δ vs naive (held-out) [95% CI]", lambda e: e["delta_vs_naive"]["heldout"]["mean"],
               lambda e: fmt_ci(e["delta_vs_naive"]["heldout"], "+.1f"), split="heldout"),
        Column("sum_l1_train", "L1 train [95% CI]", lambda e: e["l1"]["train"]["mean"],
               lambda e: fmt_ci(e["l1"]["train"]), split="train"),
        Column("sum_delta_train", "Δ vs naive (train) [95% CI]", lambda e: e["delta_vs_naive"]["train"]["mean"],
               lambda e: fmt_ci(e["delta_vs_naive"]["train"], "+.1f"), split="train"),
    ]


def _signed_error_columns(table: Table) -> list[Column]:
    cols = []
    for d in table.dimensions:
        def get(r, d=d):
            return (r["signed_error"]["heldout"].get(d) or {}).get("mean")
        cols.append(Column(f"err_{d}", f"{d.upper()} error", get, lambda r, get=get: fmt(get(r), "+.1f"),
                           split="heldout"))
    return cols


def _option_mass_columns(table: Table) -> list[Column]:
    return [Column("option_mass", f"Option mass ({table.splits['heldout']})",
                   lambda r: r["option_mass"]["heldout"]["mean"],
                   lambda r: fmt(r["option_mass"]["heldout"]["mean"], ".3f"), split="heldout")]


def _similarity_columns(table: Table) -> list[Column]:
    cols = []
    for block, label in table.splits.items():
        split = table.page_split(block)
        cols.append(Column(f"sim_{block}", f"Similarity, {label}", lambda r, b=block: r["similarity"][b]["mean"],
                           lambda r, b=block: fmt_stat(r["similarity"][b], ".3f")
                           + (best_mark(r) if b == "heldout" else ""), split=split,
                           title=(lambda r: best_title(r, "highest similarity with both held out"))
                           if block == "heldout" else None))
        if block in ("heldout", "train"):
            cols.append(Column(f"delta_{block}", f"Δ vs naive ({label})", delta(block),
                               lambda r, b=block: fmt(delta(b)(r), "+.3f"), split=split))
    return cols


def _similarity_summary_columns(table: Table) -> list[Column]:
    cols = []
    for block, label in table.splits.items():
        split = table.page_split(block)
        cols.append(Column(f"sum_sim_{block}", f"Similarity, {label} [95% CI]",
                           lambda e, b=block: e["similarity"][b]["mean"],
                           lambda e, b=block: fmt_ci(e["similarity"][b], ".3f"), split=split))
        if block in ("heldout", "train"):
            cols.append(Column(f"sum_delta_{block}", f"Δ vs naive ({label}) [95% CI]",
                               lambda e, b=block: e["delta_vs_naive"][b]["mean"],
                               lambda e, b=block: fmt_ci(e["delta_vs_naive"][b], "+.3f"), split=split))
    return cols


def _rank_text_of(row: dict, block: str) -> str:
    rank = row["rank"][block]
    return "–" if rank["mean"] is None else f"{fmt(rank['mean'], '.1f')} of {row['countries_ranked'][block]}"


def _similarity_per_variant(s: ScoredSplit) -> np.ndarray:
    """[V] similarity per variant on the block's questions; None for each where the target was asked none."""
    return s.context["per_variant"](s.scores) if s.context["asked"] else np.full(len(s.variants), None)


def _similarity_per_wording(s: ScoredSplit) -> dict:
    """Wording -> similarity of its order-balanced shares (each question's shares averaged over the
    wording's option orders first); None where the target was asked none of the questions."""
    names = order_balance(_wordings(s))[0]
    values = s.context["per_variant"](_balanced(s)) if s.context["asked"] else [None] * len(names)
    return dict(zip(names, [None if v is None else float(v) for v in values]))


def _balanced_similarity(s: ScoredSplit) -> float | None:
    values = list(_similarity_per_wording(s).values())
    return None if any(v is None for v in values) else float(np.mean(values))


def _dimension_rank_agreement(indices: Mapping[str, float], target_scores: Mapping[str, float]) -> dict:
    """Rank agreement across the dimensions the target has a score for (every one of a published profile)."""
    dims = [d for d in indices if d in target_scores]
    return rank_agreement([indices[d] for d in dims], [target_scores[d] for d in dims])


def _rank(s: ScoredSplit):
    if "ranking" not in s.context:  # one lm-eval task's records: no ranking of the data's countries
        return None
    ranking, name = s.context["ranking"], s.context["name"]
    return 1 + ranking.index(name) if name in ranking else None


def _wordings(s: ScoredSplit) -> list[str]:
    """The wording of each of a split's renderings (a split without them, such as one lm-eval task's
    records: each rendering its own wording)."""
    return list(s.context.get("wordings") or s.variants)


def _balanced(s: ScoredSplit, scores=None) -> np.ndarray:
    """[W, D] each wording's order-balanced scores (the candidate's, or ``scores`` [V, D])."""
    return order_balanced(s.scores if scores is None else np.asarray(scores, float), order_balance(_wordings(s))[1])


def _balanced_l1(s: ScoredSplit, scores=None) -> float:
    return float(distance(_balanced(s, scores), s.target).mean())


def _l1_by_order(s: ScoredSplit) -> dict | None:
    orders, per_rendering = s.context.get("orders"), distance(s.scores, s.target)
    if not orders:
        return None
    return {o: float(np.mean([x for x, k in zip(per_rendering, orders) if k == o])) for o in dict.fromkeys(orders)}


def _content_free(s: ScoredSplit) -> float | None:
    constants = s.context.get("constants")
    return None if constants is None else content_free_l1(constants, s.target)


def _world_mean(s: ScoredSplit) -> float | None:
    mean = s.context.get("world_mean")
    return None if mean is None else float(distance(mean, s.target))


def _mirror(s: ScoredSplit) -> float | None:
    """Mirror correlation of the change against the naive model, over the split's wordings rendered
    in both orders (None without the naive model's scores)."""
    naive, orders = s.context.get("naive"), s.context.get("orders")
    if naive is None or not orders:
        return None
    change, wordings = s.scores - np.asarray(naive, float), _wordings(s)
    pairs = [(i, j) for i, (w, o) in enumerate(zip(wordings, orders)) for j, (w2, o2) in enumerate(zip(wordings, orders))
             if w == w2 and o == "ascending" and o2 == "descending"]
    return mirror(change[[i for i, _ in pairs]], change[[j for _, j in pairs]]) if pairs else None


def _directedness(s: ScoredSplit) -> float | None:
    naive = s.context.get("naive")
    return None if naive is None else directedness(_balanced(s), _balanced(s, naive), s.target)


def _alignment(s: ScoredSplit) -> dict | None:
    """The verdict ``aligned`` on this split (read on the held-out one), beside the naive model."""
    naive, free = s.context.get("naive"), _content_free(s)
    if naive is None or free is None:
        return None
    return aligned_verdict(s.values["l1"], _balanced_l1(s, naive), free, s.values["directedness"], s.values["mirror"])


_OPTIONAL_NUMBER = {"$ref": "#/$defs/optional_number"}
L1 = register_metric(Metric(
    "l1", "L1", "L1 distance to the target of each wording's order-balanced indices (the mean of its in-order and "
    "reversed renderings), averaged over the split's wordings.", (INDEX,),
    higher_is_better=False, fmt=".1f", primary=True, task=True, required=True,
    schema={"type": "number", "minimum": 0,
            "description": "Schema 3: the mean over the split's wordings of the L1 distance of each wording's "
                           "order-balanced indices to the target. Before: L1 per variant, averaged over the split's "
                           "variants."},
    compute=_balanced_l1, per_variant=lambda s: distance(s.scores, s.target), columns=_l1_columns,
    summary_columns=_l1_summary_columns))
L1_PER_WORDING = register_metric(Metric(
    "l1_per_wording", "L1 per wording", "Each wording's L1 of its order-balanced indices.", (INDEX,),
    higher_is_better=False, fmt=".1f", row=False, columns=lambda table: [],
    schema={"type": "object", "minProperties": 1, "propertyNames": {"$ref": "#/$defs/name"},
            "additionalProperties": {"type": "number", "minimum": 0}},
    compute=lambda s: dict(zip(order_balance(_wordings(s))[0], distance(_balanced(s), s.target).tolist()))))
L1_BY_ORDER = register_metric(Metric(
    "l1_by_order", "L1 by order", "Secondary: the per-rendering L1 averaged over the in-order and over the reversed "
    "renderings.", (INDEX,), higher_is_better=False, fmt=".1f", row=False, columns=lambda table: [],
    schema={"anyOf": [{"type": "object"}, {"type": "null"}]}, compute=_l1_by_order))
SIGNED_ERROR = register_metric(Metric(
    "signed_error", "error", "Model minus target, per dimension, of the split's mean balanced indices.", (INDEX,),
    higher_is_better=None, fmt="+.1f", per_dimension=True, task=True, task_suffix="error", required=True,
    schema={"$ref": "#/$defs/per_dimension",
            "description": "Model minus target, per dimension, of the split's mean indices."},
    compute=lambda s: dict(zip(s.dimensions, signed_error(_balanced(s).mean(axis=0), s.target).tolist())),
    columns=_signed_error_columns, column_place="detail"))
CONTENT_FREE_L1 = register_metric(Metric(
    "content_free_l1", "Content-free L1", "L1 of a content-free respondent (every index = C) to the target.", (INDEX,),
    higher_is_better=False, fmt=".1f", column_place="detail",
    schema={"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}]}, compute=_content_free))
WORLD_MEAN_L1 = register_metric(Metric(
    "world_mean_l1", "World-mean L1", "L1 of the mean profile of the reference source's countries with every "
    "dimension.", (INDEX,), higher_is_better=False, fmt=".1f", column_place="detail",
    schema={"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}]}, compute=_world_mean))
L1_OVER_CONTENT_FREE = register_metric(Metric(
    "l1_over_content_free", "L1 / content-free", "l1 / content_free_l1 (below 1: closer than a content-free "
    "respondent).", (INDEX,), higher_is_better=False, fmt=".2f", terminal=True, schema=_OPTIONAL_NUMBER,
    compute=lambda s: relative_l1(s.values["l1"], s.values["content_free_l1"])))
L1_OVER_WORLD_MEAN = register_metric(Metric(
    "l1_over_world_mean", "L1 / world mean", "l1 / world_mean_l1 (below 1: closer than the world mean profile).",
    (INDEX,), higher_is_better=False, fmt=".2f", column_place="detail", schema=_OPTIONAL_NUMBER,
    compute=lambda s: relative_l1(s.values["l1"], s.values["world_mean_l1"])))
DIRECTEDNESS = register_metric(Metric(
    "directedness", "Directedness", "Cosine of (aligned - naive) with (target - naive), on the wordings' balanced "
    "indices; null without the naive model.", (INDEX,), higher_is_better=True, fmt="+.2f", terminal=True,
    schema=_OPTIONAL_NUMBER, compute=_directedness))
MIRROR = register_metric(Metric(
    "mirror", "Mirror", "Correlation of the index change against naive under the in-order and the reversed rendering "
    "of the same wordings; null without the naive model.", (INDEX,), higher_is_better=True, fmt="+.2f",
    terminal=True, schema=_OPTIONAL_NUMBER, compute=_mirror))
ALIGNMENT = register_metric(Metric(
    "alignment", "Aligned", "The verdict aligned: held-out balanced L1 below naive's and the content-free L1 by at "
    "least 5% of the content-free L1, directedness > 0, mirror > 0 (ALIGNED_CHECKS).", (INDEX,), higher_is_better=True, fmt="", row=False,
    schema={"anyOf": [{"$ref": "#/$defs/alignment"}, {"type": "null"}]}, compute=_alignment,
    columns=lambda table: []))  # rows carry its verdict over seeds: leaderboard.aligned_summary
DIMENSION_RANK_AGREEMENT = register_metric(Metric(
    "dimension_rank_agreement", "rank agreement",
    "Kendall and Spearman between the model's and the target's scores across the dimensions.", (INDEX,),
    higher_is_better=True, fmt=".2f", row=False, required=True,
    schema={"$ref": "#/$defs/rank", "description": "Kendall and Spearman between the model's and the target's scores "
                                                   "across the dimensions (depends on C when C differs by dimension)."},
    compute=lambda s: _dimension_rank_agreement(s.context["indices"], s.context["target_scores"]),
    columns=lambda table: []))
SIMILARITY = register_metric(Metric(
    "similarity", "Similarity", "1 - the mean Jensen-Shannon distance to the target's answer shares.", (DISTRIBUTION,),
    higher_is_better=True, fmt=".3f", primary=True, task=True, required=True,
    schema={"anyOf": [{"$ref": "#/$defs/probability"}, {"type": "null"}],
            "description": "1 - the Jensen-Shannon distance (base 2) per question, averaged over the questions the "
                           "target was asked, per variant, then over the variants; null when the target was asked none."},
    compute=_balanced_similarity, per_variant=_similarity_per_variant, columns=_similarity_columns,
    summary_columns=_similarity_summary_columns))
SIMILARITY_PER_WORDING = register_metric(Metric(
    "similarity_per_wording", "Similarity per wording", "Each wording's similarity of its order-balanced answer "
    "shares.", (DISTRIBUTION,), higher_is_better=True, fmt=".3f", row=False, columns=lambda table: [],
    schema={"type": "object"}, compute=_similarity_per_wording))
JSD = register_metric(Metric(
    "jsd", "JSD", "1 - similarity: the mean Jensen-Shannon distance.", (DISTRIBUTION,),
    higher_is_better=False, fmt=".3f", task=True, required=True,
    schema={"anyOf": [{"$ref": "#/$defs/probability"}, {"type": "null"}],
            "description": "1 - similarity: the mean Jensen-Shannon distance."},
    compute=lambda s: None if s.values["similarity"] is None else 1.0 - s.values["similarity"],
    columns=lambda table: [Column("jsd_heldout", "JSD, both held out", lambda r: r["jsd"]["heldout"]["mean"],
                                  lambda r: fmt_stat(r["jsd"]["heldout"], ".3f"), split="heldout")]))
RANK = register_metric(Metric(
    "rank", "Rank", "The target's rank among the data's countries by similarity (1: most similar).", (DISTRIBUTION,),
    higher_is_better=False, fmt=".1f", required=True,
    schema={"type": ["integer", "null"], "minimum": 1,
            "description": "The target's rank among the data's countries by similarity (1: most similar)."},
    compute=_rank,
    columns=lambda table: [Column("rank_heldout", "Rank, both held out", lambda r: r["rank"]["heldout"]["mean"],
                                  lambda r: _rank_text_of(r, "heldout"), split="heldout")]))
OPTION_MASS = register_metric(Metric(
    "option_mass", "Option mass", "Next-token probability on the answer options, mean over the split's variants "
    "and items.", (INDEX, DISTRIBUTION), higher_is_better=True, fmt=".3f", task=True, needs_target=False, required=True,
    schema=_PROBABILITY, schemas={DISTRIBUTION: _OPTIONAL_PROBABILITY}, compute=lambda s: float(s.option_mass.mean()) if s.option_mass.size else None,
    columns=_option_mass_columns))
