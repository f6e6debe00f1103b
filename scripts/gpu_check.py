"""GPU check of the survey scorer on a randomly initialised model of Llama-3-8B's shape (bf16, no
download): candidate evaluations/s, tokens/s, model FLOP utilisation and peak memory for
populations of 10, 20 and 40 candidates, one prompt variant (24 items) each.

    python scripts/gpu_check.py --out gpu-check.json            # on a machine with a GPU
    python scripts/gpu_check.py --shape tiny --device cpu       # the same code path, in seconds

Model FLOPs count what the scorer must compute: 2 x the decoder's parameters per token
forwarded, the attention products over the keys each token may see (causal within its own
prompt), and the output layer at the 24 answer positions per candidate. Utilisation is that
over the GPU's dense bf16 peak (a table of known GPUs, or --peak-tflops). Random weights change
nothing in the arithmetic; the tokenizer is the bundled SmolLM2's (its ids fit Llama-3's vocabulary).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from cultbench.atomic import write_text_atomic
from cultbench.bench import soft_prompts
from cultbench.instruments import load_instrument
from cultbench.models import load_model
from cultbench.prompts import default_variant
from cultbench.scorer import SurveyScorer

SHAPES = {
    # Llama-3-8B (Meta-Llama-3-8B config.json)
    "llama-3-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, max_position_embeddings=8192),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=49152, max_position_embeddings=2048),
}
# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, from the vendors' data sheets.
PEAK_BF16_TFLOPS = {"H100 SXM": 989.4, "H100 80GB HBM3": 989.4, "H100 PCIe": 756.0, "H100 NVL": 835.0,
                    "H200": 989.4, "A100": 312.0, "L40S": 362.1, "L40": 181.0, "A10G": 70.0, "L4": 121.0}


def peak_tflops(name: str) -> float | None:
    for key, value in sorted(PEAK_BF16_TFLOPS.items(), key=lambda kv: -len(kv[0])):
        if key.lower() in name.lower():
            return value
    return None


def model_flops(model, scorer: SurveyScorer, candidates: int) -> tuple[float, int]:
    """FLOPs of one call on ``candidates``: decoder matmuls per token, attention per (query, key)
    pair each prompt needs, and the output layer at the answer positions."""
    cfg = model.config
    decoder = sum(p.numel() for p in model.model.layers.parameters())
    tokens = pairs = 0
    for v in range(len(scorer.variants)):
        layout = scorer.layout(v, None, 4)
        tokens += layout.tokens
        for row in layout.rows:  # each trunk token sees the keys its mask allows
            pairs += int(row.mask.sum())
        for s in layout.suffixes:
            parent_view = int(layout.rows[s.row].mask[s.parent].sum())
            n = len(s.ids)
            pairs += n * parent_view + n * (n + 1) // 2
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    attention = 4 * cfg.num_hidden_layers * cfg.num_attention_heads * head_dim * pairs  # QK^T and PV
    answers = len(scorer.instrument.items) * len(scorer.variants)
    head = 2 * cfg.hidden_size * cfg.vocab_size * answers
    return candidates * (2 * decoder * tokens + attention + head), tokens


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="llama-3-8b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--populations", default="10,20,40")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-batch-mb", type=float, default=16384.0, help="activation bound of one forward")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, if not in the table")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu --shape tiny to check the script", file=sys.stderr)
        return 2
    tokenizer = load_model("smollm2-135m-instruct").tokenizer
    config = LlamaConfig(**SHAPES[args.shape], attn_implementation="sdpa")
    torch.manual_seed(0)
    with torch.device(device):
        torch.set_default_dtype(torch.bfloat16)
        model = LlamaForCausalLM(config).eval()
        torch.set_default_dtype(torch.float32)
    scorer = SurveyScorer(model, tokenizer, load_instrument(), [default_variant()],
                          max_batch_mb=args.max_batch_mb)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops or peak_tflops(name)
    report = {"device": name, "shape": args.shape, "parameters": sum(p.numel() for p in model.parameters()),
              "dtype": "bfloat16", "peak_bf16_tflops": peak, "torch": torch.__version__, "runs": []}
    for population in [int(p) for p in args.populations.split(",")]:
        soft = soft_prompts(model, population).to(device, torch.bfloat16)
        scorer.score(soft[:2])  # warm-up: tokenisation, packing, kernels
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            scorer.score(soft)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        flops, tokens = model_flops(model, scorer, population)
        run = {"population": population, "items": len(scorer.instrument.items), "seconds_per_call": times,
               "median_s": seconds, "candidate_evals_per_s": population / seconds,
               "tokens_per_candidate": tokens, "tokens_per_s": population * tokens / seconds,
               "model_tflops_per_s": flops / seconds / 1e12,
               "mfu": None if peak is None else flops / seconds / (peak * 1e12),
               "peak_memory_gib": (torch.cuda.max_memory_allocated(device) / 2**30) if device.type == "cuda" else None}
        report["runs"].append(run)
        print(json.dumps({k: v for k, v in run.items() if k != "seconds_per_call"}), flush=True)
    text = json.dumps(report, indent=2) + "\n"
    if args.out:
        write_text_atomic(args.out, text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
