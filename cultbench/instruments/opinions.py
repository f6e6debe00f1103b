"""Opinion surveys in the GlobalOpinionQA format, read into a distribution instrument.

The data (Durmus et al. 2023, ``Anthropic/llm_global_opinions``, CC-BY-NC-SA-4.0) is not shipped:
it comes from the local Hugging Face cache (never downloaded here) or from a CSV, Parquet or JSONL
file with the same columns: ``question``, ``selections`` (the repr of a
``defaultdict(<class 'list'>, {country: [share per option]})``), ``options`` (the repr of a list
of option texts) and, optionally, ``source``. Both reprs are parsed with ``ast.literal_eval`` on
their ``{...}`` / ``[...]`` part, never ``eval``.

Cleaning follows a stated policy (``CleaningPolicy``, defaults in the instrument's YAML), and every
change is counted in ``instrument.cleaning``; nothing is dropped silently:

- ``mismatched``: a country's shares whose count differs from the option count: ``drop`` the
  country's entry (default) or ``error``;
- ``off_sum``: shares whose sum is further than ``sum_tolerance`` from 1: ``drop`` the entry
  (default), ``renormalise`` it, or ``keep`` it as it is. Within the tolerance shares are
  renormalised;
- ``refusal``: options matching ``refusal_pattern`` (such as "DK/Refused"): ``drop`` the option
  and renormalise the other shares (default) or ``keep`` it;
- ``duplicate_question``: rows whose question (whitespace collapsed) repeats an earlier row's:
  ``keep_first`` reads the first row and drops the later ones (default), ``drop_all`` drops every
  row of a repeated question, ``error`` refuses the data;
- items left with fewer than ``min_options`` options, or with no country, are dropped; so are rows
  whose question is missing (null, NaN) or not text, and country entries whose shares are not a
  list of numbers (a string such as ``'01'`` is not read character by character).

Country keys are normalised: sample suffixes such as "(Current national sample)" are removed,
names are mapped by the YAML's ``country_names`` table ("S. Korea" -> "South Korea"), and a
country is linked to ``cultbench countries`` where a profile exists. Keys that become one
country are merged; when one question has two samples of a country, a national sample is kept
over a non-national one (counted).

Item ids are ``q`` + the row's position in the data (``q0000`` for the first row), so they do not
move when the cleaning policy changes. The question split is a rule, not a random draw over the
rows that survived: a question is held out when ``sha256("<seed>:<question text>")``, read as a
fraction in [0, 1), is below ``heldout_fraction``. ``heldout_items`` overrides it with a list of
item ids.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Mapping, Sequence

from cultbench.errors import CultbenchError
from cultbench.instruments.distribution import Country, DistributionInstrument
from cultbench.instruments.items import Item
from cultbench.profiles import resolve_country

COLUMNS = ("question", "selections", "options")
SAMPLE_SUFFIX = re.compile(r"\s*[(\[]?\s*(current national sample|non-national sample|national sample)\s*[)\]]?\s*$",
                           re.IGNORECASE)
DEFAULT_REFUSAL = r"^\s*(dk|don'?t know|refused|no answer|dk/refused|don'?t know/refused)\s*$|\bDK/Ref"


@dataclass(frozen=True)
class CleaningPolicy:
    """How rows of the data that do not fit are handled; see the module docstring."""

    mismatched: str = "drop"  # drop | error
    off_sum: str = "drop"  # drop | renormalise | keep
    sum_tolerance: float = 0.05
    refusal: str = "drop"  # drop | keep
    refusal_pattern: str = DEFAULT_REFUSAL
    min_options: int = 2
    duplicate_question: str = "keep_first"  # keep_first | drop_all | error

    def __post_init__(self):
        choices = {"mismatched": ("drop", "error"), "off_sum": ("drop", "renormalise", "keep"),
                   "refusal": ("drop", "keep"), "duplicate_question": ("keep_first", "drop_all", "error")}
        for name, allowed in choices.items():
            if not isinstance(getattr(self, name), str) or getattr(self, name) not in allowed:
                raise CultbenchError(f"cleaning policy {name}={getattr(self, name)!r}; choose {', '.join(allowed)}")
        object.__setattr__(self, "sum_tolerance", _policy_number("sum_tolerance", self.sum_tolerance, float))
        object.__setattr__(self, "min_options", _policy_number("min_options", self.min_options, int))
        if not isinstance(self.refusal_pattern, str):
            raise CultbenchError(f"cleaning policy refusal_pattern={self.refusal_pattern!r} must be text")
        if not 0 <= self.sum_tolerance < 1 or self.min_options < 1:
            raise CultbenchError("cleaning policy: sum_tolerance must be in [0, 1) and min_options at least 1")
        try:
            re.compile(self.refusal_pattern)
        except re.error as exc:
            raise CultbenchError(f"cleaning policy: bad refusal_pattern ({exc})") from None

    @classmethod
    def from_dict(cls, data: Mapping | None) -> "CleaningPolicy":
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CultbenchError(f"unknown cleaning policy key(s) {', '.join(unknown)}; keys: {', '.join(sorted(known))}")
        return cls(**data)


def _policy_number(name: str, value, kind: type):
    """A numeric policy value (from the YAML, or text from ``--cleaning KEY=VALUE``) as ``kind``."""
    try:
        number = float(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not math.isfinite(number) or (kind is int and not number.is_integer()):
        raise CultbenchError(f"cleaning policy {name}={value!r} is not a{' whole' if kind is int else ''} number")
    return kind(number)


# -- reading ----------------------------------------------------------------------------------------


def read_rows(data: str | Path | None, dataset: str) -> tuple[list[dict], dict]:
    """Rows (dicts with the data's columns) and a record of where they came from.

    ``data`` None (or the hub dataset's name) reads the local Hugging Face cache of ``dataset``;
    otherwise a CSV, Parquet or JSONL file. The record's ``sha256`` identifies the data: of the
    file, or of the cache's rows as sorted-key JSON.
    """
    if data is None or str(data) == dataset:
        rows = _read_hub(dataset)
        digest = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode("utf-8")).hexdigest()
        return rows, {"dataset": dataset, "sha256": digest, "from": "huggingface-cache"}
    path = Path(data)
    if not path.is_file():
        raise CultbenchError(f"data file {str(path)!r} does not exist (a CSV, Parquet or JSONL file with "
                             f"columns {', '.join(COLUMNS)}; or leave --data out to use the Hugging Face "
                             f"cache of {dataset})")
    import pandas as pd

    suffix = "".join(path.suffixes[-2:]).lower()
    try:
        if suffix.endswith(".csv"):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif suffix.endswith(".parquet"):
            frame = pd.read_parquet(path)
        elif suffix.endswith((".jsonl", ".json")):
            frame = pd.read_json(path, lines=suffix.endswith(".jsonl"), dtype=False)
        else:
            raise CultbenchError(f"{path}: unknown data format {path.suffix!r}; use .csv, .parquet or .jsonl")
    except (ValueError, OSError) as exc:
        raise CultbenchError(f"{path}: cannot read ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise CultbenchError(f"{path}: missing column(s) {', '.join(missing)}; the data needs "
                             f"{', '.join(COLUMNS)} (and optionally source)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return frame.to_dict(orient="records"), {"path": str(path), "sha256": digest, "from": "file"}


def _read_hub(dataset: str) -> list[dict]:
    """The dataset from the local Hugging Face cache, with the hub switched off: never downloads."""
    import datasets
    import huggingface_hub.constants as hub_constants

    saved = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        loaded = datasets.load_dataset(dataset, split="train", download_mode="reuse_cache_if_exists")
    except Exception as exc:  # datasets raises many types for "not in the cache"
        raise CultbenchError(
            f"{dataset} is not in the local Hugging Face cache ({type(exc).__name__}); cultbench never "
            f"downloads it. Bring the data yourself (see docs/instruments.md) and pass --data FILE, or "
            f"fill the cache with datasets.load_dataset({dataset!r}) where downloads are allowed") from None
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved
    return [dict(r) for r in loaded]


def parse_literal(value, opening: str, closing: str):
    """A Python literal from a repr such as ``defaultdict(<class 'list'>, {...})``: the part from
    the first ``opening`` to the last ``closing``, through ``ast.literal_eval`` (never eval).
    Values that are already lists or dicts (Parquet, JSONL) pass through."""
    if isinstance(value, (list, dict, tuple)):
        return value
    if hasattr(value, "tolist"):  # numpy arrays from Parquet
        return value.tolist()
    text = str(value)
    start, end = text.find(opening), text.rfind(closing)
    if start < 0 or end < start:
        raise ValueError(f"no {opening}...{closing} in {text[:60]!r}")
    return ast.literal_eval(text[start:end + 1])


# -- countries --------------------------------------------------------------------------------------


def clean_country(key: str, names: Mapping[str, str]) -> tuple[str, bool]:
    """(country name, whether the key is a national sample) from a raw key of the data."""
    text = " ".join(str(key).split())
    national = "non-national" not in text.casefold()
    text = SAMPLE_SUFFIX.sub("", text).strip(" -,")
    folded = {k.casefold(): v for k, v in names.items()}
    return folded.get(text.casefold(), text), national


def _link(name: str) -> tuple[str | None, str | None, str | None]:
    try:
        c = resolve_country(name)
    except CultbenchError:
        return None, None, None
    return c.code, c.iso2, c.iso3


# -- building ---------------------------------------------------------------------------------------


def heldout_by_rule(question: str, seed: int, fraction: float) -> bool:
    digest = hashlib.sha256(f"{seed}:{question}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def build(spec: Mapping, source: str, data=None, *, cleaning: Mapping | None = None, split_seed: int | None = None,
          heldout_fraction: float | None = None, heldout_items: Sequence[str] | None = None) -> DistributionInstrument:
    """The distribution instrument described by ``spec`` (its YAML) with the data at ``data``."""
    policy = CleaningPolicy.from_dict({**(spec.get("cleaning") or {}), **(cleaning or {})})
    rows, origin = read_rows(data, spec["dataset"])
    counts: Counter = Counter()
    names = dict(spec.get("country_names") or {})
    refusal = re.compile(policy.refusal_pattern, re.IGNORECASE)
    items, per_item, keys_seen = [], {}, {}
    repeated = duplicate_rows(rows, policy, counts)
    for position, row in enumerate(rows):
        counts["rows_read"] += 1
        if position in repeated:
            continue
        entry = _clean_row(position, row, policy, refusal, names, counts, keys_seen)
        if entry is not None:
            item, shares = entry
            items.append(item)
            per_item[item.id] = shares
    if not items:
        raise CultbenchError(f"no usable questions in the data ({dict(counts)})")
    counts["items"] = len(items)

    # Countries: keys that clean to names linked to one profile (or to one name) become one country.
    groups: dict[str, list[str]] = {}
    for name in sorted(keys_seen):
        code = _link(name)[0]
        groups.setdefault(code or f"name:{name.casefold()}", []).append(name)
    countries, rename = [], {}
    for names_in in groups.values():
        usage = Counter({n: sum(1 for shares in per_item.values() if n in shares) for n in names_in})
        display = sorted(names_in, key=lambda n: (-usage[n], n))[0]
        code, iso2, iso3 = _link(display)
        raw = tuple(sorted(k for n in names_in for k in keys_seen[n]))
        countries.append(Country(name=display, keys=raw, code=code, iso2=iso2, iso3=iso3))
        rename.update({n: display for n in names_in})
    countries.sort(key=lambda c: c.name)
    reference: dict[str, dict[str, tuple[float, ...]]] = {c.name: {} for c in countries}
    for item_id, shares in per_item.items():
        for name, values in shares.items():
            if item_id in reference[rename[name]]:
                counts["duplicate_country_entries_dropped"] += 1
                continue
            reference[rename[name]][item_id] = values
    counts["countries"] = len(countries)
    counts["countries_linked_to_profiles"] = sum(c.code is not None for c in countries)

    rule = dict(spec.get("split") or {})
    seed = int(rule.get("seed", 0) if split_seed is None else split_seed)
    fraction = float(rule.get("heldout_fraction", 0.25) if heldout_fraction is None else heldout_fraction)
    if not 0 <= fraction <= 1:
        raise CultbenchError(f"held-out fraction must be in [0, 1], got {fraction}")
    if heldout_items is not None:
        held = {str(i).strip() for i in heldout_items if str(i).strip()}
        unknown = sorted(held - set(per_item))
        if unknown:
            raise CultbenchError(f"held-out item(s) not among the questions: {', '.join(unknown[:5])}")
        split = {it.id: "heldout" if it.id in held else "train" for it in items}
        split_rule = {"rule": "list", "heldout_items": sorted(held)}
    else:
        split = {it.id: "heldout" if heldout_by_rule(it.text, seed, fraction) else "train" for it in items}
        split_rule = {"rule": "sha256(seed:question) < heldout_fraction", "seed": seed, "heldout_fraction": fraction}

    return DistributionInstrument(
        name=spec["name"], version=int(spec["version"]), title=spec.get("title", ""),
        citation=spec.get("citation", ""), licence=spec.get("licence", ""), items=tuple(items),
        reference=reference, countries=tuple(countries), split=split, split_rule=split_rule,
        cleaning={"policy": asdict(policy), "counts": dict(sorted(counts.items()))}, data=origin,
        variants_file=spec.get("variants"), caveat=" ".join(str(spec.get("caveat", "")).split()))


def duplicate_rows(rows: Sequence[Mapping], policy: CleaningPolicy, counts: Counter) -> set[int]:
    """Positions of the rows that the ``duplicate_question`` policy drops (counted): every row of
    a repeated question but the first (``keep_first``) or all of them (``drop_all``); ``error``
    refuses the data."""
    where: dict[str, list[int]] = {}
    for position, row in enumerate(rows):
        if question := question_text(row):
            where.setdefault(question, []).append(position)
    dropped: set[int] = set()
    for question, positions in where.items():
        if len(positions) < 2:
            continue
        if policy.duplicate_question == "error":
            raise CultbenchError(f"rows {positions[0]} and {positions[1]} ask the same question {question[:50]!r} "
                                 "(cleaning policy duplicate_question=error)")
        dropped.update(positions if policy.duplicate_question == "drop_all" else positions[1:])
    if dropped:
        counts["rows_dropped_duplicate_question"] += len(dropped)
    return dropped


def question_text(row: Mapping) -> str:
    """A row's question with its whitespace collapsed ('' when it is missing or not text)."""
    raw = row.get("question")
    return " ".join(raw.split()) if isinstance(raw, str) else ""


def _clean_row(position: int, row: Mapping, policy: CleaningPolicy, refusal, names, counts: Counter,
               keys_seen: dict) -> tuple[Item, dict] | None:
    """One question and its countries' cleaned shares, or None when the row is dropped (counted)."""
    raw = row.get("question")
    if raw is None or isinstance(raw, float) and math.isnan(raw):
        counts["rows_dropped_no_question"] += 1
        return None
    if not isinstance(raw, str):
        counts["rows_dropped_question_not_text"] += 1
        return None
    question = question_text(row)
    try:
        options = list(parse_literal(row["options"], "[", "]"))
        selections = dict(parse_literal(row["selections"], "{", "}"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        counts["rows_dropped_unparseable"] += 1
        return None
    if not question or not options:
        counts["rows_dropped_empty"] += 1
        return None
    if any(not isinstance(o, str) for o in options):
        counts["rows_with_non_text_options"] += 1
    texts = [_option_text(o) for o in options]
    dropped = [k for k, t in enumerate(texts) if policy.refusal == "drop" and refusal.search(t)]
    kept = [k for k in range(len(texts)) if k not in dropped]
    if dropped:
        counts["refusal_options_dropped"] += len(dropped)
    if len(kept) < policy.min_options:
        counts["rows_dropped_too_few_options"] += 1
        return None
    shares: dict[str, tuple[float, ...]] = {}
    national: dict[str, bool] = {}
    for key, values in selections.items():
        counts["entries_read"] += 1
        if hasattr(values, "tolist"):  # numpy arrays from Parquet
            values = values.tolist()
        if not isinstance(values, (list, tuple)):  # e.g. '01', which would read as [0, 1]
            counts["entries_dropped_shares_not_a_list"] += 1
            continue
        try:
            if any(isinstance(v, bool) for v in values):
                raise TypeError("a share is true or false")
            values = [float(v) for v in values]
        except (TypeError, ValueError):
            counts["entries_dropped_unparseable"] += 1
            continue
        if len(values) != len(texts):
            if policy.mismatched == "error":
                raise CultbenchError(f"row {position} ({question[:50]!r}): {key!r} has {len(values)} shares "
                                     f"for {len(texts)} options (cleaning policy mismatched=error)")
            counts["entries_dropped_mismatched"] += 1
            continue
        if any(not math.isfinite(v) or v < 0 for v in values):
            counts["entries_dropped_unparseable"] += 1
            continue
        total = sum(values)
        if abs(total - 1) > policy.sum_tolerance:
            if policy.off_sum == "drop":
                counts["entries_dropped_off_sum"] += 1
                continue
            counts[f"entries_off_sum_{'renormalised' if policy.off_sum == 'renormalise' else 'kept'}"] += 1
        rest = [values[k] for k in kept]
        mass = sum(rest)
        if mass <= 0:
            counts["entries_dropped_no_mass"] += 1
            continue
        if policy.off_sum != "keep" or abs(total - 1) <= policy.sum_tolerance:
            if abs(mass - 1) > 1e-12:
                counts["entries_renormalised"] += 1
            rest = [v / mass for v in rest]
        name, is_national = clean_country(key, names)
        keys_seen.setdefault(name, set()).add(str(key))
        if name != str(key):
            counts["country_keys_renamed"] += 1
        if name in shares:
            counts["duplicate_country_entries_dropped"] += 1
            if national[name] or not is_national:
                continue
        shares[name], national[name] = tuple(rest), is_national
    if not shares:
        counts["rows_dropped_no_countries"] += 1
        return None
    source = str(row.get("source") or "")
    item = Item(id=f"q{position:04d}", block=source, text=question, lead_in=None,
                scale=tuple(texts[k] for k in kept))
    return item, shares


def _option_text(option) -> str:
    if isinstance(option, float) and option.is_integer():
        option = int(option)
    return " ".join(str(option).split())


def heldout_list(path: str | Path) -> list[str]:
    """Item ids, one a line (``#`` starts a comment), from a file that overrides the split."""
    path = Path(path)
    if not path.is_file():
        raise CultbenchError(f"held-out items file {str(path)!r} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise CultbenchError(f"held-out items file {str(path)!r} is not UTF-8 text ({exc.reason} at byte "
                             f"{exc.start})") from None
    except OSError as exc:
        raise CultbenchError(f"held-out items file {str(path)!r}: cannot read ({exc.strerror or exc})") from None
    return [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]
