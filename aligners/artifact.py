"""The alignment artifact: what an aligner found, saved as a folder of JSON and safetensors.

    runs/de-us-s0/
      alignment.json            sorted-key JSON: aligner, hyper-parameters, seed, model, problem
                                (instrument, variants, constants C, target and its source,
                                dimensions, distance), budget and evaluations used, result
                                (full-precision fitness and indices), search record, history,
                                and for soft prompts their shape and parametrisation
      soft_prompt.safetensors   soft prompts only: "prompt_embeddings" [n_virtual, hidden] and
                                "z" [d], the point of the search space it came from

Loading reads only JSON and safetensors (nothing is unpickled), only from inside the folder, verifies the tensor file against
the hash the JSON records, and can check that the alignment fits a model (hidden size, model id,
file hash, revision). Every file is written through a temporary file and ``os.replace``, so a
reader sees the old version or the new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from aligners.checkpoint import check_fields
from cultbench import __version__
from cultbench.atomic import write_folder_atomic
from cultbench.errors import CultbenchError

# torch and safetensors.torch are imported where tensors are read or written: importing the aligners
# (to list them, or for a command that never loads a model) must not take torch's seconds.
FORMAT_VERSION = 1
CONFIG_NAME = "alignment.json"
TENSORS_NAME = "soft_prompt.safetensors"


def dumps_json(data) -> str:
    """Sorted-key, indented JSON; NaN and infinity are refused (they are not JSON)."""
    return json.dumps(data, sort_keys=True, indent=2, allow_nan=False) + "\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _array_equal(a, b) -> bool:
    import torch

    if a is None or b is None:
        return a is None and b is None
    return torch.equal(torch.as_tensor(a), torch.as_tensor(b))


def _file_in_folder(folder: Path, name, record: Path) -> Path:
    """``folder / name``, refused unless it names a file inside ``folder``: not absolute, and not
    leaving the folder through ``..`` or a symbolic link (an artifact reads nothing else)."""
    if not isinstance(name, str) or not name or Path(name).is_absolute():
        raise CultbenchError(f"{record}: soft_prompt.file {name!r} must be a file name inside the alignment folder")
    path = folder / name
    if not path.resolve().is_relative_to(folder.resolve()):
        raise CultbenchError(f"{record}: soft_prompt.file {name!r} leaves the alignment folder {folder}; "
                             "it must name a file inside it")
    return path


def _check_record(data: dict, path: Path) -> None:
    """Refuse an alignment record whose fields are not of the kinds :meth:`Alignment.to_dict` writes."""
    check_fields(path, data, "alignment record", aligner="text", hyperparameters="mapping", seed="count?",
                 model="mapping", problem="mapping", budget="count?", evaluations="count", result="mapping",
                 persona="text?", soft_prompt="mapping?", search="mapping?", history="records")
    model_kinds = {"id": "text?", "revision": "text?", "file_sha256": "text?", "hidden_size": "count?", "dtype": "text?"}
    check_fields(path, data["model"], "alignment record's model",
                 **{k: v for k, v in model_kinds.items() if k in data["model"]})
    meta = data["soft_prompt"]
    if meta is not None:
        check_fields(path, meta, "alignment record's soft_prompt", shape="counts", dtype="text",
                     parametrisation="mapping?")
        if len(meta["shape"]) != 2 or 0 in meta["shape"]:
            raise CultbenchError(f"{path}: corrupt alignment record (soft_prompt.shape {meta['shape']} is not "
                                 "[n_virtual, hidden])")


def _load_tensors(folder: Path, meta: dict, path: Path) -> tuple[torch.Tensor, np.ndarray | None]:
    """(soft prompt, z) from the tensor file ``meta`` records, checked against its hash, shape,
    dtype and for finite values: a tampered prompt is refused before any model sees it."""
    import safetensors.torch
    import torch

    tensor_path = _file_in_folder(folder, meta.get("file", TENSORS_NAME), path)
    try:
        blob = tensor_path.read_bytes()
    except OSError as exc:
        raise CultbenchError(f"{tensor_path}: cannot read the soft prompt ({exc.strerror or exc})") from None
    if meta.get("sha256") and sha256(blob) != meta["sha256"]:
        raise CultbenchError(f"{tensor_path} does not match the hash in {path}: the folder mixes "
                             "two saves (interrupted write?); realign or restore the folder")
    try:
        tensors = safetensors.torch.load(blob)
    except Exception as exc:  # safetensors raises its own SafetensorError (and others) on a damaged file
        raise CultbenchError(f"{tensor_path}: not a readable safetensors file ({type(exc).__name__}: "
                             f"{str(exc)[:120]})") from None
    soft = tensors.get("prompt_embeddings")
    if soft is None or list(soft.shape) != list(meta["shape"]):
        raise CultbenchError(f"{tensor_path}: no prompt_embeddings of shape {meta['shape']}")
    if str(soft.dtype).replace("torch.", "") != meta["dtype"]:
        raise CultbenchError(f"{tensor_path}: prompt_embeddings are {str(soft.dtype).replace('torch.', '')}, "
                             f"the record says {meta['dtype']}")
    z = tensors.get("z")
    for name, tensor in (("prompt_embeddings", soft), ("z", z)):
        if tensor is not None and (not tensor.is_floating_point() or not torch.isfinite(tensor).all()):
            raise CultbenchError(f"{tensor_path}: {name} holds non-finite or non-float values; the soft prompt "
                                 "is refused before any evaluation")
    if z is not None and z.ndim != 1:
        raise CultbenchError(f"{tensor_path}: z has shape {list(z.shape)}, expected one axis")
    return soft, None if z is None else z.numpy()


@dataclasses.dataclass(eq=False)
class Alignment:
    """One aligner's answer for one model and target, with the record needed to reproduce it.

    ``soft_prompt`` [n_virtual, hidden] and ``persona`` (a system-prompt text) are the candidate
    to apply; either may be None (the naive baseline has neither).
    """

    aligner: str
    hyperparameters: dict
    seed: int | None
    model: dict  # id, revision, file_sha256, hidden_size
    problem: dict  # AlignmentProblem.describe(): instrument, variants, constants, target, ...
    budget: int | None
    evaluations: int  # candidate evaluations the search used (the final re-score not counted)
    result: dict  # fitness, indices, indices_per_variant, option_mass: full precision (fp32)
    persona: str | None = None
    soft_prompt: torch.Tensor | None = None
    z: np.ndarray | None = None
    parametrisation: dict | None = None  # how soft_prompt = P0 + A z was made (search_space.py)
    search: dict | None = None  # best_fitness (in the search precision), precision, stopped, ...
    history: list = dataclasses.field(default_factory=list)
    cultbench_version: str = __version__

    # -- convenience --------------------------------------------------------------------------

    @property
    def fitness(self) -> float:
        return self.result["fitness"]

    @property
    def indices(self) -> dict:
        return self.result["indices"]

    @property
    def target(self) -> dict:
        return self.problem["target"]

    @property
    def constants(self) -> dict:
        return self.problem["constants"]

    def score(self, scorer):
        """Score this alignment's candidate with ``scorer`` (any prompt variants)."""
        soft = None if self.soft_prompt is None else [self.soft_prompt]
        return scorer.score(soft_prompts=soft, personas=[self.persona])

    # -- dict form ----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The JSON record (tensors described, not included)."""
        soft = None
        if self.soft_prompt is not None:
            soft = {"shape": list(self.soft_prompt.shape), "dtype": str(self.soft_prompt.dtype).replace("torch.", ""),
                    "parametrisation": self.parametrisation}
        return {
            "format": FORMAT_VERSION, "cultbench_version": self.cultbench_version,
            "aligner": self.aligner, "hyperparameters": self.hyperparameters, "seed": self.seed,
            "model": self.model, "problem": self.problem, "budget": self.budget,
            "evaluations": self.evaluations, "result": self.result, "persona": self.persona,
            "soft_prompt": soft, "search": self.search, "history": self.history,
        }

    def __eq__(self, other) -> bool:
        if not isinstance(other, Alignment):
            return NotImplemented
        return (self.to_dict() == other.to_dict() and _array_equal(self.soft_prompt, other.soft_prompt)
                and _array_equal(self.z, other.z))

    # -- folder form --------------------------------------------------------------------------

    def save_pretrained(self, folder) -> Path:
        """Write the artifact to ``folder`` atomically; returns the folder.

        A new folder is built beside its final name and renamed into place. In an existing
        folder (e.g. the run folder holding the checkpoint) each file is replaced atomically,
        the tensors first and the JSON last: the JSON records the tensor file's hash, so a crash
        between the two is detected when loading.
        """
        folder = Path(folder)
        record = self.to_dict()
        files: dict[str, bytes] = {}
        if self.soft_prompt is not None:
            import safetensors.torch
            import torch

            tensors = {"prompt_embeddings": self.soft_prompt.detach().cpu().contiguous()}
            if self.z is not None:
                tensors["z"] = torch.from_numpy(np.ascontiguousarray(self.z, dtype=np.float64))
            blob = safetensors.torch.save(tensors, metadata={"format": "pt"})
            record["soft_prompt"].update(file=TENSORS_NAME, sha256=sha256(blob))
            files[TENSORS_NAME] = blob
        try:
            files[CONFIG_NAME] = dumps_json(record).encode("utf-8")
        except ValueError as exc:
            raise CultbenchError(f"alignment record is not valid JSON ({exc})") from None

        existed = folder.is_dir()
        write_folder_atomic(folder, files)  # insertion order: tensors, then the JSON
        if existed and TENSORS_NAME not in files and (folder / TENSORS_NAME).exists():
            (folder / TENSORS_NAME).unlink()  # stale: the new record has no soft prompt
        return folder

    @classmethod
    def from_pretrained(cls, folder, model_info: Mapping | None = None) -> "Alignment":
        """Load an artifact (JSON and safetensors only); with ``model_info`` (``LoadedModel.info``
        or a dict with id, hidden_size, revision, file_sha256) also check it fits that model."""
        folder = Path(folder)
        path = folder / CONFIG_NAME
        if not path.is_file():
            raise CultbenchError(f"{folder} is not an alignment folder (no {CONFIG_NAME})")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CultbenchError(f"{path}: cannot read ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("format"), int):
            raise CultbenchError(f"{path}: not an alignment record (no format number)")
        if data["format"] > FORMAT_VERSION:
            raise CultbenchError(f"{path}: format {data['format']} is newer than this cultbench reads "
                                 f"({FORMAT_VERSION}); upgrade cultbench")
        _check_record(data, path)
        soft, z = _load_tensors(folder, data["soft_prompt"], path) if data["soft_prompt"] else (None, None)
        try:
            alignment = cls(
                aligner=data["aligner"], hyperparameters=data["hyperparameters"], seed=data["seed"],
                model=data["model"], problem=data["problem"], budget=data["budget"],
                evaluations=data["evaluations"], result=data["result"], persona=data.get("persona"),
                soft_prompt=soft, z=z,
                parametrisation=data["soft_prompt"]["parametrisation"] if soft is not None else None,
                search=data.get("search"), history=data.get("history", []),
                cultbench_version=data.get("cultbench_version", "unknown"))
        except (KeyError, TypeError) as exc:
            raise CultbenchError(f"{path}: malformed alignment record (missing {exc})") from None
        if model_info is not None:
            alignment.check_compatible(model_info)
        return alignment

    def check_compatible(self, model_info: Mapping[str, Any], hidden_size: int | None = None) -> None:
        """Raise a CultbenchError unless this alignment was made for the model ``model_info`` describes.

        Same file (equal file hashes) is enough whatever the model was called; otherwise the ids
        must agree, and known revisions and hashes must not differ. A soft prompt also needs the
        same hidden size.
        """
        mine, theirs = self.model, dict(model_info)
        hidden = hidden_size if hidden_size is not None else theirs.get("hidden_size")
        what = f"alignment ({self.aligner}, made for model {mine.get('id')!r})"
        if self.soft_prompt is not None and hidden is not None and int(hidden) != int(self.soft_prompt.shape[-1]):
            raise CultbenchError(f"{what} has a soft prompt of hidden size {self.soft_prompt.shape[-1]}, "
                                 f"but model {theirs.get('id')!r} has hidden size {hidden}")
        hashes = mine.get("file_sha256"), theirs.get("file_sha256")
        if all(hashes) and hashes[0] != hashes[1]:
            raise CultbenchError(f"{what} does not fit: the model file differs "
                                 f"(sha256 {hashes[0][:12]}... vs {hashes[1][:12]}...)")
        if all(hashes):
            return
        if mine.get("id") != theirs.get("id"):
            raise CultbenchError(f"{what} does not fit model {theirs.get('id')!r}")
        revisions = mine.get("revision"), theirs.get("revision")
        if all(revisions) and revisions[0] != revisions[1]:
            raise CultbenchError(f"{what} was made for revision {revisions[0]}, not {revisions[1]}")
