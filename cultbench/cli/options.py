"""Options and output helpers shared by the CLI commands."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import click

from cultbench.errors import CultbenchError

CONSTANT_HELP = ("Constant C of one dimension's index, as DIM=NUMBER (e.g. pdi=0); repeat the option "
                 "or separate with commas. Dimensions not named keep the instrument's default.")


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


def constant_option(f):
    """Decorator adding ``--constant DIM=NUMBER`` (repeatable); the command receives ``constants``: a dict."""
    return click.option(
        "--constant", "constants", multiple=True, metavar="DIM=NUMBER", help=CONSTANT_HELP,
        callback=lambda ctx, param, value: parse_constants(value),
    )(f)


def _new_file_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise CultbenchError(f"{path}: folder {str(folder)!r} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise CultbenchError(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        os.chmod(tmp, _new_file_mode(path))  # mkstemp makes it 0600; give it a normal file's mode
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise CultbenchError(f"{path}: cannot write ({exc.strerror or exc})") from None
        raise


def emit_json(data, output=None) -> None:
    """Print ``data`` as indented JSON, or write it atomically to ``output`` and say so on stderr."""
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        write_text_atomic(output, text)
        click.echo(f"Wrote {output}", err=True)
