#!/usr/bin/env bash
# The aligner comparison of docs/aligners.md: the bundled model, target US, seed 0, equal budget
# (300 candidate evaluations) for the searchers, bf16 search with the final candidate re-scored
# in fp32. Each aligner runs through `cultbench align`; its wall time includes loading the model.
# Usage: bash scripts/measure_aligners.sh [OUT_DIR]   (about 25 minutes on 2 cores)
set -euo pipefail
out=${1:-runs/measure-aligners-us}
mkdir -p "$out"
for aligner in naive icl icl-profile random de cmaes; do
  rm -rf "$out/$aligner"
  start=$(date +%s.%N)
  cultbench align --target US --aligner "$aligner" --budget 300 --seed 0 --search-dtype bfloat16 \
    --no-progress --output "$out/$aligner" > /dev/null
  end=$(date +%s.%N)
  python - "$out/$aligner" "$aligner" "$start" "$end" <<'PY'
import json, sys
folder, name, start, end = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
cfg = json.load(open(f"{folder}/alignment.json"))
res = cfg["result"]
print(json.dumps({"aligner": name, "train_l1_fp32": res["fitness"], "evaluations": cfg["evaluations"],
                  "seed": cfg["seed"], "wall_seconds": round(end - start, 1),
                  "indices": {k: round(v, 2) for k, v in res["indices"].items()},
                  "option_mass": res.get("option_mass")}))
PY
done | tee "$out/summary.jsonl"
