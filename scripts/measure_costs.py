"""The cost units of the aligners on this machine, measured side by side in one process: seconds of
one forward candidate evaluation (a population of 10 soft prompts on the training variants, per
candidate) in fp32 and in bf16, alternated twice, and one prompt-tuning step (forward and
backward over the training variants, the update) with 3 and with 1 variants per backward, as a
ratio to the fp32 evaluation: the ``step_cost`` that converts a budget of evaluations into steps.

    python scripts/measure_costs.py --out docs/calibration/costs-cpu.json

Run it on a quiet machine; the ratios are what the budgets use, the seconds say what a budget
costs in wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys

import torch

from aligners.baselines import ICL_TEMPLATE, format_persona
from aligners.search_space import initial_prompt
from cultbench.atomic import write_text_atomic
from cultbench.bench.speed import forward_seconds, step_cost
from cultbench.instruments import load_instrument
from cultbench.scoring.models import load_model
from cultbench.profiles import lookup
from cultbench.prompts import get_variants
from cultbench.scoring.scorer import SurveyScorer


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    lm = load_model(args.model)
    out = {"command": " ".join(["python", "scripts/measure_costs.py", *(argv or sys.argv[1:])]), "model": args.model,
           "threads": torch.get_num_threads(), "load_average_at_start": list(os.getloadavg()),
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__}}
    forward: dict[str, list[float]] = {}
    for dtype in ("float32", "bfloat16", "float32", "bfloat16"):  # alternated: side by side
        scorer = SurveyScorer(lm.model, lm.tokenizer, load_instrument(), get_variants("train"), dtype=dtype)
        p0, _ = initial_prompt(scorer.model, scorer.tokenizer, format_persona(ICL_TEMPLATE, lookup("US").name))
        forward.setdefault(dtype, []).extend(forward_seconds(scorer, p0, population=10, repeats=1))
        print(dtype, f"{forward[dtype][-1]:.2f} s per candidate", flush=True)
    out["forward_s_per_candidate"] = forward
    out["bf16_over_fp32"] = statistics.median(forward["bfloat16"]) / statistics.median(forward["float32"])
    for per_backward in (3, 1):
        r = step_cost(lm.model, lm.tokenizer, lm.info, population=10, steps=2, repeats=1,
                      variants_per_backward=per_backward, forward=[statistics.median(forward["float32"])])
        out[f"step_vpb{per_backward}"] = {k: r[k] for k in ("seconds_per_step", "step_cost")}
    out["load_average_at_end"] = list(os.getloadavg())
    text = json.dumps(out, indent=1) + "\n"
    if args.out:
        write_text_atomic(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
