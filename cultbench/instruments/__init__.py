"""Survey instruments as data, read from YAML files in this folder. Two kinds (``kind:``):

- ``index`` (the default; VSM 2013): Likert items, answer scales and index formulas. An index is
  ``sum(coef * (mean[a] - mean[b])) + C``: one generic engine serves every instrument of the kind.
- ``distribution`` (GlobalOpinionQA): items with their own options and, per country, the shares
  of respondents per option; the YAML names the data's format and the user brings the data
  (``distribution.py``, ``opinions.py``).

A new instrument is a YAML file in this folder, not new code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import numpy as np
import yaml

from cultbench.errors import CultbenchError, did_you_mean
from cultbench.instruments.distribution import DistributionInstrument
from cultbench.instruments.items import Item
from cultbench.instruments.opinions import build as build_distribution
from cultbench.instruments.opinions import heldout_list
from cultbench.evaluation.kinds import kind_of

INSTRUMENTS_DIR = Path(__file__).parent


@dataclass(frozen=True)
class Dimension:
    id: str
    name: str
    terms: tuple[tuple[float, str, str], ...]  # (coefficient, item a, item b)


@dataclass(frozen=True)
class Instrument:
    name: str
    version: int
    title: str
    citation: str
    licence: str
    options: tuple[int, ...]
    items: tuple[Item, ...]
    dimensions: tuple[Dimension, ...]
    default_constant: float
    kind: str = "index"
    variants_file: str | None = None  # prompt variants for this instrument (None: the default file)

    @property
    def item_ids(self) -> list[str]:
        return [it.id for it in self.items]

    @property
    def dimension_ids(self) -> list[str]:
        return [d.id for d in self.dimensions]

    def labels(self, item: Item) -> list[str]:
        """The labels shown for an item's options: the option numbers, "1".."5"."""
        return [str(o) for o in self.options]

    def constants(self, overrides: Mapping[str, float] | None = None) -> dict[str, float]:
        """The constant C of every dimension: the default, replaced where ``overrides`` says."""
        out = {d: float(self.default_constant) for d in self.dimension_ids}
        for key, value in (overrides or {}).items():
            if key.lower() not in out:
                raise CultbenchError(
                    f"unknown dimension {key!r} for constant C of {self.name}; "
                    f"dimensions are {', '.join(out)}.{did_you_mean(key, out)}"
                )
            out[key.lower()] = float(value)
        return out

    def weights(self) -> np.ndarray:
        """Matrix W [n_items, n_dims] with indices = mean_answers @ W + C."""
        pos = {iid: i for i, iid in enumerate(self.item_ids)}
        w = np.zeros((len(self.items), len(self.dimensions)))
        for j, dim in enumerate(self.dimensions):
            for coef, a, b in dim.terms:
                w[pos[a], j] += coef
                w[pos[b], j] -= coef
        return w

    def indices(self, answers, constants: Mapping[str, float] | None = None) -> np.ndarray:
        """Indices [..., n_dims] from mean answers [..., n_items] (NaN where an item is unanswered)."""
        answers = np.asarray(answers, dtype=float)
        if answers.shape[-1] != len(self.items):
            raise CultbenchError(f"{self.name} needs {len(self.items)} answers, got {answers.shape[-1]}")
        c = np.array(list(self.constants(constants).values()))
        w = self.weights()
        out = np.einsum("...i,ij->...j", np.nan_to_num(answers), w) + c
        # An index is undefined when an item it uses has no answer.
        used = w != 0
        missing = np.isnan(answers)[..., :, None] & used
        return np.where(missing.any(axis=-2), np.nan, out)

    def indices_dict(self, answers, constants: Mapping[str, float] | None = None) -> dict[str, float]:
        values = self.indices(answers, constants)
        return {d: float(v) for d, v in zip(self.dimension_ids, values)}


def available_instruments() -> list[str]:
    return sorted(p.stem for p in INSTRUMENTS_DIR.glob("*.yaml"))


def _parse(data: dict, source: str) -> Instrument:
    try:
        scales = {k: tuple(v) for k, v in data.get("scales", {}).items()}
        blocks = data["blocks"]
        items = []
        for raw in data["items"]:
            block = blocks[raw["block"]]
            scale_name = raw.get("scale") or block.get("scale")
            if scale_name not in scales:
                raise CultbenchError(f"{source}: item {raw['id']} has unknown scale {scale_name!r}")
            items.append(Item(id=raw["id"], block=raw["block"], text=raw["text"],
                              lead_in=raw.get("lead_in", block.get("lead_in")),
                              scale=scales[scale_name], reversed=bool(raw.get("reversed", False))))
        ids = {it.id for it in items}
        dims = []
        for raw in data["dimensions"]:
            terms = tuple((float(c), a, b) for c, a, b in raw["terms"])
            for _, a, b in terms:
                for iid in (a, b):
                    if iid not in ids:
                        raise CultbenchError(f"{source}: dimension {raw['id']} uses unknown item {iid}")
            dims.append(Dimension(id=raw["id"], name=raw["name"], terms=terms))
        options = tuple(int(o) for o in data["options"])
        for it in items:
            if len(it.scale) != len(options):
                raise CultbenchError(f"{source}: item {it.id} has {len(it.scale)} scale labels for {len(options)} options")
        return Instrument(name=data["name"], version=int(data["version"]), title=data["title"],
                          citation=data.get("citation", ""), licence=data.get("licence", ""),
                          options=options, items=tuple(items), dimensions=tuple(dims),
                          default_constant=float(data.get("default_constant", 0.0)),
                          variants_file=data.get("variants"))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CultbenchError(f"{source}: malformed instrument file ({type(exc).__name__}: {exc})") from None


KINDS = ("index", "distribution")
FORMATS = ("globalopinionqa",)  # data formats of distribution instruments


def instrument_spec(name_or_path: str) -> tuple[dict, Path]:
    """The YAML of an instrument (by name or path) and its path; its kind defaults to ``index``."""
    path = _find(name_or_path)
    try:
        with open(path, encoding="utf-8") as fh:
            spec = yaml.safe_load(fh)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CultbenchError(f"{path}: malformed instrument file ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(spec, dict):
        raise CultbenchError(f"{path}: malformed instrument file (not a mapping)")
    spec.setdefault("kind", "index")
    if not isinstance(spec["kind"], str) or spec["kind"] not in KINDS:
        raise CultbenchError(f"{path}: unknown instrument kind {spec['kind']!r}; kinds: {', '.join(KINDS)}")
    if spec["kind"] == "distribution" and (not isinstance(spec.get("format"), str) or spec["format"] not in FORMATS):
        raise CultbenchError(f"{path}: unknown data format {spec.get('format')!r}; formats: {', '.join(FORMATS)}")
    if spec["kind"] == "distribution":
        _check_distribution_spec(spec, path)
    return spec, path


def _check_distribution_spec(spec: dict, path: Path) -> None:
    """Refuse a distribution instrument's YAML whose fields are missing or of another kind."""
    kinds = {"name": str, "dataset": str, "version": int, "cleaning": (dict, type(None)),
             "country_names": (dict, type(None)), "split": (dict, type(None))}
    for key, kind in kinds.items():
        value = spec.get(key)
        if (key in ("name", "dataset", "version") and key not in spec) or not isinstance(value, kind) \
                or isinstance(value, bool):
            raise CultbenchError(f"{path}: malformed instrument file ({key} is {value!r})")


@lru_cache(maxsize=None)
def load_instrument(name_or_path: str = "vsm2013", data: str | None = None, *, heldout_items: tuple | None = None,
                    split_seed: int | None = None, heldout_fraction: float | None = None,
                    cleaning: tuple | None = None) -> Instrument | DistributionInstrument:
    """An instrument by its name (a YAML file shipped here) or by the path of a YAML file.

    A distribution instrument reads its data from ``data`` (a file), or from the local Hugging
    Face cache when ``data`` is None; the keywords override its question split and its cleaning
    policy (``cleaning`` as ``(key, value)`` pairs). An index instrument takes none of them.
    """
    spec, path = instrument_spec(name_or_path)
    extra = {"heldout_items": heldout_items, "split_seed": split_seed, "heldout_fraction": heldout_fraction,
             "cleaning": cleaning}
    if spec["kind"] == "distribution":
        return build_distribution(spec, str(path), data, heldout_items=heldout_items, split_seed=split_seed,
                                  heldout_fraction=heldout_fraction, cleaning=dict(cleaning or ()))
    given = [k for k, v in {"data": data, **extra}.items() if v is not None]
    if given:
        raise CultbenchError(f"{spec.get('name', path.stem)} is an index instrument: it takes no "
                             f"{', '.join(given)} (those are for distribution instruments)")
    return _parse(spec, str(path))


def load_instrument_with_data(instrument: str, data=None, heldout_items=None, split_seed=None, cleaning=()):
    """``load_instrument`` with a distribution instrument's data options as a user gives them (the
    CLI's ``--data``, ``--heldout-items FILE``, ``--split-seed``, ``--cleaning KEY=VALUE``)."""
    pairs = []
    for value in cleaning or ():
        key, sep, v = str(value).partition("=")
        if not sep or not key.strip():
            raise CultbenchError(f"--cleaning {value!r}: expected KEY=VALUE, e.g. --cleaning refusal=keep")
        pairs.append((key.strip(), v.strip()))  # numbers are read (and checked) by the cleaning policy
    held = None if heldout_items is None else tuple(heldout_list(heldout_items))
    return load_instrument(instrument, None if data is None else str(data), heldout_items=held,
                           split_seed=split_seed, cleaning=tuple(pairs) or None)


def resolve_target(instrument, name: str, source: str | None = None, dimensions=None):
    """A target of ``instrument``, as its kind has them (``cultbench.evaluation.kinds``): a country profile
    with the instrument's dimensions (index instruments: ``cultbench countries``) or a country's
    answer shares in the instrument's data (distribution instruments)."""
    return kind_of(instrument).reference(instrument, name, source=source, dimensions=dimensions)


def _find(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = INSTRUMENTS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            names = available_instruments()
            raise CultbenchError(f"unknown instrument {name_or_path!r}; available: {', '.join(names)}."
                                 f"{did_you_mean(name_or_path, names)}")
    return path
