"""Aligners through the real SurveyScorer on a tiny random Llama built here, and the CLI.

The tiny model and its tokenizer come from conftest.py.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import copy

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from aligners import ICL_TEMPLATE, Alignment, AlignmentProblem, SoftPromptSpace, make_aligner
from aligners.baselines import format_persona
from aligners.search_space import embedding_scale, initial_prompt
from aligners.checkpoint import CHECKPOINT_NAME, load_checkpoint
from cultbench.cli import main
from cultbench.errors import CultbenchError
from cultbench.instruments import load_instrument
from cultbench.scoring.models import load_model
from cultbench.profiles import lookup
from cultbench.prompts import get_variants
from cultbench.scoring.scorer import SurveyScorer
from aligner_standin import clean_registry  # noqa: F401  (a fixture used below)
from test_aligners_registry import plugin_on_path  # noqa: F401  (a fixture used below)

INST = load_instrument("vsm2013")
SMALL_DE = ["--param", "popsize=5", "--param", "n_virtual=2", "--param", "d=4"]


def test_de_end_to_end_through_the_survey_scorer(tiny, tmp_path):
    model, tokenizer = tiny
    scorer = SurveyScorer(model, tokenizer, INST, get_variants("train"))
    info = {"id": "tiny-llama", "revision": None, "file_sha256": None, "hidden_size": 32}
    problem = AlignmentProblem(scorer, lookup("US"), model_info=info)
    de = make_aligner("de", popsize=5, n_virtual=2, d=8)
    result = de.align(problem, budget=14, seed=0, run_dir=tmp_path)
    assert result.evaluations == 10 and len(result.history) == 2
    assert result.soft_prompt.shape == (2, 32) and result.problem["variants"] == [v.name for v in get_variants("train")]
    naive = make_aligner("naive").align(problem)
    assert result.fitness != naive.fitness and 0 < result.fitness < 600
    # The stored fitness is what a fresh scorer gives the saved prompt, in full precision.
    loaded = Alignment.from_pretrained(result.save_pretrained(tmp_path), model_info=info)
    again = loaded.score(SurveyScorer(model, tokenizer, INST, get_variants("train")))
    assert problem.fitness(again.indices)[0] == pytest.approx(result.fitness, abs=1e-9)
    assert loaded.indices == pytest.approx(dict(zip(INST.dimension_ids, again.mean_indices[0])), abs=1e-9)
    with pytest.raises(CultbenchError, match="hidden size 32, but model 'tiny-llama' has hidden size 64"):
        loaded.check_compatible(dict(info, hidden_size=64))
    # The same seed reproduces the run through the real model.
    assert de.align(problem, budget=14, seed=0) == result


def persona_space(model, tokenizer, country, **kw):
    return SoftPromptSpace.build(model, tokenizer, n_virtual=kw.pop("n_virtual", None), d=kw.pop("d", 16),
                                 init_text=format_persona(ICL_TEMPLATE, country), projection_seed=0,
                                 bounds=(-1.0, 1.0), **kw)


def test_p0_is_the_whole_persona_and_differs_between_targets(tiny):
    model, tokenizer = tiny
    spaces = {c: persona_space(model, tokenizer, lookup(c).name) for c in ("US", "DE")}
    for country, space in spaces.items():
        ids = tokenizer(format_persona(ICL_TEMPLATE, lookup(country).name), add_special_tokens=False)["input_ids"]
        assert space.n_virtual == len(ids) == space.description["n_virtual"]
        assert space.description["init_token_ids"] == ids
    assert spaces["US"].description["n_virtual"] != spaces["DE"].description["n_virtual"]
    us, de = spaces["US"].p0, spaces["DE"].p0
    n = min(len(us), len(de))
    assert not np.array_equal(us[:n], de[:n])  # the country enters the starting point
    # An explicit n_virtual still cycles or cuts the text.
    cut = persona_space(model, tokenizer, "U.S.A.", n_virtual=4)
    np.testing.assert_array_equal(cut.p0, us[:4])


def test_scoring_z0_is_scoring_the_persona_tokens_in_front_of_the_prompt(tiny):
    model, tokenizer = tiny
    variants = get_variants("train")
    scorer = SurveyScorer(model, tokenizer, INST, variants)
    persona = format_persona(ICL_TEMPLATE, "U.S.A.")
    space = persona_space(model, tokenizer, "U.S.A.")
    scored = scorer.score(soft_prompts=space.prompts(np.zeros(space.d)))
    persona_ids = tokenizer(persona, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        for v, variant in enumerate(variants):
            shown = np.array(variant.displayed_answers(INST.options), dtype=float)
            for i in range(len(INST.items)):
                ids, options = scorer.prompt_tokens(v, i, None)
                logits = model(input_ids=torch.tensor([persona_ids + list(ids)])).logits[0, -1].double()
                p = torch.softmax(logits, -1)[list(options)]
                expected = float((p / p.sum()).numpy() @ shown)
                assert scored.expected[0, v, i] == pytest.approx(expected, abs=1e-5)


class ScaledEmbedding(torch.nn.Embedding):
    """An embedding whose output is scaled by sqrt(hidden), as Gemma's is."""

    def forward(self, ids):
        return super().forward(ids) * self.embedding_dim ** 0.5


def test_p0_and_scale_come_from_the_embedding_module_output(tiny):
    model, tokenizer = tiny
    scaled_model = copy.deepcopy(model)
    plain = scaled_model.get_input_embeddings()
    scaled = ScaledEmbedding(plain.num_embeddings, plain.embedding_dim)
    scaled.load_state_dict(plain.state_dict())
    scaled_model.set_input_embeddings(scaled)
    space = persona_space(scaled_model, tokenizer, "U.S.A.")
    ids = space.description["init_token_ids"]
    factor = 32 ** 0.5
    torch.testing.assert_close(torch.from_numpy(space.p0), plain.weight.detach()[ids].double() * factor)
    p0, _ = initial_prompt(scaled_model, tokenizer, format_persona(ICL_TEMPLATE, "U.S.A."))
    torch.testing.assert_close(p0, scaled(torch.tensor(ids)))
    weight_std = float(plain.weight.detach().double().std())
    assert embedding_scale(model) == pytest.approx(weight_std, rel=1e-12)
    # (the scaled output is rounded to fp32 before the std is taken)
    assert embedding_scale(scaled_model) == pytest.approx(weight_std * factor, rel=1e-6)
    assert space.description["embedding_std"] == embedding_scale(scaled_model)
    # The scorer embeds text tokens through the same module, so z = 0 is still the persona text.
    scorer = SurveyScorer(scaled_model, tokenizer, INST, get_variants("train")[:1])
    persona_ids = tokenizer(format_persona(ICL_TEMPLATE, "U.S.A."), add_special_tokens=False)["input_ids"]
    ids0, options = scorer.prompt_tokens(0, 0, None)
    with torch.no_grad():
        logits = scaled_model(input_ids=torch.tensor([persona_ids + list(ids0)])).logits[0, -1].double()
    p = torch.softmax(logits, -1)[list(options)]
    shown = np.array(get_variants("train")[0].displayed_answers(INST.options), dtype=float)
    expected = scorer.score(soft_prompts=space.prompts(np.zeros(space.d))).expected[0, 0, 0]
    assert expected == pytest.approx(float((p / p.sum()).numpy() @ shown), abs=1e-5)


def run_cli(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_cli_align_resume_bf16_search_and_baseline(tiny_folder, tmp_path):
    out = tmp_path / "de-us"
    args = ["align", "--model", str(tiny_folder), "--target", "US", "--budget", "10", *SMALL_DE,
            "--output", str(out), "--no-progress"]
    first = run_cli(args)
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == str(out)
    info = load_model(str(tiny_folder)).info
    saved = Alignment.from_pretrained(out, model_info=info)
    assert saved.aligner == "de" and saved.evaluations == 10 and saved.model["id"] == str(tiny_folder)
    assert saved.target["name"] == "U.S.A." and saved.target["source"] == "hofstede-2015"
    # The summary puts the naive model's fitness on the same variants beside the alignment's.
    loaded = load_model(str(tiny_folder))
    exact = SurveyScorer(loaded.model, loaded.tokenizer, INST, get_variants("train"))
    naive = AlignmentProblem(exact, lookup("US")).fitness(exact.score().indices)[0]
    verdict = "better than" if saved.fitness < naive else "WORSE than"
    assert f"  de {saved.fitness:.1f}   naive model {naive:.1f}: {verdict} the naive model" in first.stderr
    assert "cultbench evaluate --target US --alignment " + str(out) in first.stderr
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2 and "already holds checkpoint.safetensors and alignment.json" in refused.output
    resumed = run_cli(args + ["--resume"])
    assert resumed.exit_code == 0 and Alignment.from_pretrained(out) == saved

    fast = run_cli(["align", "--model", str(tiny_folder), "--target", "China", "--aligner", "random",
                    "--budget", "10", *SMALL_DE, "--search-dtype", "bfloat16", "--constant", "pdi=0",
                    "--output", str(tmp_path / "bf16"), "--no-progress"])
    assert fast.exit_code == 0, fast.output
    bf16 = Alignment.from_pretrained(tmp_path / "bf16")
    assert bf16.search["precision"] == "bfloat16" and bf16.result["precision"] == "float32"
    # One generation of 5, then its 5 finalists re-scored in fp32: 10 evaluations in all.
    assert bf16.search["selection"]["rescored"] == 5 and bf16.evaluations == 10
    assert bf16.search["selection"]["winners_curse"] == pytest.approx(
        bf16.fitness - bf16.search["best_fitness"])
    # The summary says what the bf16 pick cost; an fp32 search has nothing to say.
    sel = bf16.search["selection"]
    rho = "–" if sel["spearman"] is None else f"{sel['spearman']:+.2f}"
    assert (f"Winner's curse {sel['winners_curse']:+.2f} l1 (the pick's float32 fitness minus its bfloat16 fitness); "
            f"Spearman rho between the finalists' bfloat16 and float32 fitness {rho}") in fast.stderr
    assert "Winner's curse" not in first.stderr
    assert bf16.constants["pdi"] == 0.0
    loaded = load_model(str(tiny_folder))
    exact = SurveyScorer(loaded.model, loaded.tokenizer, INST, get_variants("train"), constants={"pdi": 0})
    problem = AlignmentProblem(exact, lookup("China"))
    # (the finalists were scored as a batch of 5: fp32 kernels may round an ulp differently alone)
    assert problem.fitness(bf16.score(exact).indices)[0] == pytest.approx(bf16.fitness, abs=1e-4)

    # --dtype bfloat16 alone: the search and everything reported are bf16, and the record says so.
    low = run_cli(["align", "--model", str(tiny_folder), "--target", "China", "--aligner", "random",
                   "--budget", "5", *SMALL_DE, "--dtype", "bfloat16", "--output", str(tmp_path / "low"),
                   "--no-progress"])
    assert low.exit_code == 0, low.output
    low = Alignment.from_pretrained(tmp_path / "low")
    assert low.search["precision"] == low.result["precision"] == "bfloat16"
    assert low.search["selection"]["rescored"] == 0 and low.evaluations == 5

    icl = run_cli(["align", "--model", str(tiny_folder), "--target", "China", "--aligner", "icl",
                   "--output", str(tmp_path / "icl")])
    assert icl.exit_code == 0, icl.output
    record = json.loads((tmp_path / "icl" / "alignment.json").read_text())
    assert record["persona"].startswith("You are an average human being born in China and living in China")
    assert record["soft_prompt"] is None and record["evaluations"] == 0


@pytest.mark.parametrize("extra,message", [
    (["--param", "popsiz=5"], "unknown hyper-parameter 'popsiz' for aligner de; .*Did you mean: popsize"),
    (["--budget", "3", "--param", "popsize=5"], "budget 3 is smaller than one generation of de"),
    (["--target", "SA"], "Saudi Arabia has no PDI, IDV, MAS, UAI in source hofstede-2015"),
    (["--aligner", "cma"], "unknown aligner 'cma'"),
    (["--param", "n_virtual=0"], "n_virtual=0 is out of range"),
    (["--distance", "l3"], "unknown distance 'l3'"),
    (["--resume"], "nothing to resume"),
    (["--dtype", "bfloat16", "--search-dtype", "float32"],
     "--search-dtype float32 with --dtype bfloat16: --dtype is the precision of everything reported"),
    (["--budget", "9", "--param", "popsize=5", "--search-dtype", "bfloat16"],
     "plus the 5 finalists re-scored in full precision"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tiny_folder, tmp_path, extra, message):
    args = ["align", "--model", str(tiny_folder), "--target", "US", "--output", str(tmp_path / "run"),
            "--no-progress"]
    result = CliRunner().invoke(main, args + extra)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
    assert re.search(message, result.output), result.output
    assert not (tmp_path / "run" / CHECKPOINT_NAME).exists() or extra == ["--resume"]


def test_cli_align_selects_by_validation(tiny_folder, tmp_path):
    """--param select_by=validation: the search's finalists are scored on the validation wording
    (counted in the budget), the lowest there is returned, and the summary says so."""
    out = tmp_path / "random-us"
    result = run_cli(["align", "--model", str(tiny_folder), "--target", "US", "--aligner", "random", "--budget", "7",
                      *SMALL_DE, "--param", "finalists=2", "--param", "select_by=validation", "--output", str(out),
                      "--no-progress"])
    assert result.exit_code == 0, result.output
    saved = Alignment.from_pretrained(out)
    # One generation of 5, then its 2 best scored on the validation wording: 7 evaluations.
    assert saved.evaluations == 7 and saved.search["generations"] == 1
    selection, validation = saved.search["selection"], saved.search["validation"]
    on_validation = [f["validation"] for f in selection["finalists"]]
    assert len(on_validation) == 2 and selection["winner"] == int(np.argmin(on_validation))
    assert validation["select_by"] == "validation" and validation["fitness"] == min(on_validation)
    loaded = load_model(str(tiny_folder))
    scorer = SurveyScorer(loaded.model, loaded.tokenizer, INST, get_variants("validation"))
    problem = AlignmentProblem(scorer, lookup("US"))
    assert problem.fitness(saved.score(scorer).indices)[0] == pytest.approx(validation["fitness"], abs=1e-4)
    assert (f"Validation (person-standard, both orders): l1 {validation['fitness']:.1f}, "
            "the lowest of the 2 finalists there") in result.stderr


def test_cli_runs_a_third_party_aligner(plugin_on_path, tiny_folder, tmp_path):  # noqa: F811
    result = run_cli(["align", "--model", str(tiny_folder), "--target", "India", "--aligner", "hill",
                      "--budget", "10", *SMALL_DE, "--param", "step=0.5", "--output", str(tmp_path / "hill"),
                      "--no-progress"])
    assert result.exit_code == 0, result.output
    saved = Alignment.from_pretrained(tmp_path / "hill")
    assert saved.aligner == "hill" and saved.hyperparameters["step"] == 0.5 and saved.evaluations == 10


@pytest.mark.slow
def test_cli_sigterm_keeps_the_checkpoint_and_resume_matches(tiny_folder, tmp_path):
    args = ["align", "--model", str(tiny_folder), "--target", "US", "--budget", "400", *SMALL_DE,
            "--seed", "3", "--no-progress"]
    run = tmp_path / "interrupted"
    child = subprocess.Popen([sys.executable, "-c", "from cultbench.cli import main; main()", *args,
                              "--output", str(run)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 90
        while time.time() < deadline and child.poll() is None:
            if (run / CHECKPOINT_NAME).exists() and load_checkpoint(run / CHECKPOINT_NAME)[0]["generation"] >= 2:
                break
            time.sleep(0.05)
        assert child.poll() is None, child.communicate()
        os.kill(child.pid, signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert "with --resume to continue" in err and "Interrupted." in err
    assert not (run / "alignment.json").exists()
    done = load_checkpoint(run / CHECKPOINT_NAME)[0]["generation"]
    assert 2 <= done <= 8
    short = ["--budget", "40"]  # resume may change the budget; compare with a whole run of the same one
    assert run_cli(args + short + ["--output", str(run), "--resume"]).exit_code == 0
    assert run_cli(args + short + ["--output", str(tmp_path / "whole")]).exit_code == 0
    assert Alignment.from_pretrained(run) == Alignment.from_pretrained(tmp_path / "whole")
