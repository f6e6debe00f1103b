"""Benchmark of survey scoring: cultbench's scorer against lm-eval's HFLM and a plain loop.

Every engine scores the same rendered prompts with the same soft prompts: by default the 24 items
under each rendering of the training split (wording version 4: each wording with its scale in
order and reversed, the renderings a search scores every candidate on). A candidate evaluation is
one soft prompt scored on all of them; the headline rate is renderings per second (a soft prompt
scored on the 24 items of one rendering), which does not depend on how many renderings a split
has. Each engine
runs in its own subprocess, one after the other, so peak memory is measured per engine and one
engine's caches do not help another. Throughput is a median over repeats; ratios are taken
between engines measured in the same run.

Beside speed, the bench measures how far a bf16 search can trust its own fitness
(:func:`precision_agreement`): random points of the default search space (US, training
variants) scored in bf16 and fp32, Spearman's rho between the two fitness values, and what
picking the bf16 best costs: its winner's curse (its fp32 fitness minus its bf16 fitness, the
same definition as a search's record), its selection loss (its fp32 fitness minus the fp32 best
among the points) and its rank in fp32.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from cultbench.instruments import load_instrument
from cultbench.scoring.models import load_model
from cultbench.prompts import get_variants, variants_version
from cultbench.scoring.scorer import SurveyScorer

ENGINES = ("scorer-fp32", "scorer-bf16", "lm-eval", "loop")
# The renderings every engine scores by default: the training split, both scale orders of each of
# its wordings, which is what a search scores each candidate on (its balanced fitness).
BENCH_VARIANTS = "train"


def soft_prompts(model, n: int, n_virtual: int = 4, seed: int = 0) -> torch.Tensor:
    """Random soft prompts at the scale of the model's own token embeddings."""
    weight = model.get_input_embeddings().weight
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, n_virtual, weight.shape[1], generator=g) * float(weight.float().std())


def matmul_rate(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """Median FLOP/s of a large square matrix product at ``dtype`` on this machine."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * size**3 / statistics.median(times)


def flops_per_token(model) -> int:
    """2 x the parameters a token passes through (the input embedding is a lookup, not a product)."""
    embedding = model.get_input_embeddings().weight.numel()
    return 2 * (sum(p.numel() for p in model.parameters()) - embedding)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_scores(scorer, repeats: int, *candidates) -> tuple[list[float], object]:
    """(seconds per call, the last call's scores) of ``repeats`` calls of ``scorer.score``, with
    ``scorer.tokens_forwarded`` counting one call's tokens."""
    times, result = [], None
    for _ in range(repeats):
        scorer.tokens_forwarded = 0
        t = time.perf_counter()
        result = scorer.score(*candidates)
        times.append(time.perf_counter() - t)
    return times, result


def _scorer_engine(lm, soft, repeats, dtype, max_batch_mb, variants):
    inst = load_instrument()
    scorer = SurveyScorer(lm.model, lm.tokenizer, inst, variants, dtype=dtype, max_batch_mb=max_batch_mb)
    scorer.score(soft[:1])  # warm-up: tokenisation, packing, first-call overheads
    times, result = timed_scores(scorer, repeats, soft)
    return {"seconds_per_call": times, "candidates_per_call": len(soft),
            "tokens_per_candidate": scorer.tokens_forwarded / len(soft),
            "expected": result.expected.tolist(), "indices": result.indices.tolist(),
            "option_mass": float(result.option_mass.mean())}


def _rendered_requests(lm, variants):
    """Per rendering, per item: (prompt text, the continuations lm-eval scores (delimiter + each
    displayed option label), the answer value behind each displayed option, prompt tokens), as
    the scorer renders them; a reversed scale's displayed options map back to their answers."""
    from cultbench.prompts import displayed_options, option_labels, render_prompt

    inst = load_instrument()
    scorer = SurveyScorer(lm.model, lm.tokenizer, inst, variants)
    delimiter = "" if getattr(lm.tokenizer, "chat_template", None) else " "
    out = []
    for v, variant in enumerate(variants):
        for i, item in enumerate(inst.items):
            text = render_prompt(lm.tokenizer, inst, item, variant)
            continuations = [delimiter + label for label in option_labels(inst, item, variant)]
            values = [inst.options[k] for k in displayed_options(inst, item, variant)]
            out.append((text, continuations, values, len(scorer.prompt_tokens(v, i, None)[0])))
    return inst, out


def _expected_answers(log_likelihoods, values) -> float:
    """The expected answer of one prompt: the options' probabilities renormalised over them."""
    lls = np.array(log_likelihoods)
    p = np.exp(lls - lls.max())
    return float(p @ np.array(values, float) / p.sum())


def _lm_eval_engine(lm, soft, repeats, variants):
    """lm-eval's HFLM with the soft prompt as a PEFT prompt-tuning adapter, through its
    loglikelihood request path (batch size 24, the model's default precision): one call per
    candidate holds every item of every rendering."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from peft import PromptTuningConfig, TaskType, get_peft_model

    inst, prompts = _rendered_requests(lm, variants)
    peft_model = get_peft_model(lm.model, PromptTuningConfig(task_type=TaskType.CAUSAL_LM,
                                                             num_virtual_tokens=soft.shape[1]))
    peft_model.eval()
    hflm = HFLM(pretrained=peft_model, tokenizer=lm.tokenizer, batch_size=24)
    requests = [Instance(request_type="loglikelihood", doc={}, arguments=(text, cont), idx=k,
                         metadata=("vsm2013", p, 1))
                for p, (text, conts, _, _) in enumerate(prompts) for k, cont in enumerate(conts)]
    times, expected = [], []
    tokens = sum(n for *_, n in prompts) + len(prompts) * soft.shape[1]
    for c in range(min(len(soft), max(repeats, 2))):
        peft_model.prompt_encoder["default"].embedding.weight.data.copy_(soft[c])
        t = time.perf_counter()
        results = hflm.loglikelihood(requests, disable_tqdm=True)
        times.append(time.perf_counter() - t)
        lls, row = iter(r[0] for r in results), []
        for _, conts, values, _ in prompts:
            row.append(_expected_answers([next(lls) for _ in conts], values))
        expected.append(np.reshape(row, (len(variants), len(inst.items))).tolist())
    return {"seconds_per_call": times, "candidates_per_call": 1, "tokens_per_candidate": tokens,
            "expected": expected, "indices": inst.indices(np.array(expected)).tolist(), "scored": len(times)}


def _loop_engine(lm, soft, repeats, variants):
    """One plain forward per item and rendering with the soft prompt in front; only the last
    logits are read."""
    inst = load_instrument()
    scorer = SurveyScorer(lm.model, lm.tokenizer, inst, variants)
    _, prompts = _rendered_requests(lm, variants)
    embed = lm.model.get_input_embeddings()
    times, expected, tokens = [], [], 0
    with torch.inference_mode():
        for c in range(min(len(soft), max(repeats, 2))):
            t = time.perf_counter()
            row, tokens = [], 0
            for v in range(len(variants)):
                for i in range(len(inst.items)):
                    ids, opts = scorer.prompt_tokens(v, i, None)
                    x = torch.cat([soft[c], embed(torch.tensor(ids))])[None]
                    tokens += x.shape[1]
                    lp = torch.log_softmax(lm.model(inputs_embeds=x).logits[0, -1].double(), -1)[list(opts)]
                    row.append(_expected_answers(lp.tolist(), prompts[v * len(inst.items) + i][2]))
            times.append(time.perf_counter() - t)
            expected.append(np.reshape(row, (len(variants), len(inst.items))).tolist())
    return {"seconds_per_call": times, "candidates_per_call": 1, "tokens_per_candidate": tokens,
            "expected": expected, "indices": inst.indices(np.array(expected)).tolist()}


def prompt_tuning_step_cost(model: str = "smollm2-135m-instruct", population: int = 10, steps: int = 3,
                            repeats: int = 2, variants: str = "train", dtype: str | None = None,
                            variants_per_backward: int = 3, echo=print) -> dict:
    """Seconds of one prompt-tuning step (forward and backward over the training variants, the
    optimiser's update) against one forward candidate evaluation (a population of ``population``
    soft prompts scored in one call, divided by ``population``), on the same model, variants,
    target and soft-prompt length (the searches' default P0, the persona for the U.S.A.). Their
    ratio is what ``prompt-tuning``'s ``step_cost`` should be. In-process; medians over repeats
    (the first step, which pays for tokenisation and packing, is left out)."""
    lm = load_model(model)
    out = step_cost(lm.model, lm.tokenizer, lm.info, population=population, steps=steps, repeats=repeats,
                    variants=variants, dtype=dtype, variants_per_backward=variants_per_backward, echo=echo)
    return {"model": model, **out}


def forward_seconds(scorer: SurveyScorer, p0: torch.Tensor, population: int = 10, repeats: int = 1) -> list[float]:
    """Seconds per candidate of a forward evaluation, once per repeat: ``population`` soft prompts
    around P0 (as a search's population is) scored in one call, after a one-candidate warm-up
    (tokenisation, packing, first-call overheads)."""
    offsets = soft_prompts(scorer.model, population, n_virtual=p0.shape[0]).to(p0)
    candidates = p0[None] + 0.5 * offsets
    scorer.score(candidates[:1])
    seconds = []
    for _ in range(repeats):
        t = time.perf_counter()
        scorer.score(candidates)
        seconds.append((time.perf_counter() - t) / population)
    return seconds


def step_cost(model, tokenizer, model_info: dict, population: int = 10, steps: int = 3, repeats: int = 2,
              variants: str = "train", dtype: str | None = None, variants_per_backward: int = 3,
              forward: list[float] | None = None, echo=print, **scorer_options) -> dict:
    """:func:`prompt_tuning_step_cost` on a model already built (any device): the step's seconds,
    the forward candidate evaluation's (``forward``: measured before, seconds per candidate, or
    None to measure it here) and their ratio. ``scorer_options``: more SurveyScorer arguments
    (``padding``, ``max_batch_mb``)."""
    from aligners import AlignmentProblem, make_aligner
    from aligners.baselines import ICL_TEMPLATE, format_persona
    from aligners.search_space import initial_prompt
    from cultbench.profiles import lookup

    target = lookup("US")
    scorer = SurveyScorer(model, tokenizer, load_instrument(), get_variants(variants), dtype=dtype, **scorer_options)
    problem = AlignmentProblem(scorer, target, model_info=model_info)
    p0, _ = initial_prompt(scorer.model, scorer.tokenizer, format_persona(ICL_TEMPLATE, target.name))
    if forward is None:
        forward = forward_seconds(scorer, p0, population, repeats)
    echo(f"  forward candidate evaluation: {statistics.median(forward):.3g} s")
    aligner = make_aligner("prompt-tuning", steps=steps + 1, variants_per_backward=variants_per_backward)
    history = aligner.align(problem).history
    seconds = np.diff([0.0] + [h["seconds"] for h in history])[1:].tolist()
    ratio = statistics.median(seconds) / statistics.median(forward)
    echo(f"  prompt-tuning step: {statistics.median(seconds):.3g} s = {ratio:.2f} forward candidate evaluations")
    return {"variants": [v.name for v in scorer.variants], "dtype": str(scorer.dtype).replace("torch.", ""),
            "n_virtual": int(p0.shape[0]), "population": population, "variants_per_backward": variants_per_backward,
            "seconds_per_forward_evaluation": forward, "seconds_per_step": seconds, "step_cost": ratio,
            "threads": torch.get_num_threads(), "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                                            "torch": torch.__version__}}


def precision_agreement(model, tokenizer, points: int = 24, seed: int = 0, target: str = "US",
                        max_batch_mb: float | None = None) -> dict:
    """bf16 against fp32 fitness on ``points`` uniform random points of the default search space
    (the soft-prompt aligners' defaults, ``target``'s persona as P0, the training variants).

    Returns both fitness lists, Spearman's rho, mean and max |difference|, and the bf16 pick: the
    point with the best bf16 fitness, its fp32 rank (1 = the fp32 best), its winner's curse (its
    fp32 minus its bf16 fitness: how optimistic the proxy was about its own pick, as in a search's
    ``search.selection``) and its selection loss (its fp32 fitness minus the fp32 best among the
    points). Fitness is the L1 distance averaged over the variants.
    """
    from scipy.stats import spearmanr

    from aligners import AlignmentProblem, SoftPromptConfig, SoftPromptSpace
    from aligners.baselines import format_persona
    from cultbench.profiles import lookup

    cfg, profile = SoftPromptConfig(), lookup(target)
    bound = {} if max_batch_mb is None else {"max_batch_mb": max_batch_mb}
    inst, variants = load_instrument(), get_variants("train")
    exact = SurveyScorer(model, tokenizer, inst, variants, **bound)
    low = SurveyScorer(model, tokenizer, inst, variants, dtype="bfloat16", **bound)
    problem = AlignmentProblem(low, profile, exact_scorer=exact)
    space = SoftPromptSpace.build(model, tokenizer, n_virtual=cfg.n_virtual, d=cfg.d,
                                  init_text=format_persona(cfg.init_text, profile.name),
                                  projection_seed=cfg.projection_seed, bounds=cfg.bounds)
    z = np.random.default_rng(seed).uniform(*cfg.bounds, size=(points, space.d))
    prompts = space.prompts(z)
    fitness, seconds = {}, {}
    for name, scorer in (("bfloat16", low), ("float32", exact)):
        t = time.perf_counter()
        fitness[name] = problem.fitness(scorer.score(soft_prompts=prompts).indices)
        seconds[name] = time.perf_counter() - t
    f16, f32 = fitness["bfloat16"], fitness["float32"]
    pick = int(np.argmin(f16))
    return {
        "target": profile.name, "variants": [v.name for v in variants], "points": points, "seed": seed,
        "search_space": {k: space.description[k] for k in ("n_virtual", "d", "init_text", "projection_seed",
                                                             "embedding_std", "bounds")},
        "fitness_bfloat16": f16.tolist(), "fitness_float32": f32.tolist(),
        "spearman": float(spearmanr(f16, f32).statistic),
        "mean_abs_difference": float(np.abs(f16 - f32).mean()), "max_abs_difference": float(np.abs(f16 - f32).max()),
        "bf16_pick": {"point": pick, "fitness_bfloat16": float(f16[pick]), "fitness_float32": float(f32[pick]),
                      "rank_in_float32": int(1 + (f32 < f32[pick]).sum()),
                      "winners_curse": float(f32[pick] - f16[pick]),
                      "selection_loss": float(f32[pick] - f32.min())},
        "float32_best": float(f32.min()), "seconds": seconds,
    }


def _precision_report(model: str, points: int, seed: int) -> dict:
    lm = load_model(model)
    return precision_agreement(lm.model, lm.tokenizer, points=points, seed=seed)


def describe_precision(r: dict) -> str:
    """One line of the precision report, for the terminal and the docs."""
    pick = r["bf16_pick"]
    return (f"bf16 vs fp32 fitness on {r['points']} random points ({r['target']}, {', '.join(r['variants'])}): "
            f"Spearman rho {r['spearman']:.2f}, mean |diff| {r['mean_abs_difference']:.2f}, max "
            f"{r['max_abs_difference']:.2f} L1 points; the bf16 best is #{pick['rank_in_float32']} of "
            f"{r['points']} in fp32, {pick['selection_loss']:.2f} above the fp32 best; its fp32 fitness is "
            f"{pick['winners_curse']:.2f} above its bf16 fitness (winner's curse)")


def run_engine(engine: str, model: str, candidates: int, repeats: int, max_batch_mb: float,
               variants: str = BENCH_VARIANTS) -> dict:
    """One engine's measurement (in this process): every candidate scored on every item of every
    rendering of ``variants`` (names or a split); rates are medians over the timed calls."""
    torch.manual_seed(0)
    lm = load_model(model)
    soft = soft_prompts(lm.model, candidates)
    chosen = get_variants(variants)
    if engine == "scorer-fp32":
        out = _scorer_engine(lm, soft, repeats, None, max_batch_mb, chosen)
    elif engine == "scorer-bf16":
        out = _scorer_engine(lm, soft, repeats, "bfloat16", max_batch_mb, chosen)
    elif engine == "lm-eval":
        out = _lm_eval_engine(lm, soft, repeats, chosen)
    elif engine == "loop":
        out = _loop_engine(lm, soft, repeats, chosen)
    else:
        raise ValueError(engine)
    per_candidate = [t / out["candidates_per_call"] for t in out["seconds_per_call"]]
    seconds = statistics.median(per_candidate)
    dtype = "bfloat16" if engine == "scorer-bf16" else str(lm.model.dtype).replace("torch.", "")
    out.update({"engine": engine, "dtype": dtype, "renderings": [v.name for v in chosen],
                "seconds_per_candidate": seconds, "candidates_per_second": 1 / seconds,
                "renderings_per_second": len(chosen) / seconds,
                "tokens_per_second": out["tokens_per_candidate"] / seconds,
                "model_flops_per_second": out["tokens_per_candidate"] * flops_per_token(lm.model) / seconds,
                "peak_rss_mb": _peak_rss_mb(), "threads": torch.get_num_threads()})
    return out


def benchmark(model: str = "smollm2-135m-instruct", candidates: int = 10, repeats: int = 3,
              max_batch_mb: float | None = None, engines=ENGINES, echo=print, precision_points: int = 24,
              variants: str = BENCH_VARIANTS) -> dict:
    """Run every engine in its own subprocess, one after the other on the same renderings
    (``variants``), then the bf16/fp32 agreement on ``precision_points`` random points (0: skip
    it); return the combined report, with the load average around each engine (the machine may
    be shared: compare the ratios, measured side by side)."""
    from cultbench.scoring.scorer import SurveyScorer as _S
    import inspect

    if max_batch_mb is None:
        max_batch_mb = inspect.signature(_S.__init__).parameters["max_batch_mb"].default
    rates = {"float32": matmul_rate(torch.float32), "bfloat16": matmul_rate(torch.bfloat16)}
    echo(f"matmul rate: fp32 {rates['float32'] / 1e12:.3f} TFLOP/s, bf16 {rates['bfloat16'] / 1e12:.3f} TFLOP/s")
    chosen = get_variants(variants)
    echo(f"renderings: {', '.join(v.name for v in chosen)} (wording version {variants_version()})")
    results = {}
    for engine in engines:
        echo(f"running {engine} ...")
        load_before = os.getloadavg()
        proc = subprocess.run([sys.executable, "-m", "cultbench.bench.speed", engine, model, str(candidates),
                               str(repeats), str(max_batch_mb), ",".join(v.name for v in chosen)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark engine {engine} failed:\n{proc.stderr[-3000:]}")
        results[engine] = r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["load_average_before_after"] = [load_before[0], os.getloadavg()[0]]
        r["matmul_fraction"] = r["model_flops_per_second"] / rates[r["dtype"]]
        echo(f"  {engine}: {r['renderings_per_second']:.3f} renderings/s ({r['candidates_per_second']:.3f} "
             f"candidates/s), {r['tokens_per_second']:.0f} tokens/s, {r['matmul_fraction']:.0%} of the "
             f"{r['dtype']} matmul rate, peak RSS {r['peak_rss_mb']:.0f} MB")
    report = {"model": model, "candidates": candidates, "repeats": repeats, "max_batch_mb": max_batch_mb,
              "wording_version": variants_version(), "renderings": [v.name for v in chosen],
              "matmul_flops_per_second": rates, "machine": {"platform": platform.platform(),
              "processor": platform.processor(), "cpus": os.cpu_count(), "torch": torch.__version__,
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
              "engines": results, "comparisons": _compare(results)}
    if precision_points:
        report["precision"] = _run_precision(model, precision_points, echo)
    return report


def _run_precision(model: str, points: int, echo) -> dict:
    """:func:`precision_agreement` in its own subprocess (like the engines)."""
    echo(f"running bf16/fp32 agreement on {points} points ...")
    proc = subprocess.run([sys.executable, "-m", "cultbench.bench.speed", "precision", model, str(points), "0"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark precision check failed:\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    echo(f"  {describe_precision(report)}")
    return report


def _compare(results: dict) -> dict:
    out = {}
    ref = results.get("scorer-fp32")
    for name, r in results.items():
        entry = {}
        if "lm-eval" in results and name != "lm-eval":
            entry["speed_vs_lm_eval"] = r["renderings_per_second"] / results["lm-eval"]["renderings_per_second"]
        if ref is not None and name != "scorer-fp32":
            n = min(len(r["indices"]), len(ref["indices"]))
            entry["max_abs_index_error_vs_fp32_scorer"] = float(
                np.abs(np.array(r["indices"][:n]) - np.array(ref["indices"][:n])).max())
            entry["max_abs_expected_answer_error_vs_fp32_scorer"] = float(
                np.abs(np.array(r["expected"][:n]) - np.array(ref["expected"][:n])).max())
        out[name] = entry
    return out


if __name__ == "__main__":
    if sys.argv[1] == "precision":
        print(json.dumps(_precision_report(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
    else:
        engine, model, candidates, repeats, max_batch_mb, variants = sys.argv[1:7]
        print(json.dumps(run_engine(engine, model, int(candidates), int(repeats), float(max_batch_mb), variants)))
