"""Ground truth of the planted-culture testbed: item-level answer distributions per country whose
VSM 2013 indices equal the country's published profile exactly.

Item means. Every index is ``sum(coef * (m_a - m_b)) + C`` over its own four items (the
instrument's weight matrix W has one column per dimension, and no two columns share an item), so
each dimension is solved on its own. The "no persona" respondent answers the item means ``m0``
nearest to 3 + o (the neutral respondent, who scores C, plus the fixed item-spread offset o of
``item_spread_offset``, which lies in the null space of W^T and so changes no index) whose indices equal the all-country mean
profile M (the mean over the countries of the source with all six scores). A country answers the
item means nearest to ``m0`` (least squares) whose indices equal its profile t:

    m = m0 + W (W^T W)^-1 (t - M),   and   m0 = 3 + o + W (W^T W)^-1 (M - C)

(W^T W is diagonal here, so this is one scalar per dimension). A profile whose item means would
leave [1, 5] cannot be hit by any respondent with these constants; it is refused with an error
naming the country (none of the 2015 matrix is: its item means lie in [1.69, 4.35] with C = 50).

Distribution shape. Each mean becomes a discretised normal over the answers 1..5 with a fixed
spread: p_k proportional to exp(-(k - c)^2 / (2 SHAPE_SD^2)), the centre c solved so that the
mean is exact (the mean is strictly increasing in c, so the root is unique). SHAPE_SD = 1 gives
an answer SD of about 1 scale point near the middle, as survey answers have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from cultbench.errors import CultbenchError
from cultbench.instruments import Instrument
from cultbench.profiles import DEFAULT_SOURCE, Profile, countries, world_mean

SHAPE_SD = 1.0  # spread of the discretised normal each item mean is turned into
# SD of the fixed item-mean offset in the indices' null space (see item_spread_offset): human-like
# spread across items (the diagnostics' MIN_ITEM_SD is 0.25) without changing any index.
ITEM_SPREAD = 0.5
SPREAD_SEED = 2013
NO_PERSONA = "(no persona)"  # key of the no-persona respondent (the all-country mean)


def complete_profiles(instrument: Instrument, source: str = DEFAULT_SOURCE) -> list[Profile]:
    """The countries of ``source`` with a score on every dimension of ``instrument``."""
    dims = instrument.dimension_ids
    return [p for p in countries(source) if all(d in p.scores for d in dims)]


def all_country_mean(instrument: Instrument, source: str = DEFAULT_SOURCE) -> np.ndarray:
    """The mean profile [D] over the countries of ``source`` with all the instrument's dimensions
    (the benchmark's world-mean reference row)."""
    return world_mean(source, instrument.dimension_ids)[0]


def item_means_for(instrument: Instrument, indices, base_means, base_indices) -> np.ndarray:
    """The item means [I] nearest to ``base_means`` (least squares) whose indices equal ``indices``,
    given that ``base_means`` score ``base_indices``."""
    w = instrument.weights()  # [I, D]
    gram = w.T @ w
    if not np.allclose(gram, np.diag(np.diag(gram))):
        raise CultbenchError(f"{instrument.name}: dimensions share items; the testbed needs each on its own items")
    step = (np.asarray(indices, float) - np.asarray(base_indices, float)) / np.diag(gram)
    return np.asarray(base_means, float) + w @ step


def item_spread_offset(instrument: Instrument, sd: float = ITEM_SPREAD, seed: int = SPREAD_SEED) -> np.ndarray:
    """A fixed item-mean offset [I] with SD ``sd`` in the null space of W^T: adding it to any item
    means leaves every index unchanged (the indices read only the 6 directions of W; the other
    I - 6 are free), so every respondent gets the same realistic spread across items."""
    w = instrument.weights()
    raw = np.random.default_rng(seed).standard_normal(w.shape[0])
    free = raw - w @ np.linalg.lstsq(w, raw, rcond=None)[0]
    return sd * free / free.std()


def distribution_for_mean(mean: float, options=(1, 2, 3, 4, 5), sd: float = SHAPE_SD) -> np.ndarray:
    """The discretised normal over ``options`` with spread ``sd`` whose mean is ``mean`` exactly."""
    values = np.asarray(options, dtype=float)
    if not values[0] < mean < values[-1]:
        raise CultbenchError(f"item mean {mean:.4f} lies outside ({values[0]:g}, {values[-1]:g})")

    def probs(centre: float) -> np.ndarray:
        logits = -((values - centre) ** 2) / (2 * sd * sd)
        e = np.exp(logits - logits.max())
        return e / e.sum()

    # The mean approaches the end values only as the centre goes to infinity: widen until bracketed.
    span = values[-1] - values[0]
    lo, hi = values[0] - span, values[-1] + span
    while probs(lo) @ values > mean:
        lo -= span
    while probs(hi) @ values < mean:
        hi += span
    from scipy.optimize import brentq  # scipy loads in about a second: only when a distribution is solved

    centre = brentq(lambda c: probs(c) @ values - mean, lo, hi, xtol=1e-14, rtol=1e-15, maxiter=500)
    return probs(centre)


@dataclass(frozen=True)
class GroundTruth:
    """Per respondent (a country's name, or NO_PERSONA): item means [I] and distributions [I, K]."""

    instrument: Instrument
    constants: dict
    source: str
    profiles: Mapping[str, Profile]  # country name -> profile
    means: Mapping[str, np.ndarray]
    distributions: Mapping[str, np.ndarray]

    def indices(self, respondent: str) -> np.ndarray:
        """The indices [D] of a respondent's ground-truth distributions (recomputed, not stored)."""
        expected = self.distributions[respondent] @ np.asarray(self.instrument.options, dtype=float)
        return self.instrument.indices(expected, self.constants)

    def to_dict(self) -> dict:
        return {"source": self.source, "constants": dict(self.constants), "shape": {"kind": "discretised normal",
                "sd": SHAPE_SD}, "item_ids": self.instrument.item_ids,
                "respondents": {name: {"means": self.means[name].tolist(),
                                       "distributions": self.distributions[name].tolist()}
                                for name in self.means}}


def ground_truth(instrument: Instrument, constants: Mapping[str, float] | None = None,
                 source: str = DEFAULT_SOURCE) -> GroundTruth:
    """Ground truth for every country of ``source`` with all six scores, and the no-persona respondent."""
    consts = instrument.constants(constants)
    c = np.array([consts[d] for d in instrument.dimension_ids])
    mean_profile = all_country_mean(instrument, source)
    neutral = np.full(len(instrument.items), float(np.mean(instrument.options))) + item_spread_offset(instrument)
    base = item_means_for(instrument, mean_profile, neutral, c)
    profiles = {p.name: p for p in complete_profiles(instrument, source)}
    means = {NO_PERSONA: base}
    for name, profile in profiles.items():
        means[name] = item_means_for(instrument, profile.vector(instrument.dimension_ids), base, mean_profile)
    lo, hi = min(instrument.options), max(instrument.options)
    for name, m in means.items():
        if m.min() <= lo or m.max() >= hi:
            raise CultbenchError(f"the profile of {name} needs item means outside ({lo}, {hi}) with constants "
                                 f"{consts}: no respondent can reach it")
    dists = {name: np.stack([distribution_for_mean(x, instrument.options) for x in m]) for name, m in means.items()}
    return GroundTruth(instrument=instrument, constants=consts, source=source, profiles=profiles,
                       means=means, distributions=dists)
