"""The leaderboard: result entries read and checked, seeds aggregated, rank agreement across targets.

``collect`` reads every ``*.json`` of an entries folder, in name order; entries that fail the
schema (or are not JSON) are listed with the reason and left out, and a later entry with the id of
an earlier one (the same combination) is reported as a duplicate and left out. ``aggregate`` makes
one row per model x aligner setup x target, each seed-dependent number as mean, sample standard deviation, min and
max over the seeds. ``rank_agreement_table`` gives, for each model and aligner with several
targets, Kendall's tau and Spearman's rho between the model's indices and the targets' scores,
per dimension (independent of the constants C). ``build`` writes ``leaderboard.json``,
``LEADERBOARD.md`` and ``index.html``.

Entries of distribution instruments (GlobalOpinionQA) are aggregated the same way into sections
of their own, one per instrument and data (``distribution``): their metric is the similarity
(1 - Jensen-Shannon distance, higher is better) on the four blocks of ``results.BLOCKS``, not L1.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from cultbench import __version__
from cultbench.atomic import write_text_atomic
from cultbench.errors import CultbenchError
from cultbench.leaderboard_page import render_html, render_markdown, target_label
from cultbench.metrics import rank_agreement
from cultbench.stats import mean_ci
from cultbench.results import (BLOCKS, SCHEMA_VERSION, SPLITS, combination_key_of, entry_id, is_distribution,
                               read_record)

LEADERBOARD_FORMAT = 2  # 2: distribution instruments' sections
OUTPUT_FILES = ("leaderboard.json", "LEADERBOARD.md", "index.html")


@dataclass
class Entries:
    """The valid entries of a folder (file name -> record), and what was left out and why."""

    records: dict[str, dict] = field(default_factory=dict)
    rejected: list[dict] = field(default_factory=list)  # {"file", "reason"}
    duplicates: list[dict] = field(default_factory=list)  # {"file", "duplicate_of", "id"}


def collect(folder) -> Entries:
    folder = Path(folder)
    if not folder.is_dir():
        raise CultbenchError(f"entries folder {folder} does not exist")
    out, seen = Entries(), {}
    inside = folder.resolve()
    for path in sorted(folder.glob("*.json")):
        if not path.resolve().is_relative_to(inside):  # a symbolic link out of the folder is not an entry
            out.rejected.append({"file": path.name, "reason": "a symbolic link out of the entries folder "
                                                              f"{folder}; copy the file in instead"})
            continue
        try:
            record = read_record(path)
        except CultbenchError as exc:
            out.rejected.append({"file": path.name, "reason": str(exc).removeprefix(f"{path}: ")
                                 .removeprefix(f"{path} is not a valid cultbench result: ")})
            continue
        ident = entry_id(combination_key_of(record))
        if ident in seen:
            out.duplicates.append({"file": path.name, "duplicate_of": seen[ident], "id": ident})
            continue
        seen[ident] = path.name
        out.records[path.name] = record
    return out


def stat(values) -> dict:
    """Mean, sample standard deviation (None for one value), min, max and count."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return {"mean": None, "sd": None, "min": None, "max": None, "n": 0}
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else None,
            "min": min(values), "max": max(values), "n": len(values)}


def _hash(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]


def _model(record) -> dict:
    m = record["model"]
    return {k: m.get(k) for k in ("id", "revision", "file_sha256", "dtype", "parameters")}


def _setup(record) -> dict:
    """The aligner's setup: everything of the combination except the seed, model and target."""
    key = combination_key_of(record)
    a = record["aligner"]
    return {"name": a["name"], "hyperparameters": a["hyperparameters"], "budget": a["budget"],
            "search_dtype": a["search_dtype"], "distance": a["distance"], "dimensions": a["dimensions"],
            "instrument": key["instrument"], "constants": key["constants"], "variants": key["variants"]}


def _common(records: list[tuple[str, dict]]) -> dict:
    """The parts of a row both kinds of entry share: model, aligner setup, seeds, cost, verdict, convergence."""
    first = records[0][1]
    recs = [r for _, r in records]
    setup = _setup(first)
    return {
        "model": _model(first),
        "aligner": {k: setup[k] for k in ("name", "hyperparameters", "budget", "search_dtype", "distance",
                                          "dimensions")},
        "setup": _hash(setup),
        "seeds": sorted(r["aligner"]["seed"] for r in recs if r["aligner"]["seed"] is not None),
        "n": len(recs),
        "fitness": stat(r["aligner"]["fitness"] for r in recs),
        "evaluations": stat(r["aligner"]["evaluations"] for r in recs),
        "wall_time_s": stat(r["run"]["wall_time_s"] for r in recs),
        "verdict": verdict_summary(recs),
        "convergence": [{"seed": r["aligner"]["seed"], "search_precision": r["history"]["search_precision"],
                         "curve": [[p["evaluations"], p["best"]] for p in r["history"]["curve"]
                                   if p["best"] is not None]}
                        for r in recs if r["history"] is not None],
        "files": [name for name, _ in records],
    }


def _row(records: list[tuple[str, dict]]) -> dict:
    first = records[0][1]
    recs = [r for _, r in records]
    dims = list(first["splits"]["train"]["indices"])

    def per_dim(getter):
        return {s: {d: stat(getter(r, s)[d] for r in recs) for d in dims} for s in SPLITS}

    return {
        **_common(records),
        "target": {k: first["target"].get(k) for k in ("name", "code", "iso2", "source", "estimated", "scores")},
        "instrument": first["instrument"], "constants": first["constants"],
        "l1": {s: stat(r["metrics"][s]["l1"] for r in recs) for s in SPLITS},
        "signed_error": per_dim(lambda r, s: r["metrics"][s]["signed_error"]),
        "indices": per_dim(lambda r, s: r["splits"][s]["indices"]),
        "option_mass": {s: stat(r["metrics"][s]["option_mass"] for r in recs) for s in SPLITS},
    }


def _distribution_row(records: list[tuple[str, dict]]) -> dict:
    """A row of a distribution instrument: similarity, JSD, the target's rank among the data's
    countries and option mass on each block (``results.BLOCKS``), over the seeds."""
    first = records[0][1]
    recs = [r for _, r in records]

    def per_block(name):
        return {b: stat(r["metrics"][b][name] for r in recs) for b in BLOCKS}

    return {
        **_common(records),
        "target": {k: first["target"].get(k) for k in ("name", "code", "iso2", "source", "items")},
        "similarity": per_block("similarity"), "jsd": per_block("jsd"), "rank": per_block("rank"),
        "countries_ranked": {b: first["metrics"][b]["countries_ranked"] for b in BLOCKS},
        "option_mass": per_block("option_mass"),
    }


def verdict_summary(records: list[dict]) -> dict:
    """The validity verdict of a row's entries (diagnostics over all evaluated variants): how many
    have diagnostics, how many of those are interpretable, and the checks any of them failed or
    could not run. Entries made before the diagnostics existed have none."""
    assessed = [r["metrics"]["diagnostics"]["all"] for r in records if "diagnostics" in r["metrics"]]
    return {"assessed": len(assessed), "interpretable": sum(bool(d["interpretable"]) for d in assessed),
            "failed": sorted({c for d in assessed for c in d["failed"]}),
            "unchecked": sorted({c for d in assessed for c in d["unchecked"]})}


def _label_rows(rows: list[dict]) -> None:
    """Short labels; a hash is added only where two different setups or model files would look alike."""
    for row in rows:
        a = row["aligner"]
        row["aligner_label"] = a["name"] if a["budget"] is None else f"{a['name']} ({a['budget']} evals)"
        row["model_label"] = row["model"]["id"]
    names = defaultdict(set)
    for row in rows:
        names[row["target"]["name"]].add(row["target"]["source"])
    for row in rows:  # the full "name (source, estimated)" stays in target_label(row["target"])
        t = row["target"]
        row["target_short"] = t["name"] + (f" ({t['source']})" if len(names[t["name"]]) > 1 and not t.get("estimated")
                                           else f" (est., {t['source']})" if len(names[t["name"]]) > 1
                                           else " (est.)" if t.get("estimated") else "")
    for field_, ident in (("aligner_label", lambda r: r["setup"]),
                          ("model_label", lambda r: _hash(r["model"]))):
        looks = defaultdict(set)
        for row in rows:
            looks[row[field_]].add(ident(row))
        for row in rows:
            if len(looks[row[field_]]) > 1:
                row[field_] += f" [{ident(row)[:6]}]"


def _grouped(records: dict[str, dict], make_row) -> list[dict]:
    """One row (``make_row``) per model x aligner setup x target, seeds aggregated, labelled."""
    groups: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for name, record in records.items():
        t = record["target"]
        groups[_hash([_model(record), _setup(record), t["name"], t["source"]])].append((name, record))
    rows = [make_row(sorted(group, key=lambda item: (item[1]["aligner"]["seed"] or 0, item[0])))
            for group in groups.values()]
    _label_rows(rows)
    return rows


def aggregate(records: dict[str, dict]) -> list[dict]:
    """The rows of the index-instrument entries (distribution entries are left to
    ``distribution_sections``); sorted by model, target, held-out L1."""
    rows = _grouped({n: r for n, r in records.items() if not is_distribution(r)}, _row)
    rows.sort(key=lambda r: (r["model_label"], r["target"]["name"], r["target"]["source"],
                             r["l1"]["heldout"]["mean"], r["aligner_label"]))
    return rows


def _instrument_identity(record: dict) -> dict:
    inst = record["instrument"]
    return {"name": inst["name"], "version": inst["version"], "data_sha256": inst["data"]["sha256"],
            "items": inst["items"], "countries": inst["countries"], "questions": inst["questions"],
            "split": inst["split"]}


def distribution_sections(records: dict[str, dict]) -> list[dict]:
    """One section per distribution instrument and data (name, version, data sha256): its rows
    (one per model x aligner setup x target, sorted by model, target and held-out similarity, the
    highest first), each compared with the naive model, and a summary per model x aligner."""
    by_instrument: dict[str, dict[str, dict]] = defaultdict(dict)
    for name, record in records.items():
        if is_distribution(record):
            by_instrument[_hash(_instrument_identity(record))][name] = record
    sections = []
    for group in by_instrument.values():
        rows = _grouped(group, _distribution_row)
        rows.sort(key=lambda r: (r["model_label"], r["target"]["name"], r["similarity"]["heldout"]["mean"] is None,
                                 -(r["similarity"]["heldout"]["mean"] or 0), r["aligner_label"]))
        compare_with_naive(rows, "similarity", BLOCKS, higher_is_better=True)
        sections.append({"instrument": _instrument_identity(next(iter(group.values()))), "rows": rows,
                         "summary": summary_table(rows, "similarity", BLOCKS, higher_is_better=True)})
    sections.sort(key=lambda s: (s["instrument"]["name"], s["instrument"]["version"], s["instrument"]["data_sha256"]))
    return sections


def _target_id(row: dict) -> tuple:
    return row["target"]["name"], row["target"]["source"]


def compare_with_naive(rows: list[dict], metric: str = "l1", splits=SPLITS, higher_is_better: bool = False) -> None:
    """Adds to each row ``delta_vs_naive`` (per split: its mean ``metric`` minus the naive model's,
    same model and target; None without a naive row) and ``best`` (the best mean held-out
    ``metric`` of its target: the lowest L1, or the highest similarity)."""
    naive = {(r["model_label"], *_target_id(r)): r for r in rows if r["aligner"]["name"] == "naive"}
    for row in rows:
        base = naive.get((row["model_label"], *_target_id(row)))
        row["delta_vs_naive"] = {s: None if base is None or base is row or row[metric][s]["mean"] is None
                                 or base[metric][s]["mean"] is None else row[metric][s]["mean"] - base[metric][s]["mean"]
                                 for s in splits}
        row["best"] = False
    sign = -1 if higher_is_better else 1
    best: dict[tuple, dict] = {}
    for row in rows:
        mean = row[metric]["heldout"]["mean"]
        if mean is not None and (_target_id(row) not in best
                                 or sign * mean < sign * best[_target_id(row)][metric]["heldout"]["mean"]):
            best[_target_id(row)] = row
    for row in best.values():
        row["best"] = True


def summary_table(rows: list[dict], metric: str = "l1", splits=SPLITS, higher_is_better: bool = False) -> list[dict]:
    """Per model x aligner setup: ``metric`` per split averaged over its targets (each target's
    mean over seeds) with a 95% bootstrap CI over the targets, the mean difference to the naive
    model, the validity verdicts of its entries, and its cost (evaluations and wall time per run);
    the best held-out ``metric`` first."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["model_label"], row["aligner_label"])].append(row)
    out = []
    for (model, aligner), members in groups.items():
        entry = {"model_label": model, "aligner_label": aligner, "aligner": members[0]["aligner"]["name"],
                 "model": members[0]["model"], "n_targets": len(members),
                 "targets": [target_label(m["target"]) for m in members], metric: {}, "delta_vs_naive": {}}
        for split in splits:
            entry[metric][split] = mean_ci([m[metric][split]["mean"] for m in members])
            entry["delta_vs_naive"][split] = mean_ci([m["delta_vs_naive"][split] for m in members])
        verdicts = [m["verdict"] for m in members if m.get("verdict")]
        entry["verdict"] = ({"assessed": sum(v["assessed"] for v in verdicts),
                             "interpretable": sum(v["interpretable"] for v in verdicts)} if verdicts else None)
        entry["evaluations"] = stat(m["evaluations"]["mean"] for m in members)
        entry["wall_time_s"] = stat(m["wall_time_s"]["mean"] for m in members)
        out.append(entry)
    sign = -1 if higher_is_better else 1
    out.sort(key=lambda e: (e["model_label"], e[metric]["heldout"]["mean"] is None,
                            sign * (e[metric]["heldout"]["mean"] or 0), e["aligner_label"]))
    return out


def rank_agreement_table(rows: list[dict]) -> list[dict]:
    """Per model and aligner setup with several targets: rank agreement per dimension and split."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["model_label"], row["aligner_label"])].append(row)
    out = []
    for (model, aligner), members in groups.items():
        if len(members) < 2:
            continue
        dims = [d for d in members[0]["indices"]["heldout"] if all(d in m["target"]["scores"] for m in members)]
        entry = {"model_label": model, "aligner_label": aligner, "n_targets": len(members),
                 "targets": [m["target"]["name"] for m in members], "splits": {}}
        for split in SPLITS:
            entry["splits"][split] = {
                d: rank_agreement([m["indices"][split][d]["mean"] for m in members],
                                  [m["target"]["scores"][d] for m in members]) for d in dims}
        out.append(entry)
    return out


def leaderboard(entries: Entries, study: str | None = None) -> dict:
    """The ``leaderboard.json`` document; ``study``: a link (relative to the page) to the study of
    these entries, shown on the page."""
    rows = aggregate(entries.records)
    compare_with_naive(rows)
    finished = [r["run"].get("finished") for r in entries.records.values() if r["run"].get("finished")]
    return {"format": LEADERBOARD_FORMAT, "result_schema_version": SCHEMA_VERSION, "cultbench_version": __version__,
            "data_as_of": max(finished, default=None), "entries_used": len(entries.records),
            "rejected": entries.rejected, "duplicates": entries.duplicates,
            "study": study, "summary": summary_table(rows), "rows": rows, "rank_agreement": rank_agreement_table(rows),
            "distribution": distribution_sections(entries.records)}


def build(entries_dir, out_dir, study=None) -> tuple[dict, list[Path]]:
    """Read the entries and write leaderboard.json, LEADERBOARD.md and index.html into ``out_dir``;
    ``study``: the study document of these entries (e.g. docs/paper-small.md), linked from the page."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise CultbenchError(f"--out {out_dir} is not an existing folder")
    link = None if study is None else Path(os.path.relpath(Path(study).resolve(), out_dir.resolve())).as_posix()
    board = leaderboard(collect(entries_dir), study=link)
    texts = [json.dumps(board, indent=2, sort_keys=True, allow_nan=False) + "\n",
             render_markdown(board), render_html(board)]
    paths = [out_dir / name for name in OUTPUT_FILES]
    for path, text in zip(paths, texts):
        write_text_atomic(path, text)
    return board, paths
