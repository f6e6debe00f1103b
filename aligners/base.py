"""The aligner protocol, the base class of configured aligners, and the full-precision final score.

An aligner takes hyper-parameters only when it is made (scikit-learn style) and does its work in
``align(problem, budget, ...)``, which returns an :class:`~aligners.artifact.Alignment`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from aligners.artifact import Alignment
from aligners.config import AlignerConfig
from aligners.objective import AlignmentProblem, precision
from aligners.registry import CONTRACT  # noqa: F401 (the parts the registry checks a class for)
from cultbench.errors import CultbenchError


@runtime_checkable
class Aligner(Protocol):
    """Align a model to a target under a budget of candidate evaluations; return an Alignment.

    The whole contract (``ConfiguredAligner`` gives every part but ``align`` its default, and the
    registry refuses a class that lacks one):

    - ``name``: set by the registry; ``config_class``: the hyper-parameter record; ``config``;
    - ``searches``: False for aligners whose result depends on neither seed nor budget (a sweep
      runs them once per target, and records no seed or budget);
    - ``seeded``: False for aligners that use a budget but whose result does not depend on the
      seed (a sweep runs them with its first seed only);
    - ``display_order``, ``colour``: where the study's tables and the charts place the aligner
      (ascending) and its colour there ("#rrggbb"; None: a spare colour of the palette);
    - ``check_budget(budget, reduced_precision)``: the budget as the aligner will spend it, or a
      CultbenchError when it cannot (e.g. less than one generation); called before a model loads;
      ``reduced_precision``: the search runs below the model's precision and re-scores finalists;
    - ``check_instrument(instrument)``: a CultbenchError when the aligner cannot align to it;
    - ``align(problem, budget, seed=, run_dir=, resume=, progress=)``: ``run_dir`` is where a
      long search keeps its checkpoint (``aligners.checkpoint``); ``resume`` continues it.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[AlignerConfig]]
    searches: ClassVar[bool]
    seeded: ClassVar[bool]
    display_order: ClassVar[float]
    colour: ClassVar[str | None]
    config: AlignerConfig

    def check_budget(self, budget, reduced_precision: bool = False) -> int | None: ...

    def check_instrument(self, instrument) -> None: ...

    def align(self, problem: AlignmentProblem, budget: int | None = None, *, seed: int = 0,
              run_dir: str | Path | None = None, resume: bool = False, progress: bool = False) -> Alignment: ...


class ConfiguredAligner:
    """Base class: ``Aligner(**hyper_parameters)`` or ``Aligner(config=ConfigClass(...))``.

    Subclasses set ``config_class`` and implement ``align``; the registry sets ``name``. Every
    other part of the contract (see ``Aligner``) has its default here.
    """

    config_class: ClassVar[type[AlignerConfig]] = AlignerConfig
    searches: ClassVar[bool] = True  # False: the result depends on neither seed nor budget (see Aligner)
    seeded: ClassVar[bool] = True  # False: the result does not depend on the seed (see Aligner)
    display_order: ClassVar[float] = 1000.0  # after cultbench's own aligners
    colour: ClassVar[str | None] = None  # a spare colour of the charts' palette
    name: ClassVar[str] = "unregistered"

    def __init__(self, config: AlignerConfig | None = None, **params):
        if config is not None and params:
            raise CultbenchError(f"{type(self).__name__}: give a config or hyper-parameters, not both")
        if config is None:
            config = self.config_class.from_dict(params)
        if not isinstance(config, self.config_class):
            raise CultbenchError(f"{type(self).__name__} needs a {self.config_class.__name__}, "
                                 f"got {type(config).__name__}")
        self.config = config

    def get_params(self) -> dict:
        return self.config.to_dict()

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def check_budget(self, budget, reduced_precision: bool = False) -> int | None:
        """The budget as this aligner will spend it (called by ``cultbench align`` and ``run``
        before a model loads); by default any budget, unchanged."""
        return budget

    def check_instrument(self, instrument) -> None:
        """Raise a CultbenchError when this aligner cannot align to ``instrument`` (called by
        ``cultbench align`` and ``run`` before a model loads); every instrument is fine by default."""

    def align(self, problem: AlignmentProblem, budget: int | None = None, *, seed: int = 0,
              run_dir=None, resume: bool = False, progress: bool = False) -> Alignment:
        raise NotImplementedError


def model_record(problem: AlignmentProblem, hidden_size: int | None = None) -> dict:
    """The model's part of an alignment record: what compatibility checks compare."""
    info = dict(problem.model_info)
    if hidden_size is None:
        hidden_size = getattr(problem.scorer, "hidden_size", None) or info.get("hidden_size")
    return {"id": info.get("id"), "revision": info.get("revision"), "file_sha256": info.get("file_sha256"),
            "dtype": info.get("dtype"), "hidden_size": None if hidden_size is None else int(hidden_size)}


def exact_results(problem: AlignmentProblem, soft_prompts=None, personas=None) -> list[dict]:
    """Score candidates in ONE call of the problem's exact (full-precision) scorer: per candidate,
    its fitness and indices as stored in an artifact (``fitness`` NaN where the model gives
    non-finite indices). ``soft_prompts`` [C, n_virtual, hidden] or a list; ``personas`` C texts."""
    scorer = problem.exact_scorer
    scored = scorer.score(soft_prompts=soft_prompts, personas=personas)
    indices = np.asarray(scored.indices, dtype=np.float64)  # [C, V, D]
    fitness = problem.fitness(indices)
    dims = list(problem.scorer.instrument.dimension_ids)
    names = [v.name for v in problem.scorer.variants]
    mass = getattr(scored, "option_mass", None)
    out = []
    for c, rows in enumerate(indices):
        finite = bool(np.isfinite(fitness[c]) and np.all(np.isfinite(rows)))
        out.append({
            "precision": precision(scorer),
            "fitness": float(fitness[c]) if finite else float("nan"),
            "indices": dict(zip(dims, rows.mean(axis=0).tolist())),
            "indices_per_variant": {n: dict(zip(dims, row.tolist())) for n, row in zip(names, rows)},
            "option_mass": None if mass is None else float(np.mean(mass[c])),
        })
    return out


def final_result(problem: AlignmentProblem, soft_prompt=None, persona: str | None = None) -> dict:
    """Score one candidate with the problem's exact (full-precision) scorer: its fitness and
    indices, as stored in the artifact. A search may run in bf16; what it reports may not."""
    result = exact_results(problem, soft_prompts=None if soft_prompt is None else [soft_prompt],
                           personas=[persona])[0]
    if not np.isfinite(result["fitness"]):
        raise CultbenchError("the model gives non-finite indices for the final candidate "
                             "(NaN or infinite logits); nothing was saved")
    return result


def validation_fitness_of(problem: AlignmentProblem, soft_prompt=None, persona: str | None = None) -> float | None:
    """One candidate's balanced distance on the validation wordings (one scoring call; None
    without a validation split, or where the model gives non-finite indices)."""
    if problem.validation_scorer is None:
        return None
    value = problem.validation_fitness(soft_prompts=None if soft_prompt is None else [soft_prompt],
                                       personas=[persona])[0]
    return float(value) if np.isfinite(value) else None


def validation_record(problem: AlignmentProblem, *, select_by: str, fitness: float | None, evaluations: float,
                      every: int | None = None, step: int | None = None) -> dict | None:
    """An artifact's ``search.validation`` (None without a validation split): how the returned
    candidate was chosen (``select_by``: train or validation), its distance on the validation
    wordings (``fitness``), the validation wordings' renderings, and the validation evaluations
    counted in the budget; prompt tuning adds its cadence (``every``) and the step it kept."""
    if problem.validation_scorer is None:
        return None
    return {"select_by": select_by, "fitness": fitness, "distance": problem.distance, "evaluations": evaluations,
            "variants": [v.name for v in problem.validation_scorer.variants], "every": every, "step": step}
