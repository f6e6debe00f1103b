"""The leaderboard rendered: ``LEADERBOARD.md`` and a static, self-contained ``index.html``.

The page needs no server and no network: the table, the charts (inline SVG, see charts.py) and a
small sorting script are all inside it, and a Content-Security-Policy forbids loading anything
and running any script but that one (by hash). Every string from an entry is escaped
(``html.escape``; Markdown's own characters too); the leaderboard JSON embedded for readers of the
page is in a ``<script type="application/json">`` with ``<``, ``>`` and ``&`` written as JSON
escapes, so no entry can close the element or open a comment.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html import escape

from aligners.registry import available_aligners, display_key
from cultbench.publish.charts import aligner_colours, convergence_chart, profile_chart
from cultbench.columns import (Column, Table, fmt, fmt_ci, fmt_stat, metric_columns,  # noqa: F401 (re-exported)
                               target_label)
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
    return [MODEL, ALIGNER, KINDS[kind].target_column, SEEDS, *main, *verdicts, EVALUATIONS, *detail, WALL_TIME]


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
            + (f" Constants C: {_constants(board)}." if _index_part(board) else ""))


def _index_part(board: dict) -> bool:
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


INTRO = ("One row per model, aligner and target; seeds aggregated as mean ± standard deviation. L1 is the "
         "distance between the model's six indices and the target's published scores, computed per prompt "
         "variant and then averaged over the training variants (seen by the aligner) or the held-out variants "
         "(not seen); lower is better. Δ vs naive: the row's L1 minus the naive model's for the same model and "
         "target (negative: the aligner moved the model closer). ★ marks the lowest held-out L1 of a target only "
         "where it is lower than the next row's by more than twice the standard error of the gap, over the seeds "
         "(none for an aligner that uses no seed) and over the held-out wordings (paired); a lowest row of one seed "
         "has no noise estimate and says \"best; one seed: unmarked\", one within the noise says so. L1 held-out − train: positive when the held-out wordings are "
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

SUMMARY_NOTE = ("Per model and aligner: L1 averaged over its targets (each target's mean over seeds), with a 95% "
                "bootstrap confidence interval over the targets; Δ vs naive averaged the same way; cost per run "
                "(candidate evaluations and wall time).")


RANK_NOTE = ("Kendall's τ / Spearman's ρ between the model's indices (mean over seeds) and the targets' scores "
             "across the targets, per dimension; – where undefined (fewer than 3 targets, or indices that do not "
             "change with the target, as the naive model's).")


# -- Markdown -------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_escape(text) -> str:
    """Text safe inside a Markdown table cell: HTML escaped, Markdown characters backslashed."""
    text = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", escape(text, quote=False))


def md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def render_markdown(board: dict) -> str:
    lines = [f"# {TITLE}", "", md_escape(meta_text(board)), ""]
    if board.get("study"):
        lines += [f"The study of these entries: [{md_escape(board['study'])}]({board['study']}).", ""]
    if _index_part(board):
        lines += _index_markdown(board)
    for section in board.get("distribution", []):
        summary, cols = distribution_summary_columns(), distribution_columns()
        lines += ["", f"## {md_escape(section_title(section))}", "", md_escape(section_meta(section)), "",
                  md_escape(DISTRIBUTION_INTRO + " " + CONSTRUCT_NOTE), "", "### Summary", "",
                  DISTRIBUTION_SUMMARY_NOTE, ""]
        lines += md_table([c.header for c in summary], [[md_escape(c.text(e)) for c in summary]
                                                          for e in section["summary"]])
        lines += ["", "### All results", ""]
        lines += md_table([c.header for c in cols], [[md_escape(c.text(r)) for c in cols] for r in section["rows"]])
        lines += settings_legend(section["rows"])
    lines += _problems_md(board)
    return "\n".join(lines) + "\n"


def _index_markdown(board: dict) -> list[str]:
    """The index instruments' part of LEADERBOARD.md: summary, all results, rank agreement."""
    cols = columns(dimensions(board))
    lines = []
    summary = summary_columns()
    lines += ["## Summary", "", SUMMARY_NOTE, ""]
    lines += md_table([c.header for c in summary], [[md_escape(c.text(e)) for c in summary]
                                                      for e in board.get("summary", [])])
    lines += ["", "## All results", "", INTRO, ""]
    lines += md_table([c.header for c in cols], [[md_escape(c.text(r)) for c in cols] for r in board["rows"]])
    short = shortened(board)
    if short:
        lines += ["", "Shortened cells: " + "; ".join(f"{md_escape(a)} = {md_escape(b)}" for a, b in short) + "."]
    lines += settings_legend(board["rows"])
    groups = _ranked(board)
    if groups:
        dims = dimensions(board)
        lines += ["", "## Rank agreement across targets", "", RANK_NOTE, ""]
        body = [[md_escape(g["model_label"]), md_escape(g["aligner_label"]), split, str(g["n_targets"])]
                + [_rank_text(g["splits"][split].get(d)) for d in dims]
                for g in groups for split in ("heldout", "train")]
        lines += md_table(["Model", "Aligner", "Split", "Targets"] + [d.upper() for d in dims], body)
    return lines


def settings_legend(rows: list[dict]) -> list[str]:
    """What the hashes in aligner labels stand for (Markdown; the page has them as tooltips)."""
    notes = dict.fromkeys((r["aligner_label"], r["setup_note"]) for r in rows if r.get("setup_note"))
    if not notes:
        return []
    return ["", "Aligner settings that differ between rows of one aligner: "
            + "; ".join(f"{md_escape(label)}: {md_escape(note)}" for label, note in notes) + "."]


def _ranked(board: dict) -> list[dict]:
    """The rank-agreement groups with enough targets to rank (3 or more)."""
    return [g for g in board["rank_agreement"] if g["n_targets"] >= 3]


def _rank_text(r: dict | None) -> str:
    if not r or r["kendall_tau"] is None:
        return "–"
    return f"{r['kendall_tau']:+.2f} / {r['spearman_rho']:+.2f}"


def _problems_md(board: dict) -> list[str]:
    out = []
    if board["rejected"]:
        out += ["", "## Entries left out", ""]
        out += [f"- {md_escape(p['file'])}: {md_escape(p['reason'])}" for p in board["rejected"]]
    if board["duplicates"]:
        out += ["", "## Duplicate entries (left out)", ""]
        out += [f"- {md_escape(p['file'])} repeats {md_escape(p['duplicate_of'])} (id {p['id']})"
                for p in board["duplicates"]]
    return out


# -- HTML -----------------------------------------------------------------------------------------

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1400px;padding:0 1rem}
body{color:#222}table{border-collapse:collapse;font-size:.88rem;margin:1rem 0}
th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:right}th{background:#f4f4f4;position:sticky;top:0}
td{white-space:nowrap}td.text,th.text{text-align:left}th button{all:unset;cursor:pointer;font-weight:600}
th[aria-sort=ascending] button::after{content:" \\25B2"}th[aria-sort=descending] button::after{content:" \\25BC"}
.wrap{overflow-x:auto}.charts{display:flex;flex-wrap:wrap;gap:1rem}figure{margin:0}
figcaption{font-size:.8rem;color:#555;max-width:680px}svg text{font-size:11px;fill:#333}
svg .title{font-size:13px;font-weight:600}svg .ytick{text-anchor:end;dominant-baseline:middle}
svg .xtick,svg .xlabel,svg .ylabel{text-anchor:middle}svg .grid{stroke:#e5e5e5}svg .axis{stroke:#888}
.problems li{font-family:monospace;font-size:.85rem}tr.best td{font-weight:600;background:#fff8e6}
.filters{display:flex;flex-wrap:wrap;gap:1rem;align-items:center;margin:1rem 0;font-size:.9rem}
#filter-count{color:#555}td[title]:not([title=""]){text-decoration:underline dotted #999}
table[data-split=train] [data-split=heldout],table[data-split=heldout] [data-split=train]{display:none}
"""

SCRIPT = """(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("leaderboard-data").textContent);
  var tables = Array.prototype.slice.call(document.querySelectorAll("table.sortable"));
  function value(row, k, numeric) {
    var v = row.cells[k].getAttribute("data-v");
    return numeric ? (v === "" ? NaN : parseFloat(v)) : v.toLowerCase();
  }
  function sortBy(table, k, descending) {
    var body = table.tBodies[0], heads = table.tHead.rows[0].cells;
    var numeric = heads[k].getAttribute("data-type") === "num";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, k, numeric), y = value(b, k, numeric);
      if (!numeric) { return descending ? y.localeCompare(x) : x.localeCompare(y); }
      if (isNaN(x) || isNaN(y)) { return isNaN(x) - isNaN(y); }
      return descending ? y - x : x - y;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (var j = 0; j < heads.length; j++) {
      heads[j].setAttribute("aria-sort", j !== k ? "none" : (descending ? "descending" : "ascending"));
    }
  }
  tables.forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (head, k) {
      head.querySelector("button").addEventListener("click", function () {
        sortBy(table, k, head.getAttribute("aria-sort") === "ascending");
      });
    });
  });
  var pick = {target: document.getElementById("filter-target"), aligner: document.getElementById("filter-aligner"),
              split: document.getElementById("filter-split")};
  var results = tables.filter(function (t) { return t.id === "leaderboard" || /-results$/.test(t.id); });
  var total = data.rows.length + (data.distribution || []).reduce(function (n, s) { return n + s.rows.length; }, 0);
  function applyFilters() {
    var shown = 0;
    tables.forEach(function (table) {
      table.setAttribute("data-split", pick.split.value);
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var target = row.getAttribute("data-target");
        row.hidden = Boolean((pick.aligner.value && row.getAttribute("data-aligner") !== pick.aligner.value) ||
                             (pick.target.value && target !== null && target !== pick.target.value));
        if (results.indexOf(table) >= 0 && !row.hidden) { shown += 1; }
      });
    });
    document.getElementById("filter-count").textContent = shown + " of " + total + " results shown" +
      (pick.target.value ? " (the summary is over all targets)" : "");
    document.body.setAttribute("data-visible-rows", String(shown));
  }
  Object.keys(pick).forEach(function (key) { pick[key].addEventListener("change", applyFilters); });
  var params = {};
  window.location.hash.replace(/^#/, "").split("&").forEach(function (part) {
    var kv = part.split("=");
    if (kv.length === 2) { params[kv[0]] = decodeURIComponent(kv[1]); }
  });
  Object.keys(pick).forEach(function (key) {
    if (params[key] !== undefined) {
      Array.prototype.forEach.call(pick[key].options, function (option) {
        if (option.value === params[key] || option.textContent === params[key]) { pick[key].value = option.value; }
      });
    }
  });
  var m = /^([a-z0-9_]+?)(-desc)?$/.exec(params.sort || "");
  tables.forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (head, k) {
      if (m && head.getAttribute("data-col") === m[1]) { sortBy(table, k, Boolean(m[2])); }
    });
  });
  applyFilters();
  document.body.setAttribute("data-json-rows", String(data.rows.length));
  document.body.setAttribute("data-ready", "true");
})();
"""


def script_json(data) -> str:
    """JSON safe inside a <script> element: no "</", no "<!--", no "]]>", ASCII only."""
    text = json.dumps(data, sort_keys=True, allow_nan=False, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _csp() -> str:
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode()
    return (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
            "img-src 'none'; base-uri 'none'; form-action 'none'")


def _cell(col: Column, row: dict) -> str:
    v = col.value(row)
    data = "" if v is None else (repr(float(v)) if col.numeric else str(v))
    cls = "" if col.numeric else ' class="text"'
    title = col.title(row) if col.title else ""
    title = "" if title == col.text(row) else title
    extra = (f' title="{escape(title)}"' if title else "") + (f' data-split="{col.split}"' if col.split else "")
    return f'<td data-col="{col.id}" data-v="{escape(data)}"{cls}{extra}>{escape(col.text(row))}</td>'


def _table_html(table_id: str, rows: list[dict], cols: list[Column], target=None) -> str:
    """A sortable table; each row carries its aligner (and ``target(row)``) for the page's filters."""
    head = "".join(f'<th data-col="{c.id}" data-type="{"num" if c.numeric else "text"}" aria-sort="none"'
                   f'{"" if c.numeric else " class=text"}{f" data-split={c.split}" if c.split else ""}>'
                   f'<button type="button">{escape(c.header)}</button></th>' for c in cols)
    body = "".join(
        f'<tr data-row="{k}" data-aligner="{escape(r["aligner_label"])}"'
        + (f' data-target="{escape(target(r))}"' if target else "") + (' class="best"' if r.get("best") else "")
        + ">" + "".join(_cell(c, r) for c in cols) + "</tr>\n" for k, r in enumerate(rows))
    return (f'<div class="wrap"><table id="{table_id}" class="sortable" data-split="both"><thead><tr>{head}</tr>'
            f"</thead><tbody>\n{body}</tbody></table></div>")


def _filters_html(board: dict) -> str:
    rows = board["rows"] + [r for section in board.get("distribution", []) for r in section["rows"]]
    targets = list(dict.fromkeys((target_label(r["target"]), r.get("target_short") or target_label(r["target"]))
                                 for r in rows))
    aligners = sorted({r["aligner_label"] for r in rows})

    def select(ident: str, label: str, options: list[tuple[str, str]]) -> str:
        body = "".join(f'<option value="{escape(v)}">{escape(t)}</option>' for v, t in options)
        return f'<label>{label} <select id="{ident}">{body}</select></label>'

    return ('<form id="filters" class="filters">'
            + select("filter-target", "Target", [("", "all targets")] + targets)
            + select("filter-aligner", "Aligner", [("", "all aligners")] + [(a, a) for a in aligners])
            + select("filter-split", "Split", [("both", "held-out and train"), ("heldout", "held-out"),
                                               ("train", "train")])
            + '<span id="filter-count"></span></form>')


def _rank_html(board: dict) -> str:
    groups = _ranked(board)
    if not groups:
        return "<p>Rank agreement needs one model and aligner evaluated on 3 targets or more.</p>"
    dims = dimensions(board)
    headers = ["Model", "Aligner", "Split", "Targets"] + [d.upper() for d in dims]
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        f'<tr><td class="text">{escape(g["model_label"])}</td><td class="text">{escape(g["aligner_label"])}</td>'
        f'<td class="text">{split}</td><td>{g["n_targets"]}</td>'
        + "".join(f"<td>{escape(_rank_text(g['splits'][split].get(d)))}</td>" for d in dims) + "</tr>"
        for g in groups for split in ("heldout", "train"))
    return (f'<p>{escape(RANK_NOTE)}</p><div class="wrap"><table id="rank-agreement">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _groups(board: dict) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for row in board["rows"]:
        out.setdefault((row["model_label"], row["target"]["name"], row["target"]["source"]), []).append(row)
    return out


def _charts_html(board: dict) -> tuple[str, str]:
    colours = chart_colours(board["rows"])
    dims, profiles, curves = dimensions(board), [], []
    for (model, _, _), rows in _groups(board).items():
        rows = sorted(rows, key=lambda r: r["aligner_label"])  # the same order in every chart's legend
        target = rows[0]["target"]
        title = f"{target_label(target)} · {model}"
        series = [{"label": r["aligner_label"], "colour": colours[r["aligner_label"]],
                   "values": {d: s["mean"] for d, s in r["indices"]["heldout"].items()},
                   "spread": {d: s["sd"] for d, s in r["indices"]["heldout"].items()}} for r in rows]
        svg = profile_chart(title, dims, series, {"label": f"{target['name']} (target)", "values": target["scores"]})
        profiles.append(f"<figure>{svg}<figcaption>Held-out indices of each aligner (mean over seeds, whiskers "
                        f"± sd) against the target's profile.</figcaption></figure>")
        svg = convergence_svg(title, rows, colours)
        if svg:
            curves.append(f"<figure>{svg}<figcaption>{CONVERGENCE_NOTE}</figcaption></figure>")
    return "".join(profiles), "".join(curves) or "<p>No searching aligner in these entries.</p>"


CONVERGENCE_NOTE = ("Best fitness found against candidate evaluations, one line per seed, in the search's "
                    "precision; hollow marker: the result re-scored in full precision (mean over seeds), which "
                    "is what the table reports; dashed: aligners that do not search.")


def chart_colours(rows: list[dict]) -> dict[str, str]:
    """One colour per aligner label, the same in every chart of a board; each aligner that declares
    a colour (``Aligner.colour``) has its own."""
    return aligner_colours([(r["aligner_label"], r["aligner"]["name"]) for r in rows], declared_colours())


def declared_colours() -> dict[str, str]:
    """Aligner name -> the colour it declares, for every registered aligner that declares one, in
    display order."""
    table = available_aligners()
    return {name: table[name].colour for name in sorted(table, key=display_key) if table[name].colour}


def convergence_svg(title: str, rows: list[dict], colours: dict[str, str]) -> str | None:
    """Convergence chart of one model x target's rows (None when no row searched)."""
    searched = [r for r in rows if r["convergence"]]
    if not searched:
        return None
    runs = [{"label": r["aligner_label"], "colour": colours[r["aligner_label"]],
             "curves": [c["curve"] for c in r["convergence"]],
             "final": [r["evaluations"]["mean"], r["fitness"]["mean"]]} for r in searched]
    refs = [{"label": f"{r['aligner_label']} (final)", "colour": colours[r["aligner_label"]],
             "value": r["fitness"]["mean"]} for r in rows if not r["convergence"]]
    return convergence_chart(title, runs, refs, "best fitness (training variants)")


def _problems_html(board: dict) -> str:
    parts = []
    if board["rejected"]:
        parts.append("<h3>Entries left out</h3><ul class=problems id=rejected>" + "".join(
            f"<li>{escape(p['file'])}: {escape(p['reason'])}</li>" for p in board["rejected"]) + "</ul>")
    if board["duplicates"]:
        parts.append("<h3>Duplicate entries (left out)</h3><ul class=problems id=duplicates>" + "".join(
            f"<li>{escape(p['file'])} repeats {escape(p['duplicate_of'])} (id {escape(p['id'])})</li>"
            for p in board["duplicates"]) + "</ul>")
    return "".join(parts) or "<p>Every entry was valid and unique.</p>"


def _index_html(board: dict) -> str:
    """The index instruments' part of the page: summary, all results, rank agreement, charts."""
    cols = columns(dimensions(board))
    profiles, curves = _charts_html(board)
    return f"""<h2>Summary</h2>
<p>{escape(SUMMARY_NOTE)}</p>
{_table_html("summary", board.get("summary", []), summary_columns())}
<h2>All results</h2>
<p>{escape(INTRO)} Click a column's header to sort; the address can set the sort and the filters on opening,
e.g. <code>#sort=l1_heldout-desc&amp;aligner=de&amp;split=heldout</code>.</p>
{_table_html("leaderboard", board["rows"], cols, target=lambda r: target_label(r["target"]))}
<h2>Rank agreement across targets</h2>
{_rank_html(board)}
<h2>Indices against the target's profile</h2>
<div class="charts">{profiles}</div>
<h2>Convergence</h2>
<div class="charts">{curves}</div>
"""


def _distribution_html(k: int, section: dict) -> str:
    """One distribution instrument's section: summary, all results, convergence charts."""
    rows = section["rows"]
    colours = chart_colours(rows)
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["model_label"], row["target"]["name"]), []).append(row)
    charts = [convergence_svg(f"{target} · {model}", sorted(members, key=lambda r: r["aligner_label"]), colours)
              for (model, target), members in groups.items()]
    curves = "".join(f"<figure>{svg}<figcaption>{CONVERGENCE_NOTE} Fitness: the mean Jensen-Shannon distance on the "
                     f"training questions under the training wordings.</figcaption></figure>" for svg in charts if svg)
    return f"""<h2 id="distribution-{k}">{escape(section_title(section))}</h2>
<p>{escape(section_meta(section))}</p>
<p>{escape(DISTRIBUTION_INTRO)}</p>
<p><strong>{escape(CONSTRUCT_NOTE)}</strong></p>
<h3>Summary</h3>
<p>{escape(DISTRIBUTION_SUMMARY_NOTE)}</p>
{_table_html(f"distribution-{k}-summary", section["summary"], distribution_summary_columns())}
<h3>All results</h3>
{_table_html(f"distribution-{k}-results", rows, distribution_columns(), target=lambda r: target_label(r["target"]))}
<h3>Convergence</h3>
<div class="charts">{curves or "<p>No searching aligner in these entries.</p>"}</div>
"""


def render_html(board: dict) -> str:
    meta = escape(meta_text(board))
    study = (f'<p>The study of these entries (aligners compared with paired tests over targets): '
             f'<a href="{escape(board["study"])}">{escape(board["study"])}</a>.</p>' if board.get("study") else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_csp()}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{TITLE}</title><style>{STYLE}</style></head>
<body>
<h1>{TITLE}</h1>
<p>{meta}</p>
{study}
{_filters_html(board)}
{_index_html(board) if _index_part(board) else ""}{"".join(_distribution_html(k, s) for k, s in enumerate(board.get("distribution", [])))}<h2>Entries left out</h2>
{_problems_html(board)}
<script type="application/json" id="leaderboard-data">{script_json(board)}</script>
<script>{SCRIPT}</script>
</body></html>
"""
