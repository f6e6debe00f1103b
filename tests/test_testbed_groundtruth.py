"""The testbed's ground truth: item-level answer distributions whose VSM 2013 indices are the
countries' published profiles."""

import numpy as np
import pytest

from cultbench.errors import CultbenchError
from cultbench.instruments import load_instrument
from cultbench.profiles import countries
from cultbench.testbed.groundtruth import NO_PERSONA, all_country_mean, distribution_for_mean, ground_truth

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


def test_a_mean_outside_the_scale_and_an_unreachable_profile_are_refused():
    with pytest.raises(CultbenchError, match="outside"):
        distribution_for_mean(5.2)
    np.testing.assert_allclose(distribution_for_mean(4.9) @ np.arange(1, 6), 4.9, atol=1e-9)
    # C = -200 on PDI would need every country's PDI items far beyond the scale.
    with pytest.raises(CultbenchError, match="no respondent can reach it"):
        ground_truth(INST, constants={"pdi": -200})
