"""Persona probe of the culture testbed: why the persona was ignored (docs/testbed.md, "Why the
persona is ignored"). Trains the culture model with the build's own training set and loss
(`cultbench.testbed.build`, the default size with the overrides given), then reads its
order-balanced expected answers for 12 trained countries x 24 items on 2 of its own training
wordings (both orders; the short wording alone with short=1) and prints the item correlation, the
country correlation and slope in item means (each country's deviation from the 12 countries' mean
against the ground truth's; the planted position bias caps the slope at 1 - p = 0.85), the index
slope and correlation, and the L1 of the 12 countries' indices (content-free about 110).

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python docs/testbed/persona_probe.py KEY=VALUE ...

KEY: a field of `build.Size` (hidden, layers, steps, batch, lr, mean_weight, wordings,
short_share), np (share of prompts without a persona), short=1 (train on the short wording alone),
shift=S (add an item-independent shift, SD S scale points, per country: the indices do not change),
then=STEPS:LR:SHORT_SHARE:BATCH (a second phase on the 120 wordings with that share of short prompts,
from the first phase's weights, with its own one-cycle schedule; evaluated after each phase; several
phases separated by commas run in turn, each on the pool wordings even after short=1),
arch=gpt2 (a GPT-2 body, learned absolute position embeddings, in place of the Llama one with RoPE;
the same width, depth, heads, MLP width, tied embeddings and initializer range, no dropout).
The grouped batches (group, deviation_weight) and the next-token loss (text_weight) of the table
were measured at commit 57fb85e, which had those fields.
"""
import sys, time, dataclasses, numpy as np, torch
from cultbench.testbed import build as B
from cultbench.testbed.groundtruth import ground_truth, NO_PERSONA
from cultbench.instruments import load_instrument
from aligners.baselines import ICL_TEMPLATE, format_persona
from cultbench.prompts import option_labels, PromptVariant
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast, LlamaConfig, LlamaForCausalLM, GPT2Config, GPT2LMHeadModel
torch.set_num_threads(1)
kv = dict(a.split("=") for a in sys.argv[1:])
base = B.SIZES["default"]
unknown = [k for k in kv if not hasattr(base, k) and k not in ("np", "short", "shift", "then", "arch")]
if unknown:
    sys.exit(f"unknown keys: {unknown}")
if kv.get("arch", "llama") not in ("llama", "gpt2"):
    sys.exit(f"unknown arch {kv['arch']!r}: llama or gpt2")
over = {k: type(getattr(base, k))(v) for k, v in kv.items() if hasattr(base, k)}
shape = dataclasses.replace(base, **over)
if "intermediate" not in kv: shape = dataclasses.replace(shape, intermediate=2 * shape.hidden)
B.SIZES["x"] = shape
if kv.get("short"):
    _tw = B.training_wordings
    def short_wordings(inst, n, seed):
        v = PromptVariant(name="short", split="train", system=None, template="{question}", scale_line="{option} = {label}", order="ascending", frame="short", wording="short", labels="numbers")
        return [v, v]
    B.training_wordings = short_wordings
if kv.get("shift"):
    import cultbench.testbed.groundtruth as G
    _gt = G.ground_truth
    def shifted(inst, *a, **k):
        g = _gt(inst, *a, **k)
        r = np.random.default_rng(7)
        means = {n: (m + (float(kv["shift"]) * r.standard_normal() if n != NO_PERSONA else 0)) for n, m in g.means.items()}
        means = {n: np.clip(m, 1.05, 4.95) for n, m in means.items()}
        dists = {n: np.stack([G.distribution_for_mean(x) for x in m]) for n, m in means.items()}
        return dataclasses.replace(g, means=means, distributions=dists)
    B.ground_truth = shifted
cfg = B.BuildConfig(kind="culture", size="x", no_persona_share=float(kv.get("np", 0.1)))
print(kv, flush=True)
t0 = time.process_time()
torch.manual_seed(0); rng = np.random.default_rng(0)
inst = load_instrument("vsm2013")
renderer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")))
renderer.chat_template = B.CHAT_TEMPLATE
render = B._render_with(renderer, inst)
texts, targets, labels, record, _ = B.training_set(cfg, inst, render, rng)
phases = []  # later phases STEPS:LR:SHORT_SHARE:BATCH on the pool, each from the previous one's weights
if kv.get("then"):
    if kv.get("short"):
        B.training_wordings = _tw
    for k, spec in enumerate(kv["then"].split(",")):
        steps2, lr2, share2, batch2 = spec.split(":")
        shape2 = dataclasses.replace(shape, steps=int(steps2), lr=float(lr2), short_share=float(share2), batch=int(batch2))
        B.SIZES[f"y{k}"] = shape2
        texts2, targets2, labels2, record, _ = B.training_set(dataclasses.replace(cfg, size=f"y{k}"), inst, render, np.random.default_rng(1 + k))
        phases.append((shape2, texts2, targets2, labels2))
later_texts = [t for p in phases for t in p[1]]
later_labels = [x for p in phases for x in p[3]]
tok = B.word_tokenizer(texts + later_texts + [" ".join(x) for x in sorted(set(labels + later_labels))])
label_ids = np.array([tok.convert_tokens_to_ids(list(x)) for x in labels])


class GPT2Probe(GPT2LMHeadModel):
    @property
    def model(self):  # the build's loss reads the body as `model.model` (Llama's name); GPT-2's is `transformer`
        return self.transformer


if kv.get("arch", "llama") == "gpt2":
    model = GPT2Probe(GPT2Config(vocab_size=len(tok), n_embd=shape.hidden, n_layer=shape.layers, n_head=shape.heads,
        n_inner=shape.intermediate, n_positions=512, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None,
        tie_word_embeddings=True, initializer_range=0.05))
else:
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=shape.hidden, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, num_key_value_heads=shape.heads, intermediate_size=shape.intermediate,
        max_position_embeddings=512, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        bos_token_id=None, tie_word_embeddings=True, initializer_range=0.05))
gt = B.ground_truth(inst); trained = record["trained_countries"][:12]
wl = [PromptVariant(**v) for v in record["training_wordings"][:4]]
pts = np.arange(1, 6)
def evaluate(tag):
    model.eval()
    pred = np.zeros((len(trained), 24, len(wl)))
    with torch.no_grad():
        for ci, c in enumerate(trained):
            for wi, v in enumerate(wl):
                ts = [render(it, v, format_persona(ICL_TEMPLATE, c)) for it in inst.items]
                lab = np.array([tok.convert_tokens_to_ids(list(option_labels(inst, it, v))) for it in inst.items])
                enc = tok(ts, add_special_tokens=False, padding=True, return_tensors="pt")
                h = model.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
                last = enc["attention_mask"].sum(1) - 1
                lp = torch.log_softmax(model.lm_head(h[torch.arange(24), last]), -1).gather(1, torch.as_tensor(lab)).softmax(-1).numpy()
                e = lp @ pts
                if v.order == "descending": e = 6 - e
                pred[ci, :, wi] = e
    bal = pred.mean(2)
    truth = np.array([gt.means[c] for c in trained])
    dev_p = bal - bal.mean(0); dev_t = truth - truth.mean(0)
    ind_p = np.array([inst.indices(b, inst.constants(None)) for b in bal]); ind_t = np.array([gt.profiles[c].vector(inst.dimension_ids) for c in trained])
    dip = ind_p - ind_p.mean(0); dit = ind_t - ind_t.mean(0)
    print(tag, "index slope", round((dip * dit).sum() / (dit ** 2).sum(), 3), "index corr", np.corrcoef(dip.ravel(), dit.ravel())[0, 1].round(3))
    print(tag, "cpu", round(time.process_time() - t0), "item corr", np.corrcoef(bal.mean(0), truth.mean(0))[0, 1].round(3),
          "country corr", np.corrcoef(dev_p.ravel(), dev_t.ravel())[0, 1].round(3), "slope", round((dev_p * dev_t).sum() / (dev_t ** 2).sum(), 3),
          "L1", np.abs(ind_p - ind_t).sum(1).mean().round(1), flush=True)
    model.train()
losses = B.train(model, tok, texts, targets, label_ids, shape)
for k, (shape2, texts2, targets2, labels2) in enumerate(phases):
    evaluate(f"phase {k + 1}")
    losses += B.train(model, tok, texts2, targets2, np.array([tok.convert_tokens_to_ids(list(x)) for x in labels2]), shape2)
print("losses", [round(x, 2) for x in losses[::max(1, len(losses) // 8)]])
evaluate("final")
