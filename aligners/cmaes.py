"""CMA-ES over the soft-prompt space, through the ``cma`` package's ask/tell interface.

The search starts at z = 0 (the prompt P0, by default the cultural prompt as embeddings) with
step size ``sigma0``, and cma keeps candidates inside the bounds (its BoundTransform).

cma draws from numpy's global random state (seeded from the ``seed`` option). So that nothing
else in the process can shift its stream, and so that a replayed run (see search.py) draws the
same numbers, every cma call runs with that global state swapped for the optimiser's own.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np

from aligners.config import param
from aligners.registry import register_aligner
from aligners.search import SoftPromptAligner, SoftPromptConfig
from aligners.search_space import SoftPromptSpace
from cultbench.errors import CultbenchError


@dataclass(frozen=True)
class CMAESConfig(SoftPromptConfig):
    # 1.0 within the default box (-3, 3): the setting the calibration ran (docs/aligners.md).
    sigma0: float = param(1.0, "Initial step size, in units of z (the search starts at z = 0, the prompt P0).")

    min_popsize = 2

    def __post_init__(self):
        super().__post_init__()
        if self.sigma0 <= 0:
            self._fail(f"sigma0={self.sigma0} must be positive")


class CMAOptimizer:
    """pycma's CMAEvolutionStrategy behind the AskTellOptimizer interface, with a private RNG."""

    def __init__(self, d: int, bounds: tuple[float, float], popsize: int, sigma0: float, seed: int):
        if d < 2:
            raise CultbenchError("cmaes needs d >= 2 (the cma package does not optimise in one dimension)")
        low, high = bounds
        self.popsize = popsize
        self._rng_state = None
        self._asked = None
        options = {"popsize": popsize, "bounds": [low, high], "seed": seed % (2**32 - 1) + 1,  # 0 = clock
                   "verbose": -9, "verb_log": 0, "verb_disp": 0, "maxiter": np.inf, "maxfevals": np.inf}
        with warnings.catch_warnings():  # cma warns at import when matplotlib (for its plots) is missing
            warnings.simplefilter("ignore")
            import cma  # here, not at the top: it tries matplotlib, and listing the aligners must stay fast

        with self._private_rng():
            self.es = cma.CMAEvolutionStrategy(np.full(d, (low + high) / 2), sigma0, options)

    @contextlib.contextmanager
    def _private_rng(self):
        outer = np.random.get_state()
        if self._rng_state is not None:
            np.random.set_state(self._rng_state)
        try:
            yield
        finally:
            self._rng_state = np.random.get_state()
            np.random.set_state(outer)

    def ask(self) -> np.ndarray:
        with self._private_rng():
            self._asked = self.es.ask()
        return np.array(self._asked)

    def tell(self, candidates, fitness) -> None:
        # cma recognises the arrays it handed out; pass those back unless others were evaluated.
        asked = self._asked if np.array_equal(candidates, self._asked) else list(np.asarray(candidates))
        with self._private_rng():
            self.es.tell(asked, [float(f) for f in fitness])

    def stop(self) -> bool:
        with self._private_rng():
            return bool(self.es.stop())


@register_aligner("cmaes")
class CMAES(SoftPromptAligner):
    """Soft prompt found by CMA-ES (pycma), for comparison with DE."""
    display_order, colour = 50, "#0072B2"

    config_class = CMAESConfig

    def make_optimizer(self, space: SoftPromptSpace, seed: int) -> CMAOptimizer:
        cfg = self.config
        return CMAOptimizer(space.d, cfg.bounds, cfg.popsize, cfg.sigma0, seed)
