"""Paired comparisons: values checked against direct computations."""

import itertools

import numpy as np
import pytest

from cultbench.publish.stats import paired_comparison


def test_exact_sign_flip_p_value_and_interval():
    a = np.array([10.0, 12.0, 9.0, 11.0, 13.0, 8.0])
    b = np.array([12.0, 15.0, 9.5, 14.0, 13.5, 9.0])
    out = paired_comparison(a, b)
    diff = a - b
    assert out["mean_difference"] == pytest.approx(diff.mean())
    assert out["a_better_fraction"] == pytest.approx(1.0)
    # exact two-sided sign-flip test: share of the 2^6 sign patterns at least as extreme
    flips = [abs(np.mean(diff * np.array(s))) for s in itertools.product([1, -1], repeat=6)]
    expected_p = np.mean(np.array(flips) >= abs(diff.mean()) - 1e-12)
    assert out["p_value"] == pytest.approx(expected_p)
    assert out["ci_low"] < diff.mean() < out["ci_high"] < 0


def test_no_difference_is_not_significant():
    a = np.array([100.0, 95.0, 103.0, 98.0, 101.0, 97.0])
    b = a + np.array([1.5, -1.5, 0.7, -0.7, 2.0, -2.0])  # differences that cancel exactly
    out = paired_comparison(a, b)
    assert out["mean_difference"] == pytest.approx(0.0)
    assert out["p_value"] == pytest.approx(1.0) and out["ci_low"] < 0 < out["ci_high"]


def test_constant_differences_and_bad_input():
    out = paired_comparison([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    assert out["ci_method"] == "degenerate" and out["ci_low"] == out["ci_high"] == -1.0
    assert out["p_value"] == pytest.approx(0.25)  # 2 of the 2^3 sign patterns are as extreme
    with pytest.raises(ValueError):
        paired_comparison([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        paired_comparison([1.0], [2.0])


def test_smallest_p_value_is_stated():
    from cultbench.publish.stats import smallest_p_value

    for n in (2, 4, 12):
        out = paired_comparison(np.arange(n, dtype=float), np.arange(n, dtype=float) + 1 + np.arange(n) / 10)
        # every pair has A lower: the most extreme pattern, so p is the design's floor 2/2^n
        assert out["min_p_value"] == pytest.approx(2.0 / 2 ** n) == pytest.approx(out["p_value"])
        assert out["p_method"] == "exact sign-flip"
    assert smallest_p_value(20, n_resamples=9999) == pytest.approx(2 / 10000)
    with pytest.raises(ValueError):
        smallest_p_value(0)


def test_ci_label_says_which_bootstrap_method_gave_the_interval(monkeypatch):
    import cultbench.publish.stats as module

    a, b = np.array([10.0, 12.0, 9.0, 11.0]), np.array([12.0, 15.0, 9.5, 14.0])
    assert paired_comparison(a, b)["ci_method"] == "BCa"
    real = module.stats.bootstrap

    def bca_degenerates(*args, method="BCa", **kwargs):
        if method == "BCa":
            raise module.stats.DegenerateDataWarning("BCa cannot be computed")
        return real(*args, method=method, **kwargs)

    monkeypatch.setattr(module.stats, "bootstrap", bca_degenerates)
    out = paired_comparison(a, b)
    assert out["ci_method"] == "percentile (BCa degenerate)"
    expected = real(((a - b),), np.mean, method="percentile", n_resamples=9999,
                    rng=np.random.default_rng(0)).confidence_interval
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((expected.low, expected.high))
