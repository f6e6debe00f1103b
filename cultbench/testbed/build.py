"""Build a planted-culture testbed: a small Llama-style causal LM trained from scratch by cultbench
on prompts rendered by cultbench's own renderer, whose answers are known by construction.

Kinds:
- ``culture``: answers follow the ground truth (``groundtruth.py``) of the country named in the
  persona (the icl baseline's persona sentence), or the all-country mean without a persona; a
  share ``position_bias`` of each answer's probability moves to the first-listed option, and a
  little wording noise perturbs each training wording's answers;
- ``position`` (control): the same answer distribution over the displayed positions for every
  item, persona and wording: it answers by position only;
- ``constant`` (control): the same answer distribution (over answer values) for every item.

Trained countries appear in the training prompts by name; held-out countries never do (they
include the study's targets). The wordings come from a generated pool disjoint from the
benchmark's (``wordings.py``). The folder holds config, safetensors weights, a word-level
tokenizer (the option labels are single tokens) with a chat template, and ``testbed.json``, the
record of everything planted.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aligners.baselines import ICL_TEMPLATE, format_persona
from cultbench.atomic import write_folder_atomic
from cultbench.errors import CultbenchError
from cultbench.instruments import load_instrument
from cultbench.prompts import option_labels, render_prompt
from cultbench.testbed.groundtruth import NO_PERSONA, ground_truth
from cultbench.testbed.wordings import DROPOUT_SHARE, UNKNOWN_WORD, drop_words, training_wordings

# torch, tokenizers and transformers are imported in the functions that build and train: the
# command line reads KINDS and SIZES at start-up, and `cultbench --help` must not take their seconds.
KINDS = ("culture", "position", "constant")
# The targets of the study (experiments/paper-small.yaml) with a complete 2015 profile: always held
# out. Saudi Arabia, the tenth, has no complete 2015 profile, so it has no ground truth at all.
STUDY_TARGETS = ("U.S.A.", "China", "India", "Venezuela", "Uruguay", "Latvia", "Austria", "Sweden", "Russia")
POSITION_ANSWERS = (0.45, 0.25, 0.15, 0.10, 0.05)  # position control: by displayed position
CONSTANT_ANSWERS = (0.10, 0.30, 0.30, 0.20, 0.10)  # constant control: by answer value
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
SPECIAL_TOKENS = ["[UNK]", "[PAD]", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]


@dataclass(frozen=True)
class Size:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    wordings: int  # training wordings, each in both orders
    steps: int
    batch: int
    lr: float
    # Weight of the squared error of the expected answer (same optimum as the cross-entropy): 100
    # learns the items' means within 800 steps (correlation 0.99 against 0.64 with weight 10).
    mean_weight: float = 100.0
    # Share of training prompts in the short wording (``wordings.SHORT_FRAME``): there the model learns
    # the countries, but mixed in it does not carry them to the long prompts (docs/testbed.md,
    # persona probe), so both sizes leave it at 0; the probe sets it.
    short_share: float = 0.0
    # Share of training prompts whose wording loses some words to [UNK] (``wordings.drop_words``).
    dropout_share: float = DROPOUT_SHARE
    # Weight of an auxiliary loss while training only: a linear probe (discarded after training) reads
    # the persona country's six scores (standardised; zero without a persona) from the answer
    # position after layer ``profile_layer``. The answers' targets are unchanged; it makes the model
    # carry the country to the answer sooner (the step at which it starts to read the persona is
    # what the default's step count paid for).
    profile_weight: float = 0.0
    profile_layer: int = 1


# Sized for this 2-core machine (a step of 64 prompts costs about 0.18 s of one core): default
# about 10 minutes, small under a minute. Batch 64, not 16: at 16 the model learns the items but
# never finds the persona's country (slope 0.003); at 64 it does (docs/testbed.md, persona probe Z).
# The default's profile probe (weight 10, after layer 1) is what makes 3000 steps enough: without it
# the model reads the persona only late in training (6000 steps: L1 26.1, slope 0.77; docs/testbed.md,
# size probe).
SIZES = {"default": Size(hidden=64, layers=2, heads=4, intermediate=128, wordings=120, steps=3000, batch=64, lr=3e-3,
                         profile_weight=10.0),
         # The tests' size keeps weight 10: in 300 steps, weight 100 leaves too little of the clipped
         # gradient to the cross-entropy that puts the probability on the option labels.
         "small": Size(hidden=64, layers=2, heads=4, intermediate=128, wordings=24, steps=300, batch=16, lr=3e-3,
                       mean_weight=10.0)}


@dataclass(frozen=True)
class BuildConfig:
    kind: str = "culture"
    size: str = "default"
    seed: int = 0
    position_bias: float = 0.15  # culture: share of each answer's probability moved to the first-listed option
    wording_noise: float = 0.1  # culture: SD of the per-wording log-probability noise on each answer
    heldout_extra: int = 4  # held-out countries drawn (seeded) beside the study's targets
    no_persona_share: float = 0.1  # share of training prompts without a persona
    steps: int | None = None  # None: the size's
    # One thread: a tiny model's steps are 10-30x slower with two threads on a shared 2-core
    # machine (0.17 s against 1-5 s per small step, measured under load), and the weights do not
    # depend on the machine's core count.
    threads: int = 1

    def __post_init__(self):
        if self.kind not in KINDS:
            raise CultbenchError(f"unknown testbed kind {self.kind!r}; kinds: {', '.join(KINDS)}")
        if self.size not in SIZES:
            raise CultbenchError(f"unknown testbed size {self.size!r}; sizes: {', '.join(SIZES)}")
        if not 0 <= self.position_bias < 1:
            raise CultbenchError(f"position bias must lie in [0, 1), got {self.position_bias}")
        if self.wording_noise < 0 or (self.steps is not None and self.steps < 1):
            raise CultbenchError("wording noise must be >= 0 and steps >= 1")

    @property
    def shape(self) -> Size:
        size = SIZES[self.size]
        if self.kind != "culture":
            # The profile probe teaches the persona's culture; a control has none, not even inside
            # (with it, gradient prompt tuning drew up to 9.3 points of content out of the position
            # control: docs/testbed.md, "The controls train without the probe").
            size = dataclasses.replace(size, profile_weight=0.0)
        return size if self.steps is None else dataclasses.replace(size, steps=self.steps)


def split_countries(names: list[str], extra: int, seed: int) -> tuple[list[str], list[str]]:
    """(trained, held out): the study's targets and ``extra`` seeded others are held out."""
    missing = [n for n in STUDY_TARGETS if n not in names]
    if missing:
        raise CultbenchError(f"study targets without ground truth: {', '.join(missing)}")
    rest = [n for n in names if n not in STUDY_TARGETS]
    drawn = set(np.random.default_rng(seed).choice(len(rest), size=extra, replace=False).tolist())
    heldout = list(STUDY_TARGETS) + [n for k, n in enumerate(rest) if k in drawn]
    return [n for n in names if n not in heldout], heldout


def answer_targets(config: BuildConfig, truth: np.ndarray, noise: np.ndarray, descending: bool) -> np.ndarray:
    """Target distribution [I, K] over the displayed labels of one rendering.

    ``truth`` [I, K] is the respondent's ground truth by answer value, ``noise`` [I, K] the
    wording's log-probability noise."""
    if config.kind == "position":
        return np.tile(np.asarray(POSITION_ANSWERS), (truth.shape[0], 1))
    if config.kind == "constant":
        values = np.tile(np.asarray(CONSTANT_ANSWERS), (truth.shape[0], 1))
        return values[:, ::-1] if descending else values
    noisy = truth * np.exp(noise)
    noisy /= noisy.sum(axis=1, keepdims=True)
    shown = noisy[:, ::-1] if descending else noisy
    first = np.zeros_like(shown)
    first[:, 0] = 1.0
    return (1 - config.position_bias) * shown + config.position_bias * first


def training_set(config: BuildConfig, instrument, render, rng) -> tuple[list[str], np.ndarray, list, dict, np.ndarray]:
    """Texts, targets [N, K] and option labels (displayed order) of ``steps * batch`` training prompts
    drawn at random, the record, and each prompt's persona profile [N, D] (the country's scores
    standardised over the trained countries; zero without a persona), the auxiliary probe's target."""
    gt = ground_truth(instrument)
    trained, heldout = split_countries(list(gt.profiles), config.heldout_extra, config.seed)
    shape = config.shape
    wordings = training_wordings(instrument, shape.wordings, config.seed, short=shape.short_share > 0)
    n_items, k = len(instrument.items), len(instrument.options)
    noise = rng.normal(0.0, config.wording_noise, size=(shape.wordings, n_items, k))
    noise = np.concatenate([noise, np.zeros((1, n_items, k))])  # the short wording's answers carry none
    n = shape.steps * shape.batch
    personas = np.where(rng.random(n) < config.no_persona_share, -1, rng.integers(len(trained), size=n))
    which, items = rng.integers(2 * shape.wordings, size=n), rng.integers(n_items, size=n)
    if shape.short_share:
        which[rng.random(n) < shape.short_share] = 2 * shape.wordings  # the short wording, last
    dropout = rng.random(n) < shape.dropout_share
    cache: dict[tuple, np.ndarray] = {}
    texts, targets, labels = [], np.zeros((n, k)), []
    for j in range(n):
        country = None if personas[j] < 0 else trained[personas[j]]
        variant = wordings[which[j]]
        shown = drop_words(variant, rng) if dropout[j] else variant
        persona = None if country is None else format_persona(ICL_TEMPLATE, country)
        texts.append(render(instrument.items[items[j]], shown, persona))
        labels.append(tuple(option_labels(instrument, instrument.items[items[j]], variant)))
        key = (country, which[j])
        if key not in cache:
            cache[key] = answer_targets(config, gt.distributions[country or NO_PERSONA], noise[which[j] // 2],
                                        variant.order == "descending")
        targets[j] = cache[key][items[j]]
    record = {"trained_countries": trained, "heldout_countries": heldout,
              "training_wordings": [v.to_dict() for v in wordings], "ground_truth": gt.to_dict()}
    scores = np.array([gt.indices(c) for c in trained])
    standard = np.vstack([(scores - scores.mean(0)) / scores.std(0), np.zeros((1, scores.shape[1]))])
    return texts, targets, labels, record, standard[np.where(personas < 0, len(trained), personas)]


def word_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the training texts (so the option labels are single tokens, and
    words the training never showed, held-out country names among them, are [UNK])."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="</s>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _render_with(template_tokenizer, instrument):
    return lambda item, variant, persona: render_prompt(template_tokenizer, instrument, item, variant, persona)


def answer_loss(model, tokenizer, texts: list[str], targets: np.ndarray, labels: torch.Tensor,
                mean_weight: float, probe=None, profiles=None, profile_weight: float = 0.0,
                profile_layer: int = 1) -> torch.Tensor:
    """Mean loss of a few prompts: soft-target cross-entropy on the answer token (full-vocabulary
    softmax, so the probability also concentrates on the labels) plus ``mean_weight`` x the squared
    error of the expected answer over the labels, plus ``profile_weight`` x the squared error of
    ``probe`` reading the persona's profile ``profiles`` [n, D] from the answer position after layer
    ``profile_layer`` (training only)."""
    import torch

    enc = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    out = model.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                      output_hidden_states=bool(profile_weight))
    last = enc["attention_mask"].sum(1) - 1
    answer = out.last_hidden_state[torch.arange(len(last)), last]
    logp = torch.log_softmax(model.lm_head(answer), dim=-1).gather(1, labels)
    target = torch.as_tensor(targets, dtype=torch.float32)
    points = torch.arange(1, labels.shape[1] + 1, dtype=torch.float32)
    # The countries differ by a few tenths of a scale point per item, a weak signal in the
    # cross-entropy alone: a squared error on the expected answer (same optimum) weighs it.
    error = (torch.softmax(logp, dim=-1) - target) @ points
    loss = -(target * logp).sum(1).mean() + mean_weight * error.pow(2).mean()
    if profile_weight:
        read = probe(out.hidden_states[profile_layer][torch.arange(len(last)), last])
        loss = loss + profile_weight * (read - torch.as_tensor(profiles, dtype=torch.float32)).pow(2).mean()
    return loss


MICRO_BATCH = 16  # prompts per forward; a step's prompts are sorted by length so short ones pad little


def train(model, tokenizer, texts: list[str], targets: np.ndarray, label_ids: np.ndarray, shape: Size,
          profiles: np.ndarray | None = None) -> list[float]:
    """AdamW on ``answer_loss`` with a one-cycle schedule; returns the loss every 100 steps.
    ``profiles`` [N, D] (each prompt's persona profile, from ``training_set``) feeds the auxiliary probe."""
    import torch

    weight = shape.profile_weight if profiles is not None else 0.0
    probe = torch.nn.Linear(shape.hidden, profiles.shape[1]) if weight else None
    params = list(model.parameters()) + (list(probe.parameters()) if probe else [])
    opt = torch.optim.AdamW(params, lr=shape.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=shape.lr, total_steps=shape.steps, pct_start=0.1)
    labels, losses = torch.as_tensor(label_ids), []  # [N, K]: each prompt's option tokens
    lengths = np.array([len(t) for t in texts])
    model.train()
    for step in range(shape.steps):
        batch = np.arange(step * shape.batch, (step + 1) * shape.batch)
        batch = batch[np.argsort(lengths[batch], kind="stable")]
        opt.zero_grad()
        total = 0.0
        for chunk in np.array_split(batch, max(1, len(batch) // MICRO_BATCH)):
            loss = answer_loss(model, tokenizer, [texts[j] for j in chunk], targets[chunk], labels[chunk],
                               shape.mean_weight, probe, None if probe is None else profiles[chunk],
                               weight, shape.profile_layer) * (len(chunk) / len(batch))
            loss.backward()
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == shape.steps - 1:
            losses.append(total)
    model.eval()
    return losses


def build_testbed(config: BuildConfig, out) -> dict:
    """Train the testbed and write its folder (atomically); returns its record (testbed.json)."""
    import torch

    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _build(config, out, start)
    finally:
        torch.set_num_threads(threads)


def _build(config: BuildConfig, out, start: float) -> dict:
    import torch
    from tokenizers import Tokenizer, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    instrument = load_instrument("vsm2013")
    renderer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")))
    renderer.chat_template = CHAT_TEMPLATE  # renders the chat text; the real tokenizer is trained on it
    texts, targets, labels, record, profiles = training_set(config, instrument, _render_with(renderer, instrument), rng)
    # The dropout's word is left out of the vocabulary, so the model reads it as [UNK].
    tokenizer = word_tokenizer([t.replace(UNKNOWN_WORD, " ") for t in texts] + [" ".join(x) for x in sorted(set(labels))])
    label_ids = np.array([tokenizer.convert_tokens_to_ids(list(x)) for x in labels])
    shape = config.shape
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=shape.hidden, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, num_key_value_heads=shape.heads, intermediate_size=shape.intermediate,
        max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None, tie_word_embeddings=True, initializer_range=0.05))
    losses = train(model, tokenizer, texts, targets, label_ids, shape, profiles)
    record = {"testbed": dataclasses.asdict(config), "shape": dataclasses.asdict(shape),
              "kind": config.kind, "position_bias": config.position_bias if config.kind == "culture" else None,
              "wording_noise": config.wording_noise if config.kind == "culture" else None,
              "position_answers": list(POSITION_ANSWERS) if config.kind == "position" else None,
              "constant_answers": list(CONSTANT_ANSWERS) if config.kind == "constant" else None,
              "persona_template": ICL_TEMPLATE, "training_prompts": len(texts), "loss_every_100_steps": losses,
              "torch_threads": torch.get_num_threads(), "build_seconds": None, **record}
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        files = {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir()) if p.is_file()}
    record["build_seconds"] = round(time.perf_counter() - start, 1)
    files["testbed.json"] = (json.dumps(record, indent=1, sort_keys=True) + "\n").encode()
    write_folder_atomic(out, files)
    return record
