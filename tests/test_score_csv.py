"""Scoring a CSV of human responses: hand-computed means and indices, and every kind of bad input."""

import json
import os

import pytest
from click.testing import CliRunner

from conftest import check_one_line_error
from cultbench.cli import main
from cultbench.errors import CultbenchError
from cultbench.instruments import load_instrument
from cultbench.scoring.responses import read_responses, score_responses

ITEMS = [f"q{i:02d}" for i in range(1, 25)]
DIMS = ["pdi", "idv", "mas", "uai", "lto", "ivr"]


def row(rid, country, **items):
    """One CSV line: id, country, then q01..q24; 3 unless given, "" for a blank cell."""
    cells = {q: "3" for q in ITEMS}
    cells.update({k: str(v) for k, v in items.items()})
    return ",".join([str(rid), country, *(cells[q] for q in ITEMS)])


HEADER = ",".join(["id", "country", *ITEMS])

# Group A (rows 2-3):  m07 = (5 + 4)/2 = 4.5   m02 = (1 + 2)/2 = 1.5
#                      m20 = 4 (row 3 blank, count 1)   m23 = (2 + 2)/2 = 2
#   PDI = 35(4.5 - 1.5) + 25(4 - 2) + 50 = 105 + 50 + 50 = 205; the other indices 50
# Group B (rows 4-6):  q07 blank everywhere -> m07 undefined (count 0) -> PDI None
#                      m05 = (5 + 4)/2 = 4.5 (row 6 blank)   m03 = (1 + 2 + 3)/3 = 2
#                      m08 = (4 + 2)/2 = 3 (row 6 blank)     m10 = (2 + 2 + 5)/3 = 3
#   MAS = 35(4.5 - 2) + 35(3 - 3) + 50 = 87.5 + 50 = 137.5; IDV, UAI, LTO, IVR 50
# All five together:   m07 = (5 + 4)/2 = 4.5 (B blank)   m02 = (1 + 2 + 3 + 3 + 3)/5 = 2.4
#                      m20 = (4 + 3 + 3 + 3)/4 = 3.25    m23 = (2 + 2 + 3 + 3 + 3)/5 = 2.6
#   PDI = 35(4.5 - 2.4) + 25(3.25 - 2.6) + 50 = 73.5 + 16.25 + 50 = 139.75
#   m05 = (3 + 3 + 5 + 4)/4 = 3.75   m03 = (3 + 3 + 1 + 2 + 3)/5 = 2.4
#   m08 = (3 + 3 + 4 + 2)/4 = 3      m10 = (3 + 3 + 2 + 2 + 5)/5 = 3
#   MAS = 35(3.75 - 2.4) + 35(3 - 3) + 50 = 47.25 + 50 = 97.25
GOOD = "\n".join([
    HEADER,
    row(1, "A", q07=5, q02=1, q20=4, q23=2),
    row(2, "A", q07=4, q02=2, q20="", q23=2),
    row(3, "B", q07="", q05=5, q03=1, q08=4, q10=2),
    row(4, "B", q07="", q05=4, q03=2, q08=2, q10=2),
    row(5, "B", q07="", q05="", q03=3, q08="", q10=5),
]) + "\n"


@pytest.fixture
def good_csv(tmp_path):
    path = tmp_path / "responses.csv"
    path.write_text(GOOD, encoding="utf-8")
    return path


def run(args):
    return CliRunner().invoke(main, args)


def test_read_responses_groups(good_csv):
    data = read_responses(good_csv, "vsm2013", group_by="country")
    assert list(data.groups) == ["A", "B"]
    assert data.groups["A"].shape == (2, 24)
    assert data.groups["B"].shape == (3, 24)


def test_score_two_groups_by_hand(good_csv):
    result = score_responses(read_responses(good_csv, load_instrument("vsm2013"), group_by="country"))
    assert result["instrument"] == "vsm2013" and result["group_by"] == "country"
    assert result["constants"] == {d: 50.0 for d in DIMS}
    a, b = result["groups"]["A"], result["groups"]["B"]
    assert a["n"] == 2 and b["n"] == 3
    assert a["items"]["q07"] == {"mean": 4.5, "count": 2}
    assert a["items"]["q02"] == {"mean": 1.5, "count": 2}
    assert a["items"]["q20"] == {"mean": 4.0, "count": 1}
    assert a["items"]["q23"] == {"mean": 2.0, "count": 2}
    assert a["indices"] == pytest.approx({"pdi": 205, "idv": 50, "mas": 50, "uai": 50, "lto": 50, "ivr": 50})
    assert b["items"]["q07"] == {"mean": None, "count": 0}
    assert b["items"]["q05"] == {"mean": 4.5, "count": 2}
    assert b["items"]["q03"] == {"mean": 2.0, "count": 3}
    assert b["items"]["q08"] == {"mean": 3.0, "count": 2}
    assert b["items"]["q10"] == {"mean": 3.0, "count": 3}
    assert b["indices"]["pdi"] is None
    assert b["indices"] == pytest.approx({"pdi": None, "idv": 50, "mas": 137.5, "uai": 50, "lto": 50, "ivr": 50})


def test_score_without_groups_by_hand(good_csv):
    result = score_responses(read_responses(good_csv, "vsm2013"))
    assert list(result["groups"]) == ["all"]
    everyone = result["groups"]["all"]
    assert everyone["n"] == 5
    assert everyone["items"]["q02"]["mean"] == pytest.approx(2.4)
    assert everyone["items"]["q20"] == {"mean": pytest.approx(3.25), "count": 4}
    assert everyone["indices"]["pdi"] == pytest.approx(139.75)
    assert everyone["indices"]["mas"] == pytest.approx(97.25)


def test_cli_score_with_constants(good_csv):
    # MAS of B with C(mas) = 0: 87.5; PDI of A with C(pdi) = 10: 165
    result = run(["score", "--instrument", "vsm2013", str(good_csv), "--group-by", "country",
                  "--constant", "mas=0", "--constant", "pdi=10", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["constants"] == {"pdi": 10.0, "idv": 50.0, "mas": 0.0, "uai": 50.0, "lto": 50.0, "ivr": 50.0}
    assert data["groups"]["A"]["indices"]["pdi"] == pytest.approx(165)
    assert data["groups"]["A"]["indices"]["mas"] == pytest.approx(0)
    assert data["groups"]["B"]["indices"]["mas"] == pytest.approx(87.5)
    assert data["groups"]["B"]["indices"]["pdi"] is None


def test_cli_score_output_file(good_csv, tmp_path):
    out = tmp_path / "scores.json"
    out.write_text("old", encoding="utf-8")
    result = run(["score", str(good_csv), "--group-by", "country", "--output", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["groups"]["A"]["indices"]["pdi"] == pytest.approx(205)
    # The terminal gets the summary: one row of indices per group, "–" where an index has no answer.
    a_row = next(line for line in result.stdout.splitlines() if line.startswith("A (n="))
    assert a_row.split()[2] == "205.0"
    assert "– : an index item has no answer in B" in result.stdout
    assert sorted(os.listdir(tmp_path)) == ["responses.csv", "scores.json"]  # no temp file left behind


def test_cli_score_summary_puts_a_country_group_beside_its_published_scores(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(HEADER + "\n" + row(3, "US") + "\n" + row(3, "US") + "\n", encoding="utf-8")
    result = run(["score", str(path), "--group-by", "country"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    us = lines.index(next(line for line in lines if line.startswith("US (n=2)")))
    assert lines[us].split()[2:] == ["50.0"] * 6  # answering 3 everywhere scores C on every index
    assert lines[us + 1].split()[-6:] == ["40", "91", "62", "46", "26", "68"]
    assert "published U.S.A. (US, hofstede-2015)" in lines[us + 1]


def test_semicolon_separated_file_gets_a_delimiter_hint(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(HEADER.replace(",", ";") + "\n" + row(3, "A").replace(",", ";") + "\n", encoding="utf-8")
    result = run(["score", str(path)])
    assert result.exit_code == 2 and result.output.startswith("Error: ")
    assert "separated by ';'" in result.output and "commas" in result.output


def test_cli_score_output_folder_missing(good_csv, tmp_path):
    result = run(["score", str(good_csv), "--output", str(tmp_path / "nope" / "scores.json")])
    assert result.exit_code != 0
    assert "does not exist" in result.stderr and "Traceback" not in result.output


def test_cli_score_help_has_example():
    result = run(["score", "--help"])
    assert result.exit_code == 0
    assert "cultbench score --instrument vsm2013 responses.csv --group-by country" in result.output


def test_blank_rows_skipped_and_bom_accepted(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(("\ufeff" + HEADER + "\n" + row(1, "A") + "\n\n" + "," * 25 + "\n"
                      + row(2, "A", q07="4.0") + "\n").encode("utf-8"))
    result = score_responses(read_responses(path, "vsm2013", group_by="country"))
    assert result["groups"]["A"]["n"] == 2
    assert result["groups"]["A"]["items"]["q07"]["mean"] == 3.5  # "4.0" from a spreadsheet export is 4


# ----- bad inputs: exit != 0, one line naming the row and column, no traceback -----

def lines_with_bad(line, at_row=3):
    """GOOD's text with data row ``at_row`` (as numbered in the file) replaced by ``line``."""
    rows = GOOD.splitlines()
    rows[at_row - 1] = line
    return "\n".join(rows) + "\n"


CELL_ERRORS = [
    (row(2, "A", q05=6), "row 3, column 'q05'", "out of range"),
    (row(2, "A", q11=0), "row 3, column 'q11'", "out of range"),
    (row(2, "A", q24="abc"), "row 3, column 'q24'", "'abc' is not a valid answer"),
    (row(2, "A", q01="2.5"), "row 3, column 'q01'", "'2.5' is not a valid answer"),
    (row(2, "", q01="2"), "row 3, column 'country'", "group is blank"),
]


@pytest.mark.parametrize("line, where, what", CELL_ERRORS)
def test_bad_cell(tmp_path, line, where, what):
    path = tmp_path / "r.csv"
    path.write_text(lines_with_bad(line), encoding="utf-8")
    check_one_line_error(run(["score", str(path), "--group-by", "country"]), where, what)
    with pytest.raises(CultbenchError, match=where):
        read_responses(path, "vsm2013", group_by="country")


def test_bad_cell_later_row_numbered_as_in_file(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(lines_with_bad(row(5, "B", q17=7), at_row=6), encoding="utf-8")
    check_one_line_error(run(["score", str(path)]), "row 6, column 'q17'", "answer 7 is out of range")


def test_missing_item_columns_named(tmp_path):
    header = ",".join(["id", "country", *(q for q in ITEMS if q not in ("q03", "q17"))])
    path = tmp_path / "r.csv"
    path.write_text(header + "\n" + ",".join(["1", "A"] + ["3"] * 22) + "\n", encoding="utf-8")
    check_one_line_error(run(["score", str(path)]), "row 1", "missing item columns q03, q17")


def test_missing_group_column(good_csv):
    check_one_line_error(run(["score", str(good_csv), "--group-by", "contry"]),
                         "row 1", "no group column 'contry'", "Did you mean: country?")


def test_empty_file(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("", encoding="utf-8")
    check_one_line_error(run(["score", str(path)]), str(path), "the file is empty")


def test_header_without_data_rows(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(HEADER + "\n", encoding="utf-8")
    check_one_line_error(run(["score", str(path)]), str(path), "no data rows")


def test_file_not_found(tmp_path):
    check_one_line_error(run(["score", str(tmp_path / "missing.csv")]), "missing.csv", "no such file")


def test_not_utf8(tmp_path):
    path = tmp_path / "r.csv"
    text = GOOD.replace("\n1,A,", "\n1,Côte d'Ivoire,")
    path.write_bytes(text.encode("latin-1"))
    check_one_line_error(run(["score", str(path)]), "row 2, column 'country'", "not valid UTF-8")


def test_wrong_number_of_cells(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(lines_with_bad(row(2, "A") + ",extra"), encoding="utf-8")
    check_one_line_error(run(["score", str(path)]), "row 3", "27 cells, but the header has 26 columns")


def test_bad_constant_for_score(good_csv):
    check_one_line_error(run(["score", str(good_csv), "--constant", "mas:0"]), "expected DIM=NUMBER")
