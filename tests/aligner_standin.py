"""The aligners' tests' deterministic stand-in (no model): a scorer that maps a soft prompt
linearly to indices, so with prompt = P0 + A z the indices are affine in z and a target made from
a chosen z* has a known optimum (fitness 0 at z = z*); and the fixtures several test files share.
"""

import time
import types

import numpy as np
import pytest
import torch

from aligners import ICL_TEMPLATE, AlignmentProblem, SoftPromptSpace, make_aligner
from aligners import registry
from cultbench.instruments import load_instrument
from cultbench.profiles import DIMENSIONS, Profile


INST = load_instrument("vsm2013")
VOCAB, HIDDEN = 64, 8
PARAMS = dict(n_virtual=4, d=4, popsize=12, bounds=(-1.0, 1.0))  # the synthetic problem lives in [-1, 1]^4
Z_STAR = np.array([0.3, -0.4, 0.2, -0.1])
SEARCHERS = ["de", "cmaes", "random"]


class WordTokenizer:
    """Word -> id by a stable hash; enough to make P0 from a text."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [sum(map(ord, w)) % VOCAB for w in text.split()]}


class EmbeddingOnlyModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.embed = torch.nn.Embedding(VOCAB, HIDDEN)
        with torch.no_grad():
            self.embed.weight.copy_(torch.randn(VOCAB, HIDDEN, generator=generator) * 0.05)

    def get_input_embeddings(self):
        return self.embed


class LinearScorer:
    """Stand-in for SurveyScorer: indices = 50 + M @ flatten(soft prompt), same under both variants.

    ``fail(prompt) -> None | "nan" | "raise"`` makes chosen candidates break; ``interrupt_at``
    raises KeyboardInterrupt on that call (1-based); in "bfloat16" every index is off by 0.5.
    """

    def __init__(self, n_virtual=4, fail=None, interrupt_at=None, delay=0.0, dtype=torch.float32):
        self.model, self.tokenizer, self.instrument = EmbeddingOnlyModel(), WordTokenizer(), INST
        self.variants = [types.SimpleNamespace(name="v1"), types.SimpleNamespace(name="v2")]
        self.constants = INST.constants()
        self.dtype = dtype
        self.M = np.random.default_rng(7).normal(size=(6, n_virtual * HIDDEN)) * 40
        self.fail, self.interrupt_at, self.delay = fail, interrupt_at, delay
        self.batches, self.personas = [], []

    def score(self, soft_prompts=None, personas=None):
        self.batches.append(len(soft_prompts) if soft_prompts is not None else 1)
        self.personas.append(personas)
        if self.interrupt_at is not None and len(self.batches) == self.interrupt_at:
            raise KeyboardInterrupt
        time.sleep(self.delay)
        n = self.batches[-1]
        x = (np.zeros((n, self.M.shape[1])) if soft_prompts is None
             else torch.stack(list(soft_prompts)).double().reshape(n, -1).numpy())
        indices = 50 + np.einsum("dk,ck->cd", self.M, x)
        if self.dtype == torch.bfloat16:
            indices = indices + 0.5  # stands for bf16's rounding error
        if self.fail is not None:
            verdicts = [self.fail(row) for row in x]
            if "raise" in verdicts:
                raise RuntimeError("this soft prompt breaks the model")
            indices[[v == "nan" for v in verdicts]] = np.nan
        return types.SimpleNamespace(indices=np.stack([indices, indices], axis=1))


def synthetic_problem(scorer=None, **problem_kw):
    """A problem whose target is the stand-in's indices at Z_STAR (fitness 0 there)."""
    scorer = scorer or LinearScorer()
    space = SoftPromptSpace.build(scorer.model, scorer.tokenizer, n_virtual=PARAMS["n_virtual"], d=PARAMS["d"],
                                  init_text=ICL_TEMPLATE.format(country="Testland"), projection_seed=0,
                                  bounds=(-1.0, 1.0))
    optimum = LinearScorer().score(space.prompts(Z_STAR)).indices[0, 0]
    target = Profile(name="Testland", code="TST", iso2=None, iso3=None, source="synthetic",
                     scores=dict(zip(DIMENSIONS, optimum)))
    info = {"id": "stand-in", "revision": "r1", "file_sha256": None, "hidden_size": HIDDEN}
    return AlignmentProblem(scorer, target, model_info=info, **problem_kw)


@pytest.fixture
def clean_registry():
    """Restore the registry after a test registers aligners or plugins."""
    saved = dict(registry._ALIGNERS), dict(registry._PLUGIN_ERRORS), registry._entry_points_loaded
    yield
    registry._ALIGNERS.clear()
    registry._ALIGNERS.update(saved[0])
    registry._PLUGIN_ERRORS.clear()
    registry._PLUGIN_ERRORS.update(saved[1])
    registry._entry_points_loaded = saved[2]


# -- optimisers through one interface -----------------------------------------------------------

@pytest.fixture(scope="module")
def results_600():
    return {name: make_aligner(name, **PARAMS).align(synthetic_problem(), budget=600, seed=0) for name in SEARCHERS}
