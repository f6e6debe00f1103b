"""Reference country profiles: published Hofstede scores, with their sources, as data.

Each source (``sources.yaml``) gives scores for some countries on some of the six dimensions;
``countries.tsv`` names every row (matrix code, ISO 3166 codes, aliases), so a country can be
looked up as "US", "usa", "United States" or "U.S.A.". A profile always names its source, and
estimated profiles say so.

    >>> lookup("US").scores["idv"]
    91.0
    >>> lookup("SA", source="hofstede-insights-2022-estimates").estimated
    True
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

import numpy as np
import yaml

from cultbench.errors import CultbenchError, did_you_mean

PROFILES_DIR = Path(__file__).parent
DIMENSIONS: tuple[str, ...] = ("pdi", "idv", "mas", "uai", "lto", "ivr")
DEFAULT_SOURCE = "hofstede-2015"
_ALIAS_SEP = ";"


@dataclass(frozen=True)
class Source:
    """One set of published scores: ``file`` is the TSV beside this module, or None when inline."""

    id: str
    title: str
    provenance: str
    estimated: bool
    file: str | None = None


@dataclass(frozen=True)
class Profile:
    """One country's scores in one source; ``scores`` holds only the dimensions the source has."""

    name: str
    code: str  # the 2015 matrix code (ctr), e.g. "USA", "CHI", "SAU"
    iso2: str | None  # ISO 3166-1 alpha-2; None for regions and parts of a country
    iso3: str | None
    source: str
    scores: Mapping[str, float] = field(hash=False)
    estimated: bool = False
    provenance: str = ""

    def __post_init__(self):
        unknown = set(self.scores) - set(DIMENSIONS)
        if unknown:
            raise ValueError(f"unknown dimensions {sorted(unknown)} in profile {self.name}")
        ordered = {d: float(self.scores[d]) for d in DIMENSIONS if d in self.scores}
        object.__setattr__(self, "scores", MappingProxyType(ordered))

    @property
    def key(self) -> str:
        """A stable id for output keys: see :func:`target_key`."""
        return target_key(self.to_dict())

    def vector(self, dimension_ids: Sequence[str] = DIMENSIONS) -> np.ndarray:
        """The scores in the order of ``dimension_ids``, as a float64 array."""
        ids = [str(d).lower() for d in dimension_ids]
        missing = [d for d in ids if d not in self.scores]
        if missing:
            raise CultbenchError(
                f"{self.name} has no {', '.join(d.upper() for d in missing)} in source {self.source}."
            )
        return np.array([self.scores[d] for d in ids], dtype=np.float64)

    def to_dict(self) -> dict:
        """A JSON-ready dict: name, code, iso2, iso3, source, estimated, provenance, scores."""
        return {
            "name": self.name,
            "code": self.code,
            "iso2": self.iso2,
            "iso3": self.iso3,
            "source": self.source,
            "estimated": self.estimated,
            "provenance": self.provenance,
            "scores": dict(self.scores),
        }


def target_key(target: Mapping) -> str:
    """A stable id of a target profile (a ``Profile.to_dict()``): the ISO alpha-2 code (the matrix
    code for regions without one), with ``@SOURCE`` when the source is not the default, so that it
    can be passed back as ``--target`` ("US", "SA@hofstede-insights-2022-estimates")."""
    ident = target.get("iso2") or target["code"]
    return ident if target["source"] == DEFAULT_SOURCE else f"{ident}@{target['source']}"


@dataclass(frozen=True)
class _Country:
    code: str
    name: str
    iso2: str | None
    iso3: str | None
    aliases: tuple[str, ...]


def _norm(text: str) -> str:
    """Lookup key: case-folded, dots dropped, whitespace collapsed ("U.S.A." -> "usa")."""
    return " ".join(str(text).replace(".", "").casefold().split())


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@lru_cache(maxsize=None)
def _countries() -> dict[str, _Country]:
    table = {}
    for row in _read_tsv(PROFILES_DIR / "countries.tsv"):
        aliases = tuple(a.strip() for a in (row["aliases"] or "").split(_ALIAS_SEP) if a.strip())
        table[row["ctr"]] = _Country(row["ctr"], row["name"], row["iso2"] or None,
                                     row["iso3"] or None, aliases)
    return table


@lru_cache(maxsize=None)
def _index() -> dict[str, dict[str, str]]:
    """Normalised key -> {matrix code: what the key is for that country}."""
    index: dict[str, dict[str, str]] = {}
    for c in _countries().values():
        keys = [(c.name, "name"), (c.code, "matrix code")]
        keys += [(c.iso2, "ISO alpha-2 code"), (c.iso3, "ISO alpha-3 code")]
        keys += [(a, "alias") for a in c.aliases]
        for key, kind in keys:
            if key:
                index.setdefault(_norm(key), {}).setdefault(c.code, kind)
    return index


def _scores_from_row(row: Mapping[str, str | None]) -> dict[str, float]:
    return {d: float(row[d]) for d in DIMENSIONS if (row.get(d) or "").strip()}


@lru_cache(maxsize=None)
def _sources() -> dict[str, tuple[Source, dict[str, dict[str, float]]]]:
    """Source id -> (Source, {matrix code: scores})."""
    spec = yaml.safe_load((PROFILES_DIR / "sources.yaml").read_text(encoding="utf-8"))
    known = _countries()
    out = {}
    for entry in spec["sources"]:
        source = Source(id=entry["id"], title=entry["title"], provenance=entry["provenance"].strip(),
                        estimated=bool(entry["estimated"]), file=entry.get("file"))
        if source.file:
            rows = {r["ctr"]: _scores_from_row(r) for r in _read_tsv(PROFILES_DIR / source.file)}
        else:
            rows = {code: _scores_from_row({k: str(v) for k, v in scores.items()})
                    for code, scores in entry["profiles"].items()}
            bad = [k for s in entry["profiles"].values() for k in s if k not in DIMENSIONS]
            if bad:
                raise ValueError(f"source {source.id}: unknown dimensions {bad}")
        unknown = sorted(set(rows) - set(known))
        if unknown:
            raise ValueError(f"source {source.id}: codes {unknown} are not in countries.tsv")
        out[source.id] = (source, rows)
    return out


def sources() -> list[Source]:
    """Every source of reference scores, the default (the 2015 matrix) first."""
    return [source for source, _ in _sources().values()]


def _source(source: str | None) -> tuple[Source, dict[str, dict[str, float]]]:
    source = DEFAULT_SOURCE if source is None else source
    table = _sources()
    if source not in table:
        raise CultbenchError(
            f"unknown source {source!r}; sources are {', '.join(table)}.{did_you_mean(source, table)}"
        )
    return table[source]


def _profile(country: _Country, source: Source, scores: Mapping[str, float]) -> Profile:
    return Profile(name=country.name, code=country.code, iso2=country.iso2, iso3=country.iso3,
                   source=source.id, scores=scores, estimated=source.estimated,
                   provenance=source.provenance)


def countries(source: str | None = None) -> list[Profile]:
    """Every country of ``source`` (default: the 2015 matrix), in file order, partial rows included."""
    src, rows = _source(source)
    table = _countries()
    return [_profile(table[code], src, scores) for code, scores in rows.items()]


def world_mean(source: str | None = None, dimensions: Sequence[str] = DIMENSIONS) -> tuple[np.ndarray, str, int]:
    """(mean scores in ``dimensions``' order, the source they come from, how many countries) over
    the countries of ``source`` that have every one of ``dimensions``: the reference profile of a
    respondent who knows only what countries score on average. A source with fewer than two such
    countries (an estimate for one country) falls back to the default matrix."""
    dims = [str(d).lower() for d in dimensions]
    for src in dict.fromkeys([source or DEFAULT_SOURCE, DEFAULT_SOURCE]):
        rows = [p.vector(dims) for p in countries(src) if all(d in p.scores for d in dims)]
        if len(rows) >= 2:
            return np.mean(rows, axis=0), src, len(rows)
    raise CultbenchError(f"no two countries of {DEFAULT_SOURCE} have every dimension of {', '.join(dims)}")


def resolve_country(name: str) -> _Country:
    hits = _index().get(_norm(name), {})
    table = _countries()
    if not hits:
        choices = [c.name for c in table.values()] + [a for c in table.values() for a in c.aliases]
        raise CultbenchError(
            f"unknown country {name!r}; see `cultbench countries` for the list.{did_you_mean(name, choices)}"
        )
    if len(hits) > 1:
        meanings = ", ".join(f"{kind} of {table[code].name}" for code, kind in hits.items())
        raise CultbenchError(f"{name!r} is ambiguous: {meanings}. Use the country name.")
    return table[next(iter(hits))]


def _dimensions(dimensions: Iterable[str] | None) -> list[str]:
    if dimensions is None:
        return list(DIMENSIONS)
    ids = [str(d).strip().lower() for d in dimensions]
    if not ids:
        raise CultbenchError(f"no dimensions given; dimensions are {', '.join(DIMENSIONS)}.")
    for d in ids:
        if d not in DIMENSIONS:
            raise CultbenchError(
                f"unknown dimension {d!r}; dimensions are {', '.join(DIMENSIONS)}.{did_you_mean(d, DIMENSIONS)}"
            )
    return list(dict.fromkeys(ids))


def _missing_message(country, src, scores, missing, needed) -> str:
    head = (f"{country.name} is not in source {src.id}" if scores is None else
            f"{country.name} has no {', '.join(d.upper() for d in missing)} in source {src.id}")
    wanted = "all six" if len(needed) == len(DIMENSIONS) else "all of " + ", ".join(
        d.upper() for d in needed)
    table = _sources().values()
    having = [s.id for s, rows in table
              if country.code in rows and all(d in rows[country.code] for d in needed)]
    restrict = (f" or compare on the dimensions it has: --dimensions {','.join(d for d in needed if d in scores)}"
                if scores and any(d in scores for d in needed) else "")
    if having:
        return f"{head}; sources with {wanted}: {', '.join(having)}. Pass --source{restrict}."
    partial = [f"{s.id} ({', '.join(d.upper() for d in rows[country.code])})"
               for s, rows in table if country.code in rows]
    return (f"{head}; no source has {wanted}; scores exist in {', '.join(partial)}. Pass one of these as "
            f"--source and the dimensions it has as --dimensions" + (f", e.g. --dimensions "
            f"{','.join(d for d in needed if d in scores)}." if restrict else "."))


def lookup(name: str, source: str | None = None, dimensions: Iterable[str] | None = None) -> Profile:
    """The profile of a country, found case-insensitively by name, matrix code, ISO code or alias.

    ``source`` defaults to the 2015 matrix. ``dimensions`` (default: all six) are the ones the
    caller needs: if the source lacks any of them for this country, the error names the missing
    dimensions and the sources that have them all. The returned profile holds every score the
    source has for the country, which may be more than ``dimensions``.

    ``name`` may carry its own source as ``COUNTRY@SOURCE`` (e.g. ``SA@hofstede-insights-2022-estimates``),
    so that one list of targets can mix sources.
    """
    needed = _dimensions(dimensions)
    name, at, own_source = str(name).partition("@")
    if at:
        if source is not None and source != own_source.strip():
            raise CultbenchError(f"target {name}@{own_source} names source {own_source!r} but source "
                                 f"{source!r} is also given")
        source = own_source.strip()
    country = resolve_country(name.strip())
    src, rows = _source(source)
    scores = rows.get(country.code)
    missing = [d for d in needed if scores is None or d not in scores]
    if missing:
        raise CultbenchError(_missing_message(country, src, scores, missing, needed))
    return _profile(country, src, scores)


__all__ = ["DIMENSIONS", "DEFAULT_SOURCE", "Profile", "Source", "countries", "lookup", "sources", "target_key"]
