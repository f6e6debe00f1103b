"""Calibrate the aligners at equal cost: L1 against wall time or evaluations, training and held-out splits.

For every target x setting (an aligner and its hyper-parameters), the aligner runs on the
training prompt variants until a wall-clock budget is spent (``--seconds``), or a budget in
evaluation units (``--budget``: one fp32 candidate evaluation is one unit, a bf16 one costs the
setting's ``eval_cost``, a prompt-tuning step its ``step_cost``; the units are the measured cost
ratios, so the results do not depend on how busy the machine was); the scorer it uses is
wrapped so that each call is timed and the best candidate so far is recorded with its training L1
(fp32, what the aligner itself computes). At a few points in time (``--points``) the best
candidate so far is then scored on the held-out variants. Time spent on those held-out scores is
not part of the budget. Writes the JSON data and a plot (matplotlib) of L1 against wall time for
both splits, one panel per split, one line per setting, averaged over the targets.

Calibration targets must not be in the study (the targets of experiments/paper-small.yaml are
refused): Japan, Germany and Brazil by default.

    python scripts/calibrate_aligners.py --targets Japan --seconds 180 \\
        --out docs/calibration/calibration.json --plot docs/calibration/calibration.svg
    python scripts/calibrate_aligners.py --targets Japan --budget 40 \\
        --settings de=de "de-bf16=de:search_dtype=bfloat16,eval_cost=0.45" "pt=prompt-tuning:step_cost=4" ...

A setting is ``NAME=ALIGNER[:PARAM=VALUE,...]``, e.g. ``de-box3=de:bounds=-3,3`` is wrong (the comma
separates parameters): write tuple values with ``;`` instead, ``de-box3=de:bounds=-3;3``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from aligners import AlignmentProblem, make_aligner
from aligners.baselines import ICL_TEMPLATE, format_persona
from aligners.search_space import initial_prompt
from cultbench.atomic import write_text_atomic
from cultbench.instruments import load_instrument
from cultbench.scoring.models import load_model
from cultbench.profiles import lookup
from cultbench.prompts import get_variants
from cultbench.scoring.scorer import SurveyScorer

DEFAULT_SETTINGS = ("prompt-tuning=prompt-tuning", "de=de", "cmaes=cmaes", "random=random")
STUDY_CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "paper-small.yaml"


def study_targets() -> set[str]:
    """Names of the study's targets (experiments/paper-small.yaml), which calibration must not use."""
    import yaml

    targets = yaml.safe_load(STUDY_CONFIG.read_text())["target"]
    return {lookup(t).name for t in ([targets] if isinstance(targets, str) else targets)}


class TimeUp(BaseException):  # not Exception: a search retries a generation that raised one
    """The wall-clock budget is spent (raised when the next generation or step would start)."""


class TimedScorer:
    """A scorer that records, per call, the wall time and units spent since the start and the best
    candidates so far with their training fitness; refuses a call once ``seconds`` have passed or
    when it would spend more than ``units``."""

    def __init__(self, scorer, problem_fitness, seconds: float = math.inf, units: float = math.inf,
                 eval_cost: float = 1.0, step_cost: float = 1.0):
        self._scorer, self._fitness, self.seconds = scorer, problem_fitness, seconds
        self.units, self.eval_cost, self.step_cost, self.spent = units, eval_cost, step_cost, 0.0
        self.start = time.perf_counter()
        self.top: list[tuple[float, torch.Tensor]] = []  # the best distinct candidates (a search's finalists)
        self.top_k = 5
        self.points: list[dict] = []  # {"seconds", "units", "best", "prompt", "top"} after each scored set
        self._partial: dict = {}  # prompt-tuning: per-variant rows of the prompt being stepped

    def __getattr__(self, name):
        return getattr(self._scorer, name)

    @property
    def best(self) -> float:
        return self.top[0][0] if self.top else math.inf

    @property
    def best_prompt(self) -> torch.Tensor | None:
        return self.top[0][1] if self.top else None

    def _check(self, cost: float = 0.0):
        if time.perf_counter() - self.start >= self.seconds or self.spent + max(cost, 1e-9) > self.units + 1e-9:
            raise TimeUp

    def _record(self, fitness: np.ndarray, prompts) -> None:
        valid = np.isfinite(fitness)
        if valid.any():  # kept sorted and stable: the first of equally good candidates stays ahead
            for j in np.flatnonzero(valid):
                prompt = torch.as_tensor(prompts[j]).detach().clone().float()
                if not any(torch.equal(prompt, q) for _, q in self.top):
                    self.top = sorted(self.top + [(float(fitness[j]), prompt)], key=lambda fq: fq[0])[:self.top_k]
        self.points.append({"seconds": time.perf_counter() - self.start, "units": self.spent, "best": self.best,
                            "prompt": self.best_prompt, "top": [q for _, q in self.top]})

    def score(self, soft_prompts=None, personas=None):
        self._check(0.0 if soft_prompts is None else len(soft_prompts) * self.eval_cost)
        out = self._scorer.score(soft_prompts=soft_prompts, personas=personas)
        if soft_prompts is not None:  # the final full-precision re-score is not a search step
            self.spent += len(soft_prompts) * self.eval_cost
            self._record(self._fitness(out.indices), list(soft_prompts))
        return out

    def indices_with_grad(self, soft_prompts=None, personas=None, variants=None):
        """Prompt tuning's forward: a step's prompt is complete once every variant was seen (no
        step starts after the deadline; one under way finishes, as a search's generation does)."""
        if not self._partial:
            self._check(self.step_cost)
        indices = self._scorer.indices_with_grad(soft_prompts, personas, variants)
        variants = list(range(len(self._scorer.variants))) if variants is None else list(variants)
        rows = indices.detach().cpu().numpy()  # [1, len(variants), D]
        for j, v in enumerate(variants):
            self._partial[v] = rows[:, j]
        if len(self._partial) == len(self._scorer.variants):
            rows = np.stack([self._partial[v] for v in range(len(self._scorer.variants))], axis=1)
            self.spent += self.step_cost
            self._record(self._fitness(rows), list(soft_prompts))
            self._partial = {}
        return indices


def parse_setting(text: str) -> tuple[str, str, dict]:
    name, _, rest = text.partition("=")
    aligner, _, params = rest.partition(":")
    out = {}
    for pair in filter(None, params.split(",")):
        key, _, value = pair.partition("=")
        out[key] = value.replace(";", ",")
    return name, aligner or name, out


def heldout_l1(scorer, problem_h, prompt) -> float:
    return float(problem_h.fitness(scorer.score(soft_prompts=None if prompt is None else prompt[None]).indices)[0])


def run_one(lm, inst, train, heldout, target, setting, seconds, n_points, units=None) -> dict:
    """One setting on one target for ``seconds``, or for ``units`` evaluation units when given
    (see the module's docstring). A setting with ``search_dtype=bfloat16`` searches on a bf16
    scorer and, as the aligners do, picks among its best 5 distinct candidates (its finalists) by
    their fp32 fitness; that re-score comes out of its budget (5 units, or its time measured once
    before the search: ``finalist_cost``), so its total matches the others'."""
    name, aligner, params = setting
    params = dict(params)
    search_dtype = params.pop("search_dtype", "float32")
    eval_cost = float(params.pop("eval_cost", 1.0))
    exact = SurveyScorer(lm.model, lm.tokenizer, inst, train)
    search = exact if search_dtype == "float32" else SurveyScorer(lm.model, lm.tokenizer, inst, train, dtype=search_dtype)
    problem = AlignmentProblem(exact, target, model_info=lm.info)
    instance = make_aligner(aligner, **params)
    reserve = 0.0
    if search is not exact and units is not None:
        reserve = 5.0  # five fp32 evaluations
    elif search is not exact:  # the finalists' fp32 re-score: timed here on P0-sized prompts
        p0, _ = initial_prompt(lm.model, lm.tokenizer, format_persona(ICL_TEMPLATE, target.name))
        exact.score(soft_prompts=p0[None])
        t = time.perf_counter()
        exact.score(soft_prompts=p0[None].expand(5, -1, -1).clone())
        reserve = time.perf_counter() - t
    search_problem = AlignmentProblem(search, target, model_info=lm.info)
    if units is None:
        timed = TimedScorer(search, search_problem.fitness, seconds=seconds - reserve)
    else:
        timed = TimedScorer(search, search_problem.fitness, units=units - reserve, eval_cost=eval_cost,
                            step_cost=float(getattr(instance.config, "step_cost", 1.0)))
    timed_problem = AlignmentProblem(timed, target, model_info=lm.info, exact_scorer=timed)
    stopped = "time" if units is None else "units"
    timed.start = time.perf_counter()
    try:
        instance.align(timed_problem, budget=10**7, seed=0)
        stopped = "budget"
    except TimeUp:
        pass
    wall = time.perf_counter() - timed.start
    axis = "seconds" if units is None else "units"
    end = wall if units is None else timed.spent
    problem_h = AlignmentProblem(SurveyScorer(lm.model, lm.tokenizer, inst, heldout), target)
    curve = [{"seconds": p["seconds"], "units": p["units"], "train_l1": p["best"]} for p in timed.points]
    # held-out L1 of the best candidate so far at n_points evenly spaced times (or unit counts) of
    # the run (the last: its end, which in seconds may pass the budget by the one call that was
    # under way at the deadline)
    marks = []
    for k in range(1, n_points + 1):
        t = end * k / n_points
        before = [p for p in timed.points if p[axis] <= t + 1e-9 and p["prompt"] is not None]
        if before:
            p = before[-1]
            mark = {axis: t + reserve, "train_l1": p["best"]}
            prompt = p["prompt"]
            if search is not exact:  # the fp32 best of the finalists so far
                fp32 = problem.fitness(exact.score(soft_prompts=torch.stack(p["top"])).indices)
                prompt = p["top"][int(np.argmin(fp32))]
                mark.update(train_l1=float(np.min(fp32)), train_l1_search=p["best"])
            mark["heldout_l1"] = heldout_l1(problem_h.scorer, problem_h, prompt)
            marks.append(mark)
    return {"setting": name, "aligner": aligner, "params": params, "search_dtype": search_dtype,
            "eval_cost": eval_cost, "target": target.name, "wall_seconds": wall + (reserve if units is None else 0.0),
            "units": None if units is None else timed.spent + reserve, "finalist_cost": reserve,
            "stopped": stopped, "candidate_sets": len(timed.points), "curve": curve, "marks": marks}


def reference_points(lm, inst, train, heldout, target) -> dict:
    """Naive model and P0 (the persona as a soft prompt, where every soft-prompt aligner starts)."""
    problem = AlignmentProblem(SurveyScorer(lm.model, lm.tokenizer, inst, train), target)
    problem_h = AlignmentProblem(SurveyScorer(lm.model, lm.tokenizer, inst, heldout), target)
    p0, _ = initial_prompt(lm.model, lm.tokenizer, format_persona(ICL_TEMPLATE, target.name))
    return {name: {"train_l1": heldout_l1(problem.scorer, problem, prompt),
                   "heldout_l1": heldout_l1(problem_h.scorer, problem_h, prompt)}
            for name, prompt in (("naive", None), ("p0", p0))}


def summary(data: dict) -> str:
    """Markdown: per setting, the training (fp32) and held-out L1 at the end of its budget, per
    target and averaged, with the naive model and P0 (where the soft prompts start) beside them."""
    targets = data["targets"]
    head = "| setting | " + " | ".join(f"{t} train | {t} held-out" for t in targets) + " | mean train | mean held-out |"
    lines = [head, "|" + "---|" * (2 * len(targets) + 3)]

    def row(name, pairs):
        cells = [f"{a:.1f} | {b:.1f}" if a is not None else "– | –" for a, b in pairs]
        done = [(a, b) for a, b in pairs if a is not None]
        mean = (f"{np.mean([a for a, _ in done]):.1f} | {np.mean([b for _, b in done]):.1f}" if len(done) == len(pairs)
                else "– | –")
        return f"| {name} | " + " | ".join(cells) + f" | {mean} |"

    for ref in ("naive", "p0"):
        lines.append(row(ref + " (no search)", [(data["references"][t][ref]["train_l1"],
                                                 data["references"][t][ref]["heldout_l1"]) for t in targets]))
    for setting in dict.fromkeys(r["setting"] for r in data["runs"]):
        pairs = []
        for t in targets:
            run = next((r for r in data["runs"] if r["setting"] == setting and r["target"] == t and r["marks"]), None)
            pairs.append((run["marks"][-1]["train_l1"], run["marks"][-1]["heldout_l1"]) if run else (None, None))
        lines.append(row(setting, pairs))
    return "\n".join(lines) + "\n"


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=False)
    settings = list(dict.fromkeys(r["setting"] for r in data["runs"]))
    for ax, split in zip(axes, ("train", "heldout")):
        for s in settings:
            runs = [r for r in data["runs"] if r["setting"] == s]
            if split == "train" and runs[0].get("search_dtype", "float32") == "float32":
                axis = data.get("axis", "seconds")
                grid = np.linspace(0, data["budget"] if axis == "units" else data["seconds"], 200)
                ys = []  # best so far on a common time grid (NaN before a run's first scored set)
                for r in runs:
                    t = np.array([p[axis] for p in r["curve"]])
                    y = np.array([p["train_l1"] for p in r["curve"]])
                    ys.append([y[t <= g][-1] if (t <= g).any() else np.nan for g in grid])
                ys = np.array(ys, float)
                mean = np.where(np.isnan(ys).any(axis=0), np.nan, np.nan_to_num(ys).mean(axis=0))
                ax.plot(grid, mean, label=s)
            else:  # held-out, or a reduced-precision search's fp32 pick: at the marks
                t = [m[data.get("axis", "seconds")] for m in runs[0]["marks"]]
                y = np.mean([[m[f"{split}_l1"] for m in r["marks"]] for r in runs if len(r["marks"]) == len(t)], axis=0)
                ax.plot(t, y, marker="o", label=s)
        for ref, style in (("naive", ":"), ("p0", "--")):
            ax.axhline(np.mean([data["references"][tg][ref][f"{split}_l1"] for tg in data["targets"]]),
                       color="grey", linestyle=style, label=f"{ref} (no search)")
        ax.set_title(f"{split} split: L1 to the target (mean over {', '.join(data['targets'])})")
        ax.set_xlabel("evaluation units (1 = one fp32 candidate evaluation)" if data.get("axis") == "units"
                      else "wall time (s)")
        ax.set_ylabel("L1 (best candidate so far)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{data['model']}, {data['threads']} thread(s), fp32; training variants {', '.join(data['train'])}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--targets", default="Japan,Germany,Brazil")
    ap.add_argument("--settings", nargs="*", default=list(DEFAULT_SETTINGS))
    ap.add_argument("--seconds", type=float, default=600.0, help="wall-clock budget per run")
    ap.add_argument("--budget", type=float, default=None,
                    help="budget per run in evaluation units instead of seconds (see above)")
    ap.add_argument("--points", type=int, default=3, help="times at which the held-out L1 is measured")
    ap.add_argument("--out", type=Path, default=Path("docs/calibration/calibration.json"))
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--train", default="train", help="training variants: a split name or NAME,NAME,...")
    ap.add_argument("--heldout", default="heldout", help="held-out variants: a split name or NAME,NAME,...")
    ap.add_argument("--merge", nargs="*", type=Path, default=None,
                    help="only merge these JSON files (runs of one setup, e.g. one process per setting, run side "
                         "by side so that every setting sees the same machine load) into --out and plot it")
    args = ap.parse_args(argv)
    if args.merge is not None:
        parts = [json.loads(p.read_text()) for p in args.merge]
        data = dict(parts[0], runs=[r for part in parts for r in part["runs"]],
                    command=[c for part in parts for c in (part["command"] if isinstance(part["command"], list)
                                                           else [part["command"]])])  # a part may be merged already
        for part in parts:
            data["references"].update(part["references"])
        data["targets"] = list(dict.fromkeys(t for part in parts for t in part["targets"]))
        write_text_atomic(args.out, json.dumps(data, indent=1, sort_keys=True) + "\n")
        if args.plot:
            plot(data, args.plot)
        print(summary(data))
        return 0
    targets = [lookup(t) for t in args.targets.split(",")]
    if any(t.name in study_targets() for t in targets):
        print(f"Error: calibration targets must not be study targets ({STUDY_CONFIG.name})", file=sys.stderr)
        return 2
    lm = load_model(args.model)
    inst = load_instrument("vsm2013")
    train, heldout = (get_variants(v if v in ("train", "heldout") else v.split(",")) for v in (args.train, args.heldout))
    data = {"model": args.model, "seconds": None if args.budget else args.seconds, "budget": args.budget,
            "axis": "units" if args.budget else "seconds", "targets": [t.name for t in targets],
            "train": [v.name for v in train], "heldout": [v.name for v in heldout],
            "threads": torch.get_num_threads(), "load_average_at_start": list(os.getloadavg()), "command": " ".join(sys.argv), "references": {}, "runs": []}
    if args.out.exists():  # go on where an interrupted calibration stopped
        old = json.loads(args.out.read_text())
        if {k: old.get(k) for k in ("model", "seconds", "budget", "train", "heldout")} == \
                {k: data[k] for k in ("model", "seconds", "budget", "train", "heldout")}:
            data["references"], data["runs"] = old["references"], old["runs"]
    for target in targets:
        if target.name not in data["references"]:
            data["references"][target.name] = reference_points(lm, inst, train, heldout, target)
        for text in args.settings:
            setting = parse_setting(text)
            if any(r["setting"] == setting[0] and r["target"] == target.name for r in data["runs"]):
                continue
            run = run_one(lm, inst, train, heldout, target, setting, args.seconds, args.points, args.budget)
            data["runs"].append(run)
            last = run["marks"][-1] if run["marks"] else {}
            print(f"{target.name} {setting[0]}: {run['candidate_sets']} scored sets, train L1 "
                  f"{last.get('train_l1', float('nan')):.1f}, held-out L1 {last.get('heldout_l1', float('nan')):.1f}",
                  file=sys.stderr, flush=True)
            write_text_atomic(args.out, json.dumps(data, indent=1, sort_keys=True) + "\n")
    if args.plot:
        plot(data, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
