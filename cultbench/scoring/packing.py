"""Prefix sharing by packing: the prompts of one candidate become a few rows with tree attention.

The 24 prompts of an instrument share long prefixes (chat header, system prompt, a block's
lead-in and answer scale). They are merged into a prefix tree. The tree's inner nodes form the
trunk: each subtree below the root is laid out as one segment (the root's tokens, then the
subtree's inner nodes depth first), and segments are packed into rows. A 4-D attention mask lets
each token see exactly its own prompt's earlier tokens, and position ids restart along each
prompt's path. The childless nodes (an item's own question and the closing lines) become
suffixes: a second forward computes them, a trunk row's suffixes end to end in one or a few
suffix rows (``suffix_rows``: a block-diagonal mask, each at most about twice the trunk row's
width), attending to their trunk row's cached keys and values through the parent token's view.
So every prompt's last position computes the same value as a forward over that prompt alone
(exact up to float rounding), each shared token is computed once, the trunk's keys and values
are read once per suffix row (not once per suffix), and no attention is dense over a whole block
of items: attention cost grows with the square of the row length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

SOFT = -1  # placeholder id of a soft-prompt position in a token sequence


@dataclass
class _Node:
    tokens: list[int]
    leaves: list = field(default_factory=list)  # keys of the prompts that end here
    children: list["_Node"] = field(default_factory=list)


def prefix_tree(prompts: dict) -> _Node:
    """Radix tree of token sequences {key: tuple of ids}; the root holds their common prefix."""

    def grow(keys: list, start: int) -> list[_Node]:
        groups: dict = {}
        for key in keys:
            groups.setdefault(prompts[key][start], []).append(key)
        nodes = []
        for group in groups.values():
            seqs = [prompts[k] for k in group]
            end, stop = min(len(s) for s in seqs), start + 1
            while stop < end and all(s[stop] == seqs[0][stop] for s in seqs):
                stop += 1
            node = _Node(tokens=list(seqs[0][start:stop]))
            node.leaves = [k for k in group if len(prompts[k]) == stop]
            rest = [k for k in group if len(prompts[k]) > stop]
            node.children = grow(rest, stop) if rest else []
            nodes.append(node)
        return nodes

    if any(len(s) == 0 for s in prompts.values()):
        raise ValueError("empty prompt")
    top = grow(list(prompts), 0)
    if len(top) == 1:
        return top[0]
    return _Node(tokens=[], children=top)  # no common prefix at all


@dataclass
class Suffix:
    """A childless node of the tree (typically an item's own text), computed in a second forward
    that reads the keys and values of its trunk row instead of sitting in that row."""

    row: int  # index of the trunk row it continues
    parent: int  # position in that row of the token it follows
    ids: list[int]
    start: int  # position id of its first token
    leaves: list  # keys of the prompts that end at its last token


@dataclass
class Segment:
    ids: list[int]  # token ids, SOFT at soft-prompt positions
    positions: list[int]
    parents: list[int]  # per token: index of the last token of its parent span, -1 at the start
    leaves: dict  # prompt key -> index of its last token
    suffixes: list[Suffix] = field(default_factory=list)  # ``row`` unset, ``parent`` in the segment


def _segments(root: _Node) -> list[Segment]:
    def lay_out(node: _Node, seg: Segment, parent_end: int, depth: int, trunk: bool = False) -> None:
        if not (trunk or node.children) and parent_end >= 0 and SOFT not in node.tokens:
            seg.suffixes.append(Suffix(row=-1, parent=parent_end, ids=list(node.tokens), start=depth,
                                       leaves=list(node.leaves)))
            return
        start = len(seg.ids)
        for k, tok in enumerate(node.tokens):
            seg.ids.append(tok)
            seg.positions.append(depth + k)
            seg.parents.append(parent_end if k == 0 else start + k - 1)
        end = len(seg.ids) - 1
        for leaf in node.leaves:
            seg.leaves[leaf] = end
        for child in node.children:
            lay_out(child, seg, end, depth + len(node.tokens))

    subtrees = root.children or [None]
    segments = []
    for child in subtrees:
        seg = Segment(ids=[], positions=[], parents=[], leaves={})
        lay_out(_Node(tokens=root.tokens, leaves=root.leaves if child is subtrees[0] else []), seg, -1, 0,
                trunk=True)
        if child is not None:
            lay_out(child, seg, len(root.tokens) - 1, len(root.tokens))
        if segments and len(seg.ids) == len(root.tokens):  # only the root: its suffixes join the first copy
            segments[0].suffixes += seg.suffixes
        else:
            segments.append(seg)
    return segments


@dataclass
class PackedRow:
    ids: torch.Tensor  # [W] token ids, SOFT at soft-prompt slots, 0 at padding
    positions: torch.Tensor  # [W]
    mask: torch.Tensor  # [W, W] bool: query i may attend to key j
    leaves: dict  # prompt key -> position in the row

    @property
    def width(self) -> int:
        return int(self.ids.shape[0])


@dataclass
class Layout:
    """Trunk rows (first forward) and the suffixes that continue them (second forward)."""

    rows: list[PackedRow]
    suffixes: list[Suffix]

    @property
    def tokens(self) -> int:
        return sum(r.width for r in self.rows) + sum(len(s.ids) for s in self.suffixes)


def _row(segments: list[Segment]) -> tuple[PackedRow, list[Suffix]]:
    width = sum(len(s.ids) for s in segments)
    ids = torch.zeros(width, dtype=torch.long)
    positions = torch.zeros(width, dtype=torch.long)
    mask = torch.zeros(width, width, dtype=torch.bool)
    leaves, suffixes, offset = {}, [], 0
    for seg in segments:
        n = len(seg.ids)
        ids[offset:offset + n] = torch.tensor(seg.ids)
        positions[offset:offset + n] = torch.tensor(seg.positions)
        for i, parent in enumerate(seg.parents):  # a token sees itself and its parent's view
            mask[offset + i, offset + i] = True
            if parent >= 0:
                mask[offset + i] |= mask[offset + parent]
        leaves.update({k: offset + v for k, v in seg.leaves.items()})
        suffixes += [Suffix(row=-1, parent=offset + s.parent, ids=s.ids, start=s.start, leaves=s.leaves)
                     for s in seg.suffixes]
        offset += n
    return PackedRow(ids=ids, positions=positions, mask=mask, leaves=leaves), suffixes


def pack(prompts: dict) -> Layout:
    """Lay out token sequences {key: ids} for two forwards. The tree's inner nodes are packed
    into trunk rows, first-fit decreasing, no row longer than the longest segment (so packing
    adds rows, never attention width); its childless nodes become suffixes that attend to their
    trunk row through its keys and values. Attention is then dense only over the short trunk
    rows and each suffix, not over every item of a block at once."""
    segments = sorted(_segments(prefix_tree(prompts)), key=lambda s: -len(s.ids))
    limit = len(segments[0].ids)
    bins: list[list[Segment]] = []
    for seg in segments:
        for b in bins:
            if sum(len(s.ids) for s in b) + len(seg.ids) <= limit:
                b.append(seg)
                break
        else:
            bins.append([seg])
    rows, suffixes = [], []
    for r, b in enumerate(bins):
        row, own = _row(b)
        rows.append(row)
        for s in own:
            s.row = r
        suffixes += own
    return Layout(rows=rows, suffixes=suffixes)


@dataclass
class SuffixRow:
    """Suffixes of one trunk row laid end to end in one row of the second forward: each token
    sees its own suffix's parent view of the trunk row and its own suffix's earlier tokens (a
    block-diagonal causal mask), so each suffix computes what it would in a row of its own, and
    the trunk row's keys and values are read once per row instead of once per suffix."""

    suffixes: list[tuple[int, Suffix]]  # (offset in the row, suffix)

    @property
    def width(self) -> int:
        offset, last = self.suffixes[-1]
        return offset + len(last.ids)


def suffix_rows(suffixes: list[Suffix], limit: int) -> list[SuffixRow]:
    """``suffixes`` (of one trunk row) packed into as few rows as ``limit`` tokens a row allows
    (at least one row per suffix longer than ``limit``), of near-equal widths: longest first, each
    into the row that is shortest so far. Attention in a row is dense over its width, so ``limit``
    bounds that cost; near-equal widths let the rows share a forward with little padding."""
    if not suffixes:
        return []
    by_length = sorted(suffixes, key=lambda s: -len(s.ids))
    total, longest = sum(len(s.ids) for s in suffixes), len(by_length[0].ids)
    bins: list[list[Suffix]] = [[] for _ in range(-(-total // max(limit, longest)))]
    for s in by_length:
        min(bins, key=lambda b: sum(len(x.ids) for x in b)).append(s)
    rows = []
    for b in bins:
        offsets = [sum(len(x.ids) for x in b[:k]) for k in range(len(b))]
        rows.append(SuffixRow(suffixes=list(zip(offsets, b))))
    return rows


def stack_rows(rows: list[PackedRow]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids [R, W], positions [R, W], mask [R, 1, W, W]) right-padded to the widest row.
    Padding attends to itself only, so no attention row is empty (an empty one gives NaN)."""
    width = max(r.width for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    positions = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.eye(width, dtype=torch.bool).repeat(len(rows), 1, 1)
    for i, r in enumerate(rows):
        ids[i, :r.width] = r.ids
        positions[i, :r.width] = r.positions
        mask[i, :r.width, :r.width] = r.mask
    return ids, positions, mask[:, None]
