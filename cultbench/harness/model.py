"""The ``cultbench`` lm-eval model: a causal LM with a cultbench alignment applied, as the scorer does.

    lm_eval --model cultbench --model_args pretrained=smollm2-135m-instruct,alignment=runs/de-us ...

It is lm-eval's ``HFLM`` with three additions:

- ``pretrained`` is anything ``cultbench.scoring.models.load_model`` takes (the bundled alias, a model
  folder, a ``.gguf`` file, a cached hub id; float32 by default), or a loaded model object with
  its ``tokenizer`` (then ``batch_size`` and the rest are set here, on the model);
- ``alignment=DIR`` (a folder from ``cultbench align``, or an ``Alignment``): its soft prompt
  goes before the first token of every request, as the scorer places it and as PEFT prompt
  tuning does. It is applied here, not through PEFT, so that the PEFT adapter route
  (``--model hf ... peft=``) is an independent check, and so that generation is right: PEFT's
  prompt-tuning ``generate`` with the key/value cache drifts from the full computation after a
  few tokens (transformers 5.24, peft 0.21), while ``generate(inputs_embeds=...)`` with the
  soft prompt in front and left padding after it matches it exactly. Its persona
  goes first in the system prompt when lm-eval applies the chat template (joined to the
  existing system text by a space, as ``cultbench.prompts.system_text`` joins them), and before
  the context, followed by a space, in plain-text requests;
- the alignment is checked (folder readable, hash, model identity, hidden size) before the
  model's weights load; lm-eval's ``--use_cache``, whose key is the request text only, is
  refused while an alignment is applied (answers of another alignment would be reused).

Importing this module registers the model with lm-eval.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils_hf import stop_sequences_criteria
from transformers import AutoConfig

from aligners import Alignment
from cultbench.errors import CultbenchError
from cultbench.scoring.models import DEFAULT_MODEL, locate_model, load_model

log = logging.getLogger(__name__)


def load_alignment(alignment) -> Alignment | None:
    """An ``Alignment`` from a folder (or as given); None for None. Reads JSON and safetensors only."""
    if alignment is None or alignment == "" or isinstance(alignment, Alignment):
        return alignment or None
    folder = Path(str(alignment)).expanduser()
    if not folder.exists():
        raise CultbenchError(f"alignment folder {folder} does not exist")
    return Alignment.from_pretrained(folder)


def _hidden_size(config) -> int | None:
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return getattr(config, "hidden_size", None)


def _check_hidden_size(alignment: Alignment, model_id: str, hidden: int | None) -> None:
    soft = alignment.soft_prompt
    if soft is not None and hidden is not None and int(soft.shape[-1]) != int(hidden):
        raise CultbenchError(f"alignment ({alignment.aligner}, made for model {alignment.model.get('id')!r}) has a "
                             f"soft prompt of hidden size {soft.shape[-1]}, but model {model_id!r} has hidden "
                             f"size {hidden}")


def _check_before_loading(alignment: Alignment, name: str) -> None:
    """The hidden size from the model's config alone, before any weights are read."""
    if alignment.soft_prompt is None:
        return
    where, gguf_file, _ = locate_model(name)
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        config = AutoConfig.from_pretrained(where, local_files_only=True, **kwargs)
    except (OSError, ValueError):
        return  # load_model reports an unreadable model with its own message
    _check_hidden_size(alignment, name, _hidden_size(config))


def _same_model_id(alignment: Alignment, info: dict) -> dict:
    """``info`` with the alignment's model id when both ids name the same folder or file."""
    mine, theirs = (alignment.model or {}).get("id"), info.get("id")
    if mine and theirs and mine != theirs:
        a, b = Path(str(mine)).expanduser(), Path(str(theirs)).expanduser()
        if a.exists() and b.exists() and a.resolve() == b.resolve():
            return dict(info, id=mine)
    return info


def _device(device) -> str:
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        log.info("device %s requested but no CUDA device is available; using cpu", device)
        return "cpu"
    return str(device)


def _join(first: str, rest: str | None) -> str:
    return f"{first} {rest}" if rest else first


@register_model("cultbench")
class CultbenchLM(HFLM):
    """lm-eval's HFLM with a cultbench alignment (soft prompt and/or persona); see the module docstring.

    Args:
        pretrained: a model name for ``cultbench.scoring.models.load_model`` or a loaded model object.
        alignment: an alignment folder or ``Alignment``; None evaluates the model as it is.
        tokenizer: the tokenizer object when ``pretrained`` is a model object.
        dtype, device: how ``load_model`` loads a named model (default float32; cpu without CUDA).
        gguf_file: a GGUF file inside the ``pretrained`` folder (as for lm-eval's hf model).
        model_info: the model's record (``LoadedModel.info``) when ``pretrained`` is an object;
            the alignment is then checked against it (otherwise only the hidden size is).
        **kwargs: HFLM's arguments (batch_size, max_length, add_bos_token, ...). add_bos_token
            defaults to the scorer's choice: no special tokens with a chat template.
    """

    def __init__(self, pretrained=DEFAULT_MODEL, alignment=None, tokenizer=None, dtype="float32", device=None,
                 gguf_file: str | None = None, model_info: dict | None = None, **kwargs):
        for arg in ("peft", "delta"):
            if kwargs.get(arg):
                raise CultbenchError(f"the cultbench model takes alignment=DIR, not {arg}=; "
                                     f"a PEFT adapter goes with --model hf")
        applied = load_alignment(alignment)
        if isinstance(pretrained, (str, os.PathLike)):
            name = str(Path(str(pretrained)) / gguf_file) if gguf_file else str(pretrained)
            if tokenizer is not None:
                raise CultbenchError("tokenizer= goes with a model object; a named model brings its own")
            if applied is not None:
                _check_before_loading(applied, name)
            loaded = load_model(name, dtype=dtype, device=_device(device))
            model, tokenizer, info = loaded.model, loaded.tokenizer, loaded.info
        else:
            if tokenizer is None:
                raise CultbenchError("a model object needs its tokenizer: CultbenchLM(pretrained=model, tokenizer=tok)")
            model = pretrained
            hidden = int(model.get_input_embeddings().weight.shape[1])
            info = dict(model_info) if model_info else {"id": getattr(model.config, "_name_or_path", None) or
                                                        type(model).__name__, "hidden_size": hidden}
        hidden = int(info.get("hidden_size") or model.get_input_embeddings().weight.shape[1])
        if applied is not None:
            _check_hidden_size(applied, info["id"], hidden)
            if isinstance(pretrained, (str, os.PathLike)) or model_info:
                applied.check_compatible(_same_model_id(applied, info), hidden_size=hidden)
        if kwargs.get("add_bos_token") is None and getattr(tokenizer, "chat_template", None):
            kwargs["add_bos_token"] = False
        super().__init__(pretrained=model, tokenizer=tokenizer, **kwargs)
        self.alignment = applied
        self.alignment_path = None if applied is None or isinstance(alignment, Alignment) else str(alignment)
        self.persona = applied.persona if applied is not None else None
        soft = None if applied is None else applied.soft_prompt
        embeddings = self.model.get_input_embeddings().weight
        self.soft_prompt = None if soft is None else soft.detach().to(embeddings.device, embeddings.dtype)
        self.cultbench_model_info = info
        self._with_persona_in_template: set[str] = set()

    # -- the soft prompt ------------------------------------------------------------------------

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Input embeddings of ``ids`` [batch, length] with the soft prompt in front."""
        tokens = self.model.get_input_embeddings()(ids)
        return torch.cat([self.soft_prompt.to(tokens.dtype).expand(ids.shape[0], -1, -1), tokens], dim=1)

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=self.mixed_precision_dtype,
                              enabled=self.mixed_precision_dtype is not None)

    def _model_call(self, inps, attn_mask=None, labels=None):
        """Logits [batch, n_virtual + length, vocab]; HFLM skips the virtual positions itself.

        HFLM pads on the right, so positions 0.. run over the soft prompt, then the text."""
        if self.soft_prompt is None or attn_mask is not None or labels is not None:
            return super()._model_call(inps, attn_mask, labels)
        with torch.no_grad(), self._autocast():
            return self.model(inputs_embeds=self._embed(inps)).logits

    def _model_generate(self, context, max_length, stop, **generation_kwargs):
        """Generation from the soft prompt, the left padding, then the context: the attention mask
        keeps the padding out and generate() numbers the positions from the mask."""
        if self.soft_prompt is None:
            return super()._model_generate(context, max_length, stop, **generation_kwargs)
        mask = generation_kwargs.pop("attention_mask", None)
        if mask is None:
            mask = torch.ones_like(context)
        # Greedy unless asked otherwise, as HFLM decides.
        generation_kwargs["temperature"] = generation_kwargs.get("temperature", 0.0)
        do_sample = generation_kwargs.get("do_sample")
        if generation_kwargs["temperature"] == 0.0 and do_sample is None:
            generation_kwargs["do_sample"] = do_sample = False
        if do_sample is False and generation_kwargs["temperature"] == 0.0:
            generation_kwargs.pop("temperature")
        n_virtual = self.soft_prompt.shape[0]
        mask = torch.cat([mask.new_ones(mask.shape[0], n_virtual), mask], dim=1)
        # With inputs_embeds, generate() returns (and the stop criteria see) the new tokens only.
        stopping = stop_sequences_criteria(self.tokenizer, stop, 0, context.shape[0])
        with torch.no_grad(), self._autocast():
            new = self.model.generate(inputs_embeds=self._embed(context), attention_mask=mask,
                                      max_new_tokens=max_length - context.shape[1], stopping_criteria=stopping,
                                      pad_token_id=self.tokenizer.pad_token_id, use_cache=True, **generation_kwargs)
        return torch.cat([context, new], dim=1)

    # -- the persona ----------------------------------------------------------------------------

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
        if self.persona:
            chat_history = [dict(m) for m in chat_history]
            if chat_history and chat_history[0].get("role") == "system":
                chat_history[0]["content"] = _join(self.persona, chat_history[0]["content"])
            else:
                chat_history.insert(0, {"role": "system", "content": self.persona})
        text = super().apply_chat_template(chat_history, add_generation_prompt=add_generation_prompt)
        if self.persona:
            self._with_persona_in_template.add(text)
        return text

    def _with_persona(self, requests):
        """Plain-text requests with the persona before their context (chat-rendered ones have it)."""
        if not self.persona:
            return requests
        out = []
        for req in requests:
            context, *rest = req.arguments
            if context and context not in self._with_persona_in_template:
                req = dataclasses.replace(req, arguments=(_join(self.persona, context), *rest))
            out.append(req)
        return out

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return super().loglikelihood(self._with_persona(requests), disable_tqdm=disable_tqdm)

    def generate_until(self, requests, disable_tqdm: bool = False):
        return super().generate_until(self._with_persona(requests), disable_tqdm=disable_tqdm)

    # -- bookkeeping ----------------------------------------------------------------------------

    def set_cache_hook(self, cache_hook) -> None:
        if getattr(cache_hook, "dbdict", None) is not None and self.alignment is not None:
            raise CultbenchError("lm-eval's --use_cache keys answers by request text only, not by model or "
                                 "alignment: answers cached for another soft prompt would be reused. "
                                 "Run the cultbench model without --use_cache")
        super().set_cache_hook(cache_hook)

    def describe_alignment(self) -> dict | None:
        a = self.alignment
        if a is None:
            return None
        soft = None
        if a.soft_prompt is not None:
            soft = {"shape": list(a.soft_prompt.shape),
                    "sha256": hashlib.sha256(a.soft_prompt.detach().cpu().float().numpy().tobytes()).hexdigest()}
        return {"path": self.alignment_path, "aligner": a.aligner, "seed": a.seed,
                "target": (a.problem or {}).get("target"), "model": a.model, "persona": a.persona,
                "soft_prompt": soft}

    def get_model_info(self) -> dict:
        """Model and alignment record for lm-eval's results (no network look-ups, unlike HFLM's)."""
        return {"model_num_parameters": int(sum(p.numel() for p in self._model.parameters())),
                "model_dtype": str(self._model.dtype), "cultbench_model": self.cultbench_model_info,
                "cultbench_alignment": self.describe_alignment()}
