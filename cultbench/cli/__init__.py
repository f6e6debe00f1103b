"""The ``cultbench`` command line: one click group, commands grouped by topic in sibling modules."""

from __future__ import annotations

import sys

import click

from cultbench.errors import CultbenchError


class _Group(click.Group):
    """Turns user mistakes (CultbenchError, missing files) into one line and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CultbenchError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cultbench")
def main():
    """cultbench: score language models on cultural survey instruments and align them to a country.

    \b
    Example:
      cultbench indices --instrument vsm2013 --answers 3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3
    """


def _register():
    # Command modules import the library, never this package, so there is no cycle.
    from cultbench.cli import reference, survey, model, align, run, harness  # noqa: F401  (each calls main.add_command)

    for module in (reference, survey, model, align, run, harness):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
