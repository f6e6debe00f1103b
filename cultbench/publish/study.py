"""A study: the leaderboard's rows read as a comparison of aligners over targets and seeds.

``study(entries)`` gives, per model: which target x aligner x seed combinations are present (and,
given an experiment's grid, which are missing), L1 to the target per target x aligner (mean, sd,
min, max over seeds; training and held-out variants), each aligner's averages over the targets,
its cost (budget in candidate evaluations, wall time per run), and families of paired tests:

- ``tests``: L1 of one aligner against another (the primary family: DE against the baselines, the
  other searches and gradient prompt tuning; the secondary family: the other comparisons);
- ``transfer``: each aligner's gain over the naive model on the training and held-out variants,
  the held-out gain minus the training gain (does the gain carry over to unseen wordings?), and
  the gain on each held-out variant;
- ``dimensions``: per dimension, the change of the held-out index against the naive model and the
  change of its absolute error;
- ``direction``: per aligner, the slope and correlation of its held-out index change against the
  naive model on the way to the target (target − naive), pooled over targets and dimensions, with
  a target-permutation p (``cultbench.publish.stats.toward_target``);
- ``diagnostics``: the validity diagnostics (over all evaluated variants) per aligner and their
  change against the naive model.
- ``first_population``: per searching aligner setup, the share of its gain in training fitness
  that its first population had already found (``study_markdown.FIRST_POPULATION_NOTE``; None for prompt tuning,
  which has no population).
- ``first_generation``: DE against each other population search at the same budget on the
  search's training fitness after DE's first generation (as many evaluations for the other) and
  at the end (does DE's difference come from its first population?), Holm within the family
  "first generation".
- ``ladder`` (only where the budgeted aligners ran at two budgets or more): ``budget_ladder``, each
  budgeted aligner's mean L1 per budget and DE against the others budget by budget, each budget
  its own Holm family, with the budgets between which DE − B changes sign.

The unit of every test is the target: each aligner's value is averaged over its seeds within a
target first, then the two aligners' target means are paired (so a seed-free baseline's one value
is not counted once per seed of a search). Each test is ``cultbench.publish.stats.paired_comparison``
(bootstrap CI with its method, exact sign-flip permutation p, the smallest p the number of targets
allows); p-values are Holm-adjusted within their family. A test that lacks units (an aligner
without entries, fewer than two targets in common, entries without diagnostics) is listed as
skipped, with the reason. ``cultbench.publish.study_markdown`` writes the document as Markdown, with the
leaderboard page's convergence charts as SVG files beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from cultbench.atomic import write_text_atomic
from cultbench.evaluation.diagnostics import MAX_POSITION_BIAS, MAX_REVERSAL_DISTANCE
from cultbench.errors import CultbenchError
from aligners.registry import available_aligners, display_key
from cultbench.publish.leaderboard import Entries, aggregate, stat
from cultbench.publish.page import chart_colours, convergence_svg, target_label
from cultbench.evaluation.metrics import (INDEX, MIN_EFFECT, check_threshold, primary_metric,
                                         record_content_free_l1)
from cultbench.prompts import REVERSED_SUFFIX, all_variants, variants_version
from cultbench.runs.results import SPLITS, combination_key_of
from cultbench.publish.stats import paired_comparison, toward_target
from cultbench.publish.study_markdown import order_gains, render_study_markdown

STUDY_FORMAT = 2
BASELINE = "naive"
PRIMARY, SECONDARY = "primary", "secondary"
# (a, b, family): is a's L1 lower than b's? The primary family is the paper's claim about DE (does it
# beat the baselines, the other black-box searches at equal cost, and how far is it from gradient
# prompt tuning); the secondary family holds the comparisons a reviewer adds. Holm adjusts within
# each family, so the primary questions do not pay for the secondary ones.
COMPARISONS = (
    ("de", "naive", PRIMARY), ("de", "icl", PRIMARY), ("de", "icl-profile", PRIMARY), ("de", "cmaes", PRIMARY),
    ("de", "random", PRIMARY), ("de", "prompt-tuning", PRIMARY),
    ("cmaes", "naive", SECONDARY), ("cmaes", "icl", SECONDARY), ("cmaes", "icl-profile", SECONDARY),
    ("cmaes", "random", SECONDARY), ("cmaes", "prompt-tuning", SECONDARY), ("random", "naive", SECONDARY),
    ("random", "prompt-tuning", SECONDARY), ("prompt-tuning", "naive", SECONDARY),
    ("prompt-tuning", "icl-profile", SECONDARY))
# Validity diagnostics over all evaluated variants (cultbench.evaluation.diagnostics): (key, how to read it from
# a report); "interpretable" is 1 for an interpretable entry, 0 otherwise (its mean: a share).
DIAGNOSTICS = (("option_mass", lambda d: d["option_mass"]),
               ("position_bias", lambda d: d["position_bias"]["mean"]),
               ("reversal_tv", lambda d: d["reversal"]["total_variation"]),
               ("item_sd", lambda d: d["item_discrimination"]),
               ("wording_sd", lambda d: d["wording_stability"]["mean"]),
               ("interpretable", lambda d: float(bool(d["interpretable"]))))


MAX_SLUG = 120  # characters of a chart's file name slug: far below the 255 bytes file systems allow


def short_slug(text: str) -> str:
    """A file-name slug of ``text``; a longer one is cut and ends with a hash of the whole, so it
    stays unique and a 300-character model id still makes a valid file name."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if len(slug) <= MAX_SLUG:
        return slug
    return f"{slug[:MAX_SLUG - 9]}-{hashlib.sha256(slug.encode()).hexdigest()[:8]}"


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error), in the input order."""
    if not len(p_values):
        return []
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()


def _order(name: str) -> tuple:
    """Aligners (or their labels) in their declared display order (``Aligner.display_order``: the
    paper's story, baselines, the searches, the gradient references; then other aligners)."""
    return display_key(name)


def comparisons_for(names, comparisons=COMPARISONS) -> tuple:
    """``comparisons``, and each aligner of ``names`` they do not name against the naive model
    (secondary family), so that any aligner with entries, a plugin too, is compared."""
    named = {n for a, b, _ in comparisons for n in (a, b)} | {BASELINE}
    return tuple(comparisons) + tuple((n, BASELINE, SECONDARY) for n in sorted(set(names) - named, key=_order))


def _labels(rows: list[dict], name: str) -> list[str]:
    """The aligner labels (setups: budgets, hyper-parameters) of the rows whose aligner is ``name``."""
    return sorted({r["aligner_label"] for r in rows if r["aligner"]["name"] == name}, key=_order)


def _target(record: dict) -> tuple[str, str]:
    return record["target"]["name"], record["target"]["source"]


# -- target units ---------------------------------------------------------------------------------

def _means(groups: dict, value) -> dict:
    """{target: (seeds, mean over seeds)} of ``value(record)`` over each target's records (one per
    seed), leaving out None values and targets without any."""
    out = {}
    for target, records in groups.items():
        values = [v for v in (value(r) for r in records) if v is not None]
        if values:
            out[target] = (len(values), float(np.mean(values)))
    return out


def _difference(a: dict, b: dict) -> dict:
    """Per target both have: a's mean minus b's (with a's seed count)."""
    return {t: (a[t][0], a[t][1] - b[t][1]) for t in a if t in b}


def _absolute(a: dict) -> dict:
    return {t: (n, abs(v)) for t, (n, v) in a.items()}


def _test(x: dict, y: dict, seed: int, **about) -> dict:
    """``paired_comparison`` of two {target: (seeds, mean)} maps (A's and B's) over the targets both
    have (the target is the unit), or the reason it cannot be made."""
    common = sorted(set(x) & set(y))
    if len(common) < 2:
        measure = about.get("measure", "a value")
        reason = (f"no target has {measure} for {about.get('a')}" if not x else
                  f"no target has {measure} for {about.get('b')}" if not y else
                  f"{len(common)} target{'s' if len(common) != 1 else ''} in common; a paired test needs 2")
        return {**about, "skipped": reason}
    a_values, b_values = [x[t][1] for t in common], [y[t][1] for t in common]
    if a_values == b_values:
        # no difference at any target (e.g. no entry interpretable on either side): a test of nothing,
        # which would only enlarge its Holm family
        what = about.get("diagnostic") or about.get("dimension") or about.get("measure", "the value")
        return {**about, "skipped": f"{what}: {about.get('a')} and {about.get('b')} have the same value at every "
                                    "target, so there is nothing to test"}
    result = paired_comparison(a_values, b_values, seed=seed)
    return {**about, "unit": "target", "targets": [t[0] for t in common],
            "seeds_a": max(x[t][0] for t in common), "seeds_b": max(y[t][0] for t in common), **result}


def _family(items: list[dict]) -> tuple[list[dict], list[dict]]:
    """(tests made, Holm-adjusted within the family; tests skipped)."""
    done = [t for t in items if "skipped" not in t]
    for p_holm, test in zip(holm([t["p_value"] for t in done]), done):
        test["p_holm"] = p_holm
    return done, [t for t in items if "skipped" in t]


def _other_wording(groups: dict, a: str, b: str) -> str | None:
    """Why two aligner setups' L1s cannot be paired: their entries were scored on other prompt
    variants (another wording version or split); None when they share them."""
    first = {label: next(r for rs in groups[label].values() for r in rs)["variants"] for label in (a, b)}
    if first[a] == first[b]:
        return None
    return (f"scored on other prompt variants (wording version {first[a].get('version')} against "
            f"{first[b].get('version')})")


def _l1(split: str):
    """A record's primary metric (``cultbench.evaluation.metrics``: the L1 of index instruments) on ``split``."""
    name = primary_metric(INDEX).name
    return lambda r: r["metrics"][split][name]


def _diagnostic(read):
    def value(record):
        report = (record["metrics"].get("diagnostics") or {}).get("all")
        return None if report is None else read(report)
    return value


def _scale_orders(records: list[dict]) -> dict[str, str]:
    """Variant name -> scale order ("ascending" / "descending"): from the records themselves
    (wording version 4 records each rendering's order), for version 3 from its names (its reversed
    renderings, and only they, end in "-reversed"), else from the variants file when the entries
    were made with its version (older versions' orders are not on file)."""
    versions = {r["variants"].get("version") for r in records}
    recorded = {name: w["order"] for r in records for split in r["splits"].values()
                for name, w in (split.get("wordings") or {}).items()}
    if recorded:
        return recorded
    if versions == {3}:
        return {v: "descending" if v.endswith(REVERSED_SUFFIX) else "ascending"
                for r in records for names in r["variants"].values() if isinstance(names, list) for v in names}
    if versions != {variants_version()}:
        return {}
    return {v.name: v.order for v in all_variants()}


# -- sections -------------------------------------------------------------------------------------

def _expected_budgets(searches, grid_budgets, present: set) -> list:
    """The budgets a grid expects of one aligner: the grid's for a searching aligner (each is a
    combination of its own), else the ones its entries have (one, when the grid names none), and
    none for an aligner that spends no budget."""
    if not searches:
        return [None]
    if grid_budgets:
        return list(grid_budgets)
    return sorted(present - {None}) or [None]


def coverage(records: list[dict], labels: dict[tuple, str], grid: dict | None = None) -> dict:
    """Which target x aligner x seed combinations one model's entries hold, against ``grid`` (an
    experiment's targets, its aligners with whether each searches, and its seeds) or, without one,
    against the targets and seeds the entries themselves have (the built-in aligners without
    entries are listed too); with the budgets and wording versions the entries were made with."""
    present: dict[str, set] = defaultdict(set)  # name -> {(target, seed, budget)}
    for r in records:
        present[r["aligner"]["name"]].add((_target(r), r["aligner"]["seed"], r["aligner"]["budget"]))
    if grid is not None:
        targets = [(t["name"], t["source"]) for t in grid["targets"]]
        seeds, names = list(grid["seeds"]), list(grid["aligners"])
    else:
        targets = sorted({_target(r) for r in records})
        seeds = sorted({r["aligner"]["seed"] for r in records if r["aligner"]["seed"] is not None})
        names = list(available_aligners())
    out = []
    for name in sorted(set(names) | set(present), key=_order):
        mine, in_grid = present.get(name, set()), name in names
        searches = (grid["aligners"][name] if grid is not None and in_grid
                    else any(s is not None for _, s, _ in mine) if mine else None)
        mine_seeds = (seeds if searches and name not in (grid or {}).get("unseeded", []) else
                      seeds[:1] if searches else [None])
        mine_budgets = _expected_budgets(searches, (grid or {}).get("budgets"), {b for _, _, b in mine})
        expected = set() if not in_grid or searches is None else {
            (t, s, b) for t in targets for s in mine_seeds for b in mine_budgets}
        missing = defaultdict(list)
        for t, s, b in sorted(expected - mine, key=lambda tsb: (tsb[0], -1 if tsb[1] is None else tsb[1],
                                                                  -1 if tsb[2] is None else tsb[2])):
            missing[(t, b) if len(mine_budgets) > 1 else (t,)].append(s)
        per_target = defaultdict(int)  # (target, budget) -> entries (its seeds)
        for t, _, b in mine:
            per_target[(t, b)] += 1
        out.append({
            "aligner": name, "in_grid": in_grid, "searches": searches, "entries": len(mine),
            "expected_entries": len(expected) if in_grid and searches is not None else None,
            "targets": len({t for t, _ in per_target}),
            "budgets": sorted({r["aligner"]["budget"] for r in records
                               if r["aligner"]["name"] == name and r["aligner"]["budget"] is not None}),
            "seeds_per_target": [min(per_target.values()), max(per_target.values())] if per_target else None,
            "missing": [{"target": labels.get(t[0]) or f"{t[0][0]} ({t[0][1]})",
                         **({"budget": t[1]} if len(t) > 1 else {}),
                         "all": len(s) == len(mine_seeds), "seeds": [x for x in s if x is not None]}
                        for t, s in missing.items()],
            "outside": len(mine - expected)})
    return {"grid": None if grid is None else grid.get("file", "experiment"),
            "targets": [labels.get(t) or f"{t[0]} ({t[1]})" for t in targets], "seeds": seeds,
            "budgets": None if grid is None else grid.get("budgets") or None, "aligners": out,
            "unseeded": [] if grid is None else [a for a in grid.get("unseeded", []) if a in names],
            "wording_versions": sorted({r["variants"].get("version") for r in records}, key=str),
            "current_wording_version": variants_version(),
            "entries": sum(a["entries"] for a in out),
            "expected": None if grid is None else sum(a["expected_entries"] or 0 for a in out)}


def cost(label: str, records: list[dict]) -> dict:
    """What one aligner setup spent per run: its budget and evaluations (candidate evaluations: one
    soft prompt scored on every training variant), steps or generations, and wall time."""
    hist = [r["history"] for r in records if r["history"] is not None]
    return {"aligner": label, "runs": len(records),
            "budget": sorted({r["aligner"]["budget"] for r in records if r["aligner"]["budget"] is not None}),
            "evaluations": stat(r["aligner"]["evaluations"] for r in records),
            "generations": stat(h.get("generations") for h in hist) if hist else None,
            # evaluations one step counts as (prompt tuning's measured step cost)
            "step_cost": sorted({r["aligner"]["hyperparameters"].get("step_cost") for r in records} - {None}),
            "search_precision": sorted({h["search_precision"] for h in hist if h.get("search_precision")}),
            "wall_time_s": stat(r["run"].get("wall_time_s") for r in records),
            "align_time_s": stat(r["run"].get("align_time_s") for r in records)}


def _first_population_run(record: dict) -> tuple[dict | None, str | None]:
    """One search run's first generation against its end (``study_markdown.FIRST_POPULATION_NOTE``): {start,
    first_best, final_best, gain, part, share}, or None and why it has no share."""
    popsize = (record["aligner"].get("hyperparameters") or {}).get("popsize")
    if record["history"] is None:
        return None, "no convergence curve"
    if popsize is None:
        return None, "no population (gradient steps, not generations)"
    curve = record["history"]["curve"]
    if not curve or curve[0].get("mean") is None or curve[-1].get("best") is None:
        return None, "its first generation has no valid candidate"
    if curve[0]["evaluations"] != popsize:
        return None, f"its first generation holds {curve[0]['evaluations']} evaluations, not popsize {popsize}"
    start, first_best, final_best = curve[0]["mean"], curve[0]["best"], curve[-1]["best"]
    gain, part = start - final_best, start - first_best
    values = {"start": start, "first_best": first_best, "final_best": final_best, "gain": gain, "part": part}
    if not gain > 0:
        return {**values, "share": None}, "no gain (the final best is not below the first generation's mean)"
    return {**values, "share": part / gain}, None


def first_population(label: str, groups: dict) -> dict:
    """One searching aligner setup's first-population share of its gain (``study_markdown.FIRST_POPULATION_NOTE``):
    per target the mean over its seeds' runs, then over targets (``stat``), the pooled share (sum of
    parts over sum of gains, runs with a gain), and the runs without a share, counted by reason."""
    per_target, reasons, pooled = [], defaultdict(int), [0.0, 0.0]
    for target, records in sorted(groups.items()):
        runs = []
        for r in records:
            values, why = _first_population_run(r)
            if why is not None:
                reasons[why] += 1
            if values is not None:
                runs.append(values)
            if why is None:
                pooled[0] += values["part"]
                pooled[1] += values["gain"]
        if runs:
            shares = [v["share"] for v in runs if v["share"] is not None]
            per_target.append({"target": target[0], "source": target[1], "runs": len(runs),
                               **{k: float(np.mean([v[k] for v in runs]))
                                  for k in ("start", "first_best", "final_best", "gain")},
                               "share": float(np.mean(shares)) if shares else None})
    return {"aligner": label, "popsize": _popsizes(groups), "targets": len([t for t in per_target if t["share"] is not None]),
            "runs": sum(len(rs) for rs in groups.values()),
            **{k: stat(t[k] for t in per_target) for k in ("start", "first_best", "final_best", "gain", "share")},
            "pooled_share": pooled[0] / pooled[1] if pooled[1] > 0 else None,
            "without_share": [{"reason": why, "runs": n} for why, n in sorted(reasons.items())],
            "per_target": per_target}


def _popsizes(groups: dict) -> list[int]:
    """The population sizes of one aligner setup's runs ({target: records}); none without a population."""
    return sorted({r["aligner"]["hyperparameters"].get("popsize") for rs in groups.values() for r in rs} - {None})


FIRST_GENERATION = "first generation"  # the family of first_generation_tests


def _best_at(evaluations: float):
    """A run's best search fitness after at most ``evaluations`` (its convergence curve), or None."""
    def value(record):
        if record["history"] is None:
            return None
        seen = [p["best"] for p in record["history"]["curve"] if p["evaluations"] <= evaluations and p["best"] is not None]
        return seen[-1] if seen else None
    return value


def first_generation_tests(rows: list[dict], groups: dict, seed: int) -> tuple[list[dict], list[dict]]:
    """Does DE's difference from another population search (same budget) come from its first
    population? DE against it on the search's training fitness (best so far) after DE's first
    generation (its popsize in evaluations: the other search's best after as many) and at the end
    of the run, target as the unit, Holm within the family ``FIRST_GENERATION``."""
    budget_of, name_of = _budgets(rows), _names(rows)
    popsizes = {label: _popsizes(groups[label]) for label in budget_of}
    items = []
    for a in (a for a in sorted(budget_of, key=_order) if name_of[a] == LADDER_A and popsizes[a]):
        for b in (b for b in sorted(budget_of, key=_order) if name_of[b] != LADDER_A and popsizes[b]
                  and budget_of[b] == budget_of[a]):
            about = {"a": a, "b": b, "budget": budget_of[a], "family": FIRST_GENERATION}
            if len(popsizes[a]) > 1:
                items.append({**about, "skipped": f"{a}'s popsize varies ({', '.join(map(str, popsizes[a]))})"})
                continue
            for point, n in (("first_generation", popsizes[a][0]), ("end", None)):
                best = _best_at(float("inf") if n is None else n)
                items.append(_test(_means(groups[a], best), _means(groups[b], best), seed, **about, point=point,
                                   evaluations=n, measure="a best fitness " + (f"after {n} evaluations" if n else
                                                                                 "at the end")))
    return _family(items)


def compute(records: list[dict]) -> dict:
    """What the whole study spent: the sum of its runs' wall times (one process each), the threads a
    run used, and how many runs resumed from a checkpoint (they record only the time after it)."""
    runs = [r["run"] for r in records]
    return {"runs": len(runs), "wall_time_s": float(sum(r.get("wall_time_s") or 0.0 for r in runs)),
            "threads": sorted({r["torch_threads"] for r in runs if r.get("torch_threads") is not None}),
            "resumed": sum(bool(r.get("resumed")) for r in runs)}


def transfer(a: str, naive: str, groups: dict, seed: int) -> tuple[dict, list[dict]]:
    """Aligner ``a``'s gain over the naive model (its L1 minus naive's, per target) on the training
    and held-out variants, and the held-out gain minus the training gain (positive: less of the
    gain carries over to unseen wordings); and its gain on each held-out variant."""
    mine, base = groups[a], groups[naive]
    l1 = {s: (_means(mine, _l1(s)), _means(base, _l1(s))) for s in SPLITS}
    gains = {s: _difference(*l1[s]) for s in SPLITS}
    about = {"a": a, "b": naive, "measure": "L1"}
    out = {"aligner": a, "naive": naive,
           **{s: _test(*l1[s], seed, split=s, **about) for s in SPLITS},
           "gap": _test(gains["heldout"], gains["train"], seed, **{**about, "measure": "a gain over naive"})}
    records = [r for rs in mine.values() for r in rs]
    orders = _scale_orders(records + [r for rs in base.values() for r in rs])
    seen = {v for rs in base.values() for r in rs for v in r["variants"]["heldout"]}
    variants = [v for v in dict.fromkeys(v for r in records for v in r["variants"]["heldout"]) if v in seen]
    per_variant = []
    for v in variants:
        value = lambda r, v=v: r["metrics"]["heldout"]["l1_per_variant"].get(v)  # noqa: E731
        per_variant.append(_test(_means(mine, value), _means(base, value), seed, variant=v, scale=orders.get(v),
                                 **{**about, "measure": f"L1 on {v}"}))
    return out, per_variant


def heldout_indices(record: dict, dims: list[str]) -> tuple[np.ndarray, str]:
    """A record's held-out indices [D] and which they are ("balanced" or "mean";
    ``study_markdown.INDICES_TEXT`` says what each is): the mean over
    the held-out wordings of each wording's order-balanced indices (wording version 4), else the
    mean indices over the held-out renderings."""
    split = record["splits"]["heldout"]
    if split.get("indices_per_wording"):
        return np.mean([[w[d] for d in dims] for w in split["indices_per_wording"].values()], axis=0), "balanced"
    return np.array([split["indices"][d] for d in dims], dtype=float), "mean"


def direction(a: str, naive: str, groups: dict, dims: list[str], seed: int) -> dict:
    """Does aligner ``a`` move the model toward its targets? Per target both have (the unit): a's
    held-out indices, averaged over its seeds, minus naive's (the change) and the target's scores
    minus naive's (the way to go); ``stats.toward_target`` regresses the change on the way, pooled
    over targets and the dimensions every target has, with a target-permutation p."""
    common = sorted(t for t in groups[a] if t in groups[naive])
    about = {"a": a, "b": naive, "measure": "the direction of the change"}
    if len(common) < 2:
        return {**about, "skipped": f"{len(common)} target{'s' if len(common) != 1 else ''} in common; the "
                                    "direction test needs 2"}
    dims = [d for d in dims if all(d in groups[naive][t][0]["target"]["scores"] for t in common)]
    changes, ways, kinds = [], [], set()
    for t in common:
        mine = [heldout_indices(r, dims) for r in groups[a][t]]
        start = [heldout_indices(r, dims) for r in groups[naive][t]]
        kinds |= {k for _, k in mine + start}
        naive_indices = np.mean([v for v, _ in start], axis=0)
        changes.append(np.mean([v for v, _ in mine], axis=0) - naive_indices)
        ways.append(np.array([groups[naive][t][0]["target"]["scores"][d] for d in dims]) - naive_indices)
    result = toward_target(changes, ways, seed=seed)
    if result["p_value"] is None:
        return {**about, "skipped": "the way to the target is the same at every target and dimension"}
    return {**about, "unit": "target", "targets": [t[0] for t in common], "dimensions": dims,
            "seeds_a": max(len(groups[a][t]) for t in common), "indices": "/".join(sorted(kinds)), **result}


def dimension_changes(a: str, naive: str, groups: dict, dims: list[str], seed: int) -> list[dict]:
    """Per dimension: the change of the mean held-out index against the naive model (signed), and
    the change of its absolute error to the target (negative: closer)."""
    out = []
    for d in dims:
        index = lambda r, d=d: r["splits"]["heldout"]["indices"].get(d)  # noqa: E731
        error = lambda r, d=d: r["metrics"]["heldout"]["signed_error"].get(d)  # noqa: E731
        about = {"a": a, "b": naive, "dimension": d}
        out.append(_test(_means(groups[a], index), _means(groups[naive], index), seed, change="index",
                         **about, measure=f"a held-out {d.upper()}"))
        out.append(_test(_absolute(_means(groups[a], error)), _absolute(_means(groups[naive], error)), seed,
                         change="abs_error", **about, measure=f"a held-out {d.upper()} error"))
    return out


def diagnostics_summary(label: str, groups: dict) -> dict:
    """One aligner setup's validity diagnostics over all evaluated variants: each diagnostic's mean
    over targets (of its mean over seeds), the targets whose mean position bias and reversal
    distance exceed the thresholds, and how many entries are interpretable."""
    values = {key: _means(groups, _diagnostic(read)) for key, read in DIAGNOSTICS}
    assessed = [r for rs in groups.values() for r in rs if (r["metrics"].get("diagnostics") or {}).get("all")]
    return {"aligner": label, "targets": len(values["option_mass"]), "entries": len(assessed),
            "interpretable_entries": sum(bool(r["metrics"]["diagnostics"]["all"]["interpretable"]) for r in assessed),
            **{key: stat(v for _, v in values[key].values()) for key, _ in DIAGNOSTICS},
            "position_bias_above": sum(v > MAX_POSITION_BIAS for _, v in values["position_bias"].values()),
            "reversal_above": sum(v > MAX_REVERSAL_DISTANCE for _, v in values["reversal_tv"].values())}


def diagnostics_changes(a: str, naive: str, groups: dict, seed: int) -> list[dict]:
    return [_test(_means(groups[a], _diagnostic(read)), _means(groups[naive], _diagnostic(read)), seed,
                  a=a, b=naive, diagnostic=key, measure="validity diagnostics") for key, read in DIAGNOSTICS]


def _per_aligner(label: str, own: list[dict], per_target: dict, dims: list[str]) -> dict:
    """One aligner setup over its targets: L1, option mass and |error| (each target's seed mean,
    then over targets), L1 per prompt variant and its spread, and the search's own fitness beside
    its full-precision re-score. ``own``: its rows of the study's table; ``per_target``: target ->
    its records (seeds)."""
    own_records = [r for rs in per_target.values() for r in rs]
    searched = [r["history"]["best_fitness_search"] for r in own_records
                if r["history"] is not None and r["history"].get("best_fitness_search") is not None]
    return {
        "aligner": label, "targets": len(own),
        "l1": {s: stat(t["l1"][s]["mean"] for t in own) for s in SPLITS},
        "option_mass": {s: stat(t["option_mass"][s]["mean"] for t in own) for s in SPLITS},
        "abs_error": {s: {d: stat(t["abs_error"][s][d] for t in own)["mean"] for d in dims} for s in SPLITS},
        "variants": {s: own_records[0]["variants"][s] for s in SPLITS},
        # per variant: mean over targets of the mean over seeds
        "l1_per_variant": {v: stat(stat(r["metrics"][s]["l1_per_variant"][v] for r in rs)["mean"]
                                   for rs in per_target.values())["mean"]
                           for s in SPLITS for v in own_records[0]["variants"][s]},
        # per target: largest minus smallest variant's L1 (seed means), averaged over targets
        "variant_spread": stat(
            max(m_) - min(m_) for m_ in ([stat(r["metrics"][s]["l1_per_variant"][v] for r in rs)["mean"]
                                          for s in SPLITS for v in rs[0]["variants"][s]]
                                         for rs in per_target.values())),
        "search_fitness": stat(searched) if searched else None,
        "fitness": stat(r["aligner"]["fitness"] for r in own_records) if searched else None,
        "content_free": {s: _beside_content_free(per_target, s) for s in SPLITS},
        "verdicts": _verdicts(own_records),
        "mirror": stat(v for _, v in _means(per_target, _heldout_mirror).values())}


def _verdicts(records: list[dict]) -> dict:
    """The held-out verdicts ``aligned`` (measurement v4) of one aligner setup's entries: how many
    entries have one, how many are aligned, and how often each check failed."""
    verdicts = [r["metrics"]["heldout"]["alignment"] for r in records if r["metrics"]["heldout"].get("alignment")]
    failed: dict[str, int] = defaultdict(int)
    for v in verdicts:
        for check in v["failed"]:
            failed[check] += 1
    return {"entries": len(verdicts), "aligned": sum(bool(v["aligned"]) for v in verdicts), "failed": dict(failed)}


def _heldout_mirror(record: dict) -> float | None:
    """The held-out mirror statistic (measurement v4; None for older entries and for the naive model)."""
    return record["metrics"]["heldout"].get("mirror")


def _beside_content_free(per_target: dict, split: str) -> dict:
    """L1 minus the content-free L1 per target (seed means): their mean over targets (negative: closer
    to the target than a respondent who answers C to everything) and the targets below it by at least
    the verdict's minimum effect (``MIN_EFFECT`` of the content-free L1, as the check below_content_free)."""
    l1, free = _means(per_target, _l1(split)), _means(per_target, lambda r: record_content_free_l1(r, split))
    gaps = {t: l1[t][1] - free[t][1] for t in l1}
    return {**stat(gaps.values()),
            "below": sum(v < check_threshold("below_content_free", free[t][1]) for t, v in gaps.items()),
            "min_effect": MIN_EFFECT}


def _l1_tests(rows: list[dict], groups: dict, comparisons, seed: int) -> tuple[list[dict], list[dict]]:
    """(done, skipped): the paired L1 tests of ``comparisons`` and of every other aligner with
    entries against the naive model (``comparisons_for``), on both splits, Holm-adjusted within
    each family; a comparison without entries or across wordings is skipped, with the reason. Two
    budgeted setups at different budgets are not paired here (unequal cost; ``budget_ladder``
    compares them budget by budget)."""
    l1_tests, budget_of = [], _budgets(rows)
    asked = comparisons_for({r["aligner"]["name"] for r in rows}, comparisons)
    for a_name, b_name, family in asked:
        a_labels, b_labels = _labels(rows, a_name), _labels(rows, b_name)
        if not a_labels or not b_labels:
            absent = " or ".join(n for n, ls in ((a_name, a_labels), (b_name, b_labels)) if not ls)
            l1_tests.append({"a": a_name, "b": b_name, "family": family, "skipped": f"no entries of {absent}"})
        apart = [(a, b) for a in a_labels for b in b_labels
                 if a in budget_of and b in budget_of and budget_of[a] != budget_of[b]]
        if a_labels and b_labels and len(apart) == len(a_labels) * len(b_labels):
            l1_tests.append({"a": a_name, "b": b_name, "family": family, "skipped": (
                f"no budget in common ({a_name} at {', '.join(str(budget_of[a]) for a in a_labels)}, {b_name} at "
                f"{', '.join(str(budget_of[b]) for b in b_labels)}): setups at different budgets are not paired")})
        for a, b in ((a, b) for a in a_labels for b in b_labels if (a, b) not in apart):
            if _other_wording(groups, a, b):
                l1_tests.append({"a": a, "b": b, "family": family, "skipped": _other_wording(groups, a, b)})
                continue
            l1_tests += [_test(_means(groups[a], _l1(s)), _means(groups[b], _l1(s)), seed, a=a, b=b, split=s,
                               family=family, measure="L1") for s in SPLITS]
    tests, skipped = [], []
    for family in dict.fromkeys(c[2] for c in asked):
        done, left = _family([t for t in l1_tests if t["family"] == family])
        tests += done
        skipped += left
    return tests, skipped


# -- the budget ladder ----------------------------------------------------------------------------

LADDER_A = "de"  # the aligner the ladder compares with each other budgeted aligner, budget by budget


def _budgets(rows: list[dict]) -> dict[str, int]:
    """Aligner label -> its budget (candidate evaluations), for the aligners that spend one."""
    return {r["aligner_label"]: r["aligner"]["budget"] for r in rows if r["aligner"]["budget"] is not None}


def _names(rows: list[dict]) -> dict[str, str]:
    """Aligner label -> aligner name."""
    return {r["aligner_label"]: r["aligner"]["name"] for r in rows}


def _crossings(tests: list[dict], name_of: dict[str, str]) -> list[dict]:
    """Per pair of aligners and split: the consecutive budgets between which the sign of the mean
    difference (A − B over their common targets) changes; ``differences``: that difference at each
    budget tested, so a pair that never crosses says so too."""
    out = []
    key = lambda t: (name_of[t["a"]], name_of[t["b"]], t["split"])  # noqa: E731
    for a, b, split in dict.fromkeys(key(t) for t in tests):
        points = [(t["budget"], t["mean_difference"]) for t in tests if key(t) == (a, b, split)]
        between = [[x[0], y[0]] for x, y in zip(points, points[1:]) if x[1] * y[1] < 0]
        out.append({"a": a, "b": b, "split": split, "differences": [[n, d] for n, d in points],
                    "crossings": between})
    return out


def budget_ladder(rows: list[dict], groups: dict, per_aligner: list[dict], seed: int) -> dict | None:
    """The aligners that spend a budget, along the budgets the entries have (None below two): per
    aligner setup and budget its mean L1 over targets (each target's mean over seeds), and per budget
    ``LADDER_A`` against every other budgeted aligner at that budget (paired over targets, both
    splits), Holm-adjusted within the family of that budget; and where ``LADDER_A`` − B changes sign."""
    budget_of = _budgets(rows)
    budgets = sorted(set(budget_of.values()))
    if len(budgets) < 2:
        return None
    name_of = _names(rows)
    points = [{"aligner": name_of[a["aligner"]], "label": a["aligner"], "budget": budget_of[a["aligner"]],
               "targets": a["targets"], "l1": a["l1"]} for a in per_aligner if a["aligner"] in budget_of]
    families, done_all = [], []
    for budget in budgets:
        here = sorted((label for label, b in budget_of.items() if b == budget), key=_order)
        items = []
        for a, b in ((a, b) for a in here if name_of[a] == LADDER_A for b in here if name_of[b] != LADDER_A):
            about = {"a": a, "b": b, "budget": budget, "family": f"budget {budget}"}
            if _other_wording(groups, a, b):
                items.append({**about, "skipped": _other_wording(groups, a, b)})
                continue
            items += [_test(_means(groups[a], _l1(s)), _means(groups[b], _l1(s)), seed, **about, split=s,
                            measure="L1") for s in SPLITS]
        done, skipped = _family(items)
        done_all += done
        families.append({"budget": budget, "tests": done, "skipped": skipped})
    return {"budgets": budgets, "a": LADDER_A, "points": points, "families": families,
            "crossings": _crossings(done_all, name_of)}


def study(entries: Entries, comparisons=COMPARISONS, seed: int = 0, grid: dict | None = None,
          earlier: Entries | None = None) -> dict:
    """The study document (JSON-ready) of the valid entries of a folder; ``grid``: the experiment's
    targets ({"name", "source"}), aligners ({name: whether it searches}) and seeds, to say which
    combinations are missing (``experiment_grid`` reads one from an experiment file); ``earlier``:
    an earlier study's entries, whose headline answers are set beside these (``against``)."""
    if not entries.records:
        raise CultbenchError("no valid entries to make a study of")
    rows = aggregate(entries.records)
    if not rows:
        raise CultbenchError("no entries of an index instrument to make a study of: the study compares L1 to "
                             "published profiles; distribution instruments' entries are compared on the leaderboard "
                             "(`cultbench leaderboard build`)")
    label_of = {name: r["aligner_label"] for r in rows for name in r["files"]}
    models = []
    for model in sorted({r["model_label"] for r in rows}):
        mine = [r for r in rows if r["model_label"] == model]
        records = {name: entries.records[name] for r in mine for name in r["files"]}
        aligners = sorted({r["aligner_label"] for r in mine}, key=_order)
        targets = sorted({(r["target"]["name"], r["target"]["source"]) for r in mine})
        groups: dict = {label: defaultdict(list) for label in aligners}  # label -> target -> records (seeds)
        for name, record in records.items():
            groups[label_of[name]][_target(record)].append(record)
        dims = [d for d in mine[0]["instrument"]["dimensions"] if d in mine[0]["signed_error"]["heldout"]]
        table = [{"target": target_label(r["target"]), "aligner": r["aligner_label"], "n": r["n"],
                  "seeds": r["seeds"], "l1": r["l1"], "option_mass": r["option_mass"],
                  "signed_error": {s: {d: r["signed_error"][s][d]["mean"] for d in dims} for s in SPLITS},
                  "abs_error": {s: {d: abs(r["signed_error"][s][d]["mean"]) for d in dims} for s in SPLITS}}
                 for r in sorted(mine, key=lambda r: (r["target"]["name"], _order(r["aligner_label"])))]
        per_aligner = [_per_aligner(label, [t for t in table if t["aligner"] == label], groups[label], dims)
                       for label in aligners]
        tests, skipped = _l1_tests(mine, groups, comparisons, seed)
        ladder = budget_ladder(mine, groups, per_aligner, seed)
        naive = _labels(mine, BASELINE)
        others = [a for a in aligners if a not in naive]
        pairs = [(a, n) for a in others for n in naive if not _other_wording(groups, a, n)]
        apart = [{"a": a, "b": n, "skipped": _other_wording(groups, a, n)} for a in others for n in naive
                 if _other_wording(groups, a, n)]
        moved = [transfer(a, n, groups, seed) for a, n in pairs]
        gains = [t for t, _ in moved]
        gap_done, gap_skipped = _family([g["gap"] for g in gains] + apart)
        variant_done, variant_skipped = _family([v for _, vs in moved for v in vs])
        dim_done, dim_skipped = _family([t for a, n in pairs for t in dimension_changes(a, n, groups, dims, seed)]
                                        + apart)
        diag_done, diag_skipped = _family([t for a, n in pairs for t in diagnostics_changes(a, n, groups, seed)]
                                          + apart)
        direction_done, direction_skipped = _family([direction(a, n, groups, dims, seed) for a, n in pairs] + apart)
        labels = {(r["target"]["name"], r["target"]["source"]): target_label(r["target"]) for r in mine}
        models.append({
            "model": model, "aligners": aligners, "targets": [{"name": n, "source": s} for n, s in targets],
            "coverage": coverage(list(records.values()), labels, grid),
            "cost": [cost(label, [r for rs in groups[label].values() for r in rs]) for label in aligners],
            "compute": compute(list(records.values())),
            "first_population": [first_population(label, groups[label]) for label in aligners
                                 if any(r["history"] is not None for rs in groups[label].values() for r in rs)],
            "first_generation": dict(zip(("tests", "skipped"), first_generation_tests(mine, groups, seed))),
            "table": table, "per_aligner": per_aligner, "tests": tests, "skipped": skipped,
            "baseline": None if naive else f"no entries of {BASELINE}: no gains, dimension or diagnostics changes",
            "transfer": {"gains": gains, "gap_tests": gap_done, "per_variant": variant_done,
                         "skipped": gap_skipped + variant_skipped},
            "dimensions": {"tests": dim_done, "skipped": dim_skipped},
            "direction": {"tests": direction_done, "skipped": direction_skipped},
            "diagnostics": {"per_aligner": [diagnostics_summary(label, groups[label]) for label in aligners],
                            "tests": diag_done, "skipped": diag_skipped,
                            "thresholds": {"position_bias": MAX_POSITION_BIAS, "reversal_tv": MAX_REVERSAL_DISTANCE}},
            **({} if ladder is None else {"ladder": ladder})})
    doc = {"format": STUDY_FORMAT, "entries_used": len(entries.records), "rejected": entries.rejected,
           "duplicates": entries.duplicates, "grid": None if grid is None else grid.get("file"),
           "models": models, "rows": rows}
    if earlier is not None:
        doc["against"] = against(earlier, entries, comparisons, seed)
    return doc


# -- against an earlier study ---------------------------------------------------------------------

# What may differ between two studies' versions of one combination: the wordings (the point of a new
# study), the aligner's hyper-parameters and its search precision.
APART_FROM_EARLIER = ("variants", "hyperparameters", "search_dtype")


def _combination(record: dict) -> str:
    """A record's combination (``combination_key_of``: model and its files, instrument, constants, target,
    aligner, seed, budget, distance, dimensions) without what may differ from an earlier study's."""
    return json.dumps({k: v for k, v in combination_key_of(record).items() if k not in APART_FROM_EARLIER},
                      sort_keys=True)


def _pick(items: list[dict], **key) -> dict | None:
    return next((t for t in items if all(_setup(t.get(k)) == _setup(v) for k, v in key.items())), None)


def _setup(label):
    """An aligner label without the hash that tells alike setups apart within one set of entries."""
    return label.split(" [")[0] if isinstance(label, str) else label


def _summary(t: dict | None, keys: tuple[str, ...]) -> dict | None:
    return None if t is None or "skipped" in t else {k: t.get(k) for k in keys}


TEST_KEYS = ("mean_difference", "ci_low", "ci_high", "ci_method", "p_value", "p_holm", "min_p_value", "n_pairs",
             "a_better_fraction")
DIRECTION_KEYS = ("slope", "pearson_r", "p_value", "p_holm", "min_p_value", "n_targets")


def against(earlier: Entries, entries: Entries, comparisons=COMPARISONS, seed: int = 0) -> dict:
    """An earlier study's headline answers beside this one's, on the same combinations: both sets of
    entries are cut to the combinations they share (``_combination``), and each is studied the same
    way (its own Holm families), so each row compares the same model, targets, seeds and budgets.
    Per model, one row per question: the primary L1 tests, the held-out − training gain, the
    direction slope, the L1 beside the content-free respondent's, the gains on in-order and reversed
    held-out variants, and the held-out mirror statistic (where the entries record it)."""
    keys_now = {_combination(r) for r in entries.records.values()}
    then = Entries(records={n: r for n, r in earlier.records.items() if _combination(r) in keys_now})
    keys_then = {_combination(r) for r in then.records.values()}
    now = Entries(records={n: r for n, r in entries.records.items() if _combination(r) in keys_then})
    out = {"folder": earlier.folder, "entries": len(earlier.records), "kept": len(then.records),
           "now_entries": len(entries.records), "now_kept": len(now.records), "models": []}
    if not then.records:
        return {**out, "reason": "no earlier entry is one of these entries' combinations"}
    try:
        sides = {"earlier": study(then, comparisons, seed), "now": study(now, comparisons, seed)}
    except CultbenchError as exc:  # e.g. only distribution-instrument entries in common
        return {**out, "reason": str(exc)}
    out["wording_versions"] = {side: sorted({v for m in doc["models"] for v in m["coverage"]["wording_versions"]},
                                            key=str) for side, doc in sides.items()}
    before = {m["model"]: m for m in sides["earlier"]["models"]}
    for after in sides["now"]["models"]:
        m = {"earlier": before.get(after["model"]), "now": after}
        if m["earlier"] is None:  # the same model files under another label (e.g. another quantisation text)
            out.setdefault("unmatched_models", []).append(after["model"])
            continue
        rows = []
        for t in (t for t in after["tests"] if t["family"] == PRIMARY):
            key = {"a": t["a"], "b": t["b"], "split": t["split"]}
            rows.append({"question": "L1 difference", "kind": "l1_test", **key,
                         **{side: _summary(_pick(m[side]["tests"], **key), TEST_KEYS) for side in m}})
        for t in after["transfer"]["gap_tests"]:
            key = {"a": t["a"], "b": t["b"]}
            rows.append({"question": "held-out gain − training gain", "kind": "gap_test", **key,
                         **{side: _summary(_pick(m[side]["transfer"]["gap_tests"], **key), TEST_KEYS) for side in m}})
        for t in after["direction"]["tests"]:
            key = {"a": t["a"], "b": t["b"]}
            rows.append({"question": "direction slope", "kind": "direction", **key,
                         **{side: _summary(_pick(m[side]["direction"]["tests"], **key), DIRECTION_KEYS)
                            for side in m}})
        per = {side: {_setup(a["aligner"]): a for a in m[side]["per_aligner"]} for side in m}
        labels = {side: {_setup(a): a for a in m[side]["aligners"]} for side in m}
        for a in after["aligners"]:
            rows.append({"question": "held-out L1 − content-free L1", "kind": "content_free", "a": a,
                         **{side: per[side][_setup(a)]["content_free"]["heldout"] if _setup(a) in per[side] else None
                            for side in m}})
        for a in after["aligners"]:
            gains = {side: order_gains(m[side], labels[side][_setup(a)]) for side in m if _setup(a) in labels[side]}
            if any(gains.values()):
                rows.append({"question": "gain over naive, in-order / reversed held-out variants", "kind": "order_gains", "a": a,
                             **{side: None if gains.get(side) is None else
                                {"in_order": gains[side][0], "reversed": gains[side][1]} for side in m}})
        for a in after["aligners"]:
            mirrors = {side: per[side][_setup(a)]["mirror"] if _setup(a) in per[side] and
                       per[side][_setup(a)]["mirror"]["n"] else None for side in m}
            if any(mirrors.values()):
                rows.append({"question": "held-out mirror", "kind": "mirror", "a": a, **mirrors})
        out["models"].append({"model": after["model"], "rows": rows})
    return out


def write_study(entries: Entries, markdown: Path | None = None, json_path: Path | None = None,
                charts_dir: Path | None = None, check: bool = False,
                grid: dict | None = None, earlier: Entries | None = None) -> tuple[dict, list[Path]]:
    """Write the study's JSON, its Markdown (between the study markers when the file has them,
    else the whole file) and one convergence SVG per model x target. Returns the document and
    the files written, or with ``check`` (nothing written) the files whose text differs from
    what the entries give."""
    doc = study(entries, grid=grid, earlier=earlier)
    changed: list[Path] = []

    def emit(path: Path, text: str) -> None:
        path = Path(path)
        if not check:
            write_text_atomic(path, text)
            changed.append(path)
        elif not path.is_file() or path.read_text(encoding="utf-8") != text:
            changed.append(path)

    charts: dict[str, dict[str, str]] = {}
    if charts_dir is not None:
        colours = chart_colours(doc["rows"])
        base = Path(markdown).parent if markdown is not None else Path(".")
        for m in doc["models"]:
            for target in m["targets"]:
                rows = [r for r in doc["rows"] if r["model_label"] == m["model"]
                        and (r["target"]["name"], r["target"]["source"]) == (target["name"], target["source"])]
                label = target_label(rows[0]["target"])
                svg = convergence_svg(f"{label} · {m['model']}", rows, colours)
                if svg is None:
                    continue
                slug = short_slug(f"{m['model']}-{target['name']}-{target['source']}")
                path = Path(charts_dir) / f"convergence-{slug}.svg"
                emit(path, svg + "\n")
                charts.setdefault(m["model"], {})[label] = Path(os.path.relpath(path, base)).as_posix()
    if json_path is not None:
        public = {k: v for k, v in doc.items() if k != "rows"}
        emit(json_path, json.dumps(public, indent=2, sort_keys=True, allow_nan=False) + "\n")
    if markdown is not None:
        emit(markdown, splice(Path(markdown), render_study_markdown(doc, charts)))
    return doc, changed


BEGIN, END = "<!-- study:begin (generated by `cultbench leaderboard study`; do not edit) -->", "<!-- study:end -->"


def splice(path: Path, generated: str) -> str:
    """The file's text with the part between the study markers replaced (or the generated text
    alone, between markers, when the file does not exist)."""
    block = f"{BEGIN}\n{generated}{END}"
    if not path.exists():
        return block + "\n"
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text.split(BEGIN, 1)[1]:
        raise CultbenchError(f"{path} exists but has no study markers ({BEGIN!r} ... {END!r}); add them where the "
                             "study goes, or give a new file")
    head, rest = text.split(BEGIN, 1)
    return head + block + rest.split(END, 1)[1]


def generated_part(path: Path) -> str:
    """The generated text between the study markers of a Markdown file."""
    text = Path(path).read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise CultbenchError(f"{path} has no study markers")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].removeprefix("\n")
