"""The bench's engines (cultbench.bench.speed.run_engine) on the tiny model: they score the same
renderings of wording version 4, reversed scales and lettered options included, and agree."""

import numpy as np
import pytest

from cultbench.bench.speed import _compare, run_engine

RENDERINGS = "respondent-standard,respondent-standard-reversed,researcher-lettered-reversed"


@pytest.fixture(scope="module")
def engines(tiny_folder):
    return {engine: run_engine(engine, str(tiny_folder), 2, 1, 512.0, RENDERINGS)
            for engine in ("scorer-fp32", "lm-eval", "loop")}


def test_every_engine_scores_each_candidate_on_every_rendering(engines):
    for name, r in engines.items():
        assert r["renderings"] == RENDERINGS.split(","), name
        assert np.array(r["indices"]).shape == (2, 3, 6), name
        assert r["renderings_per_second"] == pytest.approx(3 * r["candidates_per_second"]), name
    # the soft prompts differ, so a route that dropped them (or scored one candidate twice) would show
    indices = np.array(engines["scorer-fp32"]["indices"])
    assert np.abs(indices[0] - indices[1]).max() > 1e-3


def test_lm_eval_and_the_loop_agree_with_the_scorer_on_reversed_and_lettered_renderings(engines):
    ref = np.array(engines["scorer-fp32"]["expected"])
    for name in ("lm-eval", "loop"):
        assert np.abs(np.array(engines[name]["expected"]) - ref).max() < 1e-4, name
        assert np.abs(np.array(engines[name]["indices"]) - np.array(engines["scorer-fp32"]["indices"])).max() < 1e-3
    comparison = _compare(engines)
    assert comparison["scorer-fp32"]["speed_vs_lm_eval"] == pytest.approx(
        engines["scorer-fp32"]["renderings_per_second"] / engines["lm-eval"]["renderings_per_second"])
    assert comparison["loop"]["max_abs_index_error_vs_fp32_scorer"] < 1e-3
