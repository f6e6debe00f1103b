"""Sweeps and the leaderboard: ``cultbench run`` (align then evaluate every combination, one result
file each) and ``cultbench leaderboard build|check``.

As in align.py, the library (torch, transformers, the aligners) is imported inside the commands.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click

from cultbench.cli.align import _raise_interrupt, parse_params
from cultbench.cli.options import PositiveNumber, constant_option, data_options, ray_options
from cultbench.errors import CultbenchError, did_you_mean

def _as_pairs(value) -> list[str]:
    """A mapping {name: value} (from a config file) as ["name=value", ...]; lists pass through."""
    if not isinstance(value, dict):
        return value if isinstance(value, list) else [value]

    def text(v):
        if isinstance(v, bool):
            return str(v).lower()
        return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

    return [f"{k}={text(v)}" for k, v in value.items()]


def load_config(ctx: click.Context, param, path: Path | None):
    """Eager --config callback: the file's values become the command's defaults, so options given
    on the command line override them."""
    if path is None:
        return None
    from cultbench.runs.experiments import read_config

    data = read_config(path)
    params = {p.name: p for p in ctx.command.params if p.name != "config"}
    names = {}
    for p in params.values():
        for opt in p.opts:
            names[opt.lstrip("-")] = names[opt.lstrip("-").replace("-", "_")] = p.name
        names[p.name] = p.name
    defaults = {}
    for key, value in data.items():
        if key not in names:
            raise CultbenchError(f"--config {path}: unknown option {key!r}.{did_you_mean(str(key), names)}")
        if value is None:  # `key:` with no value (YAML null): the option's default
            continue
        p = params[names[key]]
        if p.name in ("params", "constants", "cleaning"):
            value = _as_pairs(value)
        elif p.multiple and not isinstance(value, list):
            value = [value]
        elif not p.multiple and p.nargs == 1 and isinstance(value, (list, dict)):
            raise CultbenchError(f"--config {path}: {key} takes one value, not a {type(value).__name__} "
                                 f"({json.dumps(value, default=str)[:60]})")
        if isinstance(value, list):
            value = [_config_scalar(path, key, one, p.is_flag) for one in value]
        else:
            value = _config_scalar(path, key, value, p.is_flag)
        defaults[p.name] = value
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return path


def _config_scalar(path: Path, key: str, value, flag: bool):
    """One value of a config file as click converts it: a flag's as it is, any other option's as text
    (as on a command line), so that each option's own type checks it."""
    if not isinstance(value, (str, int, float, bool)):
        raise CultbenchError(f"--config {path}: {key} holds {json.dumps(value, default=str)[:60]}; "
                             "give a text, a number or a list of them")
    if isinstance(value, bool) and not flag:
        raise CultbenchError(f"--config {path}: {key} takes a value, not {str(value).lower()}")
    return value if flag else str(value)


config_option = click.option(
    "--config", type=click.Path(dir_okay=False, path_type=Path), is_eager=True, expose_value=False,
    callback=load_config,
    help="YAML or TOML file holding any of these options (e.g. `target: [US, CN]`, `param: {popsize: 10}`); "
         "options on the command line override it.")


@click.command("run")
@config_option
@click.option("--model", "models", multiple=True, metavar="MODEL",
              help="Model (repeatable): a bundled alias, a Hugging Face id or folder, or a .gguf file "
                   "[default: the bundled SmolLM2-135M-Instruct].")
@click.option("--target", "targets", multiple=True, metavar="COUNTRY",
              help="Target country (repeatable): name, ISO code or alias. Required.")
@click.option("--source", default=None, help="Source of the targets' scores (default: the 2015 matrix).")
@click.option("--aligner", "aligners", multiple=True, metavar="NAME",
              help="Aligner (repeatable; see `cultbench aligners`) [default: naive, icl, de].")
@click.option("--seed", "seeds", multiple=True, type=click.IntRange(min=0), help="Seed of the search (repeatable) [default: 0].")
@click.option("--budget", "budgets", multiple=True, type=int,
              help="Candidate evaluations per search (repeatable) [default: 300].")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Aligner hyper-parameter (repeatable), given to every aligner that has it; "
                   "ALIGNER.NAME=VALUE gives it to that aligner only (e.g. de.popsize=40).")
@constant_option
@click.option("--search-dtype", type=click.Choice(["float32", "bfloat16"]), default=None,
              help="Precision of the searches; may only lower --dtype [default: --dtype]. bfloat16: faster, "
                   "less exact; each search's finalists are re-scored in --dtype and the best is returned.")
@click.option("--dtype", default="float32", show_default=True,
              help="Precision of the model and of everything reported (fitness, indices, metrics).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto.")
@click.option("--instrument", default="vsm2013", show_default=True,
              help="Instrument name or YAML path. A distribution instrument (globalopinionqa, with --data) is "
                   "aligned on its training questions and evaluated on every question under every wording.")
@data_options
@click.option("--distance", default="l1", show_default=True,
              help="Fitness of the searches: l1, l2 or mean-abs (a distribution instrument's is jsd).")
@click.option("--dimensions", default=None, metavar="DIM,DIM", help="Dimensions the fitness uses [default: all].")
@click.option("--max-batch-mb", default=None, type=PositiveNumber(), help="Memory bound of one forward of the scorer.")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/results"),
              show_default=True, help="Folder of the result files (one JSON per combination). Publishing "
                                      "them is a separate step: `cultbench leaderboard publish`.")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"), show_default=True,
              help="Folder of the combinations' run folders (search checkpoints and alignments).")
@click.option("--force", is_flag=True, help="Run finished combinations again (and searches from scratch).")
@ray_options
@click.option("--ray-unit", type=click.Choice(["combination", "population"]), default="combination", show_default=True,
              help="With --workers or --ray-address: run each combination as a Ray task (model replica per "
                   "worker), or run combinations here and split each search's populations over Ray actors.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
def run(models, targets, source, aligners, seeds, budgets, params, constants, search_dtype, dtype, device,
        instrument, data, heldout_items, split_seed, cleaning, distance, dimensions, max_batch_mb, output, runs_dir,
        force, workers, ray_address, num_gpus_per_worker, ray_unit, progress):
    """Align and evaluate every combination of models, targets, aligners, budgets and seeds.

    Each combination is aligned on the training prompt variants, evaluated on the training and
    held-out variants, and written as one result JSON (checked against
    leaderboard/result.schema.json) into --output (default runs/results, never the published
    entries); the file names go to stdout, and a table of every result (L1 on each split and its
    difference to the naive model's; a distribution instrument: the similarity on the training
    questions, the held-out questions, the held-out wordings and both held out) to stderr. Finished
    combinations are skipped, so an interrupted sweep resumes where it stopped (a search from its
    last checkpoint in --runs-dir). Aligners that ignore the seed and budget (naive, icl) run once
    per model and target.

    \b
    Examples:
      cultbench run --target US --aligner naive --aligner icl --aligner de --budget 60 \\
        --search-dtype bfloat16
      cultbench run --target US --target CN --aligner de --aligner cmaes --seed 0 --seed 1 \\
        --param popsize=10 --param n_virtual=4 --output results/
      cultbench run --config experiments/paper-small.yaml --force
      cultbench run --config experiments/paper-small.yaml --ray-address auto   # combinations as Ray tasks
      cultbench run --instrument globalopinionqa --data global_opinions.csv --target Germany \\
        --aligner naive --aligner icl --aligner de --budget 60
    """
    from cultbench.runs.experiments import DEFAULT_ALIGNERS, DEFAULT_SEEDS
    from cultbench.scoring.models import DEFAULT_MODEL
    from cultbench.runs.results import read_record
    from cultbench.runs.summary import run_text
    from cultbench.runs.sweep import Sweep, SweepSpec

    if not targets:
        raise CultbenchError("give at least one --target (or `target:` in --config)")
    spec = SweepSpec(
        targets=list(targets), aligners=list(aligners or DEFAULT_ALIGNERS),
        models=list(models or (DEFAULT_MODEL,)), seeds=list(seeds or DEFAULT_SEEDS), budgets=list(budgets or (300,)),
        source=source, params=parse_params(params), constants=constants, instrument=instrument, data=data,
        heldout_items=heldout_items, split_seed=split_seed, cleaning=list(cleaning), distance=distance,
        dimensions=[d.strip() for d in dimensions.split(",") if d.strip()] if dimensions else None,
        search_dtype=search_dtype, dtype=dtype, device=device, max_batch_mb=max_batch_mb, output=output,
        runs_dir=runs_dir, force=force, progress=progress)
    executor = None  # the sweep's default: this process
    if workers or ray_address:
        from cultbench.runs import distributed  # Ray is optional: imported only when asked for

        kind = distributed.RayExecutor if ray_unit == "combination" else distributed.RayPopulationExecutor
        executor = kind(workers=workers, address=ray_address, num_gpus_per_worker=num_gpus_per_worker)
    sweep = Sweep(spec, executor=executor)
    counts, shown = {"written": 0, "done": 0, "shared": 0}, set()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        for status, path in sweep.run():
            counts[status] += 1
            if path not in shown:
                shown.add(path)
                click.echo(str(path))
    except KeyboardInterrupt:
        click.echo("Finished combinations are saved; run the same command again to go on (searches resume "
                   "from their checkpoints).", err=True)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if shown:
        click.echo(run_text([read_record(p) for p in sorted(shown)]), err=True, nl=False)
    click.echo(f"{counts['written']} combinations run, {counts['done']} done before, {counts['shared']} shared by "
               f"aligners that ignore seed and budget; results in {output}. Build a leaderboard of them with "
               f"`cultbench leaderboard build --entries {output} --out DIR`.", err=True)


@click.group("leaderboard")
def leaderboard_group():
    """Build the leaderboard from result files, or check result files against the schema.

    \b
    Examples:
      cultbench leaderboard build --entries leaderboard/entries --out leaderboard
      cultbench leaderboard study --entries leaderboard/entries --markdown study.md
      cultbench leaderboard publish runs/results/*.json --entries leaderboard/entries
      cultbench leaderboard check leaderboard/entries/*.json
    """


def page_section_spec(spec: str) -> tuple[str, Path, Path | None]:
    """``--section TITLE=ENTRIES_DIR[,STUDY]`` as (title, entries folder, study document or None)."""
    title, sep, rest = spec.partition("=")
    folder, comma, doc = rest.rpartition(",") if "," in rest else (rest, "", "")
    if not sep or not title.strip() or not folder.strip():
        raise CultbenchError(f"--section {spec!r}: write TITLE=ENTRIES_DIR, or TITLE=ENTRIES_DIR,STUDY to link the "
                             "section's study document")
    if not Path(folder).is_dir():
        raise CultbenchError(f"--section {spec!r}: the entries folder {folder} does not exist")
    if comma and not Path(doc).is_file():
        raise CultbenchError(f"--section {spec!r}: the study document {doc} does not exist")
    return title.strip(), Path(folder), Path(doc) if comma else None


@leaderboard_group.command("build")
@click.option("--entries", type=click.Path(file_okay=False, path_type=Path), default=Path("leaderboard/entries"),
              show_default=True, help="Folder of result files (*.json).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("leaderboard"),
              show_default=True, help="Folder to write leaderboard.json, LEADERBOARD.md and index.html into "
                                      "(created if missing).")
@click.option("--strict", is_flag=True, help="Exit with status 1 when an entry is left out (invalid or duplicate).")
@click.option("--study", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The study of these entries (e.g. docs/paper-small.md), linked from the page "
                   "[default: docs/paper-small.md when the entries are leaderboard/entries and it exists].")
@click.option("--check", is_flag=True, help="Write nothing; exit with status 1 if the files in --out differ from "
                                            "what the entries give (e.g. entries added since the last build).")
@click.option("--section", "sections", multiple=True, metavar="TITLE=ENTRIES_DIR[,STUDY]",
              help="Another folder of entries (e.g. a testbed study's) shown as its own section below the main "
                   "board, with its own tables, headed TITLE, and, after a comma, its study document linked "
                   "(repeatable; the sections keep their order).")
def build_cmd(entries, out, strict, study, check, sections):
    """Write leaderboard.json (one row per model x aligner x target, seeds aggregated),
    LEADERBOARD.md and a self-contained index.html (sortable table, charts).

    Entries that fail the schema and duplicates are listed, with the reason, and left out.
    --check writes nothing and exits with status 1 when a file differs from what the entries give.

    \b
    Example:
      cultbench leaderboard build --entries leaderboard/entries --out leaderboard
      cultbench leaderboard build --section "Testbed study=leaderboard/testbed/entries,docs/testbed-study.md"
    """
    from cultbench.publish.leaderboard import build

    sections = [page_section_spec(s) for s in sections]  # before anything is made: a bad one is one line, exit 2
    if out.exists() and not out.is_dir():
        raise CultbenchError(f"--out {out} exists and is not a folder")
    if check and not out.is_dir():
        raise CultbenchError(f"--out {out} does not exist: nothing to check")
    out.mkdir(parents=True, exist_ok=True)
    if study is None and entries.resolve() == Path("leaderboard/entries").resolve() and Path("docs/paper-small.md").is_file():
        study = Path("docs/paper-small.md")
    board, paths = build(entries, out, study=study, check=check, sections=sections)
    parts = [board] + board.get("sections", [])
    for part in parts:  # the main board's entries left out first, then each section's
        where = f" (section {part['title']})" if part is not board else ""
        for p in part["rejected"]:
            click.echo(f"left out {p['file']}{where}: {p['reason']}", err=True)
        for p in part["duplicates"]:
            click.echo(f"left out {p['file']}{where}: duplicate of {p['duplicate_of']}", err=True)
    for path in paths:
        click.echo(f"differs from the entries: {path}" if check else str(path), err=check)
    left_out = sum(len(b["rejected"]) + len(b["duplicates"]) for b in parts)
    rows = sum(len(b["rows"]) for b in parts) + sum(len(section["rows"]) for section in board["distribution"])
    used = sum(b["entries_used"] for b in parts)
    click.echo(f"{rows} rows from {used} entries; {left_out} left out", err=True)
    if (strict and left_out) or (check and paths):
        sys.exit(1)


@leaderboard_group.command("study")
@click.option("--entries", type=click.Path(file_okay=False, path_type=Path), default=Path("leaderboard/entries"),
              show_default=True, help="Folder of result files (*.json).")
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Markdown file to write the study into: between its study markers if it has them, "
                   "else a new file.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write the study's numbers into (JSON).")
@click.option("--charts", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for one convergence chart (SVG) per model x target, linked from the Markdown.")
@click.option("--experiment", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="The experiment file the entries come from (`cultbench run --config`): the study says which of "
                   "its target x aligner x seed combinations are missing.")
@click.option("--against", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Folder of an earlier study's entries (e.g. leaderboard/archive/v3/entries): the study ends with "
                   "the earlier study's headline answers beside its own, both on the combinations these entries have.")
@click.option("--check", is_flag=True, help="Write nothing; exit with status 1 if the files differ from what the "
                                            "entries give (e.g. a document edited by hand or entries added since).")
def study_cmd(entries, markdown, json_path, charts, experiment, against, check):
    """Compare the aligners of a sweep: which combinations are present (and, with --experiment,
    missing), L1 per target x aligner (mean, sd, range over seeds), averages over targets, cost per
    run, per-dimension errors, option mass, and paired tests over targets (bootstrap CI, exact
    sign-flip p, Holm-adjusted within each family): DE against the baselines, CMA-ES, random search
    and prompt tuning; the gain's transfer to held-out wordings; the dimensions that move; the
    validity diagnostics under alignment. A partial study (aligners, targets or seeds missing)
    renders with the tests it lacks units for listed as skipped.

    Without --markdown or --json the Markdown goes to stdout.

    \b
    Example:
      cultbench leaderboard study --entries leaderboard/entries --markdown docs/paper-small.md \\
        --json leaderboard/study.json --charts docs/paper-small --experiment experiments/paper-small.yaml \\
        --against leaderboard/archive/v3/entries
    """
    from cultbench.runs.experiments import experiment_grid
    from cultbench.publish.leaderboard import collect
    from cultbench.publish.study import render_study_markdown, study, write_study

    found = collect(entries)
    grid = None if experiment is None else experiment_grid(experiment)
    earlier = None if against is None else collect(against)
    if markdown is None and json_path is None:
        click.echo(render_study_markdown(study(found, grid=grid, earlier=earlier)), nl=False)
        return
    if charts is not None and not check:
        charts.mkdir(parents=True, exist_ok=True)
    _, changed = write_study(found, markdown=markdown, json_path=json_path, charts_dir=charts, check=check,
                             grid=grid, earlier=earlier)
    for path in changed:
        click.echo(f"differs from the entries: {path}" if check else str(path), err=check)
    if check and changed:
        sys.exit(1)


@leaderboard_group.command("publish")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--entries", type=click.Path(file_okay=False, path_type=Path), default=Path("leaderboard/entries"),
              show_default=True, help="Folder of the published result files.")
def publish_cmd(files, entries):
    """Copy result files (from `cultbench run`) into the published entries, after checking each
    against the schema (an invalid file stops the whole batch before anything is copied); a file
    whose combination is already published, or whose name is taken, is skipped and named.

    \b
    Example:
      cultbench leaderboard publish runs/results/*.json --entries leaderboard/entries
    """
    from cultbench.atomic import write_text_atomic
    from cultbench.publish.leaderboard import publishable

    todo, skipped = publishable(files, entries)
    for path in todo:
        target = entries / path.name
        write_text_atomic(target, path.read_text(encoding="utf-8"))
        click.echo(str(target))
    for reason in skipped:
        click.echo(f"skipped {reason}", err=True)
    click.echo(f"{len(todo)} result files published to {entries}, {len(skipped)} skipped; rebuild the page with "
               f"`cultbench leaderboard build --entries {entries} --out {entries.parent}`", err=True)


@leaderboard_group.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check_cmd(files):
    """Check result files against the schema; exit with status 1 if any is invalid.

    \b
    Example:
      cultbench leaderboard check leaderboard/entries/*.json
    """
    from cultbench.runs.results import read_record

    bad = 0
    for path in files:
        try:
            read_record(path)
            click.echo(f"ok {path}")
        except CultbenchError as exc:
            bad += 1
            click.echo(f"invalid {exc}")
    if bad:
        sys.exit(1)


COMMANDS = [run, leaderboard_group]
