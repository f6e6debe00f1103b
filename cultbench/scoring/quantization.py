"""How a model's weights were stored before they were loaded: a GGUF file's quantisation.

A GGUF file (the bundled SmolLM2-135M-Instruct is one) may hold 4- or 8-bit weights, which
transformers dequantises into the requested dtype: a "float32" model loaded from it computes in
float32 with the 4-bit file's rounding in every weight. So every record, row label and page
names the file's quantisation beside the dtype, and no result is credited to the
full-precision model. Light module (``gguf`` and numpy are imported only to read a file).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Mapping

# What the bundled models' files declare (alias -> GGUF file type): for records written before
# cultbench read the quantisation from the file. tests/test_models_and_evaluate.py checks each
# against the installed file.
BUNDLED_QUANTIZATION = {"smollm2-135m-instruct": "Q4_1"}


def gguf_quantization(path) -> dict:
    """{"format": "gguf", "file_type": e.g. "Q4_1", "tensor_types": {type: count}} of a GGUF file,
    read from its header (``general.file_type``) and its tensors' types by the ``gguf`` package."""
    import gguf

    reader = gguf.GGUFReader(Path(path))
    counts = Counter(t.tensor_type.name for t in reader.tensors)
    field = reader.fields.get("general.file_type")
    if field is not None:
        file_type = gguf.LlamaFileType(int(field.parts[field.data[0]][0])).name.removeprefix("MOSTLY_")
    else:  # an older file without the key: its most common tensor type
        file_type = counts.most_common(1)[0][0] if counts else "unknown"
    return {"format": "gguf", "file_type": file_type, "tensor_types": dict(sorted(counts.items()))}


def quantization_of(model: Mapping) -> str | None:
    """The file type (e.g. "Q4_1") of a model record's quantised weights, or None (unquantised,
    or not known). A record without the field (written before it existed) of a bundled model
    gets the bundled file's declared type."""
    q = model.get("quantization")
    if q:
        return q if isinstance(q, str) else q["file_type"]  # a leaderboard row keeps the type alone
    if "quantization" not in model and model.get("kind") in ("bundled", None):
        return BUNDLED_QUANTIZATION.get(model.get("id"))
    return None


def weights_label(model: Mapping) -> str:
    """ "float32" or "Q4_1 GGUF → float32": how a model's weights were stored and computed in."""
    dtype = model.get("dtype") or "?"
    q = quantization_of(model)
    return dtype if q is None or q.upper() in ("F32", "ALL_F32") else f"{q} GGUF → {dtype}"
