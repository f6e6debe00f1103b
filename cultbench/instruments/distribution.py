"""Distribution instruments: items with their own options, and per country the share of
respondents who chose each option (GlobalOpinionQA is one; see ``opinions.py``).

A model's answer to an item is its next-token distribution over the item's option letters
(A, B, C, ...), renormalised. Its distance to a country is the Jensen-Shannon distance per item,
averaged over the items the country was asked; similarity is 1 minus that (Durmus et al. 2023).

To the scorer and the aligners a distribution instrument looks like an index instrument whose
"indices" are the answer shares themselves: one value per (item, option) slot, flattened in item
order (``dimension_ids`` are ``<item>:<option number>``). The instrument supplies the distance
between such a vector and a target's (``distance``), so an aligner minimises it unchanged.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Mapping, Sequence

import numpy as np

from cultbench.errors import CultbenchError, did_you_mean
from cultbench.instruments.items import Item
from cultbench.evaluation.metrics import js_distance, rank_by_similarity, similarity
from cultbench.profiles import resolve_country

LETTERS = string.ascii_uppercase
SPLITS = ("train", "heldout")


def option_letters(n: int) -> list[str]:
    """The labels A, B, C, ... of an item's n options (at most 26)."""
    if not 1 <= n <= len(LETTERS):
        raise CultbenchError(f"an item needs 1 to {len(LETTERS)} options for letter labels, got {n}")
    return list(LETTERS[:n])


@dataclass(frozen=True)
class Country:
    """A country of the reference data: its display name, the data's raw keys that became it,
    and its link to ``cultbench countries`` (None where no profile exists)."""

    name: str
    keys: tuple[str, ...]
    code: str | None = None
    iso2: str | None = None
    iso3: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "keys": list(self.keys), "code": self.code, "iso2": self.iso2, "iso3": self.iso3}


@dataclass(frozen=True)
class OpinionTarget:
    """A country's answer shares as a target: ``vector(dimension_ids)`` gives the shares per
    (item, option) slot, NaN for items the country was not asked."""

    name: str
    code: str | None
    iso2: str | None
    iso3: str | None
    source: str  # the instrument's name
    shares: Mapping[str, tuple[float, ...]] = field(hash=False, repr=False)

    def vector(self, dimension_ids: Sequence[str]) -> np.ndarray:
        out = np.full(len(dimension_ids), np.nan)
        for j, slot in enumerate(dimension_ids):
            item, _, k = str(slot).rpartition(":")
            if item in self.shares:
                out[j] = self.shares[item][int(k) - 1]
        if np.isnan(out).all():
            raise CultbenchError(f"{self.name} answered none of the {len(dimension_ids)} option slots asked for")
        return out

    def to_dict(self) -> dict:
        return {"name": self.name, "code": self.code, "iso2": self.iso2, "iso3": self.iso3,
                "source": self.source, "items": len(self.shares)}


@dataclass(frozen=True)
class DistributionInstrument:
    name: str
    version: int
    title: str
    citation: str
    licence: str
    items: tuple[Item, ...]
    reference: Mapping[str, Mapping[str, tuple[float, ...]]]  # country name -> item id -> shares
    countries: tuple[Country, ...]
    split: Mapping[str, str]  # item id -> "train" / "heldout"
    split_rule: Mapping  # how the split was made (seed, held-out fraction, or the override)
    cleaning: Mapping  # the policies applied and what each changed (counts)
    data: Mapping  # where the data came from
    variants_file: str | None = None  # prompt variants for this instrument (None: the default file)
    caveat: str = ""
    kind: str = "distribution"

    # -- items and option slots -----------------------------------------------------------------

    @property
    def item_ids(self) -> list[str]:
        return [it.id for it in self.items]

    @property
    def option_counts(self) -> list[int]:
        return [len(it.scale) for it in self.items]

    def labels(self, item: Item) -> list[str]:
        return option_letters(len(item.scale))

    @cached_property
    def dimension_ids(self) -> list[str]:
        """One slot per (item, option): ``<item id>:<option number>``, in item order."""
        return [f"{it.id}:{k + 1}" for it in self.items for k in range(len(it.scale))]

    @cached_property
    def offsets(self) -> np.ndarray:
        """Start of each item's slots in a flattened vector; the last entry is the total."""
        return np.concatenate([[0], np.cumsum(self.option_counts)]).astype(int)

    def constants(self, overrides: Mapping[str, float] | None = None) -> dict[str, float]:
        if overrides:
            raise CultbenchError(f"{self.name} is a distribution instrument: it has no constants C")
        return {}

    def flatten(self, probs) -> np.ndarray:
        """[..., I, K_max] distributions (zero-padded) -> [..., slots]."""
        probs = np.asarray(probs, dtype=np.float64)
        return np.concatenate([probs[..., i, :k] for i, k in enumerate(self.option_counts)], axis=-1)

    def unflatten(self, shares) -> list[np.ndarray]:
        """[..., slots] -> one [..., K_i] array per item."""
        shares = np.asarray(shares, dtype=np.float64)
        return [shares[..., a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:])]

    @cached_property
    def _groups(self) -> list[np.ndarray]:
        """Slot indices [n_items_with_k, k] of the items with k options, one array per k."""
        by_k: dict[int, list[np.ndarray]] = {}
        for a, k in zip(self.offsets[:-1], self.option_counts):
            by_k.setdefault(k, []).append(np.arange(a, a + k))
        return [np.stack(v) for _, v in sorted(by_k.items())]

    def item_distances(self, shares, target) -> np.ndarray:
        """Jensen-Shannon distance per item [..., I] between answer shares [..., slots] and a
        target's [slots]; NaN where the target has no shares for the item."""
        shares, target = np.asarray(shares, dtype=np.float64), np.asarray(target, dtype=np.float64)
        out = np.empty(shares.shape[:-1] + (len(self.items),))
        order = np.concatenate([g[:, 0] for g in self._groups])
        item_of_start = {int(a): i for i, a in enumerate(self.offsets[:-1])}
        parts = [js_distance(shares[..., g], target[g]) for g in self._groups]
        out[..., [item_of_start[int(a)] for a in order]] = np.concatenate(parts, axis=-1)
        return out

    def distance_tensor(self, shares: "torch.Tensor", target) -> "torch.Tensor":
        """:meth:`distance` in torch, differentiable in ``shares`` [..., slots] (for gradient
        aligners): the base-2 Jensen-Shannon distance per item, averaged over the items the target
        was asked. Both sides are normalised per item, as scipy does."""
        import torch  # here: listing and reading instruments must not load torch (`cultbench --help` stays fast)

        target = torch.as_tensor(np.asarray(target, dtype=np.float64), dtype=shares.dtype, device=shares.device)
        total = shares.new_zeros(shares.shape[:-1])
        count = 0
        for group in self._groups:
            asked = ~torch.isnan(target[torch.as_tensor(group[:, 0])])
            if not asked.any():
                continue
            idx = torch.as_tensor(group[asked.cpu().numpy()], device=shares.device)
            p, q = shares[..., idx], target[idx]
            p, q = p / p.sum(-1, keepdim=True), q / q.sum(-1, keepdim=True)
            m = (p + q) / 2
            js = (torch.special.xlogy(p, p) - torch.special.xlogy(p, m)
                  + torch.special.xlogy(q, q) - torch.special.xlogy(q, m)).sum(-1) / (2 * np.log(2))
            total = total + js.clamp_min(1e-30).sqrt().sum(-1)  # the clamp keeps the gradient of sqrt finite at 0
            count += int(asked.sum())
        return total / count if count else torch.full_like(total, float("nan"))

    def distance(self, shares, target) -> np.ndarray:
        """Mean Jensen-Shannon distance over the items the target was asked, [...]."""
        d = self.item_distances(shares, target)
        with np.errstate(invalid="ignore"):
            return np.nanmean(d, axis=-1) if d.shape[-1] else np.full(d.shape[:-1], np.nan)

    # -- countries --------------------------------------------------------------------------------

    def country(self, name: str) -> Country:
        """A country of the data by its name, a raw key, or anything ``cultbench countries`` knows
        (ISO code, alias) for a linked country."""
        key = _fold(name)
        for c in self.countries:
            if key == _fold(c.name) or key in (_fold(k) for k in c.keys):
                return c
        from_profiles = _profile_code(name)
        for c in self.countries:
            if from_profiles is not None and c.code == from_profiles:
                return c
        names = [c.name for c in self.countries]
        raise CultbenchError(f"{name!r} is not a country of {self.name} ({len(names)} countries, e.g. "
                             f"{', '.join(names[:5])}; `cultbench instruments {self.name} --data FILE --countries` lists them)."
                             f"{did_you_mean(name, names)}")

    def target(self, name: str) -> OpinionTarget:
        c = self.country(name)
        return OpinionTarget(name=c.name, code=c.code, iso2=c.iso2, iso3=c.iso3, source=self.name,
                             shares=self.reference[c.name])

    def similarities(self, shares) -> dict[str, float]:
        """1 - mean JSD of one answer-share vector [slots] to every country."""
        return {c.name: similarity(self.item_distances(shares, self.target(c.name).vector(self.dimension_ids)))
                for c in self.countries}

    def ranking(self, shares) -> list[tuple[str, float]]:
        """Countries from the most to the least similar to the answer shares [slots]."""
        return rank_by_similarity(self.similarities(shares))

    # -- splits -----------------------------------------------------------------------------------

    def split_ids(self, split: str) -> list[str]:
        if split not in SPLITS:
            raise CultbenchError(f"unknown question split {split!r}; splits: {', '.join(SPLITS)}")
        return [i for i in self.item_ids if self.split[i] == split]

    def subset(self, split: str) -> "DistributionInstrument":
        """The instrument restricted to one question split (what aligners fit on: ``train``)."""
        keep = set(self.split_ids(split))
        if not keep:
            raise CultbenchError(f"{self.name} has no {split} questions")
        reference = {c: {i: s for i, s in shares.items() if i in keep} for c, shares in self.reference.items()}
        return replace(self, items=tuple(it for it in self.items if it.id in keep), reference=reference,
                       split={i: s for i, s in self.split.items() if i in keep})

    def describe(self) -> dict:
        """The instrument's record in results: identity, data, split rule and cleaning counts."""
        return {"name": self.name, "version": self.version, "kind": self.kind, "items": len(self.items),
                "countries": len(self.countries), "data": dict(self.data), "split": dict(self.split_rule),
                "questions": {s: len(self.split_ids(s)) for s in SPLITS}, "cleaning": dict(self.cleaning)}


def _fold(text: str) -> str:
    return " ".join(str(text).replace(".", "").casefold().split())


def _profile_code(name: str) -> str | None:
    try:
        return resolve_country(name).code
    except CultbenchError:
        return None
