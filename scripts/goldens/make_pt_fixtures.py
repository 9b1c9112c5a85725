#!/usr/bin/env python3
"""Write the PyTorch checkpoint fixtures of tests/pytorch.rs into tests/data/pt/.

Real `torch.save` writes every checkpoint (the Rust reader is checked against the format as torch
emits it, not against our idea of it), and real PEFT names the LoRA keys:

- osum_tiny.pt: {"model": state_dict, "epoch": 7, "lr": 5e-4}, the state dict in the OSUM layout
  (REFERENCE.md §3, §4, §7): WeNet-named encoder tensors (f32), adapter tensors (f16, bf16), and
  a tiny Llama (attention_bias=True, tied embeddings) wrapped by PEFT LoRA (r 2, α 4, targets
  q k v o gate down), cast to bf16, under `llama_model.`. Layer 0 keeps PEFT's current names
  (`…q_proj.base_layer.weight`); layer 1 is renamed to the older PEFT layout without
  `base_layer` (older PEFT is not installed here: this rename is the only synthetic part).
  `module.encoder.after_norm.weight` is the same tensor as `encoder.after_norm.weight` (a
  duplicated alias), and the tied lm_head shares the embedding's storage.
- views.pt: a plain state dict (an nn.Linear's, so it carries `_metadata`) plus views: a
  non-zero storage offset, two different views of one storage, a transposed (non-contiguous)
  view, a 0-dim int64, an empty tensor, an nn.Parameter, and f32/f16/bf16/int64 tensors.
- pt_expected.json: for every tensor of both files, dtype, shape, stride, storage offset and
  the values (floats widen exactly to f64, so comparisons are exact).
- malicious_system.pt / malicious_eval.pt: zips laid out like a torch checkpoint whose data.pkl
  is a plain-Python pickle that calls posix.system (protocol 2, GLOBAL) or builtins.eval
  (protocol 4, STACK_GLOBAL). The reader must refuse them, naming the global.

Environment (2026-11-25): the PyTorch CPU index (download.pytorch.org) was unreachable; torch
came from PyPI: `python3 -m venv /tmp/venv-pytorch && /tmp/venv-pytorch/bin/pip install torch
numpy peft transformers` (torch 2.15.0, recorded in pt_expected.json with the peft and
transformers versions).

Run: /tmp/venv-pytorch/bin/python scripts/goldens/make_pt_fixtures.py
"""

import collections
import json
import os
import pickle
import zipfile
from pathlib import Path

import peft
import torch
import transformers

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "pt"


def osum_state_dict():
    g = torch.Generator().manual_seed(1234)

    def randn(*shape, dtype=torch.float32):
        return torch.randn(*shape, generator=g).to(dtype)

    sd = collections.OrderedDict()
    # Encoder (WeNet names), f32. The fused q/k rows share one storage at different offsets.
    fused = randn(8, 3)
    sd["encoder.encoders.0.self_attn.linear_q.weight"] = fused[:4]
    sd["encoder.encoders.0.self_attn.linear_k.weight"] = fused[4:]
    sd["encoder.encoders.0.self_attn.linear_q.bias"] = randn(4)
    after_norm = randn(3)
    sd["encoder.after_norm.weight"] = after_norm
    sd["module.encoder.after_norm.weight"] = after_norm
    # Adapter: f16 and bf16.
    sd["down_sample_2.conv.1.weight"] = randn(2, 2, 3, dtype=torch.bfloat16)
    sd["down_sample_2.conv.1.bias"] = randn(2, dtype=torch.bfloat16)
    sd["speech_llama_proj.weight"] = randn(8, 3, dtype=torch.float16)
    sd["speech_token_emded.weight"] = randn(5, 8, dtype=torch.float16)

    # LLM: a tiny Llama with PEFT LoRA, bf16.
    cfg = transformers.LlamaConfig(
        vocab_size=11,
        hidden_size=8,
        intermediate_size=12,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        attention_bias=True,
        tie_word_embeddings=True,
    )
    torch.manual_seed(99)
    llm = transformers.LlamaForCausalLM(cfg)
    lcfg = peft.LoraConfig(
        r=2,
        lora_alpha=4,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj"],
    )
    llm = peft.get_peft_model(llm, lcfg)
    with torch.no_grad():
        for p in llm.parameters():  # LoRA B starts at zero; make every value distinct
            p.copy_(torch.randn(p.shape, generator=g))
    llm = llm.to(torch.bfloat16)
    for k, v in llm.state_dict().items():
        if ".layers.1." in k:
            k = k.replace(".base_layer.", ".")  # older PEFT layout (see the header)
        sd["llama_model." + k] = v
    return sd


def views_state_dict():
    g = torch.Generator().manual_seed(5)
    lin = torch.nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(2, 3, generator=g))
        lin.bias.copy_(torch.randn(2, generator=g))
    sd = lin.state_dict()  # an OrderedDict with `_metadata` (pickled through BUILD)
    base = torch.randn(5, 4, generator=g)
    sd["offset_view"] = base[2:4]  # storage offset 8
    sd["shared_a"] = base[0]
    sd["shared_b"] = base[1, 1:3]
    sd["transposed"] = base[:2, :3].t()  # strides (1, 4): not contiguous
    sd["half"] = torch.randn(2, 3, generator=g).half()
    sd["bf16"] = torch.randn(7, generator=g).bfloat16()
    sd["ids"] = torch.tensor([3, -1, 1 << 40], dtype=torch.int64)
    sd["step"] = torch.tensor(12345, dtype=torch.int64)
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = torch.nn.Parameter(torch.randn(3, generator=g))
    return sd


def describe(t):
    t = t.detach()
    ints = t.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)
    values = t.flatten().tolist() if ints else t.float().flatten().tolist()
    return {
        "dtype": str(t.dtype).removeprefix("torch."),
        "shape": list(t.shape),
        "stride": list(t.stride()),
        "storage_offset": t.storage_offset(),
        "contiguous": t.is_contiguous(),
        "values": values,
    }


def dump_json(d):
    """JSON with one tensor per line: compact, yet diffs show which tensor changed."""
    lines = []
    for i, (k, v) in enumerate(d.items()):
        sep = "," if i + 1 < len(d) else ""
        if isinstance(v, dict):
            inner = [f"  {json.dumps(n)}: {json.dumps(t, separators=(',', ':'))}" for n, t in v.items()]
            lines.append(f" {json.dumps(k)}: {{\n" + ",\n".join(inner) + f"\n }}{sep}")
        else:
            lines.append(f" {json.dumps(k)}: {json.dumps(v)}{sep}")
    return "{\n" + "\n".join(lines) + "\n}\n"


class Evil:
    """Unpickling this with Python runs a shell command: what a hostile checkpoint does."""

    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def write_malicious(name, payload):
    # Laid out like torch's zip: <folder>/data.pkl, <folder>/version; entries stored.
    with zipfile.ZipFile(OUT / name, "w", zipfile.ZIP_STORED) as z:
        folder = name.removesuffix(".pt")
        for entry, data in [("data.pkl", payload), ("byteorder", "little"), ("version", "3\n")]:
            # A fixed date keeps the file byte-identical across runs.
            z.writestr(zipfile.ZipInfo(f"{folder}/{entry}", date_time=(1980, 1, 1, 0, 0, 0)), data)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    osum = osum_state_dict()
    torch.save({"model": osum, "epoch": 7, "lr": 5e-4}, OUT / "osum_tiny.pt")
    views = views_state_dict()
    torch.save(views, OUT / "views.pt")

    # Check that torch reads back what we describe (weights_only: torch's own safe loader).
    back = torch.load(OUT / "osum_tiny.pt", weights_only=True)["model"]
    assert all(torch.equal(back[k], v) for k, v in osum.items())

    expected = {
        "torch": torch.__version__,
        "peft": peft.__version__,
        "transformers": transformers.__version__,
        "osum_tiny.pt": {k: describe(v) for k, v in osum.items()},
        "views.pt": {k: describe(v) for k, v in views.items()},
    }
    (OUT / "pt_expected.json").write_text(dump_json(expected))

    write_malicious("malicious_system.pt", pickle.dumps(Evil(os.system, "echo pwned"), protocol=2))
    write_malicious("malicious_eval.pt", pickle.dumps(Evil(eval, "1+1"), protocol=4))
    for p in sorted(OUT.iterdir()):
        print(f"{p.stat().st_size:8d}  {p.name}")


if __name__ == "__main__":
    main()
