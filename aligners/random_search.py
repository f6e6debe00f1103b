"""Random search over the soft-prompt space: the control every optimiser must beat."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aligners.registry import register_aligner
from aligners.search import SoftPromptAligner, SoftPromptConfig
from aligners.search_space import SoftPromptSpace


@dataclass(frozen=True)
class RandomSearchConfig(SoftPromptConfig):
    """Random search has only the shared soft-prompt hyper-parameters."""


class UniformSampler:
    """Draws every generation uniformly in the bounds; learns nothing from the fitness."""

    def __init__(self, d: int, bounds: tuple[float, float], popsize: int, seed: int):
        self.d, self.bounds, self.popsize = d, bounds, popsize
        self.rng = np.random.default_rng(seed)

    def ask(self) -> np.ndarray:
        return self.rng.uniform(self.bounds[0], self.bounds[1], size=(self.popsize, self.d))

    def tell(self, candidates, fitness) -> None:
        pass

    def stop(self) -> bool:
        return False


@register_aligner("random")
class RandomSearch(SoftPromptAligner):
    """Soft prompt found by uniform random search in the same space (the control)."""
    display_order, colour = 30, "#CC79A7"

    config_class = RandomSearchConfig

    def make_optimizer(self, space: SoftPromptSpace, seed: int) -> UniformSampler:
        return UniformSampler(space.d, self.config.bounds, self.config.popsize, seed)
