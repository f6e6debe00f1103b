"""The survey as lm-eval data: documents, one answer record per document, and the aggregations.

lm-eval scores each document (one item) as a multiple-choice question over the option labels
"1".."K". ``answer_record`` turns the K log-likelihoods into what the scorer reads from the
next-token distribution: the distribution renormalised over the options, its expected answer on
the instrument's scale (reversed scales mapped back), the probability mass on the options, the
probability on the option shown first (position bias) and the distribution by answer value.
Every metric of a document carries the same record ``(item id, expected answer, mass, first
shown, distribution)``; each aggregation function then rebuilds the indices from all records,
because an index needs the answers to several items. Nothing here imports lm-eval.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from cultbench.harness.settings import SurveySettings
from cultbench.metrics import distance, js_distance, signed_error, similarity
from cultbench.prompts import displayed_options, option_labels, render_messages

Record = tuple  # index instruments: (item id, expected answer, option mass, probability on the first
# shown option, distribution over the answer values in the instrument's order); distribution
# instruments: (item id, shares, mass)


def survey_rows(settings: SurveySettings) -> list[dict]:
    """One document per item, in the instrument's order, rendered by ``cultbench.prompts``."""
    inst, variant = settings.instrument, settings.variant
    if settings.distribution:
        return _distribution_rows(settings)
    rows = []
    for position, item in enumerate(inst.items):
        messages = render_messages(inst, item, variant, settings.persona)
        system = [m["content"] for m in messages if m["role"] == "system"]
        rows.append({
            "item": item.id, "position": position, "block": item.block, "variant": variant.name,
            "system": system[0] if system else "", "user": messages[-1]["content"],
            "choices": option_labels(inst, item, variant),
            "answers": [int(a) for a in variant.displayed_answers(inst.options)],
        })
    return rows


def _distribution_rows(settings: SurveySettings) -> list[dict]:
    """Distribution instruments: the letters as choices, ``answers`` the option (index into the
    item's options) behind each displayed letter."""
    inst, variant, rows = settings.instrument, settings.variant, []
    for position, item in settings.items:
        messages = render_messages(inst, item, variant, settings.persona)
        system = [m["content"] for m in messages if m["role"] == "system"]
        rows.append({
            "item": item.id, "position": position, "block": item.block, "variant": variant.name,
            "kind": "distribution", "questions": inst.split[item.id],
            "system": system[0] if system else "", "user": messages[-1]["content"],
            "choices": option_labels(inst, item, variant), "answers": displayed_options(inst, item, variant),
        })
    return rows


def survey_docs(**metadata):
    """lm-eval ``custom_dataset``: the items as a ``datasets.DatasetDict`` with a "test" split.

    lm-eval passes the task's metadata as keyword arguments (plus the model arguments on the
    command line); the settings keys among them choose instrument, variant and persona.
    Built from the package's own files: no network.
    """
    import datasets

    settings = SurveySettings.resolve(metadata)
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(survey_rows(settings))})


def answer_record(doc: dict, loglikelihoods: Sequence[float]) -> Record:
    """(item id, expected answer, option mass, probability on the first shown option, distribution
    by answer value) from the log-likelihoods of the displayed options."""
    lls = np.asarray(loglikelihoods, dtype=np.float64)
    if lls.shape != (len(doc["answers"]),):
        raise ValueError(f"item {doc['item']}: {lls.shape[0]} log-likelihoods for {len(doc['answers'])} options")
    top = lls.max()
    weights = np.exp(lls - top)
    probs = weights / weights.sum()
    mass = float(np.exp(top) * weights.sum())
    if doc.get("kind") == "distribution":  # the shares in the item's option order
        shares = np.zeros(len(probs))
        shares[np.asarray(doc["answers"])] = probs
        return (doc["item"], tuple(shares.tolist()), mass)
    expected = float(probs @ np.asarray(doc["answers"], dtype=np.float64))
    answers = np.asarray(doc["answers"])
    by_value = probs[np.argsort(answers)]  # displayed order -> answer values in ascending order
    return (doc["item"], expected, mass, float(probs[0]), tuple(by_value.tolist()))


def expected_answers(instrument, records: Sequence[Record]) -> np.ndarray:
    """Expected answers in the instrument's item order (mean over repeats; NaN where unanswered)."""
    sums, counts = {}, {}
    for item, expected, *_ in records:
        sums[item] = sums.get(item, 0.0) + float(expected)
        counts[item] = counts.get(item, 0) + 1
    return np.array([sums[i] / counts[i] if i in counts else np.nan for i in instrument.item_ids])


def survey_metrics(settings: SurveySettings) -> dict[str, tuple[Callable, bool | None]]:
    """Metric name -> (aggregation over records, higher is better).

    Always: one index per dimension, ``option_mass`` and ``position_bias`` (mean probability on
    the option shown first; one task has one scale order, so read it beside the reversed task's:
    see docs/diagnostics.md). With a target: ``l1`` and ``<dim>_error`` (model minus target) per
    dimension.
    """
    inst, constants, target = settings.instrument, settings.constants, settings.target
    if settings.distribution:
        return _distribution_metrics(settings)
    dims = inst.dimension_ids

    def indices(records):
        return inst.indices(expected_answers(inst, records), constants)

    def index_of(j):
        return lambda records: float(indices(records)[j])

    def mass(records):
        return float(np.mean([r[2] for r in records])) if records else float("nan")

    out: dict[str, tuple[Callable, bool | None]] = {d: (index_of(j), None) for j, d in enumerate(dims)}
    def first_shown(records):
        return float(np.mean([r[3] for r in records])) if records else float("nan")

    out["option_mass"] = (mass, True)
    out["position_bias"] = (first_shown, False)
    if target is not None:
        vector = target.vector(dims)
        out["l1"] = (lambda records: float(distance(indices(records), vector)), False)
        for j, d in enumerate(dims):
            out[f"{d}_error"] = ((lambda j: lambda records: float(signed_error(indices(records), vector)[j]))(j),
                                 None)
    return out


def _distribution_metrics(settings: SurveySettings) -> dict[str, tuple[Callable, bool | None]]:
    """Distribution instruments: ``option_mass``; with a target, ``similarity`` (1 - the mean
    Jensen-Shannon distance over the task's items the target was asked) and ``jsd`` (that mean)."""
    target = settings.target

    def mass(records):
        return float(np.mean([r[2] for r in records])) if records else float("nan")

    out: dict[str, tuple[Callable, bool | None]] = {"option_mass": (mass, True)}
    if target is not None:
        def distances(records):
            return [float(js_distance(shares, target.shares[item])) for item, shares, _ in records
                    if item in target.shares]

        out["similarity"] = (lambda records: similarity(distances(records)), True)
        out["jsd"] = (lambda records: 1.0 - similarity(distances(records)), False)
    return out
