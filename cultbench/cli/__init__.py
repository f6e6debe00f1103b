"""The ``cultbench`` command line: one click group, commands grouped by topic in sibling modules."""

from __future__ import annotations

import sys

import click

from cultbench.errors import CultbenchError


class _Group(click.Group):
    """Turns user mistakes (CultbenchError, click's usage errors) into one line and exit code 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:  # click would print its usage block before the message
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: show its help
                click.echo(exc.ctx.get_help(), err=True)
                sys.exit(2)
            where = exc.ctx.command_path if exc.ctx else "cultbench"
            click.echo(f"Error: {exc.format_message()} (see '{where} --help')", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CultbenchError as exc:  # one line, whatever line breaks a value from a file brought in
            click.echo(f"Error: {' '.join(str(exc).split())}", err=True)
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
    from cultbench.cli import reference, survey, model, align, run, harness, testbed  # noqa: F401  (each calls main.add_command)

    for module in (reference, survey, model, align, run, harness, testbed):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
