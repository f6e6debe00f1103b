"""Result records and the leaderboard, on records made here (no model): schema checks on write and
read, seed aggregation, rank agreement, rejected and duplicate entries, escaping of strangers'
strings, and the page in a real headless browser."""

import copy
import html
import json
import re
import statistics
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from conftest import check_one_line_error, load_page_checker
from cultbench.cli import main
from cultbench.errors import CultbenchError
from cultbench.evaluation.candidate import index_split, versus_target
from cultbench.instruments import load_instrument
from cultbench.publish.leaderboard import build, collect, mark_best
from aligners import available_aligners, get_aligner_class
from cultbench.columns import best_mark
from cultbench.publish.page import chart_colours, declared_colours, md_escape
from cultbench.scoring.quantization import weights_label
from cultbench.profiles import lookup, target_key
from cultbench.prompts import get_variants
from cultbench.runs.results import (SCHEMA_VERSION, build_record, check_record, combination_key, combination_key_of, entry_id,
                               entry_stem, read_record, write_record)

INST = load_instrument("vsm2013")
DIMS = INST.dimension_ids
TRAIN, HELDOUT = ["respondent-standard", "respondent-standard-reversed"], ["brief-reworded", "brief-reworded-reversed"]
EVIL = '</script><!-- <script>alert("x")</script><img src=x onerror=alert(1)> | *bold* & "q"'


CHECKER = load_page_checker()


def make_record(target="US", aligner="de", seed=0, heldout=None, train=None, model="org/model", curve=(30, 20),
                diagnostics=None):
    """A record as `cultbench run` writes it, from chosen indices (default: 50 everywhere) and, when
    given, one diagnostics report for every split and overall."""
    profile = lookup(target).to_dict()
    searching = seed is not None
    key = combination_key(model=model, model_dtype="float32", instrument={"name": "vsm2013", "version": 1},
                          constants=INST.constants(), target=profile, aligner=aligner,
                          hyperparameters={"popsize": 5} if searching else {}, seed=seed,
                          budget=10 if searching else None, search_dtype="bfloat16" if searching else None,
                          distance="l1", dimensions=DIMS, variants={"train": TRAIN, "heldout": HELDOUT})
    scores = {"train": train or dict.fromkeys(DIMS, 50.0), "heldout": heldout or dict.fromkeys(DIMS, 50.0)}
    evaluation = {"instrument": {"name": "vsm2013", "version": 1}, "constants": INST.constants(),
                  "precision": "float32", "splits": {}}
    for split, names in (("train", TRAIN), ("heldout", HELDOUT)):
        ind = scores[split]
        versus = versus_target(lookup(target), index_split(
            lookup(target), np.array([[ind[d] for d in DIMS]] * len(names)), get_variants(names), DIMS,
            np.full((len(names), len(INST.item_ids)), 0.4), ind, INST.constants()))
        evaluation["splits"][split] = {
            "variants": names, "indices": ind, "indices_per_variant": dict.fromkeys(names, ind),
            "expected_answers": dict.fromkeys(INST.item_ids, 3.0), "option_mass": 0.4,
            "option_mass_per_item": dict.fromkeys(INST.item_ids, 0.4),
            "targets": {target_key(profile): versus}}
        if diagnostics is not None:
            evaluation["splits"][split]["diagnostics"] = diagnostics
    if diagnostics is not None:
        evaluation["diagnostics"] = diagnostics
    history = [{"evaluations": 5 * (k + 1), "best": b, "mean": b + 1} for k, b in enumerate(curve)]
    alignment = SimpleNamespace(
        aligner=aligner, hyperparameters=key["hyperparameters"], evaluations=10 if searching else 0,
        fitness=evaluation["splits"]["train"]["targets"][target_key(profile)]["l1"], persona=None, soft_prompt=None,
        search={"precision": "bfloat16", "generations": 2, "stopped": "budget", "best_fitness": curve[-1]}
        if searching else None, history=history if searching else [])
    run = {"wall_time_s": 1.5, "device": "cpu", "libraries": {"cultbench": "0.1.0"}, "command": "cultbench run",
           "finished": f"2026-01-0{1 + (seed or 0)}T00:00:00+00:00"}
    record = build_record(key=key, alignment=alignment, evaluation=evaluation, model_info={
        "id": model, "kind": "hub", "revision": None, "file_sha256": None, "dtype": "float32", "parameters": 10},
        target=profile, run=run)
    return record, entry_stem(key, profile["iso2"])


def write_entries(folder: Path, records):
    folder.mkdir(parents=True, exist_ok=True)
    for record, stem in records:
        write_record(folder / f"{stem}.json", record)


def shifted(base: float, **over):
    return {d: over.get(d, base) for d in DIMS}


def test_records_are_checked_when_written_and_read(tmp_path):
    record, stem = make_record()
    path = write_record(tmp_path / f"{stem}.json", record)
    assert read_record(path) == record and record["id"] in stem
    bad = copy.deepcopy(record)
    del bad["metrics"]["heldout"]["l1"]
    with pytest.raises(CultbenchError, match=r"metrics.heldout: 'l1' is a required property"):
        write_record(tmp_path / "bad.json", bad)
    assert not (tmp_path / "bad.json").exists()
    bad = copy.deepcopy(record)
    bad["aligner"]["seed"] = 7  # changes the combination, not the id
    with pytest.raises(CultbenchError, match="does not match the entry's combination"):
        write_record(tmp_path / "bad.json", bad)
    (tmp_path / "nan.json").write_text(path.read_text().replace('"fitness": 0.0', '"fitness": NaN', 1)
                                       .replace('"l1": ', '"l1": NaN, "x": ', 1))
    with pytest.raises(CultbenchError, match="not valid JSON"):
        read_record(tmp_path / "nan.json")


def test_the_model_files_hash_is_part_of_the_id_and_earlier_ids_stay_valid():
    record, _ = make_record()
    record["model"]["file_sha256"] = "a" * 64
    without = entry_id(combination_key_of(record, model_files=False))
    keyed = entry_id(combination_key_of(record))
    assert combination_key_of(record)["model_sha256"] == "a" * 64 and keyed != without
    for ident in (keyed, without):  # written now, or before models were keyed by their files
        check_record(dict(record, id=ident))
    other = copy.deepcopy(record)
    other["model"]["file_sha256"] = "b" * 64
    assert entry_id(combination_key_of(other)) != keyed  # other weights at the same path: another combination
    with pytest.raises(CultbenchError, match="does not match the entry's combination"):
        check_record(dict(other, id=keyed))


def test_seeds_are_aggregated_and_rank_agreement_is_computed_across_targets(tmp_path):
    # Three targets; DE with three seeds per target, whose held-out IDV follows the targets' IDV
    # except for one swap in PDI; naive answers alike for every target.
    targets = ["US", "China", "Japan"]
    idv = {"US": [80, 84, 82], "China": [20, 24, 28], "Japan": [40, 50, 45]}
    pdi = {"US": 70, "China": 60, "Japan": 50}
    entries = [make_record(t, "de", s, heldout=shifted(50, idv=idv[t][s], pdi=pdi[t] + s)) for t in targets
               for s in range(3)]
    entries += [make_record(t, "naive", None) for t in targets]
    write_entries(tmp_path / "entries", entries)
    board, paths = build(tmp_path / "entries", tmp_path)
    assert [p.name for p in paths] == ["leaderboard.json", "LEADERBOARD.md", "index.html"]
    assert board["entries_used"] == 12 and len(board["rows"]) == 6
    row = next(r for r in board["rows"] if r["aligner"]["name"] == "de" and r["target"]["iso2"] == "CN")
    assert row["seeds"] == [0, 1, 2] and row["n"] == 3 and row["aligner_label"] == "de (budget 10)"
    assert row["indices"]["heldout"]["idv"] == {"mean": 24.0, "sd": 4.0, "min": 20.0, "max": 28.0, "n": 3}
    china = lookup("China").scores
    l1 = [sum(abs(v - china[d]) for d, v in shifted(50, idv=i, pdi=60 + s).items()) for s, i in enumerate(idv["China"])]
    assert row["l1"]["heldout"]["mean"] == pytest.approx(statistics.fmean(l1))
    assert row["l1"]["heldout"]["sd"] == pytest.approx(statistics.stdev(l1))
    assert row["convergence"][0] == {"seed": 0, "search_precision": "bfloat16", "curve": [[5, 30], [10, 20]]}
    naive = next(r for r in board["rows"] if r["aligner"]["name"] == "naive")
    assert naive["seeds"] == [] and naive["n"] == 1 and naive["l1"]["heldout"]["sd"] is None

    (de,) = [g for g in board["rank_agreement"] if g["aligner_label"].startswith("de")]
    assert de["n_targets"] == 3 and sorted(de["targets"]) == ["China", "Japan", "U.S.A."]
    model_idv = [statistics.fmean(idv[t]) for t in ("US", "China", "Japan")]
    target_idv = [lookup(t).scores["idv"] for t in ("US", "China", "Japan")]
    got = de["splits"]["heldout"]["idv"]
    assert got["kendall_tau"] == pytest.approx(stats.kendalltau(model_idv, target_idv).statistic)
    assert got["spearman_rho"] == pytest.approx(stats.spearmanr(model_idv, target_idv).statistic)
    assert got["n"] == 3 and got["kendall_tau"] == pytest.approx(1.0)
    model_pdi = [pdi[t] + 1 for t in ("US", "China", "Japan")]
    target_pdi = [lookup(t).scores["pdi"] for t in ("US", "China", "Japan")]
    pdi_tau = stats.kendalltau(model_pdi, target_pdi).statistic
    assert de["splits"]["heldout"]["pdi"]["kendall_tau"] == pytest.approx(pdi_tau)
    (plain,) = [g for g in board["rank_agreement"] if g["aligner_label"] == "naive"]
    assert plain["splits"]["heldout"]["idv"]["kendall_tau"] is None  # the same indices for every target

    md = (tmp_path / "LEADERBOARD.md").read_text()
    assert "## Rank agreement across targets" in md
    tau, rho = got["kendall_tau"], got["spearman_rho"]
    line = r"\| org/model \(float32\) \| de \(budget 10\) \| heldout \| 3 \| [^\n]*"
    assert re.search(line + re.escape(f"{tau:+.2f} / {rho:+.2f}"), md)
    page = (tmp_path / "index.html").read_text()
    assert page.count("<svg") == 6 and 'id="rank-agreement"' in page


def _row(target, mean, seeds=(), sd=None, per_variant=None):
    """A leaderboard row as mark_best reads it."""
    n = max(len(seeds), 1)
    return {"target": {"name": target, "source": "s"}, "seeds": list(seeds),
            "l1": {"heldout": {"mean": mean, "sd": sd, "n": n}},
            "heldout_per_variant": per_variant or {"a": mean, "b": mean}}


def test_the_star_needs_a_gap_beyond_the_seeds_and_wordings_noise():
    rows = [
        # one seed of a searching aligner: its noise is unknown, so the lowest row is not marked
        _row("A", 90.0, seeds=[0]), _row("A", 100.0),
        # two seeds 1 apart (se 0.5 each): a gap of 2 is within twice the combined error (1.41)...
        _row("B", 90.0, seeds=[0, 1], sd=0.5 * 2 ** 0.5), _row("B", 91.0, seeds=[0, 1], sd=0.5 * 2 ** 0.5),
        # ...and a gap of 10 is beyond it
        _row("C", 90.0, seeds=[0, 1], sd=0.5 * 2 ** 0.5), _row("C", 100.0, seeds=[0, 1], sd=0.5 * 2 ** 0.5),
        # seedless baselines: no seed noise, but wordings that disagree about the sign of the gap
        _row("D", 99.0, per_variant={"a": 90.0, "b": 108.0}), _row("D", 100.0, per_variant={"a": 100.0, "b": 100.0}),
        _row("E", 99.0, per_variant={"a": 98.9, "b": 99.1}), _row("E", 100.0, per_variant={"a": 100.0, "b": 100.0}),
    ]
    for row in rows:
        row["best"] = False
    mark_best(rows)
    marks = [(r["target"]["name"], r["l1"]["heldout"]["mean"], r["best"], r.get("best_note")) for r in rows]
    assert marks == [("A", 90.0, False, "one seed"), ("A", 100.0, False, None),
                     ("B", 90.0, False, "within noise"), ("B", 91.0, False, None),
                     ("C", 90.0, True, None), ("C", 100.0, False, None),
                     ("D", 99.0, False, "within noise"), ("D", 100.0, False, None),
                     ("E", 99.0, True, None), ("E", 100.0, False, None)]
    assert [best_mark(r) for r in rows[:3]] == [" (best; one seed: unmarked)", "", " (best, within noise)"]
    assert best_mark(rows[4]) == " ★"


def test_rows_of_one_aligner_with_other_settings_get_a_legend_and_wall_times_name_their_machine(tmp_path):
    first, stem = make_record("US", "de", 0)
    other, other_stem = make_record("US", "de", 0)
    other["aligner"]["hyperparameters"] = {"popsize": 7}
    other["id"] = entry_id(combination_key_of(other))
    other["run"].update(device="cuda:0", torch_threads=16)
    first["run"]["torch_threads"] = 2
    write_entries(tmp_path / "entries", [(first, stem), (other, other_stem + "x")])
    board, _ = build(tmp_path / "entries", tmp_path)
    labels = {r["aligner"]["hyperparameters"]["popsize"]: r for r in board["rows"]}
    assert labels[5]["aligner_label"] != labels[7]["aligner_label"]
    assert labels[5]["setup_note"] == "popsize=5" and labels[7]["setup_note"] == "popsize=7"
    md = (tmp_path / "LEADERBOARD.md").read_text()
    legend = next(line for line in md.splitlines() if line.startswith("Aligner settings that differ"))
    for row in labels.values():
        assert f"{md_escape(row['aligner_label'])}: {row['setup_note']}" in legend
    assert "| 2 (cpu, 2 threads) |" in md and "| 2 (cuda:0, 16 threads) |" in md
    page = (tmp_path / "index.html").read_text()  # the same legend as the aligner cells' tooltips
    for row in labels.values():
        assert re.search(f'data-col="aligner"[^>]*title="{row["setup_note"]}"[^>]*>{re.escape(row["aligner_label"])}<',
                         page)


def test_a_gguf_model_row_names_its_quantisation():
    assert weights_label({"id": "m", "dtype": "float32", "quantization": None}) == "float32"
    assert weights_label({"id": "m", "dtype": "float32", "quantization": {"format": "gguf", "file_type": "Q4_1"}}) \
        == "Q4_1 GGUF → float32"
    # a bundled model's record from before cultbench recorded the quantisation: the bundled file's
    assert weights_label({"id": "smollm2-135m-instruct", "kind": "bundled", "dtype": "float32"}) == "Q4_1 GGUF → float32"


def test_invalid_and_duplicate_entries_are_listed_and_left_out(tmp_path):
    folder = tmp_path / "entries"
    good, stem = make_record("US", "de", 0)
    write_entries(folder, [(good, stem)])
    (folder / "zz-copy.json").write_text((folder / f"{stem}.json").read_text())  # the same combination again
    (folder / "broken.json").write_text("{not json")
    missing = copy.deepcopy(good)
    del missing["target"]
    (folder / "missing.json").write_text(json.dumps(missing))
    newer = dict(good, schema_version=SCHEMA_VERSION + 1)
    (folder / "newer.json").write_text(json.dumps(newer))
    wrong = copy.deepcopy(good)
    wrong["splits"]["heldout"]["option_mass"] = 1.5
    (folder / "wrong.json").write_text(json.dumps(wrong))
    entries = collect(folder)
    assert list(entries.records) == [f"{stem}.json"]
    reasons = {p["file"]: p["reason"] for p in entries.rejected}
    assert reasons["broken.json"].startswith("not valid JSON")
    assert reasons["missing.json"] == "(top level): 'target' is a required property"
    assert f"schema_version {SCHEMA_VERSION + 1} is newer than this cultbench reads ({SCHEMA_VERSION})" in reasons["newer.json"]
    assert reasons["wrong.json"] == "splits.heldout.option_mass: 1.5 is greater than the maximum of 1"
    assert entries.duplicates == [{"file": "zz-copy.json", "duplicate_of": f"{stem}.json", "id": good["id"]}]

    result = CliRunner().invoke(main, ["leaderboard", "build", "--entries", str(folder), "--out", str(tmp_path),
                                       "--strict"])
    assert result.exit_code == 1
    assert "left out zz-copy.json: duplicate of" in result.stderr
    assert "left out broken.json: not valid JSON" in result.stderr
    page, md = (tmp_path / "index.html").read_text(), (tmp_path / "LEADERBOARD.md").read_text()
    for name in ("broken.json", "missing.json", "newer.json", "wrong.json", "zz-copy.json"):
        assert name in page and name in md
    checked = CliRunner().invoke(main, ["leaderboard", "check", str(folder / f"{stem}.json"),
                                        str(folder / "wrong.json")])
    assert checked.exit_code == 1 and checked.output.startswith("ok ") and "invalid " in checked.output
    missing = CliRunner().invoke(main, ["leaderboard", "build", "--entries", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and missing.output.startswith("Error: entries folder")


def test_build_shows_another_folder_of_entries_as_a_section_and_refuses_a_bad_one(tmp_path):
    """``--section TITLE=DIR[,STUDY]``: the section's rows in the JSON, the page and LEADERBOARD.md,
    below the main board, with its own labels, left-out entries and study link; --check sees a
    section's change; a bad --section is one Error: line, exit 2, nothing made."""
    write_entries(tmp_path / "main", [make_record("US", "de", 0), make_record("US", "naive", None)])
    write_entries(tmp_path / "testbed", [make_record(t, a, s, model="testbed/culture", heldout=shifted(40 + k))
                                         for k, (t, a, s) in enumerate([("Austria", "de", 0), ("Austria", "naive", None),
                                                                        ("India", "cmaes", 1)])])
    (tmp_path / "testbed" / "broken.json").write_text("{")
    (tmp_path / "study.md").write_text("# testbed\n")
    base = ["leaderboard", "build", "--entries", tmp_path / "main", "--out", tmp_path / "board"]
    spec = "Testbed study=" + str(tmp_path / "testbed") + "," + str(tmp_path / "study.md")
    result = CliRunner().invoke(main, [str(a) for a in base + ["--section", spec]])
    assert result.exit_code == 0, result.output
    assert "left out broken.json (section Testbed study): not valid JSON" in result.stderr
    assert "5 rows from 5 entries; 1 left out" in result.stderr
    board = json.loads((tmp_path / "board" / "leaderboard.json").read_text())
    (section,) = board["sections"]
    assert section["title"] == "Testbed study" and section["study"] == "../study.md" and section["entries_used"] == 3
    assert sorted(r["aligner_label"] for r in section["rows"]) == ["cmaes (budget 10)", "de (budget 10)", "naive"]
    assert [p["file"] for p in section["rejected"]] == ["broken.json"] and board["rejected"] == []
    md = (tmp_path / "board" / "LEADERBOARD.md").read_text()
    assert md.index("## All results") < md.index("## Testbed study") < md.index("### All results")
    assert "The study of these entries: [../study.md](../study.md)." in md and "testbed/culture" in md
    page = (tmp_path / "board" / "index.html").read_text()
    assert page.index('id="leaderboard"') < page.index('<h2 id="section-0">Testbed study</h2>') < page.index(
        'id="section-0-leaderboard"')
    assert page.count('data-row="') == (2 + 2) + (3 + 3)  # main: summary and table; the section: the same
    check = CliRunner().invoke(main, [str(a) for a in base + ["--section", spec, "--check"]])
    assert check.exit_code == 0, check.output
    write_entries(tmp_path / "testbed", [make_record("India", "naive", None, model="testbed/culture")])
    check = CliRunner().invoke(main, [str(a) for a in base + ["--section", spec, "--check"]])
    assert check.exit_code == 1 and "differs from the entries" in check.stderr
    # without --section, the board has no sections (what the committed pages are built without)
    plain = CliRunner().invoke(main, [str(a) for a in base[:-1] + [tmp_path / "plain"]])
    assert plain.exit_code == 0 and "sections" not in json.loads((tmp_path / "plain" / "leaderboard.json").read_text())
    for bad, fragment in (("Testbed", "write TITLE=ENTRIES_DIR"), ("=" + str(tmp_path / "testbed"), "write TITLE="),
                          ("T=" + str(tmp_path / "nope"), "the entries folder"),
                          ("T=" + str(tmp_path / "testbed") + "," + str(tmp_path / "none.md"), "the study document")):
        result = CliRunner().invoke(main, [str(a) for a in base[:-1] + [tmp_path / "bad", "--section", bad]])
        assert result.exit_code == 2 and not (tmp_path / "bad").exists()
        check_one_line_error(result, "--section", fragment)


def test_strings_from_entries_are_escaped(tmp_path):
    write_entries(tmp_path / "entries", [make_record("US", "de", 0, model=EVIL), make_record("US", "naive", None)])
    board, _ = build(tmp_path / "entries", tmp_path)
    page = (tmp_path / "index.html").read_text()
    assert "<script>alert" not in page and "<img" not in page and "<!--" not in page
    assert page.count("</script>") == 2 and page.count("<script") == 2  # the data block and the sorting script
    assert html.escape(EVIL) in page
    data = re.search(r'<script type="application/json" id="leaderboard-data">(.*?)</script>', page, re.S).group(1)
    assert json.loads(data) == json.loads(json.dumps(board))
    assert json.loads(data)["rows"][0]["model"]["id"] == EVIL
    md = (tmp_path / "LEADERBOARD.md").read_text()
    assert "<script>" not in md and "<img" not in md and "&lt;script&gt;" in md
    row = next(line for line in md.splitlines() if "| naive |" in line)
    lines = md.splitlines()
    header = next(line for line in reversed(lines[:lines.index(row)]) if line.startswith("| Model"))
    assert len(re.findall(r"(?<!\\)\|", row)) == len(re.findall(r"(?<!\\)\|", header))  # no extra cells


@pytest.mark.skipif(CHECKER.find_chromium() is None,
                    reason="chromium is not installed (apt-get install -y chromium chromium-driver)")
def test_page_in_headless_chromium(tmp_path):
    runs = [("US", "de", 0, EVIL), ("US", "de", 1, EVIL), ("China", "naive", None, EVIL),
            ("Japan", "de", 0, "org/model"), ("US", "naive", None, "org/model")]
    entries = [make_record(t, a, s, model=m, heldout=shifted(40 + 5 * k)) for k, (t, a, s, m) in enumerate(runs)]
    write_entries(tmp_path / "entries", entries)
    (tmp_path / "entries" / "broken.json").write_text('{"model": "<script>alert(1)</script>"')
    board, _ = build(tmp_path / "entries", tmp_path)
    assert len(board["rows"]) == 4
    assert CHECKER.check(tmp_path / "index.html", tmp_path / "leaderboard.json", CHECKER.find_chromium()) == []
    # The check fails a page whose script does not run (here: not the script the page's policy allows).
    page = (tmp_path / "index.html").read_text()
    (tmp_path / "broken.html").write_text(page.replace('"use strict";', '"use strict"; var x = 1;'))
    problems = CHECKER.check(tmp_path / "broken.html", tmp_path / "leaderboard.json", CHECKER.find_chromium())
    assert any("Content Security Policy" in p for p in problems)
    assert any("did not finish" in p for p in problems)
    # Another set of entries (a testbed study's, say) as a section of its own below the main board.
    section_runs = [("Austria", "de", 0), ("Austria", "de", 1), ("Austria", "naive", None), ("India", "de", 0),
                    ("India", "naive", None), ("China", "icl", None)]
    write_entries(tmp_path / "testbed", [make_record(t, a, s, model="testbed/culture", heldout=shifted(30 + 7 * k))
                                         for k, (t, a, s) in enumerate(section_runs)])
    (tmp_path / "testbed-study.md").write_text("# testbed study\n")
    (tmp_path / "with-section").mkdir()
    board, _ = build(tmp_path / "entries", tmp_path / "with-section",
                     sections=[(f"Testbed {EVIL}", tmp_path / "testbed", tmp_path / "testbed-study.md")])
    (section,) = board["sections"]
    assert len(section["rows"]) == 5 and section["study"] == "../testbed-study.md" and section["entries_used"] == 6
    assert {r["model"]["id"] for r in section["rows"]} == {"testbed/culture"}
    assert [r["aligner_label"] for r in board["rows"]] == [r["aligner_label"] for r in json.loads(
        (tmp_path / "leaderboard.json").read_text())["rows"]]  # the main board is the same with or without it
    page = (tmp_path / "with-section" / "index.html").read_text()
    assert f'<h2 id="section-0">Testbed {html.escape(EVIL)}</h2>' in page
    assert CHECKER.check(tmp_path / "with-section" / "index.html", tmp_path / "with-section" / "leaderboard.json",
                         CHECKER.find_chromium()) == []
    # the check fails a page whose section lost a row, or whose section has no heading
    head, table = page.split('id="section-0-leaderboard"')
    lost = re.sub(r'<tr data-row="0"[^>]*>.*?</tr>\n', "", table, count=1)
    (tmp_path / "with-section" / "lost.html").write_text(head + 'id="section-0-leaderboard"' + lost)
    problems = CHECKER.check(tmp_path / "with-section" / "lost.html", tmp_path / "with-section" / "leaderboard.json",
                             CHECKER.find_chromium())
    assert any("section-0-leaderboard shows 4 rows, leaderboard.json has 5" in p for p in problems)
    (tmp_path / "with-section" / "headless.html").write_text(page.replace('<h2 id="section-0">', '<h2 id="other">'))
    problems = CHECKER.check(tmp_path / "with-section" / "headless.html", tmp_path / "with-section" / "leaderboard.json",
                             CHECKER.find_chromium())
    assert any("section 0 has no heading" in p for p in problems)


def test_rows_are_compared_with_naive_and_the_page_leads_with_a_summary(tmp_path):
    sa = "SA@hofstede-insights-2022-estimates"
    entries = [make_record("US", "de", s, heldout=shifted(50, idv=60 + 10 * s)) for s in range(2)]
    entries += [make_record(sa, "de", s, heldout=shifted(50, pdi=70 - s)) for s in range(2)]
    entries += [make_record("US", "naive", None), make_record(sa, "naive", None)]
    write_entries(tmp_path / "entries", entries)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "study.md").write_text("# study\n")
    (tmp_path / "board").mkdir()
    board, _ = build(tmp_path / "entries", tmp_path / "board", study=tmp_path / "docs" / "study.md")
    assert board["study"] == "../docs/study.md"
    rows = {(r["target"]["iso2"], r["aligner"]["name"]): r for r in board["rows"]}
    for country in ("US", "SA"):
        de, naive = rows[(country, "de")], rows[(country, "naive")]
        for split in ("train", "heldout"):
            assert de["delta_vs_naive"][split] == pytest.approx(de["l1"][split]["mean"] - naive["l1"][split]["mean"])
        assert naive["delta_vs_naive"] == {"train": None, "heldout": None}
        lower, higher = sorted((de, naive), key=lambda r: r["l1"]["heldout"]["mean"])
        assert not higher["best"] and "best_note" not in higher  # only the lowest row may carry a mark
        assert lower["best"] != ("best_note" in lower)  # a ★, or the reason there is none
    assert rows[("SA", "de")]["target_short"] == "Saudi Arabia (est.)" and rows[("US", "de")]["target_short"] == "U.S.A."
    (summary,) = [e for e in board["summary"] if e["aligner"] == "de"]
    means = [rows[(c, "de")]["l1"]["heldout"]["mean"] for c in ("US", "SA")]
    assert summary["n_targets"] == 2 and summary["l1"]["heldout"]["mean"] == pytest.approx(statistics.fmean(means))
    assert summary["l1"]["heldout"]["ci_low"] <= summary["l1"]["heldout"]["mean"] <= summary["l1"]["heldout"]["ci_high"]
    md = (tmp_path / "board" / "LEADERBOARD.md").read_text()
    assert md.index("## Summary") < md.index("## All results") and "[../docs/study.md](../docs/study.md)" in md
    assert "Saudi Arabia (est.) = Saudi Arabia (hofstede-insights-2022-estimates, estimated)" in md
    summary_lines = [line for line in md[md.index("## Summary"):md.index("## All results")].splitlines()
                     if line.startswith("| ")]
    column = [c.strip() for c in summary_lines[0].strip("| ").split(" | ")].index("Interpretable entries")
    # No entry here has diagnostics: the summary says so ("–"), not "0/0".
    assert {line.strip("| ").split(" | ")[column].strip() for line in summary_lines[2:]} == {"–"}
    html = (tmp_path / "board" / "index.html").read_text()
    assert html.index('id="summary"') < html.index('id="leaderboard"') and 'id="filter-split"' in html
    assert 'title="Saudi Arabia (hofstede-insights-2022-estimates, estimated)">Saudi Arabia (est.)</td>' in html


def test_each_builtin_aligner_has_its_own_colour():
    declared = declared_colours()
    assert set(declared) == set(available_aligners())  # every built-in aligner declares one
    assert len(set(declared.values())) == len(declared)
    rows = [{"aligner_label": n, "aligner": {"name": n}} for n in declared]
    rows.append({"aligner_label": "de (budget 300)", "aligner": {"name": "de"}})
    colours = chart_colours(rows)
    assert {colours[n] for n in declared} == set(declared.values())
    assert len(set(colours.values())) == len(rows)  # a second setup of de gets a colour of its own


def _diagnostics(by_position: bool) -> dict:
    """The report of a model that answers by position (always the first shown option) or by content."""
    from cultbench.evaluation.diagnostics import diagnose

    n, k = len(INST.items), len(INST.options)
    orders = ["ascending", "descending"]
    probs = np.zeros((2, n, k))
    if by_position:
        probs[0, :, 0] = probs[1, :, -1] = 1.0
    else:
        probs[:] = np.random.default_rng(0).dirichlet(np.full(k, 0.5), size=n)
    expected = probs @ np.array(INST.options, dtype=float)
    return diagnose(probs, np.full((2, n), 0.9), expected, INST.indices(expected, INST.constants()), orders,
                    INST.options, DIMS)


def test_the_verdict_stands_beside_every_row(tmp_path):
    position, content = _diagnostics(by_position=True), _diagnostics(by_position=False)
    assert not position["interpretable"] and content["interpretable"]
    records = [make_record(aligner="naive", seed=None, diagnostics=position),
               make_record(seed=0, diagnostics=content), make_record(seed=1, diagnostics=position),
               make_record(target="CN", aligner="naive", seed=None, diagnostics=content),
               make_record(target="CN", seed=0)]  # made before the diagnostics existed
    write_entries(tmp_path / "entries", records)  # validated against the schema on write
    board, _ = build(tmp_path / "entries", tmp_path)
    shown = {(r["target"]["iso2"], r["aligner"]["name"]): r for r in board["rows"]}
    assert shown[("US", "naive")]["verdict"] == {"assessed": 1, "interpretable": 0, "unchecked": [],
                                                 "failed": sorted(position["failed"])}
    assert shown[("US", "de")]["verdict"]["interpretable"] == 1 and shown[("US", "de")]["verdict"]["assessed"] == 2
    assert shown[("CN", "de")]["verdict"]["assessed"] == 0
    lines = (tmp_path / "LEADERBOARD.md").read_text().splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("| Model") and "| Interpretable |" in line)
    column = [c.strip() for c in lines[start].strip("| ").split(" | ")].index("Interpretable")
    cells = {}
    for line in lines[start + 2:]:
        if not line.startswith("| "):
            break
        parts = [c.strip() for c in line.strip("| ").split(" | ")]
        cells[(parts[2], parts[1].split(" (")[0])] = parts[column]
    assert cells == {("U.S.A.", "naive"): "no", ("U.S.A.", "de"): "1/2", ("China", "naive"): "yes",
                     ("China", "de"): "–"}
    page = CHECKER.parse((tmp_path / "index.html").read_text())
    assert sorted(r["cells"]["interpretable"] for r in page.rows) == ["", "0.0", "0.5", "1.0"]


# (board folder, its study document, the link the page holds): the live leaderboard (wording version 4)
# and study v3's, archived with its entries.
# The live board's sections: the testbed study and its position control (docs/leaderboard.md).
TESTBED_SECTIONS = (("Study v4 on the testbed (planted cultures)", "leaderboard/testbed/entries", "docs/testbed-study.md"),
                    ("Testbed negative control: the position control", "leaderboard/testbed-position/entries",
                     "docs/testbed-study-position.md"))
COMMITTED_BOARDS = [("leaderboard", "docs/paper-small.md", "../docs/paper-small.md", TESTBED_SECTIONS),
                    ("leaderboard/archive/v3", "docs/archive/paper-small-v3.md",
                     "../../../docs/archive/paper-small-v3.md", ())]


@pytest.mark.parametrize("folder,study_doc,link,sections", COMMITTED_BOARDS)
def test_the_committed_leaderboard_is_built_from_the_committed_entries(tmp_path, folder, study_doc, link, sections):
    """leaderboard.json, LEADERBOARD.md and index.html are what `cultbench leaderboard build` makes
    of the folder's entries now (`build --check` says so without writing)."""
    root = Path(__file__).resolve().parents[1]
    board, changed = build(root / folder / "entries", root / folder, study=root / study_doc, check=True,
                           sections=[(title, root / d, root / doc) for title, d, doc in sections])
    assert board["study"] == link
    options = "".join(f' --section "{title}={d},{doc}"' for title, d, doc in sections)
    assert changed == [], (f"{folder}/ is stale: run `cultbench leaderboard build --entries {folder}/entries --out "
                           f"{folder} --study {study_doc}{options}`")


def test_the_archived_v3_rows_are_labelled_with_their_wording_version():
    """Study v3's entries are read unchanged (schema 2, wording version 3) and every row, on the page
    and in the Markdown, says which wording it was measured with and what its L1 was."""
    root = Path(__file__).resolve().parents[1]
    folder = root / "leaderboard" / "archive" / "v3"
    entries = collect(folder / "entries")
    assert len(entries.records) == 100 and not entries.rejected and not entries.duplicates
    assert {(r["schema_version"], r["variants"]["version"]) for r in entries.records.values()} == {(2, 3)}
    board = json.loads((folder / "leaderboard.json").read_text(encoding="utf-8"))
    assert {r["wording_version"] for r in board["rows"]} == {3}
    md = (folder / "LEADERBOARD.md").read_text(encoding="utf-8")
    table = md[md.index("## All results"):md.index("## Rank agreement")]
    rows = [line for line in table.splitlines() if line.startswith("| smollm2")]
    assert len(rows) == len(board["rows"]) and all(" | v3 | " in line for line in rows)
    assert "Rows of wording version 3 (Wording v3, archived entries): L1 was computed per rendering" in table
    assert "Rows of wording version 4" not in table
    page = CHECKER.parse((folder / "index.html").read_text(encoding="utf-8"))
    assert [r["cells"]["wording"] for r in page.rows] == ["3.0"] * len(board["rows"])  # data-v: the version


def test_prompt_tuning_is_ranked_like_any_aligner_and_compared_in_the_study(tmp_path):
    """Gradient prompt tuning (the white-box reference): its rows take their place by held-out L1,
    the summary compares it with the naive model, it keeps its own colour, and the study puts it
    last in the aligners' order and tests DE against it."""
    from cultbench.publish.study import study

    records = []
    for country, shift in (("US", 0), ("CN", 3), ("IN", 6)):
        records.append(make_record(country, "naive", None, heldout=shifted(60 + shift)))
        records += [make_record(country, "de", s, heldout=shifted(55 + shift + s)) for s in (0, 1)]
        records += [make_record(country, "prompt-tuning", s, heldout=shifted(52 + shift - s)) for s in (0, 1)]
    write_entries(tmp_path / "entries", records)
    board, _ = build(tmp_path / "entries", tmp_path)
    summary = board["summary"]
    labels = [e["aligner_label"] for e in summary]
    assert [e["aligner"] for e in summary] == ["prompt-tuning", "de", "naive"]  # by mean held-out L1
    (pt,) = [e for e in summary if e["aligner"] == "prompt-tuning"]
    rows = {(r["target"]["iso2"], r["aligner"]["name"]): r for r in board["rows"]}
    assert pt["n_targets"] == 3 and pt["delta_vs_naive"]["heldout"]["mean"] == pytest.approx(statistics.fmean(
        rows[(c, "prompt-tuning")]["l1"]["heldout"]["mean"] - rows[(c, "naive")]["l1"]["heldout"]["mean"]
        for c in ("US", "CN", "IN")))
    assert chart_colours(board["rows"])[labels[0]] == get_aligner_class("prompt-tuning").colour
    md = (tmp_path / "LEADERBOARD.md").read_text()
    assert f"| {labels[0]} | 3 |" in md[md.index("## Summary"):md.index("## All results")]
    (model,) = study(collect(tmp_path / "entries"))["models"]
    assert model["aligners"] == ["naive", "de (budget 10)", "prompt-tuning (budget 10)"]
    tests = {(t["a"], t["b"], t["split"]): t for t in model["tests"]}
    de_vs_pt = tests[("de (budget 10)", "prompt-tuning (budget 10)", "heldout")]
    assert de_vs_pt["family"] == "primary" and de_vs_pt["n_pairs"] == 3 and de_vs_pt["a_better_fraction"] == 0.0
