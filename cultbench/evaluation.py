"""Evaluate one candidate (a soft prompt and/or a persona, or nothing) on train and held-out
prompt variants against target profiles: the step between an alignment and a result record."""

from __future__ import annotations

from typing import Sequence

from cultbench.metrics import distance, signed_error
from cultbench.profiles import Profile
from cultbench.prompts import get_variants
from cultbench.scorer import SurveyScorer

SPLIT_NAMES = ("train", "heldout")


def evaluate_candidate(model, tokenizer, instrument, targets: Sequence[Profile], *, soft_prompt=None,
                       persona: str | None = None, splits: Sequence[str] = SPLIT_NAMES,
                       constants: dict | None = None, max_batch_mb: float | None = None) -> dict:
    """Scores per split (indices, expected answers, option mass) and per target (L1, error).

    L1 is computed per prompt variant and averaged over the split's variants, as the aligners'
    fitness is; the signed error is that of the split's mean indices.
    """
    variants = [v for split in splits for v in get_variants(split)]
    kwargs = {} if max_batch_mb is None else {"max_batch_mb": max_batch_mb}
    scorer = SurveyScorer(model, tokenizer, instrument, variants, constants=constants, **kwargs)
    scored = scorer.score(None if soft_prompt is None else [soft_prompt], [persona])
    dims, items = instrument.dimension_ids, instrument.item_ids
    out = {"instrument": {"name": instrument.name, "version": instrument.version},
           "constants": scored.constants, "precision": str(scorer.dtype).replace("torch.", ""), "splits": {}}
    for split in splits:
        rows = [k for k, v in enumerate(variants) if v.split == split]
        indices = scored.indices[0, rows]  # [V_split, D]
        mean = indices.mean(axis=0)
        split_out = {
            "variants": [variants[k].name for k in rows],
            "indices": dict(zip(dims, mean.tolist())),
            "indices_per_variant": {variants[k].name: dict(zip(dims, indices[j].tolist())) for j, k in enumerate(rows)},
            "expected_answers": dict(zip(items, scored.expected[0, rows].mean(axis=0).tolist())),
            "option_mass": float(scored.option_mass[0, rows].mean()),
            "option_mass_per_item": dict(zip(items, scored.option_mass[0, rows].mean(axis=0).tolist())),
            "targets": {},
        }
        for target in targets:
            vector = target.vector(dims)
            split_out["targets"][target.name] = {
                "source": target.source,
                "l1": float(distance(indices, vector).mean()),
                "l1_per_variant": dict(zip(split_out["variants"], distance(indices, vector).tolist())),
                "signed_error": dict(zip(dims, signed_error(mean, vector).tolist())),
            }
        out["splits"][split] = split_out
    return out
