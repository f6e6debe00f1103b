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
from cultbench.evaluation.metrics import DISTRIBUTION, INDEX, ScoredSplit, js_distance, metrics_for, similarity
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

    Always: one index per dimension (an index instrument), ``position_bias`` (mean probability on
    the option shown first; one task has one scale order, so read it beside the reversed task's:
    see docs/diagnostics.md) and the registered task metrics that need no target
    (``option_mass``); with a target, the other registered task metrics of the instrument's kind
    (``cultbench.evaluation.metrics``: ``l1`` and ``<dim>_error``; ``similarity`` and ``jsd``), computed
    from the task's records as from one prompt variant.
    """
    inst, constants, target = settings.instrument, settings.constants, settings.target
    if settings.distribution:
        return task_metrics(settings, lambda records: _distribution_split(settings, records))
    dims = inst.dimension_ids

    def indices(records):
        return inst.indices(expected_answers(inst, records), constants)

    def index_of(j):
        return lambda records: float(indices(records)[j])

    def first_shown(records):
        return float(np.mean([r[3] for r in records])) if records else float("nan")

    def split_of(records):
        mean = indices(records)
        return ScoredSplit(INDEX, [settings.variant.name], dims, mean[None, :],
                           None if target is None else target.vector(dims), _mass(records),
                           context={"indices": dict(zip(dims, mean.tolist())),
                                    "target_scores": {} if target is None else dict(target.scores)})

    out: dict[str, tuple[Callable, bool | None]] = {d: (index_of(j), None) for j, d in enumerate(dims)}
    registered = task_metrics(settings, split_of)
    out["option_mass"] = registered.pop("option_mass")
    out["position_bias"] = (first_shown, False)
    return {**out, **registered}


def _mass(records) -> np.ndarray:
    """[1, I] the option mass of the task's records (one prompt variant)."""
    return np.array([[r[2] for r in records]], dtype=np.float64).reshape(1, len(records))


def _distribution_split(settings: SurveySettings, records) -> ScoredSplit:
    """A distribution task's records as one variant's split: the similarity over the items the
    target was asked (1 - the mean Jensen-Shannon distance)."""
    target = settings.target
    asked = [] if target is None else [float(js_distance(shares, target.shares[item]))
                                        for item, shares, _ in records if item in target.shares]
    return ScoredSplit(DISTRIBUTION, [settings.variant.name], [], np.empty((1, 0)),
                       None if target is None else np.empty(0), _mass(records),
                       context={"asked": len(asked), "per_variant": lambda _: np.array([similarity(asked)])})


def task_metrics(settings: SurveySettings, split_of: Callable) -> dict[str, tuple[Callable, bool | None]]:
    """The registered task metrics of the instrument's kind (``Metric.task``), as lm-eval
    aggregations over the records (``split_of``: records -> ScoredSplit); those that need a
    target only with one. A value that cannot be computed is NaN."""
    kind = DISTRIBUTION if settings.distribution else INDEX
    out: dict[str, tuple[Callable, bool | None]] = {}
    for metric in metrics_for(kind):
        if not metric.task or (metric.needs_target and settings.target is None):
            continue
        if metric.per_dimension:
            for d in settings.instrument.dimension_ids:
                out[f"{d}_{metric.task_suffix or metric.name}"] = (
                    lambda records, m=metric, d=d: _number(m.value(split_of(records))[d]), metric.higher_is_better)
        else:
            out[metric.name] = (lambda records, m=metric: _number(_in_order(m, split_of(records))),
                                metric.higher_is_better)
    return out


def _in_order(metric, split: ScoredSplit):
    """``metric`` on ``split``, after the task metrics registered before it (which it may read)."""
    for earlier in metrics_for(split.kind):
        if earlier is metric:
            break
        if (earlier.task and earlier.name not in split.values
                and (not earlier.needs_target or split.target is not None)):
            split.values.update(earlier.record_fields(split))
    return metric.value(split)


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def task_metric_names(instrument) -> list[str]:
    """The metrics of an index instrument's task groups, in the task files' order: the indices,
    option mass and position bias, then the registered task metrics that need a target."""
    dims = instrument.dimension_ids
    names = []
    for metric in metrics_for(INDEX):
        if metric.task and metric.needs_target:
            names += [f"{d}_{metric.task_suffix or metric.name}" for d in dims] if metric.per_dimension else [metric.name]
    return [*dims, "option_mass", "position_bias", *names]
