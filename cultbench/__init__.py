"""cultbench: cultural survey instruments for language models, and aligners to a country's profile.

The modules' former flat import paths (``cultbench.scorer``, ``cultbench.sweep`` ...) still import,
with a DeprecationWarning, through ``MOVED``; ``scripts/rewrite_moved_imports.py`` rewrites them in
any file. The module map is in the README."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.1.0"

# former module path -> where it lives now (README, "Module map")
MOVED = {
    "cultbench.scorer": "cultbench.scoring.scorer",
    "cultbench.packing": "cultbench.scoring.packing",
    "cultbench.models": "cultbench.scoring.models",
    "cultbench.quantization": "cultbench.scoring.quantization",
    "cultbench.responses": "cultbench.scoring.responses",
    "cultbench.metric_registry": "cultbench.evaluation.metric_registry",
    "cultbench.metrics": "cultbench.evaluation.metrics",
    "cultbench.kinds": "cultbench.evaluation.kinds",
    "cultbench.diagnostics": "cultbench.evaluation.diagnostics",
    "cultbench.evaluation": "cultbench.evaluation.candidate",
    "cultbench.distribution_evaluation": "cultbench.evaluation.distribution",
    "cultbench.aligning": "cultbench.runs.aligning",
    "cultbench.experiments": "cultbench.runs.experiments",
    "cultbench.sweep": "cultbench.runs.sweep",
    "cultbench.distributed": "cultbench.runs.distributed",
    "cultbench.results": "cultbench.runs.results",
    "cultbench.summary": "cultbench.runs.summary",
    "cultbench.leaderboard": "cultbench.publish.leaderboard",
    "cultbench.leaderboard_page": "cultbench.publish.page",
    "cultbench.charts": "cultbench.publish.charts",
    "cultbench.stats": "cultbench.publish.stats",
    "cultbench.study": "cultbench.publish.study",
    "cultbench.study_markdown": "cultbench.publish.study_markdown",
    "cultbench.peft_export": "cultbench.publish.peft_export",
    "cultbench.bench": "cultbench.bench.speed",
    "cultbench.bench_distribution": "cultbench.bench.distribution",
}


def warn_moved(old: str, new: str) -> None:
    """The warning, named at the line that used the former path: stack level 3 is the caller of
    the finder's ``create_module`` or of a package's ``__getattr__`` (``warnings`` skips the
    import machinery's own frames)."""
    warnings.warn(f"{old} has moved to {new}; import it from there (the former path will be removed)",
                  DeprecationWarning, stacklevel=3)


class _MovedModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports a former module path as the module at its new path (the same module object)."""

    def find_spec(self, name, path=None, target=None):
        new = MOVED.get(name)
        if new is None or new.startswith(name + "."):  # a former module that is now a package: its __getattr__
            return None
        return importlib.util.spec_from_loader(name, self)

    def __init__(self):
        self._specs = {}  # former path -> the module's own spec, which the import machinery overwrites

    def create_module(self, spec):
        new = MOVED[spec.name]
        warn_moved(spec.name, new)
        module = importlib.import_module(new)
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module):
        # the module at the new path ran already; it keeps its own spec (a package stays one)
        module.__spec__ = self._specs.pop(module.__spec__.name)


def moved_attribute(package: str):
    """The ``__getattr__`` of a package that took the name of a former module (``cultbench.bench``,
    ``cultbench.evaluation``): the former module's names still resolve, with a warning."""
    def __getattr__(name: str):
        new = MOVED[package]
        if name.startswith("__"):
            raise AttributeError(name)
        module = importlib.import_module(new)
        if not hasattr(module, name):
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        warn_moved(f"{package}.{name}", f"{new}.{name}")
        return getattr(module, name)
    return __getattr__


if not any(isinstance(finder, _MovedModule) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModule())
