"""The six indices of one model + soft prompt from three routes, and how far apart they are.

    (a) cultbench's SurveyScorer
    (b) lm-eval (simple_evaluate) with the registered ``cultbench`` model and the alignment
    (c) lm-eval with ``--model hf`` and the alignment exported as a PEFT prompt-tuning adapter

All three in float32, on the same prompt variant and constants; the chat template is applied
exactly when the tokenizer has one (the scorer's rule). Without --alignment a random soft prompt
at the scale of the model's token embeddings is drawn from --seed (it moves the indices by tens
of points, so a route that dropped it would show).

    python scripts/harness_agreement.py                                  # bundled SmolLM2
    python scripts/harness_agreement.py --alignment runs/de-us-s0 --variant participant-standard
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from lm_eval import simple_evaluate  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from aligners import Alignment  # noqa: E402
from cultbench.harness import TASKS_PATH, CultbenchLM  # noqa: E402
from cultbench.harness.taskfiles import task_name  # noqa: E402
from cultbench.instruments import load_instrument  # noqa: E402
from cultbench.scoring.models import _locate, load_model  # noqa: E402
from cultbench.publish.peft_export import export_peft  # noqa: E402
from cultbench.prompts import default_variant, get_variants  # noqa: E402
from cultbench.scoring.scorer import SurveyScorer  # noqa: E402


def random_alignment(loaded, n_virtual: int, seed: int, folder: Path) -> Path:
    weight = loaded.model.get_input_embeddings().weight
    g = torch.Generator().manual_seed(seed)
    soft = torch.randn(n_virtual, weight.shape[1], generator=g) * float(weight.float().std())
    Alignment(aligner="random-soft-prompt", hyperparameters={"n_virtual": n_virtual}, seed=seed,
              model={k: loaded.info[k] for k in ("id", "revision", "file_sha256", "hidden_size")},
              problem={}, budget=None, evaluations=0, result={}, soft_prompt=soft).save_pretrained(folder)
    return folder


def harness_indices(model, model_args, task, chat, dims):
    manager = TaskManager(include_path=str(TASKS_PATH), include_defaults=False)
    out = simple_evaluate(model=model, model_args=model_args, tasks=[task], task_manager=manager, batch_size=24,
                          apply_chat_template=chat, bootstrap_iters=0, log_samples=False)
    row = out["results"][task]
    return np.array([row[f"{d},none"] for d in dims]), row["option_mass,none"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--alignment", type=Path, default=None, help="alignment folder with a soft prompt")
    parser.add_argument("--variant", default=default_variant().name)
    parser.add_argument("--n-virtual", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    inst = load_instrument("vsm2013")
    dims = inst.dimension_ids
    variant = get_variants([args.variant])[0]
    task = task_name(variant.name)
    loaded = load_model(args.model, dtype="float32")
    chat = bool(getattr(loaded.tokenizer, "chat_template", None))
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.alignment or random_alignment(loaded, args.n_virtual, args.seed, Path(tmp) / "alignment")
        alignment = Alignment.from_pretrained(folder, model_info=loaded.info)
        soft = alignment.soft_prompt

        scored = SurveyScorer(loaded.model, loaded.tokenizer, inst, [variant]).score([soft])
        a, a_mass = scored.indices[0, 0], float(scored.option_mass.mean())
        plain = SurveyScorer(loaded.model, loaded.tokenizer, inst, [variant]).score().indices[0, 0]
        del loaded

        lm = CultbenchLM(pretrained=args.model, alignment=folder, batch_size=24)
        b, b_mass = harness_indices(lm, None, task, chat, dims)
        del lm

        peft_dir = export_peft(folder, Path(tmp) / "peft")
        where, gguf_file, _ = _locate(args.model)
        hf_args = {"pretrained": where, "dtype": "float32", "device": "cpu", "peft": str(peft_dir),
                   **({"gguf_file": gguf_file} if gguf_file else {})}
        c, c_mass = harness_indices("hf", hf_args, task, chat, dims)

    print(f"model {args.model}, variant {variant.name} ({variant.split}), soft prompt {list(soft.shape)} "
          f"({'alignment ' + str(args.alignment) if args.alignment else f'random, seed {args.seed}'}), "
          f"float32, chat template {'applied' if chat else 'not applied'}, constants C = 50")
    print(f"{'route':<34}" + "".join(f"{d.upper():>10}" for d in dims) + f"{'mass':>9}")
    rows = [("(a) cultbench scorer", a, a_mass), ("(b) lm-eval, cultbench model", b, b_mass),
            ("(c) lm-eval, hf + PEFT adapter", c, c_mass)]
    for name, values, mass in rows:
        print(f"{name:<34}" + "".join(f"{v:>10.4f}" for v in values) + f"{mass:>9.4f}")
    print(f"{'(no soft prompt, scorer)':<34}" + "".join(f"{v:>10.4f}" for v in plain))
    print(f"max |b - a| = {np.abs(b - a).max():.2e}   max |c - a| = {np.abs(c - a).max():.2e}   "
          f"max |b - c| = {np.abs(b - c).max():.2e}   index points")
    print(f"the soft prompt moves the indices by up to {np.abs(a - plain).max():.1f} points")


if __name__ == "__main__":
    main()
