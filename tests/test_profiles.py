"""Reference country profiles: lookup by any name or code, sources, estimates, the CLI listing."""

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cultbench import profiles
from cultbench.cli import main
from cultbench.errors import CultbenchError

PROFILES_DIR = Path(profiles.__file__).parent
SIX = ["pdi", "idv", "mas", "uai", "lto", "ivr"]


def matrix_rows():
    with (PROFILES_DIR / "hofstede-2015.tsv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def matrix_row(ctr):
    (row,) = [r for r in matrix_rows() if r["ctr"] == ctr]
    return row


# sha256 of the publisher's 6-D matrix file (hofstede-6d-2015.tsv, dated 2015-08-16; see
# sources.yaml), taken when the bundled copy was compared with it byte for byte.
REFERENCE_SHA256 = "247e02168fd3d158a6a03f46cdcaceef282d61d386e0d54268e2a14b999a30ea"


def test_matrix_is_an_exact_copy_of_the_reference_file():
    assert hashlib.sha256((PROFILES_DIR / "hofstede-2015.tsv").read_bytes()).hexdigest() == REFERENCE_SHA256


@pytest.mark.parametrize("name", ["US", "us", "usa", "USA", "United States", "united states of america",
                                  "U.S.A.", "America"])
def test_united_states_by_every_name(name):
    p = profiles.lookup(name)
    assert (p.code, p.iso2, p.iso3, p.name) == ("USA", "US", "USA", "U.S.A.")
    assert dict(p.scores) == {"pdi": 40, "idv": 91, "mas": 62, "uai": 46, "lto": 26, "ivr": 68}
    row = matrix_row("USA")
    assert dict(p.scores) == {d: float(row[d]) for d in SIX}
    assert p.source == "hofstede-2015" and p.estimated is False


@pytest.mark.parametrize("name", ["CN", "CHN", "China", "china", "CHI", "People's Republic of China"])
def test_china(name):
    p = profiles.lookup(name)
    assert p.code == "CHI" and p.iso2 == "CN" and p.iso3 == "CHN"
    assert p.vector(SIX).tolist() == [80, 20, 66, 30, 87, 24]


@pytest.mark.parametrize("name", ["IN", "IND", "India", "india"])
def test_india(name):
    p = profiles.lookup(name)
    assert p.name == "India" and p.iso2 == "IN"
    assert p.vector(SIX).tolist() == [77, 48, 56, 40, 51, 26]


@pytest.mark.parametrize("name, code", [("UK", "GBR"), ("United Kingdom", "GBR"), ("Great Britain", "GBR"),
                                        ("GB", "GBR"), ("South Korea", "KOR"), ("Korea", "KOR"),
                                        ("KR", "KOR"), ("Czech Republic", "CZE"), ("Slovakia", "SLK"),
                                        ("Viet Nam", "VIE"), ("Russian Federation", "RUS")])
def test_aliases(name, code):
    assert profiles.lookup(name, dimensions=["lto"]).code == code


def test_saudi_arabia_default_source_names_missing_dimensions_and_sources():
    for name in ["SA", "SAU", "Saudi Arabia"]:
        with pytest.raises(CultbenchError) as info:
            profiles.lookup(name)
        msg = str(info.value)
        assert "Saudi Arabia has no PDI, IDV, MAS, UAI in source hofstede-2015" in msg
        assert "hofstede-insights-2022-estimates" in msg and "hofstede-legacy-estimates" in msg
        assert "LTO" not in msg.split(";")[0] and "\n" not in msg


def test_saudi_arabia_2022_estimates():
    p = profiles.lookup("SA", source="hofstede-insights-2022-estimates")
    assert p.vector(SIX).tolist() == [72, 48, 43, 64, 27, 14]
    assert p.estimated is True and p.source == "hofstede-insights-2022-estimates"
    assert "estimated" in p.provenance
    d = p.to_dict()
    assert d["estimated"] is True and d["iso2"] == "SA" and d["scores"]["pdi"] == 72
    json.dumps(d)


def test_saudi_arabia_legacy_estimates_reuse_2015_lto_ivr():
    p = profiles.lookup("Saudi Arabia", source="hofstede-legacy-estimates")
    assert p.vector(SIX).tolist() == [95, 25, 60, 80, 36, 52]
    assert p.estimated is True
    row = matrix_row("SAU")
    assert p.scores["lto"] == float(row["lto"]) and p.scores["ivr"] == float(row["ivr"])


def test_saudi_arabia_restricted_dimensions_from_2015():
    p = profiles.lookup("sa", dimensions=["lto", "IVR"])
    assert p.source == "hofstede-2015" and p.estimated is False
    assert dict(p.scores) == {"lto": 36, "ivr": 52}
    assert p.vector(["ivr", "lto"]).tolist() == [52, 36]
    with pytest.raises(CultbenchError, match="no PDI"):
        p.vector(SIX)


def test_scores_above_100_are_kept():
    assert profiles.lookup("Malaysia").scores["pdi"] == 104
    assert profiles.lookup("Greece").scores["uai"] == 112
    assert profiles.lookup("Slovak Rep").scores["mas"] == 110


def test_unknown_country_suggests_close_names():
    with pytest.raises(CultbenchError, match="Did you mean: United States") as info:
        profiles.lookup("Untied States")
    assert "Untied States" in str(info.value)


def test_unknown_source_lists_sources():
    with pytest.raises(CultbenchError) as info:
        profiles.lookup("US", source="nope")
    assert all(s.id in str(info.value) for s in profiles.sources())


def test_unknown_dimension():
    with pytest.raises(CultbenchError, match="ivr"):
        profiles.lookup("US", dimensions=["ivx"])


def test_country_missing_from_a_source():
    with pytest.raises(CultbenchError, match="not in source hofstede-insights-2022-estimates"):
        profiles.lookup("US", source="hofstede-insights-2022-estimates")


def test_ambiguous_code_is_an_error_not_a_silent_pick():
    # SLV is Slovenia's matrix code and El Salvador's ISO alpha-3 code.
    with pytest.raises(CultbenchError, match="ambiguous.*El Salvador.*Slovenia"):
        profiles.lookup("SLV")
    assert profiles.lookup("SVN").name == "Slovenia"
    assert profiles.lookup("SV").name == "El Salvador"


def test_every_row_is_loaded_partial_rows_included():
    rows = matrix_rows()
    assert len(rows) == 110
    loaded = profiles.countries()
    assert len(loaded) == len(rows) == len(profiles.countries("hofstede-2015"))
    for row, p in zip(rows, loaded):
        assert p.code == row["ctr"] and p.name == row["country"]
        assert dict(p.scores) == {d: float(row[d]) for d in SIX if row[d].strip()}
    assert dict(profiles.lookup("Andorra", dimensions=["ivr"]).scores) == {"ivr": 65}


def test_country_table_covers_the_matrix():
    with (PROFILES_DIR / "countries.tsv").open(encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh, delimiter="\t"))
    assert [(r["ctr"], r["name"]) for r in table] == [(r["ctr"], r["country"]) for r in matrix_rows()]
    regions = {r["ctr"] for r in table if not r["iso2"]}
    assert {"AFE", "AFW", "ARA"} <= regions and "USA" not in regions
    assert all(len(r["iso2"]) == 2 and len(r["iso3"]) == 3 for r in table if r["iso2"])


def test_sources_metadata():
    ids = [s.id for s in profiles.sources()]
    assert ids == ["hofstede-2015", "hofstede-insights-2022-estimates", "hofstede-legacy-estimates"]
    by_id = {s.id: s for s in profiles.sources()}
    assert by_id["hofstede-2015"].estimated is False and by_id["hofstede-2015"].file == "hofstede-2015.tsv"
    assert "2015-08-16" in by_id["hofstede-2015"].provenance
    assert by_id["hofstede-insights-2022-estimates"].estimated is True
    assert by_id["hofstede-legacy-estimates"].estimated is True


def test_profile_is_immutable_and_vector_is_float():
    p = profiles.lookup("US")
    with pytest.raises(Exception):
        p.code = "X"
    with pytest.raises(TypeError):
        p.scores["pdi"] = 0
    v = p.vector()
    assert v.dtype == np.float64 and v.shape == (6,)


def test_cli_countries_lists_rows():
    result = CliRunner().invoke(main, ["countries"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 + 110 + 2  # header, the matrix, two Saudi Arabia estimates
    assert "PDI" in lines[0] and "source" in lines[0]
    assert any(line.startswith("USA") and " 91 " in line for line in lines)
    assert sum("(estimated)" in line for line in lines) == 2


def test_cli_countries_one_country_in_every_source_that_has_it():
    result = CliRunner().invoke(main, ["countries", "sa"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 + 3 and all(line.startswith("SAU") for line in lines[1:])
    us = CliRunner().invoke(main, ["countries", "US", "--source", "hofstede-2015", "--json"])
    assert [p["name"] for p in json.loads(us.output)] == ["U.S.A."]
    missing = CliRunner().invoke(main, ["countries", "US", "--source", "hofstede-insights-2022-estimates"])
    assert missing.exit_code == 2
    assert missing.output == ("Error: US has no scores in source hofstede-insights-2022-estimates; "
                              "see `cultbench countries US`\n")


def test_cli_countries_json_one_source():
    result = CliRunner().invoke(main, ["countries", "--source", "hofstede-insights-2022-estimates", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data) == 1 and data[0]["estimated"] is True and data[0]["scores"]["ivr"] == 14


def test_cli_countries_help_has_an_example():
    result = CliRunner().invoke(main, ["countries", "--help"])
    assert result.exit_code == 0 and "cultbench countries --source" in result.output


def test_cli_unknown_source_is_one_line_without_traceback():
    result = CliRunner().invoke(main, ["countries", "--source", "nope"])
    assert result.exit_code != 0
    output = result.output.strip()
    assert output.startswith("Error:") and len(output.splitlines()) == 1
    assert "Traceback" not in output and "hofstede-2015" in output
    assert not isinstance(result.exception, CultbenchError)  # handled, not propagated


def test_a_target_can_name_its_own_source():
    from cultbench.profiles import lookup

    sa = lookup("SA@hofstede-insights-2022-estimates")
    assert sa.source == "hofstede-insights-2022-estimates" and sa.estimated
    assert sa.scores["pdi"] == 72 and sa.scores["ivr"] == 14
    assert lookup("US@hofstede-2015").scores["idv"] == 91
    with pytest.raises(CultbenchError, match="also given"):
        lookup("SA@hofstede-insights-2022-estimates", source="hofstede-2015")
    with pytest.raises(CultbenchError, match="unknown source"):
        lookup("US@nope")
