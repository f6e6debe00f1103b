"""GPU check of the survey scorer on a randomly initialised model of Llama-3-8B's shape (bf16, no
download): candidate evaluations/s, tokens/s, model FLOP utilisation and peak memory for
populations of 10, 20 and 40 candidates, one prompt variant (24 items) each; the same for a
prompt-tuning step; bf16 against fp32 fitness (Spearman's rho) on random candidates.

    python scripts/gpu_check.py --out gpu-check.json            # on a machine with a GPU
    python scripts/gpu_check.py --shape tiny --device cpu       # the same code path, in seconds

Sections, in this order, each written to ``--out`` as soon as it is done (a section that fails
records its error and the next one runs):

- ``ceilings`` (CUDA only): the bf16 rate of an 8192^3 matrix product on random data, and of the
  MLP's [M, 4096] x [4096, 14336] product for several M (the rate a forward of M tokens can reach).
- ``runs``: the scorer for each population and each ``--paddings`` value (the scorer's padding:
  ``default`` is its own, ``cultbench.scoring.scorer.default_padding``: 0.25 on a GPU, 0 on a CPU, where 0
  is one forward per row width; more lets near widths share a forward). Per run: forwards per call, tokens (real and padded), seconds, evaluations/s,
  tokens/s, model TFLOP/s, MFU and peak memory (the model's weights included).
- ``profiles``: torch.profiler over one call at ``--profile-population`` (``--profile auto``: only
  when MFU there is under 40%): GPU busy time against wall time, kernel time by kind, the top
  kernels, and the synchronising calls.
- ``prompt_tuning``: the ``prompt-tuning`` aligner's step (forward and backward over the 3
  training variants, P0 = the U.S. persona) and its step cost against one forward candidate
  evaluation in a population of 10, per padding and ``variants_per_backward``.
- ``agreement``: bf16 against fp32 fitness on ``--agreement-points`` random points of the default
  search space (``cultbench.bench.speed.precision_agreement``), on this random model (fp32 = its bf16
  weights computed in fp32), and on ``--agreement-model`` (e.g. the bundled SmolLM2 GGUF) if given.

Model FLOPs count what the scorer must compute: 2 x the decoder's parameters per token
forwarded (real tokens, not padding), the attention products over the keys each token may see
(causal within its own prompt), and the output layer at the 24 answer positions per candidate.
A prompt-tuning step counts twice its forward (the backward computes the activations' gradients
only: the weights are frozen). Utilisation is that over the GPU's dense bf16 peak (a table of
known GPUs, or --peak-tflops), and over the measured 8192^3 rate. Random weights change nothing
in the arithmetic; the tokenizer is the bundled SmolLM2's (its ids fit Llama-3's vocabulary), or
a saved copy of it (``--tokenizer``).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import traceback

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from cultbench.atomic import write_text_atomic
from cultbench.bench.speed import precision_agreement, soft_prompts, step_cost
from cultbench.instruments import load_instrument
from cultbench.prompts import default_variant, get_variants
from cultbench.scoring.scorer import SurveyScorer

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
MFU_TARGET = 0.40


def peak_tflops(name: str) -> float | None:
    for key, value in sorted(PEAK_BF16_TFLOPS.items(), key=lambda kv: -len(kv[0])):
        if key.lower() in name.lower():
            return value
    return None


def model_flops(model, scorer: SurveyScorer, candidates: int, n_virtual: int = 4) -> tuple[float, int]:
    """FLOPs of one forward call on ``candidates`` (each with an ``n_virtual``-token soft prompt,
    every variant of ``scorer``): decoder matmuls per token, attention per (query, key) pair each
    prompt needs, and the output layer at the answer positions. Also the tokens per candidate."""
    cfg = model.config
    decoder = sum(p.numel() for p in model.model.layers.parameters())
    tokens = pairs = 0
    for renderings in scorer.wording_groups(range(len(scorer.variants))):  # packed as the scorer packs them
        layout = scorer.layout(renderings, None, n_virtual)
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


class ForwardCounter:
    """Counts the model's forwards and the tokens (padding included) that go through them."""

    def __init__(self, model):
        self.calls = self.tokens = 0
        self._handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, _module, args, kwargs):
        x = kwargs.get("inputs_embeds")
        self.calls += 1
        self.tokens += int(x.shape[0] * x.shape[1]) if x is not None else 0

    def reset(self):
        self.calls = self.tokens = 0

    def remove(self):
        self._handle.remove()


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _event_median_s(fn, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def ceilings(device, hidden: int, inner: int) -> dict:
    """bf16 matrix-product rates on random data: 8192^3, and [M, hidden] x [hidden, inner] per M."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(8192, 8192, device=device, generator=g, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, generator=g, dtype=torch.bfloat16)
    square = 2 * 8192**3 / _event_median_s(lambda: a @ b, 3, 10) / 1e12
    del a, b
    w = torch.randn(hidden, inner, device=device, generator=g, dtype=torch.bfloat16)
    by_m = {}
    for m in (64, 128, 256, 512, 1024, 2048, 4096, 16384):
        x = torch.randn(m, hidden, device=device, generator=g, dtype=torch.bfloat16)
        by_m[str(m)] = 2 * m * hidden * inner / _event_median_s(lambda: x @ w, 3, 20) / 1e12
    return {"bf16_8192_cubed_tflops": square, "gemm_shape": f"[M, {hidden}] x [{hidden}, {inner}]",
            "bf16_gemm_tflops_by_m": by_m}


def measure_scorer(model, tokenizer, population: int, padding: float, repeats: int, max_batch_mb: float,
                   device, peak: float | None, measured: float | None, counter: ForwardCounter) -> dict:
    scorer = SurveyScorer(model, tokenizer, load_instrument(), [default_variant()], max_batch_mb=max_batch_mb,
                          padding=padding)
    soft = soft_prompts(model, population).to(device, model.dtype)
    scorer.score(soft)  # warm-up at full size: tokenisation, packing, kernels, the allocator's pool
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        counter.reset()
        scorer.tokens_forwarded = 0
        start = time.perf_counter()
        scorer.score(soft)
        _sync(device)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    flops, tokens = model_flops(model, scorer, population)
    return {"population": population, "padding": scorer.padding, "items": len(scorer.instrument.items),
            "forwards_per_call": counter.calls, "tokens_per_candidate": tokens,
            "padded_tokens_per_call": counter.tokens, "real_tokens_per_call": scorer.tokens_forwarded,
            "seconds_per_call": times, "median_s": seconds, "candidate_evals_per_s": population / seconds,
            "tokens_per_s": population * tokens / seconds, "model_tflops_per_s": flops / seconds / 1e12,
            "mfu": None if peak is None else flops / seconds / (peak * 1e12),
            "fraction_of_measured_matmul": None if measured is None else flops / seconds / (measured * 1e12),
            "peak_memory_gib": (torch.cuda.max_memory_allocated(device) / 2**30) if device.type == "cuda" else None}


_KINDS = [("gemm", r"gemm|gemv|cutlass|nvjet|xmma|cublas|matmul|splitk"),
          ("attention", r"fmha|attention|flash|attn|softmax"),
          ("copy/index/cat", r"memcpy|memset|copy|index|gather|scatter|cat|stack|nonzero|masked|fill"),
          ("elementwise/reduction", r".")]


def _kind(name: str) -> str:
    for kind, pattern in _KINDS:
        if re.search(pattern, name, re.IGNORECASE):
            return kind
    return "other"


def profile_call(scorer: SurveyScorer, soft, device, top: int = 15) -> dict:
    """One scorer call under torch.profiler: where the GPU's time goes, and how much of the wall
    time it is busy at all."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    scorer.score(soft)
    _sync(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        scorer.score(soft)
        _sync(device)
        wall = time.perf_counter() - start
    averages = prof.key_averages()

    def device_us(e):
        return float(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0)))

    kernels = [e for e in averages if e.device_type == DeviceType.CUDA and device_us(e) > 0]
    busy = sum(device_us(e) for e in kernels) / 1e6
    by_kind: dict[str, float] = {}
    for e in kernels:
        by_kind[_kind(e.key)] = by_kind.get(_kind(e.key), 0.0) + device_us(e) / 1e6
    cpu_ops = sorted((e for e in averages if e.device_type == DeviceType.CPU), key=lambda e: -e.self_cpu_time_total)
    runtime = {e.key: e.count for e in averages
               if e.key.startswith(("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaMemcpy", "cudaLaunchKernel",
                                    "cudaLaunchKernelExC", "cuLaunchKernel", "cudaEventSynchronize"))}
    return {
        "population": len(soft), "padding": scorer.padding, "wall_s": wall, "kernel_s": busy,
        "gpu_busy_fraction": busy / wall if device.type == "cuda" else None,
        "kernels_launched": sum(e.count for e in kernels),
        "kernel_s_by_kind": {k: v for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
        "top_kernels": [{"name": e.key[:160], "calls": e.count, "total_ms": device_us(e) / 1e3,
                         "share_of_kernel_time": device_us(e) / 1e6 / busy if busy else None}
                        for e in sorted(kernels, key=lambda e: -device_us(e))[:top]],
        "top_cpu_ops": [{"name": e.key[:120], "calls": e.count, "self_cpu_ms": e.self_cpu_time_total / 1e3}
                        for e in cpu_ops[:top]],
        "runtime_calls": runtime,
    }


def prompt_tuning_figures(model, tokenizer, device, paddings, variants_per_backward, steps: int,
                          max_batch_mb: float, peak: float | None, measured: float | None, echo) -> list[dict]:
    info = {"id": "random-" + model.config.model_type, "dtype": str(model.dtype).replace("torch.", ""),
            "hidden_size": model.config.hidden_size}
    out = []
    for padding in paddings:
        forward = None
        for vpb in variants_per_backward:
            options = {"padding": padding, "max_batch_mb": max_batch_mb}
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            r = step_cost(model, tokenizer, info, population=10, steps=steps, repeats=2,
                          variants_per_backward=vpb, forward=forward, echo=echo, **options)
            forward = r["seconds_per_forward_evaluation"]  # measured once per padding
            flops_scorer = SurveyScorer(model, tokenizer, load_instrument(), get_variants("train"), **options)
            forward_flops, tokens = model_flops(model, flops_scorer, 1, n_virtual=r["n_virtual"])
            step_s = statistics.median(r["seconds_per_step"])
            r.update({"padding": flops_scorer.padding, "tokens_per_step": tokens, "model_flops_per_step": 2 * forward_flops,
                      "median_step_s": step_s, "steps_per_s": 1 / step_s, "tokens_per_s": tokens / step_s,
                      "model_tflops_per_s": 2 * forward_flops / step_s / 1e12,
                      "mfu": None if peak is None else 2 * forward_flops / step_s / (peak * 1e12),
                      "fraction_of_measured_matmul": None if measured is None
                      else 2 * forward_flops / step_s / (measured * 1e12),
                      "forward_candidate_evals_per_s": 1 / statistics.median(forward),
                      "peak_memory_gib": (torch.cuda.max_memory_allocated(device) / 2**30)
                      if device.type == "cuda" else None})
            r.pop("machine", None)
            out.append(r)
    return out


def _paddings(text: str) -> list[float | None]:
    """'default,0.25' -> [None, 0.25] (None: the scorer's own default)."""
    return [None if p.strip() == "default" else float(p) for p in text.split(",")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="llama-3-8b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tokenizer", default=None, help="a saved tokenizer folder (default: the bundled SmolLM2's)")
    ap.add_argument("--populations", default="10,20,40")
    ap.add_argument("--paddings", default="default", help="scorer padding values to measure, comma-separated "
                                                           "('default': the scorer's own for the device)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-batch-mb", type=float, default=16384.0, help="activation bound of one forward")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, if not in the table")
    ap.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                    help=f"profile one call at --profile-population (auto: when its MFU is under {MFU_TARGET:.0%})")
    ap.add_argument("--profile-population", type=int, default=20)
    ap.add_argument("--prompt-tuning-steps", type=int, default=2, help="timed steps per setting (0: skip)")
    ap.add_argument("--prompt-tuning-paddings", default=None, help="default: --paddings")
    ap.add_argument("--variants-per-backward", default="1,3")
    ap.add_argument("--agreement-points", type=int, default=20, help="bf16/fp32 agreement points (0: skip)")
    ap.add_argument("--agreement-model", default=None, help="also measure the agreement on this model (alias, "
                                                            "folder or .gguf), loaded in fp32 on --device")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu --shape tiny to check the script", file=sys.stderr)
        return 2
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    else:
        from cultbench.scoring.models import load_model

        tokenizer = load_model("smollm2-135m-instruct").tokenizer
    config = LlamaConfig(**SHAPES[args.shape], attn_implementation="sdpa")
    torch.manual_seed(0)
    with torch.device(device):
        torch.set_default_dtype(torch.bfloat16)
        model = LlamaForCausalLM(config).eval()
        torch.set_default_dtype(torch.float32)
    model.requires_grad_(False)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops or peak_tflops(name)
    paddings = _paddings(args.paddings)
    report = {"device": name, "shape": args.shape, "parameters": sum(p.numel() for p in model.parameters()),
              "dtype": "bfloat16", "peak_bf16_tflops": peak, "torch": torch.__version__,
              "transformers": __import__("transformers").__version__, "command": " ".join(sys.argv),
              "max_batch_mb": args.max_batch_mb, "runs": [], "errors": {}}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        report.update({"multiprocessors": props.multi_processor_count, "memory_gib": props.total_memory / 2**30,
                       "float32_matmul_precision": torch.get_float32_matmul_precision(),
                       "tf32_matmul": torch.backends.cuda.matmul.allow_tf32})

    def save():
        text = json.dumps(report, indent=2) + "\n"
        if args.out:
            write_text_atomic(args.out, text)
        return text

    def section(key, fn):
        started = time.perf_counter()
        try:
            result = fn()
            if result is not None:
                report[key] = result
        except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
            traceback.print_exc()
            report["errors"][key] = f"{type(exc).__name__}: {exc}"
        report.setdefault("section_seconds", {})[key] = time.perf_counter() - started
        save()

    measured = None
    if device.type == "cuda":
        section("ceilings", lambda: ceilings(device, config.hidden_size, config.intermediate_size))
        measured = report.get("ceilings", {}).get("bf16_8192_cubed_tflops")
        print(json.dumps(report.get("ceilings")), flush=True)

    counter = ForwardCounter(model)

    def runs():
        for padding in paddings:
            for population in [int(p) for p in args.populations.split(",")]:
                run = measure_scorer(model, tokenizer, population, padding, args.repeats, args.max_batch_mb,
                                     device, peak, measured, counter)
                report["runs"].append(run)
                print(json.dumps({k: v for k, v in run.items() if k != "seconds_per_call"}), flush=True)
                save()

    section("runs", runs)
    counter.remove()

    def profiles():
        at = [r for r in report["runs"] if r["population"] == args.profile_population]
        below = any(r["mfu"] is not None and r["mfu"] < MFU_TARGET for r in at[:1])
        if args.profile == "never" or (args.profile == "auto" and not below):
            return None
        out = []
        for padding in paddings:
            scorer = SurveyScorer(model, tokenizer, load_instrument(), [default_variant()],
                                  max_batch_mb=args.max_batch_mb, padding=padding)
            soft = soft_prompts(model, args.profile_population).to(device, model.dtype)
            out.append(profile_call(scorer, soft, device))
            print(json.dumps({k: out[-1][k] for k in ("padding", "wall_s", "kernel_s", "gpu_busy_fraction",
                                                         "kernel_s_by_kind")}), flush=True)
        return out

    section("profiles", profiles)

    if args.prompt_tuning_steps > 0:
        pt_paddings = _paddings(args.prompt_tuning_paddings or args.paddings)
        vpbs = [int(v) for v in args.variants_per_backward.split(",")]
        section("prompt_tuning", lambda: prompt_tuning_figures(
            model, tokenizer, device, pt_paddings, vpbs, args.prompt_tuning_steps, args.max_batch_mb, peak,
            measured, lambda line: print(line, flush=True)))

    if args.agreement_points > 0:
        agreement = report.setdefault("agreement", {})

        def random_model():
            model.float()  # the same (bf16-valued) weights, computed in fp32 against a bf16 copy
            r = precision_agreement(model, tokenizer, points=args.agreement_points, max_batch_mb=args.max_batch_mb)
            r["model"] = (f"random-init {args.shape} shape (bf16 weights; fp32 = the same weights computed in "
                          "fp32): its fitness differences are noise of an untrained model")
            return r

        def named_model():
            from cultbench.scoring.models import load_model

            lm = load_model(args.agreement_model, device=str(device))
            r = precision_agreement(lm.model, lm.tokenizer, points=args.agreement_points,
                                    max_batch_mb=args.max_batch_mb)
            r["model"] = {k: lm.info.get(k) for k in ("id", "file_sha256", "parameters")}
            return r

        steps = [("random_model", random_model)] + ([("named_model", named_model)] if args.agreement_model else [])
        for key, fn in steps:
            started = time.perf_counter()
            try:
                agreement[key] = fn()
                print(f"agreement {key}: rho {agreement[key]['spearman']:.3f}", flush=True)
            except Exception as exc:  # noqa: BLE001
                traceback.print_exc()
                report["errors"][f"agreement.{key}"] = f"{type(exc).__name__}: {exc}"
            report.setdefault("section_seconds", {})[f"agreement.{key}"] = time.perf_counter() - started
            if key == "random_model":
                del model  # noqa: F821 - frees the fp32 copy before the next model loads
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            save()

    text = save()
    if not args.out:
        print(text)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
