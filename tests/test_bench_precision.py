"""The bench's bf16/fp32 agreement check (cultbench.bench.speed.precision_agreement) on the tiny model."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from aligners import ICL_TEMPLATE, AlignmentProblem, SoftPromptConfig, SoftPromptSpace
from aligners.baselines import format_persona
from cultbench.bench.speed import describe_precision, precision_agreement
from cultbench.instruments import load_instrument
from cultbench.profiles import lookup
from cultbench.prompts import get_variants
from cultbench.scoring.scorer import SurveyScorer


def test_precision_agreement_scores_the_same_points_in_both_precisions(tiny):
    model, tokenizer = tiny
    report = precision_agreement(model, tokenizer, points=6, seed=3)
    f16, f32 = np.array(report["fitness_bfloat16"]), np.array(report["fitness_float32"])
    assert len(f16) == len(f32) == 6 and report["variants"] == [v.name for v in get_variants("train")]
    # The fp32 column is what an fp32 scorer gives the same points of the default search space.
    persona = format_persona(ICL_TEMPLATE, "U.S.A.")
    bounds = SoftPromptConfig().bounds  # the default search space's box
    space = SoftPromptSpace.build(model, tokenizer, n_virtual=None, d=16, init_text=persona, projection_seed=0,
                                  bounds=bounds)
    assert report["search_space"]["n_virtual"] == len(tokenizer(persona, add_special_tokens=False)["input_ids"])
    z = np.random.default_rng(3).uniform(*bounds, (6, 16))
    scorer = SurveyScorer(model, tokenizer, load_instrument(), get_variants("train"))
    again = AlignmentProblem(scorer, lookup("US")).fitness(scorer.score(soft_prompts=space.prompts(z)).indices)
    np.testing.assert_allclose(f32, again, atol=1e-6)
    assert report["mean_abs_difference"] == pytest.approx(np.abs(f16 - f32).mean()) and np.any(f16 != f32)
    assert report["spearman"] == pytest.approx(spearmanr(f16, f32).statistic)
    pick = report["bf16_pick"]
    assert pick["point"] == int(np.argmin(f16))
    assert pick["rank_in_float32"] == 1 + int((f32 < f32[pick["point"]]).sum())
    assert pick["selection_loss"] == pytest.approx(f32[pick["point"]] - f32.min()) and pick["selection_loss"] >= 0
    assert pick["winners_curse"] == pytest.approx(f32[pick["point"]] - f16[pick["point"]])
    assert "Spearman rho" in describe_precision(report)
