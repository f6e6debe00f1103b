"""The aligner registry: names -> aligner classes, filled by a decorator and by entry points.

This module imports nothing else from ``aligners`` (so any aligner module, built-in or third-party,
can import it without a cycle). A third-party package adds an aligner without touching this
repository by declaring an entry point in the group ``cultbench.aligners``::

    [project.entry-points."cultbench.aligners"]
    my-aligner = "my_package.my_module:MyAligner"

The entry point may name the aligner class (registered under the entry point's name) or a module
whose import registers its aligners with :func:`register_aligner`. Entry points are loaded once,
the first time the registry is read; a plugin that fails to import is reported, never fatal for
the others.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import re

from cultbench.errors import CultbenchError, did_you_mean

ENTRY_POINT_GROUP = "cultbench.aligners"
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_log = logging.getLogger(__name__)

_ALIGNERS: dict[str, type] = {}
_PLUGIN_ERRORS: dict[str, str] = {}  # entry point name -> why it could not be loaded
_entry_points_loaded = False


# The Aligner protocol's parts (aligners.base.Aligner, which re-exports this), and those that are methods.
CONTRACT = ("config_class", "searches", "seeded", "display_order", "colour", "check_budget", "check_instrument",
            "align")
_METHODS = ("check_budget", "check_instrument", "align")


def _check_aligner_class(cls, name: str) -> None:
    """The structural part of the Aligner protocol, checked without importing it (see base.py)."""
    if not inspect.isclass(cls):
        raise TypeError(f"aligner {name!r} must be a class, got {cls!r}")
    missing = [attr for attr in CONTRACT if not hasattr(cls, attr)
               or attr in _METHODS and not callable(getattr(cls, attr))]
    if missing:
        raise TypeError(f"aligner {name!r} ({cls.__qualname__}) lacks {', '.join(missing)}; "
                        "subclass aligners.ConfiguredAligner or implement the whole Aligner protocol")


def register_aligner(name: str):
    """Class decorator: register an aligner under ``name`` (lower-case letters, digits, - and _).

    Sets ``cls.name``. Registering a second, different class under a taken name is an error;
    re-registering the same class, or its reloaded module's new copy, is harmless.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"invalid aligner name {name!r}: use lower-case letters, digits, '-' and '_'")

    def decorate(cls):
        _check_aligner_class(cls, name)
        current = _ALIGNERS.get(name)
        reloaded = current is not None and (current.__module__, current.__qualname__) == (cls.__module__, cls.__qualname__)
        if current is not None and current is not cls and not reloaded:
            raise ValueError(f"aligner name {name!r} is taken by {current.__module__}.{current.__qualname__}")
        cls.name = name
        config = getattr(cls, "config_class", None)
        if config is not None and "aligner_name" not in vars(config):
            config.aligner_name = name  # messages about its hyper-parameters name the aligner, not the class
        _ALIGNERS[name] = cls
        return cls

    return decorate


def describe(cls) -> str:
    """An aligner's one-line description: the first line of its class docstring."""
    doc = inspect.getdoc(cls) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def load_entry_points(reload: bool = False) -> dict[str, str]:
    """Import every ``cultbench.aligners`` entry point (once); returns {name: error} of failures."""
    global _entry_points_loaded
    if _entry_points_loaded and not reload:
        return dict(_PLUGIN_ERRORS)
    _entry_points_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if inspect.isclass(obj):
                if _ALIGNERS.get(ep.name) is not obj:
                    if ep.name in _ALIGNERS:
                        raise ValueError(f"name {ep.name!r} is already taken by "
                                         f"{_ALIGNERS[ep.name].__module__}.{_ALIGNERS[ep.name].__qualname__}")
                    register_aligner(ep.name)(obj)
            _PLUGIN_ERRORS.pop(ep.name, None)
        except Exception as exc:  # a broken plugin must not take the others down
            _PLUGIN_ERRORS[ep.name] = f"{type(exc).__name__}: {exc}"
            _log.warning("aligner plugin %r (%s) could not be loaded: %s", ep.name, ep.value, exc)
    return dict(_PLUGIN_ERRORS)


def available_aligners() -> dict[str, type]:
    """Every registered aligner, built-in and plugin, by name (sorted)."""
    load_entry_points()
    return dict(sorted(_ALIGNERS.items()))


def display_key(name: str) -> tuple:
    """Sort key of an aligner name (or a label that starts with one: "de (30 evals)") in the study's
    tables and the charts: its class's ``display_order``, then the text; unknown names last."""
    base = name.split(" (")[0].split(" [")[0]
    cls = available_aligners().get(base)
    return (float("inf") if cls is None else float(cls.display_order), name)


def aligner_colour(name: str) -> str | None:
    """The colour an aligner declares for charts (None: unknown, or none declared)."""
    cls = available_aligners().get(name)
    return None if cls is None else cls.colour


def get_aligner_class(name: str) -> type:
    """The aligner class registered as ``name``; a clear error with near-miss names otherwise."""
    table = available_aligners()
    if name in table:
        return table[name]
    if name in _PLUGIN_ERRORS:
        raise CultbenchError(f"aligner plugin {name!r} could not be loaded: {_PLUGIN_ERRORS[name]}")
    raise CultbenchError(f"unknown aligner {name!r}; aligners: {', '.join(table)}.{did_you_mean(name, table)}")
