"""Differential Evolution over the soft-prompt space (the paper's optimiser), through scipy.

scipy owns the loop; its vectorised objective is wrapped so that each generation (the initial
population, then each trial population) is one :meth:`SearchRun.evaluate` call, i.e. one scorer
call. ``updating='deferred'`` makes a generation's trials independent of each other, which is
what allows scoring them together; polishing is off (it would spend evaluations outside the
budget). The population size is absolute (``popsize`` candidates, not scipy's multiple of d):
the initial population is drawn here from the seed and passed as ``init``.

Budget: scipy evaluates the initial population and then ``maxiter`` trial populations, so
``maxiter = search_budget // popsize - 1`` spends whole generations and never more than the
budget left after the finalists' reserve (see search.py);
SearchRun refuses any evaluation beyond it as a second guard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aligners.config import param
from aligners.registry import register_aligner
from aligners.search import BudgetExhausted, SearchRun, SoftPromptAligner, SoftPromptConfig
from cultbench.errors import did_you_mean

STRATEGIES = ("best1bin", "best1exp", "rand1bin", "rand1exp", "rand2bin", "rand2exp", "randtobest1bin",
              "randtobest1exp", "currenttobest1bin", "currenttobest1exp", "best2bin", "best2exp")
INITS = ("latinhypercube", "random")


@dataclass(frozen=True)
class DEConfig(SoftPromptConfig):
    mutation: float | tuple[float, float] = param(
        (0.5, 1.0), "Differential weight F in [0, 2), or LOW,HIGH to draw F anew each generation (dithering).")
    recombination: float = param(0.7, "Crossover probability CR in [0, 1].")
    strategy: str = param("best1bin", "scipy's strategy: " + ", ".join(STRATEGIES) + ".")
    init: str = param("latinhypercube", "Initial population, drawn from the seed: latinhypercube or random.")
    tol: float = param(0.0, "Stop early when std(population fitness) <= tol * |mean| (scipy's tol); 0 stops "
                            "early only when every member has the same fitness.")

    min_popsize = 5  # scipy's minimum for an init array (and what rand2/best2 need)

    def __post_init__(self):
        super().__post_init__()
        low, high = self.mutation if isinstance(self.mutation, tuple) else (self.mutation, self.mutation)
        if not 0 <= low <= high < 2:
            self._fail(f"mutation={self.mutation}: F must lie in [0, 2) (LOW <= HIGH when dithering)")
        if not 0 <= self.recombination <= 1:
            self._fail(f"recombination={self.recombination} must lie in [0, 1]")
        for name, value, choices in (("strategy", self.strategy, STRATEGIES), ("init", self.init, INITS)):
            if value not in choices:
                self._fail(f"{name}={value!r}; choose one of {', '.join(choices)}.{did_you_mean(value, choices)}")
        if self.tol < 0:
            self._fail(f"tol={self.tol} must be >= 0")


@register_aligner("de")
class DifferentialEvolution(SoftPromptAligner):
    """Soft prompt found by Differential Evolution (scipy), the paper's method."""
    display_order, colour = 40, "#D55E00"

    config_class = DEConfig

    def initial_population(self, d: int, rng: np.random.Generator) -> np.ndarray:
        from scipy.stats import qmc  # scipy loads in about a second: only when a search runs

        cfg = self.config
        low, high = cfg.bounds
        unit = (qmc.LatinHypercube(d=d, rng=rng).random(cfg.popsize) if cfg.init == "latinhypercube"
                else rng.random((cfg.popsize, d)))
        return low + (high - low) * unit

    def search(self, run: SearchRun, seed: int) -> str:
        from scipy.optimize import differential_evolution

        cfg = self.config
        rng = np.random.default_rng(seed)
        d = run.space.d
        init = self.initial_population(d, rng)

        def objective(x):  # scipy passes [d, popsize] and wants [popsize]
            return run.evaluate(x.T)

        try:
            differential_evolution(
                objective, [cfg.bounds] * d, strategy=cfg.strategy, maxiter=run.search_budget // cfg.popsize - 1,
                tol=cfg.tol, atol=0.0, mutation=cfg.mutation, recombination=cfg.recombination, rng=rng,
                polish=False, init=init, updating="deferred", vectorized=True)
        except BudgetExhausted:
            return "budget"
        return "budget" if not run.affordable(cfg.popsize) else "converged"
