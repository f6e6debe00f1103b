"""scripts/gpu_check.py runs end to end on the CPU with a tiny shape (the GPU figures need a GPU)."""

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
                           "--peak-tflops", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["shape"] == "tiny" and report["peak_bf16_tflops"] == 1
    assert [r["population"] for r in report["runs"]] == [2, 3]
    for run in report["runs"]:
        assert run["items"] == 24 and run["candidate_evals_per_s"] > 0 and run["tokens_per_s"] > 0
        assert run["tokens_per_candidate"] > 24 and 0 < run["mfu"] < 1
        assert run["mfu"] == pytest.approx(run["model_tflops_per_s"] / 1)


def test_known_gpus_have_a_peak():
    gpu_check = load_script()
    assert gpu_check.peak_tflops("NVIDIA H100 80GB HBM3") == pytest.approx(989.4)
    assert gpu_check.peak_tflops("NVIDIA H100 PCIe") == pytest.approx(756.0)
    assert gpu_check.peak_tflops("NVIDIA H200") == pytest.approx(989.4)
    assert gpu_check.peak_tflops("Some Future GPU") is None
