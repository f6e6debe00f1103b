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
from cultbench.publish.page import render_html, render_markdown, target_label
from cultbench.evaluation.metrics import DISTRIBUTION, INDEX, metrics_for, primary_metric, rank_agreement
from cultbench.scoring.quantization import quantization_of, weights_label
from cultbench.publish.stats import mean_ci
from cultbench.evaluation.kinds import kind_of
from cultbench.runs.results import (BLOCKS, SCHEMA_VERSION, SPLITS, combination_key_of, entry_id, is_distribution,
                               read_record)

LEADERBOARD_FORMAT = 2  # 2: distribution instruments' sections
OUTPUT_FILES = ("leaderboard.json", "LEADERBOARD.md", "index.html")


@dataclass
class Entries:
    """The valid entries of a folder (file name -> record), and what was left out and why."""

    records: dict[str, dict] = field(default_factory=dict)
    rejected: list[dict] = field(default_factory=list)  # {"file", "reason"}
    duplicates: list[dict] = field(default_factory=list)  # {"file", "duplicate_of", "id"}
    folder: str | None = None  # where they were collected from


def collect(folder) -> Entries:
    folder = Path(folder)
    if not folder.is_dir():
        raise CultbenchError(f"entries folder {folder} does not exist")
    out, seen = Entries(folder=folder.as_posix()), {}
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


def publishable(files, entries_dir) -> tuple[dict[Path, dict], list[str]]:
    """The result files that may be copied into the published entries ``entries_dir``, each read
    and checked against the schema before any is copied (path -> record), and one reason per file
    skipped: a combination published already (or twice in ``files``), or a name taken by another
    combination. A missing file or folder is a CultbenchError."""
    entries_dir = Path(entries_dir)
    if not entries_dir.is_dir():
        raise CultbenchError(f"--entries {entries_dir} is not an existing folder")
    missing = [p for p in files if not Path(p).is_file()]
    if missing:
        raise CultbenchError(f"{missing[0]} does not exist; result files are written by `cultbench run` "
                             "(into runs/results by default)")
    published = {entry_id(combination_key_of(r)): name for name, r in collect(entries_dir).records.items()}
    records = {Path(path): read_record(path) for path in files}
    todo, skipped = {}, []
    for path, record in records.items():
        ident = entry_id(combination_key_of(record))
        if ident in published:
            skipped.append(f"{path}: this combination is published already as {entries_dir / published[ident]}")
        elif (entries_dir / path.name).exists():
            skipped.append(f"{path}: {entries_dir / path.name} exists and holds another combination; rename the file")
        else:
            published[ident] = path.name
            todo[path] = record
    return todo, skipped


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
    """The model of a row: its identity, and how its weights were stored (``quantization``: a
    GGUF file type such as "Q4_1", or None) and computed in (``dtype``)."""
    m = record["model"]
    return {**{k: m.get(k) for k in ("id", "revision", "file_sha256", "dtype", "parameters")},
            "quantization": quantization_of(m)}


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
        # the prompt wording's version: rows of different versions measure different things (the page labels them)
        "wording_version": (first.get("variants") or {}).get("version"),
        "seeds": sorted(r["aligner"]["seed"] for r in recs if r["aligner"]["seed"] is not None),
        "n": len(recs),
        "fitness": stat(r["aligner"]["fitness"] for r in recs),
        "evaluations": stat(r["aligner"]["evaluations"] for r in recs),
        "wall_time_s": stat(r["run"]["wall_time_s"] for r in recs),
        "machines": machines(recs),
        "verdict": verdict_summary(recs),
        "aligned": aligned_summary(recs),
        "convergence": [{"seed": r["aligner"]["seed"], "search_precision": r["history"]["search_precision"],
                         "curve": [[p["evaluations"], p["best"]] for p in r["history"]["curve"]
                                   if p["best"] is not None]}
                        for r in recs if r["history"] is not None],
        "files": [name for name, _ in records],
    }


def _row(records: list[tuple[str, dict]]) -> dict:
    """A row: one model x aligner setup x target over its seeds' records: the parts every row has,
    the target, the fields of the instrument's kind (``cultbench.evaluation.kinds``) and its metrics over the
    seeds (``metric_stats``)."""
    first = records[0][1]
    recs = [r for _, r in records]
    kind = kind_of(first)
    return {
        **_common(records),
        "target": {k: first["target"].get(k) for k in kind.target_fields},
        **kind.row_fields(first, recs, stat),
        "heldout_per_variant": _per_variant(recs, primary_metric(kind.name).name),
        **metric_stats(kind.name, recs, kind.splits, kind.row_dimensions(first)),
    }


def _per_variant(records: list[dict], metric: str) -> dict:
    """The held-out ``metric`` per prompt variant, mean over the seeds (for the ★'s paired noise)."""
    values = [r["metrics"]["heldout"][f"{metric}_per_variant"] for r in records]
    return {v: statistics.fmean(x[v] for x in values) for v in values[0]
            if all(x.get(v) is not None for x in values)}


def metric_stats(kind: str, records: list[dict], splits, dims) -> dict:
    """Every registered metric of ``kind`` that rows show (``Metric.row``), over the seeds'
    records: per split (or block) ``stat`` of its values, per dimension (``dims``) where the
    metric has one value per dimension. A record without the metric counts as no value."""
    out = {}
    for metric in metrics_for(kind):
        if not metric.row:
            continue
        if metric.per_dimension:
            out[metric.name] = {s: {d: stat((r["metrics"][s].get(metric.name) or {}).get(d) for r in records)
                                    for d in dims} for s in splits}
        else:
            out[metric.name] = {s: stat(r["metrics"][s].get(metric.name) for r in records) for s in splits}
    return out


def machines(records: list[dict]) -> list[str]:
    """Where a row's wall times were measured: device and torch's thread count, once each."""
    def threads(n):
        return "? threads" if not n else f"{n} thread" + ("s" if n > 1 else "")

    return sorted({f"{r['run']['device']}, {threads(r['run'].get('torch_threads'))}" for r in records})


def verdict_summary(records: list[dict]) -> dict:
    """The validity verdict of a row's entries (diagnostics over all evaluated variants): how many
    have diagnostics, how many of those are interpretable, and the checks any of them failed or
    could not run. Entries made before the diagnostics existed have none."""
    assessed = [r["metrics"]["diagnostics"]["all"] for r in records if "diagnostics" in r["metrics"]]
    return {"assessed": len(assessed), "interpretable": sum(bool(d["interpretable"]) for d in assessed),
            "failed": sorted({c for d in assessed for c in d["failed"]}),
            "unchecked": sorted({c for d in assessed for c in d["unchecked"]})}


def aligned_summary(records: list[dict]) -> dict:
    """The verdict "aligned" of a row's entries (held-out wordings, schema 3 records of an
    alignment): how many carry it, how many are aligned, the share, and the text the page shows
    ("yes", "no", "k/n" when seeds disagree, "–" for entries without it: v3 entries and naive)."""
    verdicts = [(r["metrics"]["heldout"].get("alignment") or {}) for r in records]
    assessed = [v for v in verdicts if "aligned" in v]
    aligned = sum(bool(v["aligned"]) for v in assessed)
    text = ("–" if not assessed else "yes" if aligned == len(assessed) else "no" if aligned == 0
            else f"{aligned}/{len(assessed)}")
    failed = sorted({c for v in assessed for c in v["failed"]})
    return {"assessed": len(assessed), "aligned": aligned, "share": aligned / len(assessed) if assessed else None,
            "text": text, "title": ("failed: " + ", ".join(failed)) if failed else ""}


def _label_rows(rows: list[dict]) -> None:
    """Short labels; a hash is added only where two different setups or model files would look alike."""
    for row in rows:
        a = row["aligner"]
        row["aligner_label"] = a["name"] if a["budget"] is None else f"{a['name']} (budget {a['budget']})"
        row["model_label"] = f"{row['model']['id']} ({weights_label(row['model'])})"
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
    _legend(rows)


def _settings(row: dict) -> dict:
    """A row's aligner settings as flat "name=value" parts (hyper-parameters by name)."""
    a = row["aligner"]
    flat = {k: v for k, v in a["hyperparameters"].items()}
    flat.update({k: a[k] for k in ("search_dtype", "distance", "dimensions")})
    flat.update({f"C {k.upper()}": v for k, v in (row.get("constants") or {}).items()})
    if row.get("wording_version") is not None:
        flat["wording"] = f"v{row['wording_version']}"
    return {k: json.dumps(v, sort_keys=True) if not isinstance(v, str) else v for k, v in flat.items()}


def _legend(rows: list[dict]) -> None:
    """``setup_note`` for the rows whose aligner label needed a hash: the settings in which rows
    of that aligner and budget differ (e.g. "popsize=20"), so a reader sees what the hash stands for."""
    by_label = defaultdict(list)
    for row in rows:
        if row["aligner_label"].endswith("]"):
            by_label[row["aligner_label"].rsplit(" [", 1)[0]].append(row)
    for group in by_label.values():
        settings = [_settings(r) for r in group]
        keys = sorted({k for s in settings for k in s})
        differ = [k for k in keys if len({s.get(k) for s in settings}) > 1]
        for row, s in zip(group, settings):
            parts = [f"{k}={_short(s.get(k, '–'))}" for k in differ]
            row["setup_note"] = ", ".join(parts) or "the instrument, its wording version or the variants differ"


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


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
    primary = primary_metric(INDEX)
    rows.sort(key=lambda r: (r["model_label"], r["target"]["name"], r["target"]["source"],
                             *best_first(r[primary.name]["heldout"]["mean"], primary), r["aligner_label"]))
    return rows


def best_first(value, metric) -> tuple:
    """A sort key that puts the best value of ``metric`` (a registered Metric) first, None last."""
    return value is None, (1 if metric.higher_is_better is False else -1) * (value or 0)


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
        rows = _grouped(group, _row)
        primary = primary_metric(DISTRIBUTION)
        rows.sort(key=lambda r: (r["model_label"], r["target"]["name"], *best_first(r[primary.name]["heldout"]["mean"],
                                                                                   primary), r["aligner_label"]))
        compare_with_naive(rows, primary.name, BLOCKS, higher_is_better=primary.higher_is_better)
        sections.append({"instrument": _instrument_identity(next(iter(group.values()))), "rows": rows,
                         "summary": summary_table(rows, primary.name, BLOCKS, primary.higher_is_better)})
    sections.sort(key=lambda s: (s["instrument"]["name"], s["instrument"]["version"], s["instrument"]["data_sha256"]))
    return sections


def _target_id(row: dict) -> tuple:
    """A row's target, within its wording version: rows of other versions are not compared."""
    return row["target"]["name"], row["target"]["source"], row.get("wording_version")


def compare_with_naive(rows: list[dict], metric: str = "l1", splits=SPLITS, higher_is_better: bool = False) -> None:
    """Adds to each row ``delta_vs_naive`` (per split: its mean ``metric`` minus the naive model's,
    same model and target; None without a naive row) and ``best`` (see :func:`mark_best`: the best
    mean held-out ``metric`` of its target, the lowest L1 or the highest similarity, beyond the
    seeds' noise)."""
    naive = {(r["model_label"], *_target_id(r)): r for r in rows if r["aligner"]["name"] == "naive"}
    for row in rows:
        base = naive.get((row["model_label"], *_target_id(row)))
        row["delta_vs_naive"] = {s: None if base is None or base is row or row[metric][s]["mean"] is None
                                 or base[metric][s]["mean"] is None else row[metric][s]["mean"] - base[metric][s]["mean"]
                                 for s in splits}
        row["best"] = False
    mark_best(rows, metric, higher_is_better)


def seed_error(row: dict, metric: str) -> float | None:
    """The standard error over seeds of a row's mean held-out ``metric``: 0 for an aligner that
    uses no seed (its result does not vary with one), None where one seed leaves it unknown."""
    if not row["seeds"]:
        return 0.0
    s = row[metric]["heldout"]
    return None if s["sd"] is None else s["sd"] / s["n"] ** 0.5


def wording_error(first: dict, second: dict) -> float:
    """The standard error, over the held-out wordings, of two rows' paired per-wording difference."""
    common = [v for v in first["heldout_per_variant"] if v in second["heldout_per_variant"]]
    diffs = [first["heldout_per_variant"][v] - second["heldout_per_variant"][v] for v in common]
    return statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else 0.0


def mark_best(rows: list[dict], metric: str = "l1", higher_is_better: bool = False) -> None:
    """The ★: per target, the row with the best mean held-out ``metric`` is marked ``best`` only
    when it beats the next row by more than twice the standard error of their difference: over
    the seeds (0 for an aligner that uses no seed) and over the held-out wordings (paired).
    Otherwise it gets a ``best_note`` saying why it is not marked (one seed: the seeds' noise is
    unknown; or within the noise), and the page shows that instead of a ★."""
    sign = -1 if higher_is_better else 1
    by_target: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        if row[metric]["heldout"]["mean"] is not None:
            by_target[_target_id(row)].append(row)
    for members in by_target.values():
        members.sort(key=lambda r: sign * r[metric]["heldout"]["mean"])
        if len(members) < 2:
            continue
        first, second = members[:2]
        errors = [seed_error(first, metric), seed_error(second, metric)]
        gap = abs(first[metric]["heldout"]["mean"] - second[metric]["heldout"]["mean"])
        if None in errors:
            first["best_note"] = "one seed"
        elif gap <= 2 * (errors[0] ** 2 + errors[1] ** 2 + wording_error(first, second) ** 2) ** 0.5:
            first["best_note"] = "within noise"
        else:
            first["best"] = True


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
                 "wording_version": members[0].get("wording_version"),
                 "targets": [target_label(m["target"]) for m in members], metric: {}, "delta_vs_naive": {}}
        for split in splits:
            entry[metric][split] = mean_ci([m[metric][split]["mean"] for m in members])
            entry["delta_vs_naive"][split] = mean_ci([m["delta_vs_naive"][split] for m in members])
        verdicts = [m["verdict"] for m in members if m.get("verdict")]
        entry["verdict"] = ({"assessed": sum(v["assessed"] for v in verdicts),
                             "interpretable": sum(v["interpretable"] for v in verdicts)} if verdicts else None)
        entry["evaluations"] = stat(m["evaluations"]["mean"] for m in members)
        entry["wall_time_s"] = stat(m["wall_time_s"]["mean"] for m in members)
        entry["machines"] = sorted({x for m in members for x in m["machines"]})
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
    primary = primary_metric(INDEX)
    compare_with_naive(rows, primary.name, SPLITS, higher_is_better=primary.higher_is_better)
    finished = [r["run"].get("finished") for r in entries.records.values() if r["run"].get("finished")]
    return {"format": LEADERBOARD_FORMAT, "result_schema_version": SCHEMA_VERSION, "cultbench_version": __version__,
            "data_as_of": max(finished, default=None), "entries_used": len(entries.records),
            "rejected": entries.rejected, "duplicates": entries.duplicates,
            "study": study, "summary": summary_table(rows, primary.name, SPLITS, primary.higher_is_better),
            "rows": rows, "rank_agreement": rank_agreement_table(rows),
            "distribution": distribution_sections(entries.records)}


# What a section of the page keeps of its own board (``leaderboard``): the index-instrument parts.
SECTION_FIELDS = ("entries_used", "data_as_of", "rejected", "duplicates", "study", "summary", "rows", "rank_agreement")


def page_section(title: str, entries: Entries, study: str | None = None) -> dict:
    """Another set of entries shown as a section of its own below the page's main board (e.g. a
    testbed study): its title and the index-instrument parts of its own board (labels, Δ vs naive
    and ★ within the section only); ``study``: the link to its study document."""
    board = leaderboard(entries, study=study)
    if board["distribution"]:
        raise CultbenchError(f"section {title!r}: its entries hold distribution instruments; a section shows "
                             "index-instrument entries only")
    return {"title": title, **{k: board[k] for k in SECTION_FIELDS}}


def _link(path, out_dir: Path) -> str | None:
    """``path`` relative to the page's folder (a link the page shows), or None."""
    return None if path is None else Path(os.path.relpath(Path(path).resolve(), out_dir.resolve())).as_posix()


def build(entries_dir, out_dir, study=None, check: bool = False, sections=()) -> tuple[dict, list[Path]]:
    """Read the entries and write leaderboard.json, LEADERBOARD.md and index.html into ``out_dir``;
    ``study``: the study document of these entries (e.g. docs/paper-small.md), linked from the page;
    ``sections``: (title, entries folder, study document or None) of other sets of entries, each
    shown as its own section below the main board (``page_section``; the board's ``sections``,
    absent without them). Returns the board and the files written, or with ``check`` (nothing
    written) the files whose text differs from what the entries give."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise CultbenchError(f"--out {out_dir} is not an existing folder")
    board = leaderboard(collect(entries_dir), study=_link(study, out_dir))
    if sections:
        board["sections"] = [page_section(title, collect(folder), _link(doc, out_dir))
                             for title, folder, doc in sections]
    texts = [json.dumps(board, indent=2, sort_keys=True, allow_nan=False) + "\n",
             render_markdown(board), render_html(board)]
    paths = [out_dir / name for name in OUTPUT_FILES]
    if check:
        return board, [p for p, text in zip(paths, texts)
                       if not p.is_file() or p.read_text(encoding="utf-8") != text]
    for path, text in zip(paths, texts):
        write_text_atomic(path, text)
    return board, paths
