"""Rewrite the modules' former flat paths (``cultbench.MOVED``) to their new ones, in place.

    python scripts/rewrite_moved_imports.py [--check] [PATH ...]

PATHs are files or folders (default: the files git tracks or would, but docs/archive, which
records the past as it was). Dotted paths (``from cultbench.scorer import ...``,
``"cultbench.sweep.load_model"``, ``-m cultbench.bench``), file paths (``cultbench/scorer.py``)
and ``from cultbench import sweep [as s]`` are rewritten; running it twice changes nothing.
``--check`` changes nothing and exits 1 when a file still names a former path. Prints each file
it changed, and a line per ``from cultbench import a, b`` naming a former module beside other
names, for a hand edit."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cultbench import MOVED  # noqa: E402

SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".json", ".txt", ".cfg", ".ini", ".sh", ""}
SKIPPED = ("docs/archive/",)
# the files that name the former paths on purpose: the map, this script and its test
KEEPS_FORMER_PATHS = {"cultbench/__init__.py", "scripts/rewrite_moved_imports.py", "tests/test_moved_paths.py"}


def _dotted(old: str) -> re.Pattern:
    """``old`` as a whole dotted name, but not where it starts a new path (a former module whose
    name a new package took: ``cultbench.bench`` is not rewritten in ``cultbench.bench.speed`` nor
    in ``from cultbench.bench import speed``)."""
    subs = sorted({new[len(old) + 1:].split(".")[0] for new in set(MOVED.values()) | set(MOVED)
                   if new.startswith(old + ".")})
    alts = "|".join(subs)
    guard = rf"(?!\.(?:{alts})\b)(?! import (?:{alts})\b)" if subs else ""
    return re.compile(rf"(?<![\w.]){re.escape(old)}(?![\w]){guard}")


def _file_path(old: str) -> tuple[re.Pattern, str]:
    """``cultbench/scorer.py`` and its new file (a package's folder, ``cultbench/publish/page/``)."""
    new = MOVED[old].replace(".", "/")
    target = new + "/" if (ROOT / new).is_dir() else new + ".py"
    return re.compile(rf"(?<![\w/]){re.escape(old.replace('.', '/'))}\.py\b"), target


FROM_IMPORT = re.compile(r"^([ \t]*)from cultbench import (\w+)(?: as (\w+))?([ \t]*(?:#.*)?)$", re.M)
FROM_IMPORT_MANY = re.compile(r"^[ \t]*from cultbench import ([\w ,]+,[\w ,]+)", re.M)


def _from_import(match: re.Match) -> str:
    indent, name, alias, comment = match.groups()
    new = MOVED.get(f"cultbench.{name}")
    if new is None:
        return match.group(0)
    parent, leaf = new.rsplit(".", 1)
    alias = alias or name
    return f"{indent}from {parent} import {leaf}" + ("" if alias == leaf else f" as {alias}") + comment


_RULES: list[tuple[re.Pattern, str]] = []
_MAYBE = re.compile(r"(?<![\w.])cultbench[./](?:%s)(?!\w)|from cultbench import" % "|".join(
    sorted({old.split(".", 1)[1] for old in MOVED}, key=len, reverse=True)))


def _rules() -> list[tuple[re.Pattern, str]]:
    """(pattern, replacement) for every former path, longest first, compiled once."""
    if not _RULES:
        for old in sorted(MOVED, key=len, reverse=True):
            _RULES.extend([_file_path(old), (_dotted(old), MOVED[old])])
    return _RULES


def rewrite(text: str) -> str:
    if not _MAYBE.search(text):  # most files name no former path: one search instead of every rule
        return text
    text = FROM_IMPORT.sub(_from_import, text)
    for pattern, replacement in _rules():
        text = pattern.sub(replacement, text)
    return text


def hand_edits(text: str) -> list[str]:
    """``from cultbench import a, b`` lines that name a former module among others."""
    return [m.group(0).strip() for m in FROM_IMPORT_MANY.finditer(text)
            if any(f"cultbench.{n.strip().split(' ')[0]}" in MOVED for n in m.group(1).split(","))]


def files(paths: list[str]) -> list[Path]:
    if not paths:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout
        found = [ROOT / p for p in listed.splitlines() if not p.startswith(SKIPPED)]
    else:
        found = []
        for p in map(Path, paths):
            found += sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    keep = {(ROOT / k).resolve() for k in KEEPS_FORMER_PATHS}
    return [p for p in found if p.suffix in SUFFIXES and p.is_file() and p.resolve() not in keep]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = 0
    for path in files([a for a in argv if a != "--check"]):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        new = rewrite(text)
        for line in hand_edits(new):
            print(f"{path}: edit by hand: {line}")
        if new != text:
            stale += 1
            print(path)
            if not check:
                path.write_text(new, encoding="utf-8")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
