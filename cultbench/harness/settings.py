"""What a cultbench lm-eval task measures: instrument, prompt variant, persona, constants, target.

Settings are resolved from three layers, later ones winning:

1. defaults: instrument ``vsm2013``, the first training prompt variant, no persona, the
   instrument's default constants, no target;
2. the run's metadata (lm-eval ``--metadata '{"target": "US"}'`` or
   ``TaskManager(metadata=...)``; lm-eval also merges the ``--model_args`` into it, so keys that
   are not settings are ignored);
3. the keys a task's YAML fixes under ``cultbench:`` (``vsm2013_us`` fixes the target and the
   default variant, ``vsm2013_honest_reworded`` the prompt variant). Metadata that asks for
   another value of a fixed key is an error, not a silent override.

Nothing here imports lm-eval: the settings are plain cultbench objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from cultbench.constants import parse_constants
from cultbench.errors import CultbenchError, did_you_mean
from cultbench.instruments import Instrument, load_instrument, resolve_target
from cultbench.evaluation.kinds import kind_of
from cultbench.evaluation.metrics import DISTRIBUTION
from cultbench.profiles import Profile, resolve_country
from cultbench.prompts import PromptVariant, default_variant, get_variants, variants_file

DEFAULT_INSTRUMENT = "vsm2013"
# data, questions: distribution instruments only (the data file; the question split to ask:
# train, heldout or all).
SETTING_KEYS = ("instrument", "variant", "persona", "target", "source", "constants", "data", "questions")
QUESTION_SPLITS = ("train", "heldout", "all")


def _same(key: str, a, b) -> bool:
    """Whether two values of a setting mean the same ("us" and "United States" are one target)."""
    if key == "target":  # the country, whatever the source has for it
        return resolve_country(str(a)).code == resolve_country(str(b)).code
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        return a == b
    return str(a).strip().casefold() == str(b).strip().casefold()


def _constants(value) -> dict[str, float]:
    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        return parse_constants([f"{k}={v}" for k, v in value.items()])
    if isinstance(value, str):
        return parse_constants([value])
    raise CultbenchError(f"metadata constants must be a mapping like {{\"pdi\": 0}} or a string like "
                         f"\"pdi=0,idv=10\", not {value!r}")


@dataclass(frozen=True)
class SurveySettings:
    """The resolved settings of one survey task."""

    instrument: Instrument
    instrument_ref: str  # the name or path it was loaded from
    variant: PromptVariant
    persona: str | None
    constants: dict
    target: Profile | None
    data: str | None = None
    questions: str = "all"

    @property
    def distribution(self) -> bool:
        return kind_of(self.instrument).name == DISTRIBUTION

    @property
    def items(self) -> list:
        """(position, item) of the items the task asks: a distribution instrument's question split."""
        return [(k, it) for k, it in enumerate(self.instrument.items)
                if self.questions == "all" or self.instrument.split[it.id] == self.questions]

    @classmethod
    def resolve(cls, metadata: Mapping | None = None, fixed: Mapping | None = None,
                task: str = "vsm2013") -> "SurveySettings":
        """Settings from run metadata and a task's fixed keys; a CultbenchError names any bad value."""
        metadata, fixed = dict(metadata or {}), dict(fixed or {})
        bad = [k for k in fixed if k not in SETTING_KEYS]
        if bad:
            raise CultbenchError(f"task {task}: unknown cultbench setting(s) {', '.join(bad)}; settings are "
                                 f"{', '.join(SETTING_KEYS)}.{did_you_mean(bad[0], SETTING_KEYS)}")
        for key, value in fixed.items():
            given = metadata.get(key)
            if given not in (None, "") and not _same(key, given, value):
                raise CultbenchError(
                    f"task {task} is the {key} {value!r}, but the metadata asks for {key}={given!r}; "
                    f"run task vsm2013 (or a group) with that metadata instead")
        values = {k: metadata.get(k) for k in SETTING_KEYS} | fixed

        ref = str(values["instrument"] or DEFAULT_INSTRUMENT)
        data = None if values["data"] in (None, "") else str(values["data"])
        instrument = load_instrument(ref, data) if data is not None else load_instrument(ref)
        distribution = kind_of(instrument).name == DISTRIBUTION
        questions = str(values["questions"] or "all")
        if questions not in QUESTION_SPLITS:
            raise CultbenchError(f"metadata questions={questions!r}; choose {', '.join(QUESTION_SPLITS)}")
        if questions != "all" and not distribution:
            raise CultbenchError(f"metadata questions={questions!r} is for distribution instruments")
        name = str(values["variant"] or default_variant(instrument).name)
        variants = get_variants([name], path=variants_file(instrument))
        if len(variants) != 1:
            raise CultbenchError(f"variant {name!r} is a split of {len(variants)} prompt variants; a task "
                                 f"renders one variant: run the group vsm2013_{name}, or name one variant")
        persona = values["persona"]
        if persona is not None and not isinstance(persona, str):
            raise CultbenchError(f"metadata persona must be a text, not {persona!r}")
        constants = instrument.constants(_constants(values["constants"]))
        target = None
        if values["target"] not in (None, ""):
            target = resolve_target(instrument, str(values["target"]), source=values["source"] or None)
        elif values["source"] not in (None, ""):
            raise CultbenchError(f"metadata source={values['source']!r} is given without a target")
        return cls(instrument=instrument, instrument_ref=ref, variant=variants[0], persona=persona or None,
                   constants=constants, target=target, data=data, questions=questions)

    def as_metadata(self) -> dict:
        """The settings as metadata keys that resolve to these settings again."""
        return {"instrument": self.instrument_ref, "variant": self.variant.name, "persona": self.persona,
                "constants": dict(self.constants),
                "target": None if self.target is None else self.target.name,
                "source": None if self.target is None or self.distribution else self.target.source,
                **({"data": self.data, "questions": self.questions} if self.distribution else {})}

    def describe(self) -> dict:
        """A JSON record of what the task measures (kept in lm-eval's configs block)."""
        if self.distribution:
            return {"instrument": self.instrument.describe(), "variant": self.variant.to_dict(),
                    "persona": self.persona, "questions": self.questions,
                    "target": None if self.target is None else self.target.to_dict()}
        return {"instrument": {"name": self.instrument.name, "version": self.instrument.version},
                "variant": self.variant.to_dict(), "persona": self.persona, "constants": dict(self.constants),
                "target": None if self.target is None else self.target.to_dict()}
