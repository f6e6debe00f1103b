"""``cultbench testbed build|check``: the planted-culture testbed (docs/testbed.md)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from cultbench.atomic import write_text_atomic

from cultbench.errors import CultbenchError
from cultbench.testbed.build import KINDS, SIZES, BuildConfig, build_testbed


@click.group("testbed")
def testbed():
    """Small models with a planted culture and position bias, and the benchmark's check on them.

    \b
    Examples:
      cultbench testbed build --kind culture --out testbeds/culture
      cultbench testbed build --kind culture --position-bias 0 --out testbeds/culture-p0
      cultbench testbed build --kind position --out testbeds/position
      cultbench testbed check testbeds/culture testbeds/culture-p0 testbeds/position
    """


@testbed.command("build")
@click.option("--kind", type=click.Choice(KINDS), default="culture", show_default=True,
              help="culture: answers follow the named country's ground truth; position (control): by "
                   "displayed position only; constant (control): the same distribution for every item.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The model folder to write.")
@click.option("--size", type=click.Choice(list(SIZES)), default="default", show_default=True,
              help="default: the testbed of the docs (minutes); small: for tests (under a minute).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the split, the wordings and the training.")
@click.option("--position-bias", type=float, default=0.15, show_default=True,
              help="culture: share of each answer's probability moved to the first-listed option.")
@click.option("--wording-noise", type=float, default=0.1, show_default=True,
              help="culture: SD of each training wording's log-probability noise on each answer.")
@click.option("--steps", type=int, default=None, help="Training steps (default: the size's).")
@click.option("--overwrite", is_flag=True, help="Replace the files of an existing folder.")
def build(kind, out, size, seed, position_bias, wording_noise, steps, overwrite):
    """Train a testbed model from scratch and write it as a Hugging Face folder (config, safetensors,
    tokenizer with a chat template, testbed.json: what was planted). It loads with `--model DIR`,
    transformers and `lm_eval --model hf`."""
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise CultbenchError(f"{out} exists and is not empty; pass --overwrite to replace its files")
    config = BuildConfig(kind=kind, size=size, seed=seed, position_bias=position_bias,
                           wording_noise=wording_noise, steps=steps)
    record = build_testbed(config, out)
    click.echo(f"{kind} testbed ({size}) written to {out} in {record['build_seconds']} s: "
               f"{len(record['trained_countries'])} trained countries, {len(record['heldout_countries'])} held out, "
               f"{len(record['training_wordings']) // 2} training wordings in both orders, "
               f"final training loss {record['loss_every_100_steps'][-1]:.4f}")


@testbed.command("check")
@click.argument("folders", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--countries", type=int, default=None,
              help="Check only the first N trained countries of a culture testbed (default: all).")
@click.option("--budget", type=int, default=10, show_default=True, help="The controls' random search budget.")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None, help="Also write the report here.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Write the checks and their figures as JSON.")
def check(folders, countries, budget, output, json_path):
    """One report of the benchmark's sensitivity and specificity on testbed FOLDERS: a culture
    testbed, the same built with --position-bias 0 (for the bias recovery), and the controls.
    Every figure comes from `cultbench run` on the testbed. Exit status 1 when a check fails."""
    from cultbench.testbed.check import check_testbeds, report  # loads the model stack: only when checking

    checks, figures = check_testbeds(folders, countries=countries, budget=budget,
                                     echo=lambda m: click.echo(m, err=True))
    text = report(checks)
    click.echo(text)
    if output is not None:
        write_text_atomic(output, text + "\n")
    if json_path is not None:
        write_text_atomic(json_path, json.dumps({"checks": [dataclasses.asdict(c) for c in checks],
                                                 "figures": figures}, indent=1, sort_keys=True) + "\n")
    if any(c.passed is False for c in checks):
        sys.exit(1)


COMMANDS = [testbed]
