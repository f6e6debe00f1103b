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
from cultbench.runs.experiments import experiment_grid
from cultbench.publish.leaderboard import Entries, collect
from cultbench.prompts import variants_version
from cultbench.columns import fmt
from cultbench.evaluation.metrics import record_content_free_l1
from cultbench.publish.stats import paired_comparison, toward_target
from cultbench.publish.study import BEGIN, END, generated_part, holm, render_study_markdown, study, write_study

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
    assert config["target"][0] == "SA@hofstede-insights-2022-estimates" and config["target"][1:4] == ["US", "CN", "IN"]
    assert len(set(config["target"])) >= 10 and not {"JP", "DE", "BR"} & set(config["target"])  # calibration's
    assert config["aligner"] == ["naive", "icl", "icl-profile", "random", "de", "cmaes", "prompt-tuning"]
    assert len(config["seed"]) >= 2 and isinstance(config["budget"], int)
    assert config.get("search_dtype", "float32") == "float32"  # searched and picked in fp32


@pytest.mark.slow
def test_rerunning_the_experiment_reproduces_its_numbers(runs):
    first, again = (load(folder) for folder in runs)
    # 2 targets x (3 baselines + 3 searches x 2 seeds + prompt-tuning, which the seed does not change)
    assert len(first) == 20 and sorted(first) == sorted(again)
    assert {r["target"]["source"] for r in first.values() if r["target"]["iso2"] == "SA"} == {
        "hofstede-insights-2022-estimates"}
    assert {r["aligner"]["name"] for r in first.values()} == {"naive", "icl", "icl-profile", "random", "de", "cmaes",
                                                               "prompt-tuning"}
    for name, record in first.items():
        for part in SAME:
            assert record[part] == again[name][part], (name, part)
    searched = [r for r in first.values() if r["aligner"]["budget"] is not None]
    # the searches spend the budget in whole generations of 5; prompt tuning in whole steps of 2.71,
    # each with its validation (1 evaluation, early stopping): 2 steps, 7.42, counted as 8
    assert {r["aligner"]["evaluations"] for r in searched if r["aligner"]["name"] != "prompt-tuning"} == {10}
    assert {r["aligner"]["evaluations"] for r in searched if r["aligner"]["name"] == "prompt-tuning"} == {8}
    assert {r["history"]["validation"]["evaluations"] for r in searched if r["aligner"]["name"] == "prompt-tuning"} == {2}


@pytest.mark.slow
def test_study_tables_and_tests_follow_the_entries(runs):
    records = load(runs[0])
    doc = study(collect(runs[0]))
    (model,) = doc["models"]
    assert model["aligners"] == ["naive", "icl", "icl-profile", "random (budget 10)", "de (budget 10)",
                                 "cmaes (budget 10)", "prompt-tuning (budget 10)"]
    for row in model["table"]:
        mine = [r for r in records.values() if r["aligner"]["name"] == row["aligner"].split(" ")[0]
                and row["target"].startswith(r["target"]["name"])]
        for split in ("train", "heldout"):
            values = [r["metrics"][split]["l1"] for r in mine]
            assert row["l1"][split]["mean"] == pytest.approx(statistics.fmean(values))
            assert row["l1"][split]["n"] == len(values) == row["n"]
    tests = {(t["a"], t["b"], t["split"]): t for t in model["tests"]}
    assert len(tests) == 2 * 15 and not model["skipped"]  # every comparison, on both splits
    # de vs naive on held-out: the unit is the target, de's two seeds averaged within it
    de_vs_naive = tests[("de (budget 10)", "naive", "heldout")]
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


# Wording version 3's split, as the synthetic entries carry it (scale orders then come from the variants file).
VARIANTS = {"train": ["respondent-standard", "respondent-standard-reversed", "honest-reworded",
                      "honest-reworded-reversed"],
            "heldout": ["brief-reworded", "brief-reworded-reversed", "panel-interview", "panel-interview-reversed",
                        "researcher-lettered", "researcher-lettered-reversed"]}
TEN = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"]


def _synthetic_entries(values) -> Entries:
    """In-memory entries from one committed record: ``values[(aligner, target, seed)]`` is the L1
    on both splits, or a dict of ``train`` and ``heldout`` L1, ``per_variant`` (held-out variant ->
    L1; default the held-out L1), ``indices`` (dimension -> held-out index; default 50) and
    ``diagnostics`` (the report over all variants; default none), ``scores`` (the target's
    profile; default the template's), ``budget`` (default 120 for a seeded aligner),
    ``hyperparameters`` (updates of the template's) and ``history`` (default none). Seed None: an
    aligner that ignores it."""
    # a committed search record (the archived v2 study's: it stays, whatever v3 has finished)
    template = json.loads(next((ROOT / "leaderboard" / "archive" / "v2" / "entries").glob("*_de_*.json")).read_text())
    records = {}
    for (aligner, target, seed), value in values.items():
        v = value if isinstance(value, dict) else {"train": value, "heldout": value}
        r = copy.deepcopy(template)
        r["target"].update(name=target, code=target)
        if "scores" in v:
            r["target"]["scores"] = dict(v["scores"])
        r["aligner"].update(name=aligner, seed=seed, budget=v.get("budget", None if seed is None else 120))
        r["aligner"]["hyperparameters"].update(v.get("hyperparameters", {}))
        r["history"] = v.get("history")
        r["variants"] = {**VARIANTS, "version": variants_version()}
        for split in ("train", "heldout"):
            r["metrics"][split]["l1"] = v[split]
            r["metrics"][split]["l1_per_variant"] = {name: v.get("per_variant", {}).get(name, v[split])
                                                     for name in VARIANTS[split]}
        for d, score in r["target"]["scores"].items():
            r["splits"]["heldout"]["indices"][d] = v.get("indices", {}).get(d, 50.0)
            r["metrics"]["heldout"]["signed_error"][d] = r["splits"]["heldout"]["indices"][d] - score
        r["metrics"].pop("diagnostics", None)
        if "diagnostics" in v:
            r["metrics"]["diagnostics"] = {"train": v["diagnostics"], "heldout": v["diagnostics"],
                                           "all": v["diagnostics"]}
        records[f"{aligner}-{target}-{seed}.json"] = r
    return Entries(records=records)


def _report(position_bias: float, reversal: float, interpretable: bool = False) -> dict:
    """The parts of a diagnostics report the study reads."""
    return {"option_mass": 0.3, "position_bias": {"mean": position_bias}, "reversal": {"total_variation": reversal},
            "item_discrimination": 0.2, "wording_stability": {"mean": 7.0}, "interpretable": interpretable,
            "failed": [] if interpretable else ["reversal"], "unchecked": []}


def test_targets_not_seeds_are_the_unit_of_a_paired_test():
    """A search 10 points better on three targets and 1 point worse on the fourth, three seeds each,
    against a seed-free baseline: as 12 seed pairs the test finds p < 0.01, but the 12 pairs come
    from 4 baseline values; with the target as the unit p is the exact sign-flip p of 4 values."""
    rng = np.random.default_rng(0)
    effect = {"A": -10.0, "B": -10.0, "C": -10.0, "D": 1.0}
    l1 = {("naive", t, None): 100.0 for t in effect}
    l1.update({("de", t, s): 100.0 + e + rng.uniform(-0.1, 0.1) for t, e in effect.items() for s in range(3)})
    doc = study(_synthetic_entries(l1), comparisons=(("de", "naive", "primary"),))
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


@pytest.mark.slow
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


# (entries, document, study JSON, charts or None): study v4 on the bundled model (the live leaderboard)
# and on the testbed with its controls and follow-ups, and study v3, archived.
COMMITTED_STUDIES = [("leaderboard/entries", "docs/paper-small.md", "leaderboard/study.json", "docs/paper-small"),
                     ("leaderboard/archive/v3/entries", "docs/archive/paper-small-v3.md",
                      "leaderboard/archive/v3/study.json", "docs/archive/paper-small-v3"),
                     ("leaderboard/testbed/entries", "docs/testbed-study.md", "leaderboard/testbed/study.json",
                      "docs/testbed-study"),
                     *((f"leaderboard/testbed-{name}/entries", f"docs/testbed-study-{name}.md",
                        f"leaderboard/testbed-{name}/study.json", None) for name in ("position", "d32", "d128", "b1000"))]


@pytest.mark.slow
@pytest.mark.parametrize("entries,markdown,json_path,charts", COMMITTED_STUDIES)
def test_committed_document_matches_the_committed_entries(entries, markdown, json_path, charts):
    """Each committed study document, its study JSON and its charts are what its entries give."""
    doc = json.loads((ROOT / json_path).read_text())
    grid = doc["grid"]  # --experiment, if it was given
    folder = doc.get("against", {}).get("folder")  # --against, if it was given (as typed, from the root)
    earlier = None if folder is None else collect(ROOT / folder)
    if earlier is not None:
        earlier.folder = folder
    _, changed = write_study(collect(ROOT / entries), markdown=ROOT / markdown, json_path=ROOT / json_path,
                             charts_dir=None if charts is None else ROOT / charts, check=True,
                             grid=None if grid is None else {**experiment_grid(ROOT / grid), "file": grid},
                             earlier=earlier)
    assert changed == []


def test_de_better_on_every_one_of_ten_targets_reaches_the_smallest_p_and_missing_aligners_are_skipped():
    """DE (two seeds) below naive on all 10 targets: the exact sign-flip p is 2/2^10, the floor the
    design states; the comparisons that need an aligner without entries are listed as skipped."""
    rng = np.random.default_rng(1)
    values = {("naive", t, None): 100.0 for t in TEN}
    values.update({("de", t, s): {"train": 80.0 + rng.uniform(-1, 1), "heldout": 90.0 + rng.uniform(-1, 1)}
                   for t in TEN for s in (0, 1)})
    doc = study(_synthetic_entries(values))
    (model,) = doc["models"]
    tests = {(t["a"], t["b"], t["split"]): t for t in model["tests"]}
    assert sorted(tests) == [("de (budget 120)", "naive", "heldout"), ("de (budget 120)", "naive", "train")]
    for split in ("train", "heldout"):
        test = tests[("de (budget 120)", "naive", split)]
        means = [np.mean([values[("de", t, s)][split] for s in (0, 1)]) for t in sorted(TEN)]
        assert test["n_pairs"] == 10 and (test["seeds_a"], test["seeds_b"]) == (2, 1)
        assert test["mean_difference"] == pytest.approx(np.mean(means) - 100.0)
        assert test["p_value"] == pytest.approx(2 / 2 ** 10) == test["min_p_value"]
        assert test["p_holm"] == pytest.approx(2 * 2 / 2 ** 10)  # two tests in the primary family
        assert test["a_better_fraction"] == 1.0
    skipped = {(t["a"], t["b"]): t["skipped"] for t in model["skipped"]}
    assert skipped[("de", "prompt-tuning")] == "no entries of prompt-tuning"
    assert skipped[("cmaes", "random")] == "no entries of cmaes or random"
    coverage = {a["aligner"]: a for a in model["coverage"]["aligners"]}
    assert coverage["de"]["entries"] == 20 and coverage["de"]["missing"] == [] and coverage["de"]["targets"] == 10
    assert coverage["prompt-tuning"]["entries"] == 0 and coverage["prompt-tuning"]["expected_entries"] is None
    text = render_study_markdown(doc)
    assert "Smallest p this design can give** (10 targets: 2/2^10 = 0.001953)" in text
    assert "primary: 2 tests, smallest Holm-adjusted p 0.003906" in text
    assert "de − prompt-tuning: skipped (no entries of prompt-tuning)" in text
    assert "- de against prompt-tuning: skipped, no entries of prompt-tuning." in text
    assert "| prompt-tuning | – | 0 | – | 0 | – | – | no entries |" in text


def test_transfer_dimensions_and_diagnostics_of_a_constructed_search():
    """A search that gains 20 points on training wordings and 5 on held-out ones, all of it on the
    in-order variants (its reversed ones get worse), moves IDV up by 4 and lowers the position bias
    but leaves the reversal distance above the threshold: the study's numbers say so."""
    rng = np.random.default_rng(2)
    orders = {"brief-reworded": -7.0, "panel-interview": -7.0, "researcher-lettered": -7.0,
              "brief-reworded-reversed": 7.0, "panel-interview-reversed": 7.0,
              "researcher-lettered-reversed": 7.0}  # about the held-out gain; their mean is the held-out gain
    values = {("naive", t, None): {"train": 100.0, "heldout": 100.0, "diagnostics": _report(0.7, 0.8)} for t in TEN}
    for t in TEN:
        gain_train, gain_heldout, idv = -20 + rng.uniform(-2, 2), -5 + rng.uniform(-1, 1), 4 + rng.uniform(-1, 1)
        values[("de", t, 0)] = {"train": 100 + gain_train, "heldout": 100 + gain_heldout, "indices": {"idv": 50 + idv},
                                "per_variant": {v: 100 + gain_heldout + shift for v, shift in orders.items()},
                                "diagnostics": _report(0.6 + rng.uniform(-0.05, 0.05), 0.7)}
    doc = study(_synthetic_entries(values))
    (model,) = doc["models"]
    de = [values[("de", t, 0)] for t in sorted(TEN)]
    (gains,) = model["transfer"]["gains"]
    assert gains["train"]["mean_difference"] == pytest.approx(np.mean([v["train"] - 100 for v in de]))
    gap = gains["gap"]
    assert gap["mean_difference"] == pytest.approx(np.mean([v["heldout"] - v["train"] for v in de]))
    assert gap["p_value"] == pytest.approx(2 / 2 ** 10) and gap["p_holm"] == pytest.approx(2 / 2 ** 10)
    per_variant = {v["variant"]: v for v in model["transfer"]["per_variant"]}
    assert {v: t["scale"] for v, t in per_variant.items()} == {
        v: "descending" if v.endswith("-reversed") else "ascending" for v in orders}
    for name, shift in orders.items():
        expected = np.mean([v["per_variant"][name] - 100 for v in de])
        assert per_variant[name]["mean_difference"] == pytest.approx(expected)
    family = model["transfer"]["per_variant"]
    assert [t["p_holm"] for t in family] == pytest.approx(holm([t["p_value"] for t in family]))
    dims = {(t["dimension"], t["change"]): t for t in model["dimensions"]["tests"]}
    # only IDV differs from naive; a dimension with no difference at any target is not tested
    assert set(dims) == {("idv", "index"), ("idv", "abs_error")} and len(model["dimensions"]["skipped"]) == 10
    assert {t["skipped"] for t in model["dimensions"]["skipped"] if t["dimension"] == "pdi"} == {
        "pdi: de (budget 120) and naive have the same value at every target, so there is nothing to test"}
    idv = [v["indices"]["idv"] - 50 for v in de]
    assert dims[("idv", "index")]["mean_difference"] == pytest.approx(np.mean(idv))
    china_idv = 20.0  # the template record's target scores (China), kept for every synthetic target
    assert dims[("idv", "abs_error")]["mean_difference"] == pytest.approx(
        np.mean([abs(50 + x - china_idv) - abs(50 - china_idv) for x in idv]))
    summaries = {s["aligner"]: s for s in model["diagnostics"]["per_aligner"]}
    assert summaries["naive"]["position_bias"]["mean"] == pytest.approx(0.7)
    assert summaries["de (budget 120)"]["reversal_above"] == 10
    assert summaries["de (budget 120)"]["interpretable_entries"] == 0
    changes = {t["diagnostic"]: t for t in model["diagnostics"]["tests"]}
    assert changes["position_bias"]["mean_difference"] == pytest.approx(
        np.mean([v["diagnostics"]["position_bias"]["mean"] for v in de]) - 0.7)
    assert changes["reversal_tv"]["mean_difference"] == pytest.approx(-0.1)
    text = render_study_markdown(doc)
    assert "### Transfer of the gain to held-out wordings" in text and "| brief-reworded-reversed | reversed |" in text
    up = np.mean([per_variant[v]["mean_difference"] for v in orders if not v.endswith("-reversed")])
    down = np.mean([per_variant[v]["mean_difference"] for v in orders if v.endswith("-reversed")])
    assert up < 0 < down
    assert all(per_variant[v]["p_holm"] < 0.05 for v in orders)
    assert (f"Mean gain over naive on in-order held-out variants {up:+.1f}, on reversed ones {down:+.1f}: opposite "
            "signs, each held by a per-variant test (Holm p < 0.05): the prompt moves answers along the shown "
            "scale's positions, not towards the target's content.") in text


def test_a_partial_study_says_what_the_experiment_grid_lacks(tmp_path):
    """Against an experiment's grid: a searching aligner missing a seed of one target, and one with
    no entries at all, are named; the tests that lack units say why."""
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(yaml.safe_dump({"target": ["US", "CN", "IN"], "aligner": ["naive", "de", "prompt-tuning"],
                                          "seed": [0, 1], "budget": 120}))
    grid = experiment_grid(experiment)
    assert grid["aligners"] == {"naive": False, "de": True, "prompt-tuning": True} and grid["seeds"] == [0, 1]
    assert grid["unseeded"] == ["prompt-tuning"]  # deterministic: one run per target, with seed 0
    assert [t["name"] for t in grid["targets"]] == ["U.S.A.", "China", "India"]
    values = {("naive", t, None): 100.0 for t in ("U.S.A.", "China", "India")}
    values.update({("de", t, 0): 90.0 for t in ("U.S.A.", "China", "India")})
    values[("de", "U.S.A.", 1)] = 91.0
    values[("icl", "China", None)] = 95.0  # not in the grid
    doc = study(_synthetic_entries(values), grid=grid)
    coverage = {a["aligner"]: a for a in doc["models"][0]["coverage"]["aligners"]}
    assert (coverage["de"]["entries"], coverage["de"]["expected_entries"]) == (4, 6)
    assert [(m["target"], m["all"], m["seeds"]) for m in coverage["de"]["missing"]] == [
        ("China (hofstede-2015)", False, [1]), ("India (hofstede-2015)", False, [1])]
    assert coverage["prompt-tuning"]["expected_entries"] == 3
    assert all(m["all"] for m in coverage["prompt-tuning"]["missing"])
    assert not coverage["icl"]["in_grid"] and coverage["icl"]["outside"] == 1
    text = render_study_markdown(doc)
    assert "compared with the grid of" in text
    assert ("(12 combinations: 3 targets, seeds 0, 1 for searching aligners; prompt-tuning does not depend on the "
            "seed, so it runs with the first seed only)") in text
    assert ("| de | yes | 4 | 6 | 3 | 1–2 | 120 | China (hofstede-2015) (seeds 1); India (hofstede-2015) (seeds 1) |"
            in text)
    assert "| icl | no | 1 | – | 1 | 1 | – | not in the grid (+1 outside the grid) |" in text
    skipped = {(t["a"], t["b"]): t["skipped"] for t in doc["models"][0]["skipped"]}
    assert skipped[("de (budget 120)", "icl")] == "1 target in common; a paired test needs 2"


def test_setups_scored_on_other_prompt_variants_are_not_paired():
    """An older wording version's entries (their own aligner label) in the same folder: their L1 is
    over other variants, so they are not paired with the current ones, and the study says why."""
    values = {("naive", t, None): 100.0 for t in TEN[:3]}
    values.update({("de", t, 0): 90.0 for t in TEN[:3]})
    entries = _synthetic_entries(values)
    for name, record in entries.records.items():
        if name.startswith("de-"):
            record["variants"]["version"] = 2
    (model,) = study(entries)["models"]
    (de,) = [a for a in model["aligners"] if a.startswith("de")]
    assert model["tests"] == [] and model["transfer"]["gains"] == []
    reason = f"scored on other prompt variants (wording version 2 against {variants_version()})"
    assert {(t["a"], t["b"], t["skipped"]) for t in model["skipped"] if t["a"] == de} == {(de, "naive", reason)}
    assert [t["skipped"] for t in model["transfer"]["skipped"]] == [reason]


def test_cost_per_run_states_the_budget_and_prompt_tunings_step_cost():
    values = {("naive", t, None): 100.0 for t in TEN[:2]}
    values.update({("prompt-tuning", t, 0): 80.0 for t in TEN[:2]})
    entries = _synthetic_entries(values)
    for name, record in entries.records.items():
        record["run"].update(wall_time_s=200.0 if name.startswith("prompt") else 20.0, align_time_s=150.0,
                             torch_threads=1, resumed=name == "prompt-tuning-A-0.json")
        if name.startswith("prompt"):
            record["aligner"].update(hyperparameters={"step_cost": 3.7, "lr": 0.005}, evaluations=119)
            record["history"] = {"generations": 32, "search_precision": "float32", "best_fitness_search": 80.0,
                                 "curve": [{"evaluations": 3, "best": 85.0, "mean": 85.0}]}
    (model,) = study(entries)["models"]
    cost = {c["aligner"]: c for c in model["cost"]}
    pt = cost["prompt-tuning (budget 120)"]
    assert (pt["budget"], pt["evaluations"]["mean"], pt["generations"]["mean"]) == ([120], 119, 32)
    assert pt["step_cost"] == [3.7]
    assert pt["wall_time_s"]["mean"] == 200.0 and cost["naive"]["budget"] == [] and cost["naive"]["generations"] is None
    text = render_study_markdown(study(entries))
    assert ("| prompt-tuning (budget 120) | 2 | 120 | 119 ± 0 [119, 119] | 32 ± 0 [32, 32] (× 3.7 evaluations) "
            "| float32 |") in text
    assert "prompt-tuning (budget 120) 119 evaluations, 200 s wall time." in text
    assert model["compute"] == {"runs": 4, "wall_time_s": 440.0, "threads": [1], "resumed": 1}
    assert ("All 4 runs together: 440 s of wall time (0.12 h), the sum over runs of one process each, at 1 thread "
            "per run; 1 run resumed from a checkpoint, and it records only the time after the resume.") in text


DIMS = ("pdi", "idv", "mas", "uai", "lto", "ivr")


def _planted(rng, move) -> tuple[dict, np.ndarray, np.ndarray]:
    """Ten targets with their own profiles, naive at 50, and a search (two seeds) whose held-out
    indices are 50 + ``move(way, rng)`` per seed, way = target − naive; returns the entries' values
    and, per target, the seed-mean change and the way."""
    values, changes, ways = {}, [], []
    for t in TEN:
        scores = dict(zip(DIMS, rng.uniform(10, 90, len(DIMS))))
        way = np.array([scores[d] for d in DIMS]) - 50.0
        values[("naive", t, None)] = {"train": 100.0, "heldout": 100.0, "scores": scores}
        moved = [move(way, rng) for _ in (0, 1)]
        for s, m in enumerate(moved):
            values[("de", t, s)] = {"train": 90.0, "heldout": 95.0, "scores": scores,
                                    "indices": dict(zip(DIMS, 50.0 + m))}
        changes.append(np.mean(moved, axis=0))
        ways.append(way)
    return values, np.array(changes), np.array(ways)


def test_a_planted_move_toward_the_targets_has_its_slope_and_a_small_target_permutation_p():
    """Changes = 0.5 x (target − naive) + noise: the study's direction test finds slope 0.5, a high
    correlation, and the smallest p its draws allow; seeds are averaged within a target first."""
    values, changes, ways = _planted(np.random.default_rng(3), lambda way, rng: 0.5 * way + rng.normal(0, 2, 6))
    doc = study(_synthetic_entries(values))
    (test,) = doc["models"][0]["direction"]["tests"]
    slope, intercept = np.polyfit(ways.ravel(), changes.ravel(), 1)
    assert test["slope"] == pytest.approx(slope) and test["intercept"] == pytest.approx(intercept, abs=1e-9)
    assert test["slope"] == pytest.approx(0.5, abs=0.05) and test["pearson_r"] > 0.95
    assert test["pearson_r"] == pytest.approx(np.corrcoef(ways.ravel(), changes.ravel())[0, 1])
    assert (test["n_targets"], test["n_points"], test["seeds_a"], test["unit"]) == (10, 60, 2, "target")
    assert test["p_method"] == "target permutation, 99999 random draws" and test["min_p_value"] == pytest.approx(1e-5)
    assert test["p_value"] <= 1e-4 and test["p_holm"] == test["p_value"]  # one test in its family
    assert test["indices"] == "mean"  # the synthetic records, like v3's, have no balanced indices
    text = render_study_markdown(doc)
    assert "### Does the aligner move the model toward the target?" in text
    assert f"| de (budget 120) | naive | 10 | 60 | 2 | mean | {test['slope']:+.4f} |" in text
    assert "held-out mean indices over the renderings (entries before wording version 4" in text


def test_changes_that_ignore_the_targets_give_no_small_p():
    """Changes drawn independently of the targets: the slope is near 0 and the target-permutation p
    is not small."""
    values, changes, ways = _planted(np.random.default_rng(4), lambda way, rng: rng.normal(0, 5, 6))
    (test,) = study(_synthetic_entries(values))["models"][0]["direction"]["tests"]
    assert abs(test["slope"]) < 0.1 and test["p_value"] > 0.2


def test_toward_target_enumerates_every_permutation_of_few_targets():
    """With 4 targets all 4! = 24 pairings are enumerated: the p is a count over them, the smallest
    1/24; the same data under Monte Carlo draws gives about the same p."""
    rng = np.random.default_rng(5)
    ways = rng.normal(0, 20, (4, 6))
    changes = 0.3 * ways + rng.normal(0, 3, (4, 6))
    exact = toward_target(changes, ways)
    assert exact["p_method"] == "exact target permutation" and exact["draws"] == 24
    assert exact["min_p_value"] == pytest.approx(1 / 24)
    observed = np.sum((changes - changes.mean()) * (ways - ways.mean()))
    count = sum(abs(np.sum((changes - changes.mean()) * (ways[list(p)] - ways.mean()))) >= abs(observed) - 1e-9
                for p in itertools.permutations(range(4)))
    assert exact["p_value"] == pytest.approx(count / 24)
    drawn = toward_target(changes, ways, draws=20)
    assert drawn["p_method"] == "target permutation, 20 random draws" and drawn["min_p_value"] == pytest.approx(1 / 21)
    with pytest.raises(ValueError):
        toward_target(changes[:1], ways[:1])


def _curve(points) -> dict:
    """A history whose convergence curve is ``points``: (evaluations, best, mean) per generation."""
    return {"search_precision": "float32", "generations": len(points), "stopped": "budget",
            "best_fitness_search": points[-1][1], "invalid": 0,
            "curve": [{"evaluations": e, "best": b, "mean": m} for e, b, m in points]}


def test_the_first_populations_share_of_a_searchs_gain_follows_its_curves():
    """DE on two targets, two seeds each, popsize 10: its first generation's mean is 100, its first
    generation's best 94 (A) or 98 (B); by the end 90 (A: share 6/10) and 96 or 92 (B: seeds 2/4 and
    2/8, mean 0.375). A search that never improves on its first mean has no share (why: no gain); one whose first
    generation is not its popsize is named; prompt tuning has no population."""
    curves = {("A", 0): [(10, 94.0, 100.0), (20, 92.0, 99.0), (30, 90.0, 97.0)],
              ("A", 1): [(10, 94.0, 100.0), (20, 90.0, 96.0)],
              ("B", 0): [(10, 98.0, 100.0), (20, 96.0, 99.0)],
              ("B", 1): [(10, 98.0, 100.0), (20, 92.0, 97.0)]}
    values = {("naive", t, None): 100.0 for t in "AB"}
    values.update({("de", t, s): {"train": 90.0, "heldout": 95.0, "budget": 30, "hyperparameters": {"popsize": 10},
                                  "history": _curve(c)} for (t, s), c in curves.items()})
    values.update({("cmaes", t, 0): {"train": 99.0, "heldout": 99.0, "budget": 30, "hyperparameters": {"popsize": 10},
                                     "history": _curve([(first, 99.0, 99.0), (20, 99.0, 99.5)])}
                   for t, first in (("A", 10), ("B", 4))})
    values.update({("prompt-tuning", t, 0): {"train": 80.0, "heldout": 99.0, "budget": 30,
                                             "hyperparameters": {"popsize": None},
                                             "history": _curve([(3, 95.0, 95.0), (6, 85.0, 85.0)])} for t in "AB"})
    doc = study(_synthetic_entries(values), comparisons=())
    shares = {a["aligner"]: a for a in doc["models"][0]["first_population"]}
    assert list(shares) == ["de (budget 30)", "cmaes (budget 30)", "prompt-tuning (budget 30)"]  # no naive: no curve
    de = shares["de (budget 30)"]
    per_target = {t["target"]: t for t in de["per_target"]}
    assert per_target["A"]["share"] == pytest.approx(0.6) and per_target["A"]["gain"] == pytest.approx(10.0)
    assert per_target["B"]["share"] == pytest.approx((2 / 4 + 2 / 8) / 2) and per_target["B"]["runs"] == 2
    assert de["share"]["mean"] == pytest.approx((0.6 + 0.375) / 2) and de["targets"] == 2 and de["popsize"] == [10]
    assert de["pooled_share"] == pytest.approx((6 + 6 + 2 + 2) / (10 + 10 + 4 + 8))
    assert de["first_best"]["mean"] == pytest.approx((94 + 98) / 2) and not de["without_share"]
    cmaes = shares["cmaes (budget 30)"]
    assert cmaes["share"]["n"] == 0 and cmaes["pooled_share"] is None and cmaes["popsize"] == [10]
    assert cmaes["without_share"] == [
        {"reason": "its first generation holds 4 evaluations, not popsize 10", "runs": 1},
        {"reason": "no gain (the final best is not below the first generation's mean)", "runs": 1}]
    tuning = shares["prompt-tuning (budget 30)"]
    assert tuning["share"]["n"] == 0 and tuning["per_target"] == []
    assert tuning["without_share"] == [{"reason": "no population (gradient steps, not generations)", "runs": 2}]
    text = render_study_markdown(doc)
    assert "### The first population's share of each search's gain" in text
    assert "| de (budget 30) | 10 | 4 | 2 | 100.0 | 96.0 | 92.0 | 8.00 | 0.49 ± 0.16 [0.38, 0.60] | 0.50 |" in text
    assert "- prompt-tuning (budget 30): 2 runs without a share: no population (gradient steps, not generations)." in text


def test_the_budget_ladder_tests_de_budget_by_budget_and_says_where_the_curves_cross():
    """DE, CMA-ES (two seeds) and prompt tuning at budgets 30 and 100 on five targets: DE's
    held-out L1 is 2 below CMA-ES's at 30 and 5 above it at 100 (the curves cross), its training L1
    3 below at both (no crossing). Each budget is one Holm family of DE against the others on both
    splits; the main family no longer pairs setups two budgets apart; one budget: no ladder."""
    offsets = dict(zip("ABCDE", (0.0, 3.0, -2.0, 5.0, 1.0)))
    jitter = dict(zip("ABCDE", (0.3, -0.2, 0.1, -0.4, 0.2)))  # DE's, per target (mean 0): no constant difference
    l1 = {("de", 30): (100.0, 90.0), ("cmaes", 30): (102.0, 93.0), ("prompt-tuning", 30): (104.0, 80.0),
          ("de", 100): (95.0, 85.0), ("cmaes", 100): (90.0, 88.0), ("prompt-tuning", 100): (101.0, 70.0)}
    records = {("naive", t, None): 110.0 + o for t, o in offsets.items()}
    for (name, budget), (heldout, train) in l1.items():
        for t, o in offsets.items():
            for s in ((0,) if name == "prompt-tuning" else (0, 1)):
                shift = o + (jitter[t] if name == "de" else 0.0) + 0.1 * s
                records[(f"{name}@{budget}", t, s)] = {"train": train + shift, "heldout": heldout + shift,
                                                       "budget": budget}
    entries = _synthetic_entries(records)
    for r in entries.records.values():  # "de@30": aligner de (the @budget keeps the file names apart)
        r["aligner"]["name"] = r["aligner"]["name"].split("@")[0]
    doc = study(entries)
    (m,) = doc["models"]
    ladder = m["ladder"]
    assert ladder["budgets"] == [30, 100] and ladder["a"] == "de"
    points = {(p["aligner"], p["budget"]): p for p in ladder["points"]}
    assert set(points) == set(l1)
    de30 = points[("de", 30)]
    assert de30["label"] == "de (budget 30)" and de30["targets"] == 5
    expected = statistics.fmean(100.0 + o + jitter[t] + 0.05 for t, o in offsets.items())  # seeds: +0, +0.1
    assert de30["l1"]["heldout"]["mean"] == pytest.approx(expected)
    assert points[("prompt-tuning", 100)]["l1"]["train"]["mean"] == pytest.approx(70.0 + statistics.fmean(offsets.values()))
    for family, budget in zip(ladder["families"], (30, 100)):
        assert family["budget"] == budget and not family["skipped"]
        assert {(t["a"], t["b"], t["split"]) for t in family["tests"]} == {
            (f"de (budget {budget})", f"{b} (budget {budget})", s) for b in ("cmaes", "prompt-tuning")
            for s in ("train", "heldout")}
        assert [t["p_holm"] for t in family["tests"]] == pytest.approx(holm([t["p_value"] for t in family["tests"]]))
        assert {t["family"] for t in family["tests"]} == {f"budget {budget}"}
    de_cmaes = {(t["budget"], t["split"]): t for f in ladder["families"] for t in f["tests"] if t["b"].startswith("cmaes")}
    assert de_cmaes[(30, "heldout")]["mean_difference"] == pytest.approx(-2.0)
    assert de_cmaes[(100, "heldout")]["mean_difference"] == pytest.approx(5.0)
    crossings = {(c["a"], c["b"], c["split"]): c for c in ladder["crossings"]}
    assert crossings[("de", "cmaes", "heldout")]["crossings"] == [[30, 100]]
    assert crossings[("de", "cmaes", "train")]["crossings"] == []
    assert crossings[("de", "prompt-tuning", "heldout")]["crossings"] == []  # DE below at both budgets
    # the main family pairs equal budgets only (and the baselines with every budget)
    pairs = {(t["a"], t["b"]) for t in m["tests"] + m["skipped"]}
    assert ("de (budget 30)", "cmaes (budget 30)") in pairs and ("de (budget 30)", "cmaes (budget 100)") not in pairs
    assert ("de (budget 100)", "naive") in pairs
    text = render_study_markdown(doc)
    assert "### Along the budget ladder" in text and "Holm adjusts within the tests of one budget" in text
    assert "- de − cmaes, held-out L1 (30: -2.0, 100: +5.0): the curves cross between budgets 30 and 100." in text
    assert "- de − cmaes, train L1 (30: -3.0, 100: -3.0): no crossing; de stays below at every budget tested." in text
    assert f"| de | {fmt(expected, '.1f')} |" in text
    # one budget: no ladder, in the JSON or the document
    single = _synthetic_entries({k: v for k, v in records.items() if k[0] in ("naive", "de@30", "cmaes@30")})
    for r in single.records.values():
        r["aligner"]["name"] = r["aligner"]["name"].split("@")[0]
    single = study(single)
    assert "ladder" not in single["models"][0] and "budget ladder" not in render_study_markdown(single)


def test_a_grid_of_several_budgets_expects_each_budget_of_each_search(tmp_path):
    """An experiment file with budgets 30 and 100: each searching aligner is expected at both, per
    target and seed; the missing ones are named with their budget, the baselines without."""
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(yaml.safe_dump({"target": ["US", "CN"], "aligner": ["naive", "de"], "seed": [0, 1],
                                          "budget": [30, 100]}))
    grid = experiment_grid(experiment)
    assert grid["budgets"] == [30, 100]
    values = {("naive", t, None): 100.0 for t in ("U.S.A.", "China")}
    values.update({(f"de@{b}", t, s): {"train": 90.0, "heldout": 95.0, "budget": b}
                   for t in ("U.S.A.", "China") for s in (0, 1) for b in (30, 100)})
    del values[("de@100", "China", 1)]
    entries = _synthetic_entries(values)
    for r in entries.records.values():
        r["aligner"]["name"] = r["aligner"]["name"].split("@")[0]
    coverage = {a["aligner"]: a for a in study(entries, grid=grid)["models"][0]["coverage"]["aligners"]}
    de = coverage["de"]
    assert (de["entries"], de["expected_entries"], de["targets"], de["outside"]) == (7, 8, 2, 0)
    assert de["budgets"] == [30, 100] and de["seeds_per_target"] == [1, 2]
    assert de["missing"] == [{"target": "China (hofstede-2015)", "budget": 100, "all": False, "seeds": [1]}]
    assert (coverage["naive"]["entries"], coverage["naive"]["expected_entries"], coverage["naive"]["missing"]) == (2, 2, [])
    text = render_study_markdown(study(entries, grid=grid))
    assert "| de | yes | 7 | 8 | 2 | 1–2 | 30, 100 | China (hofstede-2015) (budget 100: seeds 1) |" in text
    assert "Seeds per target and budget" in text


def test_de_against_another_search_after_its_first_generation_and_at_the_end():
    """Three targets: DE's first generation (10 evaluations) is about 2 below CMA-ES's, its end about
    1 below (same budget): both differences are tested, target as the unit, Holm within the family
    first generation. Random search, whose popsize is 5, is compared at 10 evaluations too: its best
    after its first two generations."""
    first_gap = {"A": -2.1, "B": -1.8, "C": -2.4}
    end_gap = {"A": -1.1, "B": -1.2, "C": -0.6}
    values = {("naive", t, None): 100.0 for t in first_gap}
    for t, gap in first_gap.items():
        values[("de", t, 0)] = {"train": 80.0, "heldout": 90.0, "budget": 20, "hyperparameters": {"popsize": 10},
                                "history": _curve([(10, 90.0 + gap, 95.0), (20, 86.0 + end_gap[t], 94.0)])}
        values[("cmaes", t, 0)] = {"train": 81.0, "heldout": 90.0, "budget": 20, "hyperparameters": {"popsize": 10},
                                   "history": _curve([(10, 90.0, 95.0), (20, 86.0, 93.0)])}
        values[("random", t, 0)] = {"train": 82.0, "heldout": 90.0, "budget": 20, "hyperparameters": {"popsize": 5},
                                    "history": _curve([(5, 93.0, 95.0), (10, 91.0 - 0.1 * "ABC".index(t), 95.0),
                                                       (15, 90.0, 95.0), (20, 89.0, 95.0)])}
    m = study(_synthetic_entries(values), comparisons=())["models"][0]
    tests = {(t["b"], t["point"]): t for t in m["first_generation"]["tests"]}
    assert set(tests) == {(b, p) for b in ("cmaes (budget 20)", "random (budget 20)") for p in ("first_generation", "end")}
    assert not m["first_generation"]["skipped"]
    first, end = tests[("cmaes (budget 20)", "first_generation")], tests[("cmaes (budget 20)", "end")]
    assert first["mean_difference"] == pytest.approx(statistics.fmean(first_gap.values())) and first["evaluations"] == 10
    assert first["n_pairs"] == 3 and first["a_better_fraction"] == 1.0 and first["family"] == "first generation"
    assert end["mean_difference"] == pytest.approx(statistics.fmean(end_gap.values())) and end["evaluations"] is None
    random_first = tests[("random (budget 20)", "first_generation")]
    assert random_first["mean_b"] == pytest.approx(91.0 - 0.1) and tests[("random (budget 20)", "end")]["mean_b"] == 89.0
    made = m["first_generation"]["tests"]
    assert [t["p_holm"] for t in made] == pytest.approx(holm([t["p_value"] for t in made]))
    text = render_study_markdown({"models": [m]})
    assert "| 20 | de (budget 20) | cmaes (budget 20) | after 10 evaluations | 3 | 1/1 |" in text
    assert "| 20 | de (budget 20) | random (budget 20) | at the end | 3 | 1/1 |" in text


def test_searches_at_no_common_budget_are_named_not_paired():
    """DE at 30 and prompt tuning at 300 only: the main family does not pair them (unequal cost) and
    says why; DE against naive is made at its budget."""
    values = {("naive", t, None): 100.0 + k for k, t in enumerate("ABC")}
    values.update({("de", t, 0): {"train": 90.0 + k, "heldout": 95.0 + k * k, "budget": 30} for k, t in enumerate("ABC")})
    values.update({("prompt-tuning", t, 0): {"train": 70.0 + k, "heldout": 99.0 - k, "budget": 300}
                   for k, t in enumerate("ABC")})
    m = study(_synthetic_entries(values))["models"][0]
    skipped = {(t["a"], t["b"]): t["skipped"] for t in m["skipped"]}
    assert skipped[("de", "prompt-tuning")] == ("no budget in common (de at 30, prompt-tuning at 300): setups at "
                                                "different budgets are not paired")
    made = {(t["a"], t["b"]) for t in m["tests"]}
    assert ("de (budget 30)", "naive") in made and not any("prompt-tuning" in b for a, b in made if "de" in a)
    assert m["ladder"]["budgets"] == [30, 300] and all(not f["tests"] for f in m["ladder"]["families"])
    text = render_study_markdown({"models": [m]})
    assert "- de against prompt-tuning: skipped, no budget in common (de at 30, prompt-tuning at 300)" in text
    assert "No budget has both de and another budgeted aligner: no test is made." in text


@pytest.mark.slow
def test_a_budget_ladder_from_cultbench_run_entries(tiny_folder, tmp_path):
    """An experiment file with two budgets, run on the tiny model: the study expects each budget of
    each search, has the ladder (DE against CMA-ES at each budget, its own Holm family) and each
    search's first-population share from the entries' own curves; the page shows the entries as a
    section of their own."""
    config = yaml.safe_load(EXPERIMENT.read_text())
    config.update(model=str(tiny_folder), target=["US", "CN"], seed=[0], budget=[10, 20], aligner=["naive", "de", "cmaes"],
                  param={**config["param"], "popsize": 5, "n_virtual": 2, "d": 4},
                  output=str(tmp_path / "entries"), runs_dir=str(tmp_path / "runs"))
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(config))
    result = invoke(["run", "--config", tmp_path / "experiment.yaml", "--no-progress"])
    assert result.exit_code == 0, result.output
    doc = study(collect(tmp_path / "entries"), grid=experiment_grid(tmp_path / "experiment.yaml"))
    (m,) = doc["models"]
    coverage = {a["aligner"]: a for a in m["coverage"]["aligners"]}
    assert (coverage["de"]["entries"], coverage["de"]["expected_entries"], coverage["de"]["missing"]) == (4, 4, [])
    assert m["ladder"]["budgets"] == [10, 20]
    assert [[(t["a"], t["b"], t["split"]) for t in f["tests"]] for f in m["ladder"]["families"]] == [
        [(f"de (budget {b})", f"cmaes (budget {b})", s) for s in ("train", "heldout")] for b in (10, 20)]
    shares = {a["aligner"]: a for a in m["first_population"]}
    assert set(shares) == {f"{n} (budget {b})" for n in ("de", "cmaes") for b in (10, 20)}
    for label, share in shares.items():
        records = [r for r in collect(tmp_path / "entries").records.values()
                   if f"{r['aligner']['name']} (budget {r['aligner']['budget']})" == label]
        starts = [r["history"]["curve"][0]["mean"] for r in records]
        assert share["popsize"] == [5] and share["runs"] == 2
        assert share["start"]["mean"] == pytest.approx(statistics.fmean(starts))
        assert share["targets"] + sum(w["runs"] for w in share["without_share"]) == 2
        no_gain = "no gain (the final best is not below the first generation's mean)"
        assert {w["reason"] for w in share["without_share"]} <= {no_gain}  # a first generation of popsize
    assert any(s["share"]["n"] for s in shares.values())
    assert "### Along the budget ladder" in render_study_markdown(doc)
    (tmp_path / "board").mkdir()
    written = invoke(["leaderboard", "build", "--entries", tmp_path / "entries", "--out", tmp_path / "board",
                      "--section", f"Ladder={tmp_path / 'entries'}"])
    assert written.exit_code == 0, written.output
    board = json.loads((tmp_path / "board" / "leaderboard.json").read_text())
    assert board["sections"][0]["title"] == "Ladder" and board["sections"][0]["rows"] == board["rows"]


def test_an_earlier_study_is_set_beside_on_the_same_combinations_only():
    """--against: the earlier entries are cut to the combinations the new ones have (4 of 10 targets,
    seed 0 of 2), so each row compares the same targets; its numbers are the earlier study's own,
    recomputed on those entries, and the L1 beside the content-free respondent's is computed for
    entries that do not record it."""
    rng = np.random.default_rng(3)
    old = {("naive", t, None): 170.0 for t in TEN}
    old.update({("de", t, s): {"train": 150.0 + rng.uniform(-1, 1), "heldout": 175.0 + rng.uniform(-1, 1)}
                for t in TEN for s in (0, 1)})
    new = {("naive", t, None): 160.0 for t in TEN[:4]}
    # held-out 60, 63, 66, 69 against the template target's content-free L1 of 70 (minimum effect 3.5 points)
    new.update({("de", t, 0): {"train": 155.0, "heldout": 60.0 + 3 * i} for i, t in enumerate(TEN[:4])})
    earlier, entries = _synthetic_entries(old), _synthetic_entries(new)
    doc = study(entries, earlier=earlier)
    against = doc["against"]
    assert (against["entries"], against["kept"]) == (30, 8)
    (m,) = against["models"]
    rows = {(r["question"], r["a"], r.get("split")): r for r in m["rows"]}
    cut = Entries(records={n: r for n, r in earlier.records.items()
                           if r["target"]["name"] in TEN[:4] and r["aligner"]["seed"] in (None, 0)})
    (then,) = study(cut)["models"]
    for split in ("train", "heldout"):
        (want,) = [t for t in then["tests"] if t["split"] == split]
        row = rows[("L1 difference", "de (budget 120)", split)]
        assert row["earlier"]["mean_difference"] == pytest.approx(want["mean_difference"])
        assert row["earlier"]["n_pairs"] == row["now"]["n_pairs"] == 4
    assert rows[("L1 difference", "de (budget 120)", "heldout")]["now"]["mean_difference"] == pytest.approx(-95.5)
    record = next(iter(earlier.records.values()))  # the template's target and constants (every C = 50)
    assert set(record["constants"].values()) == {50.0} and "content_free_l1" not in record["metrics"]["heldout"]
    content_free = sum(abs(score - 50.0) for score in record["target"]["scores"].values())
    free = rows[("held-out L1 − content-free L1", "de (budget 120)", None)]
    de_old = [old[("de", t, 0)]["heldout"] for t in TEN[:4]]
    assert free["earlier"]["mean"] == pytest.approx(np.mean(de_old) - content_free)
    assert content_free == 70.0 and free["now"]["mean"] == pytest.approx(64.5 - content_free)
    assert free["now"]["n"] == 4 and free["now"]["below"] == 3 and free["earlier"]["below"] == 0
    text = render_study_markdown(doc)
    assert "### Against the earlier study" in text and "Entries used: earlier 8 of 30, now 8 of 8." in text
    assert (f"| held-out L1 − content-free L1 | de (budget 120) | – | – | {np.mean(de_old) - content_free:+.1f}, "
            "below for 0 of 4 targets | -5.5, below for 3 of 4 targets |") in text


def test_an_earlier_study_is_cut_on_both_sides_and_per_model():
    """Only the combinations both studies have are compared: a target only the new entries have is
    left out of the "now" side too, and another model's entries of the same targets are not kept."""
    old = {("naive", t, None): 170.0 for t in TEN[:4]}
    old.update({("de", t, 0): 160.0 + i for i, t in enumerate(TEN[:4])})
    earlier = _synthetic_entries(old)
    for name, record in list(earlier.records.items()):  # the same targets on another model
        other = copy.deepcopy(record)
        other["model"].update(id="another-model", file_sha256="0" * 64)
        earlier.records["other-" + name] = other
    new = {("naive", t, None): 150.0 for t in TEN[:3] + ["K"]}
    new.update({("de", t, 0): 140.0 for t in TEN[:3] + ["K"]})
    doc = study(_synthetic_entries(new), earlier=earlier)
    a = doc["against"]
    assert (a["entries"], a["kept"], a["now_entries"], a["now_kept"]) == (16, 6, 8, 6)
    (m,) = a["models"]
    (row,) = [r for r in m["rows"] if r["question"] == "L1 difference" and r["split"] == "heldout"]
    assert row["earlier"]["n_pairs"] == row["now"]["n_pairs"] == 3
    assert row["earlier"]["mean_difference"] == pytest.approx(-9.0) and row["now"]["mean_difference"] == -10.0


def test_the_content_free_l1_of_a_record_is_read_or_computed_on_its_dimensions():
    record = next(iter(_synthetic_entries({("naive", "A", None): 100.0}).records.values()))
    scores = record["target"]["scores"]
    record["aligner"]["dimensions"] = ["pdi", "idv"]
    assert record_content_free_l1(record) == abs(scores["pdi"] - 50.0) + abs(scores["idv"] - 50.0)
    record["metrics"]["heldout"]["content_free_l1"] = 12.5  # what measurement v4 records comes first
    assert record_content_free_l1(record) == 12.5


def test_an_earlier_study_without_a_combination_in_common_says_so():
    earlier = _synthetic_entries({("naive", t, None): 170.0 for t in TEN[5:]})
    doc = study(_synthetic_entries({("naive", t, None): 160.0 for t in TEN[:4]}), earlier=earlier)
    assert doc["against"]["kept"] == 0 and doc["against"]["models"] == []
    assert "No answer to compare: no earlier entry is one of these entries' combinations." in render_study_markdown(doc)


def test_the_study_command_names_a_missing_earlier_folder(tmp_path):
    result = invoke(["leaderboard", "study", "--entries", ROOT / "leaderboard" / "entries", "--against",
                     tmp_path / "nowhere"])
    assert result.exit_code == 2 and "nowhere" in result.output and "does not exist" in result.output


def test_the_verdicts_aligned_are_counted_per_aligner_with_their_failed_checks():
    entries = _synthetic_entries({**{("naive", t, None): 100.0 for t in "ABC"},
                                  **{("de", t, 0): 90.0 for t in "ABC"}})
    failed = {"A": [], "B": ["mirror"], "C": ["below_naive", "mirror"]}
    for r in entries.records.values():
        if r["aligner"]["name"] == "de":
            f = failed[r["target"]["name"]]
            r["metrics"]["heldout"]["alignment"] = {"aligned": not f, "failed": f}
    doc = study(entries)
    verdicts = {a["aligner"]: a["verdicts"] for a in doc["models"][0]["per_aligner"]}
    assert verdicts["naive"] == {"entries": 0, "aligned": 0, "failed": {}}
    assert verdicts["de (budget 120)"] == {"entries": 3, "aligned": 1, "failed": {"mirror": 2, "below_naive": 1}}
    assert "| de (budget 120) | 3 | 1 | below\\_naive 1, mirror 2 |" in render_study_markdown(doc)
