"""Options and output helpers shared by the CLI commands."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from cultbench.atomic import write_text_atomic
from cultbench.constants import parse_constants

CONSTANT_HELP = ("Constant C of one dimension's index, as DIM=NUMBER (e.g. pdi=0); repeat the option "
                 "or separate with commas. Dimensions not named keep the instrument's default.")


class PositiveNumber(click.ParamType):
    """A finite number above 0 (``--max-batch-mb``): nan, inf, 0 and negatives are refused."""

    name = "number"

    def convert(self, value, param, ctx):
        try:
            number = float(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or not math.isfinite(number) or number <= 0:
            self.fail(f"{str(value)[:40]!r} is not a number above 0", param, ctx)
        return number


def constant_option(f):
    """Decorator adding ``--constant DIM=NUMBER`` (repeatable); the command receives ``constants``: a dict."""
    return click.option(
        "--constant", "constants", multiple=True, metavar="DIM=NUMBER", help=CONSTANT_HELP,
        callback=lambda ctx, param, value: parse_constants(value),
    )(f)


def ray_options(f):
    """Decorator adding ``--workers``, ``--ray-address`` and ``--num-gpus-per-worker``: where a
    search scores its populations (cultbench/runs/distributed.py)."""
    f = click.option("--num-gpus-per-worker", default=None, type=click.FloatRange(min=0),
                     help="GPUs each Ray actor reserves [default: 1 where the cluster has GPUs, else 0].")(f)
    f = click.option("--ray-address", default=None, metavar="ADDR",
                     help="Score on an existing Ray cluster (HOST:PORT or auto) instead of a local one.")(f)
    return click.option("--workers", default=None, type=click.IntRange(min=1),
                        help="Score each search's populations on this many Ray actors, one model replica "
                             "each (needs `pip install 'cultbench[ray]'`; see docs/distributed.md).")(f)


def json_options(f):
    """Decorator adding ``--output/-o FILE`` (the full JSON, written atomically) and ``--json`` (the
    full JSON on stdout instead of the readable summary)."""
    f = click.option("--json", "as_json", is_flag=True,
                     help="Print the full JSON on stdout instead of the readable summary.")(f)
    return click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        metavar="FILE", help="Also write the full JSON to FILE.")(f)


def emit_report(data, summary: str, output=None, as_json: bool = False) -> None:
    """The readable ``summary`` on stdout (or the JSON with ``as_json``), and the JSON in ``output``."""
    if output is not None:
        emit_json(data, output)
    if as_json:
        emit_json(data)
    else:
        click.echo(summary, nl=False)


def alignment_folder(path: Path | None) -> Path | None:
    """An alignment given as its folder or as the folder's alignment.json: the folder."""
    if path is not None and path.name == "alignment.json" and path.is_file():
        return path.parent
    return path


def data_options(f):
    """Decorator adding the options of a distribution instrument's data (``--data``,
    ``--heldout-items``, ``--split-seed``, ``--cleaning``); the command receives ``data_args``, a
    dict of keyword arguments for ``cultbench.instruments.load_instrument``."""
    f = click.option("--cleaning", multiple=True, metavar="KEY=VALUE",
                     help="Override one cleaning policy of the data (e.g. refusal=keep, off_sum=renormalise); "
                          "repeatable. See docs/instruments.md.")(f)
    f = click.option("--split-seed", default=None, type=int,
                     help="Seed of the held-out question rule [default: the instrument's].")(f)
    f = click.option("--heldout-items", default=None, type=click.Path(dir_okay=False),
                     help="File of item ids (one a line) to hold out instead of the seeded rule.")(f)
    return click.option("--data", default=None, metavar="PATH",
                        help="Data of a distribution instrument (CSV, Parquet or JSONL in the GlobalOpinionQA "
                             "columns) [default: the local Hugging Face cache; never downloaded].")(f)


def emit_json(data, output=None) -> None:
    """Print ``data`` as indented JSON, or write it atomically to ``output`` and say so on stderr."""
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        write_text_atomic(output, text)
        click.echo(f"Wrote {output}", err=True)
