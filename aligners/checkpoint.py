"""A search's checkpoint: one safetensors file, numpy arrays plus a JSON state in its metadata.

One file, so that ``os.replace`` swaps old for new in one step: a run killed at any moment
(Ctrl-C, SIGTERM, kill -9, even mid-write) leaves the previous generation's checkpoint whole.
Nothing in it is pickled: arrays are safetensors, everything else is JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy

from cultbench.atomic import write_bytes_atomic
from cultbench import __version__
from cultbench.errors import CultbenchError

CHECKPOINT_NAME = "checkpoint.safetensors"
CHECKPOINT_FORMAT = 1
_STATE_KEY = "cultbench_search_state"


def save_checkpoint(path, state: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write ``state`` (JSON-ready) and ``arrays`` atomically to ``path``."""
    record = {"format": CHECKPOINT_FORMAT, "cultbench_version": __version__, **state}
    metadata = {_STATE_KEY: json.dumps(record, sort_keys=True, allow_nan=False)}
    tensors = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    write_bytes_atomic(path, safetensors.numpy.save(tensors, metadata=metadata))


def load_checkpoint(path) -> tuple[dict, dict[str, np.ndarray]]:
    """(state, arrays) from a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    try:
        with safetensors.safe_open(str(path), framework="numpy") as fh:
            metadata = fh.metadata() or {}
            arrays = {k: fh.get_tensor(k) for k in fh.keys()}
    except (OSError, safetensors.SafetensorError) as exc:
        raise CultbenchError(f"{path}: not a readable checkpoint ({exc})") from None
    if _STATE_KEY not in metadata:
        raise CultbenchError(f"{path}: not a cultbench search checkpoint")
    try:
        state = json.loads(metadata[_STATE_KEY])
    except ValueError as exc:
        raise CultbenchError(f"{path}: corrupt checkpoint (its state is not JSON: {exc})") from None
    if not isinstance(state, dict):
        raise CultbenchError(f"{path}: corrupt checkpoint (its state is {type(state).__name__}, not a mapping)")
    check_fields(path, state, format="count")
    if state["format"] > CHECKPOINT_FORMAT:
        raise CultbenchError(f"{path}: checkpoint format {state['format']} is newer than this cultbench reads")
    return state, arrays


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


# What a field of a checkpoint's (or an artifact's) JSON may hold; a trailing "?" also allows null.
FIELD_KINDS = {
    "count": _count,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
    "text": lambda v: isinstance(v, str),
    "mapping": lambda v: isinstance(v, dict),
    "records": lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
    "counts": lambda v: isinstance(v, list) and all(_count(x) for x in v),
    "texts": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
}


def check_fields(path, record: dict, what: str = "checkpoint", **kinds: str) -> None:
    """Refuse a record (a checkpoint's state, an artifact's JSON) that lacks a field or holds a
    value of another kind than ``kinds`` names (see :data:`FIELD_KINDS`)."""
    for name, kind in kinds.items():
        value = record.get(name)
        if value is None and kind.endswith("?") and name in record:
            continue
        if name not in record or not FIELD_KINDS[kind.rstrip("?")](value):
            shown = "missing" if name not in record else f"{json.dumps(value, default=str)[:40]}"
            raise CultbenchError(f"{path}: corrupt {what} ({name} is {shown}; expected {kind.rstrip('?')}"
                                 f"{' or null' if kind.endswith('?') else ''})")


def check_array(path, arrays: dict, name: str, shape: tuple | None = None, what: str = "checkpoint") -> np.ndarray:
    """``arrays[name]``, refused unless present, floating, finite and (``shape``, None on an axis
    for any length) of that shape."""
    array = arrays.get(name)
    if array is None:
        raise CultbenchError(f"{path}: corrupt {what} (no {name} array)")
    if shape is not None and (array.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, array.shape))):
        raise CultbenchError(f"{path}: corrupt {what} ({name} has shape {list(array.shape)}, expected "
                             f"{['any' if s is None else s for s in shape]})")
    if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
        raise CultbenchError(f"{path}: corrupt {what} ({name} holds non-finite or non-float values)")
    return array


def json_ready(data):
    """``data`` as it reads back from JSON (tuples become lists), so identities compare equal."""
    return json.loads(json.dumps(data, sort_keys=True, allow_nan=False))


def check_identity(path, stored: dict | None, current: dict) -> None:
    """Refuse to resume from ``path`` when its run identity differs from ``current``, naming each
    difference (and the option that sets it) so the user can resume or pick another folder."""
    differ = _differences(stored, current)
    if differ:
        shown = "; ".join(_difference_text(stored, current, d) for d in differ)
        raise CultbenchError(f"{path} belongs to another run ({shown}); resume with the same aligner, "
                             "hyper-parameters, seed, model and problem, or use another folder")


def _differences(stored, current, prefix: str = "") -> list[str]:
    """Dotted paths where two JSON-like records differ."""
    if isinstance(stored, dict) and isinstance(current, dict):
        out = []
        for key in sorted(set(stored) | set(current), key=str):
            out += _differences(stored.get(key), current.get(key), f"{prefix}{key}.")
        return out
    return [] if stored == current else [prefix.rstrip(".")]


def _value_at(record, path: str):
    for key in path.split("."):
        record = record.get(key) if isinstance(record, dict) else None
    return record


# Command-line options that set a part of a run's identity, so a refused resume can name what to pass.
_OPTION_OF = {"search_precision": "--search-dtype {}", "seed": "--seed {}", "model.dtype": "--dtype {}",
              "problem.distance": "--distance {}", "aligner": "--aligner {}"}


def _difference_text(stored, current, path: str) -> str:
    old, new = _value_at(stored, path), _value_at(current, path)
    option = _OPTION_OF.get(path)
    if path.startswith("hyperparameters."):
        option = f"--param {path.split('.', 1)[1]}={{}}"
    shown = (",".join(map(str, old)) if isinstance(old, list) else old) if option else None
    hint = f"; pass {option.format(shown)}" if option and old is not None else ""
    if isinstance(old, (dict, list)) and not option or isinstance(new, (dict, list)) and not option:
        return path
    return f"{path} is {old!r} in the checkpoint and {new!r} now{hint}"
