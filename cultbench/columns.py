"""Table columns and number formats: what the leaderboard page, its Markdown twin and the metric
declarations (``cultbench.evaluation.metrics``) build tables from. Imports nothing else from cultbench."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence


def fmt(value, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def fmt_stat(s: dict, spec: str = ".2f") -> str:
    """"mean ± sd" (sd over seeds), or the mean alone for one seed."""
    if s["mean"] is None:
        return "–"
    return fmt(s["mean"], spec) + ("" if s["sd"] is None else f" ± {fmt(s['sd'], spec)}")


def fmt_ci(c: dict, spec: str = ".1f") -> str:
    """"mean [low, high]" (a confidence interval), or the mean alone where there is none."""
    if c["mean"] is None:
        return "–"
    return fmt(c["mean"], spec) + ("" if c["ci_low"] is None else f" [{fmt(c['ci_low'], spec)}, {fmt(c['ci_high'], spec)}]")


def target_label(target: dict) -> str:
    return f"{target['name']} ({target['source']}{', estimated' if target.get('estimated') else ''})"


@dataclass(frozen=True)
class Column:
    id: str
    header: str
    value: Callable[[dict], object]  # what sorting uses (number, text or None)
    text: Callable[[dict], str]  # what is shown
    numeric: bool = True
    title: Callable[[dict], str] | None = None  # a tooltip: the full text of a shortened cell
    split: str | None = None  # the split the column is about (the page's split filter hides the other)


@dataclass(frozen=True)
class Table:
    """What a metric's columns depend on: the instrument kind, its splits (or blocks) and how
    each is called in a header, and the dimensions of the rows' instruments."""
    kind: str
    splits: Mapping[str, str]  # split (or block) -> header text, in the table's order
    dimensions: Sequence[str] = ()

    @staticmethod
    def page_split(split: str) -> str:
        """The page's split filter knows train and held-out: a block counts as held out unless it is train."""
        return "train" if split == "train" else "heldout"


def delta(split: str):
    """A row's difference to the naive model on ``split`` (``leaderboard.compare_with_naive``)."""
    return lambda r: (r.get("delta_vs_naive") or {}).get(split)


def metric_columns(metric, table: Table) -> list[Column]:
    """The columns of ``metric`` (a ``metric_registry.Metric``): its own, or one per split it names."""
    if metric.columns is not None:
        return metric.columns(table)
    if metric.per_dimension:  # one column per dimension and split
        return [Column(f"{metric.name}_{d}_{split}", f"{d.upper()} {metric.label} ({table.splits.get(split, split)})",
                       lambda r, s=split, d=d: (r[metric.name][s].get(d) or {}).get("mean"),
                       lambda r, s=split, d=d: fmt_stat(r[metric.name][s].get(d) or {"mean": None}, metric.fmt),
                       split=table.page_split(split))
                for split in metric.column_splits for d in table.dimensions]
    return [Column(f"{metric.name}_{split}", f"{metric.label} ({table.splits.get(split, split)})",
                   lambda r, s=split: r[metric.name][s]["mean"],
                   lambda r, s=split: fmt_stat(r[metric.name][s], metric.fmt), split=table.page_split(split))
            for split in metric.column_splits]


def best_mark(row: dict) -> str:
    """A best cell's mark: ★ when the row beats the next by more than the seeds' noise; the
    best row that does not says why (see leaderboard.mark_best)."""
    if row.get("best"):
        return " ★"
    return {"one seed": " (best; one seed: unmarked)", "within noise": " (best, within noise)"}.get(
        row.get("best_note"), "")


def best_title(row: dict, what: str) -> str:
    if row.get("best"):
        return f"{what} of this target, beyond twice the standard error (seeds and wordings) of its gap to the next row"
    return {"one seed": f"{what} of this target, but a row of one seed has no noise estimate: not marked",
            "within noise": f"{what} of this target, but within twice the standard error (seeds and wordings) of "
                            "its gap to the next row"}.get(row.get("best_note"), "")
