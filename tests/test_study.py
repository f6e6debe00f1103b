"""The paper-small experiment: its file rerun (shortened, on the tiny model) reproduces its own
numbers; the study's tables and tests follow the entries; the committed document, study JSON and
charts are what the committed entries give."""

import copy
import itertools
import json
import statistics
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from cultbench.cli import main
from cultbench.leaderboard import Entries, collect
from cultbench.stats import paired_comparison
from cultbench.study import BEGIN, END, generated_part, holm, render_study_markdown, study, write_study

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "experiments" / "paper-small.yaml"
# What the rerun must reproduce: everything but the run's own bookkeeping (times, dates).
SAME = ("id", "aligner", "metrics", "splits", "history", "target", "variants", "constants", "instrument")


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def shortened(tiny_folder, folder: Path) -> Path:
    """The experiment file with the tiny model, 2 targets, 2 seeds and small searches."""
    config = yaml.safe_load(EXPERIMENT.read_text())
    config.update(model=str(tiny_folder), target=config["target"][:2], seed=config["seed"][:2], budget=10,
                  param={**config["param"], "popsize": 5, "n_virtual": 2, "d": 4},
                  output=str(folder / "entries"), runs_dir=str(folder / "runs"))
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def runs(tiny_folder, tmp_path_factory):
    out = []
    for name in ("first", "again"):
        folder = tmp_path_factory.mktemp(name)
        result = invoke(["run", "--config", shortened(tiny_folder, folder), "--no-progress"])
        assert result.exit_code == 0, result.output
        out.append(folder / "entries")
    return out


def load(folder: Path) -> dict:
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def test_the_experiment_file_names_what_the_issue_asks_for():
    config = yaml.safe_load(EXPERIMENT.read_text())
    assert config["target"][0] == "SA@hofstede-insights-2022-estimates" and config["target"][1:] == ["US", "CN", "IN"]
    assert config["aligner"] == ["naive", "icl", "icl-profile", "random", "de", "cmaes"]
    assert len(config["seed"]) >= 3 and isinstance(config["budget"], int)


def test_rerunning_the_experiment_reproduces_its_numbers(runs):
    first, again = (load(folder) for folder in runs)
    # 2 targets x (3 baselines + 3 searchers x 2 seeds)
    assert len(first) == 18 and sorted(first) == sorted(again)
    assert {r["target"]["source"] for r in first.values() if r["target"]["iso2"] == "SA"} == {
        "hofstede-insights-2022-estimates"}
    assert {r["aligner"]["name"] for r in first.values()} == {"naive", "icl", "icl-profile", "random", "de", "cmaes"}
    for name, record in first.items():
        for part in SAME:
            assert record[part] == again[name][part], (name, part)
    searched = [r for r in first.values() if r["aligner"]["budget"] is not None]
    assert {r["aligner"]["evaluations"] for r in searched} == {10}


def test_study_tables_and_tests_follow_the_entries(runs):
    records = load(runs[0])
    doc = study(collect(runs[0]))
    (model,) = doc["models"]
    assert model["aligners"] == ["naive", "icl", "icl-profile", "random (10 evals)", "de (10 evals)",
                                 "cmaes (10 evals)"]
    for row in model["table"]:
        mine = [r for r in records.values() if r["aligner"]["name"] == row["aligner"].split(" ")[0]
                and row["target"].startswith(r["target"]["name"])]
        for split in ("train", "heldout"):
            values = [r["metrics"][split]["l1"] for r in mine]
            assert row["l1"][split]["mean"] == pytest.approx(statistics.fmean(values))
            assert row["l1"][split]["n"] == len(values) == row["n"]
    tests = {(t["a"], t["b"], t["split"]): t for t in model["tests"]}
    assert len(tests) == 2 * 9
    # de vs naive on held-out: the unit is the target, de's two seeds averaged within it
    de_vs_naive = tests[("de (10 evals)", "naive", "heldout")]
    units = []
    for target in sorted({r["target"]["name"] for r in records.values()}):
        mine = [r for r in records.values() if r["target"]["name"] == target]
        units.append((statistics.fmean(r["metrics"]["heldout"]["l1"] for r in mine if r["aligner"]["name"] == "de"),
                      next(r["metrics"]["heldout"]["l1"] for r in mine if r["aligner"]["name"] == "naive")))
    expected = paired_comparison([a for a, _ in units], [b for _, b in units])
    assert de_vs_naive["n_pairs"] == 2 and de_vs_naive["unit"] == "target"
    assert (de_vs_naive["seeds_a"], de_vs_naive["seeds_b"]) == (2, 1)
    assert de_vs_naive["min_p_value"] == pytest.approx(0.5)
    for key in ("mean_difference", "ci_low", "ci_high", "p_value"):
        assert de_vs_naive[key] == pytest.approx(expected[key])
    assert [t["p_holm"] for t in model["tests"]] == pytest.approx(holm([t["p_value"] for t in model["tests"]]))
    text = render_study_markdown(doc)
    assert f"| {de_vs_naive['n_pairs']} |" in text and f"{de_vs_naive['mean_difference']:+.1f}" in text


def _synthetic_entries(l1) -> Entries:
    """In-memory entries from one committed record: ``l1[(aligner, target, seed)]`` = held-out and
    training L1 (seed None for an aligner that ignores it)."""
    template = json.loads(next((ROOT / "leaderboard" / "entries").glob("*_de_*.json")).read_text())
    records = {}
    for (aligner, target, seed), value in l1.items():
        r = copy.deepcopy(template)
        r["target"].update(name=target, code=target)
        r["aligner"].update(name=aligner, seed=seed, budget=None if seed is None else 120)
        r["history"] = None
        for split in ("train", "heldout"):
            r["metrics"][split]["l1"] = value
        records[f"{aligner}-{target}-{seed}.json"] = r
    return Entries(records=records)


def test_targets_not_seeds_are_the_unit_of_a_paired_test():
    """A search 10 points better on three targets and 1 point worse on the fourth, three seeds each,
    against a seed-free baseline: as 12 seed pairs the test finds p < 0.01, but the 12 pairs come
    from 4 baseline values; with the target as the unit p is the exact sign-flip p of 4 values."""
    rng = np.random.default_rng(0)
    effect = {"A": -10.0, "B": -10.0, "C": -10.0, "D": 1.0}
    l1 = {("naive", t, None): 100.0 for t in effect}
    l1.update({("de", t, s): 100.0 + e + rng.uniform(-0.1, 0.1) for t, e in effect.items() for s in range(3)})
    doc = study(_synthetic_entries(l1), comparisons=(("de", "naive"),))
    (test, _) = doc["models"][0]["tests"]
    seed_pairs = [(l1[("de", t, s)], 100.0) for t in effect for s in range(3)]
    assert paired_comparison(*zip(*seed_pairs))["p_value"] < 0.01  # what pairing seeds x targets gave
    diffs = np.array([np.mean([l1[("de", t, s)] for s in range(3)]) - 100.0 for t in effect])
    flips = [abs(np.mean(diffs * np.array(signs))) for signs in itertools.product([1, -1], repeat=4)]
    assert test["n_pairs"] == 4 and (test["seeds_a"], test["seeds_b"]) == (3, 1)
    assert test["p_value"] == pytest.approx(np.mean(np.array(flips) >= abs(diffs.mean()) - 1e-12)) == pytest.approx(0.25)
    assert test["mean_difference"] == pytest.approx(diffs.mean())
    assert test["min_p_value"] == pytest.approx(2 / 2 ** 4)
    text = render_study_markdown(doc)
    assert "Smallest p this design can give** (4 targets: 2/2^4 = 0.125)" in text
    assert f"| {test['ci_method']} |" in text and test["ci_method"] in ("BCa", "percentile (BCa degenerate)")


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_study_writes_between_markers_and_check_finds_edits(runs, tmp_path):
    doc_path = tmp_path / "study.md"
    doc_path.write_text(f"# Title\n\nProse before.\n\n{BEGIN}\nstale generated text\n{END}\n\nProse after.\n")
    args = ["leaderboard", "study", "--entries", runs[0], "--markdown", doc_path, "--json", tmp_path / "s.json",
            "--charts", tmp_path / "charts"]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    text = doc_path.read_text()
    assert text.startswith("# Title\n\nProse before.\n\n") and text.endswith("\n\nProse after.\n")
    assert "stale generated text" not in text and generated_part(doc_path).startswith("### ")
    charts = sorted((tmp_path / "charts").glob("*.svg"))
    assert len(charts) == 2 and all(f"(charts/{c.name})" in text for c in charts)
    assert invoke(args + ["--check"]).exit_code == 0
    doc_path.write_text(text.replace("Paired comparisons", "Paired comparison"))
    result = invoke(args + ["--check"])
    assert result.exit_code == 1 and "differs from the entries" in result.output
    no_markers = tmp_path / "plain.md"
    no_markers.write_text("hand-written\n")
    result = invoke(["leaderboard", "study", "--entries", runs[0], "--markdown", no_markers])
    assert result.exit_code == 2 and "no study markers" in result.output and "Traceback" not in result.output


def test_committed_document_matches_the_committed_entries():
    """docs/paper-small.md, leaderboard/study.json and the charts are what the entries give."""
    _, changed = write_study(collect(ROOT / "leaderboard" / "entries"), markdown=ROOT / "docs" / "paper-small.md",
                             json_path=ROOT / "leaderboard" / "study.json", charts_dir=ROOT / "docs" / "paper-small",
                             check=True)
    assert changed == []
