"""`cultbench run` end to end on the tiny random Llama (conftest.py), then `cultbench leaderboard build`.

One sweep (2 targets x naive and DE x 2 seeds) is shared by the tests of this module (a module
fixture, so each test also runs alone): the sweep's records, reruns (skip, evaluate a saved
alignment, resume a checkpoint, --force), and the leaderboard built from the records.
"""

import ast
import json
import re
import shutil
import statistics
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from click.testing import CliRunner

import leaderboard as leaderboard_data
from aligners import Alignment
from aligners.artifact import CONFIG_NAME, TENSORS_NAME
from conftest import load_page_checker, read_json_files
from cultbench.runs import sweep as sweep_module
from cultbench.cli import main
from cultbench.errors import CultbenchError
from cultbench.instruments import load_instrument
from cultbench.columns import best_mark
from cultbench.publish.page import verdict_text
from cultbench.evaluation.metrics import distance
from cultbench.scoring.models import load_model
from cultbench.prompts import get_variants, variants_version
from cultbench.runs.results import SCHEMA_VERSION
from cultbench.scoring.scorer import SurveyScorer
from cultbench.runs.summary import run_text

SCHEMA = json.loads((Path(leaderboard_data.__file__).parent / "result.schema.json").read_text())
SMALL_DE = ["--param", "popsize=5", "--param", "n_virtual=2", "--param", "d=4"]


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def sweep(tiny_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    args = ["run", "--model", tiny_folder, "--target", "US", "--target", "China", "--aligner", "naive",
            "--aligner", "de", "--budget", "10", "--seed", "0", "--seed", "1", *SMALL_DE,
            "--output", root / "entries", "--runs-dir", root / "runs", "--no-progress"]
    loads = []
    with pytest.MonkeyPatch.context() as patch:  # count the model loads: once per model, not per combination
        patch.setattr(sweep_module, "load_model", lambda *a, **k: loads.append(a) or load_model(*a, **k))
        result = invoke(args)
    assert result.exit_code == 0, result.output
    assert loads == [(str(tiny_folder),)]
    return root, args, result


records = read_json_files


def test_run_writes_one_valid_result_per_combination(sweep, tiny_folder):
    root, _, result = sweep
    entries = records(root / "entries")
    assert sorted(result.stdout.split()) == sorted(str(root / "entries" / n) for n in entries)
    # naive ignores seed and budget: one entry per target; DE: one per target and seed.
    assert len(entries) == 6
    assert sorted((r["target"]["name"], r["aligner"]["name"], r["aligner"]["seed"]) for r in entries.values()) == [
        ("China", "de", 0), ("China", "de", 1), ("China", "naive", None),
        ("U.S.A.", "de", 0), ("U.S.A.", "de", 1), ("U.S.A.", "naive", None)]
    inst = load_instrument("vsm2013")
    loaded = load_model(str(tiny_folder))
    heldout = get_variants("heldout")
    scorer = SurveyScorer(loaded.model, loaded.tokenizer, inst, heldout)
    for name, r in entries.items():
        jsonschema.validate(r, SCHEMA)
        assert r["schema_version"] == SCHEMA_VERSION and r["id"] in name and r["model"]["id"] == str(tiny_folder)
        assert r["model"]["parameters"] == loaded.info["parameters"] and r["constants"]["pdi"] == 50.0
        assert r["variants"] == {"train": [v.name for v in get_variants("train")], "heldout": [v.name for v in heldout],
                                "validation": [v.name for v in get_variants("validation")],
                                "version": variants_version()}
        assert r["instrument"] == {"name": "vsm2013", "version": 1, "dimensions": inst.dimension_ids}
        target = np.array([r["target"]["scores"][d] for d in inst.dimension_ids])
        for split in ("train", "heldout"):
            m, s = r["metrics"][split], r["splits"][split]
            assert m["l1"] == pytest.approx(np.mean(list(m["l1_per_wording"].values())), abs=1e-9)
            assert m["content_free_l1"] == pytest.approx(np.abs(50 - target).sum())
            assert m["l1_over_world_mean"] == pytest.approx(m["l1"] / m["world_mean_l1"])
            for d in inst.dimension_ids:
                assert m["signed_error"][d] == pytest.approx(s["indices"][d] - r["target"]["scores"][d], abs=1e-9)
            assert 0 < s["option_mass"] < 1 and len(s["expected_answers"]) == 24
            diag = r["metrics"]["diagnostics"][split]
            assert diag["variants"] == len(s["variants"]) and diag["option_mass"] == pytest.approx(s["option_mass"])
        overall = r["metrics"]["diagnostics"]["all"]
        assert overall["variants"] == len(r["variants"]["train"]) + len(r["variants"]["validation"]) + len(heldout)
        # An alignment carries the verdict "aligned" (the naive model scored beside it); naive does not.
        verdict = r["metrics"]["heldout"]["alignment"]
        assert (verdict is not None) == (r["aligner"]["name"] != "naive")
        if verdict is not None:
            assert verdict["aligned"] == (verdict["failed"] == []) and r["metrics"]["heldout"]["directedness"] is not None
        assert isinstance(overall["interpretable"], bool)
        assert overall["interpretable"] == (overall["failed"] == overall["unchecked"] == [])
        # The training L1 is the aligner's full-precision fitness.
        assert r["metrics"]["train"]["l1"] == pytest.approx(r["aligner"]["fitness"], abs=1e-4)
        # The held-out numbers are what a fresh scorer gives the saved alignment.
        run_dir = root / "runs" / name.removesuffix(".json")
        alignment = Alignment.from_pretrained(run_dir, model_info=loaded.info)
        per_variant = distance(alignment.score(scorer).indices[0], target)
        shown = r["metrics"]["heldout"]["l1_per_variant"]
        assert [shown[v.name] for v in heldout] == pytest.approx(per_variant.tolist(), abs=1e-4)
        if r["aligner"]["name"] == "de":
            a = r["aligner"]
            assert (a["budget"], a["evaluations"], a["search_dtype"]) == (10, 10, "float32")
            assert a["hyperparameters"]["popsize"] == 5 and a["soft_prompt"] == {"n_virtual": 2, "hidden_size": 32}
            assert f"_b10_s{a['seed']}_" in name
            curve = r["history"]["curve"]
            assert [p["evaluations"] for p in curve] == [5, 10] and curve[0]["best"] >= curve[1]["best"]
            assert r["history"]["best_fitness_search"] == curve[-1]["best"] and r["history"]["stopped"] == "budget"
            assert f"--seed {a['seed']}" in r["run"]["command"] and "--param popsize=5" in r["run"]["command"]
        else:
            assert r["aligner"]["budget"] is None and r["history"] is None and r["aligner"]["evaluations"] == 0
            assert "_s0_" not in name and r["aligner"]["persona"] is None
    # The naive model answers the same whatever the target.
    naive = [r for r in entries.values() if r["aligner"]["name"] == "naive"]
    assert naive[0]["splits"]["heldout"]["indices"] == naive[1]["splits"]["heldout"]["indices"]
    assert naive[0]["metrics"]["heldout"]["l1"] != naive[1]["metrics"]["heldout"]["l1"]


def test_rerun_skips_evaluates_saved_alignments_and_resumes_checkpoints(sweep):
    root, args, _ = sweep
    before = {p.name: p.stat().st_mtime_ns for p in (root / "entries").glob("*.json")}
    again = invoke(args)
    assert again.exit_code == 0, again.output
    assert "0 combinations run, 8 done before, 0 shared" in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (root / "entries").glob("*.json")} == before

    entries = records(root / "entries")
    de = sorted(n for n, r in entries.items() if r["aligner"]["name"] == "de")
    # Alignment saved, result lost: only the evaluation runs again.
    (root / "entries" / de[0]).unlink()
    # Search checkpointed, alignment and result lost: the search resumes (replays) from the checkpoint.
    run_dir = root / "runs" / de[1].removesuffix(".json")
    (run_dir / CONFIG_NAME).unlink()
    (run_dir / TENSORS_NAME).unlink()
    (root / "entries" / de[1]).unlink()
    resumed = invoke(args)
    assert resumed.exit_code == 0, resumed.output
    assert "evaluating the alignment saved in" in resumed.stderr and "resuming the search" in resumed.stderr
    assert "2 combinations run, 6 done before, 0 shared" in resumed.stderr
    for name in de[:2]:
        new = json.loads((root / "entries" / name).read_text())
        assert new["run"]["resumed"] is True
        assert new["metrics"] == entries[name]["metrics"] and new["history"] == entries[name]["history"]

    naive_us = args[:3] + ["--target", "US", "--aligner", "naive"] + args[-5:]
    assert "1 combinations run, 0 done before" in invoke(naive_us + ["--force"]).stderr
    assert "0 combinations run, 1 done before" in invoke(naive_us).stderr


def test_run_prints_a_table_with_the_naive_model_beside_each_result(sweep):
    root, _, result = sweep
    entries = records(root / "entries")
    naive = {r["target"]["name"]: r["metrics"] for r in entries.values() if r["aligner"]["name"] == "naive"}
    for r in entries.values():
        if r["aligner"]["name"] != "de":
            continue
        cells = [r["metrics"][s]["l1"] - naive[r["target"]["name"]][s]["l1"] for s in ("train", "heldout")]
        key = "US" if r["target"]["name"] == "U.S.A." else "CN"
        line = (f"{key:<6}  de       {r['aligner']['seed']:>4}  {r['metrics']['train']['l1']:>8.1f}  {cells[0]:>+7.1f}  "
                f"{r['metrics']['heldout']['l1']:>11.1f}  {cells[1]:>+7.1f}")
        assert line in result.stderr, result.stderr
    # The validity verdict of every result stands in the table, and a failed one is warned about.
    verdicts = {r["metrics"]["diagnostics"]["all"]["interpretable"] for r in entries.values()}
    header = next(line for line in result.stderr.splitlines() if line.startswith("target"))
    assert header.rstrip().endswith("interpretable  aligned")
    assert ("Warning: the validity diagnostics say" in result.stderr) == (False in verdicts)


def test_run_names_each_alignment_folder_beside_its_result_and_in_the_record(sweep):
    root, _, result = sweep
    for path, r in sorted(records(root / "entries").items()):
        folder = r["run"]["alignment_dir"]
        assert Path(folder).parent == root / "runs" and (Path(folder) / "alignment.json").is_file()
        assert Alignment.from_pretrained(folder).target["name"] == r["target"]["name"]
        label = f"{r['aligner']['name']} ({'US' if r['target']['name'] == 'U.S.A.' else 'CN'}" + (
            "" if r["aligner"]["seed"] is None else f", seed {r['aligner']['seed']}") + ")"
        assert f"{label}: alignment in {folder}" in result.stderr  # the summary
        if r["aligner"]["name"] == "de" and r["aligner"]["seed"] == 0:  # the line written as the result is
            assert f"-> {root / 'entries' / path}; alignment: {folder}" in result.stderr


def test_an_alignment_evaluated_against_another_target_is_warned_about(sweep, tiny_folder, tmp_path):
    root, _, _ = sweep
    record = next(r for r in records(root / "entries").values()
                  if r["aligner"]["name"] == "de" and r["target"]["name"] == "U.S.A.")
    out = tmp_path / "eval.json"
    result = invoke(["evaluate", "--model", tiny_folder, "--target", "US", "--target", "China",
                     "--alignment", record["run"]["alignment_dir"], "-o", out])
    assert result.exit_code == 0, result.output
    warning = ("the alignment was fitted to U.S.A. (hofstede-2015) and is evaluated against China (hofstede-2015): "
               "the scores show how a U.S.A. alignment moves the model, not an alignment to China")
    assert result.stderr.count(f"Warning: {warning}\n") == 1 and f"Warning: {warning}" in result.stdout
    assert json.loads(out.read_text())["warnings"] == [warning]  # the target it was fitted to: no warning


def test_the_run_summary_prints_a_bf16_searchs_curse_and_its_finalists_rho(sweep):
    root, _, result = sweep
    assert "Winner's curse" not in result.stderr  # the sweep searched in fp32: nothing was re-scored
    record = next(r for r in records(root / "entries").values()
                  if r["aligner"]["name"] == "de" and r["target"]["name"] == "U.S.A.")
    record["history"].update(search_precision="bfloat16", selection={
        "precision": "float32", "rescored": 5, "spearman": -0.9, "winners_curse": 5.05})
    text = run_text([record])
    assert (f"de (US, seed {record['aligner']['seed']}): searched in bfloat16; its 5 best candidates were re-scored in "
            "float32 and the float32 best returned. Winner's curse +5.05 l1 (the pick's float32 fitness minus its "
            "bfloat16 fitness); Spearman rho between the finalists' bfloat16 and float32 fitness -0.90 (the search's "
            "ranking is not to be trusted).") in text
    assert f"Model: {record['model']['id']} (float32)" in text


def test_the_run_summary_shows_each_results_aligned_verdict(sweep):
    root, _, _ = sweep
    recs = sorted(records(root / "entries").values(), key=lambda r: r["aligner"]["name"] != "naive")
    lines = run_text(recs).splitlines()
    assert lines[0].split()[-2:] == ["interpretable", "aligned"]
    for record, line in zip(recs, lines[1:]):
        verdict = (record["metrics"]["heldout"].get("alignment") or {}).get("aligned")
        assert line.split()[-1] == ("–" if verdict is None else "yes" if verdict else "no")
    assert lines[1].split()[1] == "naive" and lines[1].split()[-1] == "–"  # the naive model has no verdict


def test_publish_copies_checked_results_and_skips_a_published_combination(sweep, tmp_path):
    root, _, _ = sweep
    published = tmp_path / "entries"
    published.mkdir()
    files = sorted((root / "entries").glob("*.json"))
    first = invoke(["leaderboard", "publish", *files[:2], "--entries", published])
    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in published.iterdir()) == sorted(f.name for f in files[:2])
    # A batch with one published file: the rest is published, the published one named as skipped.
    again = invoke(["leaderboard", "publish", files[1], files[2], "--entries", published])
    assert again.exit_code == 0, again.output
    assert f"skipped {files[1]}: this combination is published already as {published / files[1].name}" in again.output
    assert "1 result files published to" in again.output and "1 skipped" in again.output
    assert sorted(p.name for p in published.iterdir()) == sorted(f.name for f in files[:3])
    # An invalid file stops the whole batch before anything is copied.
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    refused = invoke(["leaderboard", "publish", files[3], bad, "--entries", published])
    assert refused.exit_code == 2 and refused.output.startswith("Error:")
    assert len(list(published.iterdir())) == 3


def test_check_says_that_result_entries_come_from_run(tmp_path):
    evaluation = tmp_path / "eval.json"
    evaluation.write_text(json.dumps({"model": {"id": "m"}, "splits": {"train": {}}, "constants": {}}))
    result = invoke(["leaderboard", "check", evaluation])
    assert result.exit_code == 1
    assert "output of `cultbench evaluate`, not a result entry; result entries are written by `cultbench run`" \
        in result.output


@pytest.fixture(scope="module")
def board(sweep, tmp_path_factory):
    """The leaderboard built from the sweep's entries (rebuilt by no test)."""
    root, _, _ = sweep
    out = tmp_path_factory.mktemp("board") / "new"  # --out is created, as run's --output is
    built = invoke(["leaderboard", "build", "--entries", root / "entries", "--out", out])
    assert built.exit_code == 0, built.output
    return root, out


def test_leaderboard_build_matches_the_entries(board):
    root, out = board
    entries = records(root / "entries")
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["entries_used"] == 6 and board["rejected"] == [] and board["duplicates"] == []
    rows = board["rows"]
    assert len(rows) == 4  # model x aligner x target
    for row in rows:
        mine = [entries[f] for f in row["files"]]
        assert all(r["target"]["name"] == row["target"]["name"] and r["aligner"]["name"] == row["aligner"]["name"]
                   for r in mine)
        assert row["n"] == len(mine) == (2 if row["aligner"]["name"] == "de" else 1)
        for split in ("train", "heldout"):
            values = [r["metrics"][split]["l1"] for r in mine]
            assert row["l1"][split]["mean"] == pytest.approx(statistics.fmean(values), abs=1e-12)
            assert row["l1"][split]["sd"] == (pytest.approx(statistics.stdev(values)) if len(values) > 1 else None)
            assert row["indices"][split]["idv"]["mean"] == pytest.approx(
                statistics.fmean(r["splits"][split]["indices"]["idv"] for r in mine))
        if row["aligner"]["name"] == "de":
            assert row["seeds"] == [0, 1] and len(row["convergence"]) == 2
            assert row["convergence"][0]["curve"][-1][0] == 10
    # Each target group is sorted by held-out L1.
    for target in ("China", "U.S.A."):
        l1 = [r["l1"]["heldout"]["mean"] for r in rows if r["target"]["name"] == target]
        assert l1 == sorted(l1)
    # Two targets are too few to rank.
    assert all(v["kendall_tau"] is None for g in board["rank_agreement"] for v in g["splits"]["heldout"].values())

    # The Markdown table: one line per row, in the JSON's order, with the JSON's numbers.
    md = (out / "LEADERBOARD.md").read_text()
    table = md[md.index("## All results"):].splitlines()
    header = [c.strip() for c in next(line for line in table if line.startswith("| Model")).strip("| ").split(" | ")]
    lines = [line for line in table if line.startswith("| ") and not line.startswith("| Model")]
    lines = lines[:len(rows)]
    assert len(lines) == len(rows)
    for line, row in zip(lines, rows):
        cells = [c.strip() for c in line.strip("| ").split(" | ")]
        assert cells[1] == row["aligner_label"] and cells[2] == row["target"]["name"]  # the 2015 matrix: no source
        assert cells[3] == str(row["n"])
        h = row["l1"]["heldout"]
        assert cells[4] == f"{h['mean']:.2f}" + ("" if h["sd"] is None else f" ± {h['sd']:.2f}") + best_mark(row)
        delta = row["delta_vs_naive"]["heldout"]
        assert cells[5] == ("–" if row["aligner"]["name"] == "naive" else f"{delta:+.2f}")
        assert cells[8] == f"{h['mean'] - row['l1']['train']['mean']:+.2f}"
        # the validity verdict beside every row, from the entries' diagnostics
        verdicts = [r["metrics"]["diagnostics"]["all"]["interpretable"] for r in mine]
        expected = "yes" if all(verdicts) else "no" if not any(verdicts) else f"{sum(verdicts)}/{len(verdicts)}"
        assert cells[header.index("Interpretable")] == verdict_text(row["verdict"]) == expected
        assert row["verdict"]["assessed"] == row["n"]
        # the verdict aligned beside it (an alignment's entries carry it; naive's do not)
        assert cells[header.index("Aligned (held-out)")] == row["aligned"]["text"]
        assert (row["aligned"]["text"] == "–") == (row["aligner"]["name"] == "naive")
        # PDI's error comes first: dimensions in the instrument's order
        assert cells[header.index("PDI error")] == f"{row['signed_error']['heldout']['pdi']['mean']:+.1f}"

    # The HTML table: one row per row, each number's full value in data-v, shown rounded.
    html = (out / "index.html").read_text()
    page = load_page_checker().parse(html)
    assert [int(r["row"]) for r in page.rows] == list(range(len(rows)))
    for shown, row in zip(page.rows, rows):
        assert float(shown["cells"]["l1_heldout"]) == row["l1"]["heldout"]["mean"]
        assert float(shown["cells"]["l1_train"]) == row["l1"]["train"]["mean"]
        assert float(shown["cells"]["err_ivr"]) == row["signed_error"]["heldout"]["ivr"]["mean"]
        assert float(shown["cells"]["option_mass"]) == row["option_mass"]["heldout"]["mean"]
        assert float(shown["cells"]["interpretable"]) == row["verdict"]["interpretable"] / row["n"]
        assert shown["cells"]["model"] == row["model_label"] and shown["cells"]["aligner"] == row["aligner_label"]
    assert f'{rows[0]["l1"]["heldout"]["mean"]:.2f}' in html
    assert html.count("<svg") == 4  # per target: the indices chart and the convergence chart


@pytest.mark.skipif(load_page_checker().find_chromium() is None,
                    reason="chromium is not installed (apt-get install -y chromium chromium-driver)")
def test_the_built_page_passes_the_browser_check(board):
    _, out = board
    assert load_page_checker().main([str(out / "index.html")]) == 0


def test_config_file_yaml_and_toml(tiny_folder, tmp_path):
    (tmp_path / "sweep.yaml").write_text(
        f"model: {tiny_folder}\ntarget: [US, Japan]\naligner: [naive, icl]\n"
        "param: {template: 'You grew up in {country}'}\nconstant: {pdi: 0}\n"
        f"output: {tmp_path / 'yaml'}\nruns-dir: {tmp_path / 'runs'}\nprogress: false\n")
    result = invoke(["run", "--config", tmp_path / "sweep.yaml"])
    assert result.exit_code == 0, result.output
    made = records(tmp_path / "yaml")
    assert len(made) == 4 and all(r["constants"]["pdi"] == 0.0 for r in made.values())
    personas = sorted(r["aligner"]["persona"] or "-" for r in made.values())
    assert personas == ["-", "-", "You grew up in Japan", "You grew up in U.S.A."]
    assert all(r["aligner"]["hyperparameters"] == {} for r in made.values() if r["aligner"]["name"] == "naive")

    (tmp_path / "sweep.toml").write_text(
        f'model = ["{tiny_folder}"]\ntarget = ["US", "Japan"]\naligner = "naive"\nruns_dir = "{tmp_path / "runs"}"\n'
        'progress = false\n[constant]\nidv = 10\n')
    result = invoke(["run", "--config", tmp_path / "sweep.toml", "--target", "China", "-o", tmp_path / "toml"])
    assert result.exit_code == 0, result.output
    (made,) = records(tmp_path / "toml").values()  # the command line's --target replaces the file's
    assert made["target"]["name"] == "China" and made["constants"]["idv"] == 10.0


@pytest.mark.parametrize("extra,message", [
    (["--target", "Atlantis"], "unknown country 'Atlantis'"),
    (["--aligner", "dee"], "unknown aligner 'dee'.*Did you mean: de"),
    (["--aligner", "de", "--param", "popsiz=5"], "'popsiz' is a hyper-parameter of none of the aligners.*"
                                                 "Did you mean: popsize"),
    (["--aligner", "de", "--param", "cmaes.popsize=5"], "'cmaes.popsize' names the aligner 'cmaes', which this run "
                                                        "does not run"),
    (["--aligner", "de", "--param", "de.popsiz=5"], "unknown hyper-parameter 'popsiz' for aligner de.*Did you mean: popsize"),
    (["--aligner", "de", "--budget", "3"], "budget 3 is smaller than one generation of de"),
    (["--model", "/no/such/model"], "model path not found: /no/such/model"),
    (["--output", "FILE/entries"], "--output .*cannot create the folder"),
    (["--config", "missing.yaml"], "--config missing.yaml: cannot read"),
    (["--config", "bad.yaml"], "--config bad.yaml: not valid YAML"),
    (["--config", "typo.yaml"], "unknown option 'targt'.*Did you mean: target"),
    (["--constant", "xyz=1"], "xyz"),
    (["--seed", "-1"], "'--seed': -1 is not in the range x>=0"),
    (["--config", "seed.yaml"], "'--seed': -3 is not in the range x>=0"),
    (["--dtype", "bfloat16", "--search-dtype", "float32"],
     "--search-dtype float32 with --dtype bfloat16: --dtype is the precision of everything reported"),
])
def test_user_mistakes_are_one_line_and_exit_2(tmp_path, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("")
    (tmp_path / "bad.yaml").write_text("target: [US\n")
    (tmp_path / "typo.yaml").write_text("targt: US\n")
    (tmp_path / "seed.yaml").write_text("seed: [0, -3]\n")
    result = CliRunner().invoke(main, ["run", "--target", "US", "--aligner", "naive", "--no-progress", *extra])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1, result.output
    assert re.search(message, result.output), result.output
    assert not (tmp_path / "leaderboard").exists() and not (tmp_path / "runs").exists()


def test_run_needs_a_target_and_every_command_has_an_example(tmp_path):
    result = CliRunner().invoke(main, ["run", "--aligner", "naive"])
    assert result.exit_code == 2 and result.output == "Error: give at least one --target (or `target:` in --config)\n"
    for command in (["run"], ["leaderboard"], ["leaderboard", "build"], ["leaderboard", "check"],
                    ["leaderboard", "publish"]):
        shown = CliRunner().invoke(main, [*command, "--help"])
        assert shown.exit_code == 0 and "Example" in shown.output and "cultbench " + command[0] in shown.output


def test_an_aligner_scoped_param_overrides_the_shared_one_for_that_aligner_only(tmp_path):
    spec = sweep_module.SweepSpec(targets=["US"], aligners=["de", "cmaes"], budgets=[40],
                                  params={"popsize": "8", "de.popsize": "20"}, output=tmp_path / "entries",
                                  runs_dir=tmp_path / "runs")
    sweep = sweep_module.Sweep(spec)
    assert sweep.aligners["de"].config.popsize == 20 and sweep.aligners["cmaes"].config.popsize == 8
    assert sweep.params_of("de") == {"popsize": "20"} and sweep.params_of("cmaes") == {"popsize": "8"}


def test_the_sweep_refuses_a_negative_seed_given_as_a_library_call(tmp_path):
    spec = sweep_module.SweepSpec(targets=["US"], aligners=["de"], seeds=[0, -1], output=tmp_path / "entries",
                                  runs_dir=tmp_path / "runs")
    with pytest.raises(CultbenchError, match="--seed -1: give a whole number >= 0"):
        sweep_module.Sweep(spec)


def test_changed_weights_in_the_same_folder_are_a_new_combination(tiny_folder, tmp_path):
    from test_models_and_evaluate import perturb_weights

    folder = shutil.copytree(tiny_folder, tmp_path / "model")
    args = ["run", "--model", folder, "--target", "US", "--aligner", "naive", "--aligner", "de", "--budget", "5",
            *SMALL_DE, "--output", tmp_path / "entries", "--runs-dir", tmp_path / "runs", "--no-progress"]
    assert invoke(args).exit_code == 0
    before = records(tmp_path / "entries")
    (de_run,) = [d for d in (tmp_path / "runs").iterdir() if "_de_" in d.name]
    saved = Alignment.from_pretrained(de_run)
    (de_run / CONFIG_NAME).unlink()  # only the checkpoint is left: unchanged weights would resume from it
    assert "0 combinations run, 2 done before" in invoke(args).stderr

    perturb_weights(folder)
    changed = load_model(str(folder)).info
    with pytest.raises(CultbenchError, match="does not fit: the model file differs"):
        saved.check_compatible(changed)
    again = invoke(args)
    assert again.exit_code == 0, again.output
    assert "2 combinations run, 0 done before" in again.stderr and "resuming" not in again.stderr
    after = records(tmp_path / "entries")
    new = {n: r for n, r in after.items() if n not in before}
    assert len(after) == 4 and len(new) == 2
    assert {r["model"]["file_sha256"] for r in new.values()} == {changed["file_sha256"]}
    assert {r["model"]["file_sha256"] for r in before.values()} == {saved.model["file_sha256"]}
    assert all(r["model"]["id"] == str(folder) for r in after.values())


def test_the_sweep_runs_its_unfinished_combinations_through_its_executor(tiny_folder, tmp_path):
    class Recording(sweep_module.LocalExecutor):
        def __init__(self):
            self.calls = []

        def run(self, sweep, todo, bar):
            self.calls.append([(c.target.name, c.aligner) for c in todo])
            yield from super().run(sweep, todo, bar)

    spec = sweep_module.SweepSpec(targets=["US", "Japan"], aligners=["naive"], models=[str(tiny_folder)],
                                  output=tmp_path / "entries", runs_dir=tmp_path / "runs", progress=False)
    executor = Recording()
    first = list(sweep_module.Sweep(spec, echo=lambda m: None, executor=executor).run())
    assert [status for status, _ in first] == ["written", "written"]
    (tmp_path / "entries" / first[1][1].name).unlink()
    again = list(sweep_module.Sweep(spec, echo=lambda m: None, executor=executor).run())
    assert sorted(status for status, _ in again) == ["done", "written"]
    assert executor.calls == [[("U.S.A.", "naive"), ("Japan", "naive")], [("Japan", "naive")]]


def test_the_local_sweep_does_not_import_the_ray_code():
    tree = ast.parse(Path(sweep_module.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and (m.startswith("cultbench.runs.distributed") or m.startswith("ray"))}


def test_an_aligner_that_ignores_the_seed_runs_with_the_first_seed_only(tiny_folder, tmp_path):
    """prompt-tuning is deterministic (``seeded = False``): of seeds 1 and 0 only 1 runs for it, while
    a search runs for both."""
    spec = sweep_module.SweepSpec(targets=["US", "Japan"], aligners=["de", "prompt-tuning"], seeds=[1, 0],
                                  budgets=[10], models=[str(tiny_folder)], output=tmp_path / "entries",
                                  runs_dir=tmp_path / "runs", progress=False)
    combos = sweep_module.Sweep(spec, echo=lambda m: None).combinations()
    assert sorted((c.target.name, c.aligner, c.seed) for c in combos) == sorted(
        [(t, "de", s) for t in ("U.S.A.", "Japan") for s in (0, 1)] + [(t, "prompt-tuning", 1) for t in ("U.S.A.", "Japan")])
