"""The planted-culture testbed: build (small size), load through transformers, cultbench and the
stock lm_eval, and the check's specificity on the controls."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from transformers import AutoModelForCausalLM, AutoTokenizer

from cultbench.cli import main
from cultbench.errors import CultbenchError
from cultbench.harness import TASKS_PATH
from cultbench.instruments import load_instrument
from cultbench.scoring.models import load_model
from cultbench.prompts import PromptVariant, default_variant, get_variants
from cultbench.profiles import lookup
from cultbench.scoring.scorer import SurveyScorer
from cultbench.testbed.build import STUDY_TARGETS, BuildConfig, build_testbed
from cultbench.testbed.check import CONTROL_TOLERANCE, check_testbeds, report, run_aligners
from cultbench.testbed.wordings import (UNKNOWN_WORD, benchmark_variants, check_disjoint, drop_words,
                                       training_wordings)
from conftest import check_one_line_error

INST = load_instrument("vsm2013")
ROOT = Path(__file__).resolve().parents[1]
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def culture(tmp_path_factory):
    folder = tmp_path_factory.mktemp("testbed") / "culture"
    return folder, build_testbed(BuildConfig(kind="culture", size="small"), folder)


def test_the_study_targets_are_the_experiments_and_are_held_out(culture):
    text = (ROOT / "experiments" / "paper-small.yaml").read_text()
    codes = [line.split("-", 1)[1].split("#")[0].strip() for line in text.splitlines() if line.startswith("  - ")]
    complete = [lookup(c).name for c in codes if "@" not in c]
    assert sorted(complete) == sorted(STUDY_TARGETS) and len(codes) == 10
    _, record = culture
    assert set(STUDY_TARGETS) <= set(record["heldout_countries"])
    assert not set(record["trained_countries"]) & set(record["heldout_countries"])
    assert len(record["trained_countries"]) + len(record["heldout_countries"]) == 65


def test_the_folder_loads_everywhere_and_records_the_plant(culture):
    folder, record = culture
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "testbed.json"):
        assert (folder / name).is_file()
    saved = json.loads((folder / "testbed.json").read_text())
    assert saved["position_bias"] == 0.15 and saved["wording_noise"] == 0.1 and saved["kind"] == "culture"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert tokenizer.chat_template and model.config.model_type == "llama"
    vocab = tokenizer.get_vocab()
    # Held-out countries never appear by name: their names are not even in the vocabulary.
    for name in record["heldout_countries"]:
        assert name not in vocab, name
    assert all(word in vocab for name in record["trained_countries"] for word in name.split())
    loaded = load_model(str(folder))
    scored = SurveyScorer(loaded.model, loaded.tokenizer, INST, get_variants("heldout")).score(personas=[None])
    assert scored.option_mass.mean() > 0.9  # the options are single tokens and the model answers with them
    # The trained ground truth is in the record, and it is the instrument's.
    means = np.array(record["ground_truth"]["respondents"]["Japan"]["means"])
    assert INST.indices(means) == pytest.approx([54, 46, 95, 92, 88, 42], abs=1e-6)


def test_the_wording_pool_is_disjoint_from_the_benchmark_and_an_overlap_is_refused():
    pool = training_wordings(INST, 24, seed=0)
    assert len(pool) == 48 and {v.order for v in pool} == {"ascending", "descending"}
    bench = benchmark_variants(INST)
    check_disjoint(pool, bench)
    clash = PromptVariant(name="x", split="train", system=bench[0].system, template=pool[0].template,
                          scale_line=pool[0].scale_line)
    with pytest.raises(CultbenchError, match="shares"):
        check_disjoint([clash], bench)


def test_unknown_word_dropout_keeps_the_placeholders_and_the_word_is_unknown_to_the_testbed(culture):
    variant = training_wordings(INST, 1, seed=0)[0]
    dropped = drop_words(variant, np.random.default_rng(0), rate=1.0)
    # Every plain word of the wording is gone; placeholders, labels' formats and punctuation stay.
    assert UNKNOWN_WORD in dropped.system and UNKNOWN_WORD in dropped.template
    assert dropped.template.count("{") == variant.template.count("{") and dropped.scale_line == variant.scale_line
    assert drop_words(variant, np.random.default_rng(0), rate=0.0) == variant
    folder, record = culture
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert UNKNOWN_WORD not in tokenizer.get_vocab()
    assert tokenizer.convert_tokens_to_ids(tokenizer.tokenize(UNKNOWN_WORD)) == [tokenizer.unk_token_id]
    assert record["shape"]["dropout_share"] > 0


def test_builds_are_reproducible(tmp_path):
    a = build_testbed(BuildConfig(kind="culture", size="small", steps=3), tmp_path / "a")
    b = build_testbed(BuildConfig(kind="culture", size="small", steps=3), tmp_path / "b")
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert a["loss_every_100_steps"] == b["loss_every_100_steps"]


@pytest.mark.slow
def test_stock_lm_eval_loads_the_testbed_and_agrees_with_the_scorer(culture, tmp_path):
    folder, _ = culture
    lm_eval = Path(sys.executable).parent / "lm_eval"
    out = tmp_path / "lm"
    proc = subprocess.run([str(lm_eval), "--model", "hf", "--model_args", f"pretrained={folder},dtype=float32",
                           "--include_path", str(TASKS_PATH), "--tasks", "vsm2013_us", "--apply_chat_template",
                           "--batch_size", "24", "--device", "cpu", "--output_path", str(out)],
                          capture_output=True, text=True, env={**os.environ, **OFFLINE}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = out.rglob("results_*.json")
    row = json.loads(result.read_text())["results"]["vsm2013_us"]
    loaded = load_model(str(folder))
    ref = SurveyScorer(loaded.model, loaded.tokenizer, INST, [default_variant(INST)]).score(personas=[None])
    got = np.array([row[f"{d},none"] for d in INST.dimension_ids])
    assert np.abs(got - ref.indices[0, 0]).max() < 1e-3


@pytest.mark.slow
def test_the_check_finds_no_culture_in_the_controls(tmp_path):
    folders = []
    for kind in ("position", "constant"):
        folders.append(tmp_path / kind)
        build_testbed(BuildConfig(kind=kind, size="small"), folders[-1])
    checks, figures = check_testbeds(folders, budget=10)
    text = report(checks)
    for kind in ("position", "constant"):
        named = {c.name.split(": ", 1)[1]: c for c in checks if c.name.startswith(f"{kind} control")}
        assert named["interpretable"].passed is True and named["interpretable"].value is False, text
    # At the small size only the position control reaches the content-free L1 within 1; the small
    # constant control was 4.0 away under measurement v4 (300 steps), the default one 0.085
    # (docs/testbed/check.txt).
    named = {c.name.split(": ", 1)[1]: c for c in checks if c.name.startswith("position control")}
    gap = named["|held-out L1 - content-free L1|, max over targets"]
    assert gap.passed is True and gap.value <= CONTROL_TOLERANCE, text


def test_cli_build_refuses_bad_input(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    runner = CliRunner()
    check_one_line_error(runner.invoke(main, ["testbed", "build", "--out", str(tmp_path / "taken")]), "not empty")
    check_one_line_error(runner.invoke(main, ["testbed", "build", "--out", str(tmp_path / "n"), "--position-bias", "1.5"]),
                         "position bias")
    check_one_line_error(runner.invoke(main, ["testbed", "check", str(tmp_path / "taken")]), "not a testbed")


def training_l1(folder, targets, aligners, budget=1) -> dict:
    """{(target, aligner): balanced training L1} of one `cultbench run` sweep on the testbed (the
    budget is the searches'; naive and icl spend none)."""
    return {(r["target"]["name"], r["aligner"]["name"]): float(r["metrics"]["train"]["l1"])
            for r in run_aligners(folder, targets, aligners, budget=budget)}


@pytest.mark.slow
def test_aligners_run_end_to_end_on_a_heldout_country(culture):
    """cmaes, prompt tuning and icl through `cultbench run` on the small testbed with a small budget,
    on a held-out study target (the balanced training L1 of each against the naive model's).

    The small testbed learned the items but no country (docs/testbed.md), so nothing in it brings a
    held-out target closer but the answers themselves: prompt tuning, which follows the gradient of
    the training L1, must beat naive by more than a point (3.3 measured); cmaes, starting from the
    icl prompt, whose country is [UNK] to the testbed, found 0.05 in 60 evaluations, and is held to
    no worse than naive + 0.5 (it runs end to end; beating naive would be chance here). icl names
    the target, and a held-out name is [UNK]: it is run on the held-out target and recorded, not
    held to beating naive (no testbed of the small size knows any country)."""
    folder, record = culture
    target = "U.S.A."
    assert target in record["heldout_countries"]
    train = {aligner: l1 for (_, aligner), l1 in {**training_l1(folder, [target], ["naive", "icl"]),
                                                   **training_l1(folder, [target], ["cmaes", "prompt-tuning"], 60)}.items()}
    assert train["prompt-tuning"] < train["naive"] - 1, train
    assert train["cmaes"] < train["naive"] + 0.5, train
    assert abs(train["icl"] - train["naive"]) < 10, train  # a persona of an unknown country: a small change


COMMITTED = ROOT / "testbeds"  # the default size's builds, committed (docs/testbed.md, "The committed builds")


@pytest.mark.parametrize("kind", ["culture", "culture-p0", "position", "constant"])
def test_the_committed_builds_are_the_default_commands(kind):
    """Each committed testbed records the default size and options its command gives today, so the
    studies and the check read what `cultbench testbed build` makes (a rebuild takes ~10 min: not
    in CI; the bytes of a rebuild with the same thread count are equal, test_builds_are_reproducible)."""
    record = json.loads((COMMITTED / kind / "testbed.json").read_text())
    default = BuildConfig(kind=kind.split("-")[0], position_bias=0.0 if kind == "culture-p0" else 0.15)
    assert record["testbed"] == dataclasses.asdict(default)
    assert record["shape"] == dataclasses.asdict(default.shape)


@pytest.mark.slow
def test_aligners_reach_a_heldout_country_on_the_committed_culture_testbed():
    """On the default culture testbed, which answers its personas (docs/testbed/check.txt): a search
    (cmaes) and prompt tuning, budget 40, bring a held-out study target closer than naive on the
    balanced training L1, and icl does for a trained country. icl cannot for a held-out one: its
    persona names a country the testbed never saw ([UNK]), so it is held to naive's answers."""
    folder, heldout, trained = COMMITTED / "culture", "U.S.A.", "Germany"
    record = json.loads((folder / "testbed.json").read_text())
    assert heldout in record["heldout_countries"] and trained in record["trained_countries"]
    train = {**training_l1(folder, [heldout, trained], ["naive", "icl"]),
             **training_l1(folder, [heldout], ["cmaes", "prompt-tuning"], 40)}
    # Measured: naive 134.985, icl 133.174, cmaes 102.956, prompt tuning 10.153 (U.S.A.); naive
    # 106.407, icl 17.127 (Germany). The margins leave room for other machines' arithmetic.
    assert train[heldout, "cmaes"] < train[heldout, "naive"] - 10, train
    assert train[heldout, "prompt-tuning"] < train[heldout, "naive"] - 50, train
    assert abs(train[heldout, "icl"] - train[heldout, "naive"]) < 5, train
    assert train[trained, "icl"] < train[trained, "naive"] - 50, train
