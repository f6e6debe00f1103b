"""Option-token selection on real tokenizers of other families than the tests' word-level one.

For every item under every prompt variant, with and without a chat template, the scorer's prompt
ids followed by one option's token must be exactly how the tokenizer splits the rendered prompt
followed by that option's label, and each option token must decode to its label "1".."5".

Tokenizers (tests/data/tokenizers, README.md there: sources and licences):
- mistral-v1: SentencePiece, Mistral 7B v0.1's (the Llama family's layout: "▁" word prefix,
  digits split, byte fallback);
- mistral-v3: SentencePiece, Mistral's instruct v3, whose [INST] and [/INST] are control tokens;
- smollm2: byte-level BPE (GPT-2 style), the bundled SmolLM2-135M-Instruct's, with its ChatML template.
"""

import re
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, LlamaTokenizer

from cultbench.instruments import load_instrument
from cultbench.prompts import get_variants, option_labels, render_prompt
from cultbench.scoring.scorer import SurveyScorer

DATA = Path(__file__).parent / "data" / "tokenizers"
INST = load_instrument("vsm2013")
VARIANTS = get_variants("train") + get_variants("heldout")
LABELS = ["1", "2", "3", "4", "5"]
LETTERS = ["A", "B", "C", "D", "E"]
PERSONA = "You are an average human being born in France and living in France."
# A chat template in the shape of Mistral's instruct ones (system text before the user's, inside [INST]).
MISTRAL_TEMPLATE = ("{{ bos_token }}{% set system = messages | selectattr('role', 'equalto', 'system') | list %}"
                    "{% for m in messages if m['role'] == 'user' %}[INST] "
                    "{% if system %}{{ system[0]['content'] }}\n\n{% endif %}{{ m['content'] }} [/INST]{% endfor %}")


def load(name: str):
    if name.startswith("mistral"):
        tokenizer = LlamaTokenizer.from_pretrained(DATA / name)  # SentencePiece .model, converted to a fast tokenizer
        # Without sentencepiece and protobuf transformers makes an empty tokenizer instead of failing.
        assert len(tokenizer) >= 32000, "reading a SentencePiece model needs sentencepiece and protobuf (test extra)"
        tokenizer.chat_template = MISTRAL_TEMPLATE
        return tokenizer
    return AutoTokenizer.from_pretrained(DATA / name)


@pytest.fixture(scope="module", params=["mistral-v1", "mistral-v3", "smollm2"])
def tokenizer(request):
    return load(request.param)


def scorer_for(tokenizer) -> SurveyScorer:
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, intermediate_size=16)
    torch.manual_seed(0)
    return SurveyScorer(LlamaForCausalLM(config).eval(), tokenizer, INST, VARIANTS)


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("chat", [True, False], ids=["chat-template", "plain"])
def test_each_option_is_one_token_that_decodes_to_its_label_and_follows_the_whole_prompt(tokenizer, chat):
    template = tokenizer.chat_template
    tokenizer.chat_template = template if chat else None
    try:
        scorer = scorer_for(tokenizer)
        delimiter = "" if chat else " "  # the scorer's: without a template, "Answer: 3"
        seen = set()
        for v, variant in enumerate(VARIANTS):
            for i, item in enumerate(INST.items):
                persona = PERSONA if i % 2 else None
                prompt, options = scorer.prompt_tokens(v, i, persona)
                text = render_prompt(tokenizer, INST, item, variant, persona)
                labels = option_labels(INST, item, variant)
                assert labels == (LETTERS if variant.labels == "letters" else LABELS)
                assert [tokenizer.decode([o]).strip() for o in options] == labels, (variant.name, item.id)
                assert not set(options) & set(tokenizer.all_special_ids)
                for label, option in zip(labels, options):
                    full = tokenizer(text + delimiter + label, add_special_tokens=not chat)["input_ids"]
                    assert list(prompt) + [option] == list(full), (variant.name, item.id, label)
                # The prompt ids hold the whole rendered prompt (white space aside: a lone space
                # shared by all options may move from the option to the prompt).
                assert squeeze(tokenizer.decode(list(prompt))).endswith(squeeze(text)[-60:])
                assert squeeze(item.text) in squeeze(tokenizer.decode(list(prompt)))
                seen.add((variant.labels, tuple(tokenizer.convert_ids_to_tokens(list(options)))))
        assert len(seen) == 2  # the same five tokens for every item and rendering of one label set
    finally:
        tokenizer.chat_template = template


@pytest.mark.parametrize("name, chat, last", [
    # SentencePiece splits "Answer: 3" into "▁" + "3": the lone "▁", shared by all options, goes to the prompt.
    ("mistral-v1", False, "▁"),
    ("mistral-v3", False, "▁"),
    # With a template the digit follows "[/INST]": plain text in v1, one control token in v3.
    ("mistral-v1", True, "]"),
    ("mistral-v3", True, "[/INST]"),
    # SmolLM2's pre-tokenizer splits digits off before the byte-level BPE: " 3" is "Ġ" + "3".
    ("smollm2", False, "Ġ"),
    ("smollm2", True, "Ċ"),  # the newline after <|im_start|>assistant
])
def test_the_option_tokens_each_family_gives(name, chat, last):
    tokenizer = load(name)
    if not chat:
        tokenizer.chat_template = None
    prompt, options = scorer_for(tokenizer).prompt_tokens(0, 0, None)
    assert tokenizer.convert_ids_to_tokens(list(options)) == LABELS  # bare digits in all three
    assert tokenizer.convert_ids_to_tokens([prompt[-1]]) == [last]
