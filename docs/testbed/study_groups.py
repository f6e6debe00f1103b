"""The testbed study's figures split by held-out and trained targets (docs/testbed-study.md): per
aligner and budget, the mean over targets of each target's mean over seeds (held-out L1, training
L1, content-free and world-mean L1, `aligned` verdicts), and the directedness slope restricted to
the group (pooled over its targets and dimensions; each target's seeds averaged first).

    python docs/testbed/study_groups.py leaderboard/testbed/entries
"""

import collections
import glob
import json
import sys

import numpy as np

TRAINED = {"Germany", "Brazil", "Great Britain"}  # the study's sanity block (experiments/testbed.yaml)
entries = [json.load(open(f)) for f in sorted(glob.glob(sys.argv[1] + "/*.json"))]
naive = {r["target"]["name"]: r for r in entries if r["aligner"]["name"] == "naive"}
groups = collections.defaultdict(lambda: collections.defaultdict(list))
for r in entries:
    budget = r["aligner"]["budget"]
    label = r["aligner"]["name"] + (f"@{budget}" if budget else "")
    group = "trained" if r["target"]["name"] in TRAINED else "heldout"
    groups[group, label][r["target"]["name"]].append(r)


def mean_over_targets(per, read):
    values = [np.mean([read(r) for r in rs]) for rs in per.values() if read(rs[0]) is not None]
    return float(np.mean(values)) if values else float("nan")


def slope(per):
    xs, ys = [], []
    for target, rs in per.items():
        base = naive[target]["splits"]["heldout"]["indices"]
        for d in rs[0]["instrument"]["dimensions"]:
            xs.append(rs[0]["target"]["scores"][d] - base[d])
            ys.append(np.mean([r["splits"]["heldout"]["indices"][d] for r in rs]) - base[d])
    x, y = np.array(xs), np.array(ys)
    return float(x @ y / (x @ x)), float(np.corrcoef(x, y)[0, 1])


for group in ("heldout", "trained"):
    print(group)
    for (g, label), per in sorted(groups.items()):
        if g != group:
            continue
        held = lambda r: r["metrics"]["heldout"]
        verdicts = [(held(r).get("alignment") or {}).get("aligned") for rs in per.values() for r in rs]
        s, corr = slope(per) if not label.startswith("naive") else (float("nan"), float("nan"))
        print(f"  {label:22s} targets {len(per):2d} held-out {mean_over_targets(per, lambda r: held(r)['l1']):7.2f}"
              f" train {mean_over_targets(per, lambda r: r['metrics']['train']['l1']):7.2f}"
              f" content-free {mean_over_targets(per, lambda r: held(r)['content_free_l1']):7.2f}"
              f" world-mean {mean_over_targets(per, lambda r: held(r).get('world_mean_l1')):7.2f}"
              f" slope {s:+.3f} (r {corr:+.2f}) aligned {sum(v is True for v in verdicts)}/{len(verdicts)}")
