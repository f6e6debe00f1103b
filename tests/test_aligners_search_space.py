"""aligners/search_space.py: P0, the projection and the identity space, and what a model must
give."""


import numpy as np
import pytest
import torch

from aligners import SoftPromptSpace, make_aligner
from cultbench.errors import CultbenchError
from aligner_standin import HIDDEN, LinearScorer, PARAMS, synthetic_problem


def test_search_space_p0_projection_and_identity():
    scorer = LinearScorer()
    weight = scorer.model.embed.weight.detach().double()
    space = SoftPromptSpace.build(scorer.model, scorer.tokenizer, n_virtual=5, d=3, init_text="hello world",
                                  projection_seed=11, bounds=(-1.0, 1.0))
    ids = scorer.tokenizer("hello world")["input_ids"]
    # P0 cycles the two tokens to five; z = 0 gives P0.
    torch.testing.assert_close(space.prompts(np.zeros(3))[0].double(), weight[[ids[i % 2] for i in range(5)]])
    std = float(weight.std())
    assert space.description["projection"] == "random"
    assert space.description["projection_std"] == pytest.approx(std / np.sqrt(3))
    assert space.projection.shape == (5 * HIDDEN, 3)
    again = SoftPromptSpace.build(scorer.model, scorer.tokenizer, n_virtual=5, d=3, init_text="hello world",
                                  projection_seed=11, bounds=(-1.0, 1.0))
    np.testing.assert_array_equal(space.projection, again.projection)
    # A candidate's prompt does not depend on the population it is computed in.
    z = np.random.default_rng(0).uniform(-1, 1, (7, 3))
    assert torch.equal(space.prompts(z)[4], space.prompts(z[4])[0])
    full = SoftPromptSpace.build(scorer.model, scorer.tokenizer, n_virtual=2, d=2 * HIDDEN, init_text="",
                                 projection_seed=0, bounds=(-1.0, 1.0))
    assert full.projection is None and full.description["projection"] == "identity"
    torch.testing.assert_close(full.prompts(np.ones(2 * HIDDEN))[0], torch.full((2, HIDDEN), std, dtype=torch.float32))


def test_d_beyond_the_prompt_size_is_refused():
    with pytest.raises(CultbenchError, match=r"d=33 is out of range for n_virtual=4 and hidden size 8: 1\.\.32"):
        make_aligner("de", **dict(PARAMS, d=33)).align(synthetic_problem(), budget=24)


def test_model_without_input_embeddings():
    scorer = LinearScorer()
    problem = synthetic_problem(scorer)
    scorer.model = torch.nn.Linear(2, 2)
    with pytest.raises(CultbenchError, match="Linear gives no access to its input embeddings"):
        make_aligner("de", **PARAMS).align(problem, budget=24)
