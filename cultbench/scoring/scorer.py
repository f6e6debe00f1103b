"""The survey scorer: answer distributions of many candidates on every item, in batched forwards.

A candidate is a soft prompt (input embeddings ``[n_virtual, hidden]`` placed before the first
token, the PEFT prompt-tuning convention) and/or a persona text for the system prompt. For every
candidate x variant x item the scorer reads the next-token distribution over the option tokens.

Speed comes from three things, all exact in fp32:
- every prompt is tokenised once (per variant and persona) and packed once (``packing``): the
  prompts of a candidate share their prefixes inside a few rows with tree attention, so each
  shared token is computed once, and candidates with the same layout differ only in the
  soft-prompt slots;
- all candidates x variants go through the model in a few large batched forwards, chunked so
  that one forward stays under ``max_batch_mb`` of activations;
- only the last position of each prompt reaches the output layer.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from cultbench.errors import CultbenchError
from cultbench.instruments import Instrument
from cultbench.evaluation.kinds import kind_of
from cultbench.evaluation.metrics import DISTRIBUTION
from cultbench.scoring.models import resolve_dtype
from cultbench.scoring.packing import SOFT, Layout, pack, stack_rows, suffix_rows
from cultbench.prompts import PromptVariant, displayed_options, option_labels, render_prompt


@dataclass
class ScoreResult:
    """Scores of C candidates on V variants and I items (answers in the instrument's order)."""

    probs: np.ndarray  # [C, V, I, K] answer distribution, renormalised over the K options
    # (distribution instruments: K is the largest option count, zero beyond an item's own)
    option_mass: np.ndarray  # [C, V, I] next-token probability that fell on the option tokens
    expected: np.ndarray  # [C, V, I] expected answer (NaN for distribution instruments)
    indices: np.ndarray  # [C, V, D] indices per variant (distribution instruments: the answer
    # shares per (item, option) slot, see ``cultbench.instruments.distribution``)
    constants: dict
    variants: list[str]
    item_ids: list[str]
    dimension_ids: list[str]

    @property
    def mean_indices(self) -> np.ndarray:
        """[C, D] indices averaged over variants (= indices of the mean expected answers)."""
        return self.indices.mean(axis=1)


class SurveyScorer:
    """Scores candidates on an instrument under prompt variants.

    Hyper-parameters only here; the model work happens in :meth:`score`.

    Args:
        model, tokenizer: a Hugging Face causal LM (frozen) and its tokenizer.
        instrument: the survey instrument.
        variants: prompt variants to score under.
        constants: overrides of the index constants C (dimension -> value).
        max_batch_mb: memory bound for the activations of one forward.
        dtype: compute in this dtype (e.g. ``"bfloat16"``: about 3x faster on CPUs with bf16,
            less exact, see the benchmark); the scorer then keeps its own cast copy of the model
            and the caller's model is left as it is. ``None`` computes in the model's dtype.
        padding: the largest fraction of a forward's tokens that may be right-padding, so that
            trunk rows and suffix rows of near widths share a forward (exact: causal attention).
            Default (:func:`default_padding`) 0 for index instruments on a CPU (rows of one width
            per forward), 0.25 for distribution instruments, whose questions share little beyond
            the chat header, and on a GPU, where each forward's launches cost more than padding.
    """

    def __init__(self, model, tokenizer, instrument: Instrument, variants: Sequence[PromptVariant], *,
                 constants: dict | None = None, max_batch_mb: float = 512.0, dtype: str | None = None,
                 padding: float | None = None):
        if not variants:
            raise CultbenchError("the scorer needs at least one prompt variant")
        embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        if embeddings is None or not hasattr(embeddings, "weight"):
            raise CultbenchError(f"{type(model).__name__} gives no access to its input embeddings; "
                                 "soft prompts need them")
        if dtype is not None and resolve_dtype(dtype) != embeddings.weight.dtype:
            model = copy.deepcopy(model).to(resolve_dtype(dtype))
            embeddings = model.get_input_embeddings()
        self.model = model
        self.tokenizer = tokenizer
        self.instrument = instrument
        self.variants = list(variants)
        self.constants = instrument.constants(constants)
        self.max_batch_mb = float(max_batch_mb)
        self.embeddings = embeddings
        self.hidden_size = int(embeddings.weight.shape[1])
        self.device = embeddings.weight.device
        self.padding = float(padding if padding is not None else default_padding(instrument, self.device))
        if not 0 <= self.padding < 1:
            raise CultbenchError(f"padding must lie in [0, 1), got {padding}")
        self.dtype = embeddings.weight.dtype
        self._token_cache: dict[tuple, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self._layout_cache: dict[tuple, Layout] = {}
        cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        # Bytes per token of one forward's live activations (hidden states, attention
        # projections, MLP) and per attention entry (mask plus scores), for chunking.
        inner = getattr(cfg, "intermediate_size", 4 * cfg.hidden_size)
        self._bytes_per_token = (6 * cfg.hidden_size + 3 * inner) * 4
        self._bytes_per_pair = 1 + 4 * cfg.num_attention_heads
        # Cached keys and values of every layer, per token (a suffix forward holds a copy per suffix row).
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        self._bytes_per_kv = 2 * cfg.num_hidden_layers * kv_heads * head_dim * self.dtype.itemsize
        # transformers 5 names the forward's cache argument ``cache``; earlier ``past_key_values``.
        self._cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self.tokens_forwarded = 0  # real (non-padding) tokens through the model, for benchmarks

    # -- tokenisation -------------------------------------------------------------------------

    def prompt_tokens(self, variant_index: int, item_index: int, persona: str | None):
        """(prompt token ids, option token ids in displayed order 1..K), tokenised once."""
        key = (variant_index, item_index, persona)
        if key not in self._token_cache:
            variant = self.variants[variant_index]
            item = self.instrument.items[item_index]
            text = render_prompt(self.tokenizer, self.instrument, item, variant, persona)
            self._token_cache[key] = self._split_options(text, option_labels(self.instrument, item, variant))
        return self._token_cache[key]

    def _encode(self, text: str) -> list[int]:
        chat = bool(getattr(self.tokenizer, "chat_template", None))
        return list(self.tokenizer(text, add_special_tokens=not chat)["input_ids"])

    def _split_options(self, text: str, labels: Sequence[str]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Prompt ids and one token per option, as the tokenizer splits prompt + option label.

        Without a chat template the option follows a space ("Answer: 3"); tokens shared by all
        options (such as a lone space) become part of the prompt, which leaves the renormalised
        option distribution unchanged.
        """
        chat = bool(getattr(self.tokenizer, "chat_template", None))
        delimiter = "" if chat else " "
        prompt = self._encode(text)
        tails = []
        for option in labels:
            full = self._encode(text + delimiter + option)
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

    def layout(self, variants: int | Sequence[int], persona: str | None, n_virtual: int) -> Layout:
        """The packed layout of one candidate's prompts under one variant, or under several packed
        together (cached); its prompts are keyed (variant index, item index)."""
        group = (variants,) if isinstance(variants, int) else tuple(variants)
        key = (group, persona, n_virtual)
        if key not in self._layout_cache:
            prompts = {(v, i): (SOFT,) * n_virtual + self.prompt_tokens(v, i, persona)[0]
                       for v in group for i in range(len(self.instrument.items))}
            self._layout_cache[key] = pack(prompts)
        return self._layout_cache[key]

    def wording_groups(self, variants: Sequence[int]) -> list[tuple[int, ...]]:
        """``variants`` (indices) grouped by wording, in order of first appearance: a wording's
        renderings are packed into one tree, since its scale orders share the chat header, the
        system prompt, the instruction and each block's lead-in (17-20% fewer tokens for the
        bundled model's two orders than two trees)."""
        groups: dict[str, list[int]] = {}
        for v in variants:
            groups.setdefault(self.variants[v].wording, []).append(v)
        return [tuple(group) for group in groups.values()]

    def score(self, soft_prompts=None, personas: Sequence[str | None] | None = None) -> ScoreResult:
        """Score candidates: ``soft_prompts`` [C, n_virtual, hidden] (or a list of such tensors,
        None entries for none) and/or ``personas`` (C system-prompt texts, None for none)."""
        soft, personas, n = self._candidates(soft_prompts, personas)
        variants = list(range(len(self.variants)))
        option_lp = self._option_log_probs(soft, personas, variants, grad=False)  # [C, V, I, K]
        mass = option_lp.exp().sum(-1).double().cpu().numpy()
        probs = self._answer_probs(option_lp, variants).cpu().numpy()
        if self._distribution:
            expected = np.full(probs.shape[:-1], np.nan)
            indices = self.instrument.flatten(probs)
        else:
            expected = probs @ np.array(self.instrument.options, dtype=float)
            indices = self.instrument.indices(expected, self.constants)
        return ScoreResult(probs=probs, option_mass=mass, expected=expected, indices=indices,
                           constants=dict(self.constants), variants=[v.name for v in self.variants],
                           item_ids=self.instrument.item_ids, dimension_ids=self.instrument.dimension_ids)

    def expected_answers(self, soft_prompts=None, personas: Sequence[str | None] | None = None,
                         variants: Sequence[int] | None = None) -> torch.Tensor:
        """Expected answers [C, V, I] (float64) as a torch tensor with autograd: the gradient flows
        back to ``soft_prompts`` (e.g. a leaf tensor with ``requires_grad``). The same packed
        forwards as :meth:`score` (same values), with the model's weights frozen for the call.

        ``variants``: indices into this scorer's variants (default: all). The graph of every
        variant asked for is held until ``backward``, so a caller short of memory asks for a few
        variants at a time and accumulates the gradient (the fitness is a mean over variants).
        """
        if self._distribution:
            raise CultbenchError(f"{self.instrument.name} is a distribution instrument: it has no expected answers "
                                 "to differentiate (use indices_with_grad: its answer shares)")
        probs = self._answer_probs_with_grad(soft_prompts, personas, variants)
        options = torch.tensor(self.instrument.options, dtype=torch.float64, device=probs.device)
        return probs @ options

    def indices_with_grad(self, soft_prompts=None, personas: Sequence[str | None] | None = None,
                          variants: Sequence[int] | None = None) -> torch.Tensor:
        """[C, V, D] (float64) with autograd, what :meth:`score` gives as ``indices``: an index
        instrument's indices (:meth:`indices_tensor` of :meth:`expected_answers`), or a distribution
        instrument's answer shares per (item, option) slot. ``variants`` as for :meth:`expected_answers`."""
        if not self._distribution:
            return self.indices_tensor(self.expected_answers(soft_prompts, personas, variants))
        probs = self._answer_probs_with_grad(soft_prompts, personas, variants)
        return torch.cat([probs[..., i, :k] for i, k in enumerate(self.instrument.option_counts)], dim=-1)

    def _answer_probs_with_grad(self, soft_prompts, personas, variants) -> torch.Tensor:
        soft, personas, _ = self._candidates(soft_prompts, personas)
        variants = list(range(len(self.variants))) if variants is None else [int(v) for v in variants]
        if not variants or any(not 0 <= v < len(self.variants) for v in variants):
            raise CultbenchError(f"variant indices must lie in 0..{len(self.variants) - 1}, got {variants}")
        return self._answer_probs(self._option_log_probs(soft, personas, variants, grad=True), variants)

    def indices_tensor(self, expected: torch.Tensor) -> torch.Tensor:
        """Indices [..., D] from expected answers [..., I] in torch (differentiable): the
        instrument's formulas as the matrix :meth:`Instrument.weights` plus this scorer's
        constants, as :meth:`Instrument.indices` computes them in numpy."""
        weights = torch.from_numpy(self.instrument.weights()).to(expected)
        constants = torch.tensor(list(self.constants.values()), dtype=expected.dtype, device=expected.device)
        return expected @ weights + constants

    @property
    def _distribution(self) -> bool:
        return kind_of(self.instrument).name == DISTRIBUTION

    def _candidates(self, soft_prompts, personas) -> tuple[list, list, int]:
        """(soft prompts, personas, C): both lists of length C, None where a candidate has none."""
        soft = self._check_soft(soft_prompts)
        n = max(len(soft) if soft is not None else 0, len(personas) if personas is not None else 0)
        if n == 0:
            soft, personas, n = [None], [None], 1
        if soft is not None and personas is not None and len(soft) != len(personas):
            raise CultbenchError(f"{len(soft)} soft prompts but {len(personas)} personas")
        soft = soft if soft is not None else [None] * n
        personas = list(personas) if personas is not None else [None] * n
        return soft, personas, n

    def _option_log_probs(self, soft: list, personas: list, variants: list[int], grad: bool) -> torch.Tensor:
        """Next-token log-probabilities of the options, [C, len(variants), I, K] in displayed order."""
        n, n_var, n_items = len(soft), len(variants), len(self.instrument.items)
        work = []  # (candidate, its renderings of one wording, their layout)
        for c in range(n):
            n_virtual = soft[c].shape[0] if soft[c] is not None else 0
            work.extend((c, renderings, self.layout(renderings, personas[c], n_virtual))
                        for renderings in self.wording_groups(variants))
        logits = self._forward(work, soft, grad=grad)  # (c, v, item) -> logits [vocab]
        keys = [(c, v, i) for c in range(n) for v in variants for i in range(n_items)]
        n_opt = max(len(option_labels(self.instrument, it, v)) for it in self.instrument.items for v in self.variants)
        with contextlib.nullcontext() if grad else torch.inference_mode():
            log_probs = torch.log_softmax(torch.stack([logits[k] for k in keys]).float(), dim=-1)
            option_ids = [self.prompt_tokens(v, i, personas[c])[1] for c, v, i in keys]
            opts = torch.tensor([ids + (ids[0],) * (n_opt - len(ids)) for ids in option_ids], device=log_probs.device)
            option_lp = log_probs.gather(1, opts)  # [N, K] in displayed order
            if any(len(ids) < n_opt for ids in option_ids):  # items with fewer options: no mass on the padding
                width = torch.tensor([len(ids) for ids in option_ids], device=log_probs.device)
                option_lp = option_lp.masked_fill(torch.arange(n_opt, device=log_probs.device) >= width[:, None],
                                                  -torch.inf)
            return option_lp.reshape(n, n_var, n_items, n_opt)

    def _answer_probs(self, option_lp: torch.Tensor, variants: list[int]) -> torch.Tensor:
        """Answer distributions [C, V, I, K] in float64, renormalised over the options and put
        back from displayed labels into the instrument's option order (reversed orders map
        back); zero beyond an item's own options."""
        shown = torch.softmax(option_lp.double(), dim=-1)
        n_opt = shown.shape[-1]
        # position[v, i, j]: where option j of item i is displayed under variant v (j itself,
        # a padded position of zero probability, beyond the item's options)
        position = torch.arange(n_opt).repeat(len(variants), len(self.instrument.items), 1)
        for v_pos, v in enumerate(variants):
            for i, item in enumerate(self.instrument.items):
                order = displayed_options(self.instrument, item, self.variants[v])
                position[v_pos, i, :len(order)] = torch.from_numpy(np.argsort(order))
        return shown.gather(-1, position.to(shown.device).expand_as(shown))

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
            out.append(s.to(self.device, self.dtype))
        return out

    def _rows_per_chunk(self, width: int) -> int:
        per_row = self._bytes_per_token * width + self._bytes_per_pair * width * width + self._bytes_per_kv * width
        return max(1, int(self.max_batch_mb * 2**20 // per_row))

    def _forward(self, work: list, soft: list, grad: bool = False) -> dict:
        """Logits at every prompt's last position: trunk rows in one forward per chunk, then the
        suffixes that continue those rows, reading the chunk's cached keys and values. A trunk
        row's suffixes share suffix rows (``packing.suffix_rows``: end to end, block-diagonal
        mask, up to twice the trunk row's width each), so its keys and values are read once per
        suffix row, not once per suffix, and the second forward holds few, wide rows.

        With ``padding`` 0 a forward only holds rows of one width (trunk rows of equal width,
        suffix rows of equal width), so nothing is padded; otherwise near widths share a forward.
        The batch size still depends on the other candidates, and fp32 kernels may round some
        logits an ulp differently for another batch size (a population split over workers; see
        docs/distributed.md).

        Host-to-device copies are asynchronous (``non_blocking``) and nothing reads a device
        value back before the last forward, so the host queues forwards ahead of the GPU.

        ``grad``: run with autograd (the soft prompts' gradient), the weights frozen meanwhile;
        otherwise under ``torch.inference_mode``.
        """
        with (self._weights_frozen() if grad else torch.inference_mode()):
            return self._forward_rows(work, soft)

    def _forward_rows(self, work: list, soft: list) -> dict:
        out: dict = {}
        rows = [(c, renderings, row, [s for s in layout.suffixes if s.row == r])
                for c, renderings, layout in work for r, row in enumerate(layout.rows)]
        for width, group in _buckets(rows, lambda w: w[2].width, self.padding):
            for chunk in _chunks(group, self._rows_per_chunk(width)):
                cache, mask = self._forward_trunk(chunk, soft, out)
                packed = [(i, srow) for i, (_, _, row, own) in enumerate(chunk) if own
                          for srow in suffix_rows(own, 2 * row.width)]
                forwards = [part for length, same in _buckets(packed, lambda x: x[1].width, self.padding)
                            for part in _chunks(same, self._rows_per_chunk(width + length))]
                for k, part in enumerate(forwards):
                    # the last suffix forward may extend the trunk's cache itself when it holds one
                    # suffix row per trunk row, in order: no copy of the cached keys and values
                    own_cache = k == len(forwards) - 1 and [i for i, _ in part] == list(range(len(chunk)))
                    self._forward_suffixes(part, chunk, cache, mask, out, own_cache)
                del cache
        return out

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(self.device, non_blocking=True)

    def _forward_trunk(self, chunk: list, soft: list, out: dict):
        """The trunk rows' forward; returns its cache and the rows' attention mask (on the host)."""
        ids, positions, mask = stack_rows([row for _, _, row, _ in chunk])
        slot_rows, slot_cols, values = [], [], []
        for r, (c, _, row, _) in enumerate(chunk):
            slots = (ids[r] == SOFT).nonzero().squeeze(1)
            if len(slots):  # every segment of the row carries its own copy of the soft prompt
                slot_rows.append(torch.full_like(slots, r))
                slot_cols.append(slots)
                values.append(soft[c].repeat(len(slots) // soft[c].shape[0], 1))
        inputs = self.embeddings(self._to_device(ids.clamp(min=0)))
        if values:
            inputs[self._to_device(torch.cat(slot_rows)), self._to_device(torch.cat(slot_cols))] = torch.cat(values)
        ends = [(r, pos, (c, *key)) for r, (c, _, row, _) in enumerate(chunk) for key, pos in row.leaves.items()]
        self.tokens_forwarded += sum(row.width for _, _, row, _ in chunk)
        cache = self._new_cache()
        self._run(inputs, self._to_device(mask), self._to_device(positions), ends, out, cache)
        return cache, mask

    def _forward_suffixes(self, part: list, chunk: list, cache, trunk_mask: torch.Tensor, out: dict,
                          own_cache: bool = False) -> None:
        """Suffix rows [n, S]: a token of a suffix sees its parent's view of the trunk row, then
        that suffix's tokens up to itself. Rows narrower than S are right-padded (a padding token
        sees itself only). ``own_cache``: ``part`` holds one row per trunk row in order, and the
        trunk's cache is extended in place instead of copied."""
        n, size, trunk = len(part), max(srow.width for _, srow in part), trunk_mask.shape[-1]
        ids = torch.zeros(n, size, dtype=torch.long)
        positions = torch.zeros(n, size, dtype=torch.long)
        mask = torch.zeros(n, 1, size, trunk + size, dtype=torch.bool)
        mask[:, 0, :, trunk:] = torch.eye(size, dtype=torch.bool)
        ends = []
        for j, (i, srow) in enumerate(part):
            c = chunk[i][0]
            for offset, s in srow.suffixes:
                k = len(s.ids)
                ids[j, offset:offset + k] = torch.tensor(s.ids)
                positions[j, offset:offset + k] = torch.arange(s.start, s.start + k)
                mask[j, 0, offset:offset + k, :trunk] = trunk_mask[i, 0, s.parent]
                mask[j, 0, offset:offset + k, trunk + offset:trunk + offset + k] = torch.ones(k, k, dtype=torch.bool).tril()
                ends += [(j, offset + k - 1, (c, *key)) for key in s.leaves]
                self.tokens_forwarded += k
        if own_cache:
            past = cache
        else:
            rows = self._to_device(torch.tensor([i for i, _ in part]))
            past = self._new_cache([(layer.keys[rows], layer.values[rows]) for layer in cache.layers])
        self._run(self.embeddings(self._to_device(ids)), self._to_device(mask), self._to_device(positions), ends,
                  out, past)

    def _run(self, inputs, mask, positions, ends: list, out: dict, cache) -> None:
        """One forward; the logits at ``ends`` (row, position, key) go to ``out[key]``."""
        rows = self._to_device(torch.tensor([r for r, _, _ in ends], dtype=torch.long))
        positions_at = self._to_device(torch.tensor([p for _, p, _ in ends], dtype=torch.long))
        with self._head_on(rows, positions_at):
            logits = self.model(inputs_embeds=inputs, attention_mask=self._attention_mask(mask),
                                position_ids=positions, use_cache=True, **{self._cache_arg: cache}).logits
        for k, (_, _, key) in enumerate(ends):
            out[key] = logits[0, k]

    @contextlib.contextmanager
    def _weights_frozen(self):
        """Autograd on, the model's parameters out of the graph (their flags restored after), so
        a backward computes the soft prompt's gradient only."""
        params = list(self.model.parameters())
        flags = [p.requires_grad for p in params]
        try:
            for p in params:
                p.requires_grad_(False)
            with torch.enable_grad():
                yield
        finally:
            for p, flag in zip(params, flags):
                p.requires_grad_(flag)

    def _new_cache(self, layers=None):
        from transformers import DynamicCache

        return DynamicCache() if layers is None else DynamicCache(ddp_cache_data=layers)

    def _attention_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """The 4-D mask as the model's attention implementation takes it: boolean for SDPA,
        additive (0 / dtype minimum) for the eager implementation."""
        if getattr(self.model.config, "_attn_implementation", "sdpa") == "eager":
            return torch.zeros(mask.shape, dtype=self.dtype, device=mask.device).masked_fill(
                ~mask, torch.finfo(self.dtype).min)
        return mask

    @contextlib.contextmanager
    def _head_on(self, rows: torch.Tensor, positions: torch.Tensor):
        """Feed the output layer only the prompts' last positions: a pre-hook gathers them, so the
        model's own head code (scaling, soft-capping) still runs, on [1, N, hidden]."""
        head = self.model.get_output_embeddings()
        if head is None:
            raise CultbenchError(f"{type(self.model).__name__} has no output layer to read answers from")
        handle = head.register_forward_pre_hook(lambda _m, args: (args[0][rows, positions][None], *args[1:]))
        try:
            yield
        finally:
            handle.remove()


def default_padding(instrument: Instrument, device: torch.device) -> float:
    """The scorer's padding unless given: 0.25 for distribution instruments (their items share
    little beyond the chat header, so their suffixes differ in length and one forward per length
    would hold one or two rows) and on a GPU (a Llama-3-8B-shaped model on an H200 scored 10
    candidates 1.46x faster with 0.25 than with 0, 20 and 40 within 3%, and took prompt-tuning
    steps 1.8-3.1x faster: docs/gpu-check-h200.json); else 0, rows of one width per forward."""
    distribution = kind_of(instrument).name == DISTRIBUTION
    return 0.25 if distribution or torch.device(device).type == "cuda" else 0.0


def _by_width(items: list, width) -> list[tuple[int, list]]:
    """Items grouped by ``width(item)``, widest first, each group in its original order."""
    groups: dict = {}
    for item in items:
        groups.setdefault(width(item), []).append(item)
    return sorted(groups.items(), key=lambda g: -g[0])


def _buckets(items: list, width, padding: float) -> list[tuple[int, list]]:
    """Items grouped for one forward each, widest first: by equal ``width(item)`` when
    ``padding`` is 0, else each group spans widths down to ``(1 - padding)`` of its widest, so at
    most that fraction of a group's tokens is padding."""
    if padding == 0:
        return _by_width(items, width)
    groups: list[tuple[int, list]] = []
    for item in sorted(items, key=lambda x: -width(x)):
        if groups and width(item) >= groups[-1][0] * (1 - padding):
            groups[-1][1].append(item)
        else:
            groups.append((width(item), [item]))
    return groups


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def score_candidate(model, tokenizer, instrument, variants, *, soft_prompt=None, persona: str | None = None,
                    baseline: bool = False, constants: dict | None = None, max_batch_mb: float | None = None):
    """(the scorer, its scores) of one candidate (a soft prompt and/or a persona, or nothing) on
    ``variants``; with ``baseline``, the naive model (no soft prompt, no persona) as a second
    candidate in the same call. What both kinds of evaluation start from."""
    kwargs = {} if max_batch_mb is None else {"max_batch_mb": max_batch_mb}
    scorer = SurveyScorer(model, tokenizer, instrument, variants, constants=constants, **kwargs)
    if baseline:
        return scorer, scorer.score([soft_prompt, None], [persona, None])
    return scorer, scorer.score(None if soft_prompt is None else [soft_prompt], [persona])
