"""What an aligner is asked to do: a scorer, a target profile, and how distance to it is measured.

The fitness of a candidate is the distance between its indices and the target's, computed per
prompt variant and then averaged over the variants (so a candidate must be close under every
training wording, not only on average). Lower is better; 0 is a perfect match.

On a distribution instrument the "indices" are the answer shares per (item, option) and the
instrument supplies the distance: the Jensen-Shannon distance per item, averaged over the items
the target country was asked (``jsd``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence

import numpy as np
import torch

from cultbench.errors import CultbenchError, did_you_mean
from cultbench.kinds import kind_of
from cultbench.metrics import DISTANCES, DISTRIBUTION, check_distance
from cultbench.profiles import Profile


def _setting(scorer) -> tuple:
    return (scorer.instrument.name, [v.name for v in scorer.variants], dict(scorer.constants))


class Scorer(Protocol):
    """What aligners need from a scorer (``cultbench.scorer.SurveyScorer`` or a stand-in).

    ``score(soft_prompts=[C, n_virtual, hidden] or None, personas=[C texts] or None)`` returns an
    object with ``indices`` [C, V, D] (and, optionally, ``option_mass`` [C, V, I]). ``model``
    and ``tokenizer`` give the input embeddings and the tokens of the initial text; ``dtype``
    (optional) is the precision it computes in, recorded with the result.
    """

    model: object
    tokenizer: object
    instrument: object
    variants: Sequence
    constants: Mapping[str, float]

    def score(self, soft_prompts=None, personas=None): ...


def precision(scorer) -> str | None:
    """The dtype a scorer computes in, as a name ("float32", "bfloat16"), or None if unknown."""
    dtype = getattr(scorer, "dtype", None)
    return None if dtype is None else str(dtype).replace("torch.", "")


@dataclass
class AlignmentProblem:
    """A target to align to, through a scorer, with a distance over a subset of dimensions.

    Args:
        scorer: scores candidates on the instrument under the training prompt variants.
        target: the country profile to move towards; it must have every dimension used (a
            distribution instrument: the country's answer shares, ``instrument.target(name)``).
        dimensions: the dimensions the distance uses (default: all of the instrument's; a
            distribution instrument uses all its items: restrict it with ``instrument.subset``).
        distance: ``l1`` (default for index instruments, the paper's loss), ``l2`` or ``mean-abs``;
            ``jsd`` (the only one, and the default) for distribution instruments.
        model_info: the loaded model's record (``LoadedModel.info``: id, revision, file hash),
            stored in the artifact so it can be checked against the model it is applied to.
        exact_scorer: scores the final candidate in full precision when ``scorer`` searches in
            reduced precision (e.g. bf16); default: ``scorer`` itself. It must score the same
            instrument, variants and constants.
    """

    scorer: Scorer
    target: Profile
    dimensions: Sequence[str] | None = None
    distance: str | None = None
    model_info: Mapping = field(default_factory=dict)
    exact_scorer: Scorer | None = None

    def __post_init__(self):
        self._by_instrument = kind_of(self.scorer.instrument).name == DISTRIBUTION
        if self._by_instrument:
            if self.distance not in (None, "jsd"):
                raise CultbenchError(f"{self.scorer.instrument.name} is a distribution instrument: its distance "
                                     f"is jsd, not {self.distance!r}")
            if self.dimensions is not None:
                raise CultbenchError(f"{self.scorer.instrument.name} is a distribution instrument: choose its "
                                     "questions (a question split), not dimensions")
            self.distance = "jsd"
        else:
            self.distance = check_distance(self.distance or "l1")
        if self.exact_scorer is None:
            self.exact_scorer = self.scorer
        elif _setting(self.exact_scorer) != _setting(self.scorer):
            raise CultbenchError("the exact scorer must score the same instrument, variants and constants "
                                 "as the search scorer")
        instrument_dims = list(self.scorer.instrument.dimension_ids)
        dims = instrument_dims if self.dimensions is None else [str(d).lower() for d in self.dimensions]
        if not dims:
            raise CultbenchError("no dimensions to align on")
        unknown = [d for d in dims if d not in instrument_dims]
        if unknown:
            raise CultbenchError(f"unknown dimension {unknown[0]!r} for {self.scorer.instrument.name}; "
                                 f"dimensions: {', '.join(instrument_dims)}.{did_you_mean(unknown[0], instrument_dims)}")
        self.dimensions = tuple(dict.fromkeys(dims))
        self.target_vector = self.target.vector(self.dimensions)  # names the missing dimension if any
        self._positions = [instrument_dims.index(d) for d in self.dimensions]

    @property
    def reduced_precision(self) -> bool:
        """True when the search scorer computes in another (lower) precision than the exact one:
        the search's finalists are then re-scored in full precision (see aligners/search.py)."""
        return self.exact_scorer is not self.scorer and precision(self.scorer) != precision(self.exact_scorer)

    def fitness(self, indices) -> np.ndarray:
        """[C] fitness from indices [C, V, D_instrument]: the distance per variant, averaged.

        NaN where a candidate's indices are not finite (the caller decides what that means).
        """
        indices = np.asarray(indices, dtype=np.float64)[..., self._positions]
        if self._by_instrument:
            return self.scorer.instrument.distance(indices, self.target_vector).mean(axis=-1)
        per_variant = DISTANCES[self.distance](indices - self.target_vector)
        return per_variant.mean(axis=-1)

    def loss(self, indices):
        """[C] fitness from a torch tensor of indices [C, V, D_instrument], differentiable: the
        same distance per variant, averaged, as :meth:`fitness` computes in numpy (a distribution
        instrument supplies its own torch form, ``distance_tensor``)."""
        if self._by_instrument:
            return self.scorer.instrument.distance_tensor(indices[..., self._positions], self.target_vector).mean(dim=-1)
        target = torch.as_tensor(self.target_vector, dtype=indices.dtype, device=indices.device)
        return DISTANCES[self.distance](indices[..., self._positions] - target).mean(dim=-1)

    def describe(self) -> dict:
        """The problem's part of an alignment record."""
        return {
            "instrument": self.scorer.instrument.name,
            "variants": [v.name for v in self.scorer.variants],
            "constants": {k: float(v) for k, v in self.scorer.constants.items()},
            "target": self.target.to_dict(),
            "dimensions": list(self.dimensions),
            "distance": self.distance,
        }
