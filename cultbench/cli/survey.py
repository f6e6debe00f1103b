"""Survey commands: indices from a vector of answers, and scoring a CSV of human responses."""

from __future__ import annotations

import math
import re

import click

from cultbench.cli.options import constant_option, emit_json, emit_report
from cultbench import profiles
from cultbench.errors import CultbenchError
from cultbench.instruments import Instrument, load_instrument
from cultbench.scoring.responses import read_responses, score_responses
from cultbench.runs.summary import scores_text

_instrument_option = click.option(
    "--instrument", default="vsm2013", show_default=True,
    help="Instrument name (or path of an instrument YAML file).",
)


def parse_answers(text: str, inst: Instrument) -> list[float]:
    """One real number per item, in item order, each within the instrument's answer range."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    n = len(inst.item_ids)
    if len(parts) != n:
        raise CultbenchError(f"--answers: {inst.name} needs {n} answers ({inst.item_ids[0]}..{inst.item_ids[-1]}, "
                             f"comma-separated), got {len(parts)}")
    lo, hi = min(inst.options), max(inst.options)
    out = []
    for iid, part in zip(inst.item_ids, parts):
        try:
            value = float(part)
        except ValueError:
            raise CultbenchError(f"--answers: answer to {iid} {part!r} is not a number") from None
        if not (math.isfinite(value) and lo <= value <= hi):
            raise CultbenchError(f"--answers: answer to {iid} {part!r} is outside the answer range {lo}..{hi}")
        out.append(value)
    return out


@click.command()
@_instrument_option
@click.option("--answers", required=True, metavar="A1,A2,...",
              help="One answer per item in item order, comma-separated; real numbers within the answer "
                   "range are allowed (e.g. a model's expected answers).")
@constant_option
def indices(instrument, answers, constants):
    """Compute the instrument's indices from one answer (or mean answer) per item, as JSON.

    \b
    Example (a neutral respondent scores C on every index; here PDI's C is 0):
      cultbench indices --instrument vsm2013 \\
        --answers 3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3 --constant pdi=0
    """
    inst = load_instrument(instrument)
    values = parse_answers(answers, inst)
    used = inst.constants(constants)
    emit_json({
        "instrument": inst.name,
        "version": inst.version,
        "constants": used,
        "answers": dict(zip(inst.item_ids, values)),
        "indices": inst.indices_dict(values, used),
    })


@click.command()
@_instrument_option
@click.argument("responses", metavar="RESPONSES.csv")
@click.option("--group-by", metavar="COLUMN", help="Score each value of this column (e.g. country) separately.")
@constant_option
@click.option("--output", "-o", metavar="FILE", help="Also write the full JSON to FILE (atomically).")
@click.option("--json", "as_json", is_flag=True, help="Print the full JSON on stdout instead of the summary.")
def score(instrument, responses, group_by, constants, output, as_json):
    """Score a CSV of human survey responses as the instrument's manual does.

    One row per respondent, one column per item (q01..q24 for vsm2013), other columns ignored.
    Blank cells are missing answers, left out of that item's mean; answers are whole numbers
    within the answer scale. Prints, per group, the respondents and the indices, beside the
    published scores where the group names a country; the full JSON (per-item means and counts,
    indices, null where an index's item has no answer, and the constants used) goes to -o FILE
    or, with --json, to stdout.

    \b
    Example:
      cultbench score --instrument vsm2013 responses.csv --group-by country \\
        --constant pdi=0 --output scores.json
    """
    inst = load_instrument(instrument)
    data = read_responses(responses, inst, group_by=group_by)
    scored = score_responses(data, constants)
    emit_report(scored, scores_text(scored, _published(scored["groups"])), output, as_json)


def _published(groups) -> dict[str, dict]:
    """The published profile of each group that names a country with all scores in the default source."""
    out = {}
    for name in groups:
        try:
            out[name] = profiles.lookup(name).to_dict()
        except CultbenchError:
            continue
    return out


COMMANDS = [indices, score]
