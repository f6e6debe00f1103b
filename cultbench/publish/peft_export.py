"""A cultbench soft prompt as a standard PEFT prompt-tuning adapter.

cultbench places its soft prompt before the first token, as PEFT prompt tuning does, so an
alignment's ``prompt_embeddings`` [n_virtual, hidden] are exactly a prompt-tuning adapter:

    OUT_DIR/
      adapter_config.json          PromptTuningConfig (CAUSAL_LM, num_virtual_tokens, token_dim,
                                   base_model_name_or_path), as PEFT writes it
      adapter_model.safetensors    "prompt_embeddings" [n_virtual, hidden], float32
      README.md                    where it came from (alignment, model file hash, target)

``PeftModel.from_pretrained(base, OUT_DIR)`` loads it, and lm-eval evaluates it with
``--model hf --model_args pretrained=...,peft=OUT_DIR``.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import safetensors.torch
import torch
from peft import PromptTuningConfig, TaskType

from aligners import Alignment
from cultbench import __version__
from cultbench.atomic import write_folder_atomic
from cultbench.errors import CultbenchError
from cultbench.scoring.models import DTYPES, locate_model

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
WEIGHTS_KEY = "prompt_embeddings"  # the key PEFT saves prompt-tuning embeddings under


def prompt_tuning_config(n_virtual: int, hidden_size: int, base_model: str | None = None):
    """The PEFT config of a soft prompt [n_virtual, hidden_size] for a causal LM."""
    return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=int(n_virtual),
                              token_dim=int(hidden_size), num_transformer_submodules=1,
                              base_model_name_or_path=base_model, inference_mode=True)


def base_model_location(model_id: str) -> tuple[str, str | None]:
    """(base_model_name_or_path, GGUF file name or None) for a model id as cultbench records it:
    cultbench's aliases and relative paths become absolute paths PEFT and lm-eval can load; a hub
    id stays as it is. A model that is not on this machine keeps its id."""
    try:
        where, gguf_file, kind = locate_model(model_id)
    except CultbenchError:
        return model_id, None
    return (where if kind == "hub" else str(Path(where).resolve())), gguf_file


# The dtypes a README may name as ``torch.<dtype>``: nothing else from an artifact reaches that code.
README_DTYPES = tuple(dict.fromkeys(str(d).replace("torch.", "") for d in DTYPES.values()))
# A Hugging Face Hub id: ``name`` or ``owner/name`` of letters, digits, '-', '_' and '.'.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?$")


def checked_dtype(dtype) -> str:
    """The alignment's model dtype, refused unless it is one of :data:`README_DTYPES`."""
    if dtype is None:
        return "float32"
    if not isinstance(dtype, str) or dtype not in README_DTYPES:
        raise CultbenchError(f"the alignment records model dtype {str(dtype)[:60]!r}; expected one of "
                             f"{', '.join(README_DTYPES)} (a tampered alignment.json?)")
    return dtype


def checked_base_model(base_model: str) -> str:
    """``base_model``, refused unless it is a Hugging Face Hub id or an existing path."""
    if not isinstance(base_model, str) or not base_model or "\n" in base_model or "\r" in base_model:
        raise CultbenchError(f"base model {str(base_model)[:60]!r} is neither a Hugging Face Hub id nor a path")
    if HUB_ID.match(base_model) or Path(base_model).exists():
        return base_model
    raise CultbenchError(f"base model {base_model[:60]!r} is neither a Hugging Face Hub id (owner/name) nor an "
                         "existing path; pass --base-model")


def _text(value) -> str:
    """A recorded value as one line of Markdown text: no line breaks or backticks that could open a block."""
    return " ".join(str(value).split()).replace("`", "'")


def _readme(alignment, source: Path, base_model: str, gguf_file: str | None, out: Path) -> str:
    target = (alignment.problem or {}).get("target") or {}
    model = alignment.model or {}
    dtype = checked_dtype(model.get("dtype"))
    # Every value pasted into code is quoted for its language: repr for Python, shlex for bash.
    gguf_py = f", gguf_file={gguf_file!r}" if gguf_file else ""
    gguf_arg = f",gguf_file={gguf_file}" if gguf_file else ""
    here = str(out.resolve())
    model_args = shlex.quote(f"pretrained={base_model}{gguf_arg},dtype={dtype},peft={here}")
    return "\n".join([
        "---", "library_name: peft", f"base_model: {json.dumps(base_model)}", "tags: [prompt-tuning, cultbench]",
        "---", "",
        "# cultbench soft prompt (PEFT prompt tuning)", "",
        f"Exported by cultbench {__version__} from the alignment folder `{_text(source)}`.", "",
        f"- aligner: {_text(alignment.aligner)}, seed {_text(alignment.seed)}, {_text(alignment.evaluations)} "
        "candidate evaluations",
        f"- target: {_text(target.get('name'))} (source {_text(target.get('source'))})",
        f"- base model: {_text(model.get('id'))} (revision {_text(model.get('revision'))}, file sha256 "
        f"{_text(model.get('file_sha256'))}, hidden size {_text(model.get('hidden_size'))}), at `{_text(base_model)}`"
        + (f", GGUF file `{_text(gguf_file)}`" if gguf_file else ""),
        f"- virtual tokens: {alignment.soft_prompt.shape[0]}", "",
        "Load it with transformers and PEFT"
        + (" (the base model is a GGUF file, so it is loaded with `gguf_file=`; "
           "`AutoPeftModelForCausalLM` cannot load it by itself):" if gguf_file else ":"), "",
        "```python", "import torch", "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
        f"base = AutoModelForCausalLM.from_pretrained({base_model!r}{gguf_py}, dtype=torch.{dtype})",
        f"tokenizer = AutoTokenizer.from_pretrained({base_model!r}{gguf_py})",
        f"model = PeftModel.from_pretrained(base, {here!r})", "```", "",
        "Evaluate it with lm-evaluation-harness:", "",
        "```bash",
        f"lm_eval --model hf --model_args {model_args} "
        "--include_path \"$(cultbench harness-path)\" --tasks vsm2013 --apply_chat_template",
        "```", ""])


def export_peft(alignment_dir, out_dir, *, base_model: str | None = None, overwrite: bool = False) -> Path:
    """Write the soft prompt of the alignment in ``alignment_dir`` as a PEFT adapter in ``out_dir``.

    ``base_model`` is recorded as ``base_model_name_or_path`` (default: where the model the
    alignment records is on this machine, see :func:`base_model_location`). Persona-only alignments have no soft prompt: a CultbenchError.
    """
    source, out = Path(alignment_dir), Path(out_dir)
    if not source.exists():
        raise CultbenchError(f"alignment folder {source} does not exist")
    alignment = Alignment.from_pretrained(source)
    if alignment.soft_prompt is None:
        raise CultbenchError(
            f"{source} holds no soft prompt (aligner {alignment.aligner!r}"
            + (", a persona only" if alignment.persona else "")
            + "): a PEFT prompt-tuning adapter stores soft prompts; use the persona as a system prompt instead "
              "(lm-eval: --metadata '{\"persona\": \"...\"}')")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not overwrite)):
        raise CultbenchError(f"{out} exists and is not empty; choose a new folder or pass --overwrite")
    soft = alignment.soft_prompt.detach().to(torch.float32).cpu().contiguous()
    gguf_file = None
    if base_model is None and (alignment.model or {}).get("id"):
        base_model, gguf_file = base_model_location(alignment.model["id"])
    base = None if base_model is None else checked_base_model(base_model)
    checked_dtype((alignment.model or {}).get("dtype"))  # before anything is written
    config = prompt_tuning_config(soft.shape[0], soft.shape[1], base).to_dict()
    config = {k: (v.value if hasattr(v, "value") else sorted(v) if isinstance(v, set) else v)
              for k, v in config.items()}
    files = {
        ADAPTER_CONFIG: (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8"),
        ADAPTER_WEIGHTS: safetensors.torch.save({WEIGHTS_KEY: soft}, metadata={"format": "pt"}),
        "README.md": _readme(alignment, source, base, gguf_file, out).encode("utf-8"),
    }
    write_folder_atomic(out, files)
    return out
