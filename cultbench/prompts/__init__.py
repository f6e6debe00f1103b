"""Prompt wordings and their renderings (data in variants.yaml), and the one renderer of items
into chat messages.

A wording is a system prompt with a frame; since wording version 4 every wording is rendered in
both scale orders, and a ``PromptVariant`` is one rendering (``wording`` names its wording,
``order`` its scale order). Both the scorer and the lm-eval tasks render through
``render_messages``, so the wording a model sees is defined in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from string import Formatter
from typing import Sequence

import yaml

from cultbench.errors import CultbenchError, did_you_mean
from cultbench.instruments import Instrument, Item
from cultbench.instruments.distribution import option_letters

VARIANTS_FILE = Path(__file__).parent / "variants.yaml"
SPLITS = ("train", "validation", "heldout")
ORDERS = ("ascending", "descending")
REVERSED_SUFFIX = "-reversed"  # a wording's reversed rendering is named <wording>-reversed
LABEL_SETS = ("numbers", "letters")


@dataclass(frozen=True)
class PromptVariant:
    """One rendering of a wording: a system prompt, a frame and a scale order."""

    name: str
    split: str  # "train" (seen by aligners), "validation" (selection only) or "heldout" (evaluation only)
    system: str | None  # the variant's system text; None leaves the chat template's default
    template: str  # user message with {lead_in} {scale} {question} {first} {last} (see fill_template)
    scale_line: str  # one answer option: {option} {label}
    order: str = "ascending"  # "descending" lists the scale from the last answer to the first
    frame: str = ""  # the name of the frame the template and scale line come from
    wording: str = ""  # the wording (system prompt + frame) this renders; default: the name
    labels: str = "numbers"  # the frame's option labels: the instrument's own, or letters A, B, ...

    def __post_init__(self):
        if not self.wording:
            object.__setattr__(self, "wording", self.name)

    def displayed_answers(self, options: Sequence[int]) -> list[int]:
        """The answer value behind each displayed option number 1..k (reversed scales map back)."""
        return list(options) if self.order == "ascending" else list(reversed(options))

    def to_dict(self) -> dict:
        return {"name": self.name, "split": self.split, "system": self.system, "frame": self.frame,
                "template": self.template, "scale_line": self.scale_line, "order": self.order,
                "wording": self.wording, "labels": self.labels}


@lru_cache(maxsize=None)
def _read(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def variants_version(path: str = str(VARIANTS_FILE)) -> int:
    """The wording's version: results of different versions are different experiments."""
    return int(_read(path).get("version", 1))


def _renderings(raw: dict) -> list[dict]:
    """A wording's two renderings (scale in order, then reversed); a version-3 file lists single
    renderings under ``variants:`` (its ``-reversed`` ones paired with their in-order twin)."""
    if "order" in raw:  # a single rendering
        name = raw["name"]
        wording = name[: -len(REVERSED_SUFFIX)] if name.endswith(REVERSED_SUFFIX) else name
        return [{**raw, "wording": raw.get("wording", wording)}]
    return [{**raw, "order": "ascending", "wording": raw["name"]},
            {**raw, "name": raw["name"] + REVERSED_SUFFIX, "order": "descending", "wording": raw["name"]}]


@lru_cache(maxsize=None)
def _load(path: str = str(VARIANTS_FILE)) -> dict[str, PromptVariant]:
    data = _read(path)
    frames, systems, out = data["frames"], data.get("systems", {}), {}
    rows = [r for raw in data.get("wordings", []) + data.get("variants", []) for r in _renderings(raw)]
    for raw in rows:
        frame = frames.get(raw["frame"])
        if raw["split"] not in SPLITS or raw["order"] not in ORDERS or frame is None \
                or frame.get("labels", "numbers") not in LABEL_SETS or raw["name"] in out:
            raise CultbenchError(f"{path}: rendering {raw['name']} has a bad split, order, frame or label set, "
                                 "or its name is taken")
        system = raw.get("system")
        out[raw["name"]] = PromptVariant(
            name=raw["name"], split=raw["split"], system=systems.get(system, system),
            template=frame["template"], scale_line=frame["scale_line"], order=raw["order"],
            frame=raw["frame"], wording=raw["wording"], labels=frame.get("labels", "numbers"))
    return out


def variants_file(instrument: Instrument | None = None) -> str:
    """The variants file of an instrument (its YAML's ``variants:``, a file beside this module),
    or the default one."""
    name = getattr(instrument, "variants_file", None)
    return str(VARIANTS_FILE if not name else Path(__file__).parent / name)


def all_variants(path: str = str(VARIANTS_FILE)) -> list[PromptVariant]:
    return list(_load(path).values())


def get_variants(names: str | Sequence[str] | None = None, path: str = str(VARIANTS_FILE)) -> list[PromptVariant]:
    """Renderings by name (a wording's in-order rendering bears the wording's name), or by split
    ("train", "validation", "heldout": all renderings of its wordings), or all when None (from
    the default variants file, or from ``path``: see ``variants_file``)."""
    table = _load(path)
    if names is None:
        return list(table.values())
    if isinstance(names, str):
        names = [n for n in names.split(",") if n]
    out: list[PromptVariant] = []
    for name in names:
        if name in SPLITS:
            out.extend(v for v in table.values() if v.split == name)
        elif name in table:
            out.append(table[name])
        else:
            raise CultbenchError(f"unknown prompt variant {name!r}; variants: {', '.join(table)} "
                                 f"(or a split: {', '.join(SPLITS)}).{did_you_mean(name, table)}")
    if not out:
        raise CultbenchError("no prompt variants selected")
    return out


def splits_of(path: str = str(VARIANTS_FILE)) -> list[str]:
    """The splits (of ``SPLITS``, in its order) that a variants file has renderings in."""
    present = {v.split for v in _load(path).values()}
    return [s for s in SPLITS if s in present]


def fill_template(template: str, fields: dict) -> str:
    """``template`` with ``fields`` filled in, line by line; a line whose only content is fields
    that are all empty (None or "") is dropped together with its line break."""
    out = []
    for line in template.split("\n"):
        parsed = list(Formatter().parse(line))
        names = [name for _, name, _, _ in parsed if name is not None]
        literal = "".join(text for text, _, _, _ in parsed)
        if names and not literal.strip() and all(fields[n] in (None, "") for n in names):
            continue
        out.append(line.format(**{k: "" if v is None else v for k, v in fields.items()}))
    return "\n".join(out)


def default_variant(instrument: Instrument | None = None) -> PromptVariant:
    """The first training variant (of ``instrument``'s variants file, or the default one): the one
    used where a single variant is scored by default (the base and per-target lm-eval tasks, the
    benchmark)."""
    return get_variants("train", path=variants_file(instrument))[0]


def option_labels(instrument: Instrument, item: Item, variant: PromptVariant | None = None) -> list[str]:
    """The labels shown for an item's options, in display order, which are the tokens an answer is
    read from: the instrument's own (VSM: the numbers "1".."5"; a distribution instrument: the
    letters A, B, C, ...), or letters where the rendering's frame shows letters."""
    own = instrument.labels(item)
    return option_letters(len(own)) if variant is not None and variant.labels == "letters" else own


def displayed_options(instrument: Instrument, item: Item, variant: PromptVariant) -> list[int]:
    """Index (into ``item.scale``) of the option behind each displayed label."""
    return variant.displayed_answers(list(range(len(option_labels(instrument, item, variant)))))


def render_user_message(instrument: Instrument, item: Item, variant: PromptVariant) -> str:
    """The item as the user turn: the frame's template with the instruction, the item's lead-in
    (its line dropped when the item has none), the answer scale in the variant's order, and the
    item's own text."""
    labels = option_labels(instrument, item, variant)
    scale = "\n".join(variant.scale_line.format(option=label, label=item.scale[k])
                      for label, k in zip(labels, displayed_options(instrument, item, variant)))
    return fill_template(variant.template, {"lead_in": item.lead_in, "scale": scale, "question": item.text,
                                            "first": labels[0], "last": labels[-1]})


def system_text(variant: PromptVariant, persona: str | None = None) -> str | None:
    """The system prompt: a candidate's persona text first, then the variant's own text."""
    parts = [p for p in (persona, variant.system) if p]
    return " ".join(parts) if parts else None


def render_messages(instrument: Instrument, item: Item, variant: PromptVariant,
                    persona: str | None = None) -> list[dict]:
    system = system_text(variant, persona)
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": render_user_message(instrument, item, variant)})
    return messages


ANSWER_CUE = "Answer:"  # ends the prompt for models without a chat template


def render_prompt(tokenizer, instrument: Instrument, item: Item, variant: PromptVariant,
                  persona: str | None = None) -> str:
    """The full prompt text; the answer option is the next token after it."""
    messages = render_messages(instrument, item, variant, persona)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages) + "\n" + ANSWER_CUE
