"""Commands about reference country profiles: ``cultbench countries``."""

from __future__ import annotations

import json

import click

from cultbench import profiles
from cultbench.cli.options import data_options
from cultbench.errors import CultbenchError


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _table(rows: list[profiles.Profile]) -> str:
    header = ["code", "iso2", "iso3", "name", *(d.upper() for d in profiles.DIMENSIONS), "source"]
    body = [
        [p.code, p.iso2 or "", p.iso3 or "", p.name,
         *(_cell(p.scores.get(d)) for d in profiles.DIMENSIONS),
         p.source + (" (estimated)" if p.estimated else "")]
        for p in rows
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    numeric = range(4, 4 + len(profiles.DIMENSIONS))
    lines = []
    for r in [header, *body]:
        cells = [c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


@click.command()
@click.argument("country", required=False)
@click.option("--source", default=None, metavar="ID",
              help="Only this source of scores (default: every source, the 2015 matrix first).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of profiles instead of a table.")
def countries(country, source, as_json):
    """List the reference country profiles: matrix code, ISO codes, scores and source; with
    COUNTRY (a name, code or alias), that country's profile in every source that has it.

    A blank score means the source has none for that country; estimated profiles are marked
    "(estimated)". Any of the code, ISO codes, name or aliases can name a target country.

    \b
    Examples:
      cultbench countries
      cultbench countries US
      cultbench countries "Saudi Arabia"
      cultbench countries --source hofstede-insights-2022-estimates
      cultbench countries --source hofstede-2015 --json
    """
    ids = [source] if source is not None else [s.id for s in profiles.sources()]
    rows = [p for sid in ids for p in profiles.countries(sid)]
    if country is not None:
        code = profiles.resolve_country(country).code
        rows = [p for p in rows if p.code == code]
        if not rows:
            raise CultbenchError(f"{country} has no scores in source {source}; see `cultbench countries {country}`")
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in rows], indent=2, ensure_ascii=False))
    else:
        click.echo(_table(rows))


@click.command()
@click.argument("name", required=False)
@data_options
@click.option("--countries", "show_countries", is_flag=True,
              help="With NAME (a distribution instrument): list its countries and their link to `cultbench countries`.")
def instruments(name, data, heldout_items, split_seed, cleaning, show_countries):
    """List the installed instruments (kind, version, items), or describe one.

    Index instruments (VSM 2013) ship with cultbench. Distribution instruments (GlobalOpinionQA)
    ship only their description: the user brings the data (--data FILE, or the local Hugging Face
    cache). Describing one reads its data and prints what cleaning changed, the question split
    and, with --countries, its countries.

    
    Examples:
      cultbench instruments
      cultbench instruments globalopinionqa --data global_opinions.csv --countries
    """
    from cultbench.cli.options import emit_json
    from cultbench.instruments import load_instrument_with_data
    from cultbench.instruments import available_instruments, instrument_spec

    if name is None:
        if data is not None or show_countries:
            raise CultbenchError("--data and --countries describe one instrument: name it, e.g. "
                                 "`cultbench instruments globalopinionqa --data FILE`")
        rows = [["name", "kind", "version", "items", "title"]]
        for n in available_instruments():
            spec, _ = instrument_spec(n)
            items = (str(len(spec.get("items", []))) if spec["kind"] == "index"
                     else f"from data ({spec.get('dataset')}; bring it: --data)")
            rows.append([n, spec["kind"], str(spec.get("version", "")), items, spec.get("title", "")])
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            click.echo("  ".join([c.ljust(w) for c, w in zip(r[:4], widths)] + [r[4]]).rstrip())
        return
    inst = load_instrument_with_data(name, data, heldout_items, split_seed, cleaning)
    if inst.kind != "distribution":
        emit_json({"name": inst.name, "version": inst.version, "kind": inst.kind, "title": inst.title,
                   "items": len(inst.items), "dimensions": inst.dimension_ids})
        return
    record = inst.describe()
    if show_countries:
        record["countries"] = [{**c.to_dict(), "items": len(inst.reference[c.name])} for c in inst.countries]
    record["caveat"] = inst.caveat
    emit_json(record)


COMMANDS = [countries, instruments]
