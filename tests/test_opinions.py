"""Distribution instruments (GlobalOpinionQA format) on the project's synthetic fixture: loading and
cleaning, metrics against hand-computed Jensen-Shannon distances, the question split, and the
packed scorer against a plain forward per prompt."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from cultbench.errors import CultbenchError
from cultbench.instruments import load_instrument
from cultbench.instruments.opinions import parse_literal
from cultbench.evaluation.metrics import js_distance, rank_by_similarity, similarity
from cultbench.prompts import get_variants, render_user_message, variants_file
from cultbench.scoring.scorer import SurveyScorer
from conftest import ROOT, check_one_line_error, read_json_files, tiny_llama, word_level_tokenizer

sys.path.insert(0, str(ROOT / "scripts"))
import synthetic_opinions  # noqa: E402

FIXTURE = ROOT / "tests" / "data" / "globalopinionqa_fixture.csv"
INST = load_instrument("globalopinionqa", str(FIXTURE))


def test_the_committed_fixture_is_the_generators_output_in_the_datasets_format(tmp_path):
    synthetic_opinions.write(synthetic_opinions.fixture_rows(), tmp_path / "f.csv")
    assert (tmp_path / "f.csv").read_bytes() == FIXTURE.read_bytes()
    assert "defaultdict(<class 'list'>, {'Britain': [0.5" in FIXTURE.read_text()


def test_loader_cleans_by_policy_and_counts_every_change():
    counts = INST.cleaning["counts"]
    assert counts["rows_read"] == 10 and counts["items"] == 9
    assert counts["rows_dropped_no_countries"] == 1  # the all-mismatched row
    assert counts["entries_dropped_mismatched"] == 3  # Mexico in q0003, both entries of q0005
    assert counts["entries_dropped_off_sum"] == 1  # Germany's 0.4 + 0.4 in q0004
    assert counts["refusal_options_dropped"] == 2  # "DK/Refused", "Don't know/Refused"
    assert counts["rows_with_non_text_options"] == 1
    assert "q0005" not in INST.item_ids
    by_id = {it.id: it for it in INST.items}
    assert by_id["q0000"].scale == ("Spend more", "Spend the same", "Spend less")
    assert by_id["q0006"].scale == ("0", "3", "7")
    assert sorted(INST.option_counts) == [2, 2, 2, 3, 3, 3, 3, 5, 7]
    # refusal dropped, the rest renormalised: Germany 0.6, 0.25, 0.1 over 0.95
    np.testing.assert_allclose(INST.reference["Germany"]["q0000"], np.array([0.6, 0.25, 0.1]) / 0.95)
    assert "q0004" not in INST.reference["Germany"] and "q0003" not in INST.reference["Mexico"]


def test_country_keys_are_normalised_merged_and_linked_to_profiles():
    by_name = {c.name: c for c in INST.countries}
    assert set(by_name) == {"Germany", "Great Britain", "India", "Mexico", "Nigeria", "Palestinian territories",
                            "South Korea", "United States"}
    assert by_name["Great Britain"].keys == ("Britain", "Great Britain") and by_name["Great Britain"].iso2 == "GB"
    assert by_name["South Korea"].keys == ("S. Korea", "South Korea") and by_name["South Korea"].iso2 == "KR"
    assert by_name["India"].keys == ("India (Current national sample)", "India (Non-national sample)")
    assert by_name["Palestinian territories"].code is None  # no profile: kept, not linked
    assert INST.country("DE").name == "Germany" and INST.country("UK").name == "Great Britain"
    assert INST.country("S. Korea").name == "South Korea"
    with pytest.raises(CultbenchError, match="not a country of globalopinionqa"):
        INST.country("Saudi Arabia")


def test_policies_are_configurable():
    keep = load_instrument("globalopinionqa", str(FIXTURE), cleaning=(("off_sum", "renormalise"), ("refusal", "keep")))
    assert keep.cleaning["counts"]["entries_off_sum_renormalised"] == 1
    np.testing.assert_allclose(keep.reference["Germany"]["q0004"], [0.5, 0.5])
    assert {it.id: it for it in keep.items}["q0000"].scale[-1] == "DK/Refused"
    with pytest.raises(CultbenchError, match="mismatched=error"):
        load_instrument("globalopinionqa", str(FIXTURE), cleaning=(("mismatched", "error"),))
    with pytest.raises(CultbenchError, match="off_sum"):
        load_instrument("globalopinionqa", str(FIXTURE), cleaning=(("off_sum", "ignore"),))


def test_reprs_are_parsed_as_literals_never_evaluated(tmp_path):
    assert parse_literal("defaultdict(<class 'list'>, {'A': [0.5, 0.5]})", "{", "}") == {"A": [0.5, 0.5]}
    with pytest.raises(ValueError):
        parse_literal("defaultdict(<class 'list'>, {'A': __import__('os').getcwd()})", "{", "}")
    bad = tmp_path / "bad.csv"
    bad.write_text('question,selections,options\nQ?,"defaultdict(list, {\'A\': [open(\'x\')]})","[\'a\', \'b\']"\n'
                   'Q2?,"{\'Germany\': [0.5, 0.5]}","[\'a\', \'b\']"\n')
    inst = load_instrument("globalopinionqa", str(bad))
    assert inst.cleaning["counts"]["rows_dropped_unparseable"] == 1 and inst.item_ids == ["q0001"]


def test_data_errors_are_clear(tmp_path):
    with pytest.raises(CultbenchError, match="does not exist"):
        load_instrument("globalopinionqa", str(tmp_path / "none.csv"))
    (tmp_path / "cols.csv").write_text("question,answers\nQ,1\n")
    with pytest.raises(CultbenchError, match="missing column"):
        load_instrument("globalopinionqa", str(tmp_path / "cols.csv"))
    with pytest.raises(CultbenchError, match="index instrument"):
        load_instrument("vsm2013", str(FIXTURE))


def test_jsonl_and_parquet_read_like_the_csv(tmp_path):
    import pandas as pd

    frame = pd.read_csv(FIXTURE, dtype=str, keep_default_na=False)
    frame.to_json(tmp_path / "f.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "f.parquet")
    for name in ("f.jsonl", "f.parquet"):
        other = load_instrument("globalopinionqa", str(tmp_path / name))
        assert other.items == INST.items and other.reference == INST.reference


def _js_by_hand(p, q):
    p, q = np.asarray(p, float) / np.sum(p), np.asarray(q, float) / np.sum(q)
    m = (p + q) / 2

    def kl(a, b):
        return sum(x * math.log2(x / y) for x, y in zip(a, b) if x > 0)

    return math.sqrt((kl(p, m) + kl(q, m)) / 2)


def test_metrics_against_hand_computed_js_distances():
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_distance([0.5, 0.5], [1, 0]) == pytest.approx(math.sqrt((0.5 * math.log2(0.5 / 0.75) + 0.5
                                                                       + math.log2(1 / 0.75)) / 2))
    p, q = [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]
    assert js_distance(p, q) == pytest.approx(_js_by_hand(p, q), abs=1e-12)
    assert np.isnan(js_distance([0.5, 0.5], [np.nan, np.nan]))
    assert similarity([0.1, np.nan, 0.3]) == pytest.approx(0.8) and np.isnan(similarity([]))
    assert rank_by_similarity({"b": 0.5, "a": 0.5, "c": 0.9, "d": float("nan")})[0] == ("c", 0.9)
    assert [n for n, _ in rank_by_similarity({"b": 0.5, "a": 0.5, "d": float("nan")})] == ["a", "b", "d"]


def test_instrument_distance_is_the_mean_item_jsd_over_the_items_a_country_was_asked():
    rng = np.random.default_rng(0)
    shares = np.concatenate([rng.dirichlet(np.ones(k)) for k in INST.option_counts])
    target = INST.target("Mexico")
    vector = target.vector(INST.dimension_ids)
    by_hand = [_js_by_hand(shares[a:b], target.shares[i]) for i, a, b in
               zip(INST.item_ids, INST.offsets[:-1], INST.offsets[1:]) if i in target.shares]
    assert len(by_hand) == 3  # Mexico was asked q0002, q0007, q0009 (its q0003 entry was mismatched)
    assert INST.distance(shares, vector) == pytest.approx(np.mean(by_hand), abs=1e-12)
    assert INST.similarities(shares)["Mexico"] == pytest.approx(1 - np.mean(by_hand), abs=1e-12)
    batch = np.stack([shares, shares])[None]  # [1, 2, slots]
    np.testing.assert_allclose(INST.distance(batch, vector), np.full((1, 2), np.mean(by_hand)))
    own = INST.target("Germany").vector(INST.dimension_ids)
    assert INST.ranking(np.nan_to_num(own))[0][0] == "Germany"


def test_question_split_is_a_fixed_seeded_rule_and_can_be_overridden():
    assert INST.split_ids("train") == ["q0000", "q0002", "q0006", "q0008", "q0009"]
    assert INST.split_ids("heldout") == ["q0001", "q0003", "q0004", "q0007"]
    other = load_instrument("globalopinionqa", str(FIXTURE), split_seed=1)
    assert other.split != INST.split
    chosen = load_instrument("globalopinionqa", str(FIXTURE), heldout_items=("q0000",))
    assert chosen.split_ids("heldout") == ["q0000"] and chosen.split_rule["rule"] == "list"
    train = INST.subset("train")
    assert train.item_ids == INST.split_ids("train") and set(train.reference["Germany"]) <= set(train.item_ids)
    with pytest.raises(CultbenchError, match="not among the questions"):
        load_instrument("globalopinionqa", str(FIXTURE), heldout_items=("q9999",))


def test_letter_labels_and_reversed_order_are_wording_variants():
    variants = {v.name: v for v in get_variants(None, path=variants_file(INST))}
    item = {it.id: it for it in INST.items}["q0000"]
    forward = render_user_message(INST, item, variants["respondent"])
    backward = render_user_message(INST, item, variants["respondent-reversed"])
    assert "A. Spend more\nB. Spend the same\nC. Spend less" in forward and "from A to C" in forward
    assert "A. Spend less\nB. Spend the same\nC. Spend more" in backward
    assert {v.split for v in variants.values()} == {"train", "heldout"}
    assert {v.order for v in variants.values() if v.split == "train"} == {"ascending", "descending"}


def test_selection_by_validation_is_refused_before_a_model_loads_without_a_validation_split():
    """The opinions wordings have train and held-out splits only: a search cannot select by
    validation there, and says so before any model loads; prompt tuning falls back to its
    training best (docs/aligners.md, Validation)."""
    from cultbench.runs.aligning import prepare_aligner

    with pytest.raises(CultbenchError, match="select_by=validation needs a validation split, and the wordings of "
                                             "globalopinionqa have none"):
        prepare_aligner("de", {"select_by": "validation"}, INST, [30])
    assert prepare_aligner("de", {}, INST, [30]).config.select_by == "train"


# -- the scorer -------------------------------------------------------------------------------------


def opinions_tokenizer(chat: bool = True) -> PreTrainedTokenizerFast:
    variants = get_variants(None, path=variants_file(INST))
    corpus = [f"{it.text} {' '.join(it.scale)}" for it in INST.items]
    corpus += [f"{v.template} {v.scale_line} {v.system or ''}" for v in variants] + [" ".join("ABCDEFGHIJ")]
    return word_level_tokenizer(corpus, chat)


@pytest.fixture(scope="module")
def tiny_opinions():
    return tiny_llama(opinions_tokenizer())


@pytest.mark.parametrize("chat", [True, False], ids=["chat-template", "no-template"])
def test_scorer_equals_a_plain_forward_per_prompt(tiny_opinions, chat):
    model, tokenizer = tiny_opinions
    tokenizer = tokenizer if chat else opinions_tokenizer(chat=False)
    variants = get_variants(None, path=variants_file(INST))
    torch.manual_seed(1)
    soft = [torch.randn(3, model.config.hidden_size), None]
    personas = [None, "Answer as a person from Germany."]
    scorer = SurveyScorer(model, tokenizer, INST, variants, max_batch_mb=0.2)  # several chunks
    result = scorer.score(soft, personas)
    n_opt = max(INST.option_counts)
    assert result.probs.shape == (2, len(variants), len(INST.items), n_opt)
    embed = model.get_input_embeddings()
    with torch.no_grad():
        for c in range(2):
            for v, variant in enumerate(variants):
                for i, item in enumerate(INST.items):
                    ids, options = scorer.prompt_tokens(v, i, personas[c])
                    assert len(options) == len(item.scale)
                    x = embed(torch.tensor(ids))
                    x = x if soft[c] is None else torch.cat([soft[c], x])
                    p = torch.softmax(model(inputs_embeds=x[None]).logits[0, -1].double(), -1)[list(options)]
                    shown = (p / p.sum()).numpy()
                    expected = shown if variant.order == "ascending" else shown[::-1]
                    np.testing.assert_allclose(result.probs[c, v, i, :len(item.scale)], expected, atol=1e-5)
                    assert np.all(result.probs[c, v, i, len(item.scale):] == 0)
                    assert result.option_mass[c, v, i] == pytest.approx(float(p.sum()), abs=1e-5)
    np.testing.assert_allclose(result.indices, INST.flatten(result.probs))
    assert result.indices.shape == (2, len(variants), len(INST.dimension_ids))
    assert np.isnan(result.expected).all()


# -- aligners' objective, the command line, lm-eval --------------------------------------------------


def test_alignment_problem_fitness_is_the_instruments_mean_jsd(tiny_opinions):
    from aligners import AlignmentProblem

    model, tokenizer = tiny_opinions
    train = INST.subset("train")
    variants = get_variants("train", path=variants_file(train))
    scorer = SurveyScorer(model, tokenizer, train, variants)
    target = train.target("Great Britain")
    problem = AlignmentProblem(scorer, target)
    assert problem.distance == "jsd" and problem.describe()["target"]["name"] == "Great Britain"
    soft = torch.randn(2, 3, model.config.hidden_size, generator=torch.Generator().manual_seed(2))
    scored = scorer.score(soft)
    fitness = problem.fitness(scored.indices)
    vector = target.vector(train.dimension_ids)
    assert [v.wording for v in variants] == ["respondent", "respondent"]  # one wording, both option orders
    for c in range(2):
        # a question's answer distribution is averaged over the option orders before the distance
        by_hand = np.mean([_js_by_hand(scored.probs[c, :, i, :len(it.scale)].mean(axis=0), target.shares[it.id])
                           for i, it in enumerate(train.items) if it.id in target.shares])
        assert fitness[c] == pytest.approx(by_hand, abs=1e-9)
        assert train.distance(scored.indices[c], vector).shape == (len(variants),)
    with pytest.raises(CultbenchError, match="distance is jsd"):
        AlignmentProblem(scorer, target, distance="l1")


@pytest.fixture(scope="module")
def opinions_folder(tiny_opinions, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-opinions")
    model, tokenizer = tiny_opinions
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_cli_lists_instruments_and_describes_the_data():
    from click.testing import CliRunner

    from cultbench.cli import main

    listed = CliRunner().invoke(main, ["instruments"])
    assert listed.exit_code == 0 and "globalopinionqa  distribution" in listed.stdout
    described = CliRunner().invoke(main, ["instruments", "globalopinionqa", "--data", str(FIXTURE), "--countries",
                                          "--cleaning", "refusal=keep"])
    assert described.exit_code == 0, described.output
    record = __import__("json").loads(described.stdout)
    assert record["cleaning"]["policy"]["refusal"] == "keep" and "refusal_options_dropped" not in record["cleaning"]["counts"]
    assert {c["name"]: c["iso2"] for c in record["countries"]}["South Korea"] == "KR"


def test_cli_evaluate_reports_question_and_wording_splits(opinions_folder, tiny_opinions):
    import json

    from click.testing import CliRunner

    from cultbench.cli import main

    result = CliRunner().invoke(main, ["evaluate", "--model", str(opinions_folder), "--instrument", "globalopinionqa",
                                       "--data", str(FIXTURE), "--target", "Germany", "--target", "KR", "--json"])
    assert result.exit_code == 0, result.output
    assert "entries dropped mismatched 3" in result.stderr and "construct validity" in result.stderr
    report = json.loads(result.stdout)
    assert report["instrument"]["questions"] == {"train": 5, "heldout": 4}
    assert report["diagnostics"]["variants"] == 4 and isinstance(report["diagnostics"]["interpretable"], bool)
    model, tokenizer = tiny_opinions
    for split in ("train", "heldout"):
        variants = get_variants(split, path=variants_file(INST))
        scored = SurveyScorer(model, tokenizer, INST, variants).score()
        block = report["splits"][split]
        assert block["variants"] == [v.name for v in variants]
        diagnostics = block["diagnostics"]  # the diagnostics of distribution items, over every question
        assert set(diagnostics["checks"]) == {"option_mass", "position_bias", "reversal", "wording_stability"}
        assert diagnostics["option_mass"] == pytest.approx(float(scored.option_mass.mean()), abs=1e-6)
        assert diagnostics["wording_stability"]["per_country"].keys() == {c.name for c in INST.countries}
        for q in ("train", "heldout"):
            got = block["questions"][q]
            keep = [i for i, it in enumerate(INST.items) if INST.split[it.id] == q]
            assert got["items"] == len(keep)
            for name in ("Germany", "South Korea"):
                target = INST.target(name)
                d = INST.item_distances(scored.indices[0], target.vector(INST.dimension_ids))[:, keep]
                per_variant = [similarity(row) for row in d]
                assert list(got["targets"][name]["similarity_per_variant"].values()) == pytest.approx(
                    per_variant, abs=1e-6)  # fp32 rounding
                wordings = [v.wording for v in get_variants(split, path=variants_file(INST))]
                balanced = [scored.indices[0, [k for k, w in enumerate(wordings) if w == name_]].mean(axis=0)
                            for name_ in dict.fromkeys(wordings)]  # shares over a wording's option orders
                d = INST.item_distances(np.stack(balanced), target.vector(INST.dimension_ids))[:, keep]
                assert got["targets"][name]["similarity"] == pytest.approx(np.mean([similarity(r) for r in d]),
                                                                           abs=1e-6)
                assert list(got["targets"][name]["similarity_per_variant"].values()) == pytest.approx(per_variant)
            assert got["countries_ranked"] == len(got["ranking"])  # the fixture has fewer than --top countries
            ranked = [s for _, s in got["ranking"]]
            assert ranked == sorted(ranked, reverse=True)


@pytest.mark.slow
def test_stock_lm_eval_cli_agrees_with_cultbench_evaluate(opinions_folder, tmp_path):
    """The stock `lm_eval` entry point, `--model hf`, on the task files with the fixture as data."""
    import json
    import os
    import subprocess

    from click.testing import CliRunner

    from cultbench.cli import main
    from cultbench.harness import TASKS_PATH

    ours = CliRunner().invoke(main, ["evaluate", "--model", str(opinions_folder), "--instrument", "globalopinionqa",
                                     "--data", str(FIXTURE), "--target", "Germany", "--json"])
    assert ours.exit_code == 0, ours.output
    report = json.loads(ours.stdout)
    lm_eval = Path(sys.executable).parent / "lm_eval"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    metadata = json.dumps({"data": str(FIXTURE), "target": "Germany", "questions": "heldout"})
    proc = subprocess.run([str(lm_eval), "--model", "hf", "--model_args", f"pretrained={opinions_folder},dtype=float32",
                           "--include_path", str(TASKS_PATH), "--tasks", "globalopinionqa_train,globalopinionqa_heldout",
                           "--apply_chat_template", "--batch_size", "16", "--device", "cpu", "--metadata", metadata,
                           "--output_path", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (tmp_path / "out").rglob("results_*.json")
    data = json.loads(path.read_text())
    for split in ("train", "heldout"):
        ours_split = report["splits"][split]["questions"]["heldout"]["targets"]["Germany"]
        for variant, value in ours_split["similarity_per_variant"].items():
            task = f"globalopinionqa_{variant.replace('-', '_')}"
            assert data["results"][task]["similarity,none"] == pytest.approx(value, abs=1e-5)
            assert data["configs"][task]["metadata"]["cultbench"]["questions"] == "heldout"
        # the group's mean over renderings is the secondary per-rendering figure, not the balanced one
        assert data["results"][f"globalopinionqa_{split}"]["similarity,none"] == pytest.approx(
            np.mean(list(ours_split["similarity_per_variant"].values())), abs=1e-5)


def test_cli_evaluate_summary_and_align_on_the_training_questions(opinions_folder, tmp_path):
    from click.testing import CliRunner

    from cultbench.cli import main

    common = ["--model", str(opinions_folder), "--instrument", "globalopinionqa", "--data", str(FIXTURE)]
    summary = CliRunner().invoke(main, ["evaluate", *common, "--target", "Nigeria"])
    assert summary.exit_code == 0, summary.output
    assert "heldout wordings (participant-reworded, researcher-reversed), heldout questions (4)" in summary.stdout
    assert "Nigeria: similarity" in summary.stdout and "construct validity" in summary.stdout
    assert "Validity: NOT interpretable; failed: option_mass" in summary.stdout
    out = tmp_path / "rs"
    aligned = CliRunner().invoke(main, ["align", *common, "--target", "Nigeria", "--aligner", "random", "--budget", "4",
                                        "--param", "popsize=2", "--param", "n_virtual=2", "--output", str(out),
                                        "--no-progress"])
    assert aligned.exit_code == 0, aligned.output
    assert "on 5 training questions x 2 training wordings" in aligned.stderr
    import json

    record = json.loads((out / "alignment.json").read_text())
    assert record["problem"]["distance"] == "jsd" and record["problem"]["instrument"] == "globalopinionqa"
    assert all(k.split(":")[0] in INST.split_ids("train") for k in record["result"]["indices"])
    again = CliRunner().invoke(main, ["evaluate", *common, "--target", "Nigeria", "--alignment", str(out), "--json"])
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert report["alignment"] == str(out)
    plain = json.loads(CliRunner().invoke(main, ["evaluate", *common, "--target", "Nigeria", "--json"]).stdout)
    for split in ("train", "heldout"):  # the naive model beside the alignment: the plain evaluation's numbers
        for q in ("train", "heldout"):
            got = report["splits"][split]["questions"][q]["targets"]["Nigeria"]
            naive = plain["splits"][split]["questions"][q]["targets"]["Nigeria"]["similarity"]
            assert got["naive_similarity"] == pytest.approx(naive, abs=1e-6)
            assert got["delta_vs_naive"] == pytest.approx(got["similarity"] - got["naive_similarity"])
    fitted = report["splits"]["train"]["questions"]["train"]["targets"]["Nigeria"]["similarity"]
    assert 1 - fitted == pytest.approx(record["result"]["fitness"], abs=1e-5)  # what align fitted
    shown = CliRunner().invoke(main, ["evaluate", *common, "--target", "Nigeria", "--alignment", str(out)])
    assert shown.exit_code == 0 and "; naive model 0." in shown.stdout


@pytest.mark.parametrize("name, params, budget", [("de", {"popsize": 5, "n_virtual": 2, "d": 4}, 10),
                                                  ("prompt-tuning", {"n_virtual": 2, "steps": 3, "lr": 0.05}, None),
                                                  ("cmaes", {"popsize": 4, "n_virtual": 2, "d": 4}, 8),
                                                  ("naive", {}, None), ("icl", {}, None)])
def test_aligners_run_unchanged_on_the_distribution_distance(tiny_opinions, name, params, budget):
    from aligners import AlignmentProblem, make_aligner

    model, tokenizer = tiny_opinions
    train = INST.subset("train")
    scorer = SurveyScorer(model, tokenizer, train, get_variants("train", path=variants_file(train)))
    problem = AlignmentProblem(scorer, train.target("Nigeria"),
                               model_info={"id": "tiny", "revision": None, "file_sha256": None, "hidden_size": 32})
    result = make_aligner(name, **params).align(problem, budget, seed=0)
    again = scorer.score(None if result.soft_prompt is None else [result.soft_prompt], [result.persona])
    assert problem.fitness(again.indices)[0] == pytest.approx(result.fitness, abs=1e-9)
    assert 0 < result.fitness < 1 and result.problem["distance"] == "jsd"
    if name == "icl":
        assert "Nigeria" in result.persona


@pytest.mark.parametrize("name", ["mistral-v1", "mistral-v3", "smollm2"])
@pytest.mark.parametrize("chat", [True, False], ids=["chat-template", "plain"])
def test_letter_labels_are_single_tokens_on_real_tokenizers(name, chat):
    """Every item under every wording: the scorer's prompt ids plus one option token are how the
    tokenizer splits the rendered prompt plus that letter, and each token decodes to its letter."""
    import copy
    import re

    from tests.test_tokenizers import load

    tokenizer = copy.deepcopy(load(name))
    if not chat:
        tokenizer.chat_template = None
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, intermediate_size=16)
    variants = get_variants(None, path=variants_file(INST))
    scorer = SurveyScorer(LlamaForCausalLM(config).eval(), tokenizer, INST, variants)
    for v in range(len(variants)):
        for i, item in enumerate(INST.items):
            prompt, options = scorer.prompt_tokens(v, i, "Answer as a person from France.")
            letters = INST.labels(item)
            assert [re.sub(r"\s+", "", tokenizer.decode([t])) for t in options] == letters
            text = tokenizer.decode(list(prompt) + [options[-1]], skip_special_tokens=False)
            assert re.sub(r"\s+", "", text).endswith(letters[-1])


def test_without_data_the_hub_cache_is_read_offline_and_its_absence_is_one_clear_error(tmp_path, monkeypatch):
    import datasets

    from cultbench.cli import main
    from click.testing import CliRunner

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)  # an empty cache
    monkeypatch.chdir(tmp_path)
    before = datasets.config.HF_HUB_OFFLINE
    with pytest.raises(CultbenchError, match="not in the local Hugging Face cache.*never downloads"):
        load_instrument("globalopinionqa")
    assert datasets.config.HF_HUB_OFFLINE == before  # offline only while reading
    result = CliRunner().invoke(main, ["evaluate", "--instrument", "globalopinionqa", "--data", str(FIXTURE),
                                       "--target", "Atlantis"])
    check_one_line_error(result, "'Atlantis' is not a country of globalopinionqa")
    result = CliRunner().invoke(main, ["evaluate", "--instrument", "globalopinionqa", "--data", str(tmp_path / "x.csv"),
                                       "--target", "Germany"])
    check_one_line_error(result, "does not exist")


def test_the_gradient_path_gives_the_scorers_shares_and_the_distance_in_torch(tiny_opinions):
    from aligners import AlignmentProblem

    model, tokenizer = tiny_opinions
    variants = get_variants(None, path=variants_file(INST))
    scorer = SurveyScorer(model, tokenizer, INST, variants)
    soft = torch.randn(1, 2, model.config.hidden_size, generator=torch.Generator().manual_seed(3)).requires_grad_()
    shares = scorer.indices_with_grad(soft)
    np.testing.assert_allclose(shares.detach().numpy(), scorer.score(soft.detach()).indices, atol=1e-6)
    target = INST.target("India")
    problem = AlignmentProblem(scorer, target)
    loss = problem.loss(shares)
    assert float(loss.detach()[0]) == pytest.approx(float(problem.fitness(shares.detach().numpy())[0]), abs=1e-9)
    loss.sum().backward()
    assert soft.grad is not None and torch.isfinite(soft.grad).all() and soft.grad.abs().sum() > 0
    vector = target.vector(INST.dimension_ids)
    own = torch.tensor(np.nan_to_num(vector), requires_grad=True)  # the target itself: distance 0, finite gradient
    d = INST.distance_tensor(own, vector)
    d.backward()
    assert float(d) < 1e-12 and torch.isfinite(own.grad).all()


# -- cultbench run and the leaderboard ----------------------------------------------------------------

RUN_ALIGNERS = ["naive", "icl", "random", "de", "cmaes", "prompt-tuning"]


@pytest.fixture(scope="module")
def opinions_sweep(opinions_folder, tmp_path_factory):
    """`cultbench run` from a config file (instrument, data) on the fixture: every aligner, two targets."""
    import yaml
    from click.testing import CliRunner

    from cultbench.cli import main

    root = tmp_path_factory.mktemp("opinions-sweep")
    config = root / "sweep.yaml"
    config.write_text(yaml.safe_dump({
        "instrument": "globalopinionqa", "data": str(FIXTURE), "model": [str(opinions_folder)],
        "target": ["Germany", "KR"], "aligner": RUN_ALIGNERS, "budget": 10, "seed": 0,
        "param": {"popsize": 5, "n_virtual": 2, "d": 4, "steps": 2, "lr": 0.05},
        "output": str(root / "entries"), "runs-dir": str(root / "runs"), "progress": False}))
    result = CliRunner().invoke(main, ["run", "--config", str(config)])
    assert result.exit_code == 0, result.output
    return root, config, result


def test_run_writes_distribution_records_with_held_out_questions_and_wordings_apart(opinions_sweep, tiny_opinions):
    import hashlib

    import jsonschema

    import leaderboard as leaderboard_data
    from cultbench.runs.results import SCHEMA_VERSION, combination_key_of, entry_id

    root, _, result = opinions_sweep
    records = read_json_files(root / "entries")
    assert sorted(result.stdout.split()) == sorted(str(root / "entries" / n) for n in records)
    assert sorted((r["target"]["name"], r["aligner"]["name"]) for r in records.values()) == sorted(
        (t, a) for t in ("Germany", "South Korea") for a in RUN_ALIGNERS)
    schema = __import__("json").loads((Path(leaderboard_data.__file__).parent / "result.schema.json").read_text())
    sha = hashlib.sha256(FIXTURE.read_bytes()).hexdigest()
    model, tokenizer = tiny_opinions
    variants = get_variants(None, path=variants_file(INST))
    naive_scored = SurveyScorer(model, tokenizer, INST, variants).score()
    for name, r in records.items():
        jsonschema.validate(r, schema)
        assert r["schema_version"] == SCHEMA_VERSION and r["id"] == entry_id(combination_key_of(r)) and r["id"] in name
        inst = r["instrument"]
        assert inst["kind"] == "distribution" and inst["name"] == "globalopinionqa" and inst["data"]["sha256"] == sha
        assert inst["questions"] == {"train": 5, "heldout": 4} and inst["cleaning"]["counts"]["entries_dropped_mismatched"] == 3
        assert r["aligner"]["distance"] == "jsd" and r["constants"] == {} and r["target"]["source"] == "globalopinionqa"
        assert r["variants"] == {s: [v.name for v in get_variants(s, path=variants_file(INST))] for s in ("train", "heldout")} | {"version": 1}
        m = r["metrics"]
        assert {b: (m[b]["wordings"], m[b]["questions"]) for b in ("train", "heldout_questions", "heldout_wordings",
                                                                    "heldout")} == {
            "train": ("train", "train"), "heldout_questions": ("train", "heldout"),
            "heldout_wordings": ("heldout", "train"), "heldout": ("heldout", "heldout")}
        # What the aligner fitted (training questions under training wordings) is the train block.
        assert m["train"]["similarity"] == pytest.approx(1 - r["aligner"]["fitness"], abs=1e-5)
        for block in m.values():
            if isinstance(block, dict) and "similarity" in block:
                assert block["jsd"] == pytest.approx(1 - block["similarity"])
                assert block["items"] == (5 if block["questions"] == "train" else 4)
        assert set(m["diagnostics"]["all"]["checks"]) == {"option_mass", "position_bias", "reversal", "wording_stability"}
        assert m["diagnostics"]["all"]["variants"] == 4 and m["diagnostics"]["train"]["variants"] == 2
        assert "--data" in r["run"]["command"] and "--source" not in r["run"]["command"]
        if r["aligner"]["name"] == "naive":  # each block against the scorer on its own variants and questions
            target = INST.target(r["target"]["name"])
            for block in m.values():
                if not (isinstance(block, dict) and "similarity" in block):
                    continue
                rows = [k for k, v in enumerate(variants) if v.split == block["wordings"]]
                keep = [i for i, it in enumerate(INST.items) if INST.split[it.id] == block["questions"]]
                d = INST.item_distances(naive_scored.indices[0, rows], target.vector(INST.dimension_ids))[:, keep]
                assert list(block["similarity_per_variant"].values()) == pytest.approx([similarity(x) for x in d],
                                                                                       abs=1e-5)
                # the primary figure: each wording's shares averaged over its option orders first
                by_wording = {}
                for k in rows:
                    by_wording.setdefault(variants[k].wording, []).append(naive_scored.indices[0, k])
                d = INST.item_distances(np.stack([np.mean(x, axis=0) for x in by_wording.values()]),
                                        target.vector(INST.dimension_ids))[:, keep]
                assert block["similarity"] == pytest.approx(np.mean([similarity(x) for x in d]), abs=1e-5)
    assert "sim. train" in result.stderr and "held-out Q" in result.stderr and "held-out W" in result.stderr
    assert "L1" not in result.stderr.split("Similarity:")[0]


def test_run_again_skips_finished_combinations_and_resumes_nothing(opinions_sweep):
    from click.testing import CliRunner

    from cultbench.cli import main

    root, config, _ = opinions_sweep
    before = {p.name: p.stat().st_mtime_ns for p in (root / "entries").glob("*.json")}
    again = CliRunner().invoke(main, ["run", "--config", str(config)])
    assert again.exit_code == 0, again.output
    assert "0 combinations run, 12 done before" in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (root / "entries").glob("*.json")} == before


def test_leaderboard_shows_the_distribution_entries_with_similarity_not_l1(opinions_sweep, tmp_path):
    import json
    import re

    from click.testing import CliRunner

    from cultbench.cli import main
    from conftest import load_page_checker

    root, _, _ = opinions_sweep
    built = CliRunner().invoke(main, ["leaderboard", "build", "--entries", str(root / "entries"), "--out",
                                      str(tmp_path), "--strict"])
    assert built.exit_code == 0, built.output
    assert "12 rows from 12 entries; 0 left out" in built.stderr
    board = json.loads((tmp_path / "leaderboard.json").read_text())
    assert board["rows"] == [] and board["summary"] == [] and len(board["distribution"]) == 1
    section = board["distribution"][0]
    assert section["instrument"]["name"] == "globalopinionqa" and section["instrument"]["items"] == 9
    records = {r["id"]: r for r in read_json_files(root / "entries").values()}
    assert len(section["rows"]) == 12
    for row in section["rows"]:
        (record,) = [records[name.rsplit("_", 1)[1].removesuffix(".json")] for name in row["files"]]
        for block in ("train", "heldout_questions", "heldout_wordings", "heldout"):
            assert row["similarity"][block]["mean"] == pytest.approx(record["metrics"][block]["similarity"])
        naive = next(r for r in section["rows"] if r["aligner"]["name"] == "naive"
                     and r["target"]["name"] == row["target"]["name"])
        if row is not naive:
            assert row["delta_vs_naive"]["heldout"] == pytest.approx(
                row["similarity"]["heldout"]["mean"] - naive["similarity"]["heldout"]["mean"])
    for target in ("Germany", "South Korea"):  # the star: the highest similarity with both held out
        mine = [r for r in section["rows"] if r["target"]["name"] == target]
        top = max(mine, key=lambda r: r["similarity"]["heldout"]["mean"])
        assert [r["best"] for r in mine if r is not top] == [False] * (len(mine) - 1)
        assert top["best"] != ("best_note" in top)  # a ★ beyond the noise, or the reason there is none
    md = (tmp_path / "LEADERBOARD.md").read_text()
    assert "## globalopinionqa v1: similarity to countries' answer shares" in md and "construct validity" in md
    header = next(line for line in md.splitlines() if line.startswith("| Model | Aligner | Target | Seeds"))
    assert "Similarity, both held out" in header and "JSD, both held out" in header and "L1" not in header
    assert "PDI" not in md and "Constants C" not in md
    study = CliRunner().invoke(main, ["leaderboard", "study", "--entries", str(root / "entries")])
    check_one_line_error(study, "no entries of an index instrument to make a study of")
    page = (tmp_path / "index.html").read_text()
    assert page.count('<tr data-row=') == 12 + len(section["summary"]) and 'id="leaderboard"' not in page
    checker = load_page_checker()
    if checker.find_chromium():  # every row, in order, sorted by similarity on request, no console message
        assert checker.check(tmp_path / "index.html", tmp_path / "leaderboard.json", checker.find_chromium()) == []
        dom, console = checker.dump_dom(checker.find_chromium(), (tmp_path / "index.html").resolve().as_uri()
                                        + "#aligner=naive")
        assert console == [] and "2 of 12 results shown" in dom
        shown = re.findall(r'<tr data-row="\d+" data-aligner="([^"]+)"[^>]*?( hidden="")?>', dom)
        assert {a for a, hidden in shown if not hidden} == {"naive"}


def test_icl_profile_refuses_a_distribution_instrument_in_one_line(opinions_folder, tiny_opinions):
    from click.testing import CliRunner

    from aligners import AlignmentProblem, make_aligner
    from cultbench.cli import main

    common = ["--model", str(opinions_folder), "--instrument", "globalopinionqa", "--data", str(FIXTURE),
              "--target", "Germany", "--aligner", "icl-profile"]
    for command in ("run", "align"):
        result = CliRunner().invoke(main, [command, *common])
        check_one_line_error(result, "icl-profile writes the target's published index scores",
                             "answer key; use icl")
    model, tokenizer = tiny_opinions
    train = INST.subset("train")
    problem = AlignmentProblem(SurveyScorer(model, tokenizer, train, get_variants("train", path=variants_file(train))),
                               train.target("Germany"))
    with pytest.raises(CultbenchError, match="answer key"):
        make_aligner("icl-profile").align(problem)


def test_run_refuses_bad_distribution_options_in_one_line(tmp_path):
    from click.testing import CliRunner

    from cultbench.cli import main

    base = ["run", "--target", "Germany", "--aligner", "naive", "--output", str(tmp_path / "e"),
            "--runs-dir", str(tmp_path / "r")]
    cases = [(["--instrument", "globalopinionqa", "--data", str(FIXTURE), "--distance", "l2"], "its distance is jsd"),
             (["--instrument", "globalopinionqa", "--data", str(FIXTURE), "--dimensions", "pdi"], "its distance is jsd"),
             (["--instrument", "globalopinionqa", "--data", str(FIXTURE), "--source", "hofstede-2015"], "no --source"),
             (["--instrument", "globalopinionqa", "--data", str(tmp_path / "none.csv")], "does not exist"),
             (["--instrument", "vsm2013", "--data", str(FIXTURE)], "index instrument: it takes no data")]
    for extra, fragment in cases:
        check_one_line_error(CliRunner().invoke(main, [*base, *extra]), fragment)


def test_a_target_never_asked_a_held_out_question_gets_null_there_not_nan(opinions_folder, tmp_path):
    """The fixture asks the Palestinian territories (no profile, no ISO code) one training question only."""
    from click.testing import CliRunner

    from cultbench.cli import main

    result = CliRunner().invoke(main, ["run", "--model", str(opinions_folder), "--instrument", "globalopinionqa",
                                       "--data", str(FIXTURE), "--target", "Palestinian territories", "--aligner",
                                       "naive", "--output", str(tmp_path / "entries"), "--runs-dir",
                                       str(tmp_path / "runs"), "--no-progress"])
    assert result.exit_code == 0, result.output
    ((name, record),) = read_json_files(tmp_path / "entries").items()
    assert "_palestinian" in name and "_naive_" in name  # no ISO code: the name in the file name
    m = record["metrics"]
    assert m["train"]["items_asked"] == 1 and m["train"]["similarity"] is not None
    for block in ("heldout_questions", "heldout"):
        assert m[block]["items_asked"] == 0 and m[block]["similarity"] is None and m[block]["jsd"] is None
        assert m[block]["rank"] is None
    assert "both held out –" in result.stderr
    built = CliRunner().invoke(main, ["leaderboard", "build", "--entries", str(tmp_path / "entries"), "--out",
                                      str(tmp_path), "--strict"])
    assert built.exit_code == 0, built.output
    row = next(line for line in (tmp_path / "LEADERBOARD.md").read_text().splitlines()
               if line.startswith("| ") and "Palestinian territories | 1 |" in line)
    assert row.split(" | ")[4] == "–"  # similarity with both held out
