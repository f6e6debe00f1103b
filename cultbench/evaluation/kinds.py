"""Instrument kinds: what an index instrument (VSM 2013: items -> formulas -> indices -> distance to
a country's published profile) and a distribution instrument (GlobalOpinionQA: an answer
distribution per question -> Jensen-Shannon distance to a country's answer shares) each are, once
the scorer has scored them. One class, ``InstrumentKind``, and one object per kind own:

- what a candidate's scores are (``scores``) and the distance the aligners minimise (``distance``);
- where a target's reference comes from (``reference``: a published profile, or the instrument's
  own data);
- the splits a result is reported on (``splits``, with their headers in tables) and the fields of
  a result record (``record_parts``) and of a leaderboard row (``row_fields``, ``target_fields``,
  ``target_column``).

Code that handles results asks ``kind_of(instrument or record)`` instead of testing the kind
itself; the metrics of each kind are declared in ``cultbench.evaluation.metrics``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from cultbench.columns import Column, target_label
from cultbench.errors import CultbenchError
from cultbench.evaluation.metrics import DISTRIBUTION, INDEX, metrics_for
from cultbench.profiles import lookup, target_key

SPLITS = ("train", "heldout")
# A distribution record's blocks: name -> (wording split, question split).
BLOCKS = {"train": ("train", "train"), "heldout_questions": ("train", "heldout"),
          "heldout_wordings": ("heldout", "train"), "heldout": ("heldout", "heldout")}


def metric_fields(kind: str, versus: Mapping) -> dict:
    """The record's fields of every registered metric of ``kind`` (value and per-variant values),
    from an evaluation's comparison with one target (``versus``)."""
    out = {}
    for metric in metrics_for(kind):
        if metric.name not in versus and not metric.required:
            continue  # an optional metric the evaluation did not compute (e.g. a stand-in's)
        out[metric.name] = versus[metric.name]
        if metric.per_variant is not None:
            out[f"{metric.name}_per_variant"] = versus[f"{metric.name}_per_variant"]
    return out


def present_splits(evaluation: Mapping) -> list[str]:
    """The splits an evaluation has: train and held-out, and validation since wording version 4."""
    return [s for s in (*SPLITS, "validation") if s in evaluation["splits"]]


def _diagnostics(evaluation: Mapping) -> dict:
    """The validity diagnostics of an evaluation per split and over all variants ({} without)."""
    present = present_splits(evaluation)
    if all("diagnostics" in evaluation["splits"][s] for s in present) and "diagnostics" in evaluation:
        return {"diagnostics": {**{s: evaluation["splits"][s]["diagnostics"] for s in present},
                                "all": evaluation["diagnostics"]}}
    return {}


class InstrumentKind:
    """What one kind of instrument is, once scored (see the module docstring)."""

    name: str
    scores: str  # what a candidate's scores on the instrument are
    distance: str  # the distance the aligners minimise (the default, for index instruments)
    splits: Mapping[str, str]  # the splits (or blocks) results are reported on -> header, in tables' order
    target_fields: tuple[str, ...]  # the target's fields a leaderboard row keeps
    target_column: Column
    split_fields: tuple[str, ...]  # an evaluation's per-split fields a record keeps

    def reference(self, instrument, name: str, source: str | None = None, dimensions: Sequence[str] | None = None):
        """The target called ``name``: what a candidate's scores are compared with."""
        raise NotImplementedError

    def target_name(self, target: Mapping) -> str:
        """The key of a target in an evaluation's ``targets``."""
        raise NotImplementedError

    def split_metrics(self, evaluation: Mapping, name: str) -> dict:
        """A record's metrics per split (or block) for the target ``name``."""
        raise NotImplementedError

    def record_parts(self, evaluation: Mapping, target: Mapping) -> tuple[dict, dict, dict, dict]:
        """(instrument, constants, splits, metrics) of the record of ``target`` from an evaluation."""
        splits = {s: {k: evaluation["splits"][s][k] for k in self.split_fields if k in evaluation["splits"][s]}
                  for s in present_splits(evaluation)}
        metrics = {"precision": evaluation["precision"], **self.split_metrics(evaluation, self.target_name(target)),
                   **_diagnostics(evaluation)}
        return self.record_instrument(evaluation), dict(evaluation.get("constants") or {}), splits, metrics

    def record_instrument(self, evaluation: Mapping) -> dict:
        return dict(evaluation["instrument"])

    def row_fields(self, first: Mapping, records: list[dict], stat) -> dict:
        """A leaderboard row's fields of this kind beyond the metrics, from its seeds' records."""
        return {}

    def row_dimensions(self, first: Mapping) -> list[str]:
        """The dimensions a row's per-dimension metrics are aggregated on."""
        return []


class IndexKind(InstrumentKind):
    name, scores, distance = INDEX, "indices", "l1"
    splits = {"heldout": "held-out", "train": "train"}
    target_fields = ("name", "code", "iso2", "source", "estimated", "scores")
    target_column = Column("target", "Target", lambda r: target_label(r["target"]),
                           lambda r: r.get("target_short") or target_label(r["target"]), False,
                           title=lambda r: target_label(r["target"]))
    # "wordings" and "indices_per_wording" since wording version 4 (order-balanced indices per wording)
    split_fields = ("variants", "wordings", "indices", "indices_per_wording", "indices_per_variant",
                    "expected_answers", "option_mass", "option_mass_per_item")

    def reference(self, instrument, name, source=None, dimensions=None):
        """A country's published profile, with every dimension compared (default: the instrument's)."""
        return lookup(name, source=source, dimensions=dimensions or instrument.dimension_ids)

    def target_name(self, target):
        return target_key(target)

    def split_metrics(self, evaluation, name):
        return {s: metric_fields(INDEX, evaluation["splits"][s]["targets"][name]) for s in present_splits(evaluation)}

    def record_instrument(self, evaluation):
        return {**evaluation["instrument"], "dimensions": list(evaluation["splits"]["train"]["indices"])}

    def row_fields(self, first, records, stat):
        dims = self.row_dimensions(first)
        return {"instrument": first["instrument"], "constants": first["constants"],
                "indices": {s: {d: stat(r["splits"][s]["indices"][d] for r in records) for d in dims}
                            for s in SPLITS}}

    def row_dimensions(self, first):
        return list(first["splits"]["train"]["indices"])


class DistributionKind(InstrumentKind):
    name, scores, distance = DISTRIBUTION, "answer shares", "jsd"
    splits = {"heldout": "both held out", "heldout_questions": "held-out questions",
              "heldout_wordings": "held-out wordings", "train": "train"}
    target_fields = ("name", "code", "iso2", "source", "items")
    target_column = Column("target", "Target", lambda r: r["target"]["name"], lambda r: r["target"]["name"], False,
                           title=lambda r: f"{r['target']['name']} ({r['target']['source']}; asked "
                                           f"{r['target']['items']} questions)")
    split_fields = ("variants", "option_mass", "questions", "answer_shares")

    def reference(self, instrument, name, source=None, dimensions=None):
        """A country's answer shares in the instrument's own data."""
        if source is not None:
            raise CultbenchError(f"{instrument.name} takes its targets from its data: no --source")
        return instrument.target(name)

    def target_name(self, target):
        return target["name"]

    def split_metrics(self, evaluation, name):
        out = {}
        for block, (wordings, questions) in BLOCKS.items():
            got = evaluation["splits"][wordings]["questions"][questions]
            t = got["targets"][name]
            out[block] = {"wordings": wordings, "questions": questions, "items": got["items"],
                          "items_asked": t["items_asked"], "countries_ranked": got["countries_ranked"],
                          **metric_fields(DISTRIBUTION, t)}
        return out

    def row_fields(self, first, records, stat):
        return {"countries_ranked": {b: first["metrics"][b]["countries_ranked"] for b in BLOCKS}}


KINDS: dict[str, InstrumentKind] = {INDEX: IndexKind(), DISTRIBUTION: DistributionKind()}


def kind_of(thing) -> InstrumentKind:
    """The kind of an instrument (an object with ``kind``), an instrument record (a mapping, as in
    a result: ``{"kind": ...}``, index when absent) or a result record (by its instrument)."""
    if isinstance(thing, Mapping):
        instrument = thing.get("instrument", thing)
        name = instrument.get("kind", INDEX) if isinstance(instrument, Mapping) else INDEX
    else:
        name = getattr(thing, "kind", INDEX)
    if name not in KINDS:
        raise CultbenchError(f"unknown instrument kind {name!r}; kinds: {', '.join(KINDS)}")
    return KINDS[name]
