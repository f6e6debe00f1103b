"""Evaluate one candidate (a soft prompt and/or a persona, or nothing) on train and held-out
prompt variants against target profiles: the step between an alignment and a result record."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from cultbench.diagnostics import diagnose
from cultbench.errors import CultbenchError, did_you_mean
from cultbench.metrics import (aligned_verdict, content_free_l1, directedness, distance, mirror, order_balance,
                               order_balanced, relative_l1, signed_error)
from cultbench.profiles import Profile, world_mean
from cultbench.prompts import ORDERS, get_variants, variants_version
from cultbench.scorer import SurveyScorer

SPLIT_NAMES = ("train", "validation", "heldout")


def versus_target(target: Profile, per_variant, variants: Sequence, dims: Sequence[str],
                  constants: Mapping[str, float] | None = None) -> dict:
    """One split's comparison with one target, from the indices per rendering [V, D] of
    ``variants`` (the renderings, ``PromptVariant``s, in the same order).

    ``l1`` is the mean over the split's wordings of the L1 distance of each wording's
    order-balanced indices (the mean of its in-order and reversed renderings), as the aligners'
    fitness is; ``l1_per_wording`` holds each. Per rendering (secondary figures, each labelled by
    its scale order): ``l1_per_variant`` and ``l1_by_order`` (the mean over the in-order and over
    the reversed renderings). ``signed_error`` is model minus target on the split's mean balanced
    indices, so the L1 is not the sum of its absolute values (that would be the L1 of the mean).
    With ``constants`` (C per dimension), the reference rows: ``content_free_l1`` (every index =
    C), ``world_mean_l1`` (the mean profile of the target source's countries with every compared
    dimension) and the L1 relative to each (``l1_over_content_free``, ``l1_over_world_mean``).
    """
    vector = target.vector(dims)
    per_variant = np.asarray(per_variant, dtype=np.float64)
    wordings, matrix = order_balance([v.wording for v in variants])
    balanced = order_balanced(per_variant, matrix)
    per_wording = distance(balanced, vector)
    per_rendering = distance(per_variant, vector)
    by_order = {order: float(np.mean([x for x, v in zip(per_rendering, variants) if v.order == order]))
                for order in ORDERS if any(v.order == order for v in variants)}
    out = {"id": target.key, "name": target.name, "code": target.code, "iso2": target.iso2,
           "source": target.source, "estimated": target.estimated, "scores": dict(target.scores),
           "l1": float(per_wording.mean()), "l1_per_wording": dict(zip(wordings, per_wording.tolist())),
           "l1_per_variant": {v.name: float(x) for v, x in zip(variants, per_rendering)},
           "l1_by_order": by_order,
           "signed_error": dict(zip(dims, signed_error(balanced.mean(axis=0), vector).tolist()))}
    if constants is not None:
        out.update(references(out["l1"], target, dims, constants))
    return out


def references(l1: float, target: Profile, dims: Sequence[str], constants: Mapping[str, float]) -> dict:
    """The reference rows beside an L1: content-free and world-mean L1, and the L1 relative to each."""
    free = content_free_l1([constants[d] for d in dims], target.vector(dims))
    mean, source, n = world_mean(target.source, dims)
    world = float(distance(mean, target.vector(dims)))
    return {"content_free_l1": free, "world_mean_l1": world, "world_mean": {"source": source, "countries": n},
            "l1_over_content_free": relative_l1(l1, free), "l1_over_world_mean": relative_l1(l1, world)}


def alignment_check(target: Profile, aligned, naive, variants: Sequence, dims: Sequence[str],
                    constants: Mapping[str, float]) -> dict:
    """Does a candidate move towards ``target``? From its and the naive model's indices per
    rendering [V, D] of one split (the held-out one): directedness on the balanced indices of every
    wording, mirror on the changes under the in-order and the reversed renderings, and the
    verdict ``aligned`` (``cultbench.metrics.aligned_verdict``)."""
    aligned, naive = np.asarray(aligned, dtype=np.float64), np.asarray(naive, dtype=np.float64)
    _, matrix = order_balance([v.wording for v in variants])
    vector = target.vector(dims)
    direction = directedness(order_balanced(aligned, matrix), order_balanced(naive, matrix), vector)
    change = aligned - naive
    pairs = [(i, j) for i, a in enumerate(variants) for j, b in enumerate(variants)
             if a.wording == b.wording and a.order == "ascending" and b.order == "descending"]
    mirrored = mirror(change[[i for i, _ in pairs]], change[[j for _, j in pairs]]) if pairs else None
    l1 = lambda x: float(distance(order_balanced(x, matrix), vector).mean())  # noqa: E731
    free = content_free_l1([constants[d] for d in dims], vector)
    return aligned_verdict(l1(aligned), l1(naive), free, direction, mirrored)


def balanced_indices(per_variant, variants: Sequence, dims: Sequence[str]) -> dict:
    """Each wording's order-balanced indices {wording: {dim: value}} from indices per rendering."""
    wordings, matrix = order_balance([v.wording for v in variants])
    balanced = order_balanced(np.asarray(per_variant, dtype=np.float64), matrix)
    return {w: dict(zip(dims, row.tolist())) for w, row in zip(wordings, balanced)}


def evaluate_candidate(model, tokenizer, instrument, targets: Sequence[Profile], *, soft_prompt=None,
                       persona: str | None = None, splits: Sequence[str] = SPLIT_NAMES,
                       constants: dict | None = None, max_batch_mb: float | None = None,
                       dimensions: Sequence[str] | None = None, baseline: bool = False) -> dict:
    """Scores per split (indices, expected answers, option mass, validity diagnostics) and per
    target (L1, error), the targets keyed by their stable id (``Profile.key``, e.g. "US"); and the
    diagnostics over all the evaluated variants (``diagnostics``, see ``cultbench.diagnostics``).

    A split's L1 is the mean over its wordings of the L1 of each wording's order-balanced indices
    (see :func:`versus_target`), as the aligners' fitness is; the split's ``indices`` are the mean
    of its wordings' balanced indices, and the signed error is theirs. With ``baseline``, the
    naive model (no soft prompt, no persona) is scored in the same call, and each target gets
    ``naive_l1``, ``delta_vs_naive`` (negative: the candidate is closer than the naive model)
    and ``alignment`` (directedness, mirror and the verdict ``aligned``: :func:`alignment_check`).
    ``dimensions`` (default: all) are those the targets are compared on.
    """
    dims, items = instrument.dimension_ids, instrument.item_ids
    compared = list(dims) if dimensions is None else [str(d).lower() for d in dimensions]
    unknown = [d for d in compared if d not in dims]
    if unknown:
        raise CultbenchError(f"unknown dimension {unknown[0]!r} for {instrument.name}; dimensions: "
                             f"{', '.join(dims)}.{did_you_mean(unknown[0], dims)}")
    positions = [list(dims).index(d) for d in compared]
    variants = [v for split in splits for v in get_variants(split)]
    if not variants:
        raise CultbenchError("no prompt wordings to evaluate on")
    kwargs = {} if max_batch_mb is None else {"max_batch_mb": max_batch_mb}
    scorer = SurveyScorer(model, tokenizer, instrument, variants, constants=constants, **kwargs)
    if baseline:
        scored = scorer.score([soft_prompt, None], [persona, None])
    else:
        scored = scorer.score(None if soft_prompt is None else [soft_prompt], [persona])

    def diagnostics_of(rows):
        return diagnose(scored.probs[0, rows], scored.option_mass[0, rows], scored.expected[0, rows],
                        scored.indices[0, rows], [variants[k].order for k in rows], instrument.options, dims)

    out = {"instrument": {"name": instrument.name, "version": instrument.version},
           "wording": {"version": variants_version()}, "dimensions": compared,
           "constants": scored.constants, "precision": str(scorer.dtype).replace("torch.", ""), "splits": {}}
    for split in splits:
        rows = [k for k, v in enumerate(variants) if v.split == split]
        indices = scored.indices[0, rows]  # [V_split, D]
        chosen = [variants[k] for k in rows]
        _, matrix = order_balance([v.wording for v in chosen])
        mean = order_balanced(indices, matrix).mean(axis=0)
        split_out = {
            "variants": [v.name for v in chosen],
            "wordings": {v.name: {"wording": v.wording, "order": v.order} for v in chosen},
            "indices": dict(zip(dims, mean.tolist())),
            "indices_per_wording": balanced_indices(indices, chosen, dims),
            "indices_per_variant": {v.name: dict(zip(dims, indices[j].tolist())) for j, v in enumerate(chosen)},
            "expected_answers": dict(zip(items, scored.expected[0, rows].mean(axis=0).tolist())),
            "option_mass": float(scored.option_mass[0, rows].mean()),
            "option_mass_per_item": dict(zip(items, scored.option_mass[0, rows].mean(axis=0).tolist())),
            "diagnostics": diagnostics_of(rows),
            "targets": {},
        }
        for target in targets:
            versus = versus_target(target, indices[:, positions], chosen, compared, scored.constants)
            if baseline:
                naive = scored.indices[1, rows][:, positions]
                versus["naive_l1"] = versus_target(target, naive, chosen, compared)["l1"]
                versus["delta_vs_naive"] = versus["l1"] - versus["naive_l1"]
                versus["alignment"] = alignment_check(target, indices[:, positions], naive, chosen, compared,
                                                      scored.constants)
            split_out["targets"][target.key] = versus
        out["splits"][split] = split_out
    out["diagnostics"] = diagnostics_of(list(range(len(variants))))
    return out
