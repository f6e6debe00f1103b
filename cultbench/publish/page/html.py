"""The leaderboard as a static, self-contained ``index.html``.

The page needs no server and no network: the tables, the charts (inline SVG, see
``cultbench.publish.charts``) and a small sorting script (``static/page.js``; the style is
``static/page.css``, both package data) are all inside it, and a Content-Security-Policy forbids
loading anything and running any script but that one (by hash). Every string from an entry is
escaped (``html.escape``); the leaderboard JSON embedded for readers of the page is in a
``<script type="application/json">`` with ``<``, ``>`` and ``&`` written as JSON escapes, so no
entry can close the element or open a comment.
"""

from __future__ import annotations

import base64
import hashlib
import json
from html import escape
from importlib import resources

from aligners.registry import available_aligners, display_key
from cultbench.columns import Column, target_label
from cultbench.publish.charts import aligner_colours, convergence_chart, profile_chart
from cultbench.publish.page.columns import (CONSTRUCT_NOTE, DISTRIBUTION_INTRO, DISTRIBUTION_SUMMARY_NOTE, RANK_NOTE,
                                            SUMMARY_NOTE, TITLE, columns, dimensions, distribution_columns,
                                            distribution_summary_columns, index_part, intro_text, meta_text, rank_text,
                                            ranked, section_meta, section_meta_text, section_title, summary_columns)


def _static(name: str) -> str:
    """A file of the page's static folder (package data), as its bytes spell it."""
    return resources.files(__package__).joinpath("static", name).read_bytes().decode("utf-8")


STYLE = "\n" + _static("page.css")  # on lines of its own in the page

SCRIPT = _static("page.js")


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
    rows = board["rows"] + [r for part in board.get("distribution", []) + board.get("sections", []) for r in part["rows"]]
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


def _rank_html(board: dict, prefix: str = "") -> str:
    groups = ranked(board)
    if not groups:
        return "<p>Rank agreement needs one model and aligner evaluated on 3 targets or more.</p>"
    dims = dimensions(board)
    headers = ["Model", "Aligner", "Split", "Targets"] + [d.upper() for d in dims]
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        f'<tr><td class="text">{escape(g["model_label"])}</td><td class="text">{escape(g["aligner_label"])}</td>'
        f'<td class="text">{split}</td><td>{g["n_targets"]}</td>'
        + "".join(f"<td>{escape(rank_text(g['splits'][split].get(d)))}</td>" for d in dims) + "</tr>"
        for g in groups for split in ("heldout", "train"))
    return (f'<p>{escape(RANK_NOTE)}</p><div class="wrap"><table id="{prefix}rank-agreement">'
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


def _index_html(board: dict, prefix: str = "", h: str = "h2") -> str:
    """The index instruments' part of the page: summary, all results, rank agreement, charts;
    ``prefix`` of its tables' ids and ``h`` its headings' level (a section's: "section-K-", h3)."""
    cols = columns(dimensions(board))
    profiles, curves = _charts_html(board)
    return f"""<{h}>Summary</{h}>
<p>{escape(SUMMARY_NOTE)}</p>
{_table_html(prefix + "summary", board.get("summary", []), summary_columns())}
<{h}>All results</{h}>
<p>{escape(intro_text(board))} Click a column's header to sort; the address can set the sort and the filters on opening,
e.g. <code>#sort=l1_heldout-desc&amp;aligner=de&amp;split=heldout</code>.</p>
{_table_html(prefix + "leaderboard", board["rows"], cols, target=lambda r: target_label(r["target"]))}
<{h}>Rank agreement across targets</{h}>
{_rank_html(board, prefix)}
<{h}>Indices against the target's profile</{h}>
<div class="charts">{profiles}</div>
<{h}>Convergence</{h}>
<div class="charts">{curves}</div>
"""


def _study_html(board: dict) -> str:
    return (f'<p>The study of these entries (aligners compared with paired tests over targets): '
            f'<a href="{escape(board["study"])}">{escape(board["study"])}</a>.</p>' if board.get("study") else "")


def _section_html(k: int, section: dict) -> str:
    """Another set of entries (``leaderboard.page_section``) as a section of its own: title, what it
    holds, its study, its index part and its entries left out."""
    return f"""<h2 id="section-{k}">{escape(section["title"])}</h2>
<p>{escape(section_meta_text(section))}</p>
{_study_html(section)}
{_index_html(section, prefix=f"section-{k}-", h="h3")}<h3>Entries left out</h3>
{_problems_html(section)}
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
    study = _study_html(board)
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
{_index_html(board) if index_part(board) else ""}{"".join(_distribution_html(k, s) for k, s in enumerate(board.get("distribution", [])))}<h2>Entries left out</h2>
{_problems_html(board)}
{"".join(_section_html(k, s) for k, s in enumerate(board.get("sections", [])))}<script type="application/json" id="leaderboard-data">{script_json(board)}</script>
<script>{SCRIPT}</script>
</body></html>
"""
