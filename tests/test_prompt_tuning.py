"""The gradient aligner on the tiny random Llama of conftest.py: training lowers the objective,
budget conversion, artifact, checkpoint and resume (after an exception and after kill -9, bit for
bit), bad input, and the CLI."""

import json
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from aligners import Alignment, AlignmentProblem, get_aligner_class, make_aligner
from aligners.checkpoint import CHECKPOINT_NAME, load_checkpoint
from aligners.prompt_tuning import TIMING_KEYS
from aligners.search_space import initial_prompt
from cultbench.cli import main
from cultbench.errors import CultbenchError
from cultbench.instruments import load_instrument
from cultbench.profiles import lookup
from cultbench.prompts import get_variants
from cultbench.scoring.scorer import SurveyScorer
from conftest import ROOT, check_one_line_error, kill_when

INST = load_instrument("vsm2013")
VARIANTS = ["respondent-standard", "brief-reworded-reversed"]
PARAMS = dict(n_virtual=3, lr=0.05, step_cost=3.0)
INFO = {"id": "tiny-llama", "revision": None, "file_sha256": None, "hidden_size": 32}


def problem_of(tiny, target="US", validation=None):
    model, tokenizer = tiny
    return AlignmentProblem(SurveyScorer(model, tokenizer, INST, get_variants(VARIANTS)), lookup(target),
                            model_info=INFO, validation_scorer=validation)


class DistanceValidation:
    """Validation stand-in on the validation wording's renderings: a prompt's balanced L1 is
    40 + 100 |(its distance from ``reference``) - ``radius``|, so as training carries the prompt
    away from the start the validation distance falls until ``radius``, then rises (it gets worse
    late); it keeps every prompt it scored."""

    def __init__(self, reference=None, radius=0.0):
        self.instrument, self.constants, self.variants = INST, INST.constants(), get_variants("validation")
        self.model = self.tokenizer = None
        self.reference, self.radius, self.seen = reference, radius, []

    def score(self, soft_prompts=None, personas=None):
        rows = []
        for prompt in soft_prompts:
            self.seen.append(prompt.detach().clone())
            away = 0.0 if self.reference is None else float((prompt - self.reference).norm())
            row = lookup("US").vector(INST.dimension_ids).astype(float)
            row[0] += 40 + 100 * abs(away - self.radius)
            rows.append([row, row])
        return types.SimpleNamespace(indices=np.array(rows))


def untimed(alignment: Alignment) -> dict:
    """The record without wall times (which differ between an interrupted and a whole run)."""
    record = alignment.to_dict()
    record["search"] = {k: v for k, v in record["search"].items() if k not in ("wall_seconds", "seconds_per_step")}
    record["history"] = [{k: v for k, v in h.items() if k not in TIMING_KEYS} for h in record["history"]]
    return record


def same_run(a: Alignment, b: Alignment) -> bool:
    return torch.equal(a.soft_prompt, b.soft_prompt) and untimed(a) == untimed(b)


@pytest.fixture(scope="module")
def trained(tiny):
    return make_aligner("prompt-tuning", **PARAMS).align(problem_of(tiny), budget=24, seed=0)


def test_another_seed_repeats_the_run_so_a_sweep_runs_it_once(tiny, trained):
    """Training starts from P0 and uses every item at every step: nothing is drawn, so the seed
    cannot change the result, and the aligner says so (``seeded = False``)."""
    other = make_aligner("prompt-tuning", **PARAMS).align(problem_of(tiny), budget=24, seed=1)
    assert torch.equal(other.soft_prompt, trained.soft_prompt) and other.fitness == trained.fitness
    assert get_aligner_class("prompt-tuning").seeded is False and get_aligner_class("de").seeded is True


def test_training_lowers_the_objective_from_p0_and_records_the_budget(tiny, trained):
    problem = problem_of(tiny)
    model, tokenizer = tiny
    p0, _ = initial_prompt(model, tokenizer, "You are an average human being born in U.S.A. and living in U.S.A. "
                           "responding to the following survey question.", 3)
    start = problem.fitness(problem.scorer.score(p0[None]).indices)[0]
    first = trained.history[0]
    assert first["mean"] == pytest.approx(start, abs=1e-6)  # step 0 scores P0 itself
    assert trained.fitness < start - 1  # the steps moved the indices towards the target
    assert [h["step"] for h in trained.history] == list(range(8))  # budget 24 // step_cost 3
    assert trained.search["steps"] == 8 and trained.evaluations == 24 and trained.search["step_cost"] == 3.0
    assert trained.search["wall_seconds"] > 0 and trained.history[-1]["seconds"] == pytest.approx(
        trained.search["wall_seconds"])
    assert [h["best"] for h in trained.history] == sorted((h["best"] for h in trained.history), reverse=True)
    # the returned prompt is the best one a step scored, re-scored in fp32 by a fresh scorer
    again = problem.fitness(problem_of(tiny).scorer.score(trained.soft_prompt[None]).indices)[0]
    assert trained.fitness == pytest.approx(again, abs=1e-9) == pytest.approx(trained.search["best_fitness"], abs=1e-6)
    assert trained.soft_prompt.shape == (3, 32) and trained.soft_prompt.dtype == torch.float32
    assert trained.result["precision"] == "float32" and trained.search["optimizer"] == "adam"


def test_steps_budget_and_bad_input(tiny):
    pt = make_aligner("prompt-tuning", steps=2, step_cost=2.5)
    assert pt.plan_steps(None) == 2 and pt.plan_steps(100) == 2 and pt.plan_steps(4) == 1
    # Each validation counts one evaluation: 2 steps and 2 validations cost 7.
    assert pt.plan_steps(5, every=0) == 2 and pt.plan_steps(5) == 1 and pt.plan_steps(7) == 2
    assert make_aligner("prompt-tuning", step_cost=2.5).plan_steps(10, every=0) == 4
    assert make_aligner("prompt-tuning", step_cost=2.5).plan_steps(10) == 2  # 3 steps: 7.5 + 3 validations
    assert make_aligner("prompt-tuning", step_cost=2.5, validate_every=3).plan_steps(10) == 3  # 7.5 + 1 (step 0)
    assert make_aligner("prompt-tuning", step_cost=2.5, validate_every=3).plan_steps(12) == 4  # 10 + 2 (steps 0, 3)
    with pytest.raises(CultbenchError, match="pays for no step"):
        make_aligner("prompt-tuning").plan_steps(2)  # the default step costs 2.71 evaluations
    with pytest.raises(CultbenchError, match=r"one step costs 2.71 evaluations and its validation 1\): give a "
                                             r"budget of at least 4"):
        make_aligner("prompt-tuning").plan_steps(3)
    assert make_aligner("prompt-tuning").plan_steps(3, every=0) == 1
    with pytest.raises(CultbenchError, match="give a budget"):
        make_aligner("prompt-tuning").align(problem_of(tiny))
    for params, message in [({"optimizer": "adma"}, "Did you mean: adam"), ({"lr": 0}, "lr=0.0 must be positive"),
                            ({"validate_every": -1}, "validate_every=-1 must be >= 0"),
                            ({"steps": 0}, "steps=0"), ({"init_text": "{nation}"}, "only use the field")]:
        with pytest.raises(CultbenchError, match=message):
            make_aligner("prompt-tuning", **params)


def interrupt_after(steps: int, monkeypatch, align) -> None:
    """Call ``align`` with a KeyboardInterrupt raised when step ``steps`` would start."""
    from aligners import prompt_tuning

    real, calls = prompt_tuning._TrainingRun.train_step, []

    def interrupted(run):
        if len(calls) == steps:
            raise KeyboardInterrupt
        calls.append(1)
        real(run)

    monkeypatch.setattr(prompt_tuning._TrainingRun, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        align()
    monkeypatch.setattr(prompt_tuning._TrainingRun, "train_step", real)


def test_resume_after_an_interrupt_ends_with_the_same_tensor(tiny, trained, tmp_path, monkeypatch):
    interrupt_after(5, monkeypatch, lambda: make_aligner("prompt-tuning", **PARAMS).align(
        problem_of(tiny), budget=24, run_dir=tmp_path))
    state, arrays = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["step"] == 5 and {"prompt", "best_prompt", "optimizer.exp_avg", "optimizer.exp_avg_sq"} <= set(arrays)
    with pytest.raises(CultbenchError, match="already holds a run's checkpoint"):
        make_aligner("prompt-tuning", **PARAMS).align(problem_of(tiny), budget=24, run_dir=tmp_path)
    with pytest.raises(CultbenchError, match=r"hyperparameters.lr is 0.05 in the checkpoint and 0.01 now; pass --param lr=0.05"):
        make_aligner("prompt-tuning", n_virtual=3, lr=0.01, step_cost=3.0).align(problem_of(tiny), budget=24, run_dir=tmp_path,
                                                                  resume=True)
    resumed = make_aligner("prompt-tuning", **PARAMS).align(problem_of(tiny), budget=24, run_dir=tmp_path,
                                                            resume=True)
    assert same_run(resumed, trained)


@pytest.fixture(scope="module")
def early_stopped(tiny):
    """(a run whose validation distance is lowest at step 2 and worse after, its validation stand-in,
    the prompts every step scored). The first run only records the steps' prompts (its validation
    does not change the training path); the second puts the validation minimum at step 2's prompt."""
    probe = DistanceValidation()
    make_aligner("prompt-tuning", **PARAMS).align(problem_of(tiny, validation=probe), budget=24)
    prompts = probe.seen  # the prompt of steps 0..5, each scored before its update
    validation = DistanceValidation(prompts[0], float((prompts[2] - prompts[0]).norm()))
    run = make_aligner("prompt-tuning", **PARAMS).align(problem_of(tiny, validation=validation), budget=24)
    return run, validation, prompts


def test_early_stopping_keeps_the_step_with_the_best_validation_not_the_last(early_stopped):
    run, validation, prompts = early_stopped
    assert len(prompts) == 6 and run.search["steps"] == 6  # 24 evaluations: 6 steps of 3 and 6 validations
    curve = [h["validation"] for h in run.history]
    assert curve[2] == pytest.approx(40.0) and min(curve) == curve[2]
    assert curve[-1] > curve[3] > curve[2]  # validation gets worse late ...
    assert run.history[-1]["best"] < run.history[2]["mean"]  # ... while the training fitness still improves
    assert run.search["validation"] == {"select_by": "validation", "fitness": pytest.approx(40.0), "distance": "l1",
                                        "evaluations": 6, "variants": ["person-standard", "person-standard-reversed"],
                                        "every": 1, "step": 2}
    assert torch.equal(run.soft_prompt, prompts[2])  # the kept step's prompt, not the last or the training best
    assert run.fitness == pytest.approx(run.history[2]["mean"], abs=1e-6)  # its training fitness, re-scored in fp32
    assert run.evaluations == 24 and run.problem["validation_variants"] == ["person-standard", "person-standard-reversed"]


def test_both_curves_are_recorded_per_step(tiny, early_stopped):
    run, validation, prompts = early_stopped
    assert [h["step"] for h in run.history] == list(range(6))
    assert [h["evaluations"] for h in run.history] == pytest.approx([4 * (s + 1) for s in range(6)])  # 3 + 1 each
    assert all(isinstance(h["mean"], float) for h in run.history)  # the training fitness of every step
    reference, radius = validation.reference, validation.radius
    want = [40 + 100 * abs(float((p - reference).norm()) - radius) for p in prompts]
    assert [h["validation"] for h in run.history] == pytest.approx(want)
    # Every second step validated: half the validations, and the kept step is among the validated ones.
    sparse = make_aligner("prompt-tuning", **PARAMS, validate_every=2).align(
        problem_of(tiny, validation=DistanceValidation(reference, radius)), budget=21)
    assert [h["validation"] is None for h in sparse.history] == [False, True, False, True, False, True]
    assert sparse.search["validation"]["step"] == 2 and sparse.search["validation"]["evaluations"] == 3


def test_early_stopping_resumes_exactly(tiny, early_stopped, tmp_path, monkeypatch):
    run, validation, _ = early_stopped

    def problem():
        return problem_of(tiny, validation=DistanceValidation(validation.reference, validation.radius))

    interrupt_after(3, monkeypatch, lambda: make_aligner("prompt-tuning", **PARAMS).align(
        problem(), budget=24, run_dir=tmp_path))
    state, arrays = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["kept_step"] == 2 and state["kept_validation"] == pytest.approx(40.0) and "kept_prompt" in arrays
    resumed = make_aligner("prompt-tuning", **PARAMS).align(problem(), budget=24, run_dir=tmp_path, resume=True)
    assert same_run(resumed, run)


KILL_SCRIPT = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {tests!r})
    import conftest, test_prompt_tuning as t
    from aligners import make_aligner
    tiny = conftest.tiny.__wrapped__()
    make_aligner("prompt-tuning", **t.PARAMS).align(t.problem_of(tiny), budget=300, run_dir={run!r})
""")


@pytest.mark.slow
def test_resume_after_kill_9_ends_with_the_same_tensor(tiny, tmp_path):
    run = tmp_path / "run"
    kill_when(KILL_SCRIPT.format(tests=str(Path(__file__).parent), run=str(run)),
              lambda: (run / CHECKPOINT_NAME).exists() and load_checkpoint(run / CHECKPOINT_NAME)[0]["step"] >= 3)
    done = load_checkpoint(run / CHECKPOINT_NAME)[0]["step"]
    assert 3 <= done < 12
    budget = 3 * (done + 2)  # resume may change the budget; compare with a whole run of the same one
    resumed = make_aligner("prompt-tuning", **PARAMS).align(problem_of(tiny), budget=budget, run_dir=run, resume=True)
    whole = make_aligner("prompt-tuning", **PARAMS).align(problem_of(tiny), budget=budget)
    assert resumed.search["steps"] == done + 2 and same_run(resumed, whole)


def test_cli_align_and_show(tiny_folder, tmp_path):
    shown = CliRunner().invoke(main, ["aligners", "prompt-tuning"])
    assert shown.exit_code == 0 and "lr (float, default 0.03)" in shown.output and "step_cost" in shown.output
    out = tmp_path / "pt"
    result = CliRunner().invoke(main, ["align", "--model", str(tiny_folder), "--target", "Japan", "--aligner",
                                       "prompt-tuning", "--budget", "8", "--param", "n_virtual=2", "--param", "step_cost=3", "--output",
                                       str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    saved = Alignment.from_pretrained(out)
    # 2 steps of 3 evaluations and 2 validations on the validation wording (early stopping)
    assert saved.aligner == "prompt-tuning" and saved.search["steps"] == 2 and saved.evaluations == 8
    assert saved.search["validation"]["select_by"] == "validation" and saved.search["validation"]["evaluations"] == 2
    assert saved.problem["validation_variants"] == ["person-standard", "person-standard-reversed"]
    assert json.loads((out / "alignment.json").read_text())["soft_prompt"]["shape"] == [2, 32]
    bad = CliRunner().invoke(main, ["align", "--model", str(tiny_folder), "--target", "Japan", "--aligner",
                                    "prompt-tuning", "--budget", "2", "--output", str(tmp_path / "x"), "--no-progress"])
    check_one_line_error(bad, "pays for no step")


def test_cultbench_run_and_leaderboard_with_prompt_tuning(tiny_folder, tmp_path):
    import jsonschema
    import leaderboard as leaderboard_data

    args = ["run", "--model", str(tiny_folder), "--target", "Japan", "--aligner", "prompt-tuning", "--aligner",
            "naive", "--budget", "9", "--param", "n_virtual=2", "--param", "lr=0.05", "--param", "step_cost=3", "--output",
            str(tmp_path / "entries"), "--runs-dir", str(tmp_path / "runs"), "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    records = {p.name: json.loads(p.read_text()) for p in (tmp_path / "entries").glob("*.json")}
    (record,) = [r for r in records.values() if r["aligner"]["name"] == "prompt-tuning"]
    schema = json.loads((Path(leaderboard_data.__file__).parent / "result.schema.json").read_text())
    jsonschema.validate(record, schema)
    a = record["aligner"]
    # 2 steps of 3 evaluations, each validated (1 evaluation): 8 of the 9
    assert (a["budget"], a["evaluations"], a["hyperparameters"]["lr"]) == (9, 8, 0.05)
    curve, validation = record["history"]["curve"], record["history"]["validation"]
    assert [p["evaluations"] for p in curve] == [4, 8]
    assert all(isinstance(p["validation"], float) and isinstance(p["mean"], float) for p in curve)  # both curves
    kept = validation["step"]
    assert validation["select_by"] == "validation" and validation["every"] == 1 and validation["evaluations"] == 2
    assert validation["fitness"] == min(p["validation"] for p in curve) == curve[kept]["validation"]
    assert record["metrics"]["train"]["l1"] == pytest.approx(a["fitness"], abs=1e-4)
    # The kept prompt's validation distance is the validation split's L1 the evaluation measured.
    assert record["metrics"]["validation"]["l1"] == pytest.approx(validation["fitness"], abs=1e-3)
    board = tmp_path / "board"
    board.mkdir()
    built = CliRunner().invoke(main, ["leaderboard", "build", "--entries", str(tmp_path / "entries"), "--out",
                                      str(board)])
    assert built.exit_code == 0, built.output
    rows = json.loads((board / "leaderboard.json").read_text())["rows"]
    assert sorted(r["aligner"]["name"] for r in rows) == ["naive", "prompt-tuning"]


@pytest.mark.slow
def test_calibration_script_records_l1_against_wall_time(tiny_folder, tmp_path):
    """scripts/calibrate_aligners.py on the tiny model: a short wall-clock budget per setting, run
    in two processes' worth of files and merged, the curves, held-out marks and the plot."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("calibrate", ROOT / "scripts" / "calibrate_aligners.py")
    calibrate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(calibrate)
    common = ["--model", str(tiny_folder), "--targets", "Japan", "--seconds", "1.5", "--points", "2",
              "--train", ",".join(VARIANTS), "--heldout", "panel-interview"]
    for name, setting in (("pt", "prompt-tuning=prompt-tuning:n_virtual=3"), ("de", "de-box2=de:bounds=-2;2,popsize=5"),
                          ("bf", "de-bf16=de:popsize=5,search_dtype=bfloat16")):
        assert calibrate.main(common + ["--settings", setting, "--out", str(tmp_path / f"{name}.json")]) == 0
    out, plot = tmp_path / "all.json", tmp_path / "all.svg"
    assert calibrate.main(["--merge", *(str(tmp_path / f"{n}.json") for n in ("pt", "de", "bf")), "--out", str(out),
                           "--plot", str(plot)]) == 0
    data = json.loads(out.read_text())
    assert data["train"] == VARIANTS and data["heldout"] == ["panel-interview"] and data["targets"] == ["Japan"]
    assert {r["setting"] for r in data["runs"]} == {"prompt-tuning", "de-box2", "de-bf16"}
    de = next(r for r in data["runs"] if r["setting"] == "de-box2")
    assert de["params"] == {"bounds": "-2,2", "popsize": "5"} and de["stopped"] == "time"
    for run in data["runs"]:
        best = [p["train_l1"] for p in run["curve"]]
        assert best and best == sorted(best, reverse=True) and run["wall_seconds"] >= 1.5
        last = run["marks"][-1]
        assert last["seconds"] == run["wall_seconds"]
        if run["search_dtype"] == "float32":
            assert last["train_l1"] == best[-1] and run["finalist_cost"] == 0
        else:  # the bf16 search's best so far, and the fp32 best of its finalists, re-scored in fp32
            assert last["train_l1_search"] == best[-1] and run["finalist_cost"] > 0
            assert last["train_l1"] != last["train_l1_search"] and last["train_l1"] > 0
        assert len(run["marks"]) <= 2 and all(m["heldout_l1"] > 0 for m in run["marks"])
    assert set(data["references"]["Japan"]) == {"naive", "p0"}
    assert plot.read_text().startswith("<?xml")
    again = tmp_path / "again.json"  # a merged file merges again (e.g. one target's, with another's parts)
    assert calibrate.main(["--merge", str(out), str(tmp_path / "pt.json"), "--out", str(again)]) == 0
    commands = json.loads(again.read_text())["command"]
    assert len(commands) == 4 and all(isinstance(c, str) for c in commands)
    assert calibrate.main(["--targets", "US", "--out", str(tmp_path / "x.json")]) == 2

    # a budget in evaluation units: fp32 candidates cost 1, bf16 ones their eval_cost, a prompt-tuning
    # step its step_cost; no run passes the budget, and a bf16 run pays 5 units for its finalists
    units = tmp_path / "units.json"
    assert calibrate.main(["--model", str(tiny_folder), "--targets", "Japan", "--budget", "16", "--points", "2",
                           "--train", ",".join(VARIANTS), "--heldout", "panel-interview", "--out", str(units),
                           "--settings", "de=de:popsize=5", "pt=prompt-tuning:n_virtual=3,step_cost=3",
                           "bf=de:popsize=5,search_dtype=bfloat16,eval_cost=0.5"]) == 0
    data = json.loads(units.read_text())
    assert data["axis"] == "units" and data["budget"] == 16
    spent = {r["setting"]: (r["units"], r["candidate_sets"], r["stopped"]) for r in data["runs"]}
    assert spent == {"de": (15.0, 3, "units"), "pt": (15.0, 5, "units"), "bf": (5.0 + 10.0, 4, "units")}
    for run in data["runs"]:
        assert run["marks"][-1]["units"] == run["units"] and [p["units"] for p in run["curve"]][-1] <= 16


SUBSPACE = dict(n_virtual=3, d=4, lr=0.5, step_cost=3.0)


def test_subspace_tuning_trains_z_in_the_searches_space_within_the_box(tiny, tmp_path, monkeypatch):
    """subspace-tuning's prompt is P0 + A z with the A, P0 and box that de builds for the same d,
    projection_seed and bounds; z starts at 0 (step 0 scores P0), stays in the box, and a run
    resumed from its checkpoint ends with the same tensor."""
    from aligners import SoftPromptSpace

    model, tokenizer = tiny
    trained = make_aligner("subspace-tuning", **SUBSPACE).align(problem_of(tiny), budget=24)
    space = SoftPromptSpace.build(model, tokenizer, n_virtual=3, d=4, projection_seed=0, bounds=(-3.0, 3.0),
                                  init_text=trained.parametrisation["init_text"])
    assert trained.parametrisation["form"] == "P0 + A z, z trained" and trained.parametrisation["d"] == 4
    assert trained.parametrisation["projection_std"] == space.description["projection_std"]
    offset = (trained.soft_prompt.double().numpy() - space.p0).reshape(-1)
    z, *_ = np.linalg.lstsq(space.projection, offset, rcond=None)
    assert np.abs(space.projection @ z - offset).max() < 1e-5  # in the span of A (float32 rounding)
    assert np.all(np.abs(z) <= 3 + 1e-4) and np.abs(z).max() > 0.1  # in the box, and moved
    start = problem_of(tiny).fitness(problem_of(tiny).scorer.score(torch.from_numpy(space.p0).float()[None]).indices)[0]
    assert trained.history[0]["mean"] == pytest.approx(start, abs=1e-6) and trained.fitness < start - 0.5
    assert 0 <= trained.search["z_at_bounds"] <= 1 and trained.search["z_rms"] > 0.1

    tight = make_aligner("subspace-tuning", **dict(SUBSPACE, bounds=(-0.01, 0.01))).align(problem_of(tiny), budget=9)
    assert tight.search["z_at_bounds"] > 0 and tight.search["z_rms"] <= 0.01 + 1e-12

    interrupt_after(4, monkeypatch, lambda: make_aligner("subspace-tuning", **SUBSPACE).align(
        problem_of(tiny), budget=24, run_dir=tmp_path))
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)[1]["z"].shape == (4,)
    with pytest.raises(CultbenchError, match="aligner is 'subspace-tuning' in the checkpoint"):
        make_aligner("prompt-tuning", **PARAMS).align(problem_of(tiny), budget=24, run_dir=tmp_path, resume=True)
    resumed = make_aligner("subspace-tuning", **SUBSPACE).align(problem_of(tiny), budget=24, run_dir=tmp_path,
                                                                resume=True)
    assert same_run(resumed, trained)
    for params, message in [({"d": 0}, "d=0 is out of range"), ({"bounds": (1, -1)}, "LOW must be below HIGH")]:
        with pytest.raises(CultbenchError, match=message):
            make_aligner("subspace-tuning", **params)
