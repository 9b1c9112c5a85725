#!/usr/bin/env python3
"""Golden outputs of the speech adapter (REFERENCE.md §4) for tests/adapter.rs, from a PyTorch
reference written from the description of OSUM's modules (WeNet semantics, eval mode).

Setup:  python3 -m venv /tmp/venv-adapter && /tmp/venv-adapter/bin/pip install torch numpy safetensors
Run:    /tmp/venv-adapter/bin/python scripts/goldens/make_adapter_golden.py
Output: tests/data/adapter/{released,conv2d}.safetensors (seeded random weights, OSUM names; the
        released file also has the `embed.pos_enc.pe` buffer, as the real checkpoint does) and
        tests/data/adapter/{released,conv2d}.json (config, a right-padded batch with garbage in the
        padding, per-item valid output rows, BOS/EOS rows).
"""
import json
import math
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "adapter")


def positions(t, d):
    # WeNet PositionalEncoding: f32 buffer, sin at even channels, cos at odd.
    pe = torch.zeros(t, d)
    pos = torch.arange(0, t, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * -(math.log(10000.0) / d))
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    return pe


def lin(w, x, name):
    return F.linear(x, w[name + ".weight"], w[name + ".bias"])


def ln(w, x, name):
    return F.layer_norm(x, x.shape[-1:], w[name + ".weight"], w[name + ".bias"], eps=1e-5)


def transformer_tail(w, c, x, lens):
    """x·√d + pe, pre-LN blocks with a key padding mask, after_norm, speech_llama_proj."""
    b, t, d = x.shape
    h_n, dk = c["heads"], d // c["heads"]
    x = x * math.sqrt(d) + positions(t, d)
    keep = torch.arange(t)[None, :] < torch.tensor(lens)[:, None]  # [B, T]
    hidden = keep[:, None, None, :].logical_not()  # [B, 1, 1, T]
    for i in range(c["layers"]):
        p = f"speech_transformer.encoders.{i}"
        y = ln(w, x, p + ".norm1")
        q, k, v = (lin(w, y, f"{p}.self_attn.linear_{n}").view(b, t, h_n, dk).transpose(1, 2) for n in "qkv")
        scores = (q @ k.transpose(-2, -1) / math.sqrt(dk)).masked_fill(hidden, -float("inf"))
        att = torch.softmax(scores, dim=-1).masked_fill(hidden, 0.0)
        o = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + lin(w, o, p + ".self_attn.linear_out")
        y = ln(w, x, p + ".norm2")
        x = x + lin(w, torch.relu(lin(w, y, p + ".feed_forward.w_1")), p + ".feed_forward.w_2")
    return lin(w, ln(w, x, "speech_transformer.after_norm"), "speech_llama_proj")


def released(w, c, x, lens):
    h = x.transpose(1, 2)
    for idx, stride in ((1, 1), (4, 2), (7, 2)):  # ConstantPad1d((2, 0)) → Conv1d(k3) → GELU
        h = F.gelu(F.conv1d(F.pad(h, (2, 0)), w[f"down_sample_2.conv.{idx}.weight"],
                            w[f"down_sample_2.conv.{idx}.bias"], stride=stride))
    h = ln(w, lin(w, h.transpose(1, 2), "speech_transformer.embed.out.0"), "speech_transformer.embed.out.1")
    mask = torch.arange(x.shape[1])[None, :] < torch.tensor(lens)[:, None]
    out_lens = mask[:, 0::2][:, 0::2].sum(-1).tolist()
    return transformer_tail(w, c, h, out_lens), out_lens


def conv2d(w, c, x, lens):
    e = "speech_transformer.embed"
    h = torch.relu(F.conv2d(x.unsqueeze(1), w[e + ".conv.0.weight"], w[e + ".conv.0.bias"], stride=2))
    h = torch.relu(F.conv2d(h, w[e + ".conv.2.weight"], w[e + ".conv.2.bias"], stride=2))
    b, ch, t, f = h.shape
    h = lin(w, h.transpose(1, 2).reshape(b, t, ch * f), e + ".out.0")
    mask = torch.arange(x.shape[1])[None, :] < torch.tensor(lens)[:, None]
    out_lens = mask[:, 2::2][:, 2::2].sum(-1).tolist()
    return transformer_tail(w, c, h, out_lens), out_lens


def random_weights(c, gen):
    d, shapes = c["dim"], {}
    if c["variant"] == "released":
        for idx, cin in ((1, c["enc_dim"]), (4, d), (7, d)):
            shapes[f"down_sample_2.conv.{idx}"] = [d, cin, 3]
        shapes["speech_transformer.embed.out.0"] = [d, d]
        shapes["speech_transformer.embed.out.1"] = [d]
    else:
        ch, fb = c["conv_channels"], ((c["enc_dim"] - 1) // 2 - 1) // 2
        shapes["speech_transformer.embed.conv.0"] = [ch, 1, 3, 3]
        shapes["speech_transformer.embed.conv.2"] = [ch, ch, 3, 3]
        shapes["speech_transformer.embed.out.0"] = [d, ch * fb]
    for i in range(c["layers"]):
        p = f"speech_transformer.encoders.{i}"
        for n in "q", "k", "v", "out":
            shapes[f"{p}.self_attn.linear_{n}"] = [d, d]
        shapes[p + ".feed_forward.w_1"], shapes[p + ".feed_forward.w_2"] = [c["ffn"], d], [d, c["ffn"]]
        shapes[p + ".norm1"], shapes[p + ".norm2"] = [d], [d]
    shapes["speech_transformer.after_norm"] = [d]
    shapes["speech_llama_proj"] = [c["llm_dim"], d]
    w = {}
    for name, s in shapes.items():
        if len(s) == 1:  # LayerNorm: scales near 1, small shifts (not 1/0, to catch swaps)
            w[name + ".weight"] = 1 + 0.2 * torch.randn(s, generator=gen)
            w[name + ".bias"] = 0.2 * torch.randn(s, generator=gen)
        else:
            bound = 1 / math.sqrt(math.prod(s[1:]))
            w[name + ".weight"] = (torch.rand(s, generator=gen) * 2 - 1) * bound
            w[name + ".bias"] = (torch.rand([s[0]], generator=gen) * 2 - 1) * bound
    w["speech_token_emded.weight"] = torch.randn([c["n_speech_tokens"], c["llm_dim"]], generator=gen)
    return w


def make(name, c, lens, forward, seed, with_pe):
    gen = torch.Generator().manual_seed(seed)
    w = random_weights(c, gen)
    if with_pe:  # the buffer the released checkpoints carry (the Rust side uses it when present)
        w["speech_transformer.embed.pos_enc.pe"] = positions(c["max_positions"], c["dim"]).unsqueeze(0)
    x = torch.randn([len(lens), max(lens), c["enc_dim"]], generator=gen)  # padding holds noise too
    with torch.no_grad():
        y, out_lens = forward(w, c, x, lens)
    os.makedirs(OUT, exist_ok=True)
    save_file({k: v.contiguous() for k, v in w.items()}, os.path.join(OUT, name + ".safetensors"))
    n = c["n_speech_tokens"]
    golden = {
        "config": c,
        "input_shape": list(x.shape),
        "input": x.flatten().tolist(),
        "lengths": lens,
        "out_lengths": out_lens,
        "outputs": [y[i, :l].flatten().tolist() for i, l in enumerate(out_lens)],
        "bos": w["speech_token_emded.weight"][n - 2].tolist(),
        "eos": w["speech_token_emded.weight"][n - 1].tolist(),
    }
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(golden, f)
    print(name, "out lengths", out_lens, "output shape", list(y.shape))


if __name__ == "__main__":
    torch.set_default_dtype(torch.float32)
    base = dict(enc_dim=16, dim=16, heads=4, ffn=24, layers=2, llm_dim=12,
                max_positions=64, n_speech_tokens=6)
    make("released", dict(base, variant="released"), [13, 9, 1], released, 1, True)
    make("conv2d", dict(base, variant="conv2d_paper", conv_channels=6), [23, 15, 9], conv2d, 2, False)
