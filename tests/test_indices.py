"""VSM 2013 index formulas against answer vectors computed by hand, and the ``cultbench indices`` command.

Formulas (VSM 2013 Manual), with C = 50 by default:
  PDI = 35(m07 - m02) + 25(m20 - m23) + C
  IDV = 35(m04 - m01) + 35(m09 - m06) + C
  MAS = 35(m05 - m03) + 35(m08 - m10) + C
  UAI = 40(m18 - m15) + 25(m21 - m24) + C
  LTO = 40(m13 - m14) + 25(m19 - m22) + C
  IVR = 35(m12 - m11) + 40(m17 - m16) + C
"""

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import check_one_line_error
from cultbench.cli import main
from cultbench.constants import parse_constants
from cultbench.errors import CultbenchError
from cultbench.instruments import load_instrument

DIMS = ["pdi", "idv", "mas", "uai", "lto", "ivr"]


@pytest.fixture(scope="module")
def vsm():
    return load_instrument("vsm2013")


def answers(**items):
    """A 24-answer vector, 3 everywhere except the items given (q07=5 ...)."""
    out = [3.0] * 24
    for key, value in items.items():
        out[int(key[1:]) - 1] = float(value)
    return out


def as_csv(vector):
    return ",".join(f"{v:g}" for v in vector)


def test_items_and_dimensions(vsm):
    assert vsm.item_ids == [f"q{i:02d}" for i in range(1, 25)]
    assert vsm.dimension_ids == DIMS
    assert vsm.options == (1, 2, 3, 4, 5)
    assert vsm.constants() == {d: 50.0 for d in DIMS}


def test_neutral_respondent_scores_c(vsm):
    # every m = 3: every difference is 0, so every index is C = 50
    assert vsm.indices_dict(answers()) == {d: 50.0 for d in DIMS}


@pytest.mark.parametrize("items, dim, expected", [
    # PDI = 35(5 - 1) + 25(4 - 2) + 50 = 140 + 50 + 50 = 240
    (dict(q07=5, q02=1, q20=4, q23=2), "pdi", 240.0),
    # item 20 runs the other way (1 = never afraid ... 5 = always afraid): more fear, more power distance
    # PDI = 35(3 - 3) + 25(5 - 3) + 50 = 100
    (dict(q20=5), "pdi", 100.0),
    # PDI = 35(3 - 3) + 25(1 - 3) + 50 = -50 + 50 = 0
    (dict(q20=1), "pdi", 0.0),
    # IDV = 35(4 - 2) + 35(5 - 1) + 50 = 70 + 140 + 50 = 260
    (dict(q04=4, q01=2, q09=5, q06=1), "idv", 260.0),
    # IDV = 35(3.5 - 2.5) + 35(2 - 4) + 50 = 35 - 70 + 50 = 15
    (dict(q04=3.5, q01=2.5, q09=2, q06=4), "idv", 15.0),
    # MAS = 35(4 - 2) + 35(4 - 2) + 50 = 70 + 70 + 50 = 190   (with 25 for the 2nd term it would be 170)
    (dict(q05=4, q03=2, q08=4, q10=2), "mas", 190.0),
    # MAS second term alone: 35(5 - 1) + 50 = 190              (with 25 it would be 150)
    (dict(q08=5, q10=1), "mas", 190.0),
    # UAI = 40(4 - 2) + 25(5 - 1) + 50 = 80 + 100 + 50 = 230
    (dict(q18=4, q15=2, q21=5, q24=1), "uai", 230.0),
    # UAI = 40(2 - 4) + 25(3 - 3) + 50 = -80 + 50 = -30
    (dict(q18=2, q15=4), "uai", -30.0),
    # LTO = 40(1 - 3) + 25(4 - 2) + 50 = -80 + 50 + 50 = 20
    (dict(q13=1, q14=3, q19=4, q22=2), "lto", 20.0),
    # LTO = 40(2.25 - 3) + 25(3 - 1.5) + 50 = -30 + 37.5 + 50 = 57.5
    (dict(q13=2.25, q19=3, q22=1.5), "lto", 57.5),
    # IVR = 35(5 - 1) + 40(2 - 4) + 50 = 140 - 80 + 50 = 110
    (dict(q12=5, q11=1, q17=2, q16=4), "ivr", 110.0),
    # IVR = 35(3 - 3) + 40(4.5 - 1.5) + 50 = 120 + 50 = 170
    (dict(q17=4.5, q16=1.5), "ivr", 170.0),
])
def test_one_dimension_by_hand(vsm, items, dim, expected):
    got = vsm.indices_dict(answers(**items))
    assert got[dim] == pytest.approx(expected)
    # each item belongs to one dimension only: the others stay at C
    assert all(got[d] == pytest.approx(50.0) for d in DIMS if d != dim)


def test_all_six_dimensions_at_once(vsm):
    # the items of the six dimensions are disjoint, so the vectors above combine into one
    vector = answers(q07=5, q02=1, q20=4, q23=2,          # PDI 240
                     q04=4, q01=2, q09=5, q06=1,          # IDV 260
                     q05=4, q03=2, q08=4, q10=2,          # MAS 190
                     q18=4, q15=2, q21=5, q24=1,          # UAI 230
                     q13=1, q14=3, q19=4, q22=2,          # LTO 20
                     q12=5, q11=1, q17=2, q16=4)          # IVR 110
    expected = {"pdi": 240, "idv": 260, "mas": 190, "uai": 230, "lto": 20, "ivr": 110}
    assert vsm.indices_dict(vector) == pytest.approx(expected)
    # a batch [2, 24] gives one row of indices per answer vector
    batch = vsm.indices(np.array([vector, answers()]))
    assert batch.shape == (2, 6)
    np.testing.assert_allclose(batch[0], [240, 260, 190, 230, 20, 110])
    np.testing.assert_allclose(batch[1], [50] * 6)


def test_mas_uses_35_for_both_terms(vsm):
    mas = {d.id: d for d in vsm.dimensions}["mas"]
    assert [t[0] for t in mas.terms] == [35.0, 35.0]


def test_constants_shift_only_their_dimension(vsm):
    # neutral respondent with C(pdi) = 0: PDI = 0, the rest stay at 50
    got = vsm.indices_dict(answers(), {"pdi": 0})
    assert got == {"pdi": 0.0, "idv": 50.0, "mas": 50.0, "uai": 50.0, "lto": 50.0, "ivr": 50.0}
    # PDI 240 with C = 50 -> 190 with C = 0; IDV 260 with C = 50 -> 220 with C = 10
    vector = answers(q07=5, q02=1, q20=4, q23=2, q04=4, q01=2, q09=5, q06=1)
    got = vsm.indices_dict(vector, {"pdi": 0, "IDV": 10})
    assert got == pytest.approx({"pdi": 190, "idv": 220, "mas": 50, "uai": 50, "lto": 50, "ivr": 50})


def test_unknown_constant_dimension(vsm):
    with pytest.raises(CultbenchError, match="unknown dimension 'pdx'.*Did you mean: pdi"):
        vsm.constants({"pdx": 1})


def test_missing_item_makes_only_its_indices_undefined(vsm):
    vector = answers(q07=np.nan)
    got = vsm.indices_dict(vector)
    assert math.isnan(got["pdi"])
    assert all(got[d] == 50.0 for d in DIMS if d != "pdi")


def test_parse_constants():
    assert parse_constants(["pdi=0", "IDV = 10.5,mas=-3"]) == {"pdi": 0.0, "idv": 10.5, "mas": -3.0}
    assert parse_constants([]) == {}
    for bad in (["pdi"], ["pdi="], ["=3"], ["pdi=x"], ["pdi=nan"], ["pdi=1", "pdi=2"]):
        with pytest.raises(CultbenchError, match="--constant"):
            parse_constants(bad)


# ----- the `cultbench indices` command -----

def run(args):
    return CliRunner().invoke(main, args)


def test_cli_indices_neutral():
    result = run(["indices", "--instrument", "vsm2013", "--answers", as_csv(answers())])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["instrument"] == "vsm2013"
    assert data["version"] == 1
    assert data["constants"] == {d: 50.0 for d in DIMS}
    assert data["answers"] == {f"q{i:02d}": 3.0 for i in range(1, 25)}
    assert data["indices"] == {d: 50.0 for d in DIMS}


def test_cli_indices_hand_computed_with_constants():
    # PDI = 35(5 - 1) + 25(4 - 2) + 0 = 190; IDV = 35(4 - 2) + 35(5 - 1) + 10 = 220
    # MAS = 35(3.5 - 3) + 35(3 - 3) + 50 = 67.5 (real-valued expected answers are allowed)
    vector = answers(q07=5, q02=1, q20=4, q23=2, q04=4, q01=2, q09=5, q06=1, q05=3.5)
    result = run(["indices", "--answers", as_csv(vector), "--constant", "pdi=0", "--constant", "idv=10"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["constants"] == {"pdi": 0.0, "idv": 10.0, "mas": 50.0, "uai": 50.0, "lto": 50.0, "ivr": 50.0}
    assert data["answers"]["q05"] == 3.5
    assert data["indices"] == pytest.approx({"pdi": 190, "idv": 220, "mas": 67.5, "uai": 50, "lto": 50, "ivr": 50})


def test_cli_indices_help_has_example():
    result = run(["indices", "--help"])
    assert result.exit_code == 0
    assert "cultbench indices --instrument vsm2013" in result.output
    assert "--constant" in result.output


NEUTRAL = as_csv(answers())


@pytest.mark.parametrize("args, message", [
    (["--answers", ",".join(["3"] * 23)], "needs 24 answers"),
    (["--answers", ",".join(["3"] * 25)], "needs 24 answers"),
    (["--answers", ""], "needs 24 answers"),
    (["--answers", "abc," + ",".join(["3"] * 23)], "q01 'abc' is not a number"),
    (["--answers", ",".join(["3"] * 23) + ",6"], "q24 '6' is outside the answer range 1..5"),
    (["--answers", "0.5," + ",".join(["3"] * 23)], "q01 '0.5' is outside"),
    (["--answers", "nan," + ",".join(["3"] * 23)], "q01 'nan' is outside"),
    (["--answers", NEUTRAL, "--constant", "pdi"], "expected DIM=NUMBER"),
    (["--answers", NEUTRAL, "--constant", "pdi=abc"], "'abc' is not a number"),
    (["--answers", NEUTRAL, "--constant", "pdx=0"], "unknown dimension 'pdx'"),
    (["--answers", NEUTRAL, "--instrument", "vsm2031"], "unknown instrument 'vsm2031'"),
])
def test_cli_indices_bad_input(args, message):
    result = run(["indices", *args])
    check_one_line_error(result, message)
    assert result.stdout == ""
