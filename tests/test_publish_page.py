"""The leaderboard page's modules (cultbench/publish/page/): the page's style and script are
package data that an installed wheel carries. (That the committed LEADERBOARD.md and index.html are
what the committed entries render, sections included, is tests/test_leaderboard.py's
test_the_committed_leaderboard_is_built_from_the_committed_entries.)"""

import base64
import hashlib
import tomllib
from importlib import resources
from pathlib import Path

from cultbench.publish.page import render_html
from cultbench.publish.page import html

ROOT = Path(__file__).resolve().parents[1]


def test_the_style_and_script_are_the_static_files_and_the_policy_allows_that_script_alone():
    static = resources.files("cultbench.publish.page").joinpath("static")
    script = static.joinpath("page.js").read_bytes().decode("utf-8")
    assert html.SCRIPT == script and html.STYLE.strip() == static.joinpath("page.css").read_text(encoding="utf-8").strip()
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    page = render_html({"rows": [], "summary": [], "rank_agreement": [], "rejected": [], "duplicates": [],
                        "entries_used": 0, "data_as_of": None, "cultbench_version": "0", "result_schema_version": 3})
    assert f"script-src 'sha256-{digest}';" in page and f"<script>{script}</script>" in page


def test_the_static_files_are_declared_package_data():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = declared["tool"]["setuptools"]["package-data"]["cultbench.publish.page"]
    folder = ROOT / "cultbench" / "publish" / "page"
    shipped = {p.relative_to(folder).as_posix() for pattern in patterns for p in folder.glob(pattern)}
    assert shipped == {"static/page.css", "static/page.js"}
