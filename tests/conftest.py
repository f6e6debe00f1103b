"""Shared fixtures and checks: a tiny random Llama and a word-level tokenizer, built in code (no
downloads); the one-line-error check of the CLI; the leaderboard page checker script.

The tokenizer is trained on the instrument's own text (so the option labels "1".."5" are single
tokens) and has a minimal chat template.
"""

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from cultbench.instruments import load_instrument

INST = load_instrument("vsm2013")
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def word_level_tokenizer(corpus: list[str], chat: bool = True) -> PreTrainedTokenizerFast:
    """A word-level tokenizer trained on ``corpus``, with the minimal chat template when ``chat``."""
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(
        special_tokens=["[UNK]", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="</s>")
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    corpus = [f"{it.lead_in or ''} {it.text} {' '.join(it.scale)}" for it in INST.items]
    corpus += ["1 2 3 4 5 A B C D E Answer with a single number from to", "You are an average human being born in and "
               "living in responding to the following survey question U.S.A."]
    return word_level_tokenizer(corpus)


def kill_when(script: str, ready, timeout: float = 600.0) -> subprocess.Popen:
    """Run ``script`` in a child Python and SIGKILL it as soon as ``ready()`` holds (checked every
    20 ms; a child that ends first fails the test with its stderr). ``timeout`` only bounds a hang:
    the kill comes at the first moment ``ready()`` is true, however loaded the machine."""
    child = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline and not ready():
            assert child.poll() is None, child.stderr.read().decode()
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    return child


def tiny_llama(tokenizer) -> tuple:
    """A tiny random Llama (seeded) sized for ``tokenizer``, and the tokenizer."""
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, initializer_range=0.2)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval(), tokenizer


@pytest.fixture(scope="session")
def tiny():
    return tiny_llama(tiny_tokenizer())


@pytest.fixture(scope="session")
def tiny_folder(tiny, tmp_path_factory):
    """The tiny model saved as a Hugging Face folder, for loaders and the CLI."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    model, tokenizer = tiny
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder




@pytest.fixture(scope="session")
def smollm2():
    """The bundled SmolLM2-135M-Instruct (fp32); the project's install commands put it on disk."""
    from cultbench.scoring.models import load_model

    loaded = load_model("smollm2-135m-instruct")
    return loaded.model, loaded.tokenizer


ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """scripts/<name>.py as a module (scripts are not part of the package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_page_checker():
    """scripts/check_leaderboard_page.py as a module."""
    return load_script("check_leaderboard_page")


def read_json_files(folder) -> dict:
    """Every *.json of ``folder`` (e.g. result files), by file name, in name order."""
    import json

    return {p.name: json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))}


def check_one_line_error(result, *fragments):
    """A CLI mistake: non-zero exit, no traceback, one `Error:` line on stderr with ``fragments``."""
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
