#!/usr/bin/env python
"""Check the leaderboard page in a real headless browser (Debian's chromium).

    python scripts/check_leaderboard_page.py leaderboard/index.html [--json leaderboard/leaderboard.json]

Checks, and exits 1 naming every failure:
- the page references nothing outside itself (no src/href/url(...) to load, a Content-Security-Policy);
- chromium loads it (file://, no network, a fresh profile) without any console message (errors, CSP
  violations, exceptions: the page logs nothing when all is well);
- the page's script ran (it marks <body data-ready="true">) and parsed the embedded JSON;
- the table has one row per row of leaderboard.json, in the JSON's order, and opening the page
  with #sort=l1_heldout-desc sorts it by held-out L1, largest first;
- the summary has one row per model x aligner of leaderboard.json, before the full table;
- the filters work: #aligner=NAME shows only that aligner's rows, #split=train hides the held-out columns;
- each distribution instrument's section (leaderboard.json's `distribution`) has its summary, then
  its table with one row per row of the section, in order; #sort=sim_heldout-desc sorts it by the
  similarity with both held out, largest first;
- each section of other entries (leaderboard.json's `sections`, `build --section`) has its heading
  with its title, below the main board, its summary (one row per model x aligner of the section)
  before its table, the table one row per row of the section in order, sorted too by
  #sort=l1_heldout-desc, and #aligner=NAME (an aligner of the section) shows only that aligner's rows there.

With --screenshot FILE.png, also saves a screenshot of the page's top (1280 px wide).

Exit status 2 when chromium is not installed (apt-get install -y chromium chromium-driver).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-extensions", "--enable-logging=stderr",
                  "--v=0", "--dump-dom"]
CONSOLE = re.compile(r":CONSOLE[:(]")


class _Page(HTMLParser):
    """Collects what the checks need from a page: external references, CSP, table rows, body attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.external: list[str] = []
        self.csp = False
        self.body: dict = {}
        self.rows: list[dict] = []  # {"row": data-row, "cells": {data-col: data-v}, "aligner", "hidden"}
        self.summary_rows: list[dict] = []
        self.tables: list[str] = []  # table ids in page order
        self.table_rows: dict[str, list[dict]] = {}  # every table's rows: {"row", "cells"}
        self.table_split: dict[str, str] = {}
        self.headings: list[tuple[str | None, str]] = []  # (id, text) of every h2, in page order
        self._heading = None
        self._table = None
        self._style = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy":
            self.csp = "default-src 'none'" in (a.get("content") or "")
        for name in ("src", "href", "srcset", "xlink:href", "action", "data", "poster"):
            value = a.get(name)
            if tag == "a" and name == "href" and value is not None and ":" not in value:
                continue  # a relative link (the study) is followed by the reader, never loaded by the page
            if value is not None and not value.startswith("#"):
                self.external.append(f"<{tag} {name}={value!r}>")
        if tag in ("link", "iframe", "object", "embed", "base"):
            self.external.append(f"<{tag}>")
        if tag == "body":
            self.body = a
        if tag == "table":
            self._table = a.get("id")
            self.tables.append(a.get("id"))
            self.table_split[a.get("id")] = a.get("data-split")
        if tag == "style":
            self._style = True
        if tag == "h2":
            self._heading = [a.get("id"), ""]
        if self._table == "leaderboard" and tag == "tr" and "data-row" in a:
            self.rows.append({"row": a["data-row"], "cells": {}, "aligner": a.get("data-aligner"),
                              "hidden": "hidden" in a})
        if self._table == "summary" and tag == "tr" and "data-row" in a:
            self.summary_rows.append({"aligner": a.get("data-aligner"), "hidden": "hidden" in a})
        if self._table == "leaderboard" and tag == "td" and self.rows:
            self.rows[-1]["cells"][a.get("data-col")] = a.get("data-v")
        if self._table is not None and tag == "tr" and "data-row" in a:
            self.table_rows.setdefault(self._table, []).append({"row": a["data-row"], "cells": {},
                                                                "hidden": "hidden" in a})
        if self._table is not None and tag == "td" and self.table_rows.get(self._table):
            self.table_rows[self._table][-1]["cells"][a.get("data-col")] = a.get("data-v")

    def handle_endtag(self, tag):
        if tag == "h2" and self._heading is not None:
            self.headings.append((self._heading[0], self._heading[1]))
            self._heading = None
        if tag == "table":
            self._table = None
        if tag == "style":
            self._style = False

    def handle_data(self, data):
        if self._heading is not None:
            self._heading[1] += data
        if self._style and ("url(" in data or "@import" in data):
            self.external.append("url() or @import in a style sheet")


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def dump_dom(chromium: str, url: str, timeout: float = 60) -> tuple[str, list[str]]:
    """(the DOM after load, console lines) from one headless chromium with a fresh profile."""
    with tempfile.TemporaryDirectory(prefix="cultbench-chromium-") as profile:
        done = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url],
                              capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout, [line for line in done.stderr.splitlines() if CONSOLE.search(line)]


def check(page_path: Path, json_path: Path, chromium: str) -> list[str]:
    problems = []
    board = json.loads(json_path.read_text(encoding="utf-8"))
    expected = len(board["rows"])
    static = parse(page_path.read_text(encoding="utf-8"))
    problems += [f"the page loads something from outside: {e}" for e in static.external]
    if not static.csp:
        problems.append("the page has no Content-Security-Policy with default-src 'none'")
    url = page_path.resolve().as_uri()
    for fragment in ("", "#sort=l1_heldout-desc", "#sort=sim_heldout-desc"):
        dom, console = dump_dom(chromium, url + fragment)
        problems += [f"console message ({fragment or 'plain'} load): {line.split('] ', 1)[-1]}" for line in console]
        loaded = parse(dom)
        if loaded.body.get("data-ready") != "true":
            problems.append(f"the page's script did not finish ({fragment or 'plain'} load)")
        if loaded.body.get("data-json-rows") != str(expected):
            problems.append(f"the embedded JSON has {loaded.body.get('data-json-rows')} rows, expected {expected}")
        if len(loaded.rows) != expected:
            problems.append(f"the table shows {len(loaded.rows)} rows, leaderboard.json has {expected}")
        order = [r["row"] for r in loaded.rows]
        if not fragment and order != [str(k) for k in range(expected)]:
            problems.append(f"rows are not in leaderboard.json's order: {order}")
        problems += _distribution_problems(board, loaded, fragment)
        problems += _section_problems(board, loaded, fragment)
        if fragment == "#sort=l1_heldout-desc":
            values = [float(r["cells"].get("l1_heldout") or "nan") for r in loaded.rows]
            if values != sorted(values, reverse=True):
                problems.append(f"#sort=l1_heldout-desc did not sort the rows: {values}")
        elif not fragment and (board["rows"] or not board.get("distribution")):
            if len(loaded.summary_rows) != len(board["summary"]):
                problems.append(f"the summary shows {len(loaded.summary_rows)} rows, leaderboard.json has "
                                f"{len(board['summary'])}")
            if "summary" not in loaded.tables or loaded.tables.index("summary") > loaded.tables.index("leaderboard"):
                problems.append("the summary does not come before the full table")
    if board["rows"]:
        aligner = board["rows"][0]["aligner_label"]
        dom, console = dump_dom(chromium, url + "#aligner=" + quote(aligner) + "&split=train")
        problems += [f"console message (filtered load): {line.split('] ', 1)[-1]}" for line in console]
        loaded = parse(dom)
        visible = [r for r in loaded.rows if not r["hidden"]]
        wanted = sum(r["aligner_label"] == aligner for r in board["rows"])
        if len(visible) != wanted or any(r["aligner"] != aligner for r in visible):
            problems.append(f"#aligner={aligner} shows {len(visible)} rows, expected its {wanted}")
        if loaded.table_split.get("leaderboard") != "train":
            problems.append("#split=train did not switch the table to the training split")
    for k, section in enumerate(board.get("sections", [])):
        if not section["rows"]:
            continue
        aligner = section["rows"][-1]["aligner_label"]
        dom, console = dump_dom(chromium, url + "#aligner=" + quote(aligner))
        problems += [f"console message (filtered load): {line.split('] ', 1)[-1]}" for line in console]
        rows = parse(dom).table_rows.get(f"section-{k}-leaderboard", [])
        shown = [r for r in rows if not r["hidden"]]
        wanted = [str(j) for j, r in enumerate(section["rows"]) if r["aligner_label"] == aligner]
        if [r["row"] for r in shown] != wanted:
            problems.append(f"section {k}: #aligner={aligner} shows rows {[r['row'] for r in shown]}, expected {wanted}")
    return problems


def _part_problems(loaded: _Page, table: str, summary: str, part: dict, fragment: str, sort_col: str) -> list[str]:
    """The checks every part of the page with its own summary and table gets (a distribution
    instrument's, a section's): one row per row of ``part``, in order, the summary (one row per
    model x aligner) before the table, and #sort=SORT_COL-desc sorts the table."""
    problems = []
    rows = loaded.table_rows.get(table, [])
    if len(rows) != len(part["rows"]):
        problems.append(f"{table} shows {len(rows)} rows, leaderboard.json has {len(part['rows'])}")
    if fragment == f"#sort={sort_col}-desc":
        values = [float(r["cells"].get(sort_col) or "nan") for r in rows]
        if values != sorted(values, reverse=True):
            problems.append(f"#sort={sort_col}-desc did not sort {table}: {values}")
    if fragment:
        return problems
    if [r["row"] for r in rows] != [str(j) for j in range(len(rows))]:
        problems.append(f"{table}: rows are not in leaderboard.json's order")
    if len(loaded.table_rows.get(summary, [])) != len(part["summary"]):
        problems.append(f"{summary} does not have one row per model x aligner")
    if summary not in loaded.tables or table not in loaded.tables or \
            loaded.tables.index(summary) > loaded.tables.index(table):
        problems.append(f"{summary} does not come before {table}")
    return problems


def _section_problems(board: dict, loaded: _Page, fragment: str) -> list[str]:
    """The checks of the sections of other entries (see the module docstring)."""
    problems = []
    for k, section in enumerate(board.get("sections", [])):
        table = f"section-{k}-leaderboard"
        problems += _part_problems(loaded, table, f"section-{k}-summary", section, fragment, "l1_heldout")
        if fragment:
            continue
        if [h for h in loaded.headings if h[0] == f"section-{k}"] != [(f"section-{k}", section["title"])]:
            problems.append(f"section {k} has no heading {section['title']!r} (or more than one)")
        elif "leaderboard" in loaded.tables and table in loaded.tables and \
                loaded.tables.index("leaderboard") > loaded.tables.index(table):
            problems.append(f"section {k} is not below the main board")
    return problems


def _distribution_problems(board: dict, loaded: _Page, fragment: str) -> list[str]:
    """The checks of the distribution instruments' sections (see the module docstring)."""
    return [problem for k, section in enumerate(board.get("distribution", []))
            for problem in _part_problems(loaded, f"distribution-{k}-results", f"distribution-{k}-summary", section,
                                          fragment, "sim_heldout")]


def screenshot(chromium: str, page_path: Path, out: Path, height: int = 1600) -> None:
    with tempfile.TemporaryDirectory(prefix="cultbench-chromium-") as profile:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--window-size=1280,{height}", f"--screenshot={out.resolve()}",
                        page_path.resolve().as_uri()], capture_output=True, text=True, timeout=120, check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", type=Path, help="the leaderboard's index.html")
    parser.add_argument("--json", type=Path, default=None, help="its leaderboard.json [default: beside the page]")
    parser.add_argument("--chromium", default=None, help="chromium binary [default: found on PATH]")
    parser.add_argument("--screenshot", type=Path, default=None, help="save a PNG of the page's top here")
    args = parser.parse_args(argv)
    chromium = args.chromium or find_chromium()
    if chromium is None:
        print("chromium is not installed (apt-get install -y chromium chromium-driver)", file=sys.stderr)
        return 2
    problems = check(args.page, args.json or args.page.with_name("leaderboard.json"), chromium)
    for p in problems:
        print(f"FAIL {p}", file=sys.stderr)
    if args.screenshot is not None:
        screenshot(chromium, args.page, args.screenshot)
        print(f"wrote {args.screenshot}")
    if not problems:
        print(f"ok: {args.page} loads in {Path(chromium).name} without console messages and shows every row")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
