"""Gradient prompt tuning: the soft prompt trained with torch.optim, the white-box reference.

Where the model's weights are at hand, the expected answers are differentiable in the soft prompt.
This aligner trains the soft prompt [n_virtual, hidden] itself (no projection, no box) on the
objective of the searches: the distance between the order-balanced indices and the target per
training wording, averaged over the wordings (``AlignmentProblem.loss``). The gradient flows through the scorer's
packed forwards (``SurveyScorer.indices_with_grad``: the same prefix tree and key/value cache as
the forward-only path, with autograd), through the answer distributions and expected answers,
and through the instrument's index formulas (a matrix); for a distribution instrument, through
the answer shares and its Jensen-Shannon distance. The graphs of a few whole wordings are held
at a time (``variants_per_backward`` renderings at most, both renderings of a wording together)
and the gradients are summed, which is exact because the objective is a mean over wordings.

- ``subspace-tuning`` (a subclass) trains z in the black-box searches' space instead, prompt =
  P0 + A z, z kept in ``bounds`` (clamped after every step): the space (``SoftPromptSpace``) that
  de, cmaes and random search with the same ``d``, ``projection_seed`` and ``bounds``. A gradient
  in that space shows how far the space itself reaches, apart from the black-box optimiser
  (docs/aligners.md, "How far the search space reaches").
- Start: P0, the embeddings of the initial text (by default the cultural prompt for the target,
  the same P0 as the searches, built by ``search_space.initial_prompt``). The trained tensor is
  kept in float32 (master copy) and cast to the scorer's precision for each forward.
- Budget: in candidate evaluations, like the searches. One step (a forward and a backward over
  every training variant) counts as ``step_cost`` evaluations, the measured cost of a step
  relative to one forward candidate evaluation (``cultbench bench``, section prompt-tuning), and
  each validation (below) as one, so as many steps run as the budget pays for
  (``PromptTuning.cost``). The artifact records the conversion and the wall time.
- Result, early stopping: every ``validate_every`` steps (step 0, the start P0, included) the
  prompt a step scores (before its update) is also scored on the validation wording, and the
  validated prompt with the lowest balanced distance there is returned (ties: the earlier step),
  re-scored on the training wordings in full precision by ``final_result``. Each validation is
  one forward of one candidate and counts as one evaluation in the budget. Both curves, the
  training fitness of every step and the validation distance of every validated step, are in
  the history. Without a validation split (wording version 3), or with ``validate_every=0``, the
  prompt with the lowest training fitness is returned, as before validation existed.
- Checkpoint: after every step, one safetensors file (``aligners.checkpoint``) holds the prompt,
  the optimiser's state, the best and the kept prompt, the step and the history, replaced atomically; a run
  killed at any moment resumes from the last step and ends with the same tensor, bit for bit,
  as an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from aligners.artifact import Alignment
from aligners.base import ConfiguredAligner, final_result, model_record, validation_fitness_of, validation_record
from aligners.baselines import ICL_TEMPLATE, format_persona
from aligners.checkpoint import check_array, check_fields, json_ready, open_checkpoint, save_checkpoint
from aligners.config import AlignerConfig, param
from aligners.objective import AlignmentProblem, precision
from aligners.registry import register_aligner
from aligners.search_space import MAX_VIRTUAL_TOKENS, SoftPromptSpace, initial_prompt, space_error
from cultbench.errors import CultbenchError, did_you_mean

_log = logging.getLogger(__name__)

# torch.optim class names; torch itself is imported where tensors are made: listing the aligners
# must not take torch's seconds.
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}
# Measured (docs/calibration/costs-cpu.json, scripts/measure_costs.py): on SmolLM2-135M-Instruct in
# fp32, 2 threads on a quiet 2-core CPU, a 30-token persona-sized prompt and the 3 training
# variants in one backward, one step took 2.71x the time of one forward candidate evaluation in a
# population of 10 (12.9 s against 4.77 s; 3.33x with one variant per backward). On a GPU a step
# costs more evaluations (docs/distributed.md): give step_cost there.
STEP_COST = 2.71
# Keys of the history that hold wall time: they differ between an interrupted and a whole run.
TIMING_KEYS = ("seconds",)


@dataclass(frozen=True)
class PromptTuningConfig(AlignerConfig):
    n_virtual: int | None = param(None, f"Virtual tokens in the soft prompt (1..{MAX_VIRTUAL_TOKENS}); default: "
                                        "init_text's token count for the target (P0 is then the whole text).")
    init_text: str = param(ICL_TEMPLATE, "Text whose token embeddings (the embedding module's output) form P0, "
                                         "the starting prompt, cycled or cut to a given n_virtual; {country} is "
                                         "the target's name; empty: P0 = 0 (needs n_virtual).")
    optimizer: str = param("adam", "torch.optim optimiser: " + ", ".join(OPTIMIZERS) + ".")
    # 3e-2: the best training L1 at a budget of 30 evaluations (11 steps) in the calibration on Japan
    # and Germany (docs/aligners.md, "Calibration"): 74.4 on average, against 100.9 with 1e-1.
    lr: float = param(3e-2, "Learning rate (Adam moves each coordinate of the prompt by about lr per step).")
    betas: tuple[float, float] = param((0.9, 0.999), "Adam's/AdamW's BETA1,BETA2.")
    momentum: float = param(0.0, "SGD's momentum.")
    weight_decay: float = param(0.0, "Weight decay (AdamW: decoupled; Adam and SGD: L2 on the prompt).")
    max_grad_norm: float = param(0.0, "Clip the gradient to this norm before each step; 0: no clipping.")
    steps: int | None = param(None, "Optimiser steps; default: as many as the budget pays for (budget // "
                                    "step_cost). With a budget too, the smaller of the two.")
    step_cost: float = param(STEP_COST, "Candidate evaluations one step counts as: the measured cost of a "
                                        "forward-and-backward step relative to one forward candidate evaluation "
                                        "(`cultbench bench`, prompt-tuning).")
    variants_per_backward: int = param(4, "Training renderings whose autograd graph is held at once, in whole "
                                          "wordings (more: larger batches, more memory; fewer: less memory, "
                                          "slower steps); the gradient is the same. The default split has 4.")
    # 1: the study's budgets pay for few steps (8 at 30 evaluations), and a validation (one forward of
    # 2 renderings, no backward) costs a fraction of a step's forward and backward over 4.
    validate_every: int = param(1, "Early stopping: score the prompt on the validation wording every this many "
                                   "steps (step 0 included; each counts as one evaluation in the budget) and return "
                                   "the validated prompt with the lowest validation distance; 0, or no validation "
                                   "split: return the prompt with the lowest training fitness.")

    def __post_init__(self):
        super().__post_init__()
        if self.n_virtual is not None and not 1 <= self.n_virtual <= MAX_VIRTUAL_TOKENS:
            self._fail(f"n_virtual={self.n_virtual} is out of range 1..{MAX_VIRTUAL_TOKENS}")
        if self.optimizer not in OPTIMIZERS:
            self._fail(f"optimizer={self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}."
                       f"{did_you_mean(self.optimizer, OPTIMIZERS)}")
        if not self.lr > 0:
            self._fail(f"lr={self.lr} must be positive")
        if not all(0 <= b < 1 for b in self.betas):
            self._fail(f"betas={self.betas} must lie in [0, 1)")
        for name in ("momentum", "weight_decay", "max_grad_norm"):
            if getattr(self, name) < 0:
                self._fail(f"{name}={getattr(self, name)} must be >= 0")
        if self.steps is not None and self.steps < 1:
            self._fail(f"steps={self.steps} must be at least 1")
        if not self.step_cost > 0:
            self._fail(f"step_cost={self.step_cost} must be positive")
        if self.variants_per_backward < 1:
            self._fail(f"variants_per_backward={self.variants_per_backward} must be at least 1")
        if self.validate_every < 0:
            self._fail(f"validate_every={self.validate_every} must be >= 0 (0: no validation)")
        try:
            format_persona(self.init_text, "X")
        except (KeyError, IndexError, ValueError) as exc:
            self._fail(f"init_text may only use the field {{country}} ({type(exc).__name__}: {exc})")


def _optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, np.ndarray]:
    """The optimiser's per-parameter state as arrays (one parameter: the prompt)."""
    import torch

    state = optimizer.state_dict()["state"]
    return {f"optimizer.{key}": value.detach().cpu().numpy() if isinstance(value, torch.Tensor)
            else np.asarray(value) for key, value in state.get(0, {}).items()}


def _restore_optimizer(optimizer: torch.optim.Optimizer, arrays: dict[str, np.ndarray]) -> None:
    import torch

    own = {k[len("optimizer."):]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("optimizer.")}
    state = optimizer.state_dict()
    state["state"] = {0: own} if own else {}
    optimizer.load_state_dict(state)


@register_aligner("prompt-tuning")
class PromptTuning(ConfiguredAligner):
    """Soft prompt trained by gradient descent (torch.optim), the white-box reference."""
    display_order, colour = 60, "#009E73"

    config_class = PromptTuningConfig
    # Deterministic: it starts from P0 and every step uses every item of every training variant, so
    # another seed repeats the same run bit for bit (a sweep runs it with its first seed only).
    seeded = False

    def make_optimizer(self, prompt: torch.Tensor) -> torch.optim.Optimizer:
        import torch

        cfg = self.config
        if cfg.optimizer == "sgd":
            return torch.optim.SGD([prompt], lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        optimizer = getattr(torch.optim, OPTIMIZERS[cfg.optimizer])
        return optimizer([prompt], lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)

    def build_space(self, exact, init_text: str) -> SoftPromptSpace | None:
        """The space the trained tensor lives in; None: the prompt itself."""
        return None

    def validating(self, problem: AlignmentProblem | None = None) -> int:
        """Steps between validations (0: none): ``validate_every``, or 0 when ``problem`` has no
        validation split (without a problem: as if it had one)."""
        has_split = problem is None or problem.validation_scorer is not None
        return self.config.validate_every if has_split else 0

    def cost(self, steps: int, every: int) -> float:
        """Evaluations ``steps`` steps cost: ``step_cost`` each, plus one per validation (steps 0,
        ``every``, 2 ``every``, ...; ``every`` 0: none)."""
        return steps * self.config.step_cost + (-(-steps // every) if every else 0)

    def plan_steps(self, budget, every: int | None = None) -> int:
        """Steps to run: ``steps``, or what ``budget`` pays for (``cost``, validating every
        ``every`` steps; default: ``validate_every``), whichever is fewer."""
        cfg = self.config
        every = cfg.validate_every if every is None else every
        if budget is None:
            if cfg.steps is None:
                raise CultbenchError("prompt-tuning: give a budget (candidate evaluations) or steps")
            return cfg.steps
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
            raise CultbenchError(f"budget must be a positive whole number of evaluations, got {budget!r}")
        paid = int(math.floor(budget / (cfg.step_cost + (1 / every if every else 0)) + 1e-9))
        while self.cost(paid + 1, every) <= budget + 1e-9:
            paid += 1
        while paid > 0 and self.cost(paid, every) > budget + 1e-9:
            paid -= 1
        if paid < 1:
            validation = " and its validation 1" if every else ""
            raise CultbenchError(f"budget {budget} pays for no step of prompt-tuning (one step costs "
                                 f"{cfg.step_cost:g} evaluations{validation}): give a budget of at least "
                                 f"{math.ceil(self.cost(1, every) - 1e-9)}")
        return paid if cfg.steps is None else min(paid, cfg.steps)

    def check_budget(self, budget, reduced_precision: bool = False) -> int:
        """The budget, checked: a clear error unless it pays for at least one step (as the searches
        check). Training runs in the model's precision, so ``reduced_precision`` reserves nothing."""
        self.plan_steps(budget)
        return budget

    def align(self, problem: AlignmentProblem, budget: int | None = None, *, seed: int = 0,
              run_dir=None, resume: bool = False, progress: bool = False) -> Alignment:
        cfg = self.config
        every = self.validating(problem)
        steps = self.plan_steps(budget, every)
        # The differentiable scorer: the search scorer if it has a gradient path (a local
        # SurveyScorer), else the exact one (a search scorer on Ray workers has none).
        scorer = problem.scorer if hasattr(problem.scorer, "indices_with_grad") else problem.exact_scorer
        if not hasattr(scorer, "indices_with_grad"):
            raise CultbenchError(f"prompt-tuning needs a scorer with a gradient path (SurveyScorer), got "
                                 f"{type(scorer).__name__}")
        init_text = format_persona(cfg.init_text, problem.target.name)
        # P0 from the full-precision model, whatever precision the steps compute in.
        exact = problem.exact_scorer
        space = self.build_space(exact, init_text)
        p0, ids = initial_prompt(exact.model, exact.tokenizer, init_text, cfg.n_virtual)
        hidden = p0.shape[1]
        params = self.get_params()
        params.pop("steps")  # where to stop, like the budget: a resumed run may change it
        identity = json_ready({"aligner": self.name, "hyperparameters": params, "seed": seed,
                                    "model": model_record(problem, hidden), "problem": problem.describe(),
                                    "search_precision": precision(scorer)})
        run = _TrainingRun(self, problem, scorer, p0, identity, space=space, every=every, run_dir=run_dir,
                           resume=resume)
        if run.step > steps:
            raise CultbenchError(f"the checkpoint has taken {run.step} steps, more than the {steps} this budget "
                                 "pays for")
        best = f"best {problem.distance}" + ("" if precision(scorer) == precision(exact) else f" ({precision(scorer)})")
        with tqdm(total=steps, initial=run.step, desc=self.name, unit="step", disable=not progress,
                  dynamic_ncols=True) as bar:
            while run.step < steps:
                run.train_step()
                bar.set_postfix({"loss": f"{run.history[-1]['mean']:.4g}", best: f"{run.best_fitness:.4g}",
                                 **({"kept val": f"{run.kept_validation:.4g}"} if run.kept_validation is not None else {})},
                                refresh=False)
                bar.update(1)
        stopped = "steps" if cfg.steps is not None and steps == cfg.steps else "budget"
        parametrisation = {"form": "trained", "n_virtual": int(p0.shape[0]), "hidden_size": int(hidden),
                           "init_text": init_text, "init_token_ids": ids, "p0_source": "embedding module output"}
        if space is not None:
            parametrisation = dict(space.description, form="P0 + A z, z trained")
        soft_prompt = run.kept_prompt.to(p0.dtype)
        return Alignment(
            aligner=self.name, hyperparameters=self.get_params(), seed=seed, model=identity["model"],
            problem=problem.describe(), budget=budget, evaluations=int(math.ceil(run.cost - 1e-9)),
            result=final_result(problem, soft_prompt=soft_prompt), soft_prompt=soft_prompt.detach().cpu(),
            parametrisation=parametrisation, search=self.search_record(run, stopped, precision(scorer), soft_prompt),
            history=[dict(h) for h in run.history])

    def search_record(self, run: "_TrainingRun", stopped: str, search_precision: str | None, soft_prompt) -> dict:
        """The artifact's ``search`` record of a finished run (``soft_prompt``: the one returned)."""
        cfg, done, space = self.config, run.step, run.space
        search = {"best_fitness": run.best_fitness, "precision": search_precision, "stopped": stopped,
                  "generations": done, "steps": done, "step_cost": cfg.step_cost,
                  "evaluations_per_step": cfg.step_cost, "optimizer": cfg.optimizer,
                  "wall_seconds": run.elapsed, "seconds_per_step": run.elapsed / max(run.step, 1), "invalid": 0}
        if space is not None:  # share of z's coordinates at the box's edge: near 0, the box is not what limits the reach
            z = run.kept_trained.double().cpu().numpy()
            search.update(z_at_bounds=float(np.mean(np.isclose(z, space.bounds[0]) | np.isclose(z, space.bounds[1]))),
                          z_rms=float(np.sqrt(np.mean(z * z))))
        # Without early stopping, the returned prompt's validation distance is a report outside the budget.
        validation = run.kept_validation if run.every else validation_fitness_of(run.problem, soft_prompt)
        record = validation_record(run.problem, select_by="validation" if run.every else "train",
                                   fitness=validation, evaluations=run.validations, every=run.every or None,
                                   step=run.kept_step)
        if record is not None:
            search["validation"] = record
        return search


class _TrainingRun:
    """The trained tensor (the prompt, or z in a subspace), its optimiser, the best prompt seen
    (training fitness), the kept prompt (lowest validation distance; without validation, the best),
    the history and the checkpoint. ``every``: steps between validations (0: none)."""

    def __init__(self, aligner: PromptTuning, problem: AlignmentProblem, scorer, p0: torch.Tensor, identity: dict,
                 *, space: SoftPromptSpace | None = None, every: int = 0, run_dir=None, resume: bool = False):
        import torch

        self.aligner, self.problem, self.scorer, self.identity, self.space = aligner, problem, scorer, identity, space
        self.every = int(every)
        if space is None:  # the prompt itself, float32 master copy
            self.key, self.trained = "prompt", p0.detach().to(torch.float32).clone().requires_grad_(True)
        else:  # z, float64 like the searches' points; z = 0 is P0
            self.key = "z"
            self.trained = torch.zeros(space.d, dtype=torch.float64, device=p0.device).requires_grad_(True)
        self.optimizer = aligner.make_optimizer(self.trained)
        self.step, self.elapsed = 0, 0.0
        self.history: list[dict] = []
        self.best_fitness, self.best_trained = math.inf, self.trained.detach().clone()
        self.kept_trained, self.kept_step, self.kept_validation = self.best_trained, None, None
        self.path, restored = open_checkpoint(run_dir, resume, self.identity)
        if restored is not None:
            self._restore(*restored)
        else:
            self._save()

    def prompt(self, trained: torch.Tensor | None = None) -> torch.Tensor:
        """The soft prompt [n_virtual, hidden] (float32) of ``trained`` (default: the trained tensor,
        with its graph)."""
        trained = self.trained if trained is None else trained
        if self.space is None:
            return trained
        return self.space.prompt_tensor(trained).float()

    @property
    def best_prompt(self) -> torch.Tensor:
        """The soft prompt of the best trained tensor a step scored (training fitness)."""
        return self.prompt(self.best_trained)

    @property
    def kept_prompt(self) -> torch.Tensor:
        """The soft prompt returned: the validated one with the lowest validation distance (without
        validation: the best by training fitness)."""
        return self.prompt(self.kept_trained)

    @property
    def validations(self) -> int:
        """Validations run so far (steps 0, every, 2 every, ... before ``step``)."""
        return -(-self.step // self.every) if self.every else 0

    @property
    def cost(self) -> float:
        """Evaluations spent so far: the steps and the validations (``PromptTuning.cost``)."""
        return self.aligner.cost(self.step, self.every)

    def validate_and_keep(self, improved: bool) -> float | None:
        """At the cadence, the validation distance of the prompt this step scored (before its
        update), and keep that prompt when it is the lowest so far (ties: the earlier step); without
        validation, keep the prompt whenever its training fitness ``improved``."""
        validation = None
        if self.every and self.step % self.every == 0:
            validation = validation_fitness_of(self.problem, self.prompt().detach())
            if validation is None:
                _log.warning("step %d: the prompt gives non-finite indices on the validation wording; not kept",
                             self.step)
        lowest = validation is not None and (self.kept_validation is None or validation < self.kept_validation)
        if lowest if self.every else improved:
            self.kept_trained, self.kept_step, self.kept_validation = self.trained.detach().clone(), self.step, validation
        return validation

    def backward_groups(self) -> list[list[int]]:
        """The training renderings in groups of whole wordings, each group holding at most
        ``variants_per_backward`` renderings (at least one wording): a wording's balanced indices
        need both its renderings in one graph."""
        groups: list[list[int]] = []
        for wording in self.problem.wording_groups():
            if groups and len(groups[-1]) + len(wording) <= self.aligner.config.variants_per_backward:
                groups[-1].extend(wording)
            else:
                groups.append(list(wording))
        return groups

    def train_step(self) -> None:
        """Score the prompt and take one optimiser step: a forward and backward per group of
        wordings, the gradients summed (the fitness is the mean over wordings)."""
        import torch

        started = time.perf_counter()
        cfg, scorer, problem = self.aligner.config, self.scorer, self.problem
        n_wordings = len(problem.wording_groups())
        self.optimizer.zero_grad(set_to_none=True)
        fitness, rows = 0.0, []
        for group in self.backward_groups():
            prompt = self.prompt()  # per group: each backward frees its graph
            indices = scorer.indices_with_grad(prompt[None], variants=group)
            part = problem.loss(indices, variants=group)[0] * (len(set(problem.wordings[v] for v in group)) / n_wordings)
            if not torch.isfinite(part):
                raise CultbenchError(f"step {self.step}: the soft prompt gives non-finite indices (NaN or infinite "
                                     f"logits); try a smaller lr (now {cfg.lr:g})")
            part.backward()
            fitness += float(part.detach())
            rows.append(indices.detach()[0].double().cpu().numpy())
        grad_norm = float(self.trained.grad.norm())
        improved = fitness < self.best_fitness
        if improved:
            self.best_fitness, self.best_trained = fitness, self.trained.detach().clone()
            self.best_indices = np.concatenate(rows).mean(axis=0)
        validation = self.validate_and_keep(improved)
        if cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_([self.trained], cfg.max_grad_norm)
        self.optimizer.step()
        if self.space is not None:
            with torch.no_grad():
                self.trained.clamp_(*self.space.bounds)
        self.elapsed += time.perf_counter() - started
        dims = list(scorer.instrument.dimension_ids)
        self.step += 1
        self.history.append({
            "step": self.step - 1, "evaluations": self.cost, "best": self.best_fitness,
            "mean": fitness, "grad_norm": grad_norm, "seconds": self.elapsed,
            "best_indices": dict(zip(dims, self.best_indices.tolist())),
            **({"validation": validation} if self.every else {}),
        })
        self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        state = {"identity": self.identity, "step": self.step, "elapsed": self.elapsed, "history": self.history,
                 "best_fitness": None if not self.history else self.best_fitness, "kept_step": self.kept_step,
                 "kept_validation": self.kept_validation}
        arrays = {self.key: self.trained.detach().cpu().numpy(), f"best_{self.key}": self.best_trained.cpu().numpy(),
                  f"kept_{self.key}": self.kept_trained.cpu().numpy(), **_optimizer_state(self.optimizer)}
        if self.history:
            arrays["best_indices"] = self.best_indices
        save_checkpoint(self.path, state, arrays)

    def _restore(self, state: dict, arrays: dict[str, np.ndarray]) -> None:
        if self.key not in arrays:
            raise CultbenchError(f"{self.path} is not a prompt-tuning checkpoint; resume with the aligner that "
                                 "wrote it, or use another folder")
        import torch

        self._check_state(state, arrays)
        with torch.no_grad():
            self.trained.copy_(torch.from_numpy(arrays[self.key]))
        _restore_optimizer(self.optimizer, arrays)
        self.step, self.elapsed, self.history = state["step"], state["elapsed"], state["history"]
        self.best_trained = torch.from_numpy(arrays[f"best_{self.key}"]).clone()
        self.kept_trained = torch.from_numpy(arrays[f"kept_{self.key}"]).clone()
        self.kept_step, self.kept_validation = state["kept_step"], state["kept_validation"]
        if state["best_fitness"] is not None:
            self.best_fitness, self.best_indices = state["best_fitness"], arrays["best_indices"]
        _log.info("resuming %s at step %d", self.path, self.step)

    def _check_state(self, state: dict, arrays: dict) -> None:
        """Refuse a checkpoint whose fields do not hold what :meth:`_save` writes: kinds, the trained
        tensor's shape, finite arrays (a NaN prompt is refused before any step runs)."""
        check_fields(self.path, state, step="count", elapsed="number", history="records", best_fitness="number?",
                     kept_step="count?", kept_validation="number?")
        if len(state["history"]) != state["step"]:
            raise CultbenchError(f"{self.path}: corrupt checkpoint (step and history do not agree)")
        shape = tuple(self.trained.shape)
        check_array(self.path, arrays, self.key, shape)
        check_array(self.path, arrays, f"best_{self.key}", shape)
        check_array(self.path, arrays, f"kept_{self.key}", shape)
        for name in arrays:
            if name.startswith("optimizer."):
                scalar = arrays[name].size == 1 and arrays[name].ndim <= 1  # e.g. Adam's step count
                check_array(self.path, arrays, name, arrays[name].shape if scalar else shape)
        if state["best_fitness"] is not None:
            check_array(self.path, arrays, "best_indices")


@dataclass(frozen=True)
class SubspaceTuningConfig(PromptTuningConfig):
    d: int = param(16, "Dimension of z (1..n_virtual*hidden), as for de/cmaes/random; d = n_virtual*hidden "
                       "trains the prompt directly (A = identity, scaled like the projection).")
    projection_seed: int = param(0, "Seed of the random projection A (as for the searches).")
    bounds: tuple[float, float] = param((-3.0, 3.0), "Box of every coordinate of z, as LOW,HIGH (z is clamped "
                                                     "into it after every step), as for the searches.")
    # z's box is (-3, 3) and Adam moves each coordinate by about lr per step: at 0.1 a coordinate can
    # reach the box's edge from 0 in 30 of the 46 steps of a 10-minute run (125 units); at 3e-2,
    # prompt-tuning's, it could not.
    lr: float = param(0.1, "Learning rate of z (Adam moves each coordinate of z by about lr per step).")

    def __post_init__(self):
        super().__post_init__()
        if error := space_error(self.d, self.bounds, self.projection_seed):
            self._fail(error)


@register_aligner("subspace-tuning")
class SubspaceTuning(PromptTuning):
    """Gradient prompt tuning in the black-box searches' space (P0 + A z): how far that space reaches."""
    display_order, colour = 70, "#56B4E9"

    config_class = SubspaceTuningConfig

    def build_space(self, exact, init_text: str) -> SoftPromptSpace:
        cfg = self.config
        return SoftPromptSpace.build(exact.model, exact.tokenizer, n_virtual=cfg.n_virtual, d=cfg.d,
                                     init_text=init_text, projection_seed=cfg.projection_seed, bounds=cfg.bounds)
