"""Hooks of the task YAMLs in this folder (lm-eval imports this file by its path).

The task class and the documents live in ``cultbench.harness``, which renders every prompt with
``cultbench.prompts``, the renderer of cultbench's own scorer, so the wording is defined once.
Importing it also registers the ``cultbench`` lm-eval model.
"""

from cultbench.harness.survey import survey_docs
from cultbench.harness.task import SurveyTask

__all__ = ["SurveyTask", "survey_docs"]
