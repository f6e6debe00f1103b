"""The soft-prompt search space: prompt = P0 + A z, z in a box of R^d.

- P0 [n_virtual, hidden]: the input embeddings of an initial text's tokens (by default the ICL
  persona with the target's country filled in, so z = 0 is the cultural prompt written as
  embeddings), taken from the embedding MODULE's output (``model.get_input_embeddings()(ids)``),
  which is what the model sees for those tokens: some models scale it (Gemma multiplies by
  sqrt(hidden)), so the raw weight matrix would be wrong. By default n_virtual is the text's token
  count; an explicit n_virtual cycles a shorter text or cuts a longer one; an empty text gives
  P0 = 0 (and then needs an explicit n_virtual). :func:`initial_prompt` builds it, for any aligner
  that starts a soft prompt from a text.
- A [n_virtual*hidden, d]: a fixed random projection drawn from ``projection_seed`` with entries
  N(0, sigma^2), sigma = s / sqrt(d), where s = :func:`embedding_scale` is the standard deviation
  of the embedding module's output over the whole vocabulary (every entry of every token's
  embedding). Then each entry of A z has standard deviation s * sqrt(mean(z_i^2)): z uniform in
  [-1, 1] gives s/sqrt(3), a corner of the box s; the searches' default bounds (-3, 3) reach three
  embedding spreads (calibrated: docs/aligners.md).
- d = n_virtual*hidden means no projection: A = s * I, scaled the same way so that the bounds
  mean the same thing in both cases.

The projection is computed in float64 and rounded to the embedding dtype once, so a candidate
gets the same prompt whether it is computed alone or in a population.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cultbench.errors import CultbenchError

# torch is imported inside the functions that build tensors: importing the aligners (to list them)
# must not take torch's seconds.
MAX_VIRTUAL_TOKENS = 512
_SCALE_CHUNK = 4096  # token ids embedded at once when computing the scale


def embedding_module(model) -> torch.nn.Module:
    """The model's input embedding module; a clear error when it has none (or no weight matrix)."""
    import torch

    get = getattr(model, "get_input_embeddings", None)
    embeddings = get() if callable(get) else None
    weight = getattr(embeddings, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise CultbenchError(f"{type(model).__name__} gives no access to its input embeddings "
                             "(get_input_embeddings().weight); soft prompts need them")
    return embeddings


def embed_ids(model, ids) -> torch.Tensor:
    """What the model's embedding module gives for token ids: [len(ids), hidden], its dtype and device."""
    import torch

    module = embedding_module(model)
    ids = torch.as_tensor(list(ids), dtype=torch.long, device=module.weight.device)
    with torch.no_grad():
        return module(ids).detach()


def embedding_scale(model) -> float:
    """Standard deviation of the embedding module's output over the whole vocabulary (every
    entry of every token's input embedding, computed in float64, a chunk of ids at a time)."""
    import torch

    module = embedding_module(model)
    vocab = module.weight.shape[0]
    total = squares = 0.0
    count = 0
    for start in range(0, vocab, _SCALE_CHUNK):
        ids = torch.arange(start, min(start + _SCALE_CHUNK, vocab), device=module.weight.device)
        with torch.no_grad():
            out = module(ids).detach().double()
        total += float(out.sum())
        squares += float((out * out).sum())
        count += out.numel()
    mean = total / count
    return float(np.sqrt(max(squares / count - mean * mean, 0.0) * count / max(count - 1, 1)))


def init_token_ids(tokenizer, text: str) -> list[int]:
    """The token ids of ``text`` without special tokens (BOS would make every P0 start alike)."""
    if not text:
        return []
    return [int(t) for t in tokenizer(text, add_special_tokens=False)["input_ids"]]


def space_error(d: int, bounds, projection_seed: int) -> str | None:
    """What is wrong with a space's hyper-parameters (d, the box, the projection's seed), or None."""
    if d < 1:
        return f"d={d} is out of range: at least 1 (and at most n_virtual*hidden)"
    if not bounds[0] < bounds[1]:
        return f"bounds={bounds}: LOW must be below HIGH"
    if projection_seed < 0:
        return f"projection_seed={projection_seed}: a seed is a whole number >= 0"
    return None


def initial_prompt(model, tokenizer, text: str, n_virtual: int | None = None) -> tuple[torch.Tensor, list[int]]:
    """(P0 [n_virtual, hidden] in the embedding module's dtype and device, the text's token ids).

    P0 is the embedding module's output for ``text``'s tokens, so placed as a soft prompt it is
    exactly what the model computes for the text. ``n_virtual=None`` takes the text's token
    count; a given n_virtual cycles a shorter text or cuts a longer one; an empty text gives
    zeros (and needs a given n_virtual).
    """
    module = embedding_module(model)
    vocab, hidden = module.weight.shape
    ids = init_token_ids(tokenizer, text)
    if any(not 0 <= i < vocab for i in ids):
        raise CultbenchError(f"the tokenizer gives ids beyond the model's {vocab} embeddings")
    if n_virtual is None:
        if not ids:
            raise CultbenchError("an empty initial text needs an explicit n_virtual (the soft prompt's length)")
        n_virtual = len(ids)
    if not 1 <= n_virtual <= MAX_VIRTUAL_TOKENS:
        raise CultbenchError(f"n_virtual={n_virtual} is out of range: 1..{MAX_VIRTUAL_TOKENS}"
                             + (f" (the initial text has {len(ids)} tokens)" if len(ids) == n_virtual else ""))
    if not ids:
        import torch

        return torch.zeros(n_virtual, hidden, dtype=module.weight.dtype, device=module.weight.device), ids
    cycled = [ids[i % len(ids)] for i in range(n_virtual)]  # cycle short texts, cut long ones
    return embed_ids(model, cycled), ids


@dataclass(frozen=True, eq=False)
class SoftPromptSpace:
    """Maps points z [C, d] of the search box to soft prompts [C, n_virtual, hidden]."""

    p0: np.ndarray  # [n_virtual, hidden], float64
    projection: np.ndarray | None  # [n_virtual*hidden, d], float64; None: embedding_std * identity
    embedding_std: float
    bounds: tuple[float, float]
    dtype: torch.dtype
    device: torch.device
    description: dict  # the parametrisation, stored in the artifact

    @classmethod
    def build(cls, model, tokenizer, *, n_virtual: int | None, d: int, init_text: str,
              projection_seed: int, bounds: tuple[float, float]) -> "SoftPromptSpace":
        """The space around ``init_text``'s embeddings; ``n_virtual=None``: its token count."""
        module = embedding_module(model)
        hidden = module.weight.shape[1]
        p0, ids = initial_prompt(model, tokenizer, init_text, n_virtual)
        n_virtual = p0.shape[0]
        full = n_virtual * hidden
        if not 1 <= d <= full:
            raise CultbenchError(f"d={d} is out of range for n_virtual={n_virtual} and hidden size {hidden}: "
                                 f"1..{full} (d={full} searches the prompt directly, without projection)")
        std = embedding_scale(model)
        if d == full:
            projection, kind, sigma = None, "identity", std
        else:
            sigma = std / np.sqrt(d)
            projection = np.random.default_rng(projection_seed).standard_normal((full, d)) * sigma
            kind = "random"
        description = {
            "form": "P0 + A z", "n_virtual": n_virtual, "hidden_size": int(hidden), "d": d,
            "init_text": init_text, "init_token_ids": ids, "p0_source": "embedding module output",
            "projection": kind, "projection_seed": projection_seed, "projection_std": float(sigma),
            "embedding_std": std, "bounds": list(bounds),
        }
        return cls(p0=p0.double().cpu().numpy(), projection=projection, embedding_std=std, bounds=tuple(bounds),
                   dtype=module.weight.dtype, device=module.weight.device, description=description)

    @property
    def n_virtual(self) -> int:
        return self.p0.shape[0]

    @property
    def hidden_size(self) -> int:
        return self.p0.shape[1]

    @property
    def d(self) -> int:
        return self.description["d"]

    def prompt_tensor(self, z: torch.Tensor) -> torch.Tensor:
        """The soft prompt [n_virtual, hidden] (float64) for one point z [d] (float64), differentiable
        in z: for training z by gradient in this space (``subspace-tuning``)."""
        import torch

        if self.projection is None:
            offsets = z * self.embedding_std
        else:
            offsets = torch.from_numpy(self.projection).to(z.device) @ z
        return torch.from_numpy(self.p0).to(z.device) + offsets.reshape(self.n_virtual, self.hidden_size)

    def prompts(self, z) -> torch.Tensor:
        """Soft prompts [C, n_virtual, hidden] for points z [C, d] (or one point [d])."""
        import torch

        z = np.atleast_2d(np.asarray(z, dtype=np.float64))
        if z.shape[1] != self.d:
            raise CultbenchError(f"a point of this search space has {self.d} coordinates, got {z.shape[1]}")
        # Row by row: a BLAS product's rounding may depend on how many rows it is given.
        if self.projection is None:
            offsets = z * self.embedding_std
        else:
            offsets = np.stack([self.projection @ row for row in z])
        prompts = self.p0[None] + offsets.reshape(len(z), self.n_virtual, self.hidden_size)
        return torch.from_numpy(prompts).to(device=self.device, dtype=self.dtype)
