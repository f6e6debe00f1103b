"""The soft-prompt search space: prompt = P0 + A z, z in a box of R^d.

- P0 [n_virtual, hidden]: the input embeddings of an initial text's tokens (by default the ICL
  persona, so z = 0 is the cultural prompt written as embeddings), cycled or truncated to
  n_virtual tokens; an empty text gives P0 = 0.
- A [n_virtual*hidden, d]: a fixed random projection drawn from ``projection_seed`` with entries
  N(0, sigma^2), sigma = std(embedding matrix) / sqrt(d). Then each entry of A z has standard
  deviation std(E) * sqrt(mean(z_i^2)): z uniform in [-1, 1] gives std(E)/sqrt(3), a corner of
  the box std(E), so the default bounds (-1, 1) move a prompt by about one embedding's spread.
- d = n_virtual*hidden means no projection: A = std(E) * I, scaled the same way so that the
  bounds mean the same thing in both cases.

The projection is computed in float64 and rounded to the embedding dtype once, so a candidate
gets the same prompt whether it is computed alone or in a population.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cultbench.errors import CultbenchError

MAX_VIRTUAL_TOKENS = 512


def embedding_matrix(model) -> torch.Tensor:
    """The model's input embedding matrix [vocab, hidden]; a clear error when it has none."""
    get = getattr(model, "get_input_embeddings", None)
    embeddings = get() if callable(get) else None
    weight = getattr(embeddings, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise CultbenchError(f"{type(model).__name__} gives no access to its input embeddings "
                             "(get_input_embeddings().weight); soft prompts need them")
    return weight.detach()


def init_token_ids(tokenizer, text: str) -> list[int]:
    """The token ids of ``text`` without special tokens (BOS would make every P0 start alike)."""
    if not text:
        return []
    return [int(t) for t in tokenizer(text, add_special_tokens=False)["input_ids"]]


@dataclass(frozen=True, eq=False)
class SoftPromptSpace:
    """Maps points z [C, d] of the search box to soft prompts [C, n_virtual, hidden]."""

    p0: np.ndarray  # [n_virtual, hidden], float64
    projection: np.ndarray | None  # [n_virtual*hidden, d], float64; None: std(E) * identity
    embedding_std: float
    bounds: tuple[float, float]
    dtype: torch.dtype
    device: torch.device
    description: dict  # the parametrisation, stored in the artifact

    @classmethod
    def build(cls, model, tokenizer, *, n_virtual: int, d: int, init_text: str,
              projection_seed: int, bounds: tuple[float, float]) -> "SoftPromptSpace":
        weight = embedding_matrix(model)
        vocab, hidden = weight.shape
        if not 1 <= n_virtual <= MAX_VIRTUAL_TOKENS:
            raise CultbenchError(f"n_virtual={n_virtual} is out of range: 1..{MAX_VIRTUAL_TOKENS}")
        full = n_virtual * hidden
        if not 1 <= d <= full:
            raise CultbenchError(f"d={d} is out of range for n_virtual={n_virtual} and hidden size {hidden}: "
                                 f"1..{full} (d={full} searches the prompt directly, without projection)")
        std = float(weight.double().std())
        ids = init_token_ids(tokenizer, init_text)
        if any(not 0 <= i < vocab for i in ids):
            raise CultbenchError(f"the tokenizer gives ids beyond the model's {vocab} embeddings")
        if ids:
            cycled = [ids[i % len(ids)] for i in range(n_virtual)]  # cycle short texts, cut long ones
            p0 = weight[cycled].double().cpu().numpy()
        else:
            p0 = np.zeros((n_virtual, hidden))
        if d == full:
            projection, kind, sigma = None, "identity", std
        else:
            sigma = std / np.sqrt(d)
            projection = np.random.default_rng(projection_seed).standard_normal((full, d)) * sigma
            kind = "random"
        description = {
            "form": "P0 + A z", "n_virtual": n_virtual, "hidden_size": int(hidden), "d": d,
            "init_text": init_text, "init_token_ids": ids, "projection": kind,
            "projection_seed": projection_seed, "projection_std": float(sigma),
            "embedding_std": std, "bounds": list(bounds),
        }
        return cls(p0=p0, projection=projection, embedding_std=std, bounds=tuple(bounds),
                   dtype=weight.dtype, device=weight.device, description=description)

    @property
    def n_virtual(self) -> int:
        return self.p0.shape[0]

    @property
    def hidden_size(self) -> int:
        return self.p0.shape[1]

    @property
    def d(self) -> int:
        return self.description["d"]

    def prompts(self, z) -> torch.Tensor:
        """Soft prompts [C, n_virtual, hidden] for points z [C, d] (or one point [d])."""
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
