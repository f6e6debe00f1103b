"""What a cultbench lm-eval task measures: instrument, prompt variant, persona, constants, target.

Settings are resolved from three layers, later ones winning:

1. defaults: instrument ``vsm2013``, the first training prompt variant, no persona, the
   instrument's default constants, no target;
2. the run's metadata (lm-eval ``--metadata '{"target": "US"}'`` or
   ``TaskManager(metadata=...)``; lm-eval also merges the ``--model_args`` into it, so keys that
   are not settings are ignored);
3. the keys a task's YAML fixes under ``cultbench:`` (``vsm2013_us`` fixes the target,
   ``vsm2013_honest`` the prompt variant). Metadata that asks for another value of a fixed key
   is an error, not a silent override.

Nothing here imports lm-eval: the settings are plain cultbench objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from cultbench.cli.options import parse_constants
from cultbench.errors import CultbenchError, did_you_mean
from cultbench.instruments import Instrument, load_instrument
from cultbench.profiles import Profile, resolve_country, lookup
from cultbench.prompts import PromptVariant, get_variants

DEFAULT_INSTRUMENT = "vsm2013"
SETTING_KEYS = ("instrument", "variant", "persona", "target", "source", "constants")


def default_variant() -> str:
    """The first training prompt variant (the aligners' first wording)."""
    return get_variants("train")[0].name


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
        instrument = load_instrument(ref)
        name = str(values["variant"] or default_variant())
        variants = get_variants([name])
        if len(variants) != 1:
            raise CultbenchError(f"variant {name!r} is a split of {len(variants)} prompt variants; a task "
                                 f"renders one variant: run the group vsm2013_{name}, or name one variant")
        persona = values["persona"]
        if persona is not None and not isinstance(persona, str):
            raise CultbenchError(f"metadata persona must be a text, not {persona!r}")
        constants = instrument.constants(_constants(values["constants"]))
        target = None
        if values["target"] not in (None, ""):
            target = lookup(str(values["target"]), source=values["source"] or None,
                            dimensions=instrument.dimension_ids)
        elif values["source"] not in (None, ""):
            raise CultbenchError(f"metadata source={values['source']!r} is given without a target")
        return cls(instrument=instrument, instrument_ref=ref, variant=variants[0], persona=persona or None,
                   constants=constants, target=target)

    def as_metadata(self) -> dict:
        """The settings as metadata keys that resolve to these settings again."""
        return {"instrument": self.instrument_ref, "variant": self.variant.name, "persona": self.persona,
                "constants": dict(self.constants),
                "target": None if self.target is None else self.target.name,
                "source": None if self.target is None else self.target.source}

    def describe(self) -> dict:
        """A JSON record of what the task measures (kept in lm-eval's configs block)."""
        return {"instrument": {"name": self.instrument.name, "version": self.instrument.version},
                "variant": self.variant.to_dict(), "persona": self.persona, "constants": dict(self.constants),
                "target": None if self.target is None else self.target.to_dict()}
