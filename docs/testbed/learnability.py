"""Learnability probe of the culture testbed (the figures in docs/testbed.md, "Tried and measured").

Trains the culture model with the build's own training set and loss (`cultbench.testbed.build`),
then reads its order-balanced expected answers for 12 trained countries x 24 items on 2 of its own
training wordings (both orders) and reports: the item correlation (country-averaged answers
against the ground-truth item means), the country correlation and slope (each country's deviation
from the countries' mean, against the ground truth's), and the L1 of the countries' indices.

    PYTHONPATH=$PWD python docs/testbed/learnability.py STEPS BATCH LR MEAN_WEIGHT HIDDEN [LAYERS]

Variants measured by editing two words of the LlamaConfig line: tie_word_embeddings=False
(untied embeddings) and initializer_range=0.15.
"""
import sys, time, dataclasses, numpy as np, torch
from cultbench.testbed import build as B
from cultbench.testbed.groundtruth import ground_truth, NO_PERSONA
from cultbench.instruments import load_instrument
from aligners.baselines import ICL_TEMPLATE, format_persona
from cultbench.prompts import option_labels
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast, LlamaConfig, LlamaForCausalLM
torch.set_num_threads(1)
steps, batch, lr, mw, hidden = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
B.SIZES["x"] = B.Size(hidden=hidden, layers=int(sys.argv[6]) if len(sys.argv)>6 else 2, heads=4, intermediate=2*hidden, wordings=120, steps=steps, batch=batch, lr=lr, mean_weight=mw)
cfg = B.BuildConfig(kind="culture", size="x")
t0=time.process_time()
torch.manual_seed(0); rng=np.random.default_rng(0)
inst=load_instrument("vsm2013")
renderer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")))
renderer.chat_template = B.CHAT_TEMPLATE
render=B._render_with(renderer, inst)
texts, targets, labels, record = B.training_set(cfg, inst, render, rng)
tok = B.word_tokenizer(texts + [" ".join(x) for x in sorted(set(labels))])
label_ids = np.array([tok.convert_tokens_to_ids(list(x)) for x in labels])
shape=cfg.shape
model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=shape.hidden, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, num_key_value_heads=shape.heads, intermediate_size=shape.intermediate,
        max_position_embeddings=512, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        bos_token_id=None, tie_word_embeddings=True, initializer_range=0.05))
losses=B.train(model, tok, texts, targets, label_ids, shape)
print("train cpu", round(time.process_time()-t0,1), "losses", [round(x,3) for x in losses[::max(1,len(losses)//6)]], flush=True)
# evaluate: 12 trained countries x 24 items x 2 wordings x 2 orders, value-space expected answer
gt=ground_truth(inst); trained=record["trained_countries"][:12]
from cultbench.prompts import PromptVariant
wl=[PromptVariant(**v) for v in record["training_wordings"][:4]]
pts=np.arange(1,6)
pred=np.zeros((len(trained),24,4)); 
with torch.no_grad():
  for ci,c in enumerate(trained):
    for wi,v in enumerate(wl):
        ts=[render(it, v, format_persona(ICL_TEMPLATE,c)) for it in inst.items]
        lab=np.array([tok.convert_tokens_to_ids(list(option_labels(inst,it,v))) for it in inst.items])
        enc=tok(ts, add_special_tokens=False, padding=True, return_tensors="pt")
        h=model.model(input_ids=enc["input_ids"],attention_mask=enc["attention_mask"]).last_hidden_state
        last=enc["attention_mask"].sum(1)-1
        lp=torch.log_softmax(model.lm_head(h[torch.arange(24),last]),-1).gather(1,torch.as_tensor(lab)).softmax(-1).numpy()
        e=lp@pts
        if v.order=="descending": e=6-e
        pred[ci,:,wi]=e
bal=pred.mean(2)  # order-balanced
truth=np.array([gt.means[c] for c in trained])
m0=gt.means[NO_PERSONA]
print("item corr (mean over countries of bal vs truth)", np.corrcoef(bal.mean(0), truth.mean(0))[0,1].round(3))
dev_p=bal-bal.mean(0); dev_t=truth-truth.mean(0)
print("country corr", np.corrcoef(dev_p.ravel(), dev_t.ravel())[0,1].round(3), "slope", (dev_p*dev_t).sum()/(dev_t**2).sum())
ind_p=np.array([inst.indices(b, inst.constants(None)) for b in bal]); ind_t=np.array([gt.profiles[c].vector(inst.dimension_ids) for c in trained])
print("L1 train wordings", np.abs(ind_p-ind_t).sum(1).mean().round(1), "total cpu", round(time.process_time()-t0,1))
