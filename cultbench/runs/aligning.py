"""Aligning one target: the steps `cultbench align` and a sweep (``cultbench.runs.sweep``) share.

Before a model loads: the aligner, made from its hyper-parameters and checked against the
instrument and the budgets (``prepare_aligner``), and what the aligners fit (``fitting``: an index
instrument whole, with its distance and dimensions; a distribution instrument's training
questions, with the Jensen-Shannon distance). With the model: the scorer the search runs on
(``search_scorer``: the full-precision scorer itself, a reduced-precision copy of it, or Ray
actors), the full-precision scorer of the validation wordings (``validation_scorer``: what an
aligner may select or stop on) and the alignment (``align_target``). A search's finalists, and
everything reported, are scored by the full-precision scorer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

from aligners import AlignmentProblem, get_aligner_class
from cultbench.errors import CultbenchError
from cultbench.evaluation.kinds import kind_of
from cultbench.evaluation.metrics import DISTRIBUTION, check_distance
from cultbench.scoring.models import resolve_dtype
from cultbench.prompts import get_variants, splits_of, variants_file
from cultbench.scoring.scorer import SurveyScorer


def prepare_aligner(name: str, params: Mapping[str, str], instrument, budgets: Sequence[int] = (),
                    reduced_precision: bool = False):
    """The aligner ``name`` with its hyper-parameters (``params``: name -> value, typed by its
    config), refused before a model loads when it cannot align to ``instrument`` or spend one of
    ``budgets`` (a search in reduced precision reserves its full-precision finalists)."""
    cls = get_aligner_class(name)
    aligner = cls(cls.config_class.from_dict(dict(params)))
    aligner.check_instrument(instrument)  # e.g. icl-profile refuses a distribution instrument
    if getattr(aligner.config, "select_by", None) == "validation" and \
            "validation" not in splits_of(variants_file(instrument)):
        raise CultbenchError(f"select_by=validation needs a validation split, and the wordings of {instrument.name} "
                             "have none: use select_by=train")
    for budget in budgets:
        aligner.check_budget(budget, reduced_precision)
    return aligner


def fitting(instrument, distance: str | None = "l1", dimensions: Sequence[str] | None = None) -> tuple:
    """(the instrument the aligners fit, the distance, the dimensions or None for all): an index
    instrument whole, with a known distance; a distribution instrument's training questions, with
    its own distance (jsd; ``l1``, the default, is read as it) and no choice of dimensions."""
    kind = kind_of(instrument)
    if kind.name == DISTRIBUTION:
        if distance not in (None, "l1", kind.distance) or dimensions:
            raise CultbenchError(f"{instrument.name} is a distribution instrument: its distance is {kind.distance}, "
                                 "over its training questions (no --distance or --dimensions)")
        return instrument.subset("train"), kind.distance, None
    return instrument, check_distance(distance or kind.distance), (list(dimensions) if dimensions else None)


def search_scorer(loaded, exact: SurveyScorer, *, model_name: str, dtype: str, search_dtype: str | None,
                  ray: Callable | None = None, **bound):
    """The scorer a search runs on: with ``ray`` (``cultbench.runs.distributed.RayScorer``, its actor
    settings bound), actors that each load the model; else, for ``search_dtype`` below ``dtype``, a
    reduced-precision copy of ``exact``; else ``exact`` itself. ``bound``: the memory bound
    (``max_batch_mb``). The caller closes a scorer that is not ``exact`` when it is done."""
    reduced = resolve_dtype(search_dtype) != resolve_dtype(dtype)
    if ray is not None:
        return ray(loaded.model, loaded.tokenizer, exact.instrument, exact.variants, model_name=model_name,
                   model_dtype=dtype, constants=exact.constants, dtype=search_dtype if reduced else None, **bound)
    if not reduced:
        return exact
    return SurveyScorer(loaded.model, loaded.tokenizer, exact.instrument, exact.variants, constants=exact.constants,
                        dtype=search_dtype, **bound)


def validation_scorer(exact: SurveyScorer, variants_path: str) -> SurveyScorer | None:
    """The full-precision scorer of the validation wordings of ``variants_path`` (the exact
    scorer's model, instrument, constants and memory bound): what aligners select and stop on.
    None when the file has no validation split (wording version 3) or when the exact scorer's own
    renderings include one of its renderings (selecting on the training data is no validation)."""
    if "validation" not in splits_of(variants_path):
        return None
    variants = get_variants("validation", path=variants_path)
    if {v.name for v in variants} & {v.name for v in exact.variants}:
        return None
    return SurveyScorer(exact.model, exact.tokenizer, exact.instrument, variants, constants=exact.constants,
                        max_batch_mb=exact.max_batch_mb, padding=exact.padding)


def align_target(aligner, target, search, exact: SurveyScorer, *, model_info: Mapping, budget: int | None,
                 seed: int, distance: str, dimensions: Sequence[str] | None = None, run_dir: Path | None = None,
                 resume: bool = False, progress: bool = False, validation: SurveyScorer | None = None):
    """(the alignment, its problem) of ``aligner`` to ``target``: the search runs on ``search``,
    its finalists and result are scored by ``exact``, ``validation`` (``validation_scorer``) scores
    what the aligner selects or stops on; ``run_dir`` holds the search's checkpoint (``resume``
    continues it)."""
    problem = AlignmentProblem(search, target, dimensions=dimensions, distance=distance, model_info=model_info,
                               exact_scorer=exact, validation_scorer=validation)
    alignment = aligner.align(problem, budget, seed=seed, run_dir=run_dir, resume=resume, progress=progress)
    return alignment, problem
