"""Baselines: the naive model, and cultural prompting (in-context learning) as a system prompt.

They search nothing: budget, seed and run folder are ignored, and the artifact records 0
evaluations. Their one score is taken in full precision.
"""

from __future__ import annotations

from dataclasses import dataclass

from aligners.artifact import Alignment
from aligners.base import ConfiguredAligner, final_result, model_record
from aligners.config import AlignerConfig, param
from aligners.objective import AlignmentProblem
from aligners.registry import register_aligner
from cultbench.errors import CultbenchError
from cultbench.evaluation.kinds import kind_of
from cultbench.evaluation.metrics import DISTRIBUTION

ICL_TEMPLATE = ("You are an average human being born in {country} and living in {country} "
                "responding to the following survey question.")

# One line per dimension: the name and what a high score means (Hofstede's definitions, shortened).
DIMENSION_MEANINGS = {
    "pdi": ("Power Distance", "how much less powerful people accept that power is distributed unequally"),
    "idv": ("Individualism", "how much people look after themselves and their immediate family "
                             "rather than belonging to cohesive in-groups"),
    "mas": ("Masculinity", "how much society is driven by competition, achievement and success "
                           "rather than by caring for others and quality of life"),
    "uai": ("Uncertainty Avoidance", "how threatened people feel by ambiguous or unknown situations"),
    "lto": ("Long-Term Orientation", "how much people prepare for the future through thrift and "
                                     "persistence rather than keeping to tradition"),
    "ivr": ("Indulgence", "how freely people enjoy life and have fun rather than restraining their "
                          "desires by strict social norms"),
}


def format_persona(template: str, country: str) -> str:
    """``template`` with ``{country}`` filled in (the only field a persona template may use)."""
    return template.format(country=country)


def _check_template(config: AlignerConfig, field_name: str, **fields) -> None:
    try:
        getattr(config, field_name).format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        config._fail(f"{field_name} may only use the fields {', '.join('{' + f + '}' for f in fields)} "
                     f"({type(exc).__name__}: {exc})")


@dataclass(frozen=True)
class NaiveConfig(AlignerConfig):
    """The naive baseline has no hyper-parameters."""


@dataclass(frozen=True)
class ICLConfig(AlignerConfig):
    template: str = param(ICL_TEMPLATE, "Persona put first in the system prompt; {country} is "
                                        "replaced by the target's name.")

    def __post_init__(self):
        super().__post_init__()
        _check_template(self, "template", country="X")


@dataclass(frozen=True)
class ICLProfileConfig(ICLConfig):
    scores_intro: str = param("Hofstede's published scores for {country}, where a higher score means "
                              "more of the dimension:",
                              "Line put after the persona, before one line per target score; {country} "
                              "is replaced by the target's name.")
    score_line: str = param("- {name} ({code}) {score:g}: {meaning}.",
                            "One line per dimension the problem uses, with the fields {name}, {code}, "
                            "{score} and {meaning}.")

    def __post_init__(self):
        super().__post_init__()
        _check_template(self, "scores_intro", country="X")
        _check_template(self, "score_line", name="N", code="C", score=1.0, meaning="M")


class _PromptBaseline(ConfiguredAligner):
    searches = False  # the result depends on neither seed nor budget: a sweep runs it once per target

    def persona(self, problem: AlignmentProblem) -> str | None:
        raise NotImplementedError

    def align(self, problem: AlignmentProblem, budget: int | None = None, *, seed: int = 0,
              run_dir=None, resume: bool = False, progress: bool = False) -> Alignment:
        persona = self.persona(problem)
        return Alignment(aligner=self.name, hyperparameters=self.get_params(), seed=None,
                         model=model_record(problem), problem=problem.describe(), budget=None,
                         evaluations=0, result=final_result(problem, persona=persona), persona=persona)


@register_aligner("naive")
class NaiveBaseline(_PromptBaseline):
    """The model as it is: no soft prompt, no persona."""
    display_order, colour = 0, "#999999"

    config_class = NaiveConfig

    def persona(self, problem):
        return None


@register_aligner("icl")
class ICLBaseline(_PromptBaseline):
    """Cultural prompting: a persona from the target country as the system prompt."""
    display_order, colour = 10, "#E69F00"

    config_class = ICLConfig

    def persona(self, problem):
        return format_persona(self.config.template, problem.target.name)


@register_aligner("icl-profile")
class ICLProfileBaseline(ICLBaseline):
    """Cultural prompting plus the target's published scores, each with a one-line meaning."""
    display_order, colour = 20, "#8C6D1F"

    config_class = ICLProfileConfig

    def check_instrument(self, instrument) -> None:
        """Index instruments only: a distribution instrument's target is the country's answer
        shares on the very questions scored, so a prompt holding them would be the answer key
        (docs/aligners.md)."""
        if kind_of(instrument).name == DISTRIBUTION:
            raise CultbenchError(
                f"icl-profile writes the target's published index scores into the prompt, and {instrument.name} "
                "has none: its targets are answer shares on the very questions scored, so such a prompt would "
                "be the answer key; use icl (the persona alone) on distribution instruments")

    def persona(self, problem):
        self.check_instrument(problem.scorer.instrument)
        cfg = self.config
        lines = [super().persona(problem), cfg.scores_intro.format(country=problem.target.name)]
        for dim, score in zip(problem.dimensions, problem.target_vector):
            name, meaning = DIMENSION_MEANINGS.get(dim, (dim.upper(), "see the instrument's manual"))
            lines.append(cfg.score_line.format(name=name, code=dim.upper(), score=float(score), meaning=meaning))
        return "\n".join(lines)
