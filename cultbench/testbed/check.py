"""The benchmark's sensitivity and specificity on the testbeds: does it recover the culture and the
position bias that were planted, and find none where none was?

Every figure comes from the benchmark's own route: ``cultbench run`` (a sweep) on the testbed
folder with the naive and icl aligners (icl's persona is the sentence the culture model was
trained on), scored on the benchmark's wordings, none of which the testbed saw in training.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from aligners.baselines import format_persona
from cultbench.errors import CultbenchError
from cultbench.evaluation.metrics import record_content_free_l1
from cultbench.instruments import load_instrument
from cultbench.scoring.models import load_model
from cultbench.prompts import PromptVariant
from cultbench.runs.results import read_record
from cultbench.scoring.scorer import SurveyScorer
from cultbench.runs.sweep import Sweep, SweepSpec
from cultbench.testbed.groundtruth import all_country_mean

# Thresholds of the check (docs/testbed.md says why).
MAX_TRAINED_L1 = 25.0  # culture model, trained countries with their persona: held-out L1 to the profile
MIN_SLOPE = 0.8  # directedness slope of (persona - no persona) on (target - no persona)
CONTROL_TOLERANCE = 1.0  # position and constant controls: L1 = content-free L1 within this
BIAS_TOLERANCE = 0.05  # recovered position bias: within this of the planted p


@dataclass
class Check:
    name: str
    value: float | bool | None
    rule: str  # e.g. "<= 25" or "== false"
    passed: bool | None  # None: could not be computed
    note: str = ""

    def line(self) -> str:
        status = {True: "PASS", False: "FAIL", None: "NOT COMPUTED"}[self.passed]
        value = "n/a" if self.value is None else (f"{self.value:.3f}" if isinstance(self.value, float) else str(self.value))
        return f"{status:12s} {self.name}: {value} (needs {self.rule})" + (f"; {self.note}" if self.note else "")


def read_testbed(folder) -> dict:
    path = Path(folder) / "testbed.json"
    if not path.is_file():
        raise CultbenchError(f"{folder} is not a testbed folder (no testbed.json); build one with "
                             "`cultbench testbed build`")
    return json.loads(path.read_text(encoding="utf-8"))


def run_aligners(folder, targets: Sequence[str], aligners: Sequence[str], budget: int = 10,
                 echo: Callable[[str], None] | None = None) -> list[dict]:
    """The result records of ``aligners`` x ``targets`` on the testbed at ``folder`` (a sweep in a
    temporary folder, exactly as ``cultbench run`` makes them)."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = SweepSpec(targets=list(targets), aligners=list(aligners), models=[str(folder)], budgets=[budget],
                         output=Path(tmp) / "entries", runs_dir=Path(tmp) / "runs", progress=False)
        paths = [path for _, path in Sweep(spec, echo=echo or (lambda m: None)).run()]
        return [read_record(p) for p in paths]


def by_aligner(records: Sequence[dict], aligner: str) -> list[dict]:
    return [r for r in records if r["aligner"]["name"] == aligner]


def heldout_l1(record: dict) -> float:
    return float(record["metrics"]["heldout"]["l1"])


def interpretable(record: dict) -> bool:
    return bool(record["metrics"]["diagnostics"]["all"]["interpretable"])


def position_bias(record: dict) -> float:
    return float(record["metrics"]["diagnostics"]["all"]["position_bias"]["mean"])


def aligned(record: dict) -> bool | None:
    """The record's ``aligned`` verdict on the held-out wordings (measurement v4; the naive model
    has none)."""
    value = (record["metrics"]["heldout"].get("alignment") or {}).get("aligned")
    return value if isinstance(value, bool) else None


def slope(records_aligned: Sequence[dict], records_naive: Sequence[dict]) -> float | None:
    """Least-squares slope through 0 of (aligned - naive) on (target - naive), pooled over targets and
    dimensions, on the held-out indices."""
    naive = {r["target"]["name"]: r for r in records_naive}
    xs, ys = [], []
    for r in records_aligned:
        n = naive.get(r["target"]["name"])
        if n is None:
            continue
        for d in r["instrument"]["dimensions"]:
            base = n["splits"]["heldout"]["indices"][d]
            xs.append(r["target"]["scores"][d] - base)
            ys.append(r["splits"]["heldout"]["indices"][d] - base)
    if not xs:
        return None
    x, y = np.asarray(xs), np.asarray(ys)
    return float(x @ y / (x @ x))


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _verdicts(name: str, records: Sequence[dict], want: bool) -> Check:
    """Every record's ``aligned`` verdict equals ``want`` (NOT COMPUTED without v4 verdicts)."""
    values = [aligned(r) for r in records]
    if not records or any(v is None for v in values):
        return Check(name, None, f"== {str(want).lower()} for all", None,
                     "the records carry no `aligned` verdict (measurement v4, issue 23)")
    hits = sum(v == want for v in values)
    return Check(name, f"{hits}/{len(values)}", f"== {str(want).lower()} for all", hits == len(values))


def carry_over(folder, record: dict, records: Sequence[dict], wordings: int = 4) -> dict:
    """How the trained countries' answers carry over from the testbed's own training wordings to the
    benchmark's, which it never saw: per set of wordings, the L1 of the mean indices over its
    renderings (every wording in both orders, so the mean is order-balanced) to the profile, mean
    over the countries of ``records`` (icl records)."""

    inst, loaded = load_instrument("vsm2013"), load_model(str(folder))
    pool = [PromptVariant(**v) for v in record["training_wordings"][: 2 * wordings]]
    names = [r["target"]["name"] for r in records]
    scored = SurveyScorer(loaded.model, loaded.tokenizer, inst, pool).score(
        personas=[format_persona(record["persona_template"], n) for n in names])
    pool_l1 = [float(np.abs(scored.indices[c].mean(axis=0) - np.array([r["target"]["scores"][d] for d in
                                                                       inst.dimension_ids])).sum())
               for c, r in enumerate(records)]

    def split_l1(split):
        return _mean(sum(abs(r["splits"][split]["indices"][d] - r["target"]["scores"][d]) for d in inst.dimension_ids)
                     for r in records)

    per_wording = {w: _mean(r["metrics"]["heldout"]["l1_per_wording"][w] for r in records)
                   for w in records[0]["metrics"]["heldout"]["l1_per_wording"]} if records else {}
    return {"training_pool_l1": _mean(pool_l1), "benchmark_train_l1": split_l1("train"),
            "benchmark_heldout_l1": split_l1("heldout"), "benchmark_heldout_l1_per_wording": per_wording,
            "pool_wordings": wordings, "countries": len(records)}


def check_culture(folder, record: dict, countries: int | None = None, echo=None) -> tuple[list[Check], dict]:
    """The culture model on its trained countries (icl: their persona) and without a persona (naive)."""

    trained = record["trained_countries"][:countries]
    records = run_aligners(folder, trained, ["naive", "icl"], echo=echo)
    icl, naive = by_aligner(records, "icl"), by_aligner(records, "naive")
    l1 = [heldout_l1(r) for r in icl]
    free = [record_content_free_l1(r) for r in icl]
    p = record["position_bias"] or 0.0
    inst = load_instrument("vsm2013")
    no_persona = np.array([naive[0]["splits"]["heldout"]["indices"][d] for d in inst.dimension_ids])
    no_persona_l1 = float(np.abs(no_persona - all_country_mean(inst)).sum())
    s = slope(icl, naive)
    checks = [
        Check("culture, trained countries with persona: mean held-out L1 to the profile", _mean(l1),
              f"<= {MAX_TRAINED_L1:g}", _mean(l1) <= MAX_TRAINED_L1,
              f"content-free L1 {_mean(free):.1f}; the planted bias alone costs p x content-free = "
              f"{p * _mean(free):.1f}; max over {len(l1)} countries {max(l1):.1f}"),
        Check("culture, trained countries: directedness slope (persona - none on target - none)", s,
              f">= {MIN_SLOPE:g}", None if s is None else s >= MIN_SLOPE),
        Check("culture, trained countries: interpretable", f"{sum(map(interpretable, icl))}/{len(icl)}",
              "== true for all", all(map(interpretable, icl))),
        _verdicts("culture, trained countries: icl aligned", icl, True),
        Check("culture, no persona: held-out L1 to the all-country mean", no_persona_l1,
              f"<= {MAX_TRAINED_L1:g}", no_persona_l1 <= MAX_TRAINED_L1),
    ]
    figures = {"trained_l1": dict(zip([r["target"]["name"] for r in icl], l1)), "content_free_l1": _mean(free),
               "no_persona_l1": no_persona_l1, "slope": s, "position_bias": position_bias(naive[0]),
               "train_l1_mean": _mean(float(r["metrics"]["train"]["l1"]) for r in icl),
               "carry_over": carry_over(folder, record, icl)}
    return checks, figures


def check_control(folder, record: dict, targets: Sequence[str], budget: int, echo=None) -> tuple[list[Check], dict]:
    """A control (position or constant) on some targets: nothing interpretable, the content-free L1,
    and no aligner (baselines and a search) aligned."""
    kind = record["kind"]
    records = run_aligners(folder, targets, ["naive", "icl", "icl-profile", "random"], budget=budget, echo=echo)
    naive = by_aligner(records, "naive")
    gap = max(abs(heldout_l1(r) - record_content_free_l1(r)) for r in naive)
    checks = [
        Check(f"{kind} control: interpretable", any(map(interpretable, naive)), "== false", not any(map(interpretable, naive))),
        Check(f"{kind} control: |held-out L1 - content-free L1|, max over targets", gap,
              f"<= {CONTROL_TOLERANCE:g}", gap <= CONTROL_TOLERANCE),
        _verdicts(f"{kind} control: aligned (icl, icl-profile, random)",
                  [r for r in records if r["aligner"]["name"] != "naive"], False),
    ]
    figures = {"heldout_l1": {f"{r['aligner']['name']} {r['target']['name']}": heldout_l1(r) for r in records},
               "content_free_l1": {r["target"]["name"]: record_content_free_l1(r) for r in naive},
               "aligned": {f"{r['aligner']['name']} {r['target']['name']}": aligned(r) for r in records},
               "failed_checks": {r["target"]["name"]: r["metrics"]["diagnostics"]["all"]["failed"] for r in naive}}
    return checks, figures


def check_bias(biased: dict, unbiased: dict, p: float) -> Check:
    """The position-bias diagnostic of the biased culture model minus that of the p = 0 one is p."""
    diff = biased["position_bias"] - unbiased["position_bias"]
    return Check("culture: recovered position bias (diagnostic, p model minus p = 0 model)", diff,
                 f"within {BIAS_TOLERANCE:g} of planted p = {p:g}", abs(diff - p) <= BIAS_TOLERANCE)


CONTROL_TARGETS = ("U.S.A.", "China", "India")  # held-out study targets


def check_testbeds(folders: Sequence, countries: int | None = None, budget: int = 10,
                   echo=None) -> tuple[list[Check], dict]:
    """Every check that the given testbed folders allow (culture, culture with p = 0, controls)."""
    testbeds = [(Path(f), read_testbed(f)) for f in folders]
    checks, figures, biased, unbiased = [], {}, None, None
    for folder, record in testbeds:
        label = f"{record['kind']} ({folder})"
        if record["kind"] == "culture" and record["position_bias"]:
            found, figures[label] = check_culture(folder, record, countries, echo)
            checks += found
            biased = (record, figures[label])
        elif record["kind"] == "culture":
            naive = run_aligners(folder, record["trained_countries"][:1], ["naive"], echo=echo)[0]
            figures[label] = {"position_bias": position_bias(naive)}
            unbiased = (record, figures[label])
        else:
            found, figures[label] = check_control(folder, record, CONTROL_TARGETS, budget, echo)
            checks += found
    if biased and unbiased:
        checks.append(check_bias(biased[1], unbiased[1], biased[0]["position_bias"]))
    elif biased:
        checks.append(Check("culture: recovered position bias", None, "a p = 0 build beside it", None,
                            "give a culture testbed built with --position-bias 0 too"))
    return checks, figures


def report(checks: Sequence[Check]) -> str:
    counts = {s: sum(c.passed is s for c in checks) for s in (True, False, None)}
    lines = [c.line() for c in checks]
    lines.append(f"{counts[True]} passed, {counts[False]} failed, {counts[None]} not computed")
    return "\n".join(lines)
