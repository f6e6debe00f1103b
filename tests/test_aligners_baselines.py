"""aligners/baselines.py: the naive model and the cultural prompts."""


import pytest

from aligners import make_aligner
from cultbench.errors import CultbenchError
from aligner_standin import LinearScorer, synthetic_problem


def test_baselines_score_once_with_their_persona():
    scorer = LinearScorer()
    problem = synthetic_problem(scorer)
    naive, icl, profile = (make_aligner(n).align(problem) for n in ("naive", "icl", "icl-profile"))
    assert naive.persona is None and naive.soft_prompt is None and naive.evaluations == 0
    assert icl.persona == ("You are an average human being born in Testland and living in Testland "
                           "responding to the following survey question.")
    lines = profile.persona.splitlines()
    assert lines[0] == icl.persona and len(lines) == 8
    pdi = problem.target.scores["pdi"]
    assert lines[2] == (f"- Power Distance (PDI) {pdi:g}: how much less powerful people accept that power is "
                        "distributed unequally.")
    assert scorer.personas == [[None], [icl.persona], [profile.persona]]
    baseline = problem.fitness(LinearScorer().score().indices)[0]
    assert naive.fitness == icl.fitness == baseline  # the stand-in ignores personas
    custom = make_aligner("icl", template="Respond as someone from {country}.").align(problem)
    assert custom.persona == "Respond as someone from Testland."
    with pytest.raises(CultbenchError, match="template may only use the fields {country}"):
        make_aligner("icl", template="from {nation}")
