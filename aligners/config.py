"""Hyper-parameter records: one frozen dataclass per aligner, each field with its help text.

PEFT style: a config is validated when it is made (``__post_init__``), converts to and from a
JSON-ready dict, and is the only place a hyper-parameter is documented. Values are coerced to the
field's declared type on construction, so ``DEConfig(popsize="10")`` (as typed on a command line)
and ``DEConfig(bounds=[-1, 1])`` (as read back from JSON) give the same record as the Python values.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Mapping

from cultbench.errors import CultbenchError, did_you_mean


def param(default, help: str):
    """A config field with a default and its help text (shown by ``cultbench aligners NAME``)."""
    return dataclasses.field(default=default, metadata={"help": help})


def _type_name(hint) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _coerce(value, hint, name: str):
    """``value`` as type ``hint`` (int, float, bool, str, tuple[...], unions with None)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            try:
                return _coerce(value, option, name)
            except (TypeError, ValueError) as exc:
                error = exc
        if len(options) == 1:  # an optional value: the one type's own message
            raise ValueError(f"{error} (or none)")
        raise ValueError(f"{name}={value!r} is not a {_type_name(hint)}")
    if origin is tuple:
        items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise TypeError(f"{name}={value!r} is not a {_type_name(hint)}")
        if args and args[-1] is not Ellipsis and len(items) != len(args):
            raise ValueError(f"{name}={value!r} needs {len(args)} values")
        kinds = [args[0]] * len(items) if args and args[-1] is Ellipsis else list(args) or [Any] * len(items)
        return tuple(_coerce(v, k, name) for v, k in zip(items, kinds))
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        lowered = str(value).strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError(f"{name}={value!r} is not true or false")
    if hint in (int, float):
        kind = "an integer" if hint is int else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TypeError(f"{name}={value!r} is not {kind}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{name}={value!r} is not {kind}") from None
        if not math.isfinite(number):
            raise ValueError(f"{name}={value!r} must be finite")
        if hint is float:
            return number
        if not number.is_integer():
            raise ValueError(f"{name}={value!r} is not {kind}")
        return int(value) if isinstance(value, int) else int(number)
    if hint is str:
        if not isinstance(value, str):
            raise TypeError(f"{name}={value!r} is not text")
        return value
    raise TypeError(f"{name}: unsupported hyper-parameter type {_type_name(hint)}")


@dataclasses.dataclass(frozen=True)
class AlignerConfig:
    """Base of every aligner's hyper-parameters. Subclasses add fields made with :func:`param`
    and check them in ``__post_init__`` (calling ``super().__post_init__()`` first)."""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            try:
                value = _coerce(getattr(self, f.name), hints[f.name], f.name)
            except (TypeError, ValueError) as exc:
                raise CultbenchError(f"{self._label()}: {exc}") from None
            object.__setattr__(self, f.name, value)

    @classmethod
    def _owner(cls) -> str:
        """The aligner these hyper-parameters belong to, as users name it (set at registration)."""
        name = vars(cls).get("aligner_name")
        return f"aligner {name}" if name else cls.__name__

    @classmethod
    def _label(cls) -> str:
        return f"hyper-parameters of {cls._owner()}"

    def _fail(self, message: str):
        raise CultbenchError(f"{self._label()}: {message}")

    def to_dict(self) -> dict:
        """JSON-ready: tuples become lists."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """A config from a dict (JSON or strings from the command line); unknown keys are errors."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            hint = did_you_mean(unknown[0], names)
            known = ", ".join(names) if names else "none"
            raise CultbenchError(f"unknown hyper-parameter {unknown[0]!r} for {cls._owner()}; "
                                 f"hyper-parameters: {known}.{hint}")
        return cls(**dict(data))

    @classmethod
    def describe_params(cls) -> list[dict]:
        """[{name, type, default, help}] for every hyper-parameter, in declaration order."""
        hints = typing.get_type_hints(cls)
        return [{"name": f.name, "type": _type_name(hints[f.name]), "default": f.default,
                 "help": f.metadata.get("help", "")} for f in dataclasses.fields(cls)]
