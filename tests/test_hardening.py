"""Hostile and careless input: no code from data into generated files, tampered artifacts and
checkpoints refused, a full disk reported cleanly, and every bad input one `Error:` line with
exit status 2 (docs/reliability.md lists the cases)."""

import ast
import errno
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from aligners import Alignment
from cultbench.cli import main
from cultbench.errors import CultbenchError
from cultbench.profiles import lookup
from conftest import check_one_line_error

INJECTED_DTYPE = "float32); __import__('os').system('touch /tmp/cultbench-pwned'); (0"


def save_alignment(folder, *, model=None, soft=None, persona=None, **fields) -> Path:
    model = model or {"id": "HuggingFaceTB/SmolLM2-135M-Instruct", "revision": None, "file_sha256": None,
                      "hidden_size": 8, "dtype": "float32"}
    soft = torch.ones(2, 8) if soft is None and persona is None else soft
    Alignment(aligner="de" if soft is not None else "icl", hyperparameters={}, seed=0, model=model,
              problem={"target": lookup("US").to_dict()}, budget=10, evaluations=10, result={"fitness": 1.0},
              soft_prompt=soft, persona=persona, **fields).save_pretrained(folder)
    return Path(folder)


def edit_record(folder: Path, change) -> None:
    path = folder / "alignment.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def code_blocks(readme: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", readme, flags=re.S)


# -- 1. export-peft: no code from data into the README ------------------------------------------

def test_export_peft_refuses_the_injected_dtype_of_the_issue_and_writes_nothing(tmp_path):
    folder = save_alignment(tmp_path / "evil")
    edit_record(folder, lambda d: d["model"].update(dtype=INJECTED_DTYPE))
    result = invoke("export-peft", folder, tmp_path / "peft")
    check_one_line_error(result, "model dtype", "tampered")
    assert result.exit_code == 2 and not (tmp_path / "peft").exists()


@pytest.mark.parametrize("model_id", ["x'); __import__('os').system('id'); ('", "a b", "$(touch pwned)",
                                      "model\nimport os", "a,peft=/tmp/other"])
def test_export_peft_refuses_a_model_id_that_is_neither_a_hub_id_nor_a_path(tmp_path, model_id):
    folder = save_alignment(tmp_path / "evil", model={"id": model_id, "dtype": "float32", "hidden_size": 8})
    result = invoke("export-peft", folder, tmp_path / "peft")
    check_one_line_error(result, "neither a Hugging Face Hub id")
    assert result.exit_code == 2 and not (tmp_path / "peft").exists()


def test_export_peft_quotes_a_hostile_but_real_path_in_both_snippets(tmp_path):
    base = tmp_path / "it's $(touch pwned); `id` a,b"
    base.mkdir()
    folder = save_alignment(tmp_path / "ok")
    result = invoke("export-peft", folder, tmp_path / "peft", "--base-model", base)
    assert result.exit_code == 0, result.output
    readme = (tmp_path / "peft" / "README.md").read_text()
    python = ast.parse(code_blocks(readme, "python")[0])
    calls = [n for n in ast.walk(python) if isinstance(n, ast.Call)]
    assert calls[0].args[0].value == str(base)  # a string literal, whatever it holds
    assert not [n for n in ast.walk(python) if isinstance(n, ast.Name) and n.id == "__import__"]
    argv = shlex.split(code_blocks(readme, "bash")[0])
    assert argv[argv.index("--model_args") + 1].startswith(f"pretrained={base},dtype=float32,peft=")
    assert not (Path.cwd() / "pwned").exists()


# -- 3. a full disk while a new folder is written -----------------------------------------------

def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_in_a_new_folder_is_one_error_and_leaves_no_partial_folder(tmp_path, monkeypatch):
    from cultbench import atomic

    monkeypatch.setattr(atomic.os, "fsync", _disk_full)
    with pytest.raises(CultbenchError, match="No space left on device"):
        atomic.write_folder_atomic(tmp_path / "new", {"a.bin": b"x" * 100, "b.json": b"{}"})
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its temporary twin


def test_align_on_a_full_disk_ends_with_one_error_line(tiny_folder, tmp_path, monkeypatch):
    from cultbench import atomic

    monkeypatch.setattr(atomic.os, "fsync", _disk_full)
    result = invoke("align", "--model", tiny_folder, "--target", "US", "--aligner", "naive",
                    "--output", tmp_path / "naive-us", "--no-progress")
    check_one_line_error(result, "naive-us", "No space left on device")
    assert result.exit_code == 2 and list(tmp_path.iterdir()) == []


def test_a_new_folder_is_fsynced_before_it_is_renamed_into_place(tmp_path, monkeypatch):
    from cultbench import atomic

    events = []
    real_fsync, real_replace = atomic.os.fsync, atomic.os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    atomic.write_folder_atomic(tmp_path / "new", {"a.bin": b"a", "b.bin": b"b"})
    assert events.index("replace") >= 3 and events[:3] == ["fsync"] * 3  # two files and the folder first
    assert (tmp_path / "new" / "b.bin").read_bytes() == b"b"
