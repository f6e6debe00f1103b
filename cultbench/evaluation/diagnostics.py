"""Validity diagnostics: does the model answer the items' content, or only their format?

A survey score means something only when the answers follow what the items ask. A model that
picks an answer by its position on the screen, or gives the same answer to every item, still
yields six numbers that look like indices. These small pure functions read a scorer's output
(answer distributions mapped back to the instrument's answer values, option mass, expected
answers, indices, all per prompt variant) and report:

- ``option_mass``: mean next-token probability on the answer options;
- ``position_bias``: probability on the option shown first (for a reversed scale that is the
  last answer value), averaged per scale order and then over the orders;
- ``reversal``: total-variation distance between the mean answer distribution under in-order
  scales and under reversed scales (mapped back), per item, averaged over items; plus the shift
  of the expected answer in scale points;
- ``item_discrimination``: SD of the expected answers across items (per variant, then averaged);
- ``wording_stability``: SD of each index across prompt variants, and its mean over dimensions;
- a verdict: ``interpretable`` is true only when every check below could be computed and passed.

Distribution instruments (GlobalOpinionQA: each item with its own options, shown as letters) get
the checks that apply to them (``diagnose_distribution``): option mass over the item's letters,
position bias and reversal consistency (the same functions, given each item's option count), and
``similarity_stability``, the wording stability of the similarity to the data's countries, against
how much that similarity differs between countries. Expected answers and indices do not exist
there, so item discrimination is not one of their checks.

The thresholds are module constants; docs/diagnostics.md explains them with the bundled model's
numbers. Every function guards against empty input (None, with a reason where it matters).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

ASCENDING, DESCENDING = "ascending", "descending"

# At least half of the next-token probability must fall on the answer options. Below that the
# model mostly does something other than answer, and the distribution renormalised over the
# options describes a minority of its behaviour.
MIN_OPTION_MASS = 0.5
# Probability on the first shown option, averaged over in-order and reversed scales. A model whose
# mapped-back answers do not depend on the order puts p(1) on it under one order and p(5) under
# the other, so its average is (p(1) + p(5)) / 2 <= 0.5 whatever it believes: more than 0.5 is
# only possible by favouring the first position. Checked only when both orders were scored (with
# one order, a model that endorses the scale's first answer is indistinguishable from one that
# picks the first position).
MAX_POSITION_BIAS = 0.5
# Total variation between in-order and reversed answer distributions (mapped back), mean over
# items: the share of answer probability that moves when only the scale's direction (and the
# variants' wording) changes. 0 for a model that reads the labels; 1 for one that always picks
# the first shown option. Above a quarter, the direction of the scale decides more of the answer
# than a reading of the item can explain.
MAX_REVERSAL_DISTANCE = 0.25
# SD of the expected answers across the items, in scale points. Every VSM index is a difference
# of item means times 25 to 40; when all items get nearly the same answer (SD below a quarter of a
# scale point) the indices are differences of near-equal numbers and carry no profile.
MIN_ITEM_SD = 0.25
# SD of an index across prompt variants, mean over dimensions, in index points. The published
# country scores (hofstede-2015) have an SD across countries of 19 to 24 points per dimension
# (docs/diagnostics.md gives the command); a wording SD above 10, half of that, means the prompt's
# wording alone moves an index by about as much as the countries a score should tell apart.
MAX_WORDING_SD = 10.0
# Distribution instruments: the SD of the similarity to a country across prompt variants (mean over
# the data's countries) may be at most this share of the SD of the similarity across countries
# (each averaged over the variants). The same rule as MAX_WORDING_SD, half of the spread between the
# countries a score should tell apart, except that here the spread is the model's similarities to
# the countries (a similarity has no published country scores to take it from): above half, the
# wording moves the similarity about as much as the choice of country does, and the ranking of
# countries is the wording's as much as the model's.
MAX_WORDING_SHARE = 0.5

CHECKS = ("option_mass", "position_bias", "reversal", "item_discrimination", "wording_stability")


def option_mass(mass) -> float | None:
    """Mean probability on the answer options (any shape); None when empty."""
    mass = np.asarray(mass, dtype=float)
    return float(mass.mean()) if mass.size else None


def first_shown_probability(probs, orders: Sequence[str], counts: Sequence[int] | None = None) -> np.ndarray:
    """[V, I] probability on the option shown first: ``probs`` [V, I, K] holds answer values in the
    instrument's order, so that is value 1 under an in-order scale and value K under a reversed one.
    ``counts``: each item's own number of options, where items have fewer than K (zero-padded
    beyond them); a reversed item then shows its option ``counts[i]`` first."""
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 3 or len(orders) != probs.shape[0]:
        raise ValueError(f"probs must be [variants, items, options] with one order per variant; got "
                         f"{probs.shape} and {len(orders)} orders")
    items = np.arange(probs.shape[1])
    last = np.full(len(items), probs.shape[2] - 1) if counts is None else np.asarray(counts, dtype=int) - 1
    first = [probs[v, :, 0] if order == ASCENDING else probs[v, items, last] for v, order in enumerate(orders)]
    return np.stack(first) if first else np.zeros((0, probs.shape[1]))


def position_bias(probs, orders: Sequence[str], counts: Sequence[int] | None = None) -> dict:
    """Probability on the first shown option: per scale order (mean over its variants and items) and
    ``mean``, the average of the orders present (each order weighs the same); None when empty.
    ``counts`` as for :func:`first_shown_probability`."""
    first = first_shown_probability(probs, orders, counts)
    per_order = {o: float(first[[k for k, x in enumerate(orders) if x == o]].mean())
                 for o in (ASCENDING, DESCENDING) if o in orders and first.size}
    return {"mean": float(np.mean(list(per_order.values()))) if per_order else None,
            ASCENDING: per_order.get(ASCENDING), DESCENDING: per_order.get(DESCENDING)}


def reversal_consistency(probs, orders: Sequence[str], options: Sequence[float] | None = None) -> dict:
    """Distance between the answers under in-order and under reversed scales, both mapped back.

    ``total_variation``: per item, half the L1 distance between the mean in-order distribution and
    the mean reversed distribution; mean over items (0: the same answers, 1: disjoint ones).
    ``expected_shift``: per item, the absolute difference of the two expected answers (scale
    points); mean over items; None without answer values ``options`` (items whose options are
    not a scale). None, with ``reason``, unless both orders were scored.
    """
    probs = np.asarray(probs, dtype=float)
    up = [k for k, o in enumerate(orders) if o == ASCENDING]
    down = [k for k, o in enumerate(orders) if o == DESCENDING]
    if probs.size == 0 or not up or not down:
        return {"total_variation": None, "expected_shift": None,
                "reason": "needs at least one in-order and one reversed-scale variant"}
    p_up, p_down = probs[up].mean(axis=0), probs[down].mean(axis=0)  # [I, K]
    tv = 0.5 * np.abs(p_up - p_down).sum(axis=-1)
    shift = None if options is None else float(np.abs((p_up - p_down) @ np.asarray(options, dtype=float)).mean())
    return {"total_variation": float(tv.mean()), "expected_shift": shift, "reason": None,
            "variants": {ASCENDING: len(up), DESCENDING: len(down)}}


def item_discrimination(expected) -> float | None:
    """SD (population, over the instrument's items) of the expected answers, per variant, averaged
    over the variants. ``expected`` [V, I] (or [I]); None when empty."""
    expected = np.atleast_2d(np.asarray(expected, dtype=float))
    if expected.size == 0:
        return None
    return float(expected.std(axis=1).mean())


def wording_stability(indices, dimension_ids: Sequence[str]) -> dict:
    """Sample SD of each index across the prompt variants (the variants are a sample of possible
    wordings), and its mean over dimensions. ``indices`` [V, D]; None, with ``reason``, under two
    variants."""
    indices = np.asarray(indices, dtype=float)
    if indices.ndim != 2 or indices.shape[0] < 2:
        return {"per_dimension": None, "mean": None, "reason": "needs at least two prompt variants"}
    sd = indices.std(axis=0, ddof=1)
    return {"per_dimension": dict(zip(dimension_ids, sd.tolist())), "mean": float(sd.mean()), "reason": None}


def similarity_stability(similarities, countries: Sequence[str]) -> dict:
    """Wording stability of a distribution instrument's similarity: ``similarities`` [V, N] is the
    similarity (1 - mean Jensen-Shannon distance) to each of N countries under each of V prompt
    variants. ``per_country``: the sample SD across the variants; ``mean``: its mean over the
    countries; ``between_countries``: the sample SD across the countries of each country's mean
    similarity over the variants (how far apart the countries are, for the threshold). None, with
    ``reason``, under two variants or two countries."""
    sims = np.asarray(similarities, dtype=float)
    if sims.ndim != 2 or sims.shape[0] < 2 or sims.shape[1] < 2:
        return {"per_country": None, "mean": None, "between_countries": None,
                "reason": "needs at least two prompt variants and two countries"}
    sd = sims.std(axis=0, ddof=1)
    return {"per_country": dict(zip(countries, sd.tolist())), "mean": float(sd.mean()),
            "between_countries": float(sims.mean(axis=0).std(ddof=1)), "reason": None}


def _position_value(report: dict):
    """Position bias counts only when both orders were scored (see MAX_POSITION_BIAS)."""
    return report["position_bias"]["mean"] if report["reversal"]["total_variation"] is not None else None


def judge(values: dict) -> dict:
    """The verdict of checks ``{name: (value, threshold, rule)}`` (in that order): each check's
    ``{value, threshold, rule, passed}`` (passed None: not measurable), ``failed`` and
    ``unchecked`` (names), and ``interpretable``: every check measured and passed."""
    checks = {}
    for name, (value, threshold, rule) in values.items():
        passed = None if value is None or threshold is None else bool(
            value >= threshold if rule == ">=" else value <= threshold)
        checks[name] = {"value": value, "threshold": threshold, "rule": rule, "passed": passed}
    failed = [n for n in checks if checks[n]["passed"] is False]
    unchecked = [n for n in checks if checks[n]["passed"] is None]
    return {"checks": checks, "failed": failed, "unchecked": unchecked,
            "interpretable": not failed and not unchecked}


def verdict(report: dict) -> dict:
    """The checks of a diagnostics report (see :func:`judge`). A check that cannot be measured
    does not pass: position answering is ruled out only by showing the scale both ways."""
    values = {"option_mass": (report["option_mass"], MIN_OPTION_MASS, ">="),
              "position_bias": (_position_value(report), MAX_POSITION_BIAS, "<="),
              "reversal": (report["reversal"]["total_variation"], MAX_REVERSAL_DISTANCE, "<="),
              "item_discrimination": (report["item_discrimination"], MIN_ITEM_SD, ">="),
              "wording_stability": (report["wording_stability"]["mean"], MAX_WORDING_SD, "<=")}
    return judge({name: values[name] for name in CHECKS})


def diagnose(probs, mass, expected, indices, orders: Sequence[str], options: Sequence[float],
             dimension_ids: Sequence[str]) -> dict:
    """Every diagnostic and the verdict for one candidate scored on V variants and I items:
    ``probs`` [V, I, K] (answer values in the instrument's order), ``mass`` [V, I], ``expected``
    [V, I], ``indices`` [V, D]; ``orders`` one scale order per variant."""
    report = {"variants": len(orders), "option_mass": option_mass(mass),
              "position_bias": position_bias(probs, orders),
              "reversal": reversal_consistency(probs, orders, options),
              "item_discrimination": item_discrimination(expected),
              "wording_stability": wording_stability(indices, dimension_ids)}
    report.update(verdict(report))
    return report


def diagnose_distribution(probs, mass, orders: Sequence[str], counts: Sequence[int], similarities,
                          countries: Sequence[str]) -> dict:
    """The diagnostics that apply to a distribution instrument, and their verdict, for one
    candidate scored on V variants and I items: ``probs`` [V, I, K] (each item's options in the
    data's order, zero beyond its own ``counts[i]``), ``mass`` [V, I] (probability on the item's
    letters), ``orders`` one option order per variant, ``similarities`` [V, N] to the N
    ``countries``. The wording-stability threshold is MAX_WORDING_SHARE of the spread between the
    countries (``wording_stability.between_countries``)."""
    stability = similarity_stability(similarities, countries)
    report = {"variants": len(orders), "option_mass": option_mass(mass),
              "position_bias": position_bias(probs, orders, counts),
              "reversal": reversal_consistency(probs, orders),
              "wording_stability": stability}
    between = stability["between_countries"]
    report.update(judge({"option_mass": (report["option_mass"], MIN_OPTION_MASS, ">="),
                         "position_bias": (_position_value(report), MAX_POSITION_BIAS, "<="),
                         "reversal": (report["reversal"]["total_variation"], MAX_REVERSAL_DISTANCE, "<="),
                         "wording_stability": (stability["mean"], None if between is None
                                               else MAX_WORDING_SHARE * between, "<=")}))
    return report
