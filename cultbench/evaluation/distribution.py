"""Evaluate one candidate on a distribution instrument: similarity to target countries and the
ranking of every country, on training and held-out questions under training and held-out wordings.

Four blocks, reported separately: wording split (the prompt variants an aligner saw or not) x
question split (the questions an aligner fitted or not). A similarity is 1 - the Jensen-Shannon
distance per item, averaged over the items the country was asked, computed per prompt variant and
averaged over the split's variants (as the aligners' fitness is). Each wording split, and all the
scored variants together, also get the validity diagnostics that apply to distribution items
(``cultbench.evaluation.diagnostics.diagnose_distribution``, over all questions).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from cultbench.evaluation.diagnostics import diagnose_distribution
from cultbench.instruments.distribution import SPLITS as QUESTION_SPLITS
from cultbench.instruments.distribution import DistributionInstrument, OpinionTarget
from cultbench.evaluation.metrics import (DISTRIBUTION, ScoredSplit, compute_metrics, order_balance, order_balanced,
                               rank_by_similarity, similarity, versus_naive)
from cultbench.prompts import get_variants, variants_file
from cultbench.scoring.scorer import score_candidate
from cultbench.runs.summary import verdict_lines

WORDING_SPLITS = ("train", "heldout")


def per_variant_similarity(instrument: DistributionInstrument, shares: np.ndarray, target: OpinionTarget,
                           keep: np.ndarray) -> np.ndarray:
    """[V] similarity to ``target`` of answer shares [V, slots] on the items ``keep`` (a mask)."""
    d = instrument.item_distances(shares, target.vector(instrument.dimension_ids))[:, keep]  # [V, I_kept]
    return np.array([similarity(row) for row in d])


def country_similarities(instrument: DistributionInstrument, shares: np.ndarray, keep: np.ndarray) -> dict:
    """Country name -> [V] similarity, for every country asked one of the items ``keep``."""
    ids = {instrument.item_ids[i] for i in np.flatnonzero(keep)}
    return {c.name: per_variant_similarity(instrument, shares, instrument.target(c.name), keep)
            for c in instrument.countries if not ids.isdisjoint(instrument.reference[c.name])}


def block_split(instrument: DistributionInstrument, shares: np.ndarray, mass: np.ndarray, keep: np.ndarray,
                variants: list, target: OpinionTarget, ranking: list[str]) -> ScoredSplit:
    """One block (the questions ``keep``, a mask) against one target, for the metrics: answer
    shares per rendering [V, slots] of ``variants`` (their wordings balance the similarity: each
    question's shares averaged over a wording's option orders first), the option mass [V, I] on
    the block's questions, and the data's countries ranked by similarity (``ranking``, names)."""
    asked = sum(1 for i in np.flatnonzero(keep) if instrument.item_ids[i] in target.shares)
    return ScoredSplit(DISTRIBUTION, [v.name for v in variants], instrument.dimension_ids, shares,
                       target.vector(instrument.dimension_ids), mass[:, keep],
                       context={"asked": asked, "name": target.name, "ranking": ranking,
                                "wordings": [v.wording for v in variants],
                                "per_variant": lambda s: per_variant_similarity(instrument, s, target, keep)})


def _block(instrument: DistributionInstrument, shares: np.ndarray, mass: np.ndarray, items: list[int],
           variants: list, targets: Sequence[OpinionTarget], top: int | None,
           naive: np.ndarray | None = None) -> dict:
    """Similarities on the questions ``items`` (positions) from shares per rendering [V, slots] of
    ``variants``, mass [V, I] (the countries ranked on the wordings' order-balanced shares):
    every registered metric of distribution instruments per target (``cultbench.evaluation.metrics``), how
    many of the questions it was asked, and the ranking of the data's countries. A target asked
    none of them has similarity None (and rank None). With the naive model's shares ``naive``
    [V, slots], each target also gets ``naive_similarity`` and ``delta_vs_naive`` (similarity
    minus the naive model's: positive, the candidate is closer)."""
    keep = np.zeros(len(instrument.items), dtype=bool)
    keep[items] = True
    _, matrix = order_balance([v.wording for v in variants])
    countries = {n: float(np.mean(s)) for n, s in
                 country_similarities(instrument, order_balanced(shares, matrix), keep).items()}
    ranking = rank_by_similarity(countries)
    names = [n for n, _ in ranking]
    out = {"items": len(items), "option_mass": float(mass[:, keep].mean()) if items else None, "targets": {}}
    for target in targets:
        split = block_split(instrument, shares, mass, keep, variants, target, names)
        out["targets"][target.name] = {"items_asked": split.context["asked"], **compute_metrics(split)}
        if naive is not None:
            out["targets"][target.name].update(versus_naive(split, naive))
    out["countries_ranked"] = len(ranking)
    out["ranking"] = [[n, s] for n, s in (ranking if top is None else ranking[:top])]
    return out


def evaluate_distribution(model, tokenizer, instrument: DistributionInstrument, targets: Sequence[OpinionTarget], *,
                          soft_prompt=None, persona: str | None = None, splits: Sequence[str] = WORDING_SPLITS,
                          max_batch_mb: float | None = None, top: int | None = 10, baseline: bool = False) -> dict:
    """The report of one candidate (see the module docstring); ``top`` countries in each ranking
    (None: all). Similarities are order-balanced: per wording, each question's answer shares are
    averaged over the wording's option orders before the distance (``similarity_per_variant`` is
    then keyed by wording), and a block's similarity is the mean over the wordings. With ``baseline``, the naive model (no soft prompt, no persona) is scored in the
    same call and every target's similarity has the naive model's beside it."""
    path = variants_file(instrument)
    variants = [v for split in splits for v in get_variants(split, path=path)]
    scorer, scored = score_candidate(model, tokenizer, instrument, variants, soft_prompt=soft_prompt, persona=persona,
                                     baseline=baseline, max_batch_mb=max_batch_mb)
    every = np.ones(len(instrument.items), dtype=bool)

    def diagnostics_of(rows: list[int]) -> dict:
        sims = country_similarities(instrument, scored.indices[0, rows], every)
        return diagnose_distribution(scored.probs[0, rows], scored.option_mass[0, rows],
                                     [variants[k].order for k in rows], instrument.option_counts,
                                     np.stack(list(sims.values()), axis=1), list(sims))

    out = {"instrument": instrument.describe(), "caveat": instrument.caveat,
           "precision": str(scorer.dtype).replace("torch.", ""), "splits": {}}
    for split in splits:
        rows = [k for k, v in enumerate(variants) if v.split == split]
        names = [variants[k].name for k in rows]
        shares, mass = scored.indices[0, rows], scored.option_mass[0, rows]
        blocks = {}
        for q in QUESTION_SPLITS:
            items = [i for i, it in enumerate(instrument.items) if instrument.split[it.id] == q]
            blocks[q] = _block(instrument, shares, mass, items, [variants[k] for k in rows], targets, top,
                               naive=scored.indices[1, rows] if baseline else None)
        mean = instrument.unflatten(shares.mean(axis=0))
        out["splits"][split] = {"variants": names, "questions": blocks, "option_mass": float(mass.mean()),
                                "answer_shares": {i: m.tolist() for i, m in zip(instrument.item_ids, mean)},
                                "diagnostics": diagnostics_of(rows)}
    out["diagnostics"] = diagnostics_of(list(range(len(variants))))
    return out


def _beside_naive(target: dict) -> str:
    """"; naive model 0.612: closer by 0.020" where the naive model was scored beside the candidate."""
    delta = target.get("delta_vs_naive")
    if delta is None:
        return ""
    verdict = (f"closer by {delta:.3f}" if delta > 0 else f"FARTHER by {-delta:.3f}" if delta < 0
               else "the same")
    return f"; naive model {target['naive_similarity']:.3f}: {verdict}"


def distribution_text(result: dict) -> str:
    """``cultbench evaluate``'s terminal summary for a distribution instrument; the JSON has it all."""
    inst = result["instrument"]
    lines = [f"{inst['name']}: {inst['items']} questions ({inst['questions']['train']} training, "
             f"{inst['questions']['heldout']} held out), {inst['countries']} countries",
             "Similarity = 1 - mean Jensen-Shannon distance to a country's answer shares (1: identical); "
             "rank among the data's countries:"]
    for split, block in result["splits"].items():
        for q, got in block["questions"].items():
            head = f"  {split} wordings ({', '.join(block['variants'])}), {q} questions ({got['items']}):"
            lines.append(head + ("" if got["option_mass"] is None else f" option mass {got['option_mass']:.2f}"))
            for name, t in got["targets"].items():
                rank = "-" if t["rank"] is None else f"{t['rank']} of {got['countries_ranked']}"
                sim = "-" if t["similarity"] is None else f"{t['similarity']:.3f}"
                lines.append(f"    {name}: similarity {sim}, rank {rank}, "
                             f"asked {t['items_asked']} of these questions" + _beside_naive(t))
            top = ", ".join(f"{n} {s:.3f}" for n, s in got["ranking"][:3])
            lines.append(f"    most similar: {top}")
    lines += verdict_lines(result.get("diagnostics"), scores="similarities")
    lines.append(f"Note: {result['caveat']}")
    return "\n".join(lines) + "\n"
