"""Evaluate one candidate (a soft prompt and/or a persona, or nothing) on train and held-out
prompt variants against target profiles: the step between an alignment and a result record."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from cultbench.evaluation.diagnostics import diagnose
from cultbench.errors import CultbenchError, did_you_mean
from cultbench.evaluation.distribution import evaluate_distribution
from cultbench.evaluation.kinds import kind_of
from cultbench.evaluation.metrics import DISTRIBUTION, INDEX, ScoredSplit, compute_metrics, order_balance, order_balanced, versus_naive
from cultbench.profiles import Profile, world_mean
from cultbench.prompts import get_variants, variants_version
from cultbench.scoring.scorer import score_candidate

SPLIT_NAMES = ("train", "validation", "heldout")


def other_target_warnings(fitted: Mapping, targets: Sequence) -> list[str]:
    """One line per target that is not the one an alignment was fitted to (``fitted``: the
    alignment's target record; ``targets``: profiles or countries, with a name and a source)."""
    def named(name, source):
        return f"{name} ({source})" if source else name

    fitted_name = named(fitted.get("name"), fitted.get("source"))
    return [f"the alignment was fitted to {fitted_name} and is evaluated against {named(t.name, t.source)}: "
            f"the scores show how a {fitted.get('name')} alignment moves the model, not an alignment to {t.name}"
            for t in targets if (t.name, t.source) != (fitted.get("name"), fitted.get("source"))]


def index_split(target: Profile, per_variant, variants: Sequence, dims: Sequence[str], option_mass,
                mean_indices: dict, constants: Mapping[str, float] | None = None, naive=None) -> ScoredSplit:
    """One split of an index instrument against one target, for the metrics: the indices per
    rendering [V, D] of ``variants`` (``PromptVariant``s: their wordings and scale orders balance
    the L1) on the compared ``dims``, the option mass [V, I] and the split's mean indices on every
    dimension (``mean_indices``, for the rank agreement across dimensions). With ``constants`` (C
    per dimension), the content-free and world-mean references; with the naive model's indices
    ``naive`` [V, D], directedness, mirror and the verdict aligned."""
    mean, _, _ = world_mean(target.source, dims)
    context = {"indices": dict(mean_indices), "target_scores": dict(target.scores),
               "wordings": [v.wording for v in variants], "orders": [v.order for v in variants],
               "constants": None if constants is None else [float(constants[d]) for d in dims], "world_mean": mean,
               "naive": None if naive is None else np.asarray(naive, dtype=np.float64)}
    return ScoredSplit(INDEX, [v.name for v in variants], list(dims), np.asarray(per_variant, dtype=np.float64),
                       target.vector(dims), np.asarray(option_mass, dtype=np.float64), context=context)


def versus_target(target: Profile, split: ScoredSplit) -> dict:
    """One split's comparison with one target: who the target is, and every registered metric of
    index instruments (``cultbench.evaluation.metrics``). ``l1`` is the mean over the split's wordings of the
    L1 of each wording's order-balanced indices (as the aligners' fitness is; ``l1_per_variant``
    and ``l1_by_order`` are the renderings' own, secondary); ``signed_error`` is model minus target
    on the split's mean balanced indices, so the L1 is not the sum of the absolute signed errors."""
    return {"id": target.key, "name": target.name, "code": target.code, "iso2": target.iso2,
            "source": target.source, "estimated": target.estimated, "scores": dict(target.scores),
            **compute_metrics(split)}


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
    diagnostics over all the evaluated variants (``diagnostics``, see ``cultbench.evaluation.diagnostics``).

    A split's L1 is the mean over its wordings of the L1 of each wording's order-balanced indices
    (see :func:`versus_target`), as the aligners' fitness is; the split's ``indices`` are the mean
    of its wordings' balanced indices, and the signed error is theirs. With ``baseline``, the
    naive model (no soft prompt, no persona) is scored in the same call, and each target gets
    ``naive_l1``, ``delta_vs_naive`` (negative: the candidate is closer than the naive model)
    and ``alignment`` (directedness, mirror and the verdict ``aligned``: ``cultbench.evaluation.metrics``).
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
    scorer, scored = score_candidate(model, tokenizer, instrument, variants, soft_prompt=soft_prompt, persona=persona,
                                     baseline=baseline, constants=constants, max_batch_mb=max_batch_mb)

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
            naive = scored.indices[1, rows][:, positions] if baseline else None
            versus_split = index_split(target, indices[:, positions], chosen, compared, scored.option_mass[0, rows],
                                       split_out["indices"], scored.constants, naive)
            versus = versus_target(target, versus_split)
            if baseline:
                versus.update(versus_naive(versus_split, naive))
            split_out["targets"][target.key] = versus
        out["splits"][split] = split_out
    out["diagnostics"] = diagnostics_of(list(range(len(variants))))
    return out


def evaluate(model, tokenizer, instrument, targets, **options) -> dict:
    """The evaluation of one candidate on ``instrument``, whatever its kind: ``evaluate_candidate``
    (an index instrument: train and held-out prompt variants) or ``evaluate_distribution`` (a
    distribution instrument: four blocks of wordings x questions); ``options`` are theirs."""
    if kind_of(instrument).name == DISTRIBUTION:
        instrument.constants(options.pop("constants", None))  # it has none: refuses any given
        return evaluate_distribution(model, tokenizer, instrument, targets, **options)
    return evaluate_candidate(model, tokenizer, instrument, targets, **options)
