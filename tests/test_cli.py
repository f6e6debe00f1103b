"""The command line's shared behaviour: one-line errors with exit 2, help with examples."""

import os
import subprocess
import sys
from pathlib import Path

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


# Modules that take seconds to import; help and the listing commands must not load them.
HEAVY_MODULES = ("torch", "transformers", "lm_eval", "peft", "scipy")
LISTING = [["--help"], ["aligners"], ["aligners", "de"], ["aligners", "prompt-tuning"], ["aligners", "cmaes"],
           ["countries"], ["countries", "US"], ["instruments"], ["harness-path"]]


@pytest.mark.parametrize("args", LISTING, ids=" ".join)
def test_help_and_the_listing_commands_import_no_heavy_module(args):
    """Run in a fresh interpreter (this one has torch loaded): the command's output is there, and
    none of the modules that take seconds to import was loaded on the way."""
    root = Path(__file__).resolve().parents[1]
    code = ("import sys\nfrom click.testing import CliRunner\nfrom cultbench.cli import main\n"
            f"result = CliRunner().invoke(main, {args!r})\n"
            "assert result.exit_code == 0, result.output\n"
            "print(result.output)\n"
            f"print('HEAVY', [m for m in {HEAVY_MODULES!r} if m in sys.modules])\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY []", proc.stdout[-2000:]
    assert len(proc.stdout.strip().splitlines()) > 1  # the command printed something
