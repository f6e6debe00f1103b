"""A third-party aligner, installed as a package with an entry point, takes its place in the study's
tables, its paired comparisons, its convergence charts and the leaderboard's charts by what the
aligner class declares (display order and colour), with no edit to cultbench."""

import json
import re
import sys
import textwrap

import pytest
from click.testing import CliRunner

from aligners import available_aligners, registry
from cultbench.cli import main
from cultbench.publish.study import BEGIN, END
from test_leaderboard import make_record, write_entries

PLUGIN = textwrap.dedent('''
    """A third-party aligner: random local search, declaring where it sits in tables and charts."""
    from aligners import SoftPromptAligner

    class Walker(SoftPromptAligner):
        """Soft prompt found by a random walk (third-party example)."""
        display_order = 45  # between de (40) and cmaes (50)
        colour = "#117733"
''')


@pytest.fixture
def walker_installed(tmp_path, monkeypatch):
    """A throwaway installed package (module + dist-info with the entry point); the registry is
    restored afterwards."""
    saved = dict(registry._ALIGNERS), dict(registry._PLUGIN_ERRORS), registry._entry_points_loaded
    (tmp_path / "walker_aligner.py").write_text(PLUGIN)
    info = tmp_path / "walker_aligner-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: walker-aligner\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[cultbench.aligners]\nwalker = walker_aligner:Walker\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.load_entry_points(reload=True)
    yield
    sys.modules.pop("walker_aligner", None)
    registry._ALIGNERS.clear()
    registry._ALIGNERS.update(saved[0])
    registry._PLUGIN_ERRORS.clear()
    registry._PLUGIN_ERRORS.update(saved[1])
    registry._entry_points_loaded = saved[2]


def test_a_plugin_aligner_appears_in_the_study_and_its_charts(walker_installed, tmp_path):
    assert available_aligners()["walker"].display_order == 45
    records = []
    for target in ("US", "CN", "JP"):
        records += [make_record(target=target, aligner="naive", seed=None, heldout=dict.fromkeys(DIMS, 60.0)),
                    make_record(target=target, aligner="de", seed=0, curve=(40, 30)),
                    make_record(target=target, aligner="walker", seed=0, curve=(45, 25),
                                train=dict.fromkeys(DIMS, 52.0), heldout=dict.fromkeys(DIMS, 55.0))]
    write_entries(tmp_path / "entries", records)
    doc = tmp_path / "study.md"
    doc.write_text(f"# Study\n\n{BEGIN}\n{END}\n")
    result = CliRunner().invoke(main, ["leaderboard", "study", "--entries", str(tmp_path / "entries"),
                                       "--markdown", str(doc), "--json", str(tmp_path / "study.json"),
                                       "--charts", str(tmp_path / "charts")])
    assert result.exit_code == 0, result.output
    (model,) = json.loads((tmp_path / "study.json").read_text())["models"]
    # its declared place: after de (40), before cmaes (50), which has no entries
    assert model["aligners"] == ["naive", "de (budget 10)", "walker (budget 10)"]
    assert [a["aligner"] for a in model["per_aligner"]] == model["aligners"]
    coverage = [a["aligner"] for a in model["coverage"]["aligners"]]
    assert coverage.index("de") < coverage.index("walker") < coverage.index("cmaes")
    compared = {(t["a"], t["b"]) for t in model["tests"]}
    assert ("walker (budget 10)", "naive") in compared  # compared with the naive model, unasked
    text = doc.read_text()
    assert re.search(r"^\| walker \(budget 10\) \|", text, re.M)
    charts = sorted((tmp_path / "charts").glob("*.svg"))
    assert len(charts) == 3
    for chart in charts:
        svg = chart.read_text()
        assert "walker (budget 10)" in svg and "#117733" in svg  # the colour the class declares
        assert "#D55E00" in svg  # de keeps its own

    result = CliRunner().invoke(main, ["leaderboard", "build", "--entries", str(tmp_path / "entries"),
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "index.html").read_text()
    assert "walker (budget 10)" in page and "#117733" in page


DIMS = ["pdi", "idv", "mas", "uai", "lto", "ivr"]
