"""One survey item, shared by both kinds of instrument (index and distribution)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    id: str
    block: str  # index instruments: the item's block; distribution instruments: the survey it comes from
    text: str
    lead_in: str | None
    scale: tuple[str, ...]  # label of answer 1 .. answer k (distribution instruments: the option texts)
    reversed: bool = False  # scale runs the other way round relative to its block's neighbours
