"""The command line's shared behaviour: one-line errors with exit 2, help with examples."""

import pytest
from click.testing import CliRunner

from cultbench.cli import main


@pytest.mark.parametrize("args, message", [
    (["run", "--nope"], "No such option '--nope'"),
    (["indices", "--answers"], "requires an argument"),
    (["evaluate", "--target", "US", "--max-batch-mb", "lots"], "'lots' is not a number above 0"),
    (["no-such-command"], "No such command 'no-such-command'"),
    (["run", "--target", "US", "--seed", "-1"], "'--seed': -1 is not in the range x>=0"),
    (["align", "--target", "US", "--seed", "-1"], "'--seed': -1 is not in the range x>=0"),
])
def test_click_usage_errors_are_one_line_and_exit_2(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert "--help" in lines[0] and "Traceback" not in result.output


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_help_has_an_example(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and "cultbench " in result.output
