"""A sweep: every combination of models, targets, aligners, budgets and seeds, aligned on the
training prompt variants, evaluated on the training and held-out variants, one result file each.

Each model is loaded once (and not at all when all its combinations are done), with one exact
(full-precision) scorer and, for ``search_dtype`` below the model's, one reduced-precision
search scorer shared by all its combinations. A combination keeps its run folder (search
checkpoint, then the alignment artifact): a rerun skips finished combinations, evaluates an
alignment that was saved but not evaluated, and resumes an interrupted search from its
checkpoint. Aligners that ignore the seed and the budget (the baselines: their alignment says
``seed=None``) run once per model and target, whatever the seeds and budgets asked for; aligners
whose result does not depend on the seed (``seeded = False``: prompt-tuning) run with the first seed.

A distribution instrument (GlobalOpinionQA, with ``data``) is aligned on its training questions
under the training wordings and evaluated on every question under every wording; its results are
distribution records (``cultbench.evaluation.kinds``).

Where the combinations run is the sweep's executor (:class:`Executor`): :class:`LocalExecutor`
in this process, or one of Ray's in ``cultbench.runs.distributed``; the caller (the CLI) picks it.
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Protocol

from filelock import FileLock
from tqdm.auto import tqdm

from aligners import Alignment, get_aligner_class
from aligners.artifact import CONFIG_NAME, TENSORS_NAME
from aligners.checkpoint import CHECKPOINT_NAME
from aligners.search import check_seed
from cultbench.runs.aligning import align_target, fitting, prepare_aligner, search_scorer, validation_scorer
from cultbench.errors import CultbenchError, did_you_mean
from cultbench.evaluation.candidate import evaluate
from cultbench.instruments import load_instrument_with_data, resolve_target
from cultbench.scoring.models import DEFAULT_MODEL, check_precisions, load_model, locate_model, model_sha256, resolve_dtype
from cultbench.profiles import Profile, lookup
from cultbench.prompts import get_variants, splits_of, variants_file, variants_version
from cultbench.runs.results import (SPLITS, build_record, combination_key, entry_stem,
                               read_record, run_info, write_record)
from cultbench.scoring.scorer import SurveyScorer
from cultbench.runs.summary import result_headline

RUN_FILES = (CHECKPOINT_NAME, CONFIG_NAME, TENSORS_NAME)


@dataclass
class SweepSpec:
    """What to run; the CLI's options (or a config file) fill it."""

    targets: list[str]
    aligners: list[str]
    models: list[str] = field(default_factory=lambda: [DEFAULT_MODEL])
    seeds: list[int] = field(default_factory=lambda: [0])
    budgets: list[int] = field(default_factory=lambda: [300])
    source: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    constants: dict[str, float] = field(default_factory=dict)
    instrument: str = "vsm2013"
    # A distribution instrument's data and its options (as `cultbench run --data ...` takes them).
    data: str | None = None
    heldout_items: str | None = None
    split_seed: int | None = None
    cleaning: list[str] = field(default_factory=list)
    distance: str = "l1"  # a distribution instrument's is always jsd (l1, the default, is read as it)
    dimensions: list[str] | None = None
    search_dtype: str | None = None  # None: dtype; may only lower it (models.check_precisions)
    dtype: str = "float32"
    device: str = "cpu"
    max_batch_mb: float | None = None
    output: Path = Path("leaderboard/entries")
    runs_dir: Path = Path("runs")
    force: bool = False
    progress: bool = True


@dataclass(frozen=True)
class Combination:
    model: str
    target: Profile
    aligner: str
    budget: int
    seed: int
    model_sha256: str | None = None  # the model's content hash (cultbench.scoring.models.model_sha256), part of the key


class Executor(Protocol):
    """Where a sweep's combinations run: :class:`LocalExecutor` (this process), or Ray
    (``cultbench.runs.distributed.RayExecutor``: each combination a Ray task;
    ``RayPopulationExecutor``: here, each population scored on Ray actors)."""

    def run(self, sweep: "Sweep", todo: list[Combination], bar) -> Iterator[tuple[str, Path]]:
        """Align, evaluate and write the unfinished combinations ``todo`` (of any models); yield
        ("written" or "shared", result path) as each one ends, and advance ``bar``."""


class LocalExecutor:
    """Runs the combinations in this process, model after model (each loaded once)."""

    def run(self, sweep: "Sweep", todo: list[Combination], bar) -> Iterator[tuple[str, Path]]:
        for model in _unique(c.model for c in todo):
            loaded, exact = sweep.load(model)
            search = self.search_scorer(sweep, model, loaded, exact)
            try:
                yield from sweep.run_combinations([c for c in todo if c.model == model], loaded, exact, search, bar)
            finally:
                if search is not exact and hasattr(search, "close"):
                    search.close()

    def search_scorer(self, sweep: "Sweep", model: str, loaded, exact):
        """The scorer the searches use (the final pick and every reported number use ``exact``)."""
        return sweep.local_search_scorer(loaded, exact)


def _unique(values) -> list:
    return list(dict.fromkeys(values))


def _make_dir(path: Path, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CultbenchError(f"{what} {path}: cannot create the folder ({exc.strerror or exc})") from None
    if not path.is_dir():
        raise CultbenchError(f"{what} {path} is not a folder")


class Sweep:
    """Checks a :class:`SweepSpec` (everything that can be checked before a model loads) and runs it."""

    def __init__(self, spec: SweepSpec, echo: Callable[[str], None] | None = None,
                 executor: Executor | None = None):
        self.spec = spec
        self.executor = executor or LocalExecutor()
        self.echo = echo or (lambda m: tqdm.write(m, file=sys.stderr))  # messages between the progress bars
        if not spec.targets or not spec.aligners:
            raise CultbenchError("give at least one --target and one --aligner")
        for name in spec.models:
            locate_model(name)  # a missing file or folder is reported now, not after the first model's work
        for name in ("data", "heldout_items"):  # absolute, so that a Ray worker (another folder) and the
            value = getattr(spec, name)  # records (data.path, the rerun command) name the same file
            if value is not None and Path(value).exists():
                setattr(spec, name, str(Path(value).resolve()))
        self.instrument = load_instrument_with_data(spec.instrument, spec.data, spec.heldout_items, spec.split_seed,
                                                    spec.cleaning)
        self.distribution = self.instrument.kind == "distribution"
        # What the aligners fit: a distribution instrument's training questions; an index instrument whole.
        self.fitted, self.distance, dimensions = fitting(self.instrument, spec.distance, spec.dimensions)
        self.constants = self.instrument.constants(spec.constants)
        self.dimensions = [] if self.distribution else list(dimensions or self.instrument.dimension_ids)
        profiles = [resolve_target(self.instrument, t, source=spec.source, dimensions=dimensions) for t in spec.targets]
        spec.dtype, spec.search_dtype = check_precisions(spec.dtype, spec.search_dtype)
        path = variants_file(self.instrument)
        self.variants = {split: get_variants(split, path=path) for split in splits_of(path)}
        self.profiles = list({(p.name, p.source): p for p in profiles}.values())  # "US" and "USA" are one target
        for budget in spec.budgets:
            if isinstance(budget, bool) or budget < 1:
                raise CultbenchError(f"--budget {budget}: give a positive number of candidate evaluations")
        self.aligners = {name: self._make_aligner(name) for name in _unique(spec.aligners)}
        self._validation_scorers: dict[int, tuple] = {}
        self._check_params()
        for seed in spec.seeds:
            try:
                check_seed(seed)
            except CultbenchError:
                raise CultbenchError(f"--seed {seed}: give a whole number >= 0") from None
        _make_dir(spec.output, "--output")
        _make_dir(spec.runs_dir, "--runs-dir")

    def _make_aligner(self, name: str):
        """The aligner with its own hyper-parameters of ``--param`` (a sweep's apply to every aligner
        that has them), checked against the instrument and every budget."""
        return prepare_aligner(name, self.params_of(name), self.instrument, _unique(self.spec.budgets),
                               self.reduced_precision())

    def params_of(self, name: str) -> dict[str, str]:
        """The ``--param`` values aligner ``name`` takes: ``NAME=VALUE`` for every aligner that has
        NAME, and ``ALIGNER.NAME=VALUE`` for that aligner only, which wins (e.g. DE's population
        sized to its dimension while CMA-ES keeps its own)."""
        fields = {p["name"] for p in get_aligner_class(name).config_class.describe_params()}
        shared = {k: v for k, v in self.spec.params.items() if "." not in k and k in fields}
        own = {k.split(".", 1)[1]: v for k, v in self.spec.params.items() if k.split(".", 1)[0] == name and "." in k}
        return {**shared, **own}

    def _check_params(self) -> None:
        """A shared ``--param`` must belong to some aligner of the run, a scoped one to an aligner the
        run runs (its name was checked against that aligner when it was made)."""
        known = {p["name"] for a in self.aligners.values() for p in a.config_class.describe_params()}
        for key in self.spec.params:
            aligner, _, name = key.rpartition(".")
            if aligner and aligner not in self.aligners:
                raise CultbenchError(f"--param {key!r} names the aligner {aligner!r}, which this run does not run; "
                                     f"it runs {', '.join(self.aligners)}.{did_you_mean(aligner, self.aligners)}")
            if not aligner and name not in known:
                raise CultbenchError(f"--param {name!r} is a hyper-parameter of none of the aligners "
                                     f"{', '.join(self.aligners)}; theirs: {', '.join(sorted(known)) or 'none'}."
                                     f"{did_you_mean(name, known)}")

    # -- combinations ----------------------------------------------------------------------------

    def combinations(self) -> list[Combination]:
        """Seed by seed (then target, then aligner): a sweep stopped early has every target and
        aligner for its first seeds, not every seed of its first targets."""
        s = self.spec
        hashes = {m: model_sha256(m) for m in _unique(s.models)}  # hashed once per process (models.py)
        seeds = _unique(s.seeds)
        return [Combination(m, p, a, b, seed, hashes[m]) for m in _unique(s.models) for b in _unique(s.budgets)
                for seed in seeds for p in self.profiles for a in self.aligners
                if self.seeded(a) or seed == seeds[0]]

    def key(self, combo: Combination, seed, budget, search_dtype) -> dict:
        instrument = (self.instrument.describe() if self.distribution
                      else {"name": self.instrument.name, "version": self.instrument.version})
        return combination_key(
            model=combo.model, model_sha256=combo.model_sha256,
            model_dtype=str(resolve_dtype(self.spec.dtype)).replace("torch.", ""),
            instrument=instrument, constants=self.constants, target=combo.target.to_dict(), aligner=combo.aligner,
            hyperparameters=self.aligners[combo.aligner].get_params(), seed=seed, budget=budget,
            search_dtype=search_dtype, distance=self.distance, dimensions=self.dimensions,
            variants={**{s: [v.name for v in vs] for s, vs in self.variants.items()},
                      "version": variants_version(variants_file(self.instrument))})

    def _keys(self, combo: Combination) -> tuple[dict, dict]:
        """(the key of a searching aligner's run, the key of a seed- and budget-free one)."""
        search_dtype = str(resolve_dtype(self.spec.search_dtype)).replace("torch.", "")
        return self.key(combo, combo.seed, combo.budget, search_dtype), self.key(combo, None, None, None)

    def _stem(self, key: dict, combo: Combination) -> str:
        return entry_stem(key, combo.target.iso2 or combo.target.code or combo.target.name)

    def finished(self, combo: Combination) -> Path | None:
        """The valid result file of a combination, if one exists."""
        for key in self._keys(combo):
            path = self.spec.output / f"{self._stem(key, combo)}.json"
            if path.exists():
                try:
                    read_record(path)
                    return path
                except CultbenchError as exc:
                    self.echo(f"{exc}; running it again")
        return None

    # -- running ---------------------------------------------------------------------------------

    def run(self) -> Iterator[tuple[str, Path]]:
        """Run every combination; yields (status, result path) as each one ends: "written", "done"
        (finished earlier) or "shared" (an aligner that ignores seed and budget already ran)."""
        combos = self.combinations()
        with tqdm(total=len(combos), desc="combinations", unit="run", disable=not self.spec.progress,
                  dynamic_ncols=True, position=0) as bar:
            todo = []
            for combo in combos:
                done = None if self.spec.force else self.finished(combo)
                if done is None:
                    todo.append(combo)
                else:
                    bar.update(1)
                    yield "done", done
            if todo:
                yield from self.executor.run(self, todo, bar)

    def searches(self, aligner: str) -> bool:
        """False for aligners whose result depends on neither seed nor budget (the baselines)."""
        return bool(self.aligners[aligner].searches)

    def seeded(self, aligner: str) -> bool:
        """False for aligners whose result does not depend on the seed: they run with the first seed."""
        return bool(self.aligners[aligner].seeded)

    def load(self, model: str, device: str | None = None) -> tuple:
        """(the loaded model, its full-precision scorer on the training variants)."""
        s = self.spec
        loaded = load_model(model, dtype=s.dtype, device=device or s.device)
        exact = SurveyScorer(loaded.model, loaded.tokenizer, self.fitted, self.variants["train"],
                             constants=self.constants, **self.scorer_bound())
        return loaded, exact

    def validation_scorer(self, exact: SurveyScorer) -> SurveyScorer | None:
        """The full-precision scorer of the validation wordings for ``exact``'s model (made once per
        model; None without a validation split): what aligners select and stop on."""
        cache = self._validation_scorers  # id -> (exact, its validation scorer): exact kept, so the id stays its
        if id(exact) not in cache:
            cache[id(exact)] = (exact, validation_scorer(exact, variants_file(self.instrument)))
        return cache[id(exact)][1]

    def scorer_bound(self) -> dict:
        """The scorers' memory bound (--max-batch-mb), as keyword arguments."""
        return {} if self.spec.max_batch_mb is None else {"max_batch_mb": self.spec.max_batch_mb}

    def reduced_precision(self) -> bool:
        return resolve_dtype(self.spec.search_dtype) != resolve_dtype(self.spec.dtype)

    def local_search_scorer(self, loaded, exact, model: str | None = None, ray=None):
        """The searches' scorer (``aligning.search_scorer``): a reduced-precision copy for
        ``search_dtype`` below the model's, else the full-precision scorer itself; with ``ray``
        (RayScorer, its actor settings bound), actors that each load ``model``."""
        return search_scorer(loaded, exact, model_name=model, dtype=self.spec.dtype,
                             search_dtype=self.spec.search_dtype, ray=ray, **self.scorer_bound())

    def run_combinations(self, todo, loaded, exact, search, bar) -> Iterator[tuple[str, Path]]:
        """Run ``todo`` (combinations of one model) with that model's scorers, one after another;
        an aligner that ignores seed and budget runs once per target."""
        seed_free: dict[tuple, Path] = {}  # (target, aligner) -> result of an aligner that ignores seed and budget
        for combo in todo:
            group = (combo.target.name, combo.target.source, combo.aligner)
            if group in seed_free:
                bar.update(1)
                yield "shared", seed_free[group]
                continue
            with self.combination_lock(combo):
                # Another process on the same --output may have finished it while this one waited.
                done = None if self.spec.force else self.finished(combo)
                if done is None:
                    path, alignment = self._run_one(combo, loaded, exact, search)
            bar.update(1)
            if done is not None:
                yield "done", done
                continue
            if alignment.seed is None and alignment.budget is None:
                seed_free[group] = path
            yield "written", path

    def combination_lock(self, combo: Combination) -> FileLock:
        """The lock of a combination in --output: two `cultbench run` processes on one output
        folder take turns on a combination, and the second finds it done (an OS lock: a killed
        process releases it)."""
        return FileLock(str(self.spec.output / f".{self._stem(self._keys(combo)[0], combo)}.lock"))

    def _run_one(self, combo: Combination, loaded, exact, search) -> tuple[Path, Alignment]:
        """Align (or load the saved alignment, or resume the search), evaluate, write the result."""
        record, stem, alignment = self.align_and_evaluate(combo, loaded, exact, search)
        return self.write(combo, record, stem), alignment

    def write(self, combo: Combination, record: dict, stem: str) -> Path:
        """Write one combination's result (checked against the schema) and say so."""
        path = write_record(self.spec.output / f"{stem}.json", record)
        self.echo(f"{combo.aligner} -> {combo.target.name}: {result_headline(record)} "
                  f"({record['run']['wall_time_s']:.0f} s) -> {path}; alignment: {record['run']['alignment_dir']}")
        return path

    def _run_dirs(self, combo: Combination) -> list[Path]:
        """The run folders a combination may have: searching (seeded) first, then seed-free."""
        return [self.spec.runs_dir / self._stem(k, combo) for k in self._keys(combo)]

    def clear_run_folders(self, combo: Combination) -> None:
        """Forget a combination's checkpoint and saved alignment (--force)."""
        for folder in self._run_dirs(combo):
            for name in RUN_FILES:
                (folder / name).unlink(missing_ok=True)

    def align_and_evaluate(self, combo: Combination, loaded, exact, search) -> tuple[dict, str, Alignment]:
        """(the result record, its file stem, the alignment) of one combination; nothing is written
        into --output (the run folder keeps the checkpoint and the alignment)."""
        s = self.spec
        keyed, free = self._keys(combo)
        run_dirs = self._run_dirs(combo)
        if s.force:
            self.clear_run_folders(combo)
        started, t0 = datetime.now(timezone.utc), time.perf_counter()
        saved = next((d for d in run_dirs if (d / CONFIG_NAME).is_file()), None)
        resumed = saved is not None or (run_dirs[0] / CHECKPOINT_NAME).is_file()
        label = f"{combo.aligner} -> {combo.target.name}"
        if saved is not None:
            alignment = Alignment.from_pretrained(saved, model_info=loaded.info)
            self.echo(f"{label}: evaluating the alignment saved in {saved}")
        else:
            if resumed:
                self.echo(f"{label}: resuming the search checkpointed in {run_dirs[0]}")
            alignment, _ = align_target(self.aligners[combo.aligner], combo.target, search, exact,
                                        model_info=loaded.info, budget=combo.budget, seed=combo.seed,
                                        distance=self.distance, dimensions=None if self.distribution else s.dimensions,
                                        run_dir=run_dirs[0], resume=resumed, progress=s.progress,
                                        validation=self.validation_scorer(exact))
        searched = alignment.search is not None
        key = self.key(combo, alignment.seed, alignment.budget,
                       keyed["search_dtype"] if searched else None)
        stem = self._stem(key, combo)
        folder = saved if saved is not None else s.runs_dir / stem
        if saved is None:
            alignment.save_pretrained(folder)
        t1 = time.perf_counter()
        # a distribution instrument: every question under every wording, four blocks; an index
        # instrument beside the naive model, scored in the same call (the verdict "aligned" compares with it)
        baseline = {} if self.distribution else {
            "baseline": alignment.soft_prompt is not None or alignment.persona is not None}
        evaluation = evaluate(loaded.model, loaded.tokenizer, self.instrument, [combo.target],
                              soft_prompt=alignment.soft_prompt, persona=alignment.persona,
                              constants=self.constants, max_batch_mb=s.max_batch_mb, **baseline)
        t2 = time.perf_counter()
        run = run_info(wall_time_s=t2 - t0, align_time_s=t1 - t0, evaluate_time_s=t2 - t1, started=started,
                       device=loaded.info.get("device", s.device), resumed=resumed,
                       command=self.command(combo, key), alignment_dir=folder.as_posix())
        record = build_record(key=key, alignment=alignment, evaluation=evaluation, model_info=loaded.info,
                              target=combo.target.to_dict(), run=run)
        return record, stem, alignment

    def command(self, combo: Combination, key: dict) -> str:
        """The command that reruns this one combination."""
        s = self.spec
        args = ["cultbench", "run", "--model", combo.model, "--target", combo.target.name]
        if not self.distribution:  # a distribution instrument's targets come from its data
            args += ["--source", combo.target.source]
        args += ["--aligner", combo.aligner]
        if key["budget"] is not None:
            args += ["--budget", str(key["budget"]), "--seed", str(key["seed"]), "--search-dtype", s.search_dtype]
        args += [a for name, value in self.params_of(combo.aligner).items() for a in ("--param", f"{name}={value}")]
        args += [a for dim, c in sorted(self.constants.items()) for a in ("--constant", f"{dim}={c:g}")]
        if s.dimensions:
            args += ["--dimensions", ",".join(s.dimensions)]
        if self.distance not in ("l1", "jsd"):
            args += ["--distance", self.distance]
        args += ["--instrument", s.instrument]
        for option, value in (("--data", s.data), ("--heldout-items", s.heldout_items), ("--split-seed", s.split_seed)):
            if value is not None:
                args += [option, str(value)]
        args += [a for c in s.cleaning for a in ("--cleaning", c)]
        args += ["--dtype", s.dtype, "--device", s.device]
        return shlex.join(args)
