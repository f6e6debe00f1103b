"""Aligners: move a frozen model's survey indices towards a country's profile without training it.

    from aligners import AlignmentProblem, make_aligner
    problem = AlignmentProblem(scorer, lookup("US"), model_info=loaded.info)
    alignment = make_aligner("de", popsize=10, n_virtual=4).align(problem, budget=300, seed=0)
    alignment.save_pretrained("runs/de-us")

Built-in aligners: ``naive``, ``icl``, ``icl-profile`` (baselines) and ``de``, ``cmaes``,
``random`` (soft-prompt search), ``prompt-tuning`` (gradient training of the soft prompt, where the
weights are at hand). Third-party packages add theirs through the entry-point group
``cultbench.aligners`` (see registry.py).
"""

from aligners.artifact import Alignment
from aligners.base import Aligner, ConfiguredAligner, final_result, model_record
from aligners.config import AlignerConfig, param
from aligners.objective import DISTANCES, AlignmentProblem
from aligners.registry import (ENTRY_POINT_GROUP, available_aligners, describe, get_aligner_class,
                               load_entry_points, register_aligner)
from aligners.search import (WORST_FITNESS, AskTellOptimizer, SearchRun, SoftPromptAligner, SoftPromptConfig,
                             run_ask_tell)
from aligners.search_space import SoftPromptSpace

# Importing the built-in aligners registers them.
from aligners.baselines import ICL_TEMPLATE, ICLBaseline, ICLProfileBaseline, NaiveBaseline  # noqa: E402
from aligners.cmaes import CMAES  # noqa: E402
from aligners.de import DifferentialEvolution  # noqa: E402
from aligners.prompt_tuning import PromptTuning, SubspaceTuning  # noqa: E402
from aligners.random_search import RandomSearch  # noqa: E402


def make_aligner(name: str, config: AlignerConfig | None = None, **params):
    """An aligner by registered name, with its hyper-parameters (or a ready config)."""
    cls = get_aligner_class(name)
    return cls(**params) if config is None else cls(config, **params)


__all__ = [
    "Aligner", "AlignerConfig", "Alignment", "AlignmentProblem", "AskTellOptimizer", "CMAES",
    "ConfiguredAligner", "DISTANCES", "DifferentialEvolution", "ENTRY_POINT_GROUP", "ICLBaseline",
    "ICLProfileBaseline", "ICL_TEMPLATE", "NaiveBaseline", "PromptTuning", "RandomSearch", "SearchRun", "SoftPromptAligner",
    "SoftPromptConfig", "SoftPromptSpace", "SubspaceTuning", "WORST_FITNESS", "available_aligners", "describe", "final_result",
    "get_aligner_class", "load_entry_points", "make_aligner", "model_record", "param", "register_aligner",
    "run_ask_tell",
]
