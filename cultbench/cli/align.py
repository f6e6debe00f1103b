"""Alignment commands: list the aligners, and align a model to a country's profile.

The aligners, torch and transformers are imported inside the commands, not here: they take
seconds to import, and every other cultbench command would pay for them at start-up.
"""

from __future__ import annotations

import signal
from functools import partial
from pathlib import Path

import click

from cultbench.cli.options import PositiveNumber, constant_option, data_options, ray_options
from cultbench.errors import CultbenchError


def parse_params(values) -> dict[str, str]:
    """``["popsize=10", "bounds=-2,2"]`` -> ``{"popsize": "10", "bounds": "-2,2"}`` (typed later)."""
    out: dict[str, str] = {}
    for value in values or ():
        key, sep, text = str(value).partition("=")
        key = key.strip()
        if not sep or not key:
            raise CultbenchError(f"--param {value!r}: expected NAME=VALUE, e.g. --param popsize=10")
        if key in out:
            raise CultbenchError(f"--param: {key!r} is given twice")
        out[key] = text.strip()
    return out


@click.command("aligners")
@click.argument("name", required=False)
def aligners_cmd(name):
    """List the aligners (built-in and plugins), or show one aligner's hyper-parameters.

    \b
    Examples:
      cultbench aligners
      cultbench aligners de
    """
    from aligners import available_aligners, describe, get_aligner_class, load_entry_points

    if name:
        cls = get_aligner_class(name)
        click.echo(f"{name}: {describe(cls)}\n\nHyper-parameters (--param NAME=VALUE):")
        for p in cls.config_class.describe_params():
            default = p["default"]
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else repr(default)
            click.echo(f"  {p['name']} ({p['type']}, default {shown})\n      {p['help']}")
        return
    table = available_aligners()
    width = max(map(len, table), default=0)
    for key, cls in table.items():
        click.echo(f"{key:<{width}}  {describe(cls)}")
    for key, error in sorted(load_entry_points().items()):
        click.echo(f"{key:<{width}}  (plugin could not be loaded: {error})")


def _check_output(output: Path, resume: bool) -> None:
    """Refuse to overwrite a finished alignment or another run's checkpoint without --resume."""
    from aligners.artifact import CONFIG_NAME
    from aligners.checkpoint import CHECKPOINT_NAME

    if output.exists() and not output.is_dir():
        raise CultbenchError(f"--output {output} exists and is not a folder")
    held = [name for name in (CHECKPOINT_NAME, CONFIG_NAME) if (output / name).exists()]
    if resume and CHECKPOINT_NAME not in held:
        raise CultbenchError(f"nothing to resume: {output} has no {CHECKPOINT_NAME}")
    if held and not resume:
        raise CultbenchError(f"{output} already holds {' and '.join(held)}; pass --resume to continue that run "
                             "or choose another --output")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends the run like Ctrl-C: the last checkpoint stays whole


@click.command("align")
@click.option("--model", default=None,
              help="Model: a bundled alias, a Hugging Face id or folder, or a .gguf file "
                   "[default: cultbench's default model, the bundled SmolLM2-135M-Instruct].")
@click.option("--target", required=True, metavar="COUNTRY", help="Target country (name, ISO code or alias).")
@click.option("--source", default=None, help="Source of the target's scores (default: the 2015 matrix).")
@click.option("--aligner", default="de", show_default=True, help="Aligner name (see `cultbench aligners`).")
@click.option("--budget", default=300, show_default=True, type=int,
              help="Candidate evaluations the search may spend (baselines ignore it).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Seed of the search.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Hyper-parameter of the aligner (repeatable); see `cultbench aligners NAME`.")
@click.option("--variants", default="train", show_default=True,
              help="Prompt variants the aligner sees: a split (train) or comma-separated names.")
@click.option("--instrument", default="vsm2013", show_default=True,
              help="Instrument name or YAML path (see `cultbench instruments`). A distribution instrument "
                   "is aligned on its training questions only.")
@data_options
@constant_option
@click.option("--dimensions", default=None, metavar="DIM,DIM",
              help="Dimensions the fitness uses (default: all of the instrument's).")
@click.option("--distance", default="l1", show_default=True,
              help="Distance between the candidate's indices and the target's, averaged over variants: "
                   "l1, l2 or mean-abs.")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="Run folder for the checkpoint and the artifact [default: runs/ALIGNER-COUNTRY-sSEED].")
@click.option("--resume", is_flag=True, help="Continue the run checkpointed in --output.")
@click.option("--search-dtype", type=click.Choice(["float32", "bfloat16"]), default=None,
              help="Precision of the search; may only lower --dtype [default: --dtype]. bfloat16 is 1.6x faster "
                   "in the committed benchmark (docs/bench-smollm2-cpu.json, a CPU with bf16) and less exact: "
                   "the search's finalists are re-scored in --dtype and the best of them is returned (see "
                   "`cultbench aligners de`, finalists).")
@click.option("--dtype", default="float32", show_default=True,
              help="Precision of the model and of everything reported (the saved fitness and indices).")
@click.option("--device", default="cpu", show_default=True, help="Device (cpu, cuda, auto).")
@click.option("--max-batch-mb", default=None, type=PositiveNumber(),
              help="Memory bound of one forward pass of the scorer [default: the scorer's].")
@ray_options
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def align(model, target, source, aligner, budget, seed, params, variants, instrument, data, heldout_items,
          split_seed, cleaning, constants, dimensions, distance, output, resume, search_dtype, dtype, device, max_batch_mb, workers, ray_address,
          num_gpus_per_worker, progress):
    """Align a model to a country's profile and save the alignment artifact.

    Prints a summary (the aligned fitness next to the naive model's on the same prompt variants,
    the indices next to the published scores, the option mass) and, on stdout, the artifact's
    folder; its alignment.json holds the full record. A search writes a checkpoint into that folder after every
    generation; after Ctrl-C, SIGTERM or a crash, the same command with --resume continues it
    and ends where an uninterrupted run would.

    \b
    Example (Differential Evolution, 300 evaluations, a 4-token soft prompt):
      cultbench align --model smollm2-135m-instruct --target US --aligner de \\
        --budget 300 --seed 0 --param popsize=10 --param n_virtual=4 \\
        --search-dtype bfloat16          # writes runs/de-us-s0
    """
    from aligners.base import final_result
    from aligners.checkpoint import CHECKPOINT_NAME
    from cultbench.runs.aligning import align_target, fitting, prepare_aligner, search_scorer, validation_scorer
    from cultbench.instruments import load_instrument_with_data, resolve_target
    from cultbench.scoring.models import DEFAULT_MODEL, check_precisions, load_model
    from cultbench.prompts import get_variants, variants_file
    from cultbench.scoring.scorer import SurveyScorer
    from cultbench.runs.summary import alignment_text

    dtype, search_dtype = check_precisions(dtype, search_dtype)
    dims = [d for d in dimensions.split(",") if d.strip()] if dimensions else None
    # Everything that can be checked without the model is checked before loading it.
    full = load_instrument_with_data(instrument, data, heldout_items, split_seed, cleaning)
    instance = prepare_aligner(aligner, parse_params(params), full, [budget], search_dtype != dtype)
    inst, distance, dims = fitting(full, distance, dims)
    profile = resolve_target(inst, target, source=source, dimensions=dims)
    slug = (profile.iso2 or profile.code or profile.name.replace(" ", "-")).lower()
    output = output or Path("runs") / f"{aligner}-{slug}-s{seed}"
    _check_output(output, resume)
    chosen = get_variants(variants, path=variants_file(inst))
    loaded = load_model(model or DEFAULT_MODEL, dtype=dtype, device=device)
    bound = {} if max_batch_mb is None else {"max_batch_mb": max_batch_mb}
    exact = SurveyScorer(loaded.model, loaded.tokenizer, inst, chosen, constants=constants, **bound)
    validation = validation_scorer(exact, variants_file(inst))
    ray = None
    if workers or ray_address:  # the search on Ray actors; the final pick is scored here
        from cultbench.runs.distributed import RayScorer

        ray = partial(RayScorer, workers=workers, address=ray_address, num_gpus_per_worker=num_gpus_per_worker)
    search = search_scorer(loaded, exact, model_name=model or DEFAULT_MODEL, dtype=dtype, search_dtype=search_dtype,
                           ray=ray, **bound)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        alignment, problem = align_target(instance, profile, search, exact, model_info=loaded.info, budget=budget,
                                          seed=seed, distance=distance, dimensions=dims, run_dir=output,
                                          resume=resume, progress=progress, validation=validation)
    except KeyboardInterrupt:
        if (output / CHECKPOINT_NAME).exists():
            click.echo(f"The checkpoint in {output} keeps every finished generation; run the same command "
                       "with --resume to continue.", err=True)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        if search is not exact and hasattr(search, "close"):
            search.close()
    alignment.save_pretrained(output)
    naive = None if alignment.aligner == "naive" else final_result(problem)  # the baseline beside it
    if inst.kind == "distribution":
        beside = "" if naive is None else f"; naive model {1 - naive['fitness']:.3f}"
        click.echo(f"{alignment.aligner} for {profile.name} ({inst.name}): similarity {1 - alignment.fitness:.3f} "
                   f"(1 - jsd, full precision) on {len(inst.items)} training questions x {len(chosen)} training "
                   f"wordings{beside}; {alignment.evaluations} evaluations\n"
                   f"Held-out questions and wordings: cultbench evaluate --instrument {inst.name} --data ... "
                   f"--target '{profile.name}' --alignment {output}", err=True)
    else:
        click.echo(alignment_text(alignment, naive, output, distance, [v.name for v in chosen]), err=True, nl=False)
    click.echo(str(output))


COMMANDS = [aligners_cmd, align]
