"""Score real human survey responses the way the VSM manual does: item means per group, then indices.

The input is a CSV file with one row per respondent and one column per item, named by the
instrument's item ids (``q01`` .. ``q24`` for VSM 2013); other columns are allowed and ignored,
except the optional group column (e.g. ``country``). A blank cell is a missing answer and is left
out of that item's mean. An answer must be one of the instrument's options (1..5 for VSM 2013),
written as a whole number (``3``; ``3.0`` as written by spreadsheet exports is accepted, ``2.5``
is not). Rows whose every cell is blank are skipped. Row numbers in messages are those of the
file, the header being row 1.

An index whose items have no answer at all in a group is undefined: ``None`` in the result.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from cultbench.errors import CultbenchError, did_you_mean
from cultbench.instruments import Instrument, load_instrument

#: The group name used when no group column is given.
ALL = "all"

_WHOLE = re.compile(r"[+-]?\d+(\.0*)?")


@dataclass(frozen=True)
class Responses:
    """Answers read from a file: per group, a float array [respondents, items] with NaN for blank."""

    instrument: Instrument
    source: str
    group_by: str | None
    groups: dict[str, np.ndarray]


def _instrument(instrument: Instrument | str) -> Instrument:
    return instrument if isinstance(instrument, Instrument) else load_instrument(instrument)


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CultbenchError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CultbenchError(f"{path}: is a folder, not a CSV file") from None
    except OSError as exc:
        raise CultbenchError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = data[: exc.start].count(b"\n") + 1
        raise CultbenchError(
            f"{path}, row {row}{_bad_byte_column(data, exc.start)}: not valid UTF-8 "
            f"(byte 0x{data[exc.start]:02x}); save the file as UTF-8 CSV"
        ) from None


def _bad_byte_column(data: bytes, pos: int) -> str:
    """', column NAME' of the cell holding the undecodable byte at ``pos`` (best effort, else '')."""
    def cells(line: bytes) -> list[str]:
        try:
            return next(csv.reader([line.decode("utf-8-sig", errors="replace").rstrip("\r\n")]), [])
        except csv.Error:  # e.g. a lone carriage return: no column to name
            return []

    start = data.rfind(b"\n", 0, pos) + 1
    end = data.find(b"\n", pos)
    line = cells(data[start: len(data) if end < 0 else end])
    header = cells(data[: data.find(b"\n")]) if start > 0 else line
    for i, cell in enumerate(line):
        if "\ufffd" in cell and i < len(header):
            return f", column {header[i].strip()!r}"
    return ""


def _answer(cell: str, options: tuple[int, ...], where: str) -> float:
    """The answer in one cell, NaN when blank; CultbenchError when it is not one of ``options``."""
    text = cell.strip()
    if not text:
        return np.nan
    allowed = ", ".join(str(o) for o in options)
    if not _WHOLE.fullmatch(text):
        raise CultbenchError(
            f"{where}: {text!r} is not a valid answer; answers are whole numbers, one of {allowed} "
            f"(leave the cell blank for a missing answer)"
        )
    value = float(text)  # a 400-digit answer is inf here: out of range, not an OverflowError
    if value not in options:
        raise CultbenchError(f"{where}: answer {text[:20]}{'...' if len(text) > 20 else ''} is out of range; "
                             f"answers are one of {allowed}")
    return float(value)


def read_responses(path, instrument: Instrument | str = "vsm2013", group_by: str | None = None) -> Responses:
    """Read a CSV of survey responses (one row per respondent) into per-group answer arrays.

    Groups keep the order in which they first appear; without ``group_by`` there is one group,
    ``"all"``. Every problem with the file is a :class:`CultbenchError` naming row and column.
    """
    inst = _instrument(instrument)
    path = Path(path)
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    try:
        header = next(reader, None)
        while header is not None and not any(c.strip() for c in header):
            header = next(reader, None)
        if header is None:
            raise CultbenchError(f"{path}: the file is empty; expected a header row naming the columns "
                                 f"{inst.item_ids[0]}..{inst.item_ids[-1]}")
        header_row = reader.line_num
        names = [c.strip() for c in header]
        seen: set[str] = set()
        for name in names:
            if name and name in seen:
                raise CultbenchError(f"{path}, row {header_row}: column {name!r} appears twice in the header")
            seen.add(name)
        missing = [iid for iid in inst.item_ids if iid not in seen]
        separator = next((sep for sep in ";\t|" if len(names) == 1 and names[0].count(sep) >= len(inst.item_ids) - 1),
                         None)
        if missing and separator is not None:
            shown = "tabs" if separator == "\t" else repr(separator)
            raise CultbenchError(f"{path}, row {header_row} (header): the columns look separated by {shown}; "
                                 f"cultbench reads comma-separated files: save the file with commas as separators "
                                 f"(e.g. in Python: pandas.read_csv(path, sep={separator!r}).to_csv(new_path, index=False))")
        if missing:
            hint = did_you_mean(missing[0], [n for n in names if n]) if len(missing) == 1 else ""
            raise CultbenchError(
                f"{path}, row {header_row} (header): missing item column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)}; {inst.name} needs one column per item, "
                f"{inst.item_ids[0]}..{inst.item_ids[-1]}.{hint}"
            )
        if group_by is not None and group_by not in seen:
            raise CultbenchError(
                f"{path}, row {header_row} (header): no group column {group_by!r}; columns are "
                f"{', '.join(n for n in names if n)}.{did_you_mean(group_by, [n for n in names if n])}"
            )
        item_cols = [names.index(iid) for iid in inst.item_ids]
        group_col = names.index(group_by) if group_by is not None else None

        rows: dict[str, list[list[float]]] = {}
        for cells in reader:
            row = reader.line_num
            if not any(c.strip() for c in cells):
                continue  # a blank line or a row of empty cells is not a respondent
            if len(cells) != len(names):
                raise CultbenchError(f"{path}, row {row}: {len(cells)} cells, but the header has {len(names)} columns")
            if group_col is None:
                group = ALL
            else:
                group = cells[group_col].strip()
                if not group:
                    raise CultbenchError(f"{path}, row {row}, column {group_by!r}: the group is blank")
            answers = [_answer(cells[col], inst.options, f"{path}, row {row}, column {iid!r}")
                       for iid, col in zip(inst.item_ids, item_cols)]
            rows.setdefault(group, []).append(answers)
    except csv.Error as exc:
        raise CultbenchError(f"{path}, row {reader.line_num}: malformed CSV ({exc})") from None
    if not rows:
        raise CultbenchError(f"{path}: the header (row {header_row}) is followed by no data rows")
    groups = {g: np.array(r, dtype=float) for g, r in rows.items()}
    return Responses(instrument=inst, source=str(path), group_by=group_by, groups=groups)


def item_stats(answers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-item mean over the non-blank answers (NaN where none) and count, from [respondents, items]."""
    answers = np.asarray(answers, dtype=float)
    counts = np.sum(~np.isnan(answers), axis=0)
    sums = np.nansum(answers, axis=0)
    means = np.divide(sums, counts, out=np.full(sums.shape, np.nan), where=counts > 0)
    return means, counts


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def score_responses(responses: Responses, constants: Mapping[str, float] | None = None) -> dict:
    """Per group: respondents, per-item mean and count, and the indices (None where undefined).

    The constants C used are recorded in the result (the instrument's default where not overridden).
    """
    inst = responses.instrument
    used = inst.constants(constants)
    groups = {}
    for name, answers in responses.groups.items():
        means, counts = item_stats(answers)
        values = inst.indices(means, used)
        groups[name] = {
            "n": int(answers.shape[0]),
            "items": {iid: {"mean": _num(m), "count": int(c)} for iid, m, c in zip(inst.item_ids, means, counts)},
            "indices": {d: _num(v) for d, v in zip(inst.dimension_ids, values)},
        }
    return {
        "instrument": inst.name,
        "version": inst.version,
        "source": responses.source,
        "group_by": responses.group_by,
        "constants": used,
        "groups": groups,
    }
