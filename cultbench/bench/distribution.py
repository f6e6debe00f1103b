"""Benchmark of a distribution instrument's items: cultbench's scorer against lm-eval's HFLM.

Both engines score the same rendered prompts (every item of the data under one prompt variant,
the model as it is) and read the same option letters. Each runs in its own subprocess, one after
the other, so peak memory is measured per engine. Throughput is items per second (median over
repeats, tokenisation and packing excluded for the scorer, request building excluded for lm-eval);
model FLOP/s count 2 x parameters per token forwarded and are reported as a fraction of this
machine's measured matmul rate at the engine's dtype. The two engines' answer distributions are
compared item by item.

Tokens per item: the scorer forwards each shared prefix once (``tokens_forwarded``); lm-eval forwards
every context once (it groups an item's one-token continuations), so its count is the context
length plus the continuation minus one.

    python -m cultbench.bench.distribution ENGINE MODEL INSTRUMENT DATA VARIANT REPEATS MAX_BATCH_MB BATCH
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from cultbench.bench.speed import _peak_rss_mb, flops_per_token, matmul_rate, timed_scores
from cultbench.instruments import load_instrument
from cultbench.scoring.models import load_model
from cultbench.prompts import get_variants, option_labels, render_prompt, variants_file
from cultbench.scoring.scorer import SurveyScorer

ENGINES = ("scorer-fp32", "lm-eval")


def _setup(model: str, instrument: str, data: str, variant: str):
    lm = load_model(model)
    inst = load_instrument(instrument, data)
    (chosen,) = get_variants([variant], path=variants_file(inst))
    return lm, inst, chosen


def _scorer_engine(lm, inst, variant, repeats: int, max_batch_mb: float) -> dict:
    scorer = SurveyScorer(lm.model, lm.tokenizer, inst, [variant], max_batch_mb=max_batch_mb)
    t = time.perf_counter()
    scorer.layout(0, None, 0)  # tokenise and pack once, as a search does before its first generation
    prepare = time.perf_counter() - t
    times, result = timed_scores(scorer, repeats)
    return {"seconds": times, "prepare_seconds": prepare, "tokens": scorer.tokens_forwarded,
            "probs": inst.flatten(result.probs[0, 0]).tolist(), "option_mass": float(result.option_mass.mean())}


def _lm_eval_engine(lm, inst, variant, repeats: int, batch_size: int) -> dict:
    """lm-eval's HFLM loglikelihood requests: one per item and option letter, as its
    multiple_choice tasks send them (``harness_tasks/globalopinionqa_*``)."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    chat = bool(getattr(lm.tokenizer, "chat_template", None))
    hflm = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=batch_size)
    requests, tokens = [], 0
    for i, item in enumerate(inst.items):
        context = render_prompt(lm.tokenizer, inst, item, variant)
        labels = option_labels(inst, item, variant)
        requests += [Instance(request_type="loglikelihood", doc={}, arguments=(context, ("" if chat else " ") + lab),
                              idx=k, metadata=(inst.name, i, 1)) for k, lab in enumerate(labels)]
        tokens += len(hflm.tok_encode(context)) + len(hflm.tok_encode(labels[0])) - 1
    times, lls = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        lls = [r[0] for r in hflm.loglikelihood(requests, disable_tqdm=True)]
        times.append(time.perf_counter() - t)
    probs, at = [], 0
    for item in inst.items:
        k = len(item.scale)
        x = np.array(lls[at:at + k])
        p = np.exp(x - x.max())
        probs.extend((p / p.sum()).tolist())  # the base variant is in order: letter k is option k
        at += k
    return {"seconds": times, "tokens": tokens, "probs": probs}


def run_engine(engine, model, instrument, data, variant, repeats, max_batch_mb, batch_size) -> dict:
    torch.manual_seed(0)
    lm, inst, chosen = _setup(model, instrument, data, variant)
    if chosen.order != "ascending":
        raise ValueError("benchmark variants list the options in order")
    if engine == "scorer-fp32":
        out = _scorer_engine(lm, inst, chosen, repeats, max_batch_mb)
    elif engine == "lm-eval":
        out = _lm_eval_engine(lm, inst, chosen, repeats, batch_size)
    else:
        raise ValueError(engine)
    seconds = statistics.median(out["seconds"])
    n = len(inst.items)
    out.update({"engine": engine, "dtype": str(lm.model.dtype).replace("torch.", ""), "items": n,
                "items_per_second": n / seconds, "seconds_per_pass": seconds, "tokens_per_item": out["tokens"] / n,
                "model_flops_per_second": out["tokens"] * flops_per_token(lm.model) / seconds,
                "peak_rss_mb": _peak_rss_mb(), "threads": torch.get_num_threads()})
    return out


def benchmark(model: str, instrument: str, data: str, variant: str = "respondent", repeats: int = 3,
              max_batch_mb: float = 512.0, batch_size: int = 32, engines=ENGINES, echo=print) -> dict:
    """Run each engine in its own subprocess; return the combined report."""
    inst = load_instrument(instrument, data)
    rate = matmul_rate(torch.float32)
    echo(f"{inst.name}: {len(inst.items)} items; fp32 matmul rate {rate / 1e12:.3f} TFLOP/s")
    results = {}
    for engine in engines:
        echo(f"running {engine} ...")
        proc = subprocess.run([sys.executable, "-m", "cultbench.bench.distribution", engine, model, instrument, data,
                               variant, str(repeats), str(max_batch_mb), str(batch_size)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark engine {engine} failed:\n{proc.stderr[-3000:]}")
        r = results[engine] = json.loads(proc.stdout.strip().splitlines()[-1])
        r["matmul_fraction"] = r["model_flops_per_second"] / rate
        echo(f"  {engine}: {r['items_per_second']:.1f} items/s, {r['tokens_per_item']:.1f} tokens/item, "
             f"{r['matmul_fraction']:.0%} of the fp32 matmul rate, peak RSS {r['peak_rss_mb']:.0f} MB")
    comparison = {}
    if set(ENGINES) <= set(results):
        a, b = (np.array(results[e].pop("probs")) for e in ENGINES)
        s, lm = results["scorer-fp32"], results["lm-eval"]
        comparison = {"speed_vs_lm_eval": s["items_per_second"] / lm["items_per_second"],
                      "tokens_per_item_vs_lm_eval": s["tokens_per_item"] / lm["tokens_per_item"],
                      "max_abs_probability_difference": float(np.abs(a - b).max())}
    for r in results.values():
        r.pop("probs", None)
    return {"instrument": inst.describe(), "model": model, "variant": variant, "repeats": repeats,
            "max_batch_mb": max_batch_mb, "lm_eval_batch_size": batch_size, "matmul_flops_per_second": {"float32": rate},
            "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                        "torch": torch.__version__},
            "engines": results, "comparison": comparison}


if __name__ == "__main__":
    engine, model, instrument, data, variant, repeats, max_batch_mb, batch_size = sys.argv[1:9]
    print(json.dumps(run_engine(engine, model, instrument, data, variant, int(repeats), float(max_batch_mb),
                                int(batch_size))))
