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


# -- 2. tampered or corrupt artifacts and checkpoints ---------------------------------------------

@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(soft_prompt="x"), "soft_prompt is \"x\"; expected mapping"),
    (lambda d: d.update(soft_prompt=[1, 2]), "soft_prompt is [1, 2]; expected mapping"),
    (lambda d: d["soft_prompt"].pop("shape"), "shape is missing"),
    (lambda d: d["soft_prompt"].update(shape=[2, "8"]), "shape is [2, \"8\"]"),
    (lambda d: d["soft_prompt"].update(shape=[16]), "is not [n_virtual, hidden]"),
    (lambda d: d["soft_prompt"].update(dtype="float16"), "prompt_embeddings are float32, the record says float16"),
    (lambda d: d.update(persona=123), "persona is 123; expected text or null"),
    (lambda d: d.update(history="abc"), "history is \"abc\""),
    (lambda d: d.update(evaluations=-3), "evaluations is -3"),
    (lambda d: d["model"].update(file_sha256=5), "file_sha256 is 5"),
    (lambda d: d.pop("result"), "result is missing"),
])
def test_a_tampered_alignment_record_is_refused_with_the_field_named(tmp_path, change, message):
    folder = save_alignment(tmp_path / "a")
    edit_record(folder, change)
    with pytest.raises(CultbenchError, match=re.escape(message)):
        Alignment.from_pretrained(folder)
    check_one_line_error(invoke("export-peft", folder, tmp_path / "peft"))


def test_a_truncated_tensor_file_without_a_hash_is_one_error(tmp_path):
    folder = save_alignment(tmp_path / "a")
    edit_record(folder, lambda d: d["soft_prompt"].pop("sha256"))
    blob = (folder / "soft_prompt.safetensors").read_bytes()
    (folder / "soft_prompt.safetensors").write_bytes(blob[: len(blob) // 2])
    result = invoke("export-peft", folder, tmp_path / "peft")
    check_one_line_error(result, "not a readable safetensors file")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_prompt_is_refused_before_any_model_loads(tmp_path, monkeypatch, bad):
    import cultbench.scoring.models

    soft = torch.ones(2, 8)
    soft[1, 3] = bad
    folder = save_alignment(tmp_path / "a", soft=soft)  # a consistent hash: only the values are wrong
    monkeypatch.setattr(cultbench.scoring.models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    result = invoke("evaluate", "--target", "US", "--alignment", folder)
    check_one_line_error(result, "non-finite", "refused before any evaluation")


def _tamper_checkpoint(path: Path, state_change=None, arrays_change=None) -> None:
    import safetensors
    import safetensors.numpy

    with safetensors.safe_open(str(path), framework="numpy") as fh:
        metadata, arrays = dict(fh.metadata()), {k: fh.get_tensor(k) for k in fh.keys()}
    key = "cultbench_search_state"
    if state_change is not None:
        state = json.loads(metadata[key])
        metadata[key] = json.dumps(state_change(state) or state)
    if arrays_change is not None:
        arrays_change(arrays)
    path.write_bytes(safetensors.numpy.save(arrays, metadata=metadata))


def _set(name, value):
    return lambda state: state.update({name: value})


@pytest.mark.parametrize("state_change, arrays_change, message", [
    (lambda s: [1, 2], None, "its state is list, not a mapping"),
    (_set("history", "abc"), None, "history is \"abc\""),
    (_set("sizes", "12"), None, "sizes is \"12\""),
    (_set("best_fitness", "low"), None, "best_fitness is \"low\""),
    (_set("format", None), None, "format is null"),
    (None, lambda a: a.update(fitness=a["fitness"][:-5]), "fitness has shape [79], expected [84]"),
    (None, lambda a: a.update(best_z=np.full(4, np.nan)), "best_z holds non-finite"),
    (None, lambda a: a.pop("best_indices"), "no best_indices array"),
    (_set("evaluations", 10 ** 6), None, "do not agree"),
])
def test_a_tampered_search_checkpoint_is_refused_with_the_field_named(tmp_path, state_change, arrays_change, message):
    from aligners import make_aligner
    from aligners.checkpoint import CHECKPOINT_NAME
    from aligner_standin import PARAMS, LinearScorer, synthetic_problem

    with pytest.raises(KeyboardInterrupt):
        make_aligner("de", **PARAMS).align(synthetic_problem(LinearScorer(interrupt_at=8)), budget=240, seed=5,
                                           run_dir=tmp_path)
    _tamper_checkpoint(tmp_path / CHECKPOINT_NAME, state_change, arrays_change)
    with pytest.raises(CultbenchError, match=re.escape(message)):
        make_aligner("de", **PARAMS).align(synthetic_problem(), budget=240, seed=5, run_dir=tmp_path, resume=True)


def test_a_truncated_checkpoint_is_one_error(tmp_path):
    from aligners import make_aligner
    from aligners.checkpoint import CHECKPOINT_NAME
    from aligner_standin import PARAMS, LinearScorer, synthetic_problem

    with pytest.raises(KeyboardInterrupt):
        make_aligner("de", **PARAMS).align(synthetic_problem(LinearScorer(interrupt_at=3)), budget=240,
                                           run_dir=tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CultbenchError, match="not a readable checkpoint"):
        make_aligner("de", **PARAMS).align(synthetic_problem(), budget=240, run_dir=tmp_path, resume=True)


@pytest.mark.parametrize("state_change, arrays_change, message", [
    (_set("step", "2"), None, "step is \"2\""),
    (_set("history", [1]), None, "history is [1]"),
    (None, lambda a: a.update(prompt=np.full_like(a["prompt"], np.nan)), "prompt holds non-finite"),
    (None, lambda a: a.update(best_prompt=a["best_prompt"][:1]), "best_prompt has shape [1, 32]"),
    (None, lambda a: a.update({"optimizer.exp_avg": a["optimizer.exp_avg"].T.copy()}), "optimizer.exp_avg has shape"),
])
def test_a_tampered_prompt_tuning_checkpoint_is_refused_before_any_step(tiny, tmp_path, monkeypatch, state_change,
                                                                        arrays_change, message):
    from aligners import make_aligner, prompt_tuning
    from aligners.checkpoint import CHECKPOINT_NAME
    from test_prompt_tuning import PARAMS, problem_of

    make_aligner("prompt-tuning", **PARAMS).align(problem_of(tiny), budget=6, run_dir=tmp_path)
    _tamper_checkpoint(tmp_path / CHECKPOINT_NAME, state_change, arrays_change)
    monkeypatch.setattr(prompt_tuning._TrainingRun, "train_step", lambda self: pytest.fail("a step ran"))
    with pytest.raises(CultbenchError, match=re.escape(message)):
        make_aligner("prompt-tuning", **PARAMS).align(problem_of(tiny), budget=12, run_dir=tmp_path, resume=True)


# -- 4. opinion data never silently misread ------------------------------------------------------

def opinion_rows(path: Path, rows) -> Path:
    """A JSONL file of GlobalOpinionQA rows (question, selections, options), values as given."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def row(question, shares=None, options=("Yes", "No")):
    shares = shares or {"Germany": [0.6, 0.4], "France": [0.3, 0.7]}
    return {"question": question, "options": str(list(options)),
            "selections": f"defaultdict(<class 'list'>, {shares!r})"}


def opinions(path, **cleaning):
    from cultbench.instruments import load_instrument

    return load_instrument("globalopinionqa", str(path), cleaning=tuple(cleaning.items()) or None)


def test_duplicate_questions_keep_the_first_row_by_default_and_are_counted(tmp_path):
    data = opinion_rows(tmp_path / "d.jsonl", [row("Is it?"), row("Other?"),
                                                row("Is  it?", {"Germany": [0.1, 0.9], "France": [0.5, 0.5]})])
    inst = opinions(data)
    assert [it.id for it in inst.items] == ["q0000", "q0001"]
    assert inst.reference["Germany"]["q0000"] == pytest.approx((0.6, 0.4))  # the first row's shares
    assert inst.cleaning["counts"]["rows_dropped_duplicate_question"] == 1
    assert inst.cleaning["policy"]["duplicate_question"] == "keep_first"
    dropped = opinions(data, duplicate_question="drop_all")
    assert [it.id for it in dropped.items] == ["q0001"]
    assert dropped.cleaning["counts"]["rows_dropped_duplicate_question"] == 2
    with pytest.raises(CultbenchError, match=r"rows 0 and 2 ask the same question 'Is it\?'"):
        opinions(data, duplicate_question="error")
    result = invoke("instruments", "globalopinionqa", "--data", data, "--cleaning", "duplicate_question=error")
    check_one_line_error(result, "duplicate_question=error")


def test_a_null_question_is_dropped_and_counted_not_read_as_nan(tmp_path):
    data = opinion_rows(tmp_path / "d.jsonl", [row(None), row("Real?"), row(12)])
    inst = opinions(data)
    assert [it.text for it in inst.items] == ["Real?"]
    assert inst.cleaning["counts"]["rows_dropped_no_question"] == 1
    assert inst.cleaning["counts"]["rows_dropped_question_not_text"] == 1
    parquet = tmp_path / "d.parquet"  # pandas reads a missing value as NaN
    import pandas as pd

    pd.DataFrame([row(float("nan")), row("Real?")]).to_parquet(parquet)
    inst = opinions(parquet)
    assert [it.text for it in inst.items] == ["Real?"] and inst.cleaning["counts"]["rows_dropped_no_question"] == 1


def test_shares_given_as_a_string_are_dropped_not_read_character_by_character(tmp_path):
    data = opinion_rows(tmp_path / "d.jsonl", [row("Q?", {"Germany": "01", "France": [0.3, 0.7]}),
                                                row("R?", {"Germany": [True, False], "France": [0.5, 0.5]})])
    inst = opinions(data)
    assert "Germany" not in inst.reference  # neither entry was read
    assert inst.reference["France"]["q0000"] == pytest.approx((0.3, 0.7))
    counts = inst.cleaning["counts"]
    assert counts["entries_dropped_shares_not_a_list"] == 1 and counts["entries_dropped_unparseable"] == 1


@pytest.mark.parametrize("option, message", [
    ("sum_tolerance=abc", "sum_tolerance='abc' is not a number"),
    ("min_options=x", "min_options='x' is not a whole number"),
    ("min_options=2.5", "min_options='2.5' is not a whole number"),
    ("sum_tolerance=nan", "sum_tolerance='nan' is not a number"),
    ("min_options=²", "min_options='²' is not a whole number"),
    ("duplicate_question=maybe", "choose keep_first, drop_all, error"),
])
def test_bad_cleaning_values_are_one_error_line(tmp_path, option, message):
    data = opinion_rows(tmp_path / "d.jsonl", [row("Q?")])
    check_one_line_error(invoke("instruments", "globalopinionqa", "--data", data, "--cleaning", option), message)
    assert opinions(data, sum_tolerance="0.1").cleaning["policy"]["sum_tolerance"] == 0.1  # numbers as text are read


def test_a_held_out_items_file_that_is_not_utf8_is_one_error_line(tmp_path):
    data = opinion_rows(tmp_path / "d.jsonl", [row("Q?")])
    held = tmp_path / "held.txt"
    held.write_bytes(b"q0000\n\xff\xfe\n")
    result = invoke("evaluate", "--instrument", "globalopinionqa", "--data", data, "--heldout-items", held,
                    "--target", "Germany")
    check_one_line_error(result, "held.txt", "is not UTF-8 text")


# -- 5. the remaining tracebacks: one `Error:` line each, exit status 2 ------------------------------

def test_a_400_digit_answer_in_score_is_out_of_range(tmp_path):
    from cultbench.instruments import load_instrument

    ids = load_instrument("vsm2013").item_ids
    csv = tmp_path / "r.csv"
    csv.write_text(",".join(["country", *ids]) + "\n" + ",".join(["US", "9" * 400] + ["3"] * 23) + "\n")
    result = invoke("score", csv)
    check_one_line_error(result, "is out of range", "99999999999999999999...")
    assert result.exit_code == 2


@pytest.mark.parametrize("args, message", [
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--device", "cpu:0"], "unknown device 'cpu:0'"),
    (["--max-batch-mb", "nan"], "'nan' is not a number above 0"),
    (["--max-batch-mb", "-5"], "'-5' is not a number above 0"),
    (["--max-batch-mb", "0"], "'0' is not a number above 0"),
    (["--max-batch-mb", "inf"], "'inf' is not a number above 0"),
])
def test_bad_device_and_memory_bound_are_one_error_line(tiny_folder, args, message):
    result = invoke("evaluate", "--model", tiny_folder, "--target", "US", "--splits", "train", *args)
    check_one_line_error(result, message)
    assert result.exit_code == 2


@pytest.mark.parametrize("line, message", [
    ("max_batch_mb: [1, 2]", "max_batch_mb takes one value, not a list"),
    ("dtype: {a: 1}", "dtype takes one value, not a dict"),
    ("seed: [[1]]", "seed holds [1]"),
    ("seed: {a: 1}", "seed holds {\"a\": 1}"),
    ("budget: 2020-01-01", "budget holds \"2020-01-01\""),
])
def test_a_config_value_of_the_wrong_shape_is_one_error_line(tmp_path, line, message):
    config = tmp_path / "c.yaml"
    config.write_text(f"target: US\naligner: naive\n{line}\n")
    result = invoke("run", "--config", config, "--output", tmp_path / "o", "--runs-dir", tmp_path / "r")
    check_one_line_error(result, message)
    assert result.exit_code == 2 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("text, message", [
    ("name: x\nitems: [a, b\n", "malformed instrument file"),  # not YAML
    ("name: x\nversion: 1\ntitle: t\noptions: [1, 2]\nscales: [1, 2]\nblocks: {}\nitems: []\ndimensions: []\n",
     "malformed instrument file (AttributeError"),  # YAML of the wrong shape
    ("name: x\nversion: 1\ntitle: t\noptions: [1]\nscales: {s: [a]}\nblocks: [1]\nitems: [{block: 0, id: q}]\n"
     "dimensions: []\n", "malformed instrument file"),
    ("kind: [index]\n", "unknown instrument kind"),
    ("kind: distribution\nformat: globalopinionqa\nname: x\nversion: 1\n", "dataset is None"),
])
def test_a_malformed_instrument_yaml_is_one_error_line(tmp_path, text, message):
    path = tmp_path / "inst.yaml"
    path.write_text(text)
    result = invoke("indices", "--instrument", path, "--answers", "3")
    check_one_line_error(result, message)
    assert result.exit_code == 2
    path.write_bytes(b"name: \xff\xfe\n")
    check_one_line_error(invoke("indices", "--instrument", path, "--answers", "3"), "malformed instrument file")


def test_a_model_folder_whose_weights_are_a_plain_pickle_is_one_error_line(tiny_folder, tmp_path):
    import pickle
    import shutil

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_folder, folder)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"model.embed_tokens.weight": [1.0]}))
    result = invoke("evaluate", "--model", folder, "--target", "US", "--splits", "train")
    check_one_line_error(result, "could not load model", "UnpicklingError", "never unpickles")
    assert result.exit_code == 2


def test_persona_123_in_an_artifact_is_one_error_line(tmp_path):
    folder = save_alignment(tmp_path / "a", persona="You are from the US.")
    edit_record(folder, lambda d: d.update(persona=123))
    result = invoke("evaluate", "--target", "US", "--alignment", folder)
    check_one_line_error(result, "persona is 123")
    assert result.exit_code == 2


def _entry_with_model_id(source: Path, folder: Path, model_id: str) -> None:
    from cultbench.runs.results import combination_key_of, entry_id

    record = json.loads(source.read_text())
    record["model"]["id"] = model_id
    record["id"] = entry_id(combination_key_of(record))
    (folder / source.name).write_text(json.dumps(record))


def test_a_300_character_model_id_makes_valid_chart_file_names(tmp_path):
    from conftest import ROOT

    entries = tmp_path / "entries"
    entries.mkdir()
    long_id = "org/" + "m" * 296
    for source in sorted((ROOT / "leaderboard" / "archive" / "v3" / "entries").glob("*_us_*.json"))[:6]:
        _entry_with_model_id(source, entries, long_id)
    result = invoke("leaderboard", "study", "--entries", entries, "--markdown", tmp_path / "s.md",
                    "--charts", tmp_path / "charts")
    assert result.exit_code == 0, result.output
    names = [p.name for p in (tmp_path / "charts").iterdir()]
    assert names and all(len(n) <= 140 for n in names)
    result = invoke("leaderboard", "build", "--entries", entries, "--out", tmp_path / "board")
    assert result.exit_code == 0, result.output


def test_leaderboard_build_does_not_follow_a_symbolic_link_out_of_the_entries_folder(tmp_path):
    from conftest import ROOT

    entries, outside = tmp_path / "entries", tmp_path / "outside"
    entries.mkdir()
    outside.mkdir()
    sources = sorted((ROOT / "leaderboard" / "archive" / "v3" / "entries").glob("*.json"))[:2]
    (entries / sources[0].name).write_text(sources[0].read_text())
    (outside / sources[1].name).write_text(sources[1].read_text())
    (entries / "linked.json").symlink_to(outside / sources[1].name)
    result = invoke("leaderboard", "build", "--entries", entries, "--out", tmp_path / "board")
    assert result.exit_code == 0 and "Traceback" not in result.output
    assert "left out linked.json: a symbolic link out of the entries folder" in result.stderr
    board = json.loads((tmp_path / "board" / "leaderboard.json").read_text())
    assert board["entries_used"] == 1
    strict = invoke("leaderboard", "build", "--entries", entries, "--out", tmp_path / "board", "--strict")
    assert strict.exit_code == 1


# -- 6. two `run` processes on one --output --------------------------------------------------------

FIRST = """
import sys, time
from pathlib import Path
from cultbench.runs import sweep
from cultbench.cli import main

here = Path({here!r})
real = sweep.Sweep.align_and_evaluate

def paused(self, *args, **kwargs):  # holds the combination's lock until the test says go
    (here / "first-started").touch()
    while not (here / "go").exists():
        time.sleep(0.02)
    return real(self, *args, **kwargs)

sweep.Sweep.align_and_evaluate = paused
sys.argv = ["cultbench", *{args!r}]
main()
"""

SECOND = """
import sys
from pathlib import Path
import filelock
from cultbench.runs import sweep
from cultbench.cli import main

here = Path({here!r})
real_acquire, real_align = filelock.FileLock.acquire, sweep.Sweep.align_and_evaluate

def acquire(self, *args, **kwargs):
    if Path(self.lock_file).parent == here / "results":
        (here / "second-waiting").touch()  # about to wait for the first process's lock
    return real_acquire(self, *args, **kwargs)

def align(self, *args, **kwargs):
    (here / "second-aligned").touch()
    return real_align(self, *args, **kwargs)

filelock.FileLock.acquire, sweep.Sweep.align_and_evaluate = acquire, align
sys.argv = ["cultbench", *{args!r}]
main()
"""


def _wait_for(path: Path, child, timeout: float = 300.0) -> None:
    import time

    deadline = time.time() + timeout
    while not path.exists():
        assert child.poll() is None, child.communicate()[1]
        assert time.time() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


@pytest.mark.slow
def test_a_second_run_on_the_same_output_waits_for_the_first_and_skips_its_combination(tiny_folder, tmp_path):
    import subprocess
    import sys

    args = ["run", "--model", str(tiny_folder), "--target", "US", "--aligner", "naive", "--output",
            str(tmp_path / "results"), "--runs-dir", str(tmp_path / "runs"), "--no-progress"]
    spawn = lambda script: subprocess.Popen([sys.executable, "-c", script.format(here=str(tmp_path), args=args)],  # noqa: E731
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = spawn(FIRST)
    _wait_for(tmp_path / "first-started", first)  # the first holds the combination's lock
    second = spawn(SECOND)
    _wait_for(tmp_path / "second-waiting", second)  # the second has listed it as to do, and now waits
    (tmp_path / "go").touch()
    out1, err1 = first.communicate(timeout=600)
    out2, err2 = second.communicate(timeout=600)
    assert first.returncode == 0 and second.returncode == 0, err1 + err2
    assert "1 combinations run, 0 done before" in err1
    assert "0 combinations run, 1 done before" in err2
    assert not (tmp_path / "second-aligned").exists()  # the second did none of the work
    results = list((tmp_path / "results").glob("*.json"))
    assert len(results) == 1 and out1.split() == out2.split() == [str(results[0])]


def test_a_config_value_true_or_false_for_a_path_option_is_one_error_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("target: US\naligner: naive\nheldout_items: false\n")
    result = invoke("run", "--config", config, "--output", tmp_path / "o", "--runs-dir", tmp_path / "r")
    check_one_line_error(result, "heldout_items takes a value, not false")
