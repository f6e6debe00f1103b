"""The leaderboard's tables: the columns of each instrument kind's rows and summaries, and the
texts around them (notes, titles, the page's first line). The Markdown (``markdown.py``) and the
HTML (``html.py``) render the same columns."""

from __future__ import annotations

import json

from cultbench.columns import Column, Table, fmt, metric_columns, target_label
from cultbench.evaluation.kinds import KINDS
from cultbench.evaluation.metrics import DISTRIBUTION, INDEX, metrics_for, primary_metric
from cultbench.profiles import DEFAULT_SOURCE


TITLE = "cultbench leaderboard"


def short_model(label: str, width: int = 28) -> str:
    """A model label short enough for a table cell: of its name (before the weights in
    parentheses) a path's last part, and at most ``width`` characters; the weights stay whole."""
    name, sep, weights = label.partition(" (")
    short = name.rstrip("/").rsplit("/", 1)[-1] if name.startswith(("/", ".", "~")) else name
    return (short if len(short) <= width else short[:width - 1] + "…") + sep + weights


def verdict_text(verdict: dict) -> str:
    """A row's validity verdict: "yes", "no", "k/n" (seeds disagree) or "–" (no diagnostics)."""
    if not verdict["assessed"]:
        return "–"
    if verdict["interpretable"] in (0, verdict["assessed"]):
        return "yes" if verdict["interpretable"] else "no"
    return f"{verdict['interpretable']}/{verdict['assessed']}"


def _verdict_value(row: dict):
    v = row["verdict"]
    return v["interpretable"] / v["assessed"] if v["assessed"] else None


MODEL = Column("model", "Model", lambda r: r["model_label"], lambda r: short_model(r["model_label"]), False,
               title=lambda r: r["model_label"])
ALIGNER = Column("aligner", "Aligner", lambda r: r["aligner_label"], lambda r: r["aligner_label"], False,
                 title=lambda r: r.get("setup_note") or "")
SEEDS = Column("seeds", "Seeds", lambda r: r["n"], lambda r: str(r["n"]))
INTERPRETABLE = Column("interpretable", "Interpretable", _verdict_value, lambda r: verdict_text(r["verdict"]))
# The verdict "aligned" on the held-out wordings (leaderboard.aligned_summary; docs/diagnostics.md, Protocol).
ALIGNED = Column("aligned", "Aligned (held-out)", lambda r: (r.get("aligned") or {}).get("share"),
                 lambda r: (r.get("aligned") or {}).get("text", "–"), split="heldout",
                 title=lambda r: (r.get("aligned") or {}).get("title", ""))
# What a row's L1 measured, by the wording version of its entries (README, "How scores are computed").
WORDING_TEXT = {
    4: "wording version 4: each wording rendered with its scale in order and reversed; L1 of the order-balanced "
       "indices (the mean of the two renderings'), averaged over the split's wordings",
    3: "wording version 3: seven single renderings (train 3, held-out 4; three with the scale reversed); L1 per "
       "rendering, averaged over the split's renderings, not order-balanced"}


def wording_title(version) -> str:
    if version is None:
        return ""
    return WORDING_TEXT.get(version, f"wording version {version}: L1 per rendering, averaged over the split's "
                                     "renderings, not order-balanced")


WORDING = Column("wording", "Wording", lambda r: r.get("wording_version"),
                 lambda r: "–" if r.get("wording_version") is None else f"v{r['wording_version']}",
                 title=lambda r: wording_title(r.get("wording_version")))
EVALUATIONS = Column("evaluations", "Evaluations used", lambda r: r["evaluations"]["mean"],
                     lambda r: fmt(r["evaluations"]["mean"], ".0f"))


def wall_time_text(row: dict) -> str:
    """Seconds, and where they were measured ("270 (cpu, 2 threads)"): times from different
    machines or thread counts do not compare."""
    return fmt(row["wall_time_s"]["mean"], ".0f") + (f" ({'; '.join(row['machines'])})" if row.get("machines") else "")


WALL_TIME = Column("wall_time", "Wall time (s; device, threads)", lambda r: r["wall_time_s"]["mean"], wall_time_text)


def row_columns(kind: str, dims: list[str] = ()) -> list[Column]:
    """The columns of a kind's rows: who, then the registered metrics of the kind in registry
    order (``cultbench.evaluation.metrics``; those placed ``detail`` after the verdict and cost), then wall time."""
    table = Table(kind, KINDS[kind].splits, list(dims))
    shown = [m for m in metrics_for(kind) if m.row]
    main = [c for m in shown if m.column_place != "detail" for c in metric_columns(m, table)]
    detail = [c for m in shown if m.column_place == "detail" for c in metric_columns(m, table)]
    verdicts = [INTERPRETABLE, ALIGNED] if kind == INDEX else [INTERPRETABLE]
    wording = [WORDING] if kind == INDEX else []
    return [MODEL, ALIGNER, KINDS[kind].target_column, SEEDS, *main, *verdicts, *wording, EVALUATIONS, *detail,
            WALL_TIME]


def columns(dims: list[str]) -> list[Column]:
    """The columns of an index instrument's table."""
    return row_columns(INDEX, dims)


def distribution_columns() -> list[Column]:
    """The columns of a distribution instrument's table: similarity (1 − JSD) on each block."""
    return row_columns(DISTRIBUTION)


def distribution_summary_columns() -> list[Column]:
    """The columns of a distribution instrument's summary (one row per model x aligner)."""
    return summary_columns(DISTRIBUTION)


DISTRIBUTION_INTRO = (
    "One row per model, aligner and target country of the instrument's data; seeds aggregated as mean ± standard "
    "deviation. Similarity is 1 − the Jensen-Shannon distance (base 2) between the model's next-token distribution "
    "over a question's option letters and the country's answer shares, averaged over the questions the country was "
    "asked, per prompt variant, then over the variants; higher is better, and JSD = 1 − similarity. Four blocks: "
    "train (training questions under training wordings: what the aligner fitted), held-out questions (under the "
    "training wordings), held-out wordings (on the training questions), and both held out (neither seen). Δ vs "
    "naive: the row's similarity minus the naive model's for the same model and target (positive: the aligner "
    "moved the model closer); ★ marks the highest similarity with both held out of each target, where it is beyond "
    "the seeds' noise (as in the index table). Rank: the target's "
    "place among the data's countries by similarity (1: the most similar). Option mass: the probability on the "
    "question's letters. Interpretable: the validity verdict of the entries' diagnostics for distribution items "
    "(option mass, position bias, reversal consistency, wording stability of the similarity; docs/diagnostics.md).")
DISTRIBUTION_SUMMARY_NOTE = ("Per model and aligner: similarity averaged over its targets (each target's mean over "
                             "seeds), with a 95% bootstrap confidence interval over the targets; Δ vs naive averaged "
                             "the same way; cost per run (candidate evaluations and wall time).")
CONSTRUCT_NOTE = ("The surveys were designed for people, not language models: their construct validity applied to "
                  "a model may be limited (the dataset card says so). A similarity says whose answer shares a "
                  "model's option probabilities resemble under these wordings, not what the model believes.")


def section_title(section: dict) -> str:
    inst = section["instrument"]
    return f"{inst['name']} v{inst['version']}: similarity to countries' answer shares"


def section_meta(section: dict) -> str:
    inst = section["instrument"]
    return (f"{len(section['rows'])} rows. Data sha256 {inst['data_sha256'][:12]}…: {inst['items']} questions "
            f"({inst['questions']['train']} training, {inst['questions']['heldout']} held out), "
            f"{inst['countries']} countries.")


def meta_text(board: dict) -> str:
    """The page's first line: rows, entries, dates, versions and (for index instruments) the constants C."""
    rows = len(board["rows"]) + sum(len(s["rows"]) for s in board.get("distribution", []))
    return (f"{rows} rows from {board['entries_used']} entries; data as of {board['data_as_of'] or '–'}; cultbench "
            f"{board['cultbench_version']}, result schema {board['result_schema_version']}."
            + (f" Constants C: {_constants(board)}." if index_part(board) else "") + _versions_text(board))


def section_meta_text(section: dict) -> str:
    """A page section's first line (``leaderboard.page_section``): rows, entries, date, constants, versions."""
    return (f"{len(section['rows'])} rows from {section['entries_used']} entries; data as of "
            f"{section['data_as_of'] or '–'}." + (f" Constants C: {_constants(section)}." if section["rows"] else "")
            + _versions_text(section))


def _versions_text(board: dict) -> str:
    """The wording versions of the index rows (column Wording): rows of different versions measure different things."""
    versions = sorted({r.get("wording_version") for r in board["rows"]} - {None})
    if not versions:
        return ""
    return (f" Wording version{'s' if len(versions) > 1 else ''} "
            f"{', '.join(map(str, versions))}{' (not compared with each other)' if len(versions) > 1 else ''}.")


def index_part(board: dict) -> bool:
    """Whether the page shows the index-instrument tables: when it has their rows, or nothing else."""
    return bool(board["rows"]) or not board.get("distribution")


def _verdict_share(e: dict):
    v = e.get("verdict")
    return v["interpretable"] / v["assessed"] if v and v["assessed"] else None


def summary_columns(kind: str = INDEX) -> list[Column]:
    """The columns of a kind's summary table (one row per model x aligner, see
    leaderboard.summary_table): its primary metric's summary columns, then the verdict and cost."""
    primary = primary_metric(kind)
    return [
        MODEL, ALIGNER,
        Column("targets", "Targets", lambda e: e["n_targets"], lambda e: str(e["n_targets"]),
               title=lambda e: "; ".join(e["targets"])),
        *primary.summary_columns(Table(kind, KINDS[kind].splits)),
        *([WORDING] if kind == INDEX else []),
        Column("interpretable", "Interpretable entries", _verdict_share,
               lambda e: "–" if not (e.get("verdict") or {}).get("assessed")
               else f"{e['verdict']['interpretable']}/{e['verdict']['assessed']}"),
        Column("sum_evaluations", "Evaluations used per run", lambda e: e["evaluations"]["mean"],
               lambda e: fmt(e["evaluations"]["mean"], ".0f")),
        Column("sum_wall_time", "Wall time per run (s; device, threads)", lambda e: e["wall_time_s"]["mean"],
               wall_time_text),
    ]


def shortened(board: dict) -> list[tuple[str, str]]:
    """(shown, full) for every shortened model and target cell of the board, once each."""
    pairs = [(r.get("target_short") or target_label(r["target"]), target_label(r["target"])) for r in board["rows"]
             if r["target"]["estimated"] or r["target"]["source"] != DEFAULT_SOURCE]
    pairs += [(short_model(r["model_label"]), r["model_label"]) for r in board["rows"]]
    return [p for p in dict.fromkeys(pairs) if p[0] != p[1]]


def dimensions(board: dict) -> list[str]:
    """The dimensions of the rows' instruments, in the instruments' order."""
    return list(dict.fromkeys(d for r in board["rows"] for d in r["instrument"]["dimensions"]))


def _constants(board: dict) -> str:
    seen = list(dict.fromkeys(json.dumps(r["constants"], sort_keys=True) for r in board["rows"]))
    return "; ".join(", ".join(f"{k.upper()} {v:g}" for k, v in json.loads(s).items()) for s in seen) or "–"


INTRO_L1 = ("One row per model, aligner and target; seeds aggregated as mean ± standard deviation. L1 is the "
            "distance between the model's six indices and the target's published scores, on the training wordings "
            "(seen by the aligner) or the held-out ones (not seen); lower is better.")
# How L1 was computed, per wording version present (the Wording column says each row's).
INTRO_BY_VERSION = {
    4: ("Rows of wording version 4 (Wording v4): every wording is rendered with its answer scale in order and "
        "reversed, its order-balanced indices are the mean of the two renderings' indices, and L1 is the mean over "
        "the split's wordings of their balanced indices' L1. A respondent whose answers follow the options' "
        "positions alone scores the content-free L1 (every index = C) once the orders are balanced: it stands "
        "beside each row with the world-mean L1 (the mean profile of the source's countries). Aligned (held-out): "
        "the verdict aligned (held-out L1 below naive's and below the content-free L1, directedness > 0, mirror > "
        "0; docs/diagnostics.md, Protocol)."),
    3: ("Rows of wording version 3 (Wording v3, archived entries): L1 was computed per rendering and averaged over "
        "the split's renderings (3 training, 4 held-out; three of the seven with the scale reversed), not "
        "order-balanced, so it moved with the share of reversed renderings: it measured answer positions as much "
        "as content, and it does not compare with a v4 L1. These entries have no content-free or world-mean L1 "
        "and no verdict aligned (–)."),
}
INTRO_REST = (
    "Δ vs naive: the row's L1 minus the naive model's for the same model, target and wording version (negative: "
    "the aligner moved the model closer). ★ marks the lowest held-out L1 of a target (within a wording version) "
    "only where it is lower than the next row's by more than twice the standard error of the gap, over the seeds "
    "(none for an aligner that uses no seed) and over the held-out wordings (paired); a lowest row of one seed "
    "has no noise estimate and says \"best; one seed: unmarked\", one within the noise says so. L1 held-out − "
    "train: positive when the held-out wordings are "
    "farther from the target than the training ones (what the aligner fitted does not transfer), negative when "
    "they are closer. An aligner's label gives its budget; Evaluations used may be lower: a search spends whole "
    "generations and, in reduced precision, reserves its finalists' re-score. "
    "L1 depends on the constants C of the index formulas; the signed errors (model − target, of the mean "
    "held-out indices, so their absolute values do not add up to the L1) show the direction, and rank "
    "agreement across targets does not depend on C. Option mass is the probability the model put on the "
    "answer options 1–5: a low mass means it does not answer in the format. Targets' scores are from the "
    f"2015 matrix ({DEFAULT_SOURCE}) unless marked: estimated ones say (est.); a cell's tooltip holds its "
    "full text. Interpretable: the validity verdict of the entries' diagnostics (docs/diagnostics.md): yes "
    "when every check (option mass, position bias, reversal consistency, item discrimination, wording "
    "stability) was measured and passed, k/n when seeds disagree, – for entries made before the diagnostics.")


def intro_text(board: dict) -> str:
    """The index table's introduction: what L1 measured for each wording version among the rows."""
    versions = sorted({r.get("wording_version") for r in board["rows"]} - {None}, reverse=True)
    by_version = [INTRO_BY_VERSION.get(v) or f"Rows of wording version {v}: {wording_title(v)}." for v in versions]
    return " ".join([INTRO_L1, *by_version, INTRO_REST])

SUMMARY_NOTE = ("Per model and aligner: L1 averaged over its targets (each target's mean over seeds), with a 95% "
                "bootstrap confidence interval over the targets; Δ vs naive averaged the same way; cost per run "
                "(candidate evaluations and wall time).")


RANK_NOTE = ("Kendall's τ / Spearman's ρ between the model's indices (mean over seeds) and the targets' scores "
             "across the targets, per dimension; – where undefined (fewer than 3 targets, or indices that do not "
             "change with the target, as the naive model's).")


def ranked(board: dict) -> list[dict]:
    """The rank-agreement groups with enough targets to rank (3 or more)."""
    return [g for g in board["rank_agreement"] if g["n_targets"] >= 3]


def rank_text(r: dict | None) -> str:
    if not r or r["kendall_tau"] is None:
        return "–"
    return f"{r['kendall_tau']:+.2f} / {r['spearman_rho']:+.2f}"
