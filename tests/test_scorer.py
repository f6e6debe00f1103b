"""The batched, prefix-packed scorer against a plain per-prompt forward, on the tiny model."""

import numpy as np
import pytest
import torch

from cultbench.errors import CultbenchError
from cultbench.instruments import load_instrument
from cultbench.scoring.packing import SOFT, Suffix, pack, prefix_tree, suffix_rows
from cultbench.prompts import get_variants
from cultbench.scoring.scorer import SurveyScorer, default_padding

INST = load_instrument("vsm2013")
PERSONAS = ["You are an average human being born in China and living in China responding to the "
            "following survey question.", None, "Answer about yourself."]


def reference(model, scorer, soft, personas):
    """One forward per candidate x variant x item, no batching, no padding, no sharing."""
    n_items, n_var = len(INST.items), len(scorer.variants)
    probs = np.zeros((len(personas), n_var, n_items, 5))
    mass = np.zeros((len(personas), n_var, n_items))
    embed = model.get_input_embeddings()
    with torch.no_grad():
        for c, persona in enumerate(personas):
            for v, variant in enumerate(scorer.variants):
                for i in range(n_items):
                    ids, options = scorer.prompt_tokens(v, i, persona)
                    x = embed(torch.tensor(ids))
                    if soft[c] is not None:
                        x = torch.cat([soft[c], x])
                    p = torch.softmax(model(inputs_embeds=x[None]).logits[0, -1].double(), -1)[list(options)]
                    mass[c, v, i] = float(p.sum())
                    shown = (p / p.sum()).numpy()
                    # displayed option k means answer k, or 6 - k on a reversed scale
                    probs[c, v, i] = shown if variant.order == "ascending" else shown[::-1]
    return probs, mass


@pytest.mark.parametrize("chat", [True, False], ids=["chat-template", "no-template"])
def test_batched_scores_equal_per_item_forwards(tiny, chat):
    model, tokenizer = tiny
    if not chat:
        tokenizer = type(tokenizer)(tokenizer_object=tokenizer.backend_tokenizer, unk_token="[UNK]", eos_token="</s>")
        assert not tokenizer.chat_template
    torch.manual_seed(1)
    hidden = model.config.hidden_size
    # mixed soft-prompt lengths, one candidate without a soft prompt, personas of mixed length:
    # trunk rows and suffixes of many widths
    soft = [torch.randn(3, hidden), None, torch.randn(5, hidden)]
    variants = get_variants(None)  # all six: both frames, both scale orders
    scorer = SurveyScorer(model, tokenizer, INST, variants, max_batch_mb=0.3)  # forces several chunks
    result = scorer.score(soft, PERSONAS)
    ref_probs, ref_mass = reference(model, scorer, soft, PERSONAS)
    assert result.probs.shape == (3, len(variants), 24, 5)
    np.testing.assert_allclose(result.probs, ref_probs, atol=1e-5)
    np.testing.assert_allclose(result.option_mass, ref_mass, atol=1e-5)
    expected = ref_probs @ np.arange(1, 6)
    np.testing.assert_allclose(result.expected, expected, atol=1e-4)
    np.testing.assert_allclose(result.indices, INST.indices(expected), atol=5e-3)
    # one big batch gives the same numbers as many small chunks (up to an ulp of the logits)
    again = SurveyScorer(model, tokenizer, INST, variants, max_batch_mb=4096).score(soft, PERSONAS)
    np.testing.assert_allclose(again.probs, result.probs, atol=1e-5)


def test_scores_are_deterministic_and_shared_prefixes_are_computed_once(tiny):
    model, tokenizer = tiny
    soft = torch.randn(4, 2, model.config.hidden_size, generator=torch.Generator().manual_seed(3))
    scorer = SurveyScorer(model, tokenizer, INST, get_variants("train"))
    first = scorer.score(soft)
    forwarded = scorer.tokens_forwarded
    second = scorer.score(soft)
    assert np.array_equal(first.probs, second.probs)
    n_var = len(scorer.variants)
    total = sum(len(scorer.prompt_tokens(v, i, None)[0]) + 2 for v in range(n_var) for i in range(24)) * 4
    assert forwarded < 0.75 * total  # the shared lead-ins, scales and headers go through once
    assert first.indices.shape == (4, n_var, 6) and first.mean_indices.shape == (4, 6)
    np.testing.assert_allclose(first.mean_indices, first.indices.mean(axis=1))


def test_a_wordings_two_scale_orders_share_one_tree(tiny):
    """Both renderings of a wording are packed together: the same answers as each scored alone,
    from fewer tokens (the header, system prompt, instruction and lead-ins go through once)."""
    model, tokenizer = tiny
    soft = torch.randn(2, 3, model.config.hidden_size, generator=torch.Generator().manual_seed(5))
    pair = get_variants(["honest-reworded", "honest-reworded-reversed"])
    together = SurveyScorer(model, tokenizer, INST, pair)
    assert together.wording_groups([0, 1]) == [(0, 1)]
    both = together.score(soft)
    alone, tokens_alone = [], 0
    for variant in pair:
        scorer = SurveyScorer(model, tokenizer, INST, [variant])
        alone.append(scorer.score(soft).probs[:, 0])
        tokens_alone += scorer.tokens_forwarded
    np.testing.assert_allclose(both.probs, np.stack(alone, axis=1), atol=1e-5)
    assert together.tokens_forwarded < 0.95 * tokens_alone


def test_constants_shift_indices_only(tiny):
    model, tokenizer = tiny
    base = SurveyScorer(model, tokenizer, INST, get_variants(["respondent-standard"])).score()
    shifted = SurveyScorer(model, tokenizer, INST, get_variants(["respondent-standard"]), constants={"pdi": 0, "ivr": 100}).score()
    np.testing.assert_allclose(shifted.expected, base.expected)
    np.testing.assert_allclose(shifted.indices[..., 0], base.indices[..., 0] - 50)
    np.testing.assert_allclose(shifted.indices[..., 5], base.indices[..., 5] + 50)
    np.testing.assert_allclose(shifted.indices[..., 1:5], base.indices[..., 1:5])
    assert shifted.constants["pdi"] == 0 and shifted.constants["mas"] == 50


def test_bad_candidates_are_clear_errors(tiny):
    model, tokenizer = tiny
    scorer = SurveyScorer(model, tokenizer, INST, get_variants("train"))
    with pytest.raises(CultbenchError, match="soft prompt must be"):
        scorer.score(torch.zeros(2, 3, model.config.hidden_size + 1))
    with pytest.raises(CultbenchError, match="2 soft prompts but 3 personas"):
        scorer.score(torch.zeros(2, 3, model.config.hidden_size), PERSONAS)
    with pytest.raises(CultbenchError, match="at least one prompt variant"):
        SurveyScorer(model, tokenizer, INST, [])


def test_packing_masks_follow_the_prefix_tree():
    prompts = {"a": (SOFT, 1, 2, 3, 4), "b": (SOFT, 1, 2, 5), "c": (SOFT, 1, 6), "d": (SOFT, 7, 8), "e": (SOFT, 1, 2)}
    root = prefix_tree(prompts)
    assert root.tokens == [SOFT] and len(root.children) == 2
    layout = pack(prompts)
    # inner nodes form the trunk: [SOFT] [1] [2]; the root-only segment of "d" joins the first copy
    assert len(layout.rows) == 1
    row = layout.rows[0]
    assert row.ids.tolist() == [SOFT, 1, 2] and row.positions.tolist() == [0, 1, 2]
    assert row.leaves == {"e": 2}  # a prompt that ends inside the trunk is read from the trunk
    assert row.mask.tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    # childless nodes are suffixes: their tokens, first position id and the trunk token they follow
    got = {tuple(s.leaves): (s.ids, s.start, s.parent, s.row) for s in layout.suffixes}
    assert got == {("a",): ([3, 4], 3, 2, 0), ("b",): ([5], 3, 2, 0), ("c",): ([6], 2, 1, 0),
                   ("d",): ([7, 8], 1, 0, 0)}
    assert layout.tokens == 3 + 2 + 1 + 1 + 2


def test_packing_without_common_prefix_keeps_top_nodes_in_the_trunk():
    layout = pack({"a": (1, 2), "b": (3, 4, 5), "c": (3, 6)})
    assert sorted(r.ids.tolist() for r in layout.rows) == [[1, 2], [3]]
    assert [(s.ids, s.start) for s in sorted(layout.suffixes, key=lambda s: s.ids)] == [([4, 5], 1), ([6], 1)]


def test_suffix_rows_pack_a_trunk_rows_suffixes_end_to_end_in_near_equal_rows():
    def suffix(n, tag):
        return Suffix(row=0, parent=0, ids=[tag] * n, start=1, leaves=[tag])

    suffixes = [suffix(n, k) for k, n in enumerate([49, 45, 44, 41, 15, 12])]
    rows = suffix_rows(suffixes, 122)  # 206 tokens: two rows, longest first into the shorter row
    assert sorted(r.width for r in rows) == [102, 104]
    for r in rows:  # end to end, no gaps, each suffix once
        assert [o for o, _ in r.suffixes] == [sum(len(s.ids) for _, s in r.suffixes[:k]) for k in range(len(r.suffixes))]
    assert sorted(s.leaves[0] for r in rows for _, s in r.suffixes) == list(range(6))
    assert [r.width for r in suffix_rows(suffixes, 1000)] == [206]
    assert [r.width for r in suffix_rows(suffixes[:2], 10)] == [49, 45]  # longer than the limit: a row each
    assert suffix_rows([], 10) == []


def test_padding_default_depends_on_instrument_kind_and_device(tiny):
    opinions = type("Distribution", (), {"kind": "distribution"})()
    assert default_padding(INST, torch.device("cpu")) == 0.0
    assert default_padding(INST, torch.device("cuda")) == 0.25  # per-forward launches cost more than padding
    assert default_padding(opinions, torch.device("cpu")) == 0.25
    model, tokenizer = tiny
    assert SurveyScorer(model, tokenizer, INST, get_variants("train")).padding == 0.0


def test_suffix_forwards_with_and_without_copies_of_the_trunk_cache(tiny, monkeypatch):
    """Both ways a suffix forward gets the trunk's keys and values (extending the trunk's own
    cache, or a copy of some of its rows) occur in the exactness tests' settings."""
    model, tokenizer = tiny
    seen = []
    original = SurveyScorer._forward_suffixes

    def spy(self, part, chunk, cache, trunk_mask, out, own_cache=False):
        seen.append(own_cache)
        return original(self, part, chunk, cache, trunk_mask, out, own_cache)

    monkeypatch.setattr(SurveyScorer, "_forward_suffixes", spy)
    soft = [torch.randn(3, model.config.hidden_size), None, torch.randn(5, model.config.hidden_size)]
    for mb in (0.3, 4096):
        SurveyScorer(model, tokenizer, INST, get_variants(None), max_batch_mb=mb).score(soft, PERSONAS)
    assert True in seen and False in seen


@pytest.mark.slow
def test_bundled_model_matches_per_item_forwards(smollm2):
    """SmolLM2 with its real chat template: packed scores equal plain forwards (fp32)."""
    model, tokenizer = smollm2
    variants = get_variants(["respondent-standard", "brief-reworded-reversed"])
    soft = [torch.randn(2, model.config.hidden_size, generator=torch.Generator().manual_seed(0)) * 0.02]
    result = SurveyScorer(model, tokenizer, INST, variants).score(soft)
    scorer = SurveyScorer(model, tokenizer, INST, variants)
    ref_probs, ref_mass = reference(model, scorer, soft, [None])
    np.testing.assert_allclose(result.probs, ref_probs, atol=1e-5)
    np.testing.assert_allclose(result.option_mass, ref_mass, atol=1e-5)
    assert 0.05 < result.option_mass.mean() < 1.0


def plain_loss(model, scorer, soft, persona, target):
    """L1 to ``target`` per variant, averaged, from one plain forward per prompt (autograd on)."""
    embed = model.get_input_embeddings()
    values = torch.tensor(INST.options, dtype=torch.float64)
    per_variant = []
    for v, variant in enumerate(scorer.variants):
        expected = []
        for i in range(len(INST.items)):
            ids, options = scorer.prompt_tokens(v, i, persona)
            x = torch.cat([soft, embed(torch.tensor(ids)).detach()])
            p = torch.softmax(model(inputs_embeds=x[None]).logits[0, -1].double(), -1)[list(options)]
            shown = p / p.sum()
            expected.append(shown @ (values if variant.order == "ascending" else values.flip(0)))
        indices = torch.stack(expected) @ torch.from_numpy(INST.weights()) + torch.tensor(list(scorer.constants.values()))
        per_variant.append((indices - target).abs().sum())
    return torch.stack(per_variant).mean()


def test_gradient_of_the_packed_path_equals_a_plain_forward(tiny):
    """The differentiable path: same expected answers as score(), and the gradient of the L1
    objective w.r.t. the soft prompt equals the plain per-prompt forward's (fp32)."""
    model, tokenizer = tiny
    variants = get_variants(["respondent-standard", "brief-reworded-reversed"])
    scorer = SurveyScorer(model, tokenizer, INST, variants, max_batch_mb=0.3)
    soft = torch.randn(3, model.config.hidden_size, generator=torch.Generator().manual_seed(2)) * 0.5
    target = torch.tensor([40.0, 91, 62, 46, 26, 68], dtype=torch.float64)
    flags = [p.requires_grad for p in model.parameters()]

    leaf = soft.clone().requires_grad_(True)
    expected = scorer.expected_answers(leaf[None], [PERSONAS[0]])
    np.testing.assert_allclose(expected.detach().numpy(), scorer.score(soft[None], [PERSONAS[0]]).expected,
                               atol=1e-9)
    loss = (scorer.indices_tensor(expected)[0] - target).abs().sum(-1).mean()
    loss.backward()
    # the model's weights got no gradient and keep their flags
    assert all(p.grad is None for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == flags
    ref_leaf = soft.clone().requires_grad_(True)
    ref = plain_loss(model, scorer, ref_leaf, PERSONAS[0], target)
    torch.autograd.backward(ref, inputs=[ref_leaf])
    assert loss.item() == pytest.approx(ref.item(), abs=1e-3)
    assert float(leaf.grad.abs().max()) > 1e-3  # the soft prompt matters
    torch.testing.assert_close(leaf.grad, ref_leaf.grad, atol=1e-4, rtol=1e-3)
    # one variant at a time accumulates to the same gradient (the objective is a mean over variants)
    split = soft.clone().requires_grad_(True)
    for v in range(len(variants)):
        part = scorer.indices_tensor(scorer.expected_answers(split[None], [PERSONAS[0]], variants=[v]))
        ((part[0, 0] - target).abs().sum() / len(variants)).backward()
    torch.testing.assert_close(split.grad, leaf.grad, atol=1e-6, rtol=1e-5)
    with pytest.raises(CultbenchError, match="variant indices"):
        scorer.expected_answers(soft[None], variants=[2])
