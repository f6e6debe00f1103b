"""The metric registry: every result metric is declared once, here, by ``register_metric``.

A declaration (``Metric``) says what a metric is called, how it is computed from one scored split
against one target (``ScoredSplit``), how it is aggregated (over the split's prompt variants by its
computation; over seeds into a leaderboard row: mean, sd, min, max, n; over targets in a summary:
the mean with a bootstrap CI), whether higher is better, how a value is shown, which instrument
kinds it applies to, its JSON Schema in a result record, and its leaderboard columns. Evaluation,
result records, the schema, the leaderboard rows and columns, the terminal summaries, the study
and the lm-eval task metrics all read the declarations (docs/metrics.md: adding a metric).

The declarations of cultbench's own metrics are in ``cultbench.evaluation.metrics``, beside the functions
they use; this module imports nothing else from cultbench, so anything may import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from cultbench.errors import CultbenchError, did_you_mean

INDEX, DISTRIBUTION = "index", "distribution"
KINDS = (INDEX, DISTRIBUTION)


@dataclass
class ScoredSplit:
    """One split's scores of one candidate, against one target: what a metric is computed from.

    ``scores`` [V, D] are the candidate's scores per prompt variant on ``dimensions`` (an index
    instrument: its indices; a distribution instrument: answer shares per ``item:option`` slot),
    ``target`` [D] the target's; ``option_mass`` [V, I] the probability on the answer options of
    the split's items. ``context`` holds what only one kind has (an index instrument: ``indices``,
    the split's mean indices on every dimension, and ``target_scores``; a distribution instrument:
    ``per_variant`` (scores -> [V] similarity), ``asked`` (items the target was asked), ``ranking``
    (countries by similarity)). ``values`` fills with the metrics computed so far, in registry
    order, so a metric may read an earlier one (``jsd`` reads ``similarity``).
    """
    kind: str
    variants: Sequence[str]
    dimensions: Sequence[str]
    scores: np.ndarray
    target: np.ndarray
    option_mass: np.ndarray
    context: Mapping[str, Any] = field(default_factory=dict)
    values: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """One result metric. ``compute(split)`` gives the record's value (None: not computable for
    this split and target); a metric with ``per_variant`` (split -> [V] values) is their mean over
    the split's variants unless ``compute`` says otherwise, and its record also holds
    ``<name>_per_variant`` (variant -> value). ``per_dimension``: the value is a mapping dimension
    -> number, aggregated per dimension. ``row``: the leaderboard aggregates it over seeds into
    each row (``row[name][split]``: mean, sd, min, max, n). ``columns(table)`` -> the leaderboard
    columns that show it (``table``: a ``cultbench.columns.Table``); None shows one
    column per ``column_splits`` with ``label`` and ``fmt``. ``primary``: the kind's headline
    metric (compared with the naive model, starred, summarised over targets); one per kind.
    ``task``: lm-eval tasks report it (as ``<name>``, or ``<dim>_<suffix>`` per dimension, see
    ``task_suffix``). ``schema``: the JSON Schema of its value in a record (``schemas``: per kind,
    where a kind's differs); ``required``: records of its kinds must hold it.
    """
    name: str
    label: str
    description: str
    kinds: tuple[str, ...]
    higher_is_better: bool | None
    fmt: str
    schema: Mapping
    compute: Callable[[ScoredSplit], Any] | None = None
    per_variant: Callable[[ScoredSplit], np.ndarray] | None = None
    per_dimension: bool = False
    row: bool = True
    columns: Callable[[Any], list] | None = None
    summary_columns: Callable[[Any], list] | None = None  # a primary metric's columns in the summary table
    column_splits: tuple[str, ...] = ("heldout",)
    column_place: str = "main"  # "main": before a row's verdict and cost columns; "detail": after them
    primary: bool = False
    task: bool = False
    task_suffix: str | None = None
    terminal: bool = False  # `cultbench run`'s summary table shows it (held out) beside the primary metric
    needs_target: bool = True  # False: computed without a target (lm-eval tasks report it always)
    required: bool = False  # records of its kinds must hold it (cultbench's own metrics of schema v2 do)
    schemas: Mapping[str, Mapping] = field(default_factory=dict)  # kind -> its schema, where it differs

    def schema_for(self, kind: str) -> dict:
        """The JSON Schema of this metric's value in a record of ``kind``."""
        return dict(self.schemas.get(kind, self.schema))

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"metric name {self.name!r} must be an identifier")
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"metric {self.name}: kinds must be among {', '.join(KINDS)}, got {self.kinds}")
        if self.compute is None and self.per_variant is None:
            raise ValueError(f"metric {self.name}: give compute or per_variant")
        if self.primary and self.summary_columns is None:
            raise ValueError(f"metric {self.name}: a primary metric needs summary_columns")

    def value(self, split: ScoredSplit):
        """The record's value of this metric on ``split``."""
        if self.compute is not None:
            return self.compute(split)
        values = self.per_variant(split)
        return None if any(v is None for v in values) else float(np.mean(values))

    def record_fields(self, split: ScoredSplit) -> dict:
        """``{name: value}``, with ``<name>_per_variant`` where the metric has per-variant values."""
        out = {self.name: self.value(split)}
        if self.per_variant is not None:
            out[f"{self.name}_per_variant"] = dict(zip(split.variants, np.asarray(self.per_variant(split)).tolist()))
        return out


METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Add ``metric`` to the registry (a name may be declared once; one primary metric per kind)."""
    if not isinstance(metric, Metric):
        raise TypeError(f"register_metric takes a Metric, not {type(metric).__name__}")
    if metric.name in METRICS:
        raise ValueError(f"metric {metric.name!r} is already registered")
    if metric.primary:
        taken = [k for k in metric.kinds if any(m.primary and k in m.kinds for m in METRICS.values())]
        if taken:
            raise ValueError(f"metric {metric.name}: kind {taken[0]} already has a primary metric")
    METRICS[metric.name] = metric
    return metric


def unregister_metric(name: str) -> None:
    """Remove a metric (tests that declare one take it out again)."""
    METRICS.pop(name, None)


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise CultbenchError(f"unknown metric {name!r}; metrics: {', '.join(METRICS)}.{did_you_mean(name, METRICS)}")
    return METRICS[name]


def metrics_for(kind: str) -> list[Metric]:
    """The metrics of an instrument kind, in registration order."""
    return [m for m in METRICS.values() if kind in m.kinds]


def primary_metric(kind: str) -> Metric:
    """The headline metric of an instrument kind (index: ``l1``; distribution: ``similarity``)."""
    for m in metrics_for(kind):
        if m.primary:
            return m
    raise CultbenchError(f"no primary metric is registered for {kind} instruments")


def compute_metrics(split: ScoredSplit) -> dict:
    """Every metric of ``split.kind`` on ``split``: the record's metric fields, in registry order."""
    out = {}
    for metric in metrics_for(split.kind):
        fields = metric.record_fields(split)
        split.values.update(fields)
        out.update(fields)
    return out


def versus_naive(split: ScoredSplit, naive_scores: np.ndarray) -> dict:
    """The primary metric of the naive model's scores [V, D] on the same split and target, and the
    difference ``delta_vs_naive`` (the candidate's value minus the naive model's)."""
    metric = primary_metric(split.kind)
    mine = split.values.get(metric.name, metric.value(split))
    naive = metric.value(ScoredSplit(split.kind, split.variants, split.dimensions, naive_scores, split.target,
                                     split.option_mass, split.context))
    return {f"naive_{metric.name}": naive,
            "delta_vs_naive": None if naive is None or mine is None else mine - naive}
