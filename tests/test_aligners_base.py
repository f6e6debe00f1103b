"""aligners/base.py: every registered aligner keeps the whole Aligner contract, with one
``check_budget`` signature; ``ConfiguredAligner`` gives each part its default; the registry
refuses a class that lacks a part."""

import inspect
import re

import pytest

from aligners import Aligner, ConfiguredAligner, available_aligners, make_aligner, register_aligner
from aligners.registry import CONTRACT
from cultbench.errors import CultbenchError
from cultbench.instruments import load_instrument
from aligner_standin import clean_registry  # noqa: F401  (a fixture used below)

ALIGNERS = sorted(available_aligners())


@pytest.mark.parametrize("name", ALIGNERS)
def test_every_aligner_keeps_the_whole_contract(name):
    aligner = make_aligner(name)
    assert isinstance(aligner, Aligner) and aligner.name == name
    assert isinstance(aligner.searches, bool) and isinstance(aligner.seeded, bool)
    assert isinstance(aligner.display_order, (int, float))
    assert aligner.colour is None or re.fullmatch(r"#[0-9a-fA-F]{6}", aligner.colour)
    signature = inspect.signature(aligner.check_budget)
    assert list(signature.parameters) == ["budget", "reduced_precision"]
    assert signature.parameters["reduced_precision"].default is False
    aligner.check_instrument(load_instrument("vsm2013"))  # every aligner aligns to the index instrument


@pytest.mark.parametrize("name", ALIGNERS)
def test_a_budget_is_checked_before_a_model_loads(name):
    aligner = make_aligner(name)
    if not aligner.searches:
        assert aligner.check_budget(None) is None  # a baseline spends no budget
        return
    with pytest.raises(CultbenchError):
        aligner.check_budget(1)  # less than any search's first step or generation
    assert aligner.check_budget(1000) <= 1000


def test_the_base_class_gives_every_part_but_align_its_default(clean_registry):
    plain = register_aligner("plain-for-test")(type("Plain", (ConfiguredAligner,), {}))()
    assert all(hasattr(plain, part) for part in CONTRACT)
    assert (plain.searches, plain.seeded, plain.colour) == (True, True, None)
    assert plain.display_order > max(make_aligner(n).display_order for n in ALIGNERS)  # after cultbench's own
    assert plain.check_budget(7) == 7 and plain.check_instrument(object()) is None
    with pytest.raises(TypeError, match=r"lacks check_budget, check_instrument"):
        register_aligner("partial-for-test")(type("Partial", (), {
            "config_class": None, "searches": True, "seeded": True, "display_order": 1.0, "colour": None,
            "align": lambda self, problem, budget=None: None}))
