"""The lm-eval task class of cultbench's survey tasks (named by ``class:`` in the task YAMLs).

A ``ConfigurableTask`` with three changes:

- the prompt is rendered by ``cultbench.prompts.render_prompt``, the scorer's own renderer: with
  ``--apply_chat_template`` through the model's chat template (system prompt, then the item as
  the user turn, then the generation prompt; lm-eval then scores the option label with no
  delimiter), without it as the plain text ending in "Answer:" (lm-eval then scores " 3"). Both
  are the scorer's prompts, so the option token lm-eval scores is the one the scorer reads.
  ``--system_instruction`` goes first in the system prompt, like a persona;
- the metrics come from the settings (``survey.survey_metrics``): ``process_results`` returns
  one answer record per metric and each metric's aggregation rebuilds the indices;
- requests are never taken from lm-eval's request cache (``--cache_requests``), whose key is
  the task name only, while the prompts depend on the metadata.
"""

from __future__ import annotations

import inspect
import logging

from lm_eval.api.task import ConfigurableTask
from lm_eval.models.huggingface import HFLM

from cultbench.errors import CultbenchError
from cultbench.harness.model import CultbenchLM
from cultbench.harness.settings import SETTING_KEYS, SurveySettings
from cultbench.harness.survey import answer_record, survey_metrics
from cultbench.prompts import displayed_options, render_prompt

log = logging.getLogger(__name__)

# Metadata keys lm-eval itself puts there, besides the model arguments it merges in.
_LM_EVAL_KEYS = {"version", "config_source", "cultbench", "num_fewshot"}


class _ChatRenderer:
    """Stands in for a tokenizer in ``render_prompt``: renders with lm-eval's chat template."""

    chat_template = True

    def __init__(self, apply):
        self._apply = apply

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return self._apply(messages, add_generation_prompt=add_generation_prompt)


class _PlainRenderer:
    chat_template = None


def _known_model_arguments() -> set[str]:
    return {p for cls in (HFLM, CultbenchLM) for p in inspect.signature(cls.__init__).parameters}


class SurveyTask(ConfigurableTask):
    """A survey instrument's items as a multiple-choice task; see the module docstring."""

    def __init__(self, config: dict | None = None, **kwargs):
        config = dict(config or {})
        config.pop("class", None)
        fixed = config.pop("cultbench", None) or {}
        metadata = dict(config.get("metadata") or {})
        name = config.get("task", "vsm2013")
        self.settings = SurveySettings.resolve(metadata, fixed, task=name)
        ignored = set(metadata) - set(SETTING_KEYS) - _LM_EVAL_KEYS - _known_model_arguments()
        if ignored:
            log.warning("task %s ignores metadata %s (settings are %s)", name, ", ".join(sorted(ignored)),
                        ", ".join(SETTING_KEYS))
        metadata.update(self.settings.as_metadata())
        metadata["cultbench"] = self.settings.describe()
        config["metadata"] = metadata
        super().__init__(config=config, **kwargs)
        metrics = survey_metrics(self.settings)
        self._metric_fn_list = dict.fromkeys(metrics)
        self._metric_fn_kwargs = {m: {} for m in metrics}
        self._aggregation_list = {m: agg for m, (agg, _) in metrics.items()}
        self._higher_is_better = {m: better for m, (_, better) in metrics.items()}
        # For the record (configs block): what each metric is; the functions are the ones above.
        self.config.metric_list = [{"metric": m, "aggregation": "cultbench survey aggregation",
                                    "higher_is_better": better} for m, (_, better) in metrics.items()]

    def fewshot_context(self, doc, num_fewshot, system_instruction=None, apply_chat_template=False,
                        fewshot_as_multiturn=False, chat_template=None, gen_prefix=None):
        if num_fewshot:
            raise CultbenchError(f"{self.config.task} is a survey: it has no answers to show as "
                                 f"examples (num_fewshot must be 0, got {num_fewshot})")
        if gen_prefix:
            raise CultbenchError(f"{self.config.task} renders the scorer's prompts; gen_prefix is not supported")
        renderer = _ChatRenderer(chat_template) if apply_chat_template and chat_template else _PlainRenderer()
        persona = " ".join(p for p in (system_instruction, self.settings.persona) if p) or None
        item = self.settings.instrument.items[int(doc["position"])]
        return render_prompt(renderer, self.settings.instrument, item, self.settings.variant, persona)

    def process_results(self, doc, results):
        if "bypass" in self._metric_fn_list:  # --predict_only
            return super().process_results(doc, results)
        if self.settings.distribution:  # the documents may come from the base task's default variant
            item = self.settings.instrument.items[int(doc["position"])]
            doc = {**doc, "answers": displayed_options(self.settings.instrument, item, self.settings.variant)}
        record = answer_record(doc, [ll for ll, _ in results])
        return dict.fromkeys(self._metric_fn_list, record)

    def build_all_requests(self, **kwargs):
        kwargs["cache_requests"] = False
        kwargs["rewrite_requests_cache"] = False
        return super().build_all_requests(**kwargs)
