"""Commands about reference country profiles: ``cultbench countries``."""

from __future__ import annotations

import json

import click

from cultbench import profiles


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
@click.option("--source", default=None, metavar="ID",
              help="Only this source of scores (default: every source, the 2015 matrix first).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of profiles instead of a table.")
def countries(source, as_json):
    """List the reference country profiles: matrix code, ISO codes, scores and source.

    A blank score means the source has none for that country; estimated profiles are marked
    "(estimated)". Any of the code, ISO codes, name or aliases can name a target country.

    \b
    Examples:
      cultbench countries
      cultbench countries --source hofstede-insights-2022-estimates
      cultbench countries --source hofstede-2015 --json
    """
    ids = [source] if source is not None else [s.id for s in profiles.sources()]
    rows = [p for sid in ids for p in profiles.countries(sid)]
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in rows], indent=2, ensure_ascii=False))
    else:
        click.echo(_table(rows))


COMMANDS = [countries]
