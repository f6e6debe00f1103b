"""Experiment files: the options `cultbench run --config` reads from a YAML or TOML file, and the
grid of combinations such a file asks for, which the study compares with the entries it finds."""

from __future__ import annotations

from pathlib import Path

import yaml

from aligners import get_aligner_class
from cultbench.errors import CultbenchError
from cultbench.profiles import lookup

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None


def read_config(path: Path) -> dict:
    """The options a YAML or TOML file (``cultbench run --config``) holds, as a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CultbenchError(f"--config {path}: cannot read ({exc.strerror or exc})") from None
    try:
        if path.suffix.lower() == ".toml":
            if tomllib is None:
                raise CultbenchError("--config: TOML files need Python 3.11 or later; use YAML")
            data = tomllib.loads(text)
        else:
            data = yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise CultbenchError(f"--config {path}: not valid {'TOML' if path.suffix.lower() == '.toml' else 'YAML'} "
                             f"({' '.join(str(exc).split())[:200]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CultbenchError(f"--config {path}: expected a mapping of option names to values")
    return data


# What `cultbench run` runs when the command line and the config file name no aligner or seed.
DEFAULT_ALIGNERS, DEFAULT_SEEDS = ("naive", "icl", "de"), (0,)


def experiment_grid(path: Path) -> dict:
    """The combinations an experiment file asks `cultbench run` for, as the study compares them
    with the entries: its targets (name and source), its aligners (each with whether it searches,
    i.e. runs once per seed; ``unseeded``: those that run with the first seed only), its seeds and
    its budgets (none: `cultbench run`'s default)."""
    data = read_config(path)
    as_list = lambda v: v if isinstance(v, list) else [v]  # noqa: E731
    if not data.get("target"):
        raise CultbenchError(f"--experiment {path}: it names no target")
    profiles = [lookup(t, source=data.get("source")) for t in as_list(data["target"])]
    names = [str(a) for a in as_list(data.get("aligner") or list(DEFAULT_ALIGNERS))]
    return {"file": path.as_posix(),
            "targets": list({(p.name, p.source): {"name": p.name, "source": p.source} for p in profiles}.values()),
            "aligners": {a: bool(get_aligner_class(a).searches) for a in dict.fromkeys(names)},
            # searching aligners whose result does not depend on the seed: run with the first seed only
            "unseeded": [a for a in dict.fromkeys(names) if not get_aligner_class(a).seeded],
            "seeds": [int(s) for s in dict.fromkeys(as_list(data.get("seed") or list(DEFAULT_SEEDS)))],
            "budgets": [int(b) for b in dict.fromkeys(as_list(data.get("budget") or []))]}
