"""The survey scorer: answer distributions of many candidates on every item, in batched forwards.

A candidate is a soft prompt (input embeddings ``[n_virtual, hidden]`` placed before the first
token, the PEFT prompt-tuning convention) and/or a persona text for the system prompt. For every
candidate x variant x item the scorer reads the next-token distribution over the option tokens.

Speed comes from three things, all exact in fp32:
- every prompt is tokenised once (per variant and persona) and cached;
- the prompts of all candidates x variants x items form a prefix tree (chat header, system
  prompt, a block's lead-in and scale are shared); each tree node's tokens go through the model
  once, and its children continue from its key/value cache;
- only the last position of each prompt reaches the output layer.
Batches are chunked so that one forward stays under ``max_batch_mb`` of cache and activations.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from transformers import DynamicCache

from cultbench.errors import CultbenchError
from cultbench.instruments import Instrument
from cultbench.prompts import PromptVariant, render_prompt


@dataclass
class ScoreResult:
    """Scores of C candidates on V variants and I items (answers in the instrument's order)."""

    probs: np.ndarray  # [C, V, I, K] answer distribution, renormalised over the K options
    option_mass: np.ndarray  # [C, V, I] next-token probability that fell on the option tokens
    expected: np.ndarray  # [C, V, I] expected answer
    indices: np.ndarray  # [C, V, D] indices per variant
    constants: dict
    variants: list[str]
    item_ids: list[str]
    dimension_ids: list[str]

    @property
    def mean_indices(self) -> np.ndarray:
        """[C, D] indices averaged over variants (= indices of the mean expected answers)."""
        return self.indices.mean(axis=1)


@dataclass
class _Node:
    tokens: list  # token ids; a negative id -(c+1) stands for candidate c's soft prompt
    parent: int  # index into the previous depth's kept rows, -1 at the root
    leaves: list = field(default_factory=list)  # (candidate, variant, item) ending here
    children: list = field(default_factory=list)  # keys of the sequences that go on


def _build_tree(sequences: dict[tuple, tuple]) -> list[list[_Node]]:
    """Radix tree of the sequences, as lists of nodes per depth; each node has >= 1 token."""
    levels: list[list[_Node]] = []

    def grow(keys: list[tuple], start: int, depth: int, parent: int) -> None:
        groups: dict = {}
        for key in keys:
            groups.setdefault(sequences[key][start], []).append(key)
        if len(levels) <= depth:
            levels.append([])
        for group in groups.values():
            seqs = [sequences[k] for k in group]
            end = min(len(s) for s in seqs)
            stop = start + 1
            while stop < end and all(s[stop] == seqs[0][stop] for s in seqs):
                stop += 1
            node = _Node(tokens=list(seqs[0][start:stop]), parent=parent)
            levels[depth].append(node)
            me = len(levels[depth]) - 1
            done = [k for k in group if len(sequences[k]) == stop]
            node.leaves = done
            rest = [k for k in group if len(sequences[k]) > stop]
            if rest:
                node.children = rest
                grow(rest, stop, depth + 1, me)

    grow(list(sequences), 0, 0, -1)
    return levels


class SurveyScorer:
    """Scores candidates on an instrument under prompt variants.

    Hyper-parameters only here; the model work happens in :meth:`score`.

    Args:
        model, tokenizer: a Hugging Face causal LM (frozen) and its tokenizer.
        instrument: the survey instrument.
        variants: prompt variants to score under.
        constants: overrides of the index constants C (dimension -> value).
        max_batch_mb: memory bound for one forward (key/value cache plus activations).
        autocast: ``None`` computes in the model's dtype; ``"bfloat16"`` runs matmuls in bf16
            (faster on CPUs with bf16, less exact: see the benchmark).
    """

    def __init__(self, model, tokenizer, instrument: Instrument, variants: Sequence[PromptVariant], *,
                 constants: dict | None = None, max_batch_mb: float = 1024.0, autocast: str | None = None):
        if not variants:
            raise CultbenchError("the scorer needs at least one prompt variant")
        self.model = model
        self.tokenizer = tokenizer
        self.instrument = instrument
        self.variants = list(variants)
        self.constants = instrument.constants(constants)
        self.max_batch_mb = float(max_batch_mb)
        self.autocast = autocast
        embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        if embeddings is None or not hasattr(embeddings, "weight"):
            raise CultbenchError(f"{type(model).__name__} gives no access to its input embeddings; "
                                 "soft prompts need them")
        self.embeddings = embeddings
        self.hidden_size = int(embeddings.weight.shape[1])
        self.device = embeddings.weight.device
        self._token_cache: dict[tuple, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        layers = cfg.num_hidden_layers
        heads = cfg.num_attention_heads
        kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        width = 2 if autocast else embeddings.weight.element_size()
        self._kv_bytes_per_token = 2 * layers * kv_heads * head_dim * width
        self._act_bytes_per_token = (4 * cfg.hidden_size + 3 * getattr(cfg, "intermediate_size", 4 * cfg.hidden_size)) * 4
        self._heads = heads

    # -- tokenisation -------------------------------------------------------------------------

    def prompt_tokens(self, variant_index: int, item_index: int, persona: str | None):
        """(prompt token ids, option token ids in displayed order 1..K), tokenised once."""
        key = (variant_index, item_index, persona)
        if key not in self._token_cache:
            variant = self.variants[variant_index]
            item = self.instrument.items[item_index]
            text = render_prompt(self.tokenizer, self.instrument, item, variant, persona)
            self._token_cache[key] = self._split_options(text)
        return self._token_cache[key]

    def _encode(self, text: str) -> list[int]:
        chat = bool(getattr(self.tokenizer, "chat_template", None))
        return list(self.tokenizer(text, add_special_tokens=not chat)["input_ids"])

    def _split_options(self, text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Prompt ids and one token per option, as the tokenizer splits prompt + option label.

        Without a chat template the option follows a space ("Answer: 3"); tokens shared by all
        options (such as a lone space) become part of the prompt, which leaves the renormalised
        option distribution unchanged.
        """
        chat = bool(getattr(self.tokenizer, "chat_template", None))
        delimiter = "" if chat else " "
        prompt = self._encode(text)
        tails = []
        for option in self.instrument.options:
            full = self._encode(text + delimiter + str(option))
            if full[: len(prompt)] != prompt:
                raise CultbenchError(f"tokenizer merges option {option} with the end of the prompt")
            tails.append(full[len(prompt):])
        while all(len(t) > 1 for t in tails) and len({t[0] for t in tails}) == 1:
            prompt.append(tails[0][0])
            tails = [t[1:] for t in tails]
        if any(len(t) != 1 for t in tails) or len({t[0] for t in tails}) != len(tails):
            raise CultbenchError("the option labels are not distinct single tokens for this tokenizer")
        return tuple(prompt), tuple(t[0] for t in tails)

    # -- scoring ------------------------------------------------------------------------------

    def score(self, soft_prompts=None, personas: Sequence[str | None] | None = None) -> ScoreResult:
        """Score candidates: ``soft_prompts`` [C, n_virtual, hidden] (or a list of such tensors,
        None entries for none) and/or ``personas`` (C system-prompt texts, None for none)."""
        soft = self._check_soft(soft_prompts)
        n = max(len(soft) if soft is not None else 0, len(personas) if personas is not None else 0)
        if n == 0:
            soft, personas, n = [None], [None], 1
        if soft is not None and personas is not None and len(soft) != len(personas):
            raise CultbenchError(f"{len(soft)} soft prompts but {len(personas)} personas")
        soft = soft if soft is not None else [None] * n
        personas = list(personas) if personas is not None else [None] * n
        n_var, n_items, n_opt = len(self.variants), len(self.instrument.items), len(self.instrument.options)

        sequences, option_ids = {}, {}
        for c in range(n):
            for v in range(n_var):
                for i in range(n_items):
                    ids, opts = self.prompt_tokens(v, i, personas[c])
                    head = (-(c + 1),) if soft[c] is not None else ()
                    sequences[(c, v, i)] = head + ids
                    option_ids[(c, v, i)] = opts
        last_logits = self._run_tree(_build_tree(sequences), soft)

        keys = list(sequences)
        logits = torch.stack([last_logits[k] for k in keys]).float()
        log_probs = torch.log_softmax(logits, dim=-1)
        opts = torch.tensor([option_ids[k] for k in keys], device=logits.device)
        option_lp = log_probs.gather(1, opts)  # [N, K] in displayed order
        mass = option_lp.exp().sum(-1)
        probs = torch.softmax(option_lp, dim=-1).double().cpu().numpy().reshape(n, n_var, n_items, n_opt)
        mass = mass.double().cpu().numpy().reshape(n, n_var, n_items)
        # Back from displayed option numbers to the instrument's answer values.
        values = np.array(self.instrument.options, dtype=float)
        for v, variant in enumerate(self.variants):
            order = [self.instrument.options.index(a) for a in variant.displayed_answers(self.instrument.options)]
            reordered = np.zeros_like(probs[:, v])
            reordered[..., order] = probs[:, v]
            probs[:, v] = reordered
        expected = probs @ values
        indices = self.instrument.indices(expected, self.constants)
        return ScoreResult(probs=probs, option_mass=mass, expected=expected, indices=indices,
                           constants=dict(self.constants), variants=[v.name for v in self.variants],
                           item_ids=self.instrument.item_ids, dimension_ids=self.instrument.dimension_ids)

    def _check_soft(self, soft_prompts):
        if soft_prompts is None:
            return None
        if isinstance(soft_prompts, torch.Tensor):
            if soft_prompts.dim() == 2:
                soft_prompts = soft_prompts[None]
            soft_prompts = list(soft_prompts)
        out = []
        for s in soft_prompts:
            if s is None:
                out.append(None)
                continue
            s = torch.as_tensor(s)
            if s.dim() != 2 or s.shape[1] != self.hidden_size or s.shape[0] < 1:
                raise CultbenchError(f"a soft prompt must be [n_virtual >= 1, {self.hidden_size}], "
                                     f"got {list(s.shape)}")
            out.append(s.to(self.device, self.embeddings.weight.dtype))
        return out

    def _autocast(self):
        if not self.autocast:
            return contextlib.nullcontext()
        from cultbench.models import resolve_dtype

        return torch.autocast(self.device.type, dtype=resolve_dtype(self.autocast))

    def _rows_per_chunk(self, past_len: int, new_len: int) -> int:
        per_row = (2 * self._kv_bytes_per_token * (past_len + new_len)
                   + self._act_bytes_per_token * new_len
                   + 4 * self._heads * new_len * (past_len + new_len))
        return max(1, int(self.max_batch_mb * 2**20 // per_row))

    @torch.inference_mode()
    def _run_tree(self, levels: list[list[_Node]], soft: list) -> dict:
        """Forward the tree depth by depth; returns last-position logits per (c, v, i)."""
        out: dict = {}
        past = None  # (per-layer (keys, values), mask [rows, L], real lengths [rows], row of node)
        for nodes in levels:
            kept_parts: list = []
            # Longest first, so each chunk's first row bounds its width and padding stays small.
            order = sorted(range(len(nodes)), key=lambda j: -self._segment_len(nodes[j], soft))
            past_len = past[1].shape[1] if past is not None else 0
            start = 0
            while start < len(order):
                rows = self._rows_per_chunk(past_len, self._segment_len(nodes[order[start]], soft))
                chunk = order[start:start + rows]
                start += len(chunk)
                logits, new_past = self._forward_chunk([nodes[j] for j in chunk], soft, past)
                for row, j in enumerate(chunk):
                    for leaf in nodes[j].leaves:
                        out[leaf] = logits[row]
                rows_kept = [row for row, j in enumerate(chunk) if nodes[j].children]
                if rows_kept:
                    kept_parts.append(([chunk[r] for r in rows_kept], new_past, rows_kept))
            past = self._merge_kept(kept_parts) if kept_parts else None
        return out

    def _segment_len(self, node: _Node, soft: list) -> int:
        extra = sum(soft[-t - 1].shape[0] - 1 for t in node.tokens if t < 0)
        return len(node.tokens) + extra

    def _embed(self, node: _Node, soft: list) -> torch.Tensor:
        ids = [t for t in node.tokens if t >= 0]
        emb = self.embeddings(torch.tensor(ids, device=self.device, dtype=torch.long)) if ids else None
        if node.tokens[0] < 0:  # a soft prompt opens the root segment
            prompt = soft[-node.tokens[0] - 1]
            return torch.cat([prompt, emb]) if emb is not None else prompt
        return emb

    def _forward_chunk(self, nodes: list[_Node], soft: list, past):
        embeds = [self._embed(node, soft) for node in nodes]
        width = max(e.shape[0] for e in embeds)
        rows = len(nodes)
        hidden = embeds[0].shape[1]
        inputs = torch.zeros(rows, width, hidden, dtype=embeds[0].dtype, device=self.device)
        new_mask = torch.zeros(rows, width, dtype=torch.long, device=self.device)
        for r, e in enumerate(embeds):  # left padding: every row's last position is real
            inputs[r, width - e.shape[0]:] = e
            new_mask[r, width - e.shape[0]:] = 1
        if past is None:
            mask, cache, offset = new_mask, None, torch.zeros(rows, dtype=torch.long, device=self.device)
        else:
            layers, past_mask, lengths, row_of_node = past
            idx = torch.tensor([row_of_node[node.parent] for node in nodes], device=self.device)
            cache = DynamicCache(ddp_cache_data=[(k[idx], v[idx]) for k, v in layers])
            mask = torch.cat([past_mask[idx], new_mask], dim=1)
            offset = lengths[idx]
        # Explicit positions: padding must not shift them (transformers does not derive them
        # from the mask in a plain forward).
        positions = (offset[:, None] + new_mask.cumsum(1) - 1).clamp(min=0)
        with self._autocast():
            output = self.model(inputs_embeds=inputs, attention_mask=mask, position_ids=positions,
                                past_key_values=cache if cache is not None else DynamicCache(),
                                use_cache=True, logits_to_keep=1)
        new_cache = output.past_key_values
        layers = [(layer.keys, layer.values) for layer in new_cache.layers]
        return output.logits[:, -1], (layers, mask, offset + new_mask.sum(1))

    def _merge_kept(self, parts):
        """One cache for the next depth: kept rows of all chunks, left-padded to one length,
        indexed by node position at this depth."""
        total = max(p[1][1].shape[1] for p in parts)
        position = {}
        layers_out, masks, lengths = None, [], []
        for node_ids, (layers, mask, length), rows in parts:
            sel = torch.tensor(rows, device=self.device)
            pad = total - mask.shape[1]
            masks.append(torch.nn.functional.pad(mask[sel], (pad, 0)))
            lengths.append(length[sel])
            padded = [(torch.nn.functional.pad(k[sel], (0, 0, pad, 0)), torch.nn.functional.pad(v[sel], (0, 0, pad, 0)))
                      for k, v in layers]
            layers_out = padded if layers_out is None else [
                (torch.cat([a, k]), torch.cat([b, v])) for (a, b), (k, v) in zip(layers_out, padded)]
            for node_id in node_ids:
                position[node_id] = len(position)
        # Children name their parent by its index at this depth: ``position`` maps it to its row.
        return layers_out, torch.cat(masks), torch.cat(lengths), position
