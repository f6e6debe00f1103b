"""aligners/checkpoint.py: a search resumed after an interrupt, a kill -9 or a failed write gives
the uninterrupted result; another run's checkpoint is refused."""

import os
import textwrap
from pathlib import Path

import pytest
import torch

from aligners import make_aligner
from aligners.checkpoint import CHECKPOINT_NAME, load_checkpoint
from cultbench.errors import CultbenchError
from conftest import kill_when
from aligner_standin import LinearScorer, PARAMS, SEARCHERS, synthetic_problem


@pytest.mark.parametrize("name", SEARCHERS)
def test_resume_after_interrupt_gives_the_uninterrupted_result(tmp_path, name):
    whole = make_aligner(name, **PARAMS).align(synthetic_problem(), budget=240, seed=5, run_dir=tmp_path / "a")
    interrupted = LinearScorer(interrupt_at=8)
    with pytest.raises(KeyboardInterrupt):
        make_aligner(name, **PARAMS).align(synthetic_problem(interrupted), budget=240, seed=5,
                                           run_dir=tmp_path / "b")
    state, arrays = load_checkpoint(tmp_path / "b" / CHECKPOINT_NAME)
    assert state["generation"] == 7 and arrays["fitness"].shape == (84,)  # the 8th generation is lost
    scorer = LinearScorer()
    resumed = make_aligner(name, **PARAMS).align(synthetic_problem(scorer), budget=240, seed=5,
                                                 run_dir=tmp_path / "b", resume=True)
    assert scorer.batches == [12] * 13 + [1]  # only the 13 missing generations were scored
    assert resumed == whole
    assert resumed.fitness == whole.fitness and resumed.history == whole.history


@pytest.mark.parametrize("name", SEARCHERS)
def test_a_bf16_search_resumes_to_the_same_finalists_and_pick(tmp_path, name):
    def problem(**kw):
        return synthetic_problem(LinearScorer(dtype=torch.bfloat16, **kw), exact_scorer=LinearScorer())

    whole = make_aligner(name, **PARAMS).align(problem(), budget=245, seed=5, run_dir=tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        make_aligner(name, **PARAMS).align(problem(interrupt_at=8), budget=245, seed=5, run_dir=tmp_path / "b")
    resumed = make_aligner(name, **PARAMS).align(problem(), budget=245, seed=5, run_dir=tmp_path / "b",
                                                 resume=True)
    assert resumed == whole and whole.search["selection"]["rescored"] == 5
    assert resumed.search["selection"] == whole.search["selection"]


def test_resume_refuses_another_run_and_a_run_needs_a_fresh_folder(tmp_path):
    make_aligner("de", **PARAMS).align(synthetic_problem(), budget=48, seed=0, run_dir=tmp_path)
    with pytest.raises(CultbenchError, match="already holds a run's checkpoint"):
        make_aligner("de", **PARAMS).align(synthetic_problem(), budget=48, seed=0, run_dir=tmp_path)
    with pytest.raises(CultbenchError, match=r"belongs to another run \(hyperparameters.popsize is 12 in the "
                       r"checkpoint and 6 now; pass --param popsize=12; seed is 0 in the checkpoint and 1 now; "
                       r"pass --seed 0\)"):
        make_aligner("de", **dict(PARAMS, popsize=6)).align(synthetic_problem(), budget=48, seed=1,
                                                            run_dir=tmp_path, resume=True)
    with pytest.raises(CultbenchError, match="nothing to resume"):
        make_aligner("de", **PARAMS).align(synthetic_problem(), budget=48, run_dir=tmp_path / "new", resume=True)
    # A resume in another search precision names the value the checkpointed run used.
    with pytest.raises(CultbenchError, match="search_precision is 'float32' in the checkpoint and 'bfloat16' now; "
                                             "pass --search-dtype float32"):
        make_aligner("de", **PARAMS).align(synthetic_problem(LinearScorer(dtype="bfloat16")), budget=48, seed=0,
                                           run_dir=tmp_path, resume=True)
    # A larger budget continues the finished run where it stopped.
    longer = make_aligner("de", **PARAMS).align(synthetic_problem(), budget=96, seed=0, run_dir=tmp_path,
                                                resume=True)
    assert longer == make_aligner("de", **PARAMS).align(synthetic_problem(), budget=96, seed=0)


def test_an_interrupted_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import cultbench.atomic as atomic

    real_replace, writes = os.replace, {"n": 0}

    def replace_then_interrupt(src, dst):
        writes["n"] += 1
        if writes["n"] == 4:  # the initial checkpoint, generations 0 and 1, then this one
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        make_aligner("cmaes", **PARAMS).align(synthetic_problem(), budget=120, seed=2, run_dir=tmp_path)
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]  # no temporary file left
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)[0]["generation"] == 2
    resumed = make_aligner("cmaes", **PARAMS).align(synthetic_problem(), budget=120, seed=2, run_dir=tmp_path,
                                                    resume=True)
    assert resumed == make_aligner("cmaes", **PARAMS).align(synthetic_problem(), budget=120, seed=2)


KILL_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import aligner_standin as t
    scorer = t.LinearScorer(delay=0.1)
    t.make_aligner("de", **t.PARAMS).align(t.synthetic_problem(scorer), budget=600, seed=9, run_dir={run!r})
""")


@pytest.mark.slow
def test_resume_after_kill_9_gives_the_uninterrupted_result(tmp_path):
    run = tmp_path / "run"
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), run=str(run))
    kill_when(script, lambda: (run / CHECKPOINT_NAME).exists()
              and load_checkpoint(run / CHECKPOINT_NAME)[0]["generation"] >= 4)
    done = load_checkpoint(run / CHECKPOINT_NAME)[0]["generation"]
    assert 4 <= done < 50
    resumed = make_aligner("de", **PARAMS).align(synthetic_problem(), budget=600, seed=9, run_dir=run, resume=True)
    assert resumed == make_aligner("de", **PARAMS).align(synthetic_problem(), budget=600, seed=9)
