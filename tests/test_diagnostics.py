"""Validity diagnostics: each against values computed by hand on small arrays; a model that answers
by position is flagged, one that reads the content passes; the verdict reaches evaluate's output."""

import numpy as np
import pytest
import torch

from conftest import ROOT
from cultbench.evaluation import diagnostics as dg
from cultbench.evaluation.candidate import evaluate_candidate
from cultbench.instruments import load_instrument
from cultbench.profiles import lookup
from cultbench.prompts import get_variants
from cultbench.scoring.scorer import SurveyScorer

UP, DOWN = dg.ASCENDING, dg.DESCENDING
OPTIONS = (1, 2, 3)


def test_option_mass_and_empty_input():
    assert dg.option_mass([[0.2, 0.4], [0.6, 0.8]]) == pytest.approx(0.5)
    assert dg.option_mass([]) is None
    assert dg.item_discrimination(np.zeros((0, 3))) is None
    assert dg.position_bias(np.zeros((0, 2, 3)), [])["mean"] is None
    assert dg.reversal_consistency(np.zeros((0, 2, 3)), [], OPTIONS)["total_variation"] is None


def test_position_bias_reads_the_first_shown_option():
    # 2 variants x 2 items x 3 answer values (mapped back): in order, then reversed
    probs = np.array([[[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]],
                      [[0.2, 0.2, 0.6], [0.7, 0.2, 0.1]]])
    first = dg.first_shown_probability(probs, [UP, DOWN])
    assert first.tolist() == [[0.5, 0.1], [0.6, 0.1]]  # value 1 in order, value 3 reversed
    bias = dg.position_bias(probs, [UP, DOWN])
    assert bias[UP] == pytest.approx(0.3) and bias[DOWN] == pytest.approx(0.35)
    assert bias["mean"] == pytest.approx(0.325)
    # each order weighs the same, whatever its number of variants
    three = dg.position_bias(np.concatenate([probs[:1], probs[:1], probs[1:]]), [UP, UP, DOWN])
    assert three["mean"] == pytest.approx(0.325)
    only_up = dg.position_bias(probs[:1], [UP])
    assert only_up["mean"] == pytest.approx(0.3) and only_up[DOWN] is None


def test_reversal_consistency_by_hand():
    probs = np.array([[[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]],
                      [[0.3, 0.3, 0.4], [0.1, 0.5, 0.4]],
                      [[0.2, 0.2, 0.6], [0.7, 0.2, 0.1]]])
    out = dg.reversal_consistency(probs, [UP, UP, DOWN], OPTIONS)
    # in-order mean: item 1 [0.4, 0.3, 0.3], item 2 [0.1, 0.3, 0.6]; reversed: [0.2, 0.2, 0.6], [0.7, 0.2, 0.1]
    # TV item 1: (0.2 + 0.1 + 0.3) / 2 = 0.3; item 2: (0.6 + 0.1 + 0.5) / 2 = 0.6
    assert out["total_variation"] == pytest.approx(0.45)
    # expected answers: item 1 1.9 vs 2.4, item 2 2.5 vs 1.4 -> shifts 0.5 and 1.1
    assert out["expected_shift"] == pytest.approx(0.8)
    assert out["variants"] == {UP: 2, DOWN: 1}
    same = dg.reversal_consistency(probs[[0, 0]], [UP, DOWN], OPTIONS)
    assert same["total_variation"] == pytest.approx(0.0) and same["expected_shift"] == pytest.approx(0.0)
    one_order = dg.reversal_consistency(probs, [UP, UP, UP], OPTIONS)
    assert one_order["total_variation"] is None and "reversed" in one_order["reason"]


def test_item_discrimination_and_wording_stability_by_hand():
    expected = np.array([[1.0, 3.0], [2.0, 2.0]])  # SD over items: 1.0 and 0.0
    assert dg.item_discrimination(expected) == pytest.approx(0.5)
    assert dg.item_discrimination([1.0, 2.0, 3.0]) == pytest.approx(np.sqrt(2 / 3))
    indices = np.array([[10.0, 50.0], [20.0, 50.0], [30.0, 50.0]])
    out = dg.wording_stability(indices, ["pdi", "idv"])
    assert out["per_dimension"] == pytest.approx({"pdi": 10.0, "idv": 0.0})  # sample SD of 10, 20, 30
    assert out["mean"] == pytest.approx(5.0)
    assert dg.wording_stability(indices[:1], ["pdi", "idv"])["mean"] is None


def _orders():
    return [UP, DOWN, UP, DOWN]


def test_a_model_that_answers_by_position_is_not_interpretable():
    """Always the first shown option, with all its probability on the options."""
    inst = load_instrument("vsm2013")
    n_items, k = len(inst.items), len(inst.options)
    probs = np.zeros((4, n_items, k))
    for v, order in enumerate(_orders()):
        probs[v, :, 0 if order == UP else -1] = 1.0  # mapped back: value 1 in order, value 5 reversed
    expected = probs @ np.array(inst.options, dtype=float)
    report = dg.diagnose(probs, np.ones((4, n_items)), expected, inst.indices(expected, inst.constants()),
                         _orders(), inst.options, inst.dimension_ids)
    assert report["position_bias"]["mean"] == pytest.approx(1.0)
    assert report["reversal"]["total_variation"] == pytest.approx(1.0)
    assert report["reversal"]["expected_shift"] == pytest.approx(4.0)
    assert report["item_discrimination"] == pytest.approx(0.0)
    assert not report["interpretable"]
    assert {"position_bias", "reversal", "item_discrimination"} <= set(report["failed"])
    assert "option_mass" not in report["failed"]


def test_a_model_that_reads_the_content_passes():
    """Each item has its own answer distribution, the same under every wording and scale order."""
    inst = load_instrument("vsm2013")
    n_items, k = len(inst.items), len(inst.options)
    rng = np.random.default_rng(0)
    content = rng.dirichlet(np.full(k, 0.5), size=n_items)  # [I, K], items differ
    probs = np.broadcast_to(content, (4, n_items, k)).copy()
    expected = probs @ np.array(inst.options, dtype=float)
    report = dg.diagnose(probs, np.full((4, n_items), 0.9), expected, inst.indices(expected, inst.constants()),
                         _orders(), inst.options, inst.dimension_ids)
    assert report["reversal"]["total_variation"] == pytest.approx(0.0)
    assert report["position_bias"]["mean"] <= 0.5
    assert report["wording_stability"]["mean"] == pytest.approx(0.0)
    assert report["item_discrimination"] > dg.MIN_ITEM_SD
    assert report["interpretable"] and report["failed"] == [] and report["unchecked"] == []
    # one scale order only: position answering cannot be ruled out, so no verdict of interpretable
    alone = dg.diagnose(probs, np.full((4, n_items), 0.9), expected, inst.indices(expected, inst.constants()),
                        [UP] * 4, inst.options, inst.dimension_ids)
    assert not alone["interpretable"] and alone["failed"] == []
    assert alone["unchecked"] == ["position_bias", "reversal"]


def _first_option_model(model, tokenizer, inst):
    """The tiny model with +30 on the logit of the first displayed option's token: it answers by
    position whatever the prompt."""
    bias = torch.zeros(model.config.vocab_size)
    for labels in ("numbers", "letters"):  # the first label of each label set ("1", "A")
        variants = [v for v in get_variants() if v.labels == labels][:1]
        scorer = SurveyScorer(model, tokenizer, inst, variants)
        bias[scorer.prompt_tokens(0, 0, None)[1][0]] = 30.0
    return model.get_output_embeddings().register_forward_hook(lambda _m, _args, out: out + bias)


def test_evaluate_reports_diagnostics_per_split_and_overall(tiny):
    model, tokenizer = tiny
    inst = load_instrument("vsm2013")
    result = evaluate_candidate(model, tokenizer, inst, [lookup("US")])
    variants = [v for s in ("train", "validation", "heldout") for v in get_variants(s)]
    overall = result["diagnostics"]
    assert overall["variants"] == len(variants) and isinstance(overall["interpretable"], bool)
    for split, scored in result["splits"].items():
        assert scored["diagnostics"]["variants"] == len(scored["variants"])
        assert scored["diagnostics"]["option_mass"] == pytest.approx(scored["option_mass"])
    handle = _first_option_model(model, tokenizer, inst)
    try:
        flagged = evaluate_candidate(model, tokenizer, inst, [lookup("US")])["diagnostics"]
    finally:
        handle.remove()
    assert flagged["position_bias"]["mean"] > 0.99
    assert flagged["reversal"]["total_variation"] > 0.99
    assert not flagged["interpretable"] and {"position_bias", "reversal"} <= set(flagged["failed"])


# -- distribution instruments: items with their own number of options ------------------------------


def test_distribution_position_bias_reads_each_items_own_last_option():
    # 2 variants x 2 items, zero-padded to 3 options: item 0 has 2 options, item 1 has 3.
    probs = np.array([[[0.7, 0.3, 0.0], [0.2, 0.3, 0.5]],
                      [[0.4, 0.6, 0.0], [0.1, 0.1, 0.8]]])
    first = dg.first_shown_probability(probs, [UP, DOWN], counts=[2, 3])
    assert first.tolist() == [[0.7, 0.2], [0.6, 0.8]]  # reversed: item 0 shows its option 2 first
    bias = dg.position_bias(probs, [UP, DOWN], counts=[2, 3])
    assert bias[UP] == pytest.approx(0.45) and bias[DOWN] == pytest.approx(0.7) and bias["mean"] == pytest.approx(0.575)
    out = dg.reversal_consistency(probs, [UP, DOWN])  # no answer values: no expected shift
    # TV item 0: (0.3 + 0.3) / 2; item 1: (0.1 + 0.2 + 0.3) / 2
    assert out["total_variation"] == pytest.approx(0.3) and out["expected_shift"] is None


def test_similarity_stability_by_hand():
    sims = np.array([[0.6, 0.8], [0.7, 0.8], [0.8, 0.8]])  # 3 variants x countries A, B
    out = dg.similarity_stability(sims, ["A", "B"])
    assert out["per_country"] == pytest.approx({"A": 0.1, "B": 0.0})  # sample SD across the variants
    assert out["mean"] == pytest.approx(0.05)
    assert out["between_countries"] == pytest.approx(np.std([0.7, 0.8], ddof=1))
    assert dg.similarity_stability(sims[:1], ["A", "B"])["mean"] is None
    assert dg.similarity_stability(sims[:, :1], ["A"])["reason"].startswith("needs at least two")


OPINIONS = load_instrument("globalopinionqa", str(ROOT / "tests" / "data" / "globalopinionqa_fixture.csv"))


def _distribution_report(probs, mass, orders):
    """diagnose_distribution on the GlobalOpinionQA fixture, the similarities computed from ``probs``."""
    from cultbench.evaluation.distribution import country_similarities

    sims = country_similarities(OPINIONS, OPINIONS.flatten(probs), np.ones(len(OPINIONS.items), dtype=bool))
    return dg.diagnose_distribution(probs, mass, orders, OPINIONS.option_counts, np.stack(list(sims.values()), 1),
                                    list(sims))


def test_distribution_items_answered_by_position_or_by_content():
    counts, k = OPINIONS.option_counts, max(OPINIONS.option_counts)
    by_position = np.zeros((4, len(counts), k))
    for v, order in enumerate(_orders()):
        for i, n in enumerate(counts):
            by_position[v, i, 0 if order == UP else n - 1] = 1.0  # the option shown first, mapped back
    report = _distribution_report(by_position, np.ones((4, len(counts))), _orders())
    assert report["position_bias"]["mean"] == pytest.approx(1.0)
    assert report["reversal"]["total_variation"] == pytest.approx(1.0)
    assert "item_discrimination" not in report["checks"] and not report["interpretable"]
    assert {"position_bias", "reversal"} <= set(report["failed"]) and "option_mass" not in report["failed"]
    rng = np.random.default_rng(0)
    content = np.zeros((len(counts), k))
    for i, n in enumerate(counts):
        content[i, :n] = rng.dirichlet(np.ones(n))
    probs = np.broadcast_to(content, (4, len(counts), k)).copy()  # the same under every wording and order
    report = _distribution_report(probs, np.full((4, len(counts)), 0.9), _orders())
    assert report["reversal"]["total_variation"] == pytest.approx(0.0) and report["position_bias"]["mean"] <= 0.5
    assert report["wording_stability"]["mean"] == pytest.approx(0.0) and report["wording_stability"]["between_countries"] > 0
    threshold = report["checks"]["wording_stability"]["threshold"]
    assert threshold == pytest.approx(dg.MAX_WORDING_SHARE * report["wording_stability"]["between_countries"])
    assert report["interpretable"] and report["failed"] == report["unchecked"] == []
    alone = _distribution_report(probs[:2], np.full((2, len(counts)), 0.9), [UP, UP])
    assert not alone["interpretable"] and alone["unchecked"] == ["position_bias", "reversal"]
