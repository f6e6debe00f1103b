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

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
WEIGHTS_KEY = "prompt_embeddings"  # the key PEFT saves prompt-tuning embeddings under


def prompt_tuning_config(n_virtual: int, hidden_size: int, base_model: str | None = None):
    """The PEFT config of a soft prompt [n_virtual, hidden_size] for a causal LM."""
    return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=int(n_virtual),
                              token_dim=int(hidden_size), num_transformer_submodules=1,
                              base_model_name_or_path=base_model, inference_mode=True)


def _readme(alignment, source: Path, base_model: str) -> str:
    target = (alignment.problem or {}).get("target") or {}
    model = alignment.model or {}
    return "\n".join([
        "---", "library_name: peft", f"base_model: {base_model}", "tags: [prompt-tuning, cultbench]", "---", "",
        "# cultbench soft prompt (PEFT prompt tuning)", "",
        f"Exported by cultbench {__version__} from the alignment folder `{source}`.", "",
        f"- aligner: {alignment.aligner}, seed {alignment.seed}, {alignment.evaluations} candidate evaluations",
        f"- target: {target.get('name')} (source {target.get('source')})",
        f"- base model: {model.get('id')} (revision {model.get('revision')}, file sha256 {model.get('file_sha256')}, "
        f"hidden size {model.get('hidden_size')})",
        f"- virtual tokens: {alignment.soft_prompt.shape[0]}", "",
        "Load with `PeftModel.from_pretrained(base, this_folder)`, or evaluate with lm-evaluation-harness:",
        "`lm_eval --model hf --model_args pretrained=BASE,peft=this_folder --include_path "
        "\"$(cultbench harness-path)\" --tasks vsm2013 --apply_chat_template`.", ""])


def export_peft(alignment_dir, out_dir, *, base_model: str | None = None, overwrite: bool = False) -> Path:
    """Write the soft prompt of the alignment in ``alignment_dir`` as a PEFT adapter in ``out_dir``.

    ``base_model`` is recorded as ``base_model_name_or_path`` (default: the model id the
    alignment records). Persona-only alignments have no soft prompt: a CultbenchError.
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
    base = base_model or (alignment.model or {}).get("id") or None
    config = prompt_tuning_config(soft.shape[0], soft.shape[1], base).to_dict()
    config = {k: (v.value if hasattr(v, "value") else sorted(v) if isinstance(v, set) else v)
              for k, v in config.items()}
    files = {
        ADAPTER_CONFIG: (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8"),
        ADAPTER_WEIGHTS: safetensors.torch.save({WEIGHTS_KEY: soft}, metadata={"format": "pt"}),
        "README.md": _readme(alignment, source, base).encode("utf-8"),
    }
    write_folder_atomic(out, files)
    return out
