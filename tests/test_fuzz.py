"""Property-based fuzzing of the CLI's file inputs (hypothesis): survey CSVs, opinion data rows,
alignment records and their tensor files, search checkpoints and `run` config files. Whatever
the file holds, the outcome is exit 0 or one `Error:` line with exit status 2, never a
traceback (checkpoints, read by the library: a result or a CultbenchError, which the CLI prints
as that one line).

The default profile ("ci") is derandomised and small, so the file runs in well under a minute.
Run it longer with ``CULTBENCH_FUZZ=long python -m pytest -q tests/test_fuzz.py`` (random
examples, many more of them; ``CULTBENCH_FUZZ_EXAMPLES=N`` sets how many).
"""

import json
import os
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aligners import Alignment
from cultbench.cli import main
from cultbench.errors import CultbenchError
from cultbench.instruments import load_instrument
from cultbench.profiles import lookup

settings.register_profile("ci", max_examples=40, derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=int(os.environ.get("CULTBENCH_FUZZ_EXAMPLES", 1000)),
                          deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings.get_profile(os.environ.get("CULTBENCH_FUZZ", "ci"))

ITEM_IDS = load_instrument("vsm2013").item_ids


def assert_clean(result) -> None:
    """Exit 0, or exit 2 with exactly one `Error:` line on stderr; never a traceback."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        raise AssertionError("".join(traceback.format_exception(result.exception)))
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 2), (result.exit_code, result.output)
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# -- values a careless or hostile file holds ---------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**400, max_value=10**400),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                    st.sampled_from(["", "nan", "inf", "-1", "3", "1e309", "01", "[]", "{}", "\x00", "é"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                              st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=8)


def json_safe(value):
    """``value`` with what JSON cannot hold (NaN, infinity, huge ints) replaced by text."""
    if isinstance(value, float) and not np.isfinite(value) or isinstance(value, int) and abs(value) > 2**63:
        return str(value)
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    return value


# -- survey CSVs -------------------------------------------------------------------------------

cells = st.one_of(st.sampled_from(["", "1", "3", "5", "0", "6", "3.0", "2.5", "9" * 400, "nan", "-1", "x", "1e3",
                                   " 4 ", "\"", ",", "１"]), st.text(max_size=6))


@FUZZ
@given(columns=st.lists(st.one_of(st.sampled_from(ITEM_IDS + ["country", "q01"]), st.text(max_size=5)),
                        min_size=1, max_size=30),
       rows=st.lists(st.lists(cells, max_size=30), max_size=5), group=st.booleans(),
       raw=st.one_of(st.none(), st.binary(max_size=60)))
@example(columns=["country", *ITEM_IDS], rows=[["US", "9" * 400] + ["3"] * 23], group=False, raw=None)
@example(columns=[], rows=[], group=False, raw=b"\r\x80")
def test_score_on_any_csv_is_clean(columns, rows, group, raw):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.csv"
        if raw is not None:
            path.write_bytes(raw)
        else:
            import csv

            with open(path, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(columns)
                writer.writerows(rows)
        assert_clean(invoke("score", path, *(["--group-by", "country"] if group else [])))


def test_score_on_a_well_formed_csv_succeeds():
    """The fuzzed command does succeed on good input (so exit 0 above is a real outcome)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.csv"
        path.write_text(",".join(["country", *ITEM_IDS]) + "\n" + ",".join(["US"] + ["3"] * 24) + "\n")
        result = invoke("score", path)
        assert result.exit_code == 0, result.output


# -- opinion data rows -------------------------------------------------------------------------

shares = st.one_of(st.lists(st.one_of(st.floats(min_value=0, max_value=1), st.floats(), st.text(max_size=3),
                                      st.booleans(), st.none()), max_size=4),
                   st.text(max_size=4), st.integers(), st.none())
selections = st.one_of(
    st.dictionaries(st.sampled_from(["Germany", "Britain", "S. Korea", "France (Current national sample)",
                                     "France (Non-national sample)", "", "x"]), shares, max_size=4)
    .map(lambda d: f"defaultdict(<class 'list'>, {d!r})"),
    st.text(max_size=30), st.sampled_from(["{", "{}", "{'a': [1, 2]", "defaultdict(<class 'list'>, {})"]))
options = st.one_of(st.lists(st.one_of(st.text(max_size=8), st.integers(), st.floats(), st.sampled_from(
    ["DK/Refused", "Yes", "No"])), max_size=5).map(repr), st.text(max_size=20))
questions = st.one_of(st.sampled_from(["Q1?", "Q2?", "Q1? ", "", None]), st.text(max_size=10), st.integers(),
                      st.floats(allow_nan=True))


@FUZZ
@given(rows=st.lists(st.fixed_dictionaries({"question": questions, "selections": selections, "options": options}),
                     max_size=6),
       fmt=st.sampled_from(["jsonl", "csv"]),
       cleaning=st.lists(st.sampled_from(["duplicate_question=drop_all", "duplicate_question=error",
                                          "mismatched=error", "off_sum=keep", "refusal=keep", "sum_tolerance=0.5",
                                          "min_options=1", "min_options=x", "sum_tolerance=abc"]), max_size=2))
@example(rows=[{"question": q, "options": "['Yes', 'No']", "selections": "{'Germany': '01'}"}
               for q in ("Q?", "Q?", None)], fmt="jsonl", cleaning=[])
def test_opinion_data_of_any_rows_is_clean(rows, fmt, cleaning):
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"d.{fmt}"
        if fmt == "jsonl":
            path.write_text("".join(json.dumps(json_safe(r)) + "\n" for r in rows))
        else:
            pd.DataFrame(rows, columns=["question", "selections", "options"]).to_csv(path, index=False)
        args = [a for c in cleaning for a in ("--cleaning", c)]
        assert_clean(invoke("instruments", "globalopinionqa", "--data", path, *args))


# -- alignment records and tensor files ---------------------------------------------------------

def _alignment(folder: Path) -> Path:
    Alignment(aligner="de", hyperparameters={"popsize": 10}, seed=0,
              model={"id": "HuggingFaceTB/SmolLM2-135M-Instruct", "revision": None, "file_sha256": None,
                     "hidden_size": 8, "dtype": "float32"},
              problem={"target": lookup("US").to_dict()}, budget=10, evaluations=10, result={"fitness": 1.0},
              soft_prompt=torch.ones(2, 8), z=np.zeros(4), parametrisation={"form": "P0 + A z"},
              search={"best_fitness": 1.0}, history=[{"generation": 0}]).save_pretrained(folder)
    return folder


def _paths(record, prefix=()):
    yield prefix
    if isinstance(record, dict):
        for key, value in record.items():
            yield from _paths(value, prefix + (key,))


@FUZZ
@given(data=st.data(), value=json_values, drop=st.booleans(),
       tensor_cut=st.one_of(st.none(), st.integers(min_value=0, max_value=400)), keep_hash=st.booleans())
def test_export_peft_of_any_tampered_alignment_is_clean(data, value, drop, tensor_cut, keep_hash):
    with tempfile.TemporaryDirectory() as tmp:
        folder = _alignment(Path(tmp) / "a")
        record = json.loads((folder / "alignment.json").read_text())
        where = data.draw(st.sampled_from([p for p in _paths(record) if p]))
        parent = record
        for key in where[:-1]:
            parent = parent[key]
        if drop:
            del parent[where[-1]]
        else:
            parent[where[-1]] = json_safe(value)
        if not keep_hash and isinstance(record.get("soft_prompt"), dict):
            record["soft_prompt"].pop("sha256", None)
        (folder / "alignment.json").write_text(json.dumps(record))
        if tensor_cut is not None:
            blob = (folder / "soft_prompt.safetensors").read_bytes()
            (folder / "soft_prompt.safetensors").write_bytes(blob[:tensor_cut])
        assert_clean(invoke("export-peft", folder, Path(tmp) / "peft"))


def test_export_peft_of_the_untampered_alignment_succeeds(tmp_path):
    result = invoke("export-peft", _alignment(tmp_path / "a"), tmp_path / "peft")
    assert result.exit_code == 0, result.output


# -- search checkpoints ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint_blob(tmp_path_factory):
    """The checkpoint of a DE search interrupted after 3 generations (the stand-in scorer)."""
    from aligners import make_aligner
    from aligners.checkpoint import CHECKPOINT_NAME
    from aligner_standin import PARAMS, LinearScorer, synthetic_problem

    folder = tmp_path_factory.mktemp("ckpt")
    with pytest.raises(KeyboardInterrupt):
        make_aligner("de", **PARAMS).align(synthetic_problem(LinearScorer(interrupt_at=4)), budget=60, seed=1,
                                           run_dir=folder)
    return (folder / CHECKPOINT_NAME).read_bytes()


@FUZZ
@given(key=st.sampled_from(["format", "evaluations", "generation", "sizes", "hashes", "history", "best_fitness",
                            "invalid", "identity"]),
       value=json_values, array=st.sampled_from(["fitness", "best_z", "best_indices", None]),
       shape=st.lists(st.integers(min_value=0, max_value=40), max_size=2),
       fill=st.sampled_from([0.0, np.nan, np.inf, 1e9]), whole=st.one_of(st.none(), json_values))
def test_resuming_from_any_tampered_checkpoint_is_clean(checkpoint_blob, key, value, array, shape, fill, whole):
    import safetensors
    import safetensors.numpy

    from aligners import make_aligner
    from aligners.checkpoint import CHECKPOINT_NAME
    from aligner_standin import PARAMS, synthetic_problem

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / CHECKPOINT_NAME
        path.write_bytes(checkpoint_blob)
        with safetensors.safe_open(str(path), framework="numpy") as fh:
            metadata, arrays = dict(fh.metadata()), {k: fh.get_tensor(k) for k in fh.keys()}
        state = json.loads(metadata["cultbench_search_state"])
        state[key] = json_safe(value)
        metadata["cultbench_search_state"] = json.dumps(json_safe(whole) if whole is not None else state)
        if array is not None:
            arrays[array] = np.full(shape, fill)
        path.write_bytes(safetensors.numpy.save(arrays, metadata=metadata))
        try:
            make_aligner("de", **PARAMS).align(synthetic_problem(), budget=60, seed=1, run_dir=tmp, resume=True)
        except CultbenchError:
            pass  # the CLI prints it as one `Error:` line (exit 2)


# -- run config files --------------------------------------------------------------------------

RUN_KEYS = ["target", "aligner", "seed", "budget", "param", "constant", "source", "search_dtype", "dtype", "device",
            "instrument", "distance", "dimensions", "max_batch_mb", "max-batch-mb", "cleaning", "data", "split_seed",
            "force", "progress", "ray_unit", "model", "heldout_items"]
config_values = st.one_of(json_values, st.sampled_from(["US", "Japan", "naive", "icl", "de", "float32", "bfloat16",
                                                        "cpu", "tpu", "l1", 300, 0, -1, [0, 1], {"popsize": 10},
                                                        {"pdi": 0}, "pdi,idv"]))


@FUZZ
@given(config=st.dictionaries(st.one_of(st.sampled_from(RUN_KEYS), st.text(max_size=6)), config_values, max_size=6),
       raw=st.one_of(st.none(), st.text(max_size=40)), suffix=st.sampled_from([".yaml", ".toml"]))
@example(config={"target": "US", "max_batch_mb": [1, 2]}, raw=None, suffix=".yaml")
@example(config={"target": "US", "max_batch_mb": "nan", "device": "tpu"}, raw=None, suffix=".yaml")
@example(config={"target": "US", "instrument": None}, raw=None, suffix=".yaml")
def test_run_with_any_config_file_is_clean(tiny_folder, config, raw, suffix):
    import yaml

    from cultbench.runs import sweep

    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as tmp:
        patch.setattr(sweep.Sweep, "run", lambda self: iter(()))  # checks everything, runs nothing
        path = Path(tmp) / f"c{suffix}"
        if raw is not None:
            path.write_text(raw)
        elif suffix == ".yaml":
            path.write_text(yaml.safe_dump({"model": str(tiny_folder), **json_safe(config)}))
        else:
            path.write_text("".join(f"{json.dumps(k)} = {json.dumps(v)}\n" for k, v in json_safe(config).items()
                                    if isinstance(v, (str, int, float, bool))))
        assert_clean(invoke("run", "--config", path, "--output", Path(tmp) / "o", "--runs-dir", Path(tmp) / "r",
                            "--no-progress"))
