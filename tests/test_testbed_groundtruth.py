"""The testbed's ground truth: item-level answer distributions whose VSM 2013 indices are the
countries' published profiles."""

import numpy as np
import pytest

from cultbench.errors import CultbenchError
from cultbench.instruments import load_instrument
from cultbench.profiles import countries
from cultbench.testbed.groundtruth import (ITEM_SPREAD, NO_PERSONA, all_country_mean, distribution_for_mean, ground_truth,
                                          item_spread_offset)

INST = load_instrument("vsm2013")


def test_every_complete_country_recomputes_its_profile_from_its_ground_truth():
    gt = ground_truth(INST)
    complete = [p for p in countries() if len(p.scores) == 6]
    assert sorted(gt.profiles) == sorted(p.name for p in complete) and len(complete) == 65
    for name, profile in gt.profiles.items():
        np.testing.assert_allclose(gt.indices(name), profile.vector(INST.dimension_ids), atol=1e-6, rtol=0)
    # No persona: the all-country mean profile, from item means near the neutral 3.
    np.testing.assert_allclose(gt.indices(NO_PERSONA), all_country_mean(INST), atol=1e-6, rtol=0)


def test_distributions_are_distributions_with_the_stated_means():
    gt = ground_truth(INST)
    for name, dist in gt.distributions.items():
        assert np.all(dist > 0) and np.allclose(dist.sum(axis=1), 1.0)
        np.testing.assert_allclose(dist @ np.arange(1, 6), gt.means[name], atol=1e-9)
    # Each country differs from the no-persona respondent only on the items of the dimensions where
    # its score differs, and only by the least-squares step: the same item means for equal profiles.
    w = INST.weights()
    for name in ("Japan", "U.S.A."):
        step = gt.means[name] - gt.means[NO_PERSONA]
        np.testing.assert_allclose(w @ np.linalg.lstsq(w, step, rcond=None)[0], step, atol=1e-12)


def test_the_item_spread_offset_is_free_of_the_indices_and_gives_every_respondent_a_realistic_spread():
    offset, w = item_spread_offset(INST), INST.weights()
    np.testing.assert_allclose(w.T @ offset, 0.0, atol=1e-12)  # in the null space of W^T
    assert offset.std() == pytest.approx(ITEM_SPREAD)
    # Adding it changes no index (the constants and weights alone decide), and every respondent's
    # item means spread at least as much as the diagnostics' minimum (0.25).
    means = np.full(len(INST.items), 3.0)
    consts = INST.constants(None)
    np.testing.assert_allclose(INST.indices(means + offset, consts), INST.indices(means, consts), atol=1e-9)
    gt = ground_truth(INST)
    assert min(m.std() for m in gt.means.values()) > 0.45


def test_a_mean_outside_the_scale_and_an_unreachable_profile_are_refused():
    with pytest.raises(CultbenchError, match="outside"):
        distribution_for_mean(5.2)
    np.testing.assert_allclose(distribution_for_mean(4.9) @ np.arange(1, 6), 4.9, atol=1e-9)
    # C = -200 on PDI would need every country's PDI items far beyond the scale.
    with pytest.raises(CultbenchError, match="no respondent can reach it"):
        ground_truth(INST, constants={"pdi": -200})
