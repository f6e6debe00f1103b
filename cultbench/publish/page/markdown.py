"""The leaderboard as Markdown (``LEADERBOARD.md``): every string from an entry HTML escaped and
Markdown's own characters backslashed (``md_escape``)."""

from __future__ import annotations

import re
from html import escape

from cultbench.publish.page.columns import (CONSTRUCT_NOTE, DISTRIBUTION_INTRO, DISTRIBUTION_SUMMARY_NOTE, RANK_NOTE,
                                            SUMMARY_NOTE, TITLE, columns, dimensions, distribution_columns,
                                            distribution_summary_columns, index_part, intro_text, meta_text, rank_text,
                                            ranked, section_meta, section_meta_text, section_title, shortened,
                                            summary_columns)


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
    if index_part(board):
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
    for section in board.get("sections", []):
        lines += _section_markdown(section)
    return "\n".join(lines) + "\n"


def _section_markdown(section: dict) -> list[str]:
    """Another set of entries (``leaderboard.page_section``) as a section of its own."""
    lines = ["", f"## {md_escape(section['title'])}", "", md_escape(section_meta_text(section)), ""]
    if section.get("study"):
        lines += [f"The study of these entries: [{md_escape(section['study'])}]({section['study']}).", ""]
    return lines + _index_markdown(section, "###") + _problems_md(section, "###")


def _index_markdown(board: dict, h: str = "##") -> list[str]:
    """The index instruments' part of LEADERBOARD.md: summary, all results, rank agreement (``h``:
    its headings' level)."""
    cols = columns(dimensions(board))
    lines = []
    summary = summary_columns()
    lines += [f"{h} Summary", "", SUMMARY_NOTE, ""]
    lines += md_table([c.header for c in summary], [[md_escape(c.text(e)) for c in summary]
                                                      for e in board.get("summary", [])])
    lines += ["", f"{h} All results", "", intro_text(board), ""]
    lines += md_table([c.header for c in cols], [[md_escape(c.text(r)) for c in cols] for r in board["rows"]])
    short = shortened(board)
    if short:
        lines += ["", "Shortened cells: " + "; ".join(f"{md_escape(a)} = {md_escape(b)}" for a, b in short) + "."]
    lines += settings_legend(board["rows"])
    groups = ranked(board)
    if groups:
        dims = dimensions(board)
        lines += ["", f"{h} Rank agreement across targets", "", RANK_NOTE, ""]
        body = [[md_escape(g["model_label"]), md_escape(g["aligner_label"]), split, str(g["n_targets"])]
                + [rank_text(g["splits"][split].get(d)) for d in dims]
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


def _problems_md(board: dict, h: str = "##") -> list[str]:
    out = []
    if board["rejected"]:
        out += ["", f"{h} Entries left out", ""]
        out += [f"- {md_escape(p['file'])}: {md_escape(p['reason'])}" for p in board["rejected"]]
    if board["duplicates"]:
        out += ["", f"{h} Duplicate entries (left out)", ""]
        out += [f"- {md_escape(p['file'])} repeats {md_escape(p['duplicate_of'])} (id {p['id']})"
                for p in board["duplicates"]]
    return out
