"""Every command of the README and the docs and every example of a `--help` runs as written on a fresh install.

Each `cultbench ...` command is parsed by the real click command objects (options, choices, types,
required arguments), so a renamed option or a stale example fails here; the quick ones (no model,
nothing written into the repository) are also run. `lm_eval` commands are parsed by lm-eval's own
argument parser after their `$(cultbench ...)` parts are run, and may hold no placeholder.
"""

from __future__ import annotations

import glob
import json
import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from lm_eval._cli import HarnessCLI

from cultbench.cli import main

ROOT = Path(__file__).resolve().parents[1]
# Commands that load no model and write nothing: run for real.
QUICK = {"indices", "countries", "aligners", "harness-path", "harness-model-args"}
SUBSTITUTION = re.compile(r"\$\((cultbench [^)]*)\)")


def shell_lines(text: str) -> list[str]:
    """The commands of a text's ```bash blocks: continuation lines joined, `&&` chains split."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            out += [part.strip() for part in line.split(" && ") if part.strip() and not part.strip().startswith("#")]
    return out


def help_examples(command: click.Command, path: list[str]) -> list[str]:
    """The `cultbench ...` lines of every command's help example, continuation lines joined."""
    out = []
    text = (command.help or "").replace("\\\n", " ")
    out += [line.split("  #")[0].strip() for line in text.splitlines() if line.strip().startswith("cultbench ")]
    out += [line.strip() for line in text.splitlines() if line.strip().startswith("lm_eval ")]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            out += help_examples(sub, path + [name])
    return out


def run_quick(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, f"cultbench {' '.join(args)}: {result.output}"
    return result.stdout


def substituted(line: str) -> str:
    """``$(cultbench harness-path)`` and the like replaced by what they print."""
    def output(match):
        inner = shlex.split(match.group(1))[1:]
        assert inner[0] in QUICK, f"`$({match.group(1)})` is not a quick command"
        return run_quick(inner).strip()
    return SUBSTITUTION.sub(output, line)


def parse(args: list[str]) -> tuple[click.Command, click.Context]:
    """Parse ``args`` (without the leading "cultbench") as the CLI does; click errors propagate."""
    ctx = main.make_context("cultbench", list(args))
    command: click.Command = main
    while isinstance(command, click.Group):
        name, command, rest = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        ctx = command.make_context(name, rest, parent=ctx)
    return command, ctx


def cultbench_args(line: str) -> list[str]:
    words = shlex.split(substituted(line), comments=True)
    assert words[0] == "cultbench"
    expanded = []
    for word in words[1:]:  # the shell expands globs; the files must exist in the repository
        expanded += (sorted(glob.glob(str(ROOT / word))) or [word]) if "*" in word else [word]
    return expanded


README = (ROOT / "README.md").read_text(encoding="utf-8")
README_LINES = shell_lines(README)
DOC_LINES = [line for path in sorted((ROOT / "docs").glob("*.md")) for line in shell_lines(path.read_text(encoding="utf-8"))]
HELP_LINES = help_examples(main, [])


def test_the_readme_and_the_help_have_commands():
    assert sum(line.startswith("cultbench ") for line in README_LINES) >= 10
    assert sum(line.startswith("lm_eval ") for line in README_LINES) >= 1
    assert len(HELP_LINES) >= 25


@pytest.mark.parametrize("line", sorted(set(line for line in README_LINES + HELP_LINES + DOC_LINES
                                            if line.startswith("cultbench "))))
def test_cultbench_command_parses_and_quick_ones_run(line, monkeypatch):
    monkeypatch.chdir(ROOT)  # relative paths in the examples are relative to a clone
    args = cultbench_args(line)
    try:
        command, _ = parse(args)
    except click.ClickException as exc:
        pytest.fail(f"`{line}`: {exc.format_message()}")
    if command.name in QUICK:
        run_quick(args)


@pytest.mark.parametrize("line", sorted(set(line for line in README_LINES + HELP_LINES + DOC_LINES
                                            if line.startswith("lm_eval "))))
def test_lm_eval_command_has_no_placeholder_and_parses(line):
    assert not re.search(r"pretrained=(PATH|BASE)\b", line), f"`{line}`: say what the model path is"
    words = shlex.split(substituted(line), comments=True)
    try:
        HarnessCLI()._parser.parse_args(["run", *words[1:]])
    except SystemExit as exc:
        pytest.fail(f"`{line}`: lm_eval refuses its arguments (exit {exc.code})")


@pytest.mark.parametrize("line", [line for line in README_LINES
                                  if not line.startswith(("cultbench ", "lm_eval ", "python -m "))])
def test_other_readme_commands_name_files_that_exist(line):
    words = shlex.split(line)
    files = [w for w in words if w.endswith((".sh", ".py", ".yaml")) or "/" in w]
    assert files and all((ROOT / f).exists() for f in files if not f.startswith("-")), line


def _documents() -> dict[str, str]:
    texts = {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in [ROOT / "README.md",
                                                                                 *sorted((ROOT / "docs").glob("*.md"))]}
    def helps(command, path):
        out = {" ".join(path): (command.help or "") + " ".join(p.help or "" for p in command.params
                                                              if isinstance(p, click.Option))}
        for name, sub in getattr(command, "commands", {}).items():
            out.update(helps(sub, path + [name]))
        return out
    return {**texts, **helps(main, ["cultbench"])}


def test_the_bf16_speed_up_is_quoted_as_the_committed_benchmark_measured_it():
    bench = json.loads((ROOT / "docs" / "bench-smollm2-cpu.json").read_text())
    ratio = bench["engines"]["scorer-bf16"]["candidates_per_second"] / bench["engines"]["scorer-fp32"]["candidates_per_second"]
    quoted = {(where, m.group(1)) for where, text in _documents().items()
              for m in re.finditer(r"(\d+(?:\.\d+)?)x (?:faster|slower)", text)
              if re.search(r"bf16|bfloat16|--search-dtype", text[max(0, m.start() - 200):m.start()])}
    assert quoted, "the speed-up is quoted somewhere"
    assert all(value == f"{ratio:.1f}" for _, value in quoted), quoted
