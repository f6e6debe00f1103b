"""The testbed's training wordings: a generated pool of system prompts x frames, each rendered in
both scale orders, disjoint from the benchmark's own wordings (every system prompt and every frame
template differs from all of the instrument's prompt variants, of every split).

The pool is combinatorial so that the model learns to read the items through many wordings rather
than memorise a few: frames combine an instruction, a header before the scale, a scale-line format
and a label before the question; system prompts combine a setting and a request.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from cultbench.errors import CultbenchError
from cultbench.prompts import PromptVariant, all_variants, variants_file

SETTINGS = ("This is a questionnaire about work and life.", "You are filling in an opinion poll.",
            "We are running a study of values across the world.", "Welcome to our short survey.",
            "You have been chosen for a survey about attitudes.", "This form asks about your views.",
            "You are answering questions for a social science project.", "Please help us with a survey.",
            "This is part of a study on how people think about jobs and life.",
            "You are a respondent in a research interview.",
            # Longer settings: the benchmark's held-out wordings run to 145 tokens, longer than any
            # prompt of the first pool (at most 129); a model never trained at that length lost
            # most of the persona there (docs/testbed.md, carry-over).
            "Thank you for agreeing to take part in this conversation for a research project about what "
            "people value in their jobs and in their lives in general.",
            "Our team collects answers from people in many countries to learn how opinions about work, "
            "family and society differ from place to place.")
REQUESTS = ("Give your own answer.", "Say what is true for you.", "Pick one option per question.",
            "There are no right or wrong answers.", "Answer with a number only.",
            "Respond as yourself, briefly.")
INSTRUCTIONS = ("Choose a number from {first} to {last}.", "Reply with one number between {first} and {last}.",
                "Give the number ({first}-{last}) of your answer.", "Select one of the options {first} to {last}.",
                "Pick the option that fits you and write its number.",
                "First you will see the list of possible replies, then the statement or question itself; "
                "write down the number of the reply that is closest to your view, {first} to {last}.",
                "Read the options below carefully and think about your own situation before you answer. "
                "Then give only the number of your choice, between {first} and {last}.")
SCALE_HEADERS = ("", "Options:", "Possible answers:", "Scale:")
SCALE_LINES = ("{option} = {label}", "{option}: {label}", "({option}) {label}", "{option} - {label}",
               "Option {option}: {label}", "[{option}] {label}")
QUESTION_LABELS = ("", "Question: ", "Item: ", "Q: ")
# Frames whose options are letters (A-E, read back as the answers 1-5), as the benchmark's
# lettered frame shows them: a model that knew only digits could not answer it.
LETTER_INSTRUCTIONS = ("Reply with the letter of your answer, {first} to {last}.",
                       "Choose one option and write only its letter ({first}-{last}).",
                       "Which answer fits you? Give its letter from {first} to {last}.")


# Unknown-word dropout: in a share of the training prompts some words of the wording (its system
# text and its frame's own words; never the persona, the item or the options) are replaced by a word
# the tokenizer never learns, so the model sees [UNK] where a benchmark wording has words the pool
# lacks (a held-out wording shows up to 10 [UNK] tokens) and learns that they carry nothing.
UNKNOWN_WORD = "unseenword"
DROPOUT_SHARE, DROPOUT_RATE = 0.5, 0.15  # share of prompts with dropout; share of words replaced in them


def drop_words(variant: PromptVariant, rng: np.random.Generator, rate: float = DROPOUT_RATE) -> PromptVariant:
    """``variant`` with each plain word of its system text and template replaced, with probability
    ``rate``, by :data:`UNKNOWN_WORD` (placeholders such as ``{question}`` are kept)."""

    def drop(text):
        if not text:
            return text
        words = text.split(" ")
        hit = rng.random(len(words)) < rate
        return " ".join(UNKNOWN_WORD if h and w.isalpha() else w for w, h in zip(words, hit))

    return dataclasses.replace(variant, system=drop(variant.system), template=drop(variant.template))


# The short frame: the persona as the whole system prompt, the item's text as the whole user turn
# (no instruction, no scale: read as the ascending order). In the pool's long prompts (about 100
# tokens) the country is one or two words among a hundred, and a model trained on them alone never
# looks at it (docs/testbed.md, "Why the persona was ignored"); in this one it is one word in 30.
SHORT_FRAME = "{question}"


def short_wording() -> PromptVariant:
    return PromptVariant(name="pool-short", split="train", system=None, template=SHORT_FRAME,
                         scale_line="{option} = {label}", order="ascending", frame="pool-frame-short",
                         wording="pool-short")


def frame_pool() -> list[tuple[str, str, str]]:
    """Every (template, scale line, labels) of the pool: instruction, lead-in, optional header,
    scale, then the question (scale before the item, as in the benchmark's frames); numbered
    frames first, then lettered ones."""
    out = []
    for labels, instructions in (("numbers", INSTRUCTIONS), ("letters", LETTER_INSTRUCTIONS)):
        for instruction, header, line, label in itertools.product(instructions, SCALE_HEADERS, SCALE_LINES,
                                                                  QUESTION_LABELS):
            head = f"{instruction}\n{{lead_in}}\n" + (f"{header}\n" if header else "")
            out.append((head + "{scale}\n\n" + label + "{question}", line, labels))
    return out


def system_pool() -> list[str]:
    return [f"{s} {r}" for s, r in itertools.product(SETTINGS, REQUESTS)]


def benchmark_variants(instrument) -> list[PromptVariant]:
    """Every prompt variant of the instrument (all splits): the wordings the pool must avoid."""
    return all_variants(variants_file(instrument))


def check_disjoint(pool: list[PromptVariant], benchmark: list[PromptVariant]) -> None:
    """Refuse a pool that shares a system prompt or a frame template with the benchmark."""
    systems = {v.system for v in benchmark if v.system}
    templates = {v.template for v in benchmark}
    shared = sorted({v.system for v in pool if v.system in systems} | {v.template for v in pool if v.template in templates})
    if shared:
        raise CultbenchError(f"the testbed's wording pool shares {len(shared)} text(s) with the benchmark's "
                             f"prompt variants, e.g. {shared[0]!r}")


def training_wordings(instrument, n_wordings: int, seed: int, short: bool = False) -> list[PromptVariant]:
    """``n_wordings`` wordings (system prompt x frame) drawn from the pool, each in both orders
    (2 * n_wordings variants), then the short wording if ``short``, checked disjoint from the
    benchmark's wordings."""
    rng = np.random.default_rng(seed)
    systems, frames = system_pool(), frame_pool()
    pairs = [(int(s), int(f)) for s, f in zip(rng.integers(len(systems), size=n_wordings),
                                              rng.permutation(len(frames))[:n_wordings])]
    out = []
    for k, (s, f) in enumerate(pairs):
        template, line, labels = frames[f]
        for order in ("ascending", "descending"):
            out.append(PromptVariant(name=f"pool-{k}-{order}", split="train", system=systems[s], template=template,
                                     scale_line=line, order=order, frame=f"pool-frame-{f}", wording=f"pool-{k}",
                                     labels=labels))
    out += [short_wording()] if short else []
    check_disjoint(out, benchmark_variants(instrument))
    return out
