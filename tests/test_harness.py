"""lm-evaluation-harness integration on the tiny random Llama of conftest.py: the task files, the
documents, the metrics, agreement of the scorer with lm-eval (registered model and exported PEFT
adapter, chat and plain prompts, soft prompts and personas), generation, PEFT export, bad input,
the stock lm_eval command line, and `cultbench evaluate --engine lm-eval`.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from lm_eval import simple_evaluate
from lm_eval.api.instance import Instance
from lm_eval.tasks import TaskManager

from aligners import Alignment
from conftest import load_script
from cultbench.cli import main
from cultbench.errors import CultbenchError
from cultbench.harness import TASKS_PATH, CultbenchLM, SurveySettings, answer_record, survey_docs, survey_metrics
from cultbench.harness import model as harness_model
from cultbench.harness.taskfiles import render_task_files, stale_task_files
from cultbench.instruments import load_instrument
from cultbench.scoring.models import load_model
from cultbench.publish.peft_export import export_peft
from cultbench.profiles import lookup
from cultbench.prompts import default_variant, get_variants, render_user_message, system_text
from cultbench.scoring.scorer import SurveyScorer

INST = load_instrument("vsm2013")
DIMS = INST.dimension_ids
PERSONA = ("You are an average human being born in China and living in China responding to the following "
           "survey question.")
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
TOL = 0.05  # index points: the agreement the issue asks for; fp32 routes land near 1e-4


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)


def save_alignment(folder, model_id, *, soft=None, persona=None, hidden=32):
    Alignment(aligner="de" if soft is not None else "icl", hyperparameters={}, seed=0,
              model={"id": model_id, "revision": None, "file_sha256": None, "hidden_size": hidden},
              problem={"target": lookup("US").to_dict()}, budget=10, evaluations=10, result={},
              soft_prompt=soft, persona=persona).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_model(tiny_folder):
    loaded = load_model(str(tiny_folder))
    return loaded.model, loaded.tokenizer


@pytest.fixture(scope="module")
def soft(tiny_model):
    """A soft prompt big enough to move every index by points, not hundredths."""
    weight = tiny_model[0].get_input_embeddings().weight
    return torch.randn(3, 32, generator=torch.Generator().manual_seed(1)) * float(weight.std()) * 3


@pytest.fixture(scope="module")
def soft_alignment(tiny_folder, soft, tmp_path_factory):
    return save_alignment(tmp_path_factory.mktemp("align") / "de-us", str(tiny_folder), soft=soft)


@pytest.fixture(scope="module")
def peft_adapter(soft_alignment, tmp_path_factory):
    return export_peft(soft_alignment, tmp_path_factory.mktemp("peft") / "adapter")


@pytest.fixture(scope="module")
def plain_folder(tiny_folder, tmp_path_factory):
    """The tiny model with a tokenizer without chat template (the plain "Answer:" prompts)."""
    folder = tmp_path_factory.mktemp("tiny-plain") / "model"
    shutil.copytree(tiny_folder, folder)
    for path in folder.iterdir():
        if "chat_template" in path.name:
            path.unlink()
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("chat_template", None)
    config_path.write_text(json.dumps(config))
    return folder


def manager(**metadata):
    return TaskManager(include_path=str(TASKS_PATH), include_defaults=False, metadata=metadata)


def harness(model, tasks, *, chat=True, model_args=None, log_samples=False, **metadata):
    return simple_evaluate(model=model, model_args=model_args, tasks=tasks, task_manager=manager(**metadata),
                           batch_size=24, apply_chat_template=chat, bootstrap_iters=0, log_samples=log_samples)


def indices_of(results, task):
    return np.array([results["results"][task][f"{d},none"] for d in DIMS])


def scorer_indices(model, tokenizer, variants, soft=None, persona=None):
    scored = SurveyScorer(model, tokenizer, INST, get_variants(variants)).score(
        None if soft is None else [soft], [persona])
    return scored.indices[0], scored.option_mass[0].mean(axis=-1)


# -- task files, documents, metrics ------------------------------------------------------------

def test_task_files_are_generated_from_the_variants_and_targets():
    assert stale_task_files() == []
    names = {Path(n).stem for n in render_task_files()}
    assert all(n.endswith(".yaml") for n in render_task_files())
    variants = {f"vsm2013_{v.name.replace('-', '_')}" for v in get_variants(None)}
    wordings = {f"vsm2013_{v.wording.replace('-', '_')}_balanced" for v in get_variants(None)}  # both orders
    assert names == {"vsm2013", "vsm2013_train", "vsm2013_validation", "vsm2013_heldout", "vsm2013_us", "vsm2013_cn",
                     "vsm2013_in", "vsm2013_sa"} | variants | wordings
    tm = manager()
    assert names <= set(tm.all_tasks) and {"vsm2013_train", "vsm2013_heldout"} | wordings <= set(tm.all_groups)
    result = CliRunner().invoke(main, ["harness-path"])
    assert result.exit_code == 0 and Path(result.output.strip()) == TASKS_PATH


def test_harness_model_args_load_a_cultbench_model_name_with_hf(tiny_folder):
    result = CliRunner().invoke(main, ["harness-model-args", str(tiny_folder)])
    assert result.exit_code == 0 and result.output.strip() == f"pretrained={tiny_folder},dtype=float32"
    result = CliRunner().invoke(main, ["harness-model-args", "/no/such/model"])
    assert result.exit_code == 2 and "model path not found" in result.stderr


def test_documents_are_the_scorers_wording_from_the_package():
    docs = survey_docs(variant="brief-reworded-reversed", persona=PERSONA, pretrained="ignored", batch_size=3)["test"]
    variant = get_variants(["brief-reworded-reversed"])[0]
    assert len(docs) == 24 and docs[0]["item"] == INST.items[0].id
    for doc, item in zip(docs, INST.items):
        assert doc["user"] == render_user_message(INST, item, variant)
        assert doc["system"] == system_text(variant, PERSONA)
        assert doc["choices"] == ["1", "2", "3", "4", "5"] and doc["answers"] == [5, 4, 3, 2, 1]


def test_answer_records_and_aggregations_by_hand():
    doc = {"item": "q01", "answers": [1, 2, 3, 4, 5]}
    lls = np.log([0.1, 0.1, 0.2, 0.0001, 0.1])
    item, expected, mass, first, by_value = answer_record(doc, lls)
    p = np.exp(lls) / np.exp(lls).sum()
    assert item == "q01" and expected == pytest.approx(p @ [1, 2, 3, 4, 5]) and mass == pytest.approx(0.5001)
    assert first == pytest.approx(p[0]) and by_value == pytest.approx(tuple(p))
    reversed_doc = {"item": "q01", "answers": [5, 4, 3, 2, 1]}
    _, reversed_expected, _, reversed_first, reversed_values = answer_record(reversed_doc, lls)
    assert reversed_expected == pytest.approx(6 - expected)
    # the first shown option is still the first log-likelihood; by answer value it is value 5
    assert reversed_first == pytest.approx(p[0]) and reversed_values == pytest.approx(tuple(p[::-1]))

    settings = SurveySettings.resolve({"target": "US", "constants": {"pdi": 0}})
    metrics = survey_metrics(settings)
    records = [(iid, 3.0, 0.5) for iid in INST.item_ids]
    assert {d: metrics[d][0](records) for d in DIMS} == dict(settings.constants)
    assert metrics["pdi"][0](records) == 0 and metrics["idv"][0](records) == 50
    us = lookup("US").vector(DIMS)
    assert metrics["l1"][0](records) == pytest.approx(np.abs(np.array([0, 50, 50, 50, 50, 50]) - us).sum())
    assert metrics["idv_error"][0](records) == pytest.approx(50 - us[1])
    assert metrics["option_mass"][0](records) == 0.5 and metrics["l1"][1] is False
    shown_first = [(iid, 3.0, 0.5, 0.1 * (k % 3), (0.2,) * 5) for k, iid in enumerate(INST.item_ids)]
    assert metrics["position_bias"][0](shown_first) == pytest.approx(np.mean([0.1 * (k % 3) for k in range(24)]))
    assert metrics["position_bias"][1] is False
    # m07 one point higher: PDI + 35; an unanswered item leaves its indices undefined.
    bumped = [(iid, 4.0 if iid == "q07" else 3.0, 0.5) for iid in INST.item_ids]
    assert metrics["pdi"][0](bumped) == pytest.approx(35)
    missing = [r for r in records if r[0] != "q07"]
    assert np.isnan(metrics["pdi"][0](missing)) and metrics["idv"][0](missing) == 50
    assert "l1" not in survey_metrics(SurveySettings.resolve({}))


# -- agreement ---------------------------------------------------------------------------------

def test_agreement_scorer_cultbench_model_and_peft_adapter(tiny_model, tiny_folder, soft, soft_alignment,
                                                          peft_adapter):
    """Six indices, two prompt variants (one with a reversed scale), constants and target metrics."""
    model, tokenizer = tiny_model
    tasks = ["vsm2013_respondent_standard", "vsm2013_brief_reworded_reversed"]
    a, a_mass = scorer_indices(model, tokenizer, ["respondent-standard", "brief-reworded-reversed"], soft=soft)
    a[:, 0] -= 50  # the harness runs below with C_pdi = 0
    naive, _ = scorer_indices(model, tokenizer, ["respondent-standard", "brief-reworded-reversed"])
    assert np.abs(a + [[50, 0, 0, 0, 0, 0]] - naive).max() > 10  # the soft prompt matters

    lm = CultbenchLM(pretrained=str(tiny_folder), alignment=str(soft_alignment), batch_size=24)
    b = harness(lm, tasks, target="US", constants={"pdi": 0})
    c = harness("hf", tasks, model_args={"pretrained": str(tiny_folder), "peft": str(peft_adapter),
                                         "dtype": "float32", "device": "cpu"}, target="US", constants={"pdi": 0})
    us = lookup("US").vector(DIMS)
    for v, task in enumerate(tasks):
        for results in (b, c):
            got = indices_of(results, task)
            assert np.abs(got - a[v]).max() < TOL
            assert np.abs(got - a[v]).max() < 1e-3  # what fp32 actually gives
            row = results["results"][task]
            assert row["l1,none"] == pytest.approx(np.abs(got - us).sum())
            assert [row[f"{d}_error,none"] for d in DIMS] == pytest.approx(list(got - us))
            assert row["option_mass,none"] == pytest.approx(a_mass[v], abs=1e-4)
            meta = results["configs"][task]["metadata"]["cultbench"]
            assert meta["constants"]["pdi"] == 0 and meta["target"]["name"] == "U.S.A."
    assert b["config"]["cultbench_alignment"]["soft_prompt"]["shape"] == [3, 32]


@pytest.mark.slow
def test_plain_prompts_and_personas_agree(plain_folder, tiny_folder, tiny_model, tmp_path):
    """Without a chat template ("Answer:" prompts) and with one; a persona from the task metadata
    (any model) or from a persona alignment (the cultbench model)."""
    plain_model = load_model(str(plain_folder))
    cases = [(plain_folder, plain_model.model, plain_model.tokenizer, False),
             (tiny_folder, *tiny_model, True)]
    for folder, model, tokenizer, chat in cases:
        assert bool(tokenizer.chat_template) is chat
        naive, _ = scorer_indices(model, tokenizer, [default_variant().name])
        ref, _ = scorer_indices(model, tokenizer, [default_variant().name], persona=PERSONA)
        assert np.abs(ref - naive).max() > 10
        got = indices_of(harness("hf", ["vsm2013"], chat=chat, model_args={"pretrained": str(folder),
                                 "dtype": "float32", "device": "cpu"}), "vsm2013")
        assert np.abs(got - naive[0]).max() < 1e-3
        got = indices_of(harness("hf", ["vsm2013"], chat=chat, model_args={"pretrained": str(folder),
                                 "dtype": "float32", "device": "cpu"}, persona=PERSONA), "vsm2013")
        assert np.abs(got - ref[0]).max() < 1e-3
        persona_alignment = save_alignment(tmp_path / f"icl-{chat}", str(folder), persona=PERSONA)
        lm = CultbenchLM(pretrained=str(folder), alignment=str(persona_alignment), batch_size=24)
        got = indices_of(harness(lm, ["vsm2013"], chat=chat), "vsm2013")
        assert np.abs(got - ref[0]).max() < 1e-3


def test_model_object_groups_and_heldout_variants(tiny_model, soft):
    """A loaded model and an Alignment object, batch size on the model; a group's indices are the
    mean of its renderings' (the mean of the split's wordings' balanced indices, what cultbench
    reports for a split), its errors theirs; a mean of renderings' L1s is not reported."""
    model, tokenizer = tiny_model
    alignment = Alignment(aligner="de", hyperparameters={}, seed=0, model={"id": "tiny"}, problem={}, budget=None,
                          evaluations=0, result={}, soft_prompt=soft)
    lm = CultbenchLM(pretrained=model, tokenizer=tokenizer, alignment=alignment, batch_size=24)
    assert lm.batch_size == 24
    out = harness(lm, ["vsm2013_heldout"], target="CN")
    per_variant, _ = scorer_indices(model, tokenizer, "heldout", soft=soft)
    group = out["results"]["vsm2013_heldout"]
    assert np.abs(np.array([group[f"{d},none"] for d in DIMS]) - per_variant.mean(axis=0)).max() < 1e-3
    cn = lookup("CN").vector(DIMS)
    errors = np.array([group[f"{d}_error,none"] for d in DIMS])
    assert np.abs(errors - (per_variant.mean(axis=0) - cn)).max() < 1e-3 and "l1,none" not in group


def test_generation_puts_the_soft_prompt_first(tiny_folder, tiny_model, soft, soft_alignment):
    model, tokenizer = tiny_model
    lm = CultbenchLM(pretrained=str(tiny_folder), alignment=str(soft_alignment), batch_size=2)
    contexts = ["Answer with a single number from 1 to 5", "1 2 3"]  # unequal lengths: left padding
    requests = [Instance("generate_until", {}, (c, {"until": ["</s>"], "max_gen_toks": 6, "do_sample": False}), 0)
                for c in contexts]
    embed = model.get_input_embeddings()
    expected = []
    with torch.no_grad():
        for c in contexts:
            ids, new = tokenizer(c, add_special_tokens=False)["input_ids"], []
            for _ in range(6):
                x = torch.cat([soft, embed(torch.tensor(ids + new))])[None]
                new.append(int(model(inputs_embeds=x).logits[0, -1].argmax()))
            expected.append(tokenizer.decode(new))
    assert lm.generate_until(requests) == expected
    assert CultbenchLM(pretrained=str(tiny_folder), batch_size=2).generate_until(requests) != expected
    # A stop sequence ends the text where it first appears.
    word = expected[0].split()[1]
    stopped = [Instance("generate_until", {}, (contexts[0], {"until": [word], "max_gen_toks": 6}), 0)]
    assert lm.generate_until(stopped) == [expected[0].split(word)[0]]


# -- PEFT export -------------------------------------------------------------------------------

def test_peft_export_is_a_standard_prompt_tuning_adapter(peft_adapter, soft_alignment, soft, tiny_folder, tmp_path):
    from peft import PeftModel

    config = json.loads((peft_adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "PROMPT_TUNING" and config["task_type"] == "CAUSAL_LM"
    assert config["num_virtual_tokens"] == 3 and config["token_dim"] == 32
    assert config["base_model_name_or_path"] == str(tiny_folder)
    base = load_model(str(tiny_folder)).model
    peft_model = PeftModel.from_pretrained(base, str(peft_adapter))
    assert torch.equal(peft_model.prompt_encoder["default"].embedding.weight.detach(), soft)
    out = export_peft(soft_alignment, tmp_path / "named", base_model="my-org/tiny")
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "my-org/tiny"
    result = CliRunner().invoke(main, ["export-peft", str(soft_alignment), str(out)])
    assert result.exit_code == 2 and "not empty" in result.stderr
    result = CliRunner().invoke(main, ["export-peft", str(soft_alignment), str(out), "--overwrite"])
    assert result.exit_code == 0, result.output


def test_peft_export_of_a_prompt_tuning_alignment_agrees_with_the_scorer(tiny_model, tiny_folder, tmp_path):
    """A soft prompt trained by the prompt-tuning aligner, exported: plain PEFT loads it (the same
    tensor, the same next-token logits as the prompt in front of the text), and lm-eval's hf
    model with peft= (what `lm_eval --model hf --model_args ...,peft=` runs) gives the scorer's
    indices within 1e-3 index points on an in-order and a reversed-scale variant."""
    from aligners import AlignmentProblem, make_aligner
    from peft import PeftModel

    model, tokenizer = tiny_model
    variants = ["respondent-standard", "brief-reworded-reversed"]
    scorer = SurveyScorer(model, tokenizer, INST, get_variants(variants))
    info = load_model(str(tiny_folder)).info
    trained = make_aligner("prompt-tuning", n_virtual=3, lr=0.1, steps=3).align(
        AlignmentProblem(scorer, lookup("US"), model_info=info))
    folder = trained.save_pretrained(tmp_path / "pt-us")
    adapter = export_peft(folder, tmp_path / "peft")
    soft = trained.soft_prompt
    peft_model = PeftModel.from_pretrained(load_model(str(tiny_folder)).model, str(adapter))
    assert torch.equal(peft_model.prompt_encoder["default"].embedding.weight.detach(), soft)
    ids = torch.tensor([tokenizer("Answer with a single number", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        ref = model(inputs_embeds=torch.cat([soft, model.get_input_embeddings()(ids[0])])[None]).logits[0, -1]
        torch.testing.assert_close(peft_model(input_ids=ids).logits[0, -1], ref, atol=1e-5, rtol=1e-5)

    a, _ = scorer_indices(model, tokenizer, variants, soft=soft)
    naive, _ = scorer_indices(model, tokenizer, variants)
    assert np.abs(a - naive).max() > 1  # the trained prompt matters
    tasks = ["vsm2013_respondent_standard", "vsm2013_brief_reworded_reversed"]
    out = harness("hf", tasks, model_args={"pretrained": str(tiny_folder), "peft": str(adapter), "dtype": "float32",
                                           "device": "cpu"})
    for v, task in enumerate(tasks):
        assert np.abs(indices_of(out, task) - a[v]).max() < 1e-3


def test_peft_export_of_the_bundled_alias_records_a_loadable_path_and_says_how_to_load_it(soft, tmp_path):
    from cultbench.scoring.models import locate_model

    folder, gguf_file, _ = locate_model("smollm2-135m-instruct")
    alignment = save_alignment(tmp_path / "de-us", "smollm2-135m-instruct", soft=soft)
    result = CliRunner().invoke(main, ["export-peft", str(alignment / "alignment.json"), str(tmp_path / "peft")])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(Path(folder).resolve())  # not the alias PEFT cannot resolve
    readme = (tmp_path / "peft" / "README.md").read_text()
    assert f"AutoModelForCausalLM.from_pretrained({str(Path(folder).resolve())!r}, gguf_file={gguf_file!r}" in readme
    assert f"pretrained={Path(folder).resolve()},gguf_file={gguf_file},dtype=float32,peft=" in readme


# -- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("metadata, message", [
    ({"target": "Atlantis"}, "unknown country 'Atlantis'"),
    ({"target": "SA"}, "no PDI, IDV, MAS, UAI"),
    ({"instrument": "vsm1994"}, "unknown instrument 'vsm1994'"),
    ({"variant": "respondant-standard"}, "Did you mean: respondent-standard"),
    ({"variant": "heldout"}, "a task renders one variant"),
    ({"constants": {"xyz": 1}}, "unknown dimension 'xyz'"),
    ({"source": "hofstede-2015"}, "without a target"),
])
def test_bad_task_metadata_names_the_problem(metadata, message):
    with pytest.raises(CultbenchError, match=message):
        manager(**metadata).load(["vsm2013"])


def test_a_task_that_fixes_a_setting_refuses_other_metadata():
    with pytest.raises(CultbenchError, match="task vsm2013_us is the target 'US'.*target='CN'"):
        manager(target="CN").load(["vsm2013_us"])
    assert manager(target="United States").load(["vsm2013_us"])["tasks"]["vsm2013_us"].settings.target.iso2 == "US"
    sa = manager(target="Saudi Arabia").load(["vsm2013_sa"])["tasks"]["vsm2013_sa"].settings.target
    assert sa.source == "hofstede-insights-2022-estimates" and sa.estimated
    # A target's task scores one named variant, the default one, and says so.
    assert manager().load(["vsm2013_us"])["tasks"]["vsm2013_us"].settings.variant == default_variant()
    assert f"l1_per_variant[\"{default_variant().name}\"]" in (TASKS_PATH / "vsm2013_us.yaml").read_text()
    with pytest.raises(CultbenchError, match="task vsm2013_us is the variant 'respondent-standard'"):
        manager(variant="panel-interview").load(["vsm2013_us"])


def test_bad_alignments_fail_before_the_model_loads(tiny_folder, soft, tmp_path, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(harness_model, "load_model", no_loading)
    with pytest.raises(CultbenchError, match="does not exist"):
        CultbenchLM(pretrained=str(tiny_folder), alignment=str(tmp_path / "missing"))
    corrupt = save_alignment(tmp_path / "corrupt", str(tiny_folder), soft=soft)
    (corrupt / "alignment.json").write_text("{not json")
    with pytest.raises(CultbenchError, match="cannot read"):
        CultbenchLM(pretrained=str(tiny_folder), alignment=str(corrupt))
    wide = save_alignment(tmp_path / "wide", str(tiny_folder), soft=torch.zeros(2, 64), hidden=64)
    with pytest.raises(CultbenchError, match="hidden size 64, but model .* has hidden size 32"):
        CultbenchLM(pretrained=str(tiny_folder), alignment=str(wide))
    persona_only = save_alignment(tmp_path / "icl", str(tiny_folder), persona=PERSONA)
    with pytest.raises(CultbenchError, match="holds no soft prompt.*persona"):
        export_peft(persona_only, tmp_path / "peft")
    with pytest.raises(CultbenchError, match="does not exist"):
        export_peft(tmp_path / "missing", tmp_path / "peft")


def test_use_cache_is_refused_with_an_alignment(tiny_folder, soft_alignment, tmp_path):
    lm = CultbenchLM(pretrained=str(tiny_folder), alignment=str(soft_alignment), batch_size=24)
    with pytest.raises(CultbenchError, match="--use_cache"):
        simple_evaluate(model=lm, tasks=["vsm2013"], task_manager=manager(), use_cache=str(tmp_path / "cache"))


# -- command lines and the lm-eval engine -------------------------------------------------------

@pytest.mark.slow
def test_stock_lm_eval_cli_with_the_peft_adapter_and_the_cultbench_model(tiny_model, tiny_folder, soft,
                                                                        soft_alignment, peft_adapter, tmp_path):
    """The stock `lm_eval` entry point: the issue's command with an exported adapter, and
    `--model cultbench` with the task given as a YAML file (its hook registers the model)."""
    model, tokenizer = tiny_model
    ref, _ = scorer_indices(model, tokenizer, [default_variant().name], soft=soft)
    lm_eval = Path(sys.executable).parent / "lm_eval"
    env = {**os.environ, **OFFLINE}
    runs = {
        "hf": ["--model", "hf", "--model_args", f"pretrained={tiny_folder},peft={peft_adapter},dtype=float32",
               "--include_path", str(TASKS_PATH), "--tasks", "vsm2013_us"],
        "cultbench": ["--model", "cultbench", "--model_args", f"pretrained={tiny_folder},alignment={soft_alignment}",
                      "--tasks", str(TASKS_PATH / "vsm2013_us.yaml")],
    }
    for name, args in runs.items():
        out = tmp_path / name
        proc = subprocess.run([str(lm_eval), *args, "--apply_chat_template", "--batch_size", "24", "--device", "cpu",
                               "--output_path", str(out), "--log_samples", "--metadata", '{"constants": {"pdi": 0}}'],
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        (report,) = out.rglob("results_*.json")
        data = json.loads(report.read_text())
        got = indices_of(data, "vsm2013_us")
        assert np.abs(got - (ref[0] - [50, 0, 0, 0, 0, 0])).max() < 1e-3
        assert data["versions"]["vsm2013_us"] == 1.0 and data["task_hashes"]["vsm2013_us"]
        assert data["configs"]["vsm2013_us"]["metadata"]["cultbench"]["target"]["name"] == "U.S.A."


@pytest.mark.slow
def test_stock_lm_eval_gives_the_balanced_indices_of_cultbench_evaluate_per_wording(tiny_folder, tmp_path):
    """The shipped wording groups (`vsm2013_<wording>_balanced`, both scale orders of a wording) run
    by the stock `lm_eval --model hf` agree with `cultbench evaluate`'s order-balanced indices per
    wording within 1e-3 index points: a digit-labelled and a letter-labelled held-out wording."""
    wordings = ["brief-reworded", "researcher-lettered"]
    evaluated = CliRunner().invoke(main, ["evaluate", "--model", str(tiny_folder), "--target", "US", "--splits",
                                          "heldout", "--constant", "pdi=0", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    reference = json.loads(evaluated.stdout)["splits"]["heldout"]
    tasks = [f"vsm2013_{w.replace('-', '_')}_balanced" for w in wordings]
    lm_eval = Path(sys.executable).parent / "lm_eval"
    proc = subprocess.run([str(lm_eval), "--model", "hf", "--model_args", f"pretrained={tiny_folder},dtype=float32",
                           "--include_path", str(TASKS_PATH), "--tasks", ",".join(tasks), "--apply_chat_template",
                           "--batch_size", "24", "--device", "cpu", "--output_path", str(tmp_path),
                           "--metadata", '{"constants": {"pdi": 0}, "target": "US"}'],
                          capture_output=True, text=True, env={**os.environ, **OFFLINE}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (report,) = tmp_path.rglob("results_*.json")
    data = json.loads(report.read_text())
    us = lookup("US").vector(DIMS)
    for wording, task in zip(wordings, tasks):
        want = np.array([reference["indices_per_wording"][wording][d] for d in DIMS])
        got = indices_of(data, task)
        assert np.abs(got - want).max() < 1e-3, (wording, got - want)
        errors = np.array([data["results"][task][f"{d}_error,none"] for d in DIMS])
        assert np.abs(errors).sum() == pytest.approx(reference["targets"]["US"]["l1_per_wording"][wording], abs=1e-2)
        assert np.abs(errors - (want - us)).max() < 1e-3
    # the script that shows this for the bundled model in docs/harness.md reads the same two reports
    compared = load_script("stock_lm_eval_agreement").rows(data, json.loads(evaluated.stdout), "US")
    assert [r["wording"] for r in compared] == wordings
    for r in compared:
        assert np.abs(r["lm_eval"] - r["cultbench"]).max() < 1e-3 and abs(r["l1_lm_eval"] - r["l1_cultbench"]) < 1e-2


def test_evaluate_takes_the_alignment_json_for_its_folder_and_scores_the_naive_model_beside_it(
        tiny_folder, soft_alignment):
    result = CliRunner().invoke(main, ["evaluate", "--model", str(tiny_folder), "--target", "US", "--splits", "train",
                                       "--alignment", str(soft_alignment / "alignment.json"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["alignment"] == str(soft_alignment)
    us = data["splits"]["train"]["targets"]["US"]
    assert us["delta_vs_naive"] == pytest.approx(us["l1"] - us["naive_l1"]) and us["naive_l1"] != us["l1"]


def assert_same_diagnostics(b: dict, a: dict) -> None:
    """Validity diagnostics through lm-eval and through the scorer agree."""
    assert b["interpretable"] == a["interpretable"] and b["failed"] == a["failed"]
    for name in ("option_mass", "position_bias", "reversal", "item_discrimination", "wording_stability"):
        value = b["checks"][name]["value"]
        assert (value is None) == (a["checks"][name]["value"] is None)
        if value is not None:
            assert value == pytest.approx(a["checks"][name]["value"], abs=1e-3)


def test_evaluate_engine_lm_eval_matches_the_scorer(tiny_folder, soft_alignment, tmp_path):
    common = ["evaluate", "--model", str(tiny_folder), "--target", "US", "--target", "CN",
              "--alignment", str(soft_alignment), "--constant", "uai=10"]
    scorer = CliRunner().invoke(main, [*common, "--json"])
    assert scorer.exit_code == 0, scorer.output
    engine = CliRunner().invoke(main, [*common, "--engine", "lm-eval", "-o", str(tmp_path / "e.json")])
    assert engine.exit_code == 0, engine.output
    a, b = json.loads(scorer.stdout), json.loads((tmp_path / "e.json").read_text())
    assert b["engine"] == "lm-eval" and b["constants"] == a["constants"] and b["constants"]["uai"] == 10
    for split in ("train", "validation", "heldout"):
        sa, sb = a["splits"][split], b["splits"][split]
        assert sb["variants"] == sa["variants"]
        assert list(sb["indices"].values()) == pytest.approx(list(sa["indices"].values()), abs=1e-3)
        assert list(sb["expected_answers"].values()) == pytest.approx(list(sa["expected_answers"].values()),
                                                                      abs=1e-4)
        assert sb["option_mass"] == pytest.approx(sa["option_mass"], abs=1e-4)
        assert_same_diagnostics(sb["diagnostics"], sa["diagnostics"])
        for name, target in sa["targets"].items():
            assert sb["targets"][name]["l1"] == pytest.approx(target["l1"], abs=1e-2)
    assert_same_diagnostics(b["diagnostics"], a["diagnostics"])
    block = b["lm_eval"]
    assert block["lm_eval_version"] and set(block["task_hashes"]) == set(block["versions"])
    assert block["configs"]["vsm2013_panel_interview"]["metadata"]["cultbench"]["variant"]["split"] == "heldout"
    assert block["config"]["cultbench_alignment"]["soft_prompt"]["shape"] == [3, 32]


@pytest.mark.slow
def test_harness_eval_wrapper_is_lm_eval_with_the_cultbench_model(tiny_folder, soft_alignment, tmp_path):
    """Task names with the cultbench model: the wrapper registers it and adds the include path."""
    args = ["harness-eval", "--model", "cultbench", "--tasks", "vsm2013_in", "--apply_chat_template",
            "--device", "cpu", "--batch_size", "24", "--output_path", str(tmp_path / "out")]
    result = CliRunner().invoke(main, [*args, "--model_args", f"pretrained={tiny_folder},alignment={soft_alignment}"])
    assert result.exit_code == 0, result.output
    (report,) = (tmp_path / "out").rglob("results_*.json")
    row = json.loads(report.read_text())["results"]["vsm2013_in"]
    assert row["l1,none"] == pytest.approx(sum(abs(row[f"{d},none"] - v) for d, v in
                                               zip(DIMS, lookup("IN").vector(DIMS))))
    result = CliRunner().invoke(main, [*args, "--model_args", f"pretrained={tiny_folder},alignment={tmp_path / 'x'}"])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
