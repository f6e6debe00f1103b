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
from pathlib import Path

import safetensors.torch
import torch
from peft import PromptTuningConfig, TaskType

from aligners import Alignment
from cultbench import __version__
from cultbench.atomic import write_folder_atomic
from cultbench.errors import CultbenchError
from cultbench.models import locate_model

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


def _readme(alignment, source: Path, base_model: str, gguf_file: str | None, out: Path) -> str:
    target = (alignment.problem or {}).get("target") or {}
    model = alignment.model or {}
    dtype = model.get("dtype") or "float32"
    gguf_py = f", gguf_file={gguf_file!r}" if gguf_file else ""
    gguf_arg = f",gguf_file={gguf_file}" if gguf_file else ""
    here = str(out.resolve())
    return "\n".join([
        "---", "library_name: peft", f"base_model: {base_model}", "tags: [prompt-tuning, cultbench]", "---", "",
        "# cultbench soft prompt (PEFT prompt tuning)", "",
        f"Exported by cultbench {__version__} from the alignment folder `{source}`.", "",
        f"- aligner: {alignment.aligner}, seed {alignment.seed}, {alignment.evaluations} candidate evaluations",
        f"- target: {target.get('name')} (source {target.get('source')})",
        f"- base model: {model.get('id')} (revision {model.get('revision')}, file sha256 {model.get('file_sha256')}, "
        f"hidden size {model.get('hidden_size')}), at `{base_model}`" + (f", GGUF file `{gguf_file}`" if gguf_file else ""),
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
        f"lm_eval --model hf --model_args pretrained={base_model}{gguf_arg},dtype={dtype},peft={here} "
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
    base = base_model
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
