"""scripts/gpu_check.py runs end to end on the CPU with a tiny shape (the GPU figures need a GPU:
docs/gpu-check-h200.json)."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_gpu_check_reports_throughput_flops_and_memory_fields(tmp_path):
    gpu_check = load_script()
    out = tmp_path / "check.json"
    assert gpu_check.main(["--shape", "tiny", "--device", "cpu", "--populations", "2,3", "--repeats", "1",
                           "--peak-tflops", "1", "--prompt-tuning-steps", "0", "--agreement-points", "0",
                           "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["shape"] == "tiny" and report["peak_bf16_tflops"] == 1
    assert [r["population"] for r in report["runs"]] == [2, 3]
    for run in report["runs"]:
        assert run["items"] == 24 and run["candidate_evals_per_s"] > 0 and run["tokens_per_s"] > 0
        assert run["tokens_per_candidate"] > 24 and 0 < run["mfu"] < 1
        assert run["mfu"] == pytest.approx(run["model_tflops_per_s"] / 1)
        assert run["forwards_per_call"] >= 2 and run["real_tokens_per_call"] == run["population"] * run["tokens_per_candidate"]
        assert run["padding"] == 0  # the scorer's own default on a CPU


def test_gpu_check_every_section_with_a_saved_tokenizer(tiny_folder, tmp_path):
    """All sections (scorer runs per padding, profile, prompt-tuning step, bf16/fp32 agreement) on
    the CPU, the tokenizer read from a folder as on the GPU machine (--tokenizer)."""
    gpu_check = load_script()
    out = tmp_path / "check.json"
    assert gpu_check.main(["--shape", "tiny", "--device", "cpu", "--tokenizer", str(tiny_folder),
                           "--populations", "2", "--paddings", "0,0.5", "--repeats", "1", "--peak-tflops", "1",
                           "--profile", "always", "--profile-population", "2", "--prompt-tuning-steps", "1",
                           "--prompt-tuning-paddings", "0",
                           "--variants-per-backward", "1", "--agreement-points", "3", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["errors"] == {}
    runs = {r["padding"]: r for r in report["runs"]}
    assert set(runs) == {0.0, 0.5}
    # padding merges near widths: fewer forwards, padded tokens beyond the real ones, same real tokens
    assert runs[0.5]["forwards_per_call"] < runs[0.0]["forwards_per_call"]
    assert runs[0.0]["padded_tokens_per_call"] == runs[0.0]["real_tokens_per_call"]
    assert runs[0.5]["padded_tokens_per_call"] > runs[0.5]["real_tokens_per_call"] == runs[0.0]["real_tokens_per_call"]
    assert [p["padding"] for p in report["profiles"]] == [0.0, 0.5]
    assert all(p["wall_s"] > 0 and p["top_cpu_ops"] for p in report["profiles"])
    (step,) = report["prompt_tuning"]
    assert step["variants_per_backward"] == 1 and len(step["variants"]) == 4 and step["step_cost"] > 0
    assert step["model_flops_per_step"] > 0 and 0 < step["mfu"] < 1
    agreement = report["agreement"]["random_model"]
    assert agreement["points"] == 3 and -1 <= agreement["spearman"] <= 1
    assert "random-init tiny" in agreement["model"]


def test_known_gpus_have_a_peak():
    gpu_check = load_script()
    assert gpu_check.peak_tflops("NVIDIA H100 80GB HBM3") == pytest.approx(989.4)
    assert gpu_check.peak_tflops("NVIDIA H100 PCIe") == pytest.approx(756.0)
    assert gpu_check.peak_tflops("NVIDIA H200") == pytest.approx(989.4)
    assert gpu_check.peak_tflops("Some Future GPU") is None
