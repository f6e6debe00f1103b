"""Order balance (measurement v4): a pure position answerer scores the content-free L1 under every
wording, and a change that only moves answer positions leaves every aligner's fitness unchanged."""

import types

import numpy as np
import pytest
import torch

from aligners.objective import AlignmentProblem
from conftest import INST
from cultbench.evaluation.candidate import evaluate_candidate, index_split, versus_target
from cultbench.evaluation.metrics import MIN_EFFECT, aligned_verdict, distance, order_balance, order_balanced
from cultbench.profiles import lookup
from cultbench.prompts import all_variants, displayed_options, get_variants, option_labels

VARIANTS = all_variants()
TARGET = lookup("US")
DIMS = INST.dimension_ids


def content_free_l1(constants=None) -> float:
    return float(distance(np.array(list(INST.constants(constants).values())), TARGET.vector(DIMS)))


def position_answerer_indices(variants, rng) -> np.ndarray:
    """Indices [V, D] of a respondent who picks displayed positions with a probability that depends
    on the wording and the item but never on what the options say (so the same under a wording's
    two scale orders), mapped back through each rendering's order as the scorer maps answers."""
    preference = {}
    expected = np.zeros((len(variants), len(INST.items)))
    for v, variant in enumerate(variants):
        for i, item in enumerate(INST.items):
            shown = preference.setdefault((variant.wording, i), rng.dirichlet(np.full(5, 0.3)))
            answer_of_position = np.array(INST.options)[displayed_options(INST, item, variant)]
            expected[v, i] = shown @ answer_of_position
    return INST.indices(expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_pure_position_answerer_scores_the_content_free_l1_under_every_wording(seed):
    rng = np.random.default_rng(seed)
    per_rendering = position_answerer_indices(VARIANTS, rng)
    _, matrix = order_balance([v.wording for v in VARIANTS])
    balanced = order_balanced(per_rendering, matrix)
    assert np.abs(balanced - 50.0).max() < 1e-9  # every index = C under every wording
    for split in ("train", "validation", "heldout"):
        rows = [k for k, v in enumerate(VARIANTS) if v.split == split]
        chosen = [VARIANTS[k] for k in rows]
        versus = versus_target(TARGET, index_split(TARGET, per_rendering[rows], chosen, DIMS,
                                                   np.ones((len(rows), len(INST.items))), {}, INST.constants()))
        assert versus["content_free_l1"] == pytest.approx(content_free_l1())
        assert abs(versus["l1"] - content_free_l1()) < 1e-6
        assert all(abs(x - content_free_l1()) < 1e-6 for x in versus["l1_per_wording"].values())
        # The renderings alone are far from it: what balancing removes.
        assert max(abs(x - content_free_l1()) for x in versus["l1_per_variant"].values()) > 5


def position_model(tiny, first: bool):
    """The tiny model with its output layer replaced by fixed logits that favour the first-listed
    (or the last-listed) label of every label set ("1" and "A", or "5" and "E"), whatever the prompt."""
    model, tokenizer = tiny
    favoured = ["1", "A"] if first else ["5", "E"]
    bias = torch.zeros(len(tokenizer))
    for label in favoured:
        bias[tokenizer.convert_tokens_to_ids(label)] = 12.0
    handle = model.get_output_embeddings().register_forward_hook(lambda _m, _i, out: torch.zeros_like(out) + bias)
    return model, tokenizer, handle


@pytest.mark.parametrize("first", [True, False], ids=["always-first", "always-last"])
def test_the_scorer_reads_a_position_answerer_as_content_free_under_every_wording(tiny, first):
    model, tokenizer, handle = position_model(tiny, first)
    try:
        out = evaluate_candidate(model, tokenizer, INST, [TARGET], constants={"pdi": 30, "lto": 70})
    finally:
        handle.remove()
    reference = content_free_l1({"pdi": 30, "lto": 70})
    for split, scored in out["splits"].items():
        versus = scored["targets"]["US"]
        assert abs(versus["l1"] - reference) < 1e-6, split
        assert all(abs(x - reference) < 1e-6 for x in versus["l1_per_wording"].values())
        # The answers really sat on one position: in order 1 (or 5), reversed the other end, letters too.
        assert scored["option_mass"] > 0.49  # half of it: the favoured label of the other set is not shown
    assert set(out["splits"]) == {"train", "validation", "heldout"}
    assert any(v.labels == "letters" for v in get_variants("heldout"))


def stand_in_problem(variants, target=TARGET):
    scorer = types.SimpleNamespace(instrument=INST, variants=variants, constants=INST.constants(),
                                   model=None, tokenizer=None)
    return AlignmentProblem(scorer=scorer, target=target)


def content_and_position_indices(content, shift, variants) -> np.ndarray:
    """Indices [V, D] of a respondent with order-free expected answers ``content`` [I] whose
    answers are pushed by ``shift`` [I] towards the first-listed options: down the scale in order,
    up when it is reversed."""
    signs = np.array([-1.0 if v.order == "ascending" else 1.0 for v in variants])
    return INST.indices(content[None] + signs[:, None] * shift[None])


@pytest.mark.parametrize("distance_name", ["l1", "l2", "mean-abs"])
def test_the_fitness_of_a_position_only_change_is_zero(distance_name):
    train = get_variants("train")
    problem = AlignmentProblem(scorer=stand_in_problem(train).scorer, target=TARGET, distance=distance_name)
    rng = np.random.default_rng(3)
    content = rng.uniform(1.5, 4.5, size=len(INST.items))
    shifts = [np.zeros(len(INST.items)), rng.uniform(-0.5, 0.5, size=len(INST.items)), np.full(len(INST.items), 0.4)]
    candidates = np.stack([content_and_position_indices(content, s, train) for s in shifts])  # [C, V, D]
    fitness = problem.fitness(candidates)
    assert np.ptp(fitness) < 1e-9  # the position change gains (or loses) nothing
    loss = problem.loss(torch.as_tensor(candidates))  # the gradient aligners' loss, the same
    assert torch.allclose(loss, torch.as_tensor(fitness), atol=1e-9)
    # The same changes under a per-rendering average (version 3's fitness) do move it.
    per_rendering = distance(candidates, TARGET.vector(DIMS), distance_name).mean(axis=-1)
    assert np.ptp(per_rendering) > 1e-3


def test_fitness_averages_balanced_distances_over_wordings_not_renderings():
    train = get_variants("train")
    problem = stand_in_problem(train)
    rng = np.random.default_rng(4)
    indices = rng.uniform(20, 80, size=(1, len(train), len(DIMS)))
    _, matrix = order_balance([v.wording for v in train])
    want = distance(matrix @ indices[0], TARGET.vector(DIMS)).mean()
    assert problem.fitness(indices)[0] == pytest.approx(want, abs=1e-12)
    assert problem.wording_groups() == [[0, 1], [2, 3]]
    # A subset of whole wordings (as prompt tuning asks for its backward groups).
    sub = problem.fitness(indices[:, 2:], variants=[2, 3])[0]
    assert sub == pytest.approx(distance(indices[0, 2:].mean(axis=0), TARGET.vector(DIMS)), abs=1e-12)
    assert [option_labels(INST, INST.items[0], v) for v in train][0] == ["1", "2", "3", "4", "5"]


def verdict_of(aligned_rows, naive_rows, variants):
    split = index_split(TARGET, aligned_rows, variants, DIMS, np.ones((len(variants), len(INST.items))), {},
                        INST.constants(), naive=naive_rows)
    return versus_target(TARGET, split)


def test_a_move_towards_the_target_is_aligned_and_a_position_move_is_not():
    heldout = get_variants("heldout")
    rng = np.random.default_rng(5)
    naive = rng.uniform(40, 60, size=(len(heldout), len(DIMS)))
    way = TARGET.vector(DIMS) - order_balanced(naive, order_balance([v.wording for v in heldout])[1]).mean(axis=0)
    toward = naive + 0.5 * way + rng.normal(0, 0.5, size=naive.shape)  # content: same sign in both orders
    good = verdict_of(toward, naive, heldout)
    assert good["directedness"] > 0.9 and good["mirror"] > 0.9
    assert good["alignment"]["aligned"] and good["alignment"]["failed"] == []
    assert good["l1"] < good["content_free_l1"]
    # A position move: up under the in-order renderings, down under the reversed ones.
    signs = np.array([1.0 if v.order == "ascending" else -1.0 for v in heldout])[:, None]
    names = list(dict.fromkeys(v.wording for v in heldout))
    per_wording = rng.uniform(-6, 6, size=(len(names), len(DIMS)))
    shifted = naive + signs * per_wording[[names.index(v.wording) for v in heldout]]
    bad = verdict_of(shifted, naive, heldout)
    assert bad["mirror"] < -0.9 and not bad["alignment"]["aligned"]
    assert bad["l1"] == pytest.approx(verdict_of(naive, naive, heldout)["l1"], abs=1e-9)  # balanced: no gain
    assert {"mirror", "below_naive"} <= set(bad["alignment"]["failed"])
    # Without the naive model beside it there is no verdict.
    alone = versus_target(TARGET, index_split(TARGET, naive, heldout, DIMS, np.ones((len(heldout), 24)), {}))
    assert alone["alignment"] is None and alone["directedness"] is None and alone["content_free_l1"] is None


def test_the_verdict_needs_a_minimum_effect_scaled_by_the_content_free_l1():
    """The content-free testbed control's false positive (docs/testbed.md: a random search for the
    US at held-out L1 108.29 against naive 109.02 and content-free 109.0, in the right direction)
    is not aligned; a real move is. The margin is MIN_EFFECT of the content-free L1, in points."""
    control = aligned_verdict(108.286, 109.024, 109.0, 0.4, 0.3)
    assert not control["aligned"] and control["failed"] == ["below_naive", "below_content_free"]
    assert control["checks"]["below_naive"]["threshold"] == pytest.approx(-MIN_EFFECT * 109.0) == pytest.approx(-5.45)
    assert control["checks"]["below_naive"]["value"] == pytest.approx(-0.738)
    previous = aligned_verdict(106.722, 109.047, 109.0, 0.4, 0.3)  # the build before: icl-profile, 2.1% below
    assert not previous["aligned"]
    moved = aligned_verdict(95.0, 109.024, 109.0, 0.4, 0.3)
    assert moved["aligned"] and moved["failed"] == []
    # India's content-free L1 is 70: 4 points below both is 5.7% of it, aligned; 3 points is not.
    assert aligned_verdict(66.0, 70.0, 70.0, 0.4, 0.3)["aligned"]
    assert not aligned_verdict(67.0, 70.0, 70.0, 0.4, 0.3)["aligned"]
    # The margin does not excuse a move away or a position move.
    assert aligned_verdict(95.0, 109.0, 109.0, -0.2, 0.3)["failed"] == ["directedness"]
    assert aligned_verdict(95.0, 109.0, 109.0, 0.4, -0.9)["failed"] == ["mirror"]
