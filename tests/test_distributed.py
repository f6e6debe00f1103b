"""Scoring on Ray: a local 2-CPU cluster started by the tests, the tiny model, one actor per CPU."""

import time

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'cultbench[ray]')")

from aligners import AlignmentProblem, make_aligner  # noqa: E402
from cultbench.runs.distributed import RayScorer, split  # noqa: E402
from cultbench.errors import CultbenchError  # noqa: E402
from cultbench.instruments import load_instrument  # noqa: E402
from cultbench.scoring.models import load_model  # noqa: E402
from cultbench.profiles import lookup  # noqa: E402
from cultbench.prompts import get_variants  # noqa: E402
from cultbench.scoring.scorer import SurveyScorer  # noqa: E402

# Every test here starts a Ray cluster (10-20 s on 2 cores before a test runs).
pytestmark = pytest.mark.slow

INST = load_instrument("vsm2013")
ARRAYS = ("probs", "option_mass", "expected", "indices")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def loaded(tiny_folder):
    return load_model(str(tiny_folder))


@pytest.fixture(scope="module")
def scorers(cluster, loaded, tiny_folder):
    variants = get_variants("train")
    local = SurveyScorer(loaded.model, loaded.tokenizer, INST, variants)
    remote = RayScorer(loaded.model, loaded.tokenizer, INST, variants, model_name=str(tiny_folder), workers=2)
    yield local, remote
    remote.close()


def prompts(n, seed=0):
    return torch.randn(n, 2, 32, generator=torch.Generator().manual_seed(seed))


def assert_same(a, b):
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, name
        # A worker's share is batched in smaller forwards than the whole population; fp32 attention
        # then rounds some logits differently by an ulp, which this random tiny model (large logits,
        # index coefficients up to 35) turns into at most ~1e-4 index points.
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-4 if name == "indices" else 1e-5, err_msg=name)
    assert (a.variants, a.item_ids, a.dimension_ids) == (b.variants, b.item_ids, b.dimension_ids)


def test_split_is_contiguous_and_complete():
    assert [list(r) for r in split(5, 2)] == [[0, 1], [2, 3, 4]] or [list(r) for r in split(5, 2)] == [[0, 1, 2], [3, 4]]
    assert sum(map(len, split(7, 3))) == 7 and split(1, 4) == [range(0, 1)]


def test_ray_scorer_matches_the_local_scorer(scorers):
    local, remote = scorers
    soft = prompts(5)
    assert_same(remote.score(soft), local.score(soft))
    personas = ["a person", None, "someone"]
    assert_same(remote.score(personas=personas), local.score(personas=personas))
    assert_same(remote.score(), local.score())
    assert remote.hidden_size == local.hidden_size and remote.dtype == local.dtype


def test_de_alignment_on_ray_gives_the_single_process_fitness(scorers, tmp_path):
    local, remote = scorers
    runs = []
    for i, scorer in enumerate((local, remote)):
        problem = AlignmentProblem(scorer, lookup("US"), exact_scorer=local)
        runs.append(make_aligner("de", popsize=5, n_virtual=2, d=4).align(problem, budget=15, seed=0,
                                                                          run_dir=tmp_path / str(i)))
    a, b = runs
    assert len(a.history) == len(b.history) == 3
    for ha, hb in zip(a.history, b.history):
        for key in ("best", "mean"):
            assert abs(ha[key] - hb[key]) <= 1e-6 * abs(hb[key]), (key, ha, hb)
    assert abs(a.fitness - b.fitness) <= 1e-6 * abs(b.fitness)


def kill_and_wait(actor) -> None:
    """Kill an actor and return once it is dead: ``ray.kill`` only sends the kill, so a call made
    at once may still be served (how soon depends on the machine's load). Each probe waits on a
    call's outcome, not on a clock: it returns once a call fails with the actor's death."""
    ray.kill(actor, no_restart=True)
    while True:
        try:
            ray.get(actor.info.remote())
        except ray.exceptions.RayActorError:
            return


def test_a_dead_actor_is_replaced_and_its_share_rescored(scorers, monkeypatch):
    local, remote = scorers
    submit, killed = remote._submit, []

    def kill_then_submit(i, soft, personas):  # actor 1 is dead when its share is sent, once
        if i == 1 and not killed:
            killed.append(remote.actors[1])
            kill_and_wait(remote.actors[1])
        return submit(i, soft, personas)

    monkeypatch.setattr(remote, "_submit", kill_then_submit)
    before = remote.replacements
    soft = prompts(5, seed=1)
    assert_same(remote.score(soft), local.score(soft))  # complete, in order, nothing duplicated
    assert killed and remote.replacements == before + 1 and remote.actors[1] != killed[0]
    kill_and_wait(remote.actors[0])  # killed between two calls
    assert_same(remote.score(soft), local.score(soft))
    assert remote.replacements == before + 2


def test_workers_that_cannot_be_placed_are_a_clear_error(scorers, loaded, tiny_folder):
    with pytest.raises(CultbenchError, match="not ready"):  # the module's 2 actors hold both CPUs
        RayScorer(loaded.model, loaded.tokenizer, INST, get_variants("train"), model_name=str(tiny_folder),
                  workers=1, start_timeout_s=2)


def test_an_unreachable_cluster_is_a_clear_error(loaded, tiny_folder, monkeypatch):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh process
    t0 = time.perf_counter()
    with pytest.raises(CultbenchError, match="127.0.0.1:1"):
        RayScorer(loaded.model, loaded.tokenizer, INST, get_variants("train"), model_name=str(tiny_folder),
                  address="127.0.0.1:1")
    assert time.perf_counter() - t0 < 10
