"""The prompt renderer, the variants' split, and the golden prompt files."""

import difflib

import pytest

from conftest import INST, load_script
from cultbench.prompts import (all_variants, fill_template, get_variants, option_labels, render_prompt,
                               render_user_message)

GOLDEN = load_script("render_golden_prompts")
VARIANTS = all_variants()


# -- the renderer ------------------------------------------------------------------------------

def test_a_line_of_empty_fields_is_dropped_with_its_line_break():
    template = "Say {a}.\n{lead}\n{lead} {scale}\n\n{question}"
    assert fill_template(template, {"a": 1, "lead": None, "scale": "S", "question": "Q"}) == "Say 1.\n S\n\nQ"
    assert fill_template(template, {"a": 1, "lead": "", "scale": "", "question": "Q"}) == "Say 1.\n\nQ"
    assert fill_template(template, {"a": 1, "lead": "L", "scale": "S", "question": "Q"}) == "Say 1.\nL\nL S\n\nQ"
    # A line with text of its own is kept even when its field is empty.
    assert fill_template("Q: {question}", {"question": ""}) == "Q: "


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_every_item_has_instruction_lead_in_scale_and_question_on_their_own_lines(variant):
    options = INST.options
    for item in INST.items:
        lines = render_user_message(INST, item, variant).split("\n")
        labels = [item.scale[options.index(a)] for a in variant.displayed_answers(options)]
        shown = option_labels(INST, item, variant)
        assert shown == (list("ABCDE") if variant.frame == "lettered" else [str(o) for o in options])
        scale = [variant.scale_line.format(option=o, label=lab) for o, lab in zip(shown, labels)]
        start = lines.index(scale[0])
        assert lines[start:start + len(scale)] == scale, item.id  # the whole scale, one option a line
        assert lines[start + len(scale)] == "" and lines[-1].endswith(item.text)  # blank line, then the item
        head = lines[:start]
        assert (item.lead_in in head) == bool(item.lead_in), item.id  # the lead-in is a line of its own
        assert not any(option in line for line in head for option in scale), (item.id, head)  # nothing glued
        text = "\n".join(lines)
        assert "  " not in text and "\0" not in text and "{" not in text and "\n\n\n" not in text
        assert all(line == line.strip() for line in lines)


def test_block_c_renders_the_instruction_then_a_line_break_then_the_scale():
    """The v2 defect: items without a lead-in glued the first option to the instruction line."""
    q15 = next(it for it in INST.items if it.id == "q15")
    assert render_user_message(INST, q15, get_variants(["respondent-standard"])[0]) == (
        "Answer with a single number from 1 to 5.\n1 = always\n2 = usually\n3 = sometimes\n4 = seldom\n"
        "5 = never\n\nHow often do you feel nervous or tense?")


def test_reversed_scales_show_the_last_answer_first_and_map_back():
    q20 = next(it for it in INST.items if it.id == "q20")  # its own scale runs never .. always
    for variant in VARIANTS:
        shown = render_user_message(INST, q20, variant)
        first, last = ("never", "always") if variant.order == "ascending" else ("always", "never")
        labels = option_labels(INST, q20, variant)
        assert variant.scale_line.format(option=labels[0], label=first) in shown.split("\n")
        assert variant.scale_line.format(option=labels[-1], label=last) in shown.split("\n")
        assert variant.displayed_answers(INST.options) == (
            [1, 2, 3, 4, 5] if variant.order == "ascending" else [5, 4, 3, 2, 1])


def test_a_blocks_items_share_everything_before_their_own_text():
    """The scorer packs shared prefixes: instruction, lead-in and scale come before the item."""
    for variant in VARIANTS:
        for block in {it.block for it in INST.items}:
            items = [it for it in INST.items if it.block == block and not it.reversed]
            heads = {render_prompt(None, INST, it, variant).rsplit(it.text, 1)[0] for it in items
                     if items[0].scale == it.scale}
            assert len(heads) == 1, (variant.name, block)


# -- the split ---------------------------------------------------------------------------------

def wordings(split: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for v in get_variants(split):
        out.setdefault(v.wording, []).append(v)
    return out


def test_every_wording_is_rendered_in_order_and_reversed_with_one_system_prompt_and_frame():
    for split in ("train", "validation", "heldout"):
        for name, pair in wordings(split).items():
            assert [v.order for v in pair] == ["ascending", "descending"], name
            assert [v.name for v in pair] == [name, f"{name}-reversed"]
            assert len({(v.system, v.frame, v.labels, v.split) for v in pair}) == 1, name
    assert len({v.name for v in VARIANTS}) == len(VARIANTS) == 2 * len({v.wording for v in VARIANTS})


def test_the_splits_are_sets_of_wordings_and_heldout_keeps_what_selection_never_saw():
    train, validation, heldout = wordings("train"), wordings("validation"), wordings("heldout")
    assert len(train) >= 2 and len(validation) == 1 and len(heldout) >= 3
    assert len({pair[0].frame for pair in train.values()}) >= 2  # training mixes frames
    seen = [pair[0] for split in (train, validation) for pair in split.values()]
    assert not {p[0].system for p in heldout.values()} & {v.system for v in seen}  # every system prompt new
    assert {p[0].frame for p in heldout.values()} - {v.frame for v in seen}  # a frame never used before
    assert any(p[0].labels == "letters" for p in heldout.values())  # labels other than 1..5: label bias
    assert all(v.labels == "numbers" for v in seen)


# -- golden files ------------------------------------------------------------------------------

@pytest.mark.parametrize("form", list(GOLDEN.FORMS))
def test_golden_prompt_file_matches_the_renderer_byte_for_byte(form):
    path, want = GOLDEN.golden_path(form), GOLDEN.render_golden(form)
    got = path.read_bytes().decode("utf-8") if path.is_file() else ""
    if got != want:
        diff = "".join(list(difflib.unified_diff(got.splitlines(True), want.splitlines(True), str(path),
                                                 "rendered now"))[:60])
        pytest.fail(f"{path.name} differs from the rendered prompts; if the change is meant, run "
                    f"`python scripts/render_golden_prompts.py`, review and commit the diff:\n{diff}")
    assert got.count("\n===== end =====\n") == len(VARIANTS) * len(INST.items)


@pytest.mark.slow
def test_committed_chat_template_is_the_bundled_models(smollm2):
    _, tokenizer = smollm2
    assert GOLDEN.CHAT_TEMPLATE.read_bytes().decode("utf-8") == tokenizer.chat_template, (
        "the bundled model's chat template changed: run `python scripts/render_golden_prompts.py "
        "--update-template` and review the golden files' diff")
