"""The constants C of an index instrument's formulas, given as text (``--constant pdi=0``, a task's
``constants`` metadata): parsed here, checked against the instrument by ``Instrument.constants``."""

from __future__ import annotations

import math

from cultbench.errors import CultbenchError


def parse_constants(values) -> dict[str, float]:
    """``["pdi=0", "idv=10,mas=5"]`` -> ``{"pdi": 0.0, "idv": 10.0, "mas": 5.0}``.

    Dimension names are lower-cased; whether they exist is checked by ``Instrument.constants``.
    """
    out: dict[str, float] = {}
    for value in values or ():
        for part in str(value).split(","):
            dim, sep, number = part.partition("=")
            dim, number = dim.strip().lower(), number.strip()
            if not sep or not dim or not number:
                raise CultbenchError(f"--constant {part.strip()!r}: expected DIM=NUMBER, e.g. --constant pdi=50")
            try:
                c = float(number)
            except ValueError:
                raise CultbenchError(f"--constant {part.strip()!r}: {number!r} is not a number") from None
            if not math.isfinite(c):
                raise CultbenchError(f"--constant {part.strip()!r}: the constant must be a finite number")
            if dim in out:
                raise CultbenchError(f"--constant: dimension {dim!r} is given twice")
            out[dim] = c
    return out
