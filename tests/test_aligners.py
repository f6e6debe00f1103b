"""Aligners on a deterministic stand-in scorer (no model): optimisers, budget, resume, artifacts,
registry and plugins, bad input. Model-backed tests are in test_aligners_model.py.

The stand-in maps a soft prompt linearly to indices, so with prompt = P0 + A z the indices are
affine in z and a target made from a chosen z* has a known optimum: fitness 0 at z = z*.
"""

import dataclasses
import json
import logging
import os
import re
import shlex
import sys
import textwrap
import time
import tomllib
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import aligners
from aligners import (ICL_TEMPLATE, Alignment, AlignmentProblem, SoftPromptSpace, WORST_FITNESS,
                      available_aligners, get_aligner_class, make_aligner, register_aligner)
from aligners import registry
from aligners.artifact import CONFIG_NAME, TENSORS_NAME
from aligners.checkpoint import CHECKPOINT_NAME, load_checkpoint
from aligners.de import DEConfig
from cultbench.cli import main
from cultbench.errors import CultbenchError
from cultbench.instruments import load_instrument
from cultbench.profiles import DIMENSIONS, Profile
from conftest import kill_when

INST = load_instrument("vsm2013")
VOCAB, HIDDEN = 64, 8
PARAMS = dict(n_virtual=4, d=4, popsize=12, bounds=(-1.0, 1.0))  # the synthetic problem lives in [-1, 1]^4
Z_STAR = np.array([0.3, -0.4, 0.2, -0.1])
SEARCHERS = ["de", "cmaes", "random"]


class WordTokenizer:
    """Word -> id by a stable hash; enough to make P0 from a text."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [sum(map(ord, w)) % VOCAB for w in text.split()]}


class EmbeddingOnlyModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.embed = torch.nn.Embedding(VOCAB, HIDDEN)
        with torch.no_grad():
            self.embed.weight.copy_(torch.randn(VOCAB, HIDDEN, generator=generator) * 0.05)

    def get_input_embeddings(self):
        return self.embed


class LinearScorer:
    """Stand-in for SurveyScorer: indices = 50 + M @ flatten(soft prompt), same under both variants.

    ``fail(prompt) -> None | "nan" | "raise"`` makes chosen candidates break; ``interrupt_at``
    raises KeyboardInterrupt on that call (1-based); in "bfloat16" every index is off by 0.5.
    """

    def __init__(self, n_virtual=4, fail=None, interrupt_at=None, delay=0.0, dtype=torch.float32):
        self.model, self.tokenizer, self.instrument = EmbeddingOnlyModel(), WordTokenizer(), INST
        self.variants = [types.SimpleNamespace(name="v1"), types.SimpleNamespace(name="v2")]
        self.constants = INST.constants()
        self.dtype = dtype
        self.M = np.random.default_rng(7).normal(size=(6, n_virtual * HIDDEN)) * 40
        self.fail, self.interrupt_at, self.delay = fail, interrupt_at, delay
        self.batches, self.personas = [], []

    def score(self, soft_prompts=None, personas=None):
        self.batches.append(len(soft_prompts) if soft_prompts is not None else 1)
        self.personas.append(personas)
        if self.interrupt_at is not None and len(self.batches) == self.interrupt_at:
            raise KeyboardInterrupt
        time.sleep(self.delay)
        n = self.batches[-1]
        x = (np.zeros((n, self.M.shape[1])) if soft_prompts is None
             else torch.stack(list(soft_prompts)).double().reshape(n, -1).numpy())
        indices = 50 + np.einsum("dk,ck->cd", self.M, x)
        if self.dtype == torch.bfloat16:
            indices = indices + 0.5  # stands for bf16's rounding error
        if self.fail is not None:
            verdicts = [self.fail(row) for row in x]
            if "raise" in verdicts:
                raise RuntimeError("this soft prompt breaks the model")
            indices[[v == "nan" for v in verdicts]] = np.nan
        return types.SimpleNamespace(indices=np.stack([indices, indices], axis=1))


def synthetic_problem(scorer=None, **problem_kw):
    """A problem whose target is the stand-in's indices at Z_STAR (fitness 0 there)."""
    scorer = scorer or LinearScorer()
    space = SoftPromptSpace.build(scorer.model, scorer.tokenizer, n_virtual=PARAMS["n_virtual"], d=PARAMS["d"],
                                  init_text=ICL_TEMPLATE.format(country="Testland"), projection_seed=0,
                                  bounds=(-1.0, 1.0))
    optimum = LinearScorer().score(space.prompts(Z_STAR)).indices[0, 0]
    target = Profile(name="Testland", code="TST", iso2=None, iso3=None, source="synthetic",
                     scores=dict(zip(DIMENSIONS, optimum)))
    info = {"id": "stand-in", "revision": "r1", "file_sha256": None, "hidden_size": HIDDEN}
    return AlignmentProblem(scorer, target, model_info=info, **problem_kw)


@pytest.fixture
def clean_registry():
    """Restore the registry after a test registers aligners or plugins."""
    saved = dict(registry._ALIGNERS), dict(registry._PLUGIN_ERRORS), registry._entry_points_loaded
    yield
    registry._ALIGNERS.clear()
    registry._ALIGNERS.update(saved[0])
    registry._PLUGIN_ERRORS.clear()
    registry._PLUGIN_ERRORS.update(saved[1])
    registry._entry_points_loaded = saved[2]


# -- optimisers through one interface -----------------------------------------------------------

@pytest.fixture(scope="module")
def results_600():
    return {name: make_aligner(name, **PARAMS).align(synthetic_problem(), budget=600, seed=0) for name in SEARCHERS}


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


# -- search space -------------------------------------------------------------------------------

def test_search_space_p0_projection_and_identity():
    scorer = LinearScorer()
    weight = scorer.model.embed.weight.detach().double()
    space = SoftPromptSpace.build(scorer.model, scorer.tokenizer, n_virtual=5, d=3, init_text="hello world",
                                  projection_seed=11, bounds=(-1.0, 1.0))
    ids = scorer.tokenizer("hello world")["input_ids"]
    # P0 cycles the two tokens to five; z = 0 gives P0.
    torch.testing.assert_close(space.prompts(np.zeros(3))[0].double(), weight[[ids[i % 2] for i in range(5)]])
    std = float(weight.std())
    assert space.description["projection"] == "random"
    assert space.description["projection_std"] == pytest.approx(std / np.sqrt(3))
    assert space.projection.shape == (5 * HIDDEN, 3)
    again = SoftPromptSpace.build(scorer.model, scorer.tokenizer, n_virtual=5, d=3, init_text="hello world",
                                  projection_seed=11, bounds=(-1.0, 1.0))
    np.testing.assert_array_equal(space.projection, again.projection)
    # A candidate's prompt does not depend on the population it is computed in.
    z = np.random.default_rng(0).uniform(-1, 1, (7, 3))
    assert torch.equal(space.prompts(z)[4], space.prompts(z[4])[0])
    full = SoftPromptSpace.build(scorer.model, scorer.tokenizer, n_virtual=2, d=2 * HIDDEN, init_text="",
                                 projection_seed=0, bounds=(-1.0, 1.0))
    assert full.projection is None and full.description["projection"] == "identity"
    torch.testing.assert_close(full.prompts(np.ones(2 * HIDDEN))[0], torch.full((2, HIDDEN), std, dtype=torch.float32))


@pytest.mark.parametrize("params,message", [
    (dict(n_virtual=0), r"n_virtual=0 is out of range 1\.\.512"),
    (dict(n_virtual=513), r"n_virtual=513 is out of range"),
    (dict(d=0), r"d=0 is out of range"),
    (dict(popsize=4), r"popsize=4: this optimiser needs at least 5"),
    (dict(bounds="1,-1"), "LOW must be below HIGH"),
    (dict(strategy="best1binn"), "Did you mean: best1bin"),
    (dict(mutation=2.5), r"F must lie in \[0, 2\)"),
    (dict(popsiz=10), "unknown hyper-parameter 'popsiz'.*Did you mean: popsize"),
    (dict(n_virtual="four"), "n_virtual='four' is not an integer"),
    (dict(init_text="born in {place}"), "init_text may only use the field {country}"),
    (dict(projection_seed=-1), "projection_seed=-1: a seed is a whole number >= 0"),
])
def test_bad_hyperparameters_are_clear_errors(params, message):
    with pytest.raises(CultbenchError, match=message):
        make_aligner("de", **params)


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_a_seed_that_is_not_a_whole_number_from_0_is_refused(seed):
    with pytest.raises(CultbenchError, match="seed must be a whole number >= 0"):
        make_aligner("de", **PARAMS).align(synthetic_problem(), budget=24, seed=seed)


def test_d_beyond_the_prompt_size_is_refused():
    with pytest.raises(CultbenchError, match=r"d=33 is out of range for n_virtual=4 and hidden size 8: 1\.\.32"):
        make_aligner("de", **dict(PARAMS, d=33)).align(synthetic_problem(), budget=24)


def test_config_round_trip_and_string_values():
    config = DEConfig.from_dict({"popsize": "8", "bounds": "-2,2", "mutation": "0.6", "recombination": "1"})
    assert (config.popsize, config.bounds, config.mutation, config.recombination) == (8, (-2.0, 2.0), 0.6, 1.0)
    assert DEConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert DEConfig(mutation=[0.4, 0.9]).mutation == (0.4, 0.9)
    assert make_aligner("cmaes", popsize=6).get_params()["popsize"] == 6


# -- bad input ----------------------------------------------------------------------------------

def test_target_lacking_a_dimension():
    partial = Profile(name="Partland", code="PRT", iso2=None, iso3=None, source="synthetic",
                      scores={"lto": 40.0, "ivr": 60.0})
    with pytest.raises(CultbenchError, match="Partland has no PDI, IDV, MAS, UAI in source synthetic"):
        AlignmentProblem(LinearScorer(), partial)
    problem = AlignmentProblem(LinearScorer(), partial, dimensions=["lto", "ivr"])
    result = make_aligner("random", **PARAMS).align(problem, budget=24)
    assert result.problem["dimensions"] == ["lto", "ivr"]
    with pytest.raises(CultbenchError, match="unknown distance 'l3'"):
        AlignmentProblem(LinearScorer(), partial, dimensions=["lto"], distance="l3")


def test_model_without_input_embeddings():
    scorer = LinearScorer()
    problem = synthetic_problem(scorer)
    scorer.model = torch.nn.Linear(2, 2)
    with pytest.raises(CultbenchError, match="Linear gives no access to its input embeddings"):
        make_aligner("de", **PARAMS).align(problem, budget=24)


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


# -- resume -------------------------------------------------------------------------------------

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
    import test_aligners as t
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


# -- artifact -----------------------------------------------------------------------------------

def test_artifact_round_trips_exactly(results_600, tmp_path):
    original = results_600["de"]
    folder = original.save_pretrained(tmp_path / "de-testland")
    assert sorted(p.name for p in folder.iterdir()) == ["alignment.json", "soft_prompt.safetensors"]
    text = (folder / "alignment.json").read_text()
    record = json.loads(text)
    assert text == json.dumps(record, sort_keys=True, indent=2) + "\n"
    assert record["cultbench_version"] == aligners.artifact.__version__ and record["format"] == 1
    assert record["aligner"] == "de" and record["seed"] == 0 and record["budget"] == 600
    assert record["hyperparameters"]["popsize"] == 12
    assert record["model"] == {"id": "stand-in", "revision": "r1", "file_sha256": None, "hidden_size": HIDDEN,
                               "dtype": None}
    assert record["problem"]["target"]["source"] == "synthetic"
    assert record["problem"]["constants"] == {d: 50.0 for d in DIMENSIONS}
    assert record["soft_prompt"]["parametrisation"]["form"] == "P0 + A z"
    assert record["soft_prompt"]["shape"] == [4, HIDDEN]
    loaded = Alignment.from_pretrained(folder, model_info={"id": "stand-in", "hidden_size": HIDDEN})
    assert loaded == original
    assert torch.equal(loaded.soft_prompt, original.soft_prompt) and np.array_equal(loaded.z, original.z)
    assert loaded.to_dict() == original.to_dict()
    # Saving again over the folder keeps it loadable and leaves no temporary files.
    loaded.save_pretrained(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["alignment.json", "soft_prompt.safetensors"]
    assert Alignment.from_pretrained(folder) == original


def test_incompatible_or_damaged_artifacts_are_refused(results_600, tmp_path):
    folder = results_600["cmaes"].save_pretrained(tmp_path / "a")
    with pytest.raises(CultbenchError, match="soft prompt of hidden size 8, but model 'stand-in' has hidden size 16"):
        Alignment.from_pretrained(folder, model_info={"id": "stand-in", "hidden_size": 16})
    with pytest.raises(CultbenchError, match="made for model 'stand-in'.*does not fit model 'other'"):
        Alignment.from_pretrained(folder, model_info={"id": "other", "hidden_size": 8})
    with pytest.raises(CultbenchError, match="was made for revision r1, not r2"):
        Alignment.from_pretrained(folder, model_info={"id": "stand-in", "hidden_size": 8, "revision": "r2"})
    hashed = dataclasses.replace(results_600["cmaes"], model=dict(results_600["cmaes"].model, file_sha256="a" * 64))
    # The same file under another name is the same model; a different file is not.
    hashed.check_compatible({"id": "renamed.gguf", "file_sha256": "a" * 64, "hidden_size": 8})
    with pytest.raises(CultbenchError, match="the model file differs"):
        hashed.check_compatible({"id": "stand-in", "file_sha256": "b" * 64, "hidden_size": 8})
    blob = bytearray((folder / "soft_prompt.safetensors").read_bytes())
    blob[-1] ^= 1
    (folder / "soft_prompt.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CultbenchError, match="does not match the hash"):
        Alignment.from_pretrained(folder)
    with pytest.raises(CultbenchError, match="not an alignment folder"):
        Alignment.from_pretrained(tmp_path)


@pytest.mark.parametrize("name", ["../outside.safetensors", "ABSOLUTE", "sub/../../outside.safetensors",
                                  "link.safetensors", "", 7])
def test_an_artifact_reads_no_file_outside_its_folder(results_600, tmp_path, name):
    folder = results_600["cmaes"].save_pretrained(tmp_path / "a")
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes((folder / TENSORS_NAME).read_bytes())  # a valid tensor file, but not the artifact's
    (folder / "link.safetensors").symlink_to(outside)
    name = str(outside) if name == "ABSOLUTE" else name
    record = json.loads((folder / CONFIG_NAME).read_text())
    record["soft_prompt"]["file"] = name
    (folder / CONFIG_NAME).write_text(json.dumps(record))
    with pytest.raises(CultbenchError, match=r"soft_prompt\.file .*(must be a file name inside|leaves) the alignment folder"):
        Alignment.from_pretrained(folder)
    record["soft_prompt"]["file"] = "sub/../" + TENSORS_NAME  # inside after all: read
    (folder / CONFIG_NAME).write_text(json.dumps(record))
    (folder / "sub").mkdir()
    assert Alignment.from_pretrained(folder) == results_600["cmaes"]


# -- baselines ----------------------------------------------------------------------------------

def test_baselines_score_once_with_their_persona():
    scorer = LinearScorer()
    problem = synthetic_problem(scorer)
    naive, icl, profile = (make_aligner(n).align(problem) for n in ("naive", "icl", "icl-profile"))
    assert naive.persona is None and naive.soft_prompt is None and naive.evaluations == 0
    assert icl.persona == ("You are an average human being born in Testland and living in Testland "
                           "responding to the following survey question.")
    lines = profile.persona.splitlines()
    assert lines[0] == icl.persona and len(lines) == 8
    pdi = problem.target.scores["pdi"]
    assert lines[2] == (f"- Power Distance (PDI) {pdi:g}: how much less powerful people accept that power is "
                        "distributed unequally.")
    assert scorer.personas == [[None], [icl.persona], [profile.persona]]
    baseline = problem.fitness(LinearScorer().score().indices)[0]
    assert naive.fitness == icl.fitness == baseline  # the stand-in ignores personas
    custom = make_aligner("icl", template="Respond as someone from {country}.").align(problem)
    assert custom.persona == "Respond as someone from Testland."
    with pytest.raises(CultbenchError, match="template may only use the fields {country}"):
        make_aligner("icl", template="from {nation}")


# -- registry and plugins -----------------------------------------------------------------------

def test_registry_lists_checks_and_suggests(clean_registry):
    assert set(SEARCHERS + ["naive", "icl", "icl-profile"]) <= set(aligners.available_aligners())
    with pytest.raises(CultbenchError, match="unknown aligner 'dee'.*Did you mean: de"):
        make_aligner("dee")
    with pytest.raises(TypeError, match="lacks config_class"):
        register_aligner("not-an-aligner")(type("Plain", (), {"align": lambda self: None}))
    with pytest.raises(ValueError, match="'de' is taken"):
        register_aligner("de")(type("Other", (aligners.SoftPromptAligner,), {}))
    with pytest.raises(ValueError, match="invalid aligner name"):
        register_aligner("Bad Name")
    result = CliRunner().invoke(main, ["aligners"])
    assert result.exit_code == 0
    width = max(map(len, aligners.available_aligners()))
    assert f"{'de':<{width}}  Soft prompt found by Differential Evolution (scipy), the paper's method." in result.output
    shown = CliRunner().invoke(main, ["aligners", "cmaes"])
    assert "sigma0 (float, default 1.0)" in shown.output and "bounds (tuple[float, float], default -3.0,3.0)" in shown.output


PLUGIN = textwrap.dedent('''
    """A third-party aligner: (1+1) random local search, an ask/tell optimiser in one file."""
    import numpy as np
    from aligners import SoftPromptAligner, SoftPromptConfig, param
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class HillConfig(SoftPromptConfig):
        step: float = param(0.2, "Step size of the perturbation.")

    class Hill:
        def __init__(self, d, bounds, popsize, step, seed):
            self.rng, self.bounds, self.popsize, self.step = np.random.default_rng(seed), bounds, popsize, step
            self.centre, self.best = np.zeros(d), np.inf
        def ask(self):
            x = self.centre + self.step * self.rng.standard_normal((self.popsize, len(self.centre)))
            return np.clip(x, *self.bounds)
        def tell(self, x, f):
            if f.min() < self.best:
                self.best, self.centre = f.min(), x[np.argmin(f)]
        def stop(self):
            return False

    class HillClimber(SoftPromptAligner):
        """Soft prompt found by a hill climber (third-party example)."""
        config_class = HillConfig
        def make_optimizer(self, space, seed):
            c = self.config
            return Hill(space.d, c.bounds, c.popsize, c.step, seed)
''')


@pytest.fixture
def plugin_on_path(tmp_path, monkeypatch, clean_registry):
    """A throwaway installed package: a module plus a dist-info folder declaring the entry point."""
    (tmp_path / "hill_aligner.py").write_text(PLUGIN)
    info = tmp_path / "hill_aligner-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hill-aligner\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[cultbench.aligners]\nhill = hill_aligner:HillClimber\n"
                                           "broken = hill_aligner_missing:Nothing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.load_entry_points(reload=True)
    yield tmp_path
    sys.modules.pop("hill_aligner", None)


def test_a_third_party_aligner_from_an_entry_point_runs_end_to_end(plugin_on_path, tmp_path):
    assert "hill" in aligners.available_aligners()
    result = make_aligner("hill", **PARAMS, step=0.3).align(synthetic_problem(), budget=240, seed=0)
    assert result.aligner == "hill" and result.hyperparameters["step"] == 0.3
    assert result.evaluations == 240 and result.fitness < result.history[0]["mean"] / 3
    assert Alignment.from_pretrained(result.save_pretrained(tmp_path / "hill")) == result
    listing = CliRunner().invoke(main, ["aligners"])
    assert re.search(r"^hill +Soft prompt found by a hill climber \(third-party example\)\.$", listing.output, re.M)
    assert re.search(r"^broken +\(plugin could not be loaded: ModuleNotFoundError", listing.output, re.M)
    with pytest.raises(CultbenchError, match="aligner plugin 'broken' could not be loaded"):
        make_aligner("broken")


def plugin_guide_blocks() -> dict[str, str]:
    """The plugin guide's blocks in docs/aligners.md, by the name in the comment above each."""
    text = (Path(__file__).parent.parent / "docs" / "aligners.md").read_text(encoding="utf-8")
    return dict(re.findall(r"<!-- plugin-guide: (\S+) -->\n```\w+\n(.*?)```", text, re.S))


def test_the_plugin_guide_runs_as_written(tmp_path, monkeypatch, clean_registry, tiny_folder):
    """The guide's pyproject.toml and module, installed as pip installs them (the module on the
    path, a dist-info folder with the pyproject's entry points), then its `cultbench run` line."""
    blocks = plugin_guide_blocks()
    assert sorted(blocks) == ["fixed_persona_aligner.py", "pyproject.toml", "run"]
    project = tomllib.loads(blocks["pyproject.toml"])
    (module,) = project["tool"]["setuptools"]["py-modules"]
    (tmp_path / f"{module}.py").write_text(blocks["fixed_persona_aligner.py"])
    meta = project["project"]
    info = tmp_path / f"{module}-{meta['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items())
        for group, points in meta["entry-points"].items()))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.load_entry_points(reload=True)
    try:
        listing = CliRunner().invoke(main, ["aligners"])
        assert re.search(r"^fixed-persona +One fixed persona as the system prompt, whatever the target\.$",
                         listing.output, re.M), listing.output
        line = shlex.split(blocks["run"])
        assert line[:2] == ["cultbench", "run"]
        out = tmp_path / "results"
        result = CliRunner().invoke(main, line[1:] + ["--model", str(tiny_folder), "--output", str(out),
                                                      "--runs-dir", str(tmp_path / "runs"), "--no-progress"])
        assert result.exit_code == 0, result.output
        (path,) = [p for p in out.glob("*.json") if "fixed-persona" in p.name]
        record = json.loads(path.read_text())
        persona = dict(p.split("=", 1) for p in line if p.startswith("persona="))["persona"]
        assert record["aligner"]["persona"] == persona and record["aligner"]["hyperparameters"] == {"persona": persona}
        saved = Alignment.from_pretrained(record["run"]["alignment_dir"])
        assert saved.aligner == "fixed-persona" and saved.persona == persona and saved.target["name"] == "U.S.A."
        assert f"alignment in {record['run']['alignment_dir']}" in result.output
    finally:
        sys.modules.pop(module, None)


@pytest.mark.parametrize("name", sorted(available_aligners()))
def test_hyperparameter_errors_name_the_aligner_not_a_class(name):
    with pytest.raises(CultbenchError) as unknown:
        get_aligner_class(name).config_class.from_dict({"no_such_param": "1"})
    assert f"unknown hyper-parameter 'no_such_param' for aligner {name};" in str(unknown.value)
    assert "Config" not in str(unknown.value)
