"""aligners/search.py and the searches it drives (de.py, cmaes.py, random_search.py) on the
stand-in: the known optimum, history, seeds, budget, candidates that fail, the progress bar,
and a reduced-precision search's full-precision finalists."""

import logging
import re
import types

import numpy as np
import pytest
import torch

from aligners import ICL_TEMPLATE, SoftPromptSpace, WORST_FITNESS, make_aligner
from aligners.checkpoint import CHECKPOINT_NAME, load_checkpoint
from cultbench.errors import CultbenchError
from cultbench.profiles import DIMENSIONS
from aligner_standin import (EmbeddingOnlyModel, LinearScorer, PARAMS, SEARCHERS, WordTokenizer, Z_STAR,
                             synthetic_problem)
from aligner_standin import results_600  # noqa: F401,F811  (fixtures)


def test_de_and_cmaes_find_the_known_optimum(results_600):
    for name in ("de", "cmaes"):
        result = results_600[name]
        assert result.fitness < 0.05, name
        np.testing.assert_allclose(result.z, Z_STAR, atol=2e-3)
        assert result.evaluations == 600 and result.search["stopped"] == "budget"


def test_random_search_improves_but_is_the_weakest(results_600):
    random, first_mean = results_600["random"], results_600["random"].history[0]["mean"]
    assert first_mean > 20  # a random candidate is far from the target
    assert random.fitness < 3 < first_mean
    assert random.fitness > 10 * max(results_600["de"].fitness, results_600["cmaes"].fitness)


@pytest.mark.parametrize("name", SEARCHERS)
def test_history_records_every_generation(results_600, name):
    history = results_600[name].history
    assert [h["generation"] for h in history] == list(range(50))
    assert [h["evaluations"] for h in history] == [12 * (g + 1) for g in range(50)]
    bests = [h["best"] for h in history]
    assert bests == sorted(bests, reverse=True)  # best so far never gets worse
    assert bests[-1] == results_600[name].search["best_fitness"]
    assert set(history[-1]["best_indices"]) == set(DIMENSIONS)


@pytest.mark.parametrize("name", SEARCHERS)
def test_same_seed_same_result_other_seed_other_result(name):
    runs = [make_aligner(name, **PARAMS).align(synthetic_problem(), budget=120, seed=s) for s in (3, 3, 4)]
    assert runs[0] == runs[1]
    assert runs[0].fitness != runs[2].fitness


@pytest.mark.parametrize("name", SEARCHERS)
@pytest.mark.parametrize("budget,popsize", [(12, 12), (35, 12), (61, 5), (100, 7)])
def test_budget_is_never_exceeded_and_each_generation_is_one_call(name, budget, popsize):
    scorer = LinearScorer()
    params = dict(PARAMS, popsize=popsize)
    result = make_aligner(name, **params).align(synthetic_problem(scorer), budget=budget, seed=1)
    generations = budget // popsize
    # Every generation is one call of popsize candidates; the final full-precision re-score is 1.
    assert scorer.batches == [popsize] * generations + [1]
    assert result.evaluations == generations * popsize <= budget
    assert result.search["generations"] == generations == len(result.history)


def test_budget_smaller_than_one_generation_is_refused(tmp_path):
    with pytest.raises(CultbenchError, match=r"budget 9 is smaller than one generation of de \(12 candidates\)"):
        make_aligner("de", **PARAMS).align(synthetic_problem(), budget=9, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(CultbenchError, match="give a budget"):
        make_aligner("random", **PARAMS).align(synthetic_problem(), budget=None)


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_a_seed_that_is_not_a_whole_number_from_0_is_refused(seed):
    with pytest.raises(CultbenchError, match="seed must be a whole number >= 0"):
        make_aligner("de", **PARAMS).align(synthetic_problem(), budget=24, seed=seed)


def beyond_p0(verdict):
    """A fail rule for LinearScorer: candidates whose first prompt entry exceeds P0's (about half)."""
    p0 = SoftPromptSpace.build(EmbeddingOnlyModel(), WordTokenizer(), n_virtual=4, d=4, projection_seed=0,
                               init_text=ICL_TEMPLATE.format(country="Testland"), bounds=(-1.0, 1.0)).p0
    return lambda row: verdict if row[0] > p0[0, 0] else None


def test_non_finite_candidates_are_scored_worst_logged_and_the_run_goes_on(caplog):
    scorer = LinearScorer(fail=beyond_p0("nan"))
    with caplog.at_level(logging.WARNING, logger="aligners.search"):
        result = make_aligner("random", **PARAMS).align(synthetic_problem(scorer), budget=120, seed=0)
    invalid = sum(h["invalid"] for h in result.history)
    assert 0 < invalid < 120 and result.search["invalid"] == invalid
    assert "gave non-finite indices" in caplog.text and "scored as worst" in caplog.text
    assert np.isfinite(result.fitness) and result.fitness < WORST_FITNESS
    assert all(h["mean"] is None or h["mean"] < 1000 for h in result.history)  # worst stays out of means


def test_a_candidate_that_raises_costs_only_itself(caplog):
    scorer = LinearScorer(fail=beyond_p0("raise"))
    with caplog.at_level(logging.WARNING, logger="aligners.search"):
        result = make_aligner("de", **PARAMS).align(synthetic_problem(scorer), budget=60, seed=0)
    assert "scoring each candidate alone" in caplog.text
    assert result.search["invalid"] > 0 and np.isfinite(result.fitness)


def test_a_scorer_that_fails_for_every_candidate_is_an_error_and_keeps_the_checkpoint(tmp_path):
    calls = {"n": 0}

    def broken_after_two_generations(row):
        calls["n"] += 1
        return "raise" if calls["n"] > 24 else None

    scorer = LinearScorer(fail=broken_after_two_generations)
    with pytest.raises(CultbenchError, match="generation 2: scoring failed for every candidate"):
        make_aligner("de", **PARAMS).align(synthetic_problem(scorer), budget=120, run_dir=tmp_path)
    state, _ = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["generation"] == 2 and state["evaluations"] == 24
    resumed = make_aligner("de", **PARAMS).align(synthetic_problem(), budget=120, run_dir=tmp_path, resume=True)
    assert resumed == make_aligner("de", **PARAMS).align(synthetic_problem(), budget=120)


class RecordingScorer(LinearScorer):
    """LinearScorer that keeps every soft prompt it scored."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.seen = []

    def score(self, soft_prompts=None, personas=None):
        if soft_prompts is not None:
            self.seen += [p.clone() for p in soft_prompts]
        return super().score(soft_prompts, personas)


def test_the_progress_bar_names_its_fitness_and_a_reduced_precision(capsys):
    """The bar's best is the search's own fitness: named by its distance, and by its precision
    where that is not the reported one (a bf16 best is not the number the result will show)."""
    reduced = synthetic_problem(LinearScorer(dtype=torch.bfloat16), exact_scorer=LinearScorer())
    make_aligner("de", **PARAMS).align(reduced, budget=29, seed=0, progress=True)
    assert re.search(r"best l1 \(bfloat16\)=[0-9.]+", capsys.readouterr().err)
    make_aligner("de", **PARAMS).align(synthetic_problem(), budget=24, seed=0, progress=True)
    bar = capsys.readouterr().err
    assert re.search(r"best l1=[0-9.]+", bar) and "bfloat16" not in bar


def test_a_bf16_search_returns_the_full_precision_best_of_its_finalists():
    search, exact = RecordingScorer(dtype=torch.bfloat16), LinearScorer()
    problem = synthetic_problem(search, exact_scorer=exact)
    assert problem.reduced_precision
    result = make_aligner("cmaes", **PARAMS, finalists=5).align(problem, budget=240, seed=0)
    # 5 evaluations are reserved: 19 generations (228) fit in 235; the finalists are ONE exact call.
    assert search.batches == [12] * 19 and exact.batches == [5] and result.evaluations == 233
    assert result.search["precision"] == "bfloat16" and result.result["precision"] == "float32"
    # The finalists are the 5 best distinct candidates of the whole history by "bf16" fitness.
    biased, check = synthetic_problem(LinearScorer(dtype=torch.bfloat16)), synthetic_problem(LinearScorer())
    seen = torch.stack(search.seen)
    search_fitness = biased.fitness(biased.scorer.score(seen).indices)
    exact_fitness = check.fitness(check.scorer.score(seen).indices)
    best5 = np.argsort(search_fitness, kind="stable")[:5]
    selection = result.search["selection"]
    assert [f["evaluation"] for f in selection["finalists"]] == best5.tolist()
    assert [f["search_fitness"] for f in selection["finalists"]] == pytest.approx(search_fitness[best5].tolist())
    assert [f["fitness"] for f in selection["finalists"]] == pytest.approx(exact_fitness[best5].tolist())
    assert result.search["best_fitness"] == pytest.approx(search_fitness.min())
    # The returned candidate is the exact best of the finalists, no worse than the bf16 best.
    assert result.fitness == pytest.approx(exact_fitness[best5].min())
    assert result.fitness <= exact_fitness[best5[0]]
    assert selection["winner"] == int(np.argmin(exact_fitness[best5])) and selection["rescored"] == 5
    torch.testing.assert_close(result.soft_prompt, seen[best5[selection["winner"]]])
    assert selection["winners_curse"] == pytest.approx(result.fitness - result.search["best_fitness"])
    from scipy.stats import spearmanr
    rho = spearmanr(search_fitness[best5], exact_fitness[best5]).statistic
    assert selection["spearman"] == pytest.approx(rho)
    exact_indices = check.scorer.score([result.soft_prompt]).indices[0, 0]
    assert result.indices == pytest.approx(dict(zip(DIMENSIONS, exact_indices)))
    other = LinearScorer()
    other.constants = dict(other.constants, pdi=0.0)
    with pytest.raises(CultbenchError, match="exact scorer must score the same instrument, variants and constants"):
        synthetic_problem(search, exact_scorer=other)


def test_a_full_precision_search_returns_its_best_without_a_rescore():
    scorer = LinearScorer()
    result = make_aligner("cmaes", **PARAMS, finalists=5).align(synthetic_problem(scorer), budget=240, seed=0)
    assert scorer.batches == [12] * 20 + [1] and result.evaluations == 240  # nothing reserved
    selection = result.search["selection"]
    assert selection["rescored"] == 0 and selection["finalists"] == [] and selection["spearman"] is None
    assert "nothing re-scored" in selection["method"]
    assert result.fitness == pytest.approx(result.search["best_fitness"])
    assert selection["winners_curse"] == pytest.approx(0.0, abs=1e-9)


def test_a_reduced_precision_budget_must_pay_for_the_finalists():
    problem = synthetic_problem(LinearScorer(dtype=torch.bfloat16), exact_scorer=LinearScorer())
    with pytest.raises(CultbenchError, match=r"budget 15 is smaller than one generation of de \(12 candidates\) "
                                             r"plus the 5 finalists re-scored in full precision"):
        make_aligner("de", **PARAMS, finalists=5).align(problem, budget=15)
    assert make_aligner("de", **PARAMS, finalists=5).align(problem, budget=17).evaluations == 17
    with pytest.raises(CultbenchError, match="finalists=0 must be at least 1"):
        make_aligner("de", finalists=0)


# -- validation ---------------------------------------------------------------------------------

class ValidationScorer(RecordingScorer):
    """The validation wording's stand-in: one wording in two renderings, another linear map than
    the training one (so the validation ranking of candidates differs from the training one)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.variants = [types.SimpleNamespace(name="val", wording="val"),
                         types.SimpleNamespace(name="val-reversed", wording="val")]
        self.M = np.random.default_rng(8).normal(size=self.M.shape) * 40


def validated_problem(search=None, **kw):
    validation = ValidationScorer()
    return synthetic_problem(search or RecordingScorer(), validation_scorer=validation, **kw), validation


@pytest.mark.parametrize("name", SEARCHERS)
def test_select_by_validation_in_fp32_picks_the_finalist_lowest_on_validation(name):
    problem, validation = validated_problem()
    result = make_aligner(name, **PARAMS, finalists=5, select_by="validation").align(problem, budget=240, seed=0)
    # 5 evaluations reserved for the finalists' validation (ONE call); 19 generations fit in 235;
    # the pick's fp32 training score is the final re-score, outside the budget as before.
    assert problem.scorer.batches == [12] * 19 + [1] and validation.batches == [5]
    assert result.evaluations == 233 and result.search["generations"] == 19
    seen = torch.stack(problem.scorer.seen[:228])
    train = problem.fitness(LinearScorer().score(seen).indices)
    best5 = np.argsort(train, kind="stable")[:5]  # the 5 best distinct candidates by training fitness
    on_validation = problem.validation_fitness(soft_prompts=seen[best5])
    selection = result.search["selection"]
    assert selection["select_by"] == "validation" and selection["rescored"] == 0
    assert [f["evaluation"] for f in selection["finalists"]] == best5.tolist()
    assert [f["validation"] for f in selection["finalists"]] == pytest.approx(on_validation.tolist())
    winner = int(np.argmin(on_validation))
    assert selection["winner"] == winner
    torch.testing.assert_close(result.soft_prompt, seen[best5[winner]])
    assert result.fitness == pytest.approx(train[best5[winner]])
    assert result.search["validation"] == {
        "select_by": "validation", "fitness": pytest.approx(on_validation.min()), "distance": "l1",
        "evaluations": 5, "variants": ["val", "val-reversed"], "every": None, "step": None}
    assert on_validation.min() <= on_validation[0]  # no worse on validation than the training best
    assert result.problem["validation_variants"] == ["val", "val-reversed"]


def test_select_by_train_records_the_picks_validation_as_a_report_outside_the_budget():
    problem, validation = validated_problem()
    result = make_aligner("cmaes", **PARAMS, finalists=5).align(problem, budget=240, seed=0)
    assert problem.scorer.batches == [12] * 20 + [1] and result.evaluations == 240  # nothing reserved
    assert validation.batches == [1]  # the pick, once, after the search
    assert result.search["selection"]["select_by"] == "train"
    assert result.search["validation"]["select_by"] == "train" and result.search["validation"]["evaluations"] == 0
    want = problem.validation_fitness(soft_prompts=result.soft_prompt[None])[0]
    assert result.search["validation"]["fitness"] == pytest.approx(want)
    # Without a validation split nothing is recorded, and the artifact is as before.
    plain = make_aligner("cmaes", **PARAMS, finalists=5).align(synthetic_problem(), budget=240, seed=0)
    assert "validation" not in plain.search and "validation_variants" not in plain.problem
    assert plain.soft_prompt.equal(result.soft_prompt)


def test_select_by_validation_in_reduced_precision_reserves_both_uses():
    problem, validation = validated_problem(RecordingScorer(dtype=torch.bfloat16), exact_scorer=LinearScorer())
    aligner = make_aligner("de", **PARAMS, finalists=5, select_by="validation")
    with pytest.raises(CultbenchError, match=r"budget 21 is smaller than one generation of de \(12 candidates\) plus "
                                             r"the 5 finalists re-scored in full precision and scored on the "
                                             r"validation wording \(10 evaluations\)"):
        aligner.align(problem, budget=21)
    with pytest.raises(CultbenchError, match=r"plus the 5 finalists scored on the validation wording: give a budget "
                                             r"of at least 17"):
        aligner.check_budget(16)
    result = aligner.align(problem, budget=58, seed=0)  # 48 for the search: 4 generations
    assert problem.exact_scorer.batches == [5] and validation.batches == [5] and result.evaluations == 58
    selection = result.search["selection"]
    assert selection["rescored"] == 5 and result.search["validation"]["evaluations"] == 5
    on_validation = [f["validation"] for f in selection["finalists"]]
    assert selection["winner"] == int(np.argmin(on_validation))
    assert result.fitness == pytest.approx(selection["finalists"][selection["winner"]]["fitness"])


def test_select_by_validation_needs_a_split_and_a_known_name():
    with pytest.raises(CultbenchError, match="select_by=validation needs a validation split"):
        make_aligner("random", **PARAMS, select_by="validation").align(synthetic_problem(), budget=48)
    with pytest.raises(CultbenchError, match="select_by='valid'; choose one of train, validation"):
        make_aligner("de", select_by="valid")
    other = ValidationScorer()
    other.constants = dict(other.constants, pdi=0.0)
    with pytest.raises(CultbenchError, match="validation scorer must score the same instrument and constants"):
        synthetic_problem(validation_scorer=other)


def test_a_search_selecting_by_validation_resumes_to_the_same_pick(tmp_path):
    whole = make_aligner("de", **PARAMS, select_by="validation").align(validated_problem()[0], budget=245, seed=5,
                                                                      run_dir=tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        make_aligner("de", **PARAMS, select_by="validation").align(
            validated_problem(RecordingScorer(interrupt_at=8))[0], budget=245, seed=5, run_dir=tmp_path / "b")
    resumed = make_aligner("de", **PARAMS, select_by="validation").align(validated_problem()[0], budget=245, seed=5,
                                                                        run_dir=tmp_path / "b", resume=True)
    assert resumed == whole and resumed.search["selection"] == whole.search["selection"]
