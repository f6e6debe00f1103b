"""aligners/objective.py: the alignment problem's target and distance."""


import pytest

from aligners import AlignmentProblem, make_aligner
from cultbench.errors import CultbenchError
from cultbench.profiles import Profile
from aligner_standin import LinearScorer, PARAMS


def test_target_lacking_a_dimension():
    partial = Profile(name="Partland", code="PRT", iso2=None, iso3=None, source="synthetic",
                      scores={"lto": 40.0, "ivr": 60.0})
    with pytest.raises(CultbenchError, match="Partland has no PDI, IDV, MAS, UAI in source synthetic"):
        AlignmentProblem(LinearScorer(), partial)
    problem = AlignmentProblem(LinearScorer(), partial, dimensions=["lto", "ivr"])
    result = make_aligner("random", **PARAMS).align(problem, budget=24)
    assert result.problem["dimensions"] == ["lto", "ivr"]
    with pytest.raises(CultbenchError, match="unknown distance 'l3'"):
        AlignmentProblem(LinearScorer(), partial, dimensions=["lto"], distance="l3")
