"""`cultbench run --workers 2`: the combinations as Ray tasks on a local 2-CPU cluster that the
tests start and stop, against the same sweep run in one process."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'cultbench[ray]')")

from cultbench.cli import main  # noqa: E402

# Every test here starts a Ray cluster (10-20 s on 2 cores before a test runs).
pytestmark = pytest.mark.slow

SMALL = ["--param", "popsize=5", "--param", "n_virtual=2", "--param", "d=4"]
# Everything of a result but the run's bookkeeping (times, dates, threads).
SAME = ("id", "variants", "constants", "instrument", "target")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def sweep_args(tiny_folder, root: Path, budget: int = 10) -> list:
    return ["run", "--model", tiny_folder, "--target", "US", "--target", "China", "--aligner", "naive",
            "--aligner", "de", "--budget", budget, "--seed", "0", "--seed", "1", *SMALL, "--no-progress",
            "--output", root / "entries", "--runs-dir", root / "runs"]


def result_paths(stdout: str) -> list[str]:
    return [word for word in stdout.split() if word.endswith(".json")]


def load(folder: Path) -> dict:
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def assert_same_results(local: dict, remote: dict) -> None:
    assert sorted(local) == sorted(remote)
    for name, a in local.items():
        b = remote[name]
        for part in SAME:
            assert a[part] == b[part], (name, part)
        assert a["aligner"]["evaluations"] == b["aligner"]["evaluations"]
        # workers run with another torch thread count: fp32 rounding may differ by an ulp
        for split in ("train", "heldout"):
            assert b["metrics"][split]["l1"] == pytest.approx(a["metrics"][split]["l1"], rel=1e-6)


def test_sweep_combinations_run_as_ray_tasks(cluster, tiny_folder, tmp_path):
    local = invoke(sweep_args(tiny_folder, tmp_path / "local"))
    assert local.exit_code == 0, local.output
    remote = invoke(sweep_args(tiny_folder, tmp_path / "ray") + ["--workers", 2])
    assert remote.exit_code == 0, remote.output
    paths = result_paths(remote.stdout)
    assert len(paths) == len(set(paths)) == 6  # 2 targets x (naive once + de x 2 seeds), each written once
    assert_same_results(load(tmp_path / "local" / "entries"), load(tmp_path / "ray" / "entries"))
    assert "6 combinations run, 0 done before, 2 shared" in remote.output
    again = invoke(sweep_args(tiny_folder, tmp_path / "ray") + ["--workers", 2])
    assert again.exit_code == 0 and "0 combinations run, 8 done before" in again.output


def _task_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"run_combination" in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the task's worker process through /proc")
def test_a_worker_killed_mid_task_is_retried_and_nothing_is_lost_or_doubled(cluster, tiny_folder, tmp_path):
    killed = []

    def kill_one_task_worker():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            for runs in (tmp_path / "ray" / "runs").glob("*de_b40*"):
                if (runs / "checkpoint.safetensors").exists() and _task_pids():  # a search under way
                    pid = _task_pids()[0]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_task_worker)
    killer.start()
    remote = invoke(sweep_args(tiny_folder, tmp_path / "ray", budget=40) + ["--workers", 2])
    killer.join()
    assert killed, "no task worker was found to kill"
    assert remote.exit_code == 0, remote.output
    paths = result_paths(remote.stdout)  # Ray's own notice of the dead worker may come in between
    assert len(paths) == len(set(paths)) == 6
    local = invoke(sweep_args(tiny_folder, tmp_path / "local", budget=40))
    assert local.exit_code == 0, local.output
    assert_same_results(load(tmp_path / "local" / "entries"), load(tmp_path / "ray" / "entries"))


def test_a_combination_failing_in_its_task_is_a_clear_error(cluster, tiny_folder, tmp_path):
    args = ["run", "--model", tiny_folder, "--target", "US", "--aligner", "naive", "--no-progress",
            "--output", tmp_path / "entries", "--runs-dir", tmp_path / "runs"]
    assert invoke(args).exit_code == 0
    (saved,) = (tmp_path / "runs").glob("*naive*")
    (saved / "alignment.json").write_text("{not json")  # the task finds a broken saved alignment
    for entry in (tmp_path / "entries").glob("*.json"):
        entry.unlink()
    result = invoke(args + ["--workers", 2])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "naive -> U.S.A. failed on Ray" in result.output and "alignment.json" in result.output


@pytest.fixture(scope="module")
def opinions_folder(tmp_path_factory):
    from conftest import tiny_llama
    from test_opinions import opinions_tokenizer

    folder = tmp_path_factory.mktemp("tiny-opinions")
    model, tokenizer = tiny_llama(opinions_tokenizer())
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_distribution_sweep_runs_as_ray_tasks_with_a_relative_data_path(cluster, opinions_folder, tmp_path,
                                                                          monkeypatch):
    from conftest import ROOT

    monkeypatch.chdir(ROOT)  # --data relative to here; Ray's workers run elsewhere

    def args(root):
        return ["run", "--model", opinions_folder, "--instrument", "globalopinionqa", "--data",
                "tests/data/globalopinionqa_fixture.csv", "--target", "Germany", "--aligner", "naive", "--aligner",
                "de", "--budget", 10, *SMALL, "--no-progress", "--output", root / "entries", "--runs-dir", root / "runs"]

    local = invoke(args(tmp_path / "local"))
    assert local.exit_code == 0, local.output
    remote = invoke(args(tmp_path / "ray") + ["--workers", 2])
    assert remote.exit_code == 0, remote.output
    a, b = load(tmp_path / "local" / "entries"), load(tmp_path / "ray" / "entries")
    assert sorted(a) == sorted(b) and len(a) == 2
    for name, record in a.items():
        for part in SAME:
            assert record[part] == b[name][part], (name, part)
        assert record["instrument"]["data"]["path"] == str(ROOT / "tests" / "data" / "globalopinionqa_fixture.csv")
        for block in ("train", "heldout_questions", "heldout_wordings", "heldout"):
            assert b[name]["metrics"][block]["similarity"] == pytest.approx(record["metrics"][block]["similarity"],
                                                                            rel=1e-6)
