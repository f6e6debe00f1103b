"""Stock ``lm_eval``'s order-balanced wording groups against ``cultbench evaluate``, per wording.

``lm_eval`` writes a results JSON with one ``vsm2013_<wording>_balanced`` group per wording (the
mean of its two renderings' indices, and the signed errors against the target of its
``--metadata``); ``cultbench evaluate --json`` reports the same wording's balanced indices
(``splits.<split>.indices_per_wording``) and balanced L1 (``targets.<target>.l1_per_wording``).
This prints both side by side, their differences per index, and the largest one:

    cultbench evaluate --target US -o evaluate-us.json
    lm_eval --model hf --model_args "$(cultbench harness-model-args)" --include_path "$(cultbench harness-path)" \\
      --tasks vsm2013_respondent_standard_balanced,... --apply_chat_template --batch_size 24 --device cpu \\
      --metadata '{"target": "US"}' --output_path out/
    python scripts/stock_lm_eval_agreement.py out/*/results_*.json evaluate-us.json --target US
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def group_task(wording: str) -> str:
    return f"vsm2013_{wording.replace('-', '_')}_balanced"


def rows(lm_eval: dict, evaluated: dict, target: str) -> list[dict]:
    """Per wording that lm_eval ran: the balanced indices from both, and the wording's L1."""
    out = []
    for split, report in evaluated["splits"].items():
        for wording, indices in report["indices_per_wording"].items():
            group = lm_eval["results"].get(group_task(wording))
            if group is None:
                continue
            dims = list(indices)
            ours = np.array([indices[d] for d in dims])
            theirs = np.array([group[f"{d},none"] for d in dims])
            errors = np.array([group[f"{d}_error,none"] for d in dims])
            out.append({"split": split, "wording": wording, "dims": dims, "cultbench": ours, "lm_eval": theirs,
                        "l1_cultbench": report["targets"][target]["l1_per_wording"][wording],
                        "l1_lm_eval": float(np.abs(errors).sum())})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lm_eval_results", help="lm_eval's results_*.json")
    parser.add_argument("evaluate_json", help="cultbench evaluate's JSON report (-o FILE)")
    parser.add_argument("--target", default="US", help="the target's id in the evaluate report [default: US]")
    args = parser.parse_args(argv)
    with open(args.lm_eval_results, encoding="utf-8") as fh:
        lm_eval = json.load(fh)
    with open(args.evaluate_json, encoding="utf-8") as fh:
        evaluated = json.load(fh)
    found = rows(lm_eval, evaluated, args.target)
    if not found:
        print("no vsm2013_<wording>_balanced group of the evaluate report in the lm_eval results", file=sys.stderr)
        return 1
    dims = found[0]["dims"]
    print(f"{'wording (split)':<36}{'source':<11}" + "".join(f"{d.upper():>10}" for d in dims) + f"{'L1':>10}")
    worst = 0.0
    for r in found:
        name = f"{r['wording']} ({r['split']})"
        diff = r["lm_eval"] - r["cultbench"]
        worst = max(worst, float(np.abs(diff).max()))
        print(f"{name:<36}{'cultbench':<11}" + "".join(f"{v:10.4f}" for v in r["cultbench"]) + f"{r['l1_cultbench']:10.4f}")
        print(f"{'':<36}{'lm_eval':<11}" + "".join(f"{v:10.4f}" for v in r["lm_eval"]) + f"{r['l1_lm_eval']:10.4f}")
        print(f"{'':<36}{'diff':<11}" + "".join(f"{v:10.1e}" for v in diff)
              + f"{r['l1_lm_eval'] - r['l1_cultbench']:10.1e}")
    print(f"max |lm_eval - cultbench| over {len(found)} wordings x {len(dims)} indices: {worst:.2e} index points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
