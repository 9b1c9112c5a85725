"""Golden for the real SmolLM2-135M-Instruct GGUF (DATA.md): prompt ids and next-token logits.

Reference: HF transformers 4.46.3 (its GGUF loader dequantizes Q4_1/Q8_0 to float32) on torch
1.13 (Debian python3-torch). Environment used:
  python3 -m venv --system-site-packages /tmp/venv && /tmp/venv/bin/pip install \
      transformers==4.46.3 "numpy<2" gguf
  /tmp/venv/bin/python scripts/goldens/smollm2_logits.py models/smollm2-135m-instruct
Writes scripts/goldens/smollm2_logits.json (read by tests/smollm2.rs).
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

d = sys.argv[1] if len(sys.argv) > 1 else "models/smollm2-135m-instruct"
f = "SmolLM2-135M-Instruct.Q4_1.gguf"
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
# The file has no `output.weight`: llama.cpp then uses the token embedding as the LM head (tied, as
# SmolLM2 is trained). transformers 4.46's GGUF loader leaves lm_head randomly initialized in that
# case, so tie it explicitly.
model.lm_head.weight = model.model.embed_tokens.weight
model.eval()
out = {"reference": "transformers 4.46.3, torch " + torch.__version__, "cases": []}
for text in ["The capital of France is", "Paris is the capital of France. Rome is the capital of"]:
    ids = tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1]
    top = torch.topk(logits, 10)
    out["cases"].append({
        "text": text,
        "ids": ids,
        "top_ids": top.indices.tolist(),
        "top_logits": [round(float(v), 5) for v in top.values],
        "top_tokens": [tok.decode([i]) for i in top.indices.tolist()],
        "logits_first_16": [round(float(v), 5) for v in logits[:16]],
    })
    with torch.no_grad():
        gen = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, synced_gpus=False)
    out["cases"][-1]["greedy_8"] = gen[0, len(ids):].tolist()
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smollm2_logits.json")
with open(path, "w") as fh:
    json.dump(out, fh, indent=1, ensure_ascii=False)
print(json.dumps(out["cases"][0]["top_tokens"][:3]), out["cases"][0]["top_logits"][:3])
