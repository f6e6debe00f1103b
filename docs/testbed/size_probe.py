"""Size probe: build the culture testbed at the default size with some of its fields overridden, then
read it the way the check's first two lines do, fast (no sweep): every trained country's icl
persona and no persona, order-balanced mean indices over the benchmark's held-out wordings, the mean
L1 to the profile and the directedness slope (persona - none on target - none, pooled over
countries and dimensions), and how well a linear read of the answer position names the country.

    OMP_NUM_THREADS=1 python docs/testbed/size_probe.py OUT '{"steps": 6000}'
    python docs/testbed/size_probe.py OUT            # read an existing build only

docs/testbed.md ("Why the default size reads the persona sooner") lists the rows it gave.
"""

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from aligners.baselines import ICL_TEMPLATE, format_persona
from cultbench.instruments import load_instrument
from cultbench.prompts import PromptVariant, get_variants, render_prompt
from cultbench.scoring.models import load_model
from cultbench.scoring.scorer import SurveyScorer
from cultbench.testbed import build as B
from cultbench.testbed.groundtruth import NO_PERSONA

out = Path(sys.argv[1])
if len(sys.argv) > 2:
    B.SIZES["default"] = dataclasses.replace(B.SIZES["default"], **json.loads(sys.argv[2]))
    cpu = time.process_time()
    built = B.build_testbed(B.BuildConfig(), out)
    print(json.dumps({"overrides": json.loads(sys.argv[2]), "cpu_s": round(time.process_time() - cpu, 1),
                      "wall_s": built["build_seconds"], "final_loss": round(built["loss_every_100_steps"][-1], 3)}))
torch.set_num_threads(1)
record = json.loads((out / "testbed.json").read_text())
inst, loaded = load_instrument("vsm2013"), load_model(str(out))
names = record["trained_countries"]
truth = record["ground_truth"]["respondents"]
target = np.array([inst.indices(np.array(truth[n]["means"])) for n in names])
scored = SurveyScorer(loaded.model, loaded.tokenizer, inst, get_variants("heldout")).score(
    personas=[format_persona(ICL_TEMPLATE, n) for n in names] + [None])
balanced = scored.indices.mean(axis=1)  # every held-out wording in both orders
none, persona = balanced[-1], balanced[:-1]
x, y = (target - none).ravel(), (persona - none).ravel()
l1 = np.abs(persona - target).sum(axis=1)

# Is the country readable at the answer position (last hidden state)? Nearest class mean
# (standardised states) from 4 training wordings x 6 items per country, scored on 2 other wordings.
pool = [PromptVariant(**v) for v in record["training_wordings"][:6]]


def answer_states(variants):
    states, labels = [], []
    with torch.no_grad():
        for k, name in enumerate(names):
            texts = [render_prompt(loaded.tokenizer, inst, item, v, format_persona(ICL_TEMPLATE, name))
                     for v in variants for item in inst.items[:6]]
            enc = loaded.tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
            hidden = loaded.model.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            states.append(hidden[torch.arange(len(texts)), enc["attention_mask"].sum(1) - 1].numpy())
            labels += [k] * len(texts)
    return np.concatenate(states), np.array(labels)


fit_x, fit_y = answer_states(pool[:4])
test_x, test_y = answer_states(pool[4:])
mu, sd = fit_x.mean(0), fit_x.std(0) + 1e-9
centres = np.stack([((fit_x[fit_y == k] - mu) / sd).mean(0) for k in range(len(names))])
nearest = (((test_x - mu) / sd)[:, None, :] - centres[None]).__pow__(2).sum(-1).argmin(1)
print(json.dumps({"folder": str(out), "heldout_l1_mean": round(float(l1.mean()), 3),
                  "slope": round(float(x @ y / (x @ x)), 4),
                  "no_persona_l1": round(float(np.abs(none - inst.indices(np.array(truth[NO_PERSONA]["means"]))).sum()), 3),
                  "option_mass": round(float(scored.option_mass.mean()), 3),
                  "country_read_accuracy": round(float((nearest == test_y).mean()), 3),
                  "worst": sorted(zip(l1.round(1).tolist(), names))[-3:]}))
