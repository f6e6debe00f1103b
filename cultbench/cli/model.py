"""Commands that run a model: evaluate a model (optionally aligned) against targets, benchmark."""

from __future__ import annotations

from pathlib import Path

import click

from cultbench.cli.options import (PositiveNumber, alignment_folder, constant_option, data_options, emit_json,
                                   emit_report, json_options)
from cultbench.errors import CultbenchError


@click.command("evaluate")
@click.option("--model", default=None, help="Bundled alias, Hugging Face id or folder, or a .gguf file "
              "[default: the bundled SmolLM2-135M-Instruct].")
@click.option("--target", "targets", multiple=True, required=True, metavar="COUNTRY",
              help="Target country (name, ISO code or alias); repeatable.")
@click.option("--source", default=None, help="Source of the targets' scores (default: the 2015 matrix).")
@click.option("--alignment", type=click.Path(path_type=Path), default=None,
              help="Alignment folder (from `cultbench align`) or its alignment.json, to apply; default: the "
                   "model as it is. The naive model is scored beside it.")
@click.option("--persona", default=None, help="A system-prompt text to apply instead of an alignment.")
@click.option("--splits", default=None, help="Wording splits to score, e.g. train,heldout [default: every split of "
                                             "the instrument's wordings: train, validation, heldout].")
@click.option("--dimensions", default=None, metavar="DIM,DIM",
              help="Dimensions the L1 and the errors use [default: all of the instrument's]; a target needs "
                   "scores on these only.")
@click.option("--instrument", default="vsm2013", show_default=True,
              help="Instrument name or YAML path (see `cultbench instruments`).")
@data_options
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=1),
              help="Distribution instruments: countries listed in each similarity ranking.")
@constant_option
@click.option("--dtype", default="float32", show_default=True, help="Model dtype (reported indices: float32).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto.")
@click.option("--max-batch-mb", default=None, type=PositiveNumber(), help="Memory bound of one forward of the scorer.")
@click.option("--engine", type=click.Choice(["scorer", "lm-eval"]), default="scorer", show_default=True,
              help="scorer: cultbench's survey scorer; lm-eval: lm-evaluation-harness's request machinery "
                   "on the vsm2013_<variant> tasks (same report, plus lm-eval's results block).")
@json_options
def evaluate(model, targets, source, alignment, persona, splits, dimensions, instrument, data, heldout_items,
             split_seed, cleaning, top, constants, dtype, device, max_batch_mb, engine, output, as_json):
    """Score a model (as it is, with a persona, or with an alignment) on train and held-out prompt
    variants, and compare it with target countries.

    Prints, per target, the published scores next to the model's indices, the L1 distance on each
    split (with the naive model's beside an alignment or persona), the option mass and warnings;
    the full JSON (targets keyed by id, e.g. "US") goes to -o FILE or, with --json, to stdout.

    \b
    Examples:
      cultbench evaluate --target US --target CN
      cultbench evaluate --target US --alignment runs/de-us-s0 -o eval-de-us.json
      cultbench evaluate --target US --alignment runs/de-us-s0 --engine lm-eval --json
      cultbench evaluate --instrument globalopinionqa --data global_opinions.csv --target Germany

    A distribution instrument (globalopinionqa) reports, per wording split, the similarity
    (1 - Jensen-Shannon distance) to each target and the ranking of all its countries, on the
    training and the held-out questions separately.
    """
    from cultbench.evaluation.candidate import evaluate_candidate, other_target_warnings
    from cultbench.instruments import load_instrument_with_data, resolve_target
    from cultbench.scoring.models import DEFAULT_MODEL, load_model
    from cultbench.prompts import splits_of, variants_file
    from cultbench.runs.summary import evaluation_text

    if alignment is not None and persona is not None:
        raise CultbenchError("pass --alignment or --persona, not both")
    chosen, dims = _evaluation_options(splits, dimensions, engine)
    inst = load_instrument_with_data(instrument, data, heldout_items, split_seed, cleaning)
    if chosen is None:
        chosen = splits_of(variants_file(inst))
    distribution = inst.kind == "distribution"
    if distribution:
        _check_distribution_options(inst, constants, dims, engine)
    profiles = [resolve_target(inst, t, source=source, dimensions=dims) for t in targets]
    if distribution:
        _report_cleaning(inst)
    applied = None
    alignment = alignment_folder(alignment)
    if alignment is not None:
        from aligners import Alignment

        applied = Alignment.from_pretrained(alignment)  # checks files before the model loads
    warnings = [] if applied is None else other_target_warnings(applied.target, profiles)
    for warning in warnings:  # before the model loads: an evaluation may take minutes
        click.echo(f"Warning: {warning}", err=True)
    loaded = load_model(model or DEFAULT_MODEL, dtype=dtype, device=device)
    soft = None
    if applied is not None:
        applied.check_compatible(loaded.info, hidden_size=loaded.info["hidden_size"])
        soft, persona = applied.soft_prompt, applied.persona
    if engine == "lm-eval":
        from cultbench.harness.engine import evaluate_with_lm_eval

        result = evaluate_with_lm_eval(loaded, inst, profiles, alignment=applied,
                                       persona=None if applied is not None else persona, splits=chosen,
                                       constants=constants, instrument_ref=instrument)
    elif distribution:
        from cultbench.evaluation.distribution import distribution_text, evaluate_distribution

        result = evaluate_distribution(loaded.model, loaded.tokenizer, inst, profiles, soft_prompt=soft,
                                       persona=persona, splits=chosen, max_batch_mb=max_batch_mb, top=top,
                                       baseline=soft is not None or persona is not None)
        result = {"model": loaded.info, "alignment": None if applied is None else str(alignment),
                  "persona": persona, **({"warnings": warnings} if warnings else {}), **result}
        emit_report(result, distribution_text(result), output, as_json)
        return
    else:
        result = evaluate_candidate(loaded.model, loaded.tokenizer, inst, profiles, soft_prompt=soft,
                                    persona=persona, splits=chosen, constants=constants,
                                    max_batch_mb=max_batch_mb, dimensions=dims,
                                    baseline=soft is not None or persona is not None)
    result = {"model": loaded.info, "alignment": None if applied is None else str(alignment),
              "persona": persona, **({"warnings": warnings} if warnings else {}), **result}
    emit_report(result, evaluation_text(result), output, as_json)


def _evaluation_options(splits, dimensions, engine) -> tuple[list[str] | None, list[str] | None]:
    """``evaluate``'s chosen splits (None: every split of the wording file) and compared
    dimensions (None: all), checked before anything loads."""
    from cultbench.evaluation.candidate import SPLIT_NAMES

    chosen = [s.strip() for s in splits.split(",") if s.strip()] if splits else None
    for s in chosen or ():
        if s not in SPLIT_NAMES:
            raise CultbenchError(f"unknown split {s!r}; splits: {', '.join(SPLIT_NAMES)}")
    dims = [d.strip().lower() for d in dimensions.split(",") if d.strip()] if dimensions else None
    if dims is not None and engine == "lm-eval":
        raise CultbenchError("--dimensions works with --engine scorer only")
    return chosen, dims


def _check_distribution_options(inst, constants, dims, engine) -> None:
    """A distribution instrument has no constants or dimensions, and no lm-eval engine here."""
    if constants or dims:
        raise CultbenchError(f"{inst.name} is a distribution instrument: it has no constants or dimensions")
    if engine == "lm-eval":
        raise CultbenchError(f"--engine lm-eval is for index instruments; run the {inst.name}_* tasks with "
                             "`cultbench harness-eval` (see docs/instruments.md)")


def _report_cleaning(instrument) -> None:
    """What cleaning the data changed, on stderr (the JSON has it too): nothing is dropped silently."""
    counts = instrument.cleaning["counts"]
    shown = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items() if v)
    click.echo(f"{instrument.name}: {shown}", err=True)
    click.echo(f"Note: {instrument.caveat}", err=True)


@click.command("bench")
@click.option("--model", default="smollm2-135m-instruct", show_default=True, help="Model to benchmark.")
@click.option("--candidates", default=10, show_default=True, type=int,
              help="Soft prompts per scorer call (10: a search population).")
@click.option("--repeats", default=3, show_default=True, type=int, help="Timed repeats (median reported).")
@click.option("--max-batch-mb", default=None, type=PositiveNumber(), help="The scorer's memory bound [default: its default].")
@click.option("--engines", default="scorer-fp32,scorer-bf16,lm-eval,loop", show_default=True,
              help="Engines to run, comma-separated.")
@click.option("--precision-points", default=24, show_default=True, type=click.IntRange(min=0),
              help="Random points of the default search space (US, training variants) scored in bf16 and fp32: "
                   "Spearman's rho and the winner's curse of the bf16 pick (0: skip).")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=Path("bench.json"), show_default=True,
              help="Where to write the JSON report.")
@click.option("--instrument", default="vsm2013", show_default=True,
              help="vsm2013 (soft-prompt candidates) or a distribution instrument: then every item of --data "
                   "under one variant, items/s against lm-eval's HFLM (engines scorer-fp32,lm-eval).")
@click.option("--data", default=None, metavar="PATH", help="A distribution instrument's data file.")
@click.option("--variant", default=None,
              help="The renderings every engine scores: vsm2013: a split or comma-separated renderings [default: "
                   "train, both scale orders of its wordings]; a distribution instrument: one wording [default: "
                   "respondent].")
@click.option("--batch-size", default=32, show_default=True, type=int, help="lm-eval's batch size.")
@click.option("--step-cost", "step_cost", is_flag=True,
              help="Also time one prompt-tuning step against one forward candidate evaluation (the training "
                   "variants, a population of 10): the step_cost of the prompt-tuning aligner.")
def bench(model, candidates, repeats, max_batch_mb, engines, precision_points, output, instrument, data, variant,
          batch_size, step_cost):
    """Benchmark the survey scorer against lm-eval's HFLM and a one-forward-per-item loop.

    Each engine scores the same rendered prompts (by default every rendering of the training
    wordings, both scale orders) with the same random soft prompts, in its own subprocess, one
    after the other. Reports renderings/s (a soft prompt on one rendering's items) and the ratio
    to lm-eval, candidate evaluations/s, tokens/s, model FLOP/s as a fraction of this
    machine's measured matmul rate, peak memory, and each engine's index error against fp32;
    then how well bf16 fitness ranks random search points against fp32 (Spearman's rho) and the
    winner's curse of picking the bf16 best.

    \b
    Example:
      cultbench bench --model smollm2-135m-instruct -o bench.json
    """
    from cultbench.bench.speed import BENCH_VARIANTS, ENGINES, benchmark, prompt_tuning_step_cost
    from cultbench.prompts import get_variants
    from cultbench.instruments import instrument_spec, load_instrument_with_data

    if instrument_spec(instrument)[0]["kind"] == "distribution":
        from cultbench.bench import distribution as bench_distribution

        if data is None:
            raise CultbenchError(f"bench --instrument {instrument} needs --data FILE (e.g. python "
                                 "scripts/synthetic_opinions.py random 1000 opinions-1000.csv)")
        if repeats < 1:
            raise CultbenchError("--repeats must be at least 1")
        load_instrument_with_data(instrument, data)  # data errors before any subprocess
        kwargs = {} if max_batch_mb is None else {"max_batch_mb": max_batch_mb}
        report = bench_distribution.benchmark(model, instrument, str(data), variant or "respondent", repeats,
                                              batch_size=batch_size,
                                              echo=lambda m: click.echo(m, err=True), **kwargs)
        emit_json(report, output)
        return
    chosen = [e.strip() for e in engines.split(",") if e.strip()]
    for e in chosen:
        if e not in ENGINES:
            raise CultbenchError(f"unknown engine {e!r}; engines: {', '.join(ENGINES)}")
    if candidates < 1 or repeats < 1:
        raise CultbenchError("--candidates and --repeats must be at least 1")
    renderings = variant or BENCH_VARIANTS
    get_variants(renderings)  # an unknown rendering is an error before any subprocess
    echo = lambda m: click.echo(m, err=True)  # noqa: E731
    report = (benchmark(model, candidates, repeats, max_batch_mb, chosen, echo=echo, precision_points=precision_points,
                        variants=renderings)
              if chosen or precision_points else {"model": model})
    if step_cost:
        echo("timing a prompt-tuning step ...")
        report["prompt_tuning_step"] = prompt_tuning_step_cost(model, repeats=repeats, echo=echo)
    emit_json(report, output)
    click.echo(f"wrote {output}", err=True)


COMMANDS = [evaluate, bench]
