"""cultbench's evaluation through lm-eval, and the lm-eval command line with the cultbench model.

``evaluate_with_lm_eval`` is ``cultbench evaluate --engine lm-eval``: the same report as
``cultbench.evaluation.candidate.evaluate_candidate`` (per split: indices, per-variant indices, expected
answers, option mass, validity diagnostics, per-target L1 and signed error; diagnostics overall), computed from lm-eval's own request
machinery running the ``vsm2013_<variant>`` tasks with the ``cultbench`` model, plus lm-eval's
results block (versions, task hashes, configs, per-task metrics).

``run_cli(argv)`` is lm-eval's command line (``lm_eval ...``) with the ``cultbench`` model
registered and ``--include_path`` defaulting to the cultbench tasks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from typing import Sequence

import numpy as np
from lm_eval import __version__ as LM_EVAL_VERSION
from lm_eval import simple_evaluate
from lm_eval.__main__ import cli_evaluate
from lm_eval.tasks import TaskManager
from lm_eval.utils import handle_non_serializable, hash_string

from harness_tasks import TASKS_PATH
from cultbench.evaluation.diagnostics import diagnose
from cultbench.errors import CultbenchError
from cultbench.harness.model import CultbenchLM
from cultbench.harness.taskfiles import task_name
from cultbench.evaluation.candidate import balanced_indices, index_split, versus_target
from cultbench.evaluation.metrics import order_balance, order_balanced
from cultbench.profiles import Profile
from cultbench.prompts import get_variants, variants_version

SPLIT_NAMES = ("train", "validation", "heldout")


def _jsonable(data):
    return json.loads(json.dumps(data, default=handle_non_serializable))


def _task_hashes(samples: dict) -> dict:
    """lm-eval's task hash (as its EvaluationTracker writes it) of each task's samples."""
    return {task: hash_string("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in rows))
            for task, rows in samples.items()}


@contextlib.contextmanager
def _quiet_lm_eval():
    """lm-eval's INFO and WARNING lines (e.g. its custom_dataset notice) kept off a cultbench command."""
    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def evaluate_with_lm_eval(loaded, instrument, targets: Sequence[Profile], *, alignment=None,
                          persona: str | None = None, splits: Sequence[str] = SPLIT_NAMES,
                          constants: dict | None = None, instrument_ref: str = "vsm2013",
                          batch_size: int = 24) -> dict:
    """Evaluate ``loaded`` (a ``LoadedModel``) with an alignment or persona through lm-eval.

    The chat template is applied exactly when the tokenizer has one, as the scorer does.
    """
    variants = [v for split in splits for v in get_variants(split)]
    names = {v.name: task_name(v.name) for v in variants}
    missing = [n for n in names.values() if not (TASKS_PATH / f"{n}.yaml").is_file()]
    if missing:
        raise CultbenchError(f"no lm-eval task file for {', '.join(missing)} in {TASKS_PATH}; "
                             "run python -m cultbench.harness.taskfiles")
    lm = CultbenchLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, alignment=alignment,
                     model_info=loaded.info, batch_size=batch_size)
    metadata = {"instrument": instrument_ref, "constants": dict(constants or {}), "persona": persona}
    manager = TaskManager(include_path=str(TASKS_PATH), include_defaults=False, metadata=metadata)
    chat = bool(getattr(loaded.tokenizer, "chat_template", None))
    with _quiet_lm_eval():
        results = simple_evaluate(model=lm, tasks=list(names.values()), task_manager=manager,
                                  apply_chat_template=chat, bootstrap_iters=0, log_samples=True,
                                  random_seed=0, numpy_random_seed=0, torch_random_seed=0, fewshot_random_seed=0)
    dims, items = instrument.dimension_ids, instrument.item_ids
    position = {item: k for k, item in enumerate(items)}
    indices, expected, mass, probs = {}, {}, {}, {}
    for v in variants:
        task = names[v.name]
        indices[v.name] = np.array([results["results"][task][f"{d},none"] for d in dims])
        records = sorted((s[dims[0]] for s in results["samples"][task]), key=lambda r: position[r[0]])
        expected[v.name] = np.array([r[1] for r in records])
        mass[v.name] = np.array([r[2] for r in records])
        probs[v.name] = np.array([r[4] for r in records])
    order = {v.name: v.order for v in variants}

    def diagnostics_of(chosen):
        return diagnose(np.stack([probs[n] for n in chosen]), np.stack([mass[n] for n in chosen]),
                        np.stack([expected[n] for n in chosen]), np.stack([indices[n] for n in chosen]),
                        [order[n] for n in chosen], instrument.options, dims)
    first = results["configs"][names[variants[0].name]]["metadata"]["cultbench"]
    out = {"engine": "lm-eval", "instrument": {"name": instrument.name, "version": instrument.version},
           "wording": {"version": variants_version()}, "constants": first["constants"], "precision": str(lm.model.dtype).replace("torch.", ""),
           "chat_template_applied": chat, "splits": {}}
    for split in splits:
        chosen = [v for v in variants if v.split == split]
        names_in = [v.name for v in chosen]
        per_variant = np.stack([indices[n] for n in names_in])
        _, matrix = order_balance([v.wording for v in chosen])
        mean = order_balanced(per_variant, matrix).mean(axis=0)
        split_out = {
            "variants": names_in,
            "wordings": {v.name: {"wording": v.wording, "order": v.order} for v in chosen},
            "indices": dict(zip(dims, mean.tolist())),
            "indices_per_wording": balanced_indices(per_variant, chosen, dims),
            "indices_per_variant": {n: dict(zip(dims, indices[n].tolist())) for n in names_in},
            "expected_answers": dict(zip(items, np.mean([expected[n] for n in names_in], axis=0).tolist())),
            "option_mass": float(np.mean([mass[n] for n in names_in])),
            "option_mass_per_item": dict(zip(items, np.mean([mass[n] for n in names_in], axis=0).tolist())),
            "diagnostics": diagnostics_of(names_in),
            "targets": {},
        }
        for target in targets:
            scored = index_split(target, per_variant, chosen, dims, np.stack([mass[n] for n in names_in]),
                                 split_out["indices"], out["constants"])
            split_out["targets"][target.key] = versus_target(target, scored)
        out["splits"][split] = split_out
    out["diagnostics"] = diagnostics_of([v.name for v in variants])
    out["lm_eval"] = _jsonable({
        "lm_eval_version": LM_EVAL_VERSION,
        "results": results["results"], "versions": results["versions"], "n-shot": results["n-shot"],
        "higher_is_better": results["higher_is_better"], "n-samples": results["n-samples"],
        "configs": results["configs"], "config": results["config"],
        "task_hashes": _task_hashes(results["samples"]),
        "chat_template": lm.chat_template(True) if chat else None,
    })
    return out


def run_cli(argv: Sequence[str]) -> None:
    """lm-eval's command line with the cultbench model registered and the cultbench tasks included."""
    args = list(argv)
    helping = not args or any(a in ("-h", "--help") for a in args)
    if not helping and not any(a == "--include_path" or a.startswith("--include_path=") for a in args):
        args += ["--include_path", str(TASKS_PATH)]
    saved = sys.argv
    sys.argv = ["lm-eval", *args]
    try:
        cli_evaluate()
    finally:
        sys.argv = saved
