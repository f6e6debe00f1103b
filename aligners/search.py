"""Soft-prompt search shared by the black-box optimisers: fitness, budget, checkpoints, history.

Optimisers propose and are told (pycma style): ``ask()`` gives a population of points z of the
search space (see search_space.py), the caller scores the whole population in ONE scorer call,
and ``tell(z, fitness)`` hands the fitness back. :class:`SearchRun` is that caller: it turns
points into soft prompts, scores them, keeps the best candidate, counts the budget, records the
history, shows progress and writes a checkpoint after every generation. An optimiser that owns
its loop (scipy's DE) calls :meth:`SearchRun.evaluate` from its objective instead.

Resume by replay. A checkpoint holds every generation's fitness and a hash of its population.
Resuming re-creates the optimiser from the same seed and runs it again; the generations the
checkpoint covers are answered from the file instead of the model. The optimisers are
deterministic given their seed and the fitness values they are told, so the replay passes
through exactly the states of the interrupted run, bit for bit, and then goes on as the
uninterrupted run would. This needs neither an optimiser's private state nor pickles (restarting
scipy's DE from a saved population is not bit-exact: it keeps the population in a unit cube and
rescales it), and a population that does not hash as recorded stops the resume with an error.

The final pick is made in full precision. A search that runs in reduced precision (e.g. bf16,
whose fitness ranks candidates only roughly against fp32) keeps its finalists: the ``finalists``
best distinct points of its whole history by search-precision fitness (ties: the earlier one).
When the search ends they are re-scored by the exact scorer in ONE call, and the fp32 best is
returned. Those evaluations count in the budget: they are reserved up front, so the search
itself spends at most ``budget - finalists``. The artifact's ``search`` record keeps every
finalist's search and full-precision fitness, Spearman's rho between the two, and the winner's
curse: the returned candidate's full-precision fitness minus the best fitness the search saw
(positive when the reduced-precision proxy was optimistic; fitness is a distance, lower is
better). A search in full precision returns its best as it is: nothing is re-scored or reserved.
The finalists are rebuilt while a resumed run replays its generations, so resume stays exact.

Validation (``select_by``). With ``select_by=validation`` the finalists are kept in any precision
and the one with the lowest balanced distance on the validation wording is returned (ties: the
better search fitness); their validation scoring is ONE call, and counts in the budget, one
evaluation per finalist (a candidate scored on the instrument, here under the validation
wording's renderings), reserved up front like the re-score. With ``select_by=train`` (the
default) the pick is as above. Either way, when the problem has a validation split the artifact
records the pick's validation distance (``search.validation``); under ``train`` that one scoring
is, like the final full-precision score of the pick, a report outside the budget.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from tqdm.auto import tqdm

from aligners.artifact import Alignment
from aligners.base import (ConfiguredAligner, exact_results, final_result, model_record, validation_fitness_of,
                           validation_record)
from aligners.baselines import ICL_TEMPLATE, format_persona
from aligners.checkpoint import check_array, check_fields, json_ready, open_checkpoint, save_checkpoint
from aligners.config import AlignerConfig, param
from aligners.objective import AlignmentProblem, precision
from aligners.search_space import MAX_VIRTUAL_TOKENS, SoftPromptSpace, space_error
from cultbench.errors import CultbenchError, did_you_mean

_log = logging.getLogger(__name__)

# Fitness given to a candidate that could not be scored or gave non-finite indices: finite (so
# every optimiser can rank it) and far above any real distance between index vectors.
WORST_FITNESS = 1e9
# How a search chooses what it returns among its finalists (SoftPromptConfig.select_by).
SELECT_BY = ("train", "validation")


class BudgetExhausted(Exception):
    """Raised by SearchRun.evaluate when a generation would exceed the budget."""


class AskTellOptimizer(Protocol):
    """A population-based optimiser the caller drives (pycma's interface, reduced)."""

    popsize: int

    def ask(self) -> np.ndarray:
        """The next population, [popsize, d], inside the bounds."""

    def tell(self, candidates: np.ndarray, fitness: np.ndarray) -> None:
        """The fitness of the population ``ask`` returned (lower is better)."""

    def stop(self) -> bool:
        """True when the optimiser has converged and would only waste budget."""


@dataclass(frozen=True)
class SoftPromptConfig(AlignerConfig):
    """Hyper-parameters of the soft prompt and its search space, shared by every optimiser."""

    n_virtual: int | None = param(None, f"Virtual tokens in the soft prompt (1..{MAX_VIRTUAL_TOKENS}); default: "
                                        "init_text's token count for the target, so z = 0 is the whole text.")
    d: int = param(16, "Dimension of the search space z (1..n_virtual*hidden); d = n_virtual*hidden "
                       "searches the prompt directly (A = identity, scaled like the random projection).")
    init_text: str = param(ICL_TEMPLATE, "Text whose token embeddings (the embedding module's output) form P0, "
                                         "the prompt at z = 0, cycled or cut to a given n_virtual; {country} is "
                                         "the target's name; empty: P0 = 0 (needs n_virtual).")
    projection_seed: int = param(0, "Seed of the random projection A (fixed during a search, saved with the prompt).")
    # (-3, 3): at a budget of 30 evaluations DE ended at training L1 113.4 on Japan and Germany
    # (held-out 134.7) against 116.2 (137.4) with (-1, 1) (docs/aligners.md, "Calibration").
    bounds: tuple[float, float] = param((-3.0, 3.0), "Box of every coordinate of z, as LOW,HIGH; A is scaled "
                                                     "so that 1 moves the prompt by about one embedding std.")
    popsize: int = param(10, "Candidates per generation, scored in one call; the budget is spent in whole "
                             "generations.")
    finalists: int = param(5, "When the search runs in reduced precision, or selects by validation: its best this "
                              "many distinct candidates (whole history, search fitness), among which the returned "
                              "one is chosen (reduced precision: re-scored in full precision in one call; "
                              "select_by=validation: scored on the validation wording in one call); those "
                              "evaluations count in the budget (reserved up front). Otherwise the search returns "
                              "its best as it is.")
    select_by: str = param("train", "How the returned candidate is chosen among the finalists: train (the lowest "
                                    "training fitness, in full precision) or validation (the lowest balanced distance "
                                    "on the validation wording, one evaluation per finalist, reserved). Either way "
                                    "the pick's validation distance is recorded.")

    min_popsize = 1  # class attribute, not a field: what the optimiser needs

    def __post_init__(self):
        super().__post_init__()
        if self.n_virtual is not None and not 1 <= self.n_virtual <= MAX_VIRTUAL_TOKENS:
            self._fail(f"n_virtual={self.n_virtual} is out of range 1..{MAX_VIRTUAL_TOKENS}")
        if error := space_error(self.d, self.bounds, self.projection_seed):
            self._fail(error)
        if self.finalists < 1:
            self._fail(f"finalists={self.finalists} must be at least 1")
        if self.select_by not in SELECT_BY:
            self._fail(f"select_by={self.select_by!r}; choose one of {', '.join(SELECT_BY)}."
                       f"{did_you_mean(self.select_by, SELECT_BY)}")
        if self.popsize < self.min_popsize:
            self._fail(f"popsize={self.popsize}: this optimiser needs at least {self.min_popsize}")
        if self.n_virtual is None and not self.init_text:
            self._fail("an empty init_text needs an explicit n_virtual (the soft prompt's length)")
        try:
            format_persona(self.init_text, "X")
        except (KeyError, IndexError, ValueError) as exc:
            self._fail(f"init_text may only use the field {{country}} ({type(exc).__name__}: {exc})")


def check_budget(budget, generation: int, name: str, reserve: int = 0, reserved_for: str | None = None) -> int:
    """The budget as an int; an error unless it pays for at least one generation (plus ``reserve``
    evaluations kept for the finalists; ``reserved_for`` says what they are, by default the
    full-precision re-score of ``reserve`` finalists)."""
    if budget is None:
        raise CultbenchError(f"{name} searches: give a budget (candidate evaluations)")
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise CultbenchError(f"budget must be a positive whole number of evaluations, got {budget!r}")
    if budget < generation + reserve:
        extra = f" plus {reserved_for or f'the {reserve} finalists re-scored in full precision'}" if reserve else ""
        raise CultbenchError(f"budget {budget} is smaller than one generation of {name} ({generation} "
                             f"candidates){extra}: give a budget of at least {generation + reserve} or a "
                             "smaller popsize")
    return int(budget)


def finalist_uses(reduced_precision: bool, select_by: str) -> list[str]:
    """What a search's finalists are scored for at its end, each use one evaluation per finalist
    (reserved from the budget): re-scored in full precision, scored on the validation wording."""
    return (["re-scored in full precision"] if reduced_precision else []) + \
        (["scored on the validation wording"] if select_by == "validation" else [])


def check_seed(seed) -> int:
    """The seed as an int; an error unless it is a whole number >= 0 (what numpy's generators take)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CultbenchError(f"seed must be a whole number >= 0, got {seed!r}")
    return int(seed)


def _digest(points: np.ndarray) -> str:
    return hashlib.sha256(repr(points.shape).encode() + points.tobytes()).hexdigest()[:20]


class SearchRun:
    """One search's bookkeeping: evaluations, budget, best candidate, history, checkpoint, progress.

    ``identity`` (JSON-ready) is what a resumed run must share with the checkpointed one.
    ``finalists``: how many of the best distinct candidates are re-scored in full precision at
    the end when the problem's search scorer has reduced precision, and scored on the validation
    wording when ``select_by`` is "validation" (each use reserved from the budget).
    """

    def __init__(self, problem: AlignmentProblem, space: SoftPromptSpace, *, budget: int, identity: dict,
                 run_dir=None, resume: bool = False, progress: bool = False, label: str = "search",
                 finalists: int = 1, select_by: str = "train"):
        self.problem, self.space, self.budget = problem, space, budget
        self.rescore = problem.reduced_precision
        self.by_validation = select_by == "validation"
        if self.by_validation and problem.validation_scorer is None:
            raise CultbenchError("select_by=validation needs a validation split, and this problem has none (a "
                                 "wording version 3 variants file has none): use select_by=train")
        uses = finalist_uses(self.rescore, select_by)
        self.finalists = int(finalists) if uses else 1
        self.search_budget = budget - self.finalists * len(uses)
        self._pool: list[tuple[float, int, np.ndarray]] = []  # (search fitness, order, z), best first
        self.identity = json_ready(identity)
        self.evaluations = self.generation = self.invalid = 0
        self.history: list[dict] = []
        self.best_fitness, self.best_z, self.best_indices = math.inf, None, None
        self._fitness_log: list[np.ndarray] = []
        self._hashes: list[str] = []
        self._replay: list[tuple[str, np.ndarray]] = []
        self.checkpoint_path, restored = open_checkpoint(run_dir, resume, self.identity)
        if restored is not None:
            self._restore(*restored)
        else:
            self._save()  # generation 0: the run's identity, so an interrupt at once is resumable
        self._bar = tqdm(total=budget, desc=label, unit="eval", disable=not progress, dynamic_ncols=True)
        # The bar names its fitness: the distance, and the search's precision when that is not the
        # reported one (a bf16 fitness is not the number the result will show).
        self._best_label = f"best {problem.distance}" + (f" ({precision(problem.scorer)})" if self.rescore else "")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._bar.close()

    # -- evaluation -----------------------------------------------------------------------------

    def affordable(self, n: int) -> bool:
        """Whether the search may still spend ``n`` evaluations (the finalists' re-score reserved)."""
        return self.evaluations + n <= self.search_budget

    def evaluate(self, points) -> np.ndarray:
        """Fitness [n] of one generation of points [n, d]: from the checkpoint while replaying,
        else from ONE scorer call; then history, checkpoint and progress are updated."""
        points = np.ascontiguousarray(points, dtype=np.float64)
        if not self.affordable(len(points)):
            raise BudgetExhausted
        digest = self._digest_checked(points)
        if self.generation < len(self._replay):
            fitness = self._replay[self.generation][1]
        else:
            fitness = self._score_generation(points)
        self._fitness_log.append(fitness)
        self._hashes.append(digest)
        self._keep_finalists(points, fitness)
        self.evaluations += len(points)
        self.generation += 1
        if self.generation > len(self._replay):
            self._save()
        mean = self.history[self.generation - 1]["mean"]
        self._bar.set_postfix({"gen": self.generation - 1, self._best_label: f"{self.best_fitness:.4g}",
                               "mean": "-" if mean is None else f"{mean:.4g}"}, refresh=False)
        self._bar.update(len(points))
        return fitness.copy()

    def _keep_finalists(self, points: np.ndarray, fitness: np.ndarray) -> None:
        """Update the best ``finalists`` distinct points seen (valid ones only; ties: the earlier)."""
        for j, (z, f) in enumerate(zip(points, fitness)):
            if not f < WORST_FITNESS:
                continue
            if len(self._pool) == self.finalists and f >= self._pool[-1][0]:
                continue
            if any(np.array_equal(z, kept) for _, _, kept in self._pool):
                continue
            self._pool.append((float(f), self.evaluations + j, z.copy()))
            self._pool.sort(key=lambda entry: entry[:2])
            del self._pool[self.finalists:]

    def _digest_checked(self, points: np.ndarray) -> str:
        digest = _digest(points)
        if self.generation < len(self._replay) and digest != self._replay[self.generation][0]:
            raise CultbenchError(
                f"cannot resume: generation {self.generation} of the optimiser differs from the checkpoint "
                "(different library versions?); start a new run in another folder")
        return digest

    def _score_generation(self, points: np.ndarray) -> np.ndarray:
        indices = self._score(self.space.prompts(points))
        fitness = np.asarray(self.problem.fitness(indices), dtype=np.float64)
        valid = np.isfinite(fitness)
        if not valid.all():
            _log.warning("generation %d: %d of %d candidates gave non-finite indices (the soft prompt breaks "
                         "the model); scored as worst (%g)", self.generation, (~valid).sum(), len(fitness),
                         WORST_FITNESS)
            fitness = np.where(valid, fitness, WORST_FITNESS)
        self.invalid += int((~valid).sum())
        if valid.any():
            best = int(np.flatnonzero(valid)[np.argmin(fitness[valid])])
            if fitness[best] < self.best_fitness:
                self.best_fitness = float(fitness[best])
                self.best_z, self.best_indices = points[best].copy(), indices[best].copy()
        dims = list(self.problem.scorer.instrument.dimension_ids)
        self.history.append({
            "generation": self.generation,
            "evaluations": self.evaluations + len(points),
            "best": None if self.best_z is None else self.best_fitness,
            "mean": float(fitness[valid].mean()) if valid.any() else None,
            "invalid": int((~valid).sum()),
            "best_indices": None if self.best_indices is None else dict(zip(dims, self.best_indices.mean(0).tolist())),
        })
        return fitness

    def _score(self, prompts) -> np.ndarray:
        """Indices [n, V, D] of the prompts in one call; if that call fails, one by one, NaN where
        a candidate fails alone (so one broken candidate costs itself, not the generation)."""
        scorer = self.problem.scorer
        try:
            return np.asarray(scorer.score(soft_prompts=prompts).indices, dtype=np.float64)
        except CultbenchError:
            raise
        except Exception as exc:
            _log.warning("generation %d: scoring the population failed (%s: %s); scoring each candidate alone",
                         self.generation, type(exc).__name__, exc)
        rows, errors = [], []
        for prompt in prompts:
            try:
                rows.append(np.asarray(scorer.score(soft_prompts=prompt[None]).indices, dtype=np.float64)[0])
            except CultbenchError:
                raise
            except Exception as exc:
                rows.append(None)
                errors.append(exc)
        if len(errors) == len(rows):
            raise CultbenchError(f"generation {self.generation}: scoring failed for every candidate "
                                 f"({type(errors[0]).__name__}: {errors[0]})") from errors[0]
        shape = next(r.shape for r in rows if r is not None)
        return np.stack([np.full(shape, np.nan) if r is None else r for r in rows])

    # -- checkpoint -----------------------------------------------------------------------------

    def _save(self) -> None:
        if self.checkpoint_path is None:
            return
        state = {"identity": self.identity, "evaluations": self.evaluations, "generation": self.generation,
                 "sizes": [len(f) for f in self._fitness_log], "hashes": self._hashes, "history": self.history,
                 "best_fitness": None if self.best_z is None else self.best_fitness, "invalid": self.invalid}
        arrays = {"fitness": np.concatenate(self._fitness_log) if self._fitness_log else np.zeros(0)}
        if self.best_z is not None:
            arrays.update(best_z=self.best_z, best_indices=self.best_indices)
        save_checkpoint(self.checkpoint_path, state, arrays)

    def _restore(self, state: dict, arrays: dict[str, np.ndarray]) -> None:
        self._check_state(state, arrays)
        if state["evaluations"] > self.budget:
            raise CultbenchError(f"the checkpoint has used {state['evaluations']} evaluations, more than the "
                                 f"budget {self.budget}")
        pieces = np.split(arrays["fitness"], np.cumsum(state["sizes"])[:-1]) if state["sizes"] else []
        self._replay = list(zip(state["hashes"], pieces))
        self.history, self.invalid = state["history"], state["invalid"]
        if state["best_fitness"] is not None:
            self.best_fitness = state["best_fitness"]
            self.best_z, self.best_indices = arrays["best_z"], arrays["best_indices"]
        _log.info("resuming %s: replaying %d generations (%d evaluations)", self.checkpoint_path, len(pieces), state["evaluations"])

    def _check_state(self, state: dict, arrays: dict) -> None:
        """Refuse a checkpoint whose fields do not hold what :meth:`_save` writes (tampered, or
        written by something else): kinds, lengths that agree, finite arrays of the right shape."""
        path = self.checkpoint_path
        check_fields(path, state, evaluations="count", generation="count", sizes="counts", hashes="texts",
                     history="records", invalid="count", best_fitness="number?")
        sizes = state["sizes"]
        if len(state["hashes"]) != len(sizes) or state["generation"] != len(sizes) or \
                state["evaluations"] != sum(sizes) or len(state["history"]) != len(sizes):
            raise CultbenchError(f"{path}: corrupt checkpoint (generations, hashes, history and evaluations "
                                 "do not agree)")
        check_array(path, arrays, "fitness", (sum(sizes),))
        if state["best_fitness"] is not None:
            check_array(path, arrays, "best_z", (self.space.d,))
            check_array(path, arrays, "best_indices")

    # -- result ---------------------------------------------------------------------------------

    def alignment(self, aligner: "SoftPromptAligner", seed: int, stopped: str) -> Alignment:
        """The pick in full precision (see the module's docstring), as an artifact."""
        if self.best_z is None:
            raise CultbenchError(f"no candidate of the {self.evaluations} evaluated could be scored "
                                 "(every one gave non-finite indices)")
        z, result, selection, validation = self._select()
        soft_prompt = self.space.prompts(z)[0]
        search = {"best_fitness": self.best_fitness, "precision": precision(self.problem.scorer),
                  "stopped": stopped, "generations": self.generation, "invalid": self.invalid,
                  "selection": selection}
        if validation is None:  # counted only when it chose the pick; else a report, like the final score
            validation = validation_fitness_of(self.problem, soft_prompt)
        record = validation_record(self.problem, select_by="validation" if self.by_validation else "train",
                                   fitness=validation, evaluations=self.finalists if self.by_validation else 0)
        if record is not None:
            search["validation"] = record
        return Alignment(
            aligner=aligner.name, hyperparameters=aligner.get_params(), seed=seed,
            model=self.identity["model"], problem=self.problem.describe(), budget=self.budget,
            evaluations=self.evaluations, result=result, soft_prompt=soft_prompt.detach().cpu(), z=z.copy(),
            parametrisation=self.space.description, search=search, history=list(self.history))

    def _spend(self, n: int) -> None:
        """Count ``n`` evaluations of the finalists (reserved from the budget at the start)."""
        self.evaluations += n
        self._bar.update(n)

    def _select(self) -> tuple[np.ndarray, dict, dict, float | None]:
        """(the returned point, its full-precision result, the selection record, its validation
        distance when the finalists were scored on the validation wording, else None)."""
        exact = precision(self.problem.exact_scorer)
        if not (self.rescore or self.by_validation):
            result = final_result(self.problem, soft_prompt=self.space.prompts(self.best_z)[0])
            return self.best_z, result, {
                "method": "search best (the search ran in full precision: nothing re-scored)", "select_by": "train",
                "precision": exact, "finalists": [], "rescored": 0, "spearman": None,
                "winners_curse": result["fitness"] - self.best_fitness}, None
        points = np.stack([z for _, _, z in self._pool])
        search_fitness = np.array([f for f, _, _ in self._pool])
        results, exact_fitness = None, search_fitness.copy()  # a full-precision search's fitness is exact
        if self.rescore:
            results = exact_results(self.problem, soft_prompts=self.space.prompts(points))  # ONE call
            self._spend(len(points))
            exact_fitness = np.array([r["fitness"] for r in results])
        validation = None
        if self.by_validation:
            validation = np.asarray(self.problem.validation_fitness(soft_prompts=self.space.prompts(points)), float)
            self._spend(len(points))
        winner, valid = _winner(exact_fitness, validation)  # ties: the better search fitness
        result = (results[winner] if results is not None
                  else final_result(self.problem, soft_prompt=self.space.prompts(points[winner])[0]))
        rho = None
        if self.rescore and valid.sum() >= 3 and np.ptp(search_fitness[valid]) > 0 and np.ptp(exact_fitness[valid]) > 0:
            from scipy.stats import spearmanr  # scipy.stats loads in about a second: only where a rank is computed

            rho = float(spearmanr(search_fitness[valid], exact_fitness[valid]).statistic)
        finalists = [{"evaluation": order, "search_fitness": f, "fitness": _finite_or_none(e),
                      **({} if validation is None else {"validation": _finite_or_none(validation[i])})}
                     for i, ((f, order, _), e) in enumerate(zip(self._pool, exact_fitness))]
        rescored = f"re-scored in {exact} in one call" if self.rescore else f"in {exact}"
        chosen = (f"the lowest {self.problem.distance} on the validation wording (scored in one call) is returned"
                  if self.by_validation else f"the {exact} best is returned")
        selection = {
            "method": f"best {self.finalists} distinct candidates of the history by {precision(self.problem.scorer)} "
                      f"fitness, {rescored}; {chosen}", "select_by": "validation" if self.by_validation else "train",
            "precision": exact, "finalists": finalists, "rescored": len(points) if self.rescore else 0,
            "winner": winner, "spearman": rho, "winners_curse": float(result["fitness"]) - self.best_fitness}
        return points[winner], result, selection, None if validation is None else float(validation[winner])


def _finite_or_none(value) -> float | None:
    return float(value) if np.isfinite(value) else None


def _winner(fitness: np.ndarray, validation: np.ndarray | None) -> tuple[int, np.ndarray]:
    """(the finalist returned, which finalists were valid): the lowest validation distance when
    ``validation`` is given, else the lowest full-precision fitness; first of ties (the pool is in
    search-fitness order). An error when no finalist gives finite numbers."""
    valid = np.isfinite(fitness) & (True if validation is None else np.isfinite(validation))
    if not valid.any():
        raise CultbenchError("the model gives non-finite indices in full precision for every finalist "
                             "(NaN or infinite logits); nothing was saved")
    key = fitness if validation is None else validation
    return int(np.flatnonzero(valid)[np.argmin(key[valid])]), valid


def run_ask_tell(optimizer: AskTellOptimizer, run: SearchRun) -> str:
    """The ask/tell loop: whole generations while the budget allows; returns why it stopped."""
    while True:
        if optimizer.stop():
            return "converged"
        if not run.affordable(optimizer.popsize):
            return "budget"
        candidates = optimizer.ask()
        optimizer.tell(candidates, run.evaluate(candidates))


class SoftPromptAligner(ConfiguredAligner):
    """Base of the soft-prompt aligners: subclasses give an optimiser (``make_optimizer``) or,
    when a library owns the loop, override ``search``."""

    config_class = SoftPromptConfig

    def make_optimizer(self, space: SoftPromptSpace, seed: int) -> AskTellOptimizer:
        raise NotImplementedError

    def check_budget(self, budget, reduced_precision: bool = False) -> int:
        """The budget as an int; a clear error unless it pays for at least one generation (and,
        for a search in reduced precision, the finalists' full-precision re-score; with
        ``select_by=validation``, their validation scoring)."""
        cfg = self.config
        uses = finalist_uses(reduced_precision, cfg.select_by)
        reserve = cfg.finalists * len(uses)
        what = f"the {cfg.finalists} finalists {' and '.join(uses)}" + (f" ({reserve} evaluations)" if len(uses) > 1 else "")
        return check_budget(budget, cfg.popsize, self.name, reserve, what)

    def search(self, run: SearchRun, seed: int) -> str:
        """Run the optimiser on ``run`` until the budget or convergence; returns why it stopped."""
        return run_ask_tell(self.make_optimizer(run.space, seed), run)

    def align(self, problem: AlignmentProblem, budget: int | None = None, *, seed: int = 0,
              run_dir=None, resume: bool = False, progress: bool = False) -> Alignment:
        cfg = self.config
        budget = self.check_budget(budget, problem.reduced_precision)
        seed = check_seed(seed)
        scorer = problem.scorer
        # P0 and the prompts in full precision, from the exact scorer's model: a reduced-precision
        # search scorer rounds them itself, and the returned prompt stays exact.
        exact = problem.exact_scorer
        space = SoftPromptSpace.build(exact.model, exact.tokenizer, n_virtual=cfg.n_virtual, d=cfg.d,
                                      init_text=format_persona(cfg.init_text, problem.target.name),
                                      projection_seed=cfg.projection_seed, bounds=cfg.bounds)
        identity = {"aligner": self.name, "hyperparameters": self.get_params(), "seed": seed,
                    "model": model_record(problem, space.hidden_size), "problem": problem.describe(),
                    "search_precision": precision(scorer), "precision": precision(exact)}
        with SearchRun(problem, space, budget=budget, identity=identity, run_dir=run_dir, resume=resume,
                       progress=progress, label=self.name, finalists=cfg.finalists, select_by=cfg.select_by) as run:
            stopped = self.search(run, seed)
        return run.alignment(self, seed, stopped)
