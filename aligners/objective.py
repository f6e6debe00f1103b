"""What an aligner is asked to do: a scorer, a target profile, and how distance to it is measured.

The fitness of a candidate is the distance between its order-balanced indices and the target's,
computed per training wording and then averaged over the wordings (so a candidate must be close
under every training wording, not only on average). A wording's balanced indices are the mean of
its renderings' indices (scale in order and reversed, measurement v4), so a candidate that only
moves answer positions gains nothing. Every aligner minimises this one fitness: the searches,
prompt tuning (:meth:`AlignmentProblem.loss`) and third-party aligners. Lower is better; 0 is a
perfect match.

On a distribution instrument the "indices" are the answer shares per (item, option) and the
instrument supplies the distance: the Jensen-Shannon distance per item, averaged over the items
the target country was asked (``jsd``).

Validation (measurement v4): a problem may carry a second full-precision scorer, on the validation
split's wordings, which aligners use only to choose what they return (prompt tuning's early
stopping, a search's ``select_by=validation``). ``validation_fitness`` is the same balanced
distance on those wordings; it never enters the training fitness.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence

import numpy as np

from cultbench.errors import CultbenchError, did_you_mean
from cultbench.evaluation.kinds import kind_of
from cultbench.evaluation.metrics import DISTANCES, DISTRIBUTION, check_distance, order_balance, order_balanced
from cultbench.profiles import Profile


def _setting(scorer) -> tuple:
    return (scorer.instrument.name, [v.name for v in scorer.variants], dict(scorer.constants))


def _wordings_of(scorer) -> list[str]:
    """The wording of each of a scorer's renderings (a stand-in's variants without one: each its own)."""
    return [getattr(v, "wording", None) or v.name for v in scorer.variants]


class Scorer(Protocol):
    """What aligners need from a scorer (``cultbench.scoring.scorer.SurveyScorer`` or a stand-in).

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
        validation_scorer: scores candidates in full precision under the validation wordings
            (same instrument and constants, other renderings), used only to choose what an aligner
            returns; None: the problem has no validation split (wording version 3).
    """

    scorer: Scorer
    target: Profile
    dimensions: Sequence[str] | None = None
    distance: str | None = None
    model_info: Mapping = field(default_factory=dict)
    exact_scorer: Scorer | None = None
    validation_scorer: Scorer | None = None

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
        if self.validation_scorer is not None and \
                _setting(self.validation_scorer)[::2] != _setting(self.scorer)[::2]:
            raise CultbenchError("the validation scorer must score the same instrument and constants as the "
                                 "search scorer")
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

    @property
    def wordings(self) -> list[str]:
        """The wording of each of the scorer's renderings (a stand-in's variants without one: each
        its own wording)."""
        return _wordings_of(self.scorer)

    def wording_groups(self) -> list[list[int]]:
        """The scorer's renderings (indices into its variants) grouped by wording."""
        names = list(dict.fromkeys(self.wordings))
        return [[v for v, w in enumerate(self.wordings) if w == name] for name in names]

    def _balance(self, variants: Sequence[int] | None) -> np.ndarray:
        wordings = self.wordings if variants is None else [self.wordings[v] for v in variants]
        return order_balance(wordings)[1]

    def fitness(self, indices, variants: Sequence[int] | None = None) -> np.ndarray:
        """[C] fitness from indices [C, V, D_instrument]: the distance of each wording's balanced
        indices, averaged over the wordings. ``variants``: which of the scorer's renderings the V
        rows are (default: all, in order); they must hold whole wordings.

        NaN where a candidate's indices are not finite (the caller decides what that means).
        """
        return self._distance(indices, self._balance(variants))

    def _distance(self, indices, balance: np.ndarray) -> np.ndarray:
        indices = order_balanced(np.asarray(indices, dtype=np.float64)[..., self._positions], balance)
        if self._by_instrument:
            return self.scorer.instrument.distance(indices, self.target_vector).mean(axis=-1)
        return DISTANCES[self.distance](indices - self.target_vector).mean(axis=-1)

    def validation_fitness(self, soft_prompts=None, personas=None) -> np.ndarray:
        """[C] the fitness's balanced distance on the validation wordings, the candidates scored in
        ONE call of the validation scorer (NaN where a candidate's indices are not finite)."""
        if self.validation_scorer is None:
            raise CultbenchError("this problem has no validation split (a wording version 3 variants file "
                                 "has none): nothing to select or stop on")
        scored = self.validation_scorer.score(soft_prompts=soft_prompts, personas=personas)
        return self._distance(scored.indices, order_balance(_wordings_of(self.validation_scorer))[1])

    def loss(self, indices, variants: Sequence[int] | None = None):
        """[C] fitness from a torch tensor of indices [C, V, D_instrument], differentiable: the
        same balanced distance per wording, averaged, as :meth:`fitness` computes in numpy (a
        distribution instrument supplies its own torch form, ``distance_tensor``)."""
        indices = order_balanced(indices[..., self._positions], self._balance(variants))
        if self._by_instrument:
            return self.scorer.instrument.distance_tensor(indices, self.target_vector).mean(dim=-1)
        target = indices.new_tensor(self.target_vector)  # indices' dtype and device (no torch import here)
        return DISTANCES[self.distance](indices - target).mean(dim=-1)

    def describe(self) -> dict:
        """The problem's part of an alignment record."""
        return {
            "instrument": self.scorer.instrument.name,
            "variants": [v.name for v in self.scorer.variants],
            "constants": {k: float(v) for k, v in self.scorer.constants.items()},
            "target": self.target.to_dict(),
            "dimensions": list(self.dimensions),
            "distance": self.distance,
            **({} if self.validation_scorer is None
               else {"validation_variants": [v.name for v in self.validation_scorer.variants]}),
        }
