"""lm-evaluation-harness integration: survey tasks, the ``cultbench`` model, evaluation through lm-eval.

    settings.py   what a task measures (instrument, variant, persona, constants, target)
    survey.py     the items as lm-eval documents, answer records and index aggregations
    task.py       the task class (renders the scorer's prompts, computes the indices)
    model.py      the ``cultbench`` lm-eval model (HFLM with a soft prompt and/or persona)
    taskfiles.py  writes the task YAMLs of ``harness_tasks/``
    engine.py     ``cultbench evaluate --engine lm-eval`` and the lm-eval command-line wrapper

Importing this package registers the ``cultbench`` model with lm-eval.
"""

from harness_tasks import TASKS_PATH
from cultbench.harness.model import CultbenchLM, load_alignment
from cultbench.harness.settings import SurveySettings
from cultbench.harness.survey import answer_record, survey_docs, survey_metrics
from cultbench.harness.task import SurveyTask

__all__ = ["TASKS_PATH", "CultbenchLM", "SurveySettings", "SurveyTask", "answer_record", "load_alignment",
           "survey_docs", "survey_metrics"]
