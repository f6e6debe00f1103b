"""A search's checkpoint: one safetensors file, numpy arrays plus a JSON state in its metadata.

One file, so that ``os.replace`` swaps old for new in one step: a run killed at any moment
(Ctrl-C, SIGTERM, kill -9, even mid-write) leaves the previous generation's checkpoint whole.
Nothing in it is pickled: arrays are safetensors, everything else is JSON.
"""

from __future__ import annotations

import json
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
    state = json.loads(metadata[_STATE_KEY])
    if state.get("format", 0) > CHECKPOINT_FORMAT:
        raise CultbenchError(f"{path}: checkpoint format {state['format']} is newer than this cultbench reads")
    return state, arrays
