"""Ray: candidate scoring on actors (``RayScorer``) and the sweep's Ray executors (``RayExecutor``:
each combination a task; ``RayPopulationExecutor``: each population over actors).

Candidate scoring: each population is split across actors that each hold one model replica.

:class:`RayScorer` has the interface the aligners use (``model``, ``tokenizer``, ``instrument``,
``variants``, ``constants``, ``dtype``, ``hidden_size``, ``score``). The driver keeps its own copy
of the model (the aligners read the input embeddings and the initial text's tokens from it); each
actor loads the model again from its name or path and builds its own :class:`SurveyScorer`.

A population of C candidates is cut into contiguous shares, one per actor; the shares are scored
in parallel and the arrays concatenated along the candidate axis in order. Each candidate is
scored by the same code as in one process, so the numbers differ only by float rounding of
batches of other sizes (about an ulp of the logits in fp32; see docs/distributed.md).
An actor that dies is replaced and its share scored again, at most ``max_retries`` times per call.

Sweeps (the executors of ``cultbench.runs.sweep.Sweep``): with ``RayExecutor`` each combination is a
Ray task that aligns and evaluates it where it runs (one model per worker process, loaded once)
and returns its record, and the driver writes each result as its task finishes; with
``RayPopulationExecutor`` the combinations run in the driver and only the populations go to Ray.

Ray is optional (``pip install 'cultbench[ray]'``) and imported only here, when it is asked for.
"""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from cultbench.errors import CultbenchError
from cultbench.instruments import Instrument
from cultbench.scoring.models import load_model, resolve_dtype
from cultbench.prompts import PromptVariant
from cultbench.scoring.scorer import ScoreResult, SurveyScorer
from cultbench.runs.sweep import LocalExecutor, Sweep, SweepSpec

CONNECT_TIMEOUT_S = 5.0


def import_ray():
    """The ray module, or a CultbenchError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise CultbenchError("distributed scoring (--workers, --ray-address) needs Ray: "
                             "pip install 'cultbench[ray]'") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail fast on a HOST:PORT nobody listens on (ray.init would retry for minutes)."""
    if address in ("auto", "local") or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise CultbenchError(f"--ray-address {address!r}: expected HOST:PORT (e.g. 10.0.0.1:6379) or 'auto'")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise CultbenchError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start it with "
                             "`ray start --head` or check the address") from None


def connect(address: str | None, workers: int | None) -> bool:
    """Join the Ray cluster at ``address``, or start a local one for ``workers`` actors.

    Returns True when this call started Ray (the caller then shuts it down). An already
    initialised Ray (e.g. started by the caller) is used as it is.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise CultbenchError(f"cannot connect to the Ray cluster at {address}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    else:
        ray.init(num_cpus=max(int(workers or 1), os.cpu_count() or 1), **quiet)
    return True


class ScorerWorker:
    """One model replica and its survey scorer (the body of a Ray actor)."""

    def __init__(self, model_name: str, model_dtype: str, instrument: Instrument, variants: list,
                 constants: dict | None, max_batch_mb: float, dtype: str | None, threads: int | None):
        if threads:
            torch.set_num_threads(threads)
        device = "cuda" if import_ray().get_gpu_ids() else "cpu"
        loaded = load_model(model_name, dtype=model_dtype, device=device)
        self.scorer = SurveyScorer(loaded.model, loaded.tokenizer, instrument, variants, constants=constants,
                                   max_batch_mb=max_batch_mb, dtype=dtype)

    def info(self) -> dict:
        return {"hidden_size": self.scorer.hidden_size, "dtype": str(self.scorer.dtype), "pid": os.getpid(),
                "device": str(self.scorer.device)}

    def score(self, soft_prompts, personas) -> ScoreResult:
        return self.scorer.score(soft_prompts, personas)


def split(n: int, parts: int) -> list[range]:
    """Contiguous shares of ``range(n)``, sizes differing by at most one, empty ones left out."""
    bounds = np.linspace(0, n, min(parts, n) + 1).round().astype(int) if n else [0, 0]
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def merge(results: Sequence[ScoreResult]) -> ScoreResult:
    """The shares' results, concatenated along the candidate axis in order."""
    first = results[0]
    cat = {name: np.concatenate([getattr(r, name) for r in results], axis=0)
           for name in ("probs", "option_mass", "expected", "indices")}
    return ScoreResult(**cat, constants=dict(first.constants), variants=list(first.variants),
                       item_ids=list(first.item_ids), dimension_ids=list(first.dimension_ids))


class RayScorer:
    """A :class:`SurveyScorer` whose populations are scored by Ray actors, one model replica each.

    Args:
        model, tokenizer: the driver's copy of the model (for the aligners' embeddings and tokens).
        instrument, variants, constants, max_batch_mb, dtype: as for :class:`SurveyScorer`.
        model_name: what each actor loads (alias, folder, Hugging Face id or .gguf file; the same
            path must exist on every node), in ``model_dtype``.
        workers: number of actors [default: local Ray: 2; a cluster: its GPUs / num_gpus_per_worker,
            or one per node without GPUs].
        address: an existing Ray cluster (``auto`` or HOST:PORT); None starts a local Ray (or uses
            the one already initialised in this process).
        num_gpus_per_worker: GPUs each actor reserves [default: 1 when the cluster has GPUs, else 0].
        threads_per_worker: torch threads of each CPU actor [default: local: cores / workers].
        max_retries: replacements of dead actors allowed per :meth:`score` call.
        start_timeout_s: how long the actors may take to be placed and load the model.
    """

    def __init__(self, model, tokenizer, instrument: Instrument, variants: Sequence[PromptVariant], *,
                 model_name: str, model_dtype: str = "float32", constants: dict | None = None,
                 max_batch_mb: float = 512.0, dtype: str | None = None, workers: int | None = None,
                 address: str | None = None, num_gpus_per_worker: float | None = None,
                 threads_per_worker: int | None = None, max_retries: int = 3, start_timeout_s: float = 600.0):
        if workers is not None and workers < 1:
            raise CultbenchError(f"--workers {workers}: give at least one worker")
        if num_gpus_per_worker is not None and num_gpus_per_worker < 0:
            raise CultbenchError(f"--num-gpus-per-worker {num_gpus_per_worker}: must be >= 0")
        if not variants:
            raise CultbenchError("the scorer needs at least one prompt variant")
        embeddings = model.get_input_embeddings()
        self.model, self.tokenizer, self.instrument = model, tokenizer, instrument
        self.variants = list(variants)
        self.constants = instrument.constants(constants)
        self.hidden_size = int(embeddings.weight.shape[1])
        self.dtype = resolve_dtype(dtype) if dtype is not None else embeddings.weight.dtype
        self.max_retries = int(max_retries)
        self.replacements = 0  # dead actors replaced so far
        self._ray = import_ray()
        self._owns_ray = connect(address, workers)
        resources = self._ray.cluster_resources()
        gpus = float(resources.get("GPU", 0))
        self.num_gpus_per_worker = float(num_gpus_per_worker if num_gpus_per_worker is not None else
                                         (1.0 if gpus else 0.0))
        if workers is None:
            if self.num_gpus_per_worker:
                workers = max(1, int(gpus // self.num_gpus_per_worker))
            else:
                workers = 2 if not address else max(1, len([n for n in self._ray.nodes() if n.get("Alive")]))
        self.workers = int(workers)
        if threads_per_worker is None and not address and not self.num_gpus_per_worker:
            threads_per_worker = max(1, (os.cpu_count() or 1) // self.workers)
        self._actor_class = self._ray.remote(num_cpus=1, num_gpus=self.num_gpus_per_worker)(ScorerWorker)
        self._actor_args = (model_name, model_dtype, instrument, self.variants, constants, float(max_batch_mb),
                            dtype, threads_per_worker)
        self.actors: list = []
        try:
            self.actors = [self._start_actor() for _ in range(self.workers)]
            infos = self._ray.get([a.info.remote() for a in self.actors], timeout=start_timeout_s)
        except self._ray.exceptions.GetTimeoutError:
            self.close()
            raise CultbenchError(f"{self.workers} Ray workers (1 CPU and {self.num_gpus_per_worker:g} GPU each) "
                                 f"were not ready within {start_timeout_s:g} s; the cluster has "
                                 f"{resources.get('CPU', 0):g} CPUs and {gpus:g} GPUs") from None
        except self._actor_errors() as exc:
            self.close()
            raise CultbenchError(f"a Ray worker could not load {model_name!r}: {_first_line(exc)}") from None
        for info in infos:
            if info["hidden_size"] != self.hidden_size:
                self.close()
                raise CultbenchError(f"the workers' model {model_name!r} has hidden size {info['hidden_size']}, "
                                     f"the driver's {self.hidden_size}: they must load the same model")

    def _actor_errors(self) -> tuple:
        exc = self._ray.exceptions
        return tuple(e for e in (getattr(exc, "RayActorError", None), getattr(exc, "ActorDiedError", None),
                                 getattr(exc, "ActorUnavailableError", None)) if e is not None)

    def _start_actor(self):
        return self._actor_class.remote(*self._actor_args)

    def _submit(self, i: int, soft, personas):
        """Send one share to actor ``i``; returns the object ref of its ScoreResult."""
        return self.actors[i].score.remote(soft, personas)

    def score(self, soft_prompts=None, personas: Sequence[str | None] | None = None) -> ScoreResult:
        """Score candidates as :meth:`SurveyScorer.score` does, the population split across the actors."""
        soft = _as_list(soft_prompts)
        n = max(len(soft) if soft is not None else 0, len(personas) if personas is not None else 0)
        if soft is not None and personas is not None and len(soft) != len(personas):
            raise CultbenchError(f"{len(soft)} soft prompts but {len(personas)} personas")
        if n == 0:  # the bare model: one candidate, on the first actor
            shares = [(None, None)]
        else:
            shares = [([soft[j] for j in r] if soft is not None else None,
                       [personas[j] for j in r] if personas is not None else None) for r in split(n, self.workers)]
        refs = [self._submit(i, *share) for i, share in enumerate(shares)]
        results: list = [None] * len(shares)
        retries = 0
        for i, share in enumerate(shares):
            while results[i] is None:
                try:
                    results[i] = self._ray.get(refs[i])
                except self._actor_errors() as exc:
                    retries += 1
                    if retries > self.max_retries:
                        raise CultbenchError(f"Ray workers died {retries} times while scoring one population "
                                             f"(last: {_first_line(exc)}); giving up") from None
                    self._replace(i)
                    refs[i] = self._submit(i, *share)
        return merge(results)

    def _replace(self, i: int) -> None:
        try:
            self._ray.kill(self.actors[i], no_restart=True)
        except Exception:  # already gone
            pass
        self.actors[i] = self._start_actor()
        self.replacements += 1

    def close(self) -> None:
        """Stop the actors, and Ray itself if this scorer started it."""
        for actor in self.actors:
            try:
                self._ray.kill(actor, no_restart=True)
            except Exception:
                pass
        self.actors = []
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns_ray = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _as_list(soft_prompts):
    """Soft prompts as a list of CPU tensors (or None entries), for shipping to the actors."""
    if soft_prompts is None:
        return None
    if isinstance(soft_prompts, torch.Tensor):
        soft_prompts = list(soft_prompts[None] if soft_prompts.dim() == 2 else soft_prompts)
    return [None if s is None else torch.as_tensor(s).detach().cpu() for s in soft_prompts]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1][:300] if text else type(exc).__name__


# -- sweeps on Ray ------------------------------------------------------------------------------

class RayPopulationExecutor(LocalExecutor):
    """Runs a sweep's combinations in this process, each search's populations split over Ray
    actors (:class:`RayScorer`); for one large model and few combinations."""

    def __init__(self, workers: int | None = None, address: str | None = None,
                 num_gpus_per_worker: float | None = None):
        self.workers, self.address, self.num_gpus_per_worker = workers, address, num_gpus_per_worker

    def search_scorer(self, sweep: Sweep, model: str, loaded, exact):
        return sweep.local_search_scorer(loaded, exact, model, ray=partial(
            RayScorer, workers=self.workers, address=self.address, num_gpus_per_worker=self.num_gpus_per_worker))


_WORKER_MODELS: dict = {}  # inside a Ray worker process: model name -> (loaded, exact scorer, search scorer)


def run_combination(spec, combo, model_path: str, threads: int | None):
    """Body of a Ray task: align and evaluate one combination where the task runs; returns
    (record, file stem). The driver writes the
    record; the run folder (checkpoint, alignment) is written here, so a retried task resumes.
    ``model_path`` is what to load (the driver's relative paths made absolute); the model keeps
    the name the user gave, which is what results are keyed by."""
    ray = import_ray()
    if threads:
        torch.set_num_threads(threads)
    sweep = Sweep(spec, echo=lambda message: None)
    if combo.model not in _WORKER_MODELS:
        _WORKER_MODELS.clear()  # one model per worker process at a time
        loaded, exact = sweep.load(model_path, device="cuda" if ray.get_gpu_ids() else None)
        loaded.info = {**loaded.info, "id": combo.model}
        _WORKER_MODELS[combo.model] = (loaded, exact, sweep.local_search_scorer(loaded, exact))
    record, stem, _ = sweep.align_and_evaluate(combo, *_WORKER_MODELS[combo.model])
    return record, stem


def _worker_spec(spec: SweepSpec) -> SweepSpec:
    """The spec as a worker must see it: absolute folders (a worker's folder is not the
    driver's; data files are made absolute by the Sweep itself), no --force (the driver cleared the run folders once; a retried task must find its
    first attempt's checkpoint)."""
    models = [str(Path(m).resolve()) if Path(m).exists() else m for m in spec.models]
    return replace(spec, models=models, output=Path(spec.output).resolve(), runs_dir=Path(spec.runs_dir).resolve(),
                   progress=False, force=False)


class RayExecutor:
    """Runs each combination of a sweep as a Ray task, at most ``workers`` at a time locally (one
    per GPU slot, or per CPU, on a cluster); the driver writes each result as its task finishes.
    A task whose worker dies is run again (up to ``max_retries`` times) and resumes from the
    checkpoint its first attempt left; aligners that ignore seed and budget run once per model
    and target."""

    def __init__(self, workers: int | None = None, address: str | None = None,
                 num_gpus_per_worker: float | None = None, max_retries: int = 2):
        self.workers, self.address, self.num_gpus_per_worker = workers, address, num_gpus_per_worker
        self.max_retries = max_retries

    def run(self, sweep: Sweep, combos: list, bar) -> Iterator[tuple[str, Path]]:
        ray = import_ray()
        spec, max_retries = sweep.spec, self.max_retries
        owns = connect(self.address, self.workers)
        try:
            resources = ray.cluster_resources()
            gpus = float(self.num_gpus_per_worker if self.num_gpus_per_worker is not None else
                         (1.0 if resources.get("GPU", 0) else 0.0))
            cpus, threads = 1.0, None
            if not self.address and not gpus:  # local CPUs: `workers` tasks at a time, the cores shared out
                workers = self.workers or 2
                cpus = float(resources.get("CPU", 1)) / workers
                threads = max(1, (os.cpu_count() or 1) // workers)
            # A GPU worker runs one task, so each task loads its model on the GPU Ray gave it.
            task = ray.remote(max_calls=1 if gpus else 0)(run_combination).options(
                num_cpus=cpus, num_gpus=gpus, max_retries=max_retries)
            worker_spec = _worker_spec(spec)
            paths = dict(zip(spec.models, worker_spec.models))
            pending, groups, shared = {}, {}, []
            for combo in combos:
                if not sweep.searches(combo.aligner):
                    group = (combo.model, combo.target.name, combo.target.source, combo.aligner)
                    if group in groups:
                        shared.append((combo, group))
                        continue
                    groups[group] = None
                if spec.force:
                    sweep.clear_run_folders(combo)
                pending[task.remote(worker_spec, combo, paths[combo.model], threads)] = combo

            def finish(ref, combo) -> Path:
                record, stem = ray.get(ref)
                path = sweep.write(combo, record, stem)
                group = (combo.model, combo.target.name, combo.target.source, combo.aligner)
                if group in groups:
                    groups[group] = path
                bar.update(1)
                return path

            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                combo = pending.pop(ref)
                try:
                    path = finish(ref, combo)
                except ray.exceptions.RayError as exc:
                    ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
                    for other in ready:  # finished ones are kept, whatever happened to this one
                        try:
                            finish(other, pending.pop(other))
                        except ray.exceptions.RayError:
                            pass
                    for other in pending:
                        ray.cancel(other, force=True)
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, CultbenchError):
                        message = str(cause)
                    elif isinstance(exc, ray.exceptions.RayTaskError):
                        message = _first_line(exc)
                    else:
                        message = (f"{type(exc).__name__} after {max_retries} retries: {_first_line(exc)}; "
                                   "finished results are kept, run the same command again to go on")
                    raise CultbenchError(f"{combo.aligner} -> {combo.target.name} failed on Ray: {message}") from None
                yield "written", path
            for combo, group in shared:
                bar.update(1)
                yield "shared", groups[group]
        finally:
            if owns and ray.is_initialized():
                ray.shutdown()
