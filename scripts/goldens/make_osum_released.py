#!/usr/bin/env python3
"""A tiny released-style OSUM-Pangu checkpoint and its reference outputs, for tests/osum_released.rs.

Writes tests/data/osum_released/:
- infer.pt: written by real `torch.save`, a plain state dict in the exact key layout of the released
  OSUM / OSUM-Pangu `infer.pt` (REFERENCE.md §3, §4, §7), bf16 like the release:
  * `encoder.…`: a Whisper encoder under WeNet names (d 64, 2 blocks, 2 heads, FFN 128, 80 mels,
    `embed.pos_enc.pe` [1, 1500, 64] with all sines then all cosines; linear_k has no bias);
  * the released adapter (`down_sample_2.conv.{1,4,7}`, `speech_transformer.…` with its
    `embed.pos_enc.pe` buffer, `speech_llama_proj`, `speech_token_emded` [6, 64]);
  * `llama_model.base_model.model.…`: an openPangu-shaped Llama (q, k, v and o biases, GQA 4/2,
    head_dim 16, vocab 1000 = the committed SentencePiece model's) wrapped by real PEFT LoRA (r 4,
    α 32, targets q k v o gate down; PEFT's `base_layer` names), every weight random (B nonzero);
  * the tensors the released model builds but does not use at inference: `ln_speech`,
    `speaker_head`, and a per-layer `self_attn.rotary_emb.inv_freq` (f32, as openPangu stores).
- llm/config.json: the LLM's HF config (`PanguEmbedded`, as openPangu's release folder has). The
  test pairs it with tests/data/spm/unigram.model as tokenizer.model.
- preset.json: the preset of this model (paths are replaced by the test).
- golden.json: a random log-mel input [1, 80, 100] and, from a PyTorch reference in float32 on the
  bf16 weights, (1) the speech embeddings [1, 15, 64] (speech BOS, 13 adapter rows, speech EOS),
  (2) the LLM's last-position logits for `embed(prefix) ‖ speech ‖ embed(suffix)` with LoRA
  unmerged (PEFT's forward), and (3) 6 greedy tokens from the same input (transformers'
  `generate`, no repetition penalty).

The reference: the Whisper encoder is re-implemented below from REFERENCE.md §3 (WeNet forward:
conv → GELU → conv stride 2 → GELU, + positions, pre-LN blocks, after_norm); the adapter is the one of
scripts/goldens/make_adapter_golden.py (imported); the LLM is transformers' LlamaForCausalLM with
attention_bias=True (the same computation as openPangu, REFERENCE.md §5) under peft.

Environment: /tmp/venv-pytorch (torch 2.15.0, transformers 5.24.0, peft 0.21.2; see
make_pt_fixtures.py). Run from the repository root:
  /tmp/venv-pytorch/bin/python scripts/goldens/make_osum_released.py
"""

import collections
import json
import math
import os
import sys
from pathlib import Path

import peft
import torch
import torch.nn.functional as F
import transformers

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_adapter_golden as ag  # noqa: E402  (the adapter reference)

OUT = HERE.parents[1] / "tests" / "data" / "osum_released"

ENC = dict(n_mels=80, d_model=64, layers=2, heads=2, ffn=128, positions=1500)
ADAPTER = dict(variant="released", enc_dim=64, dim=64, heads=2, ffn=96, layers=1, llm_dim=64,
               max_positions=64, n_speech_tokens=6, conv_channels=None, norm_eps=1e-5)
LLM = dict(vocab_size=1000, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
           num_attention_heads=4, num_key_value_heads=2, head_dim=16, rope_theta=1.6e7,
           rms_norm_eps=1e-5, max_position_embeddings=256, bos_token_id=1, eos_token_id=2)
LORA = dict(rank=4, alpha=32.0, targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj"])
FRAMES = 100
PREFIX = [1, 5, 17, 42, 311]
SUFFIX = [7, 9, 123]
GREEDY = 6


def whisper_positions(t, d):
    inc = math.log(10000) / (d // 2 - 1)
    inv = torch.exp(-inc * torch.arange(d // 2, dtype=torch.float32))
    ang = torch.arange(t, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)


def encoder_weights(g):
    d, f, m = ENC["d_model"], ENC["ffn"], ENC["n_mels"]
    w = collections.OrderedDict()

    def uni(*shape, fan_in):
        b = 1 / math.sqrt(fan_in)
        return (torch.rand(*shape, generator=g) * 2 - 1) * b

    w["encoder.embed.conv.0.weight"] = uni(d, m, 3, fan_in=m * 3)
    w["encoder.embed.conv.0.bias"] = uni(d, fan_in=m * 3)
    w["encoder.embed.conv.2.weight"] = uni(d, d, 3, fan_in=d * 3)
    w["encoder.embed.conv.2.bias"] = uni(d, fan_in=d * 3)
    w["encoder.embed.pos_enc.pe"] = whisper_positions(ENC["positions"], d)[None]
    for i in range(ENC["layers"]):
        p = f"encoder.encoders.{i}"
        for n in "q", "k", "v", "out":
            w[f"{p}.self_attn.linear_{n}.weight"] = uni(d, d, fan_in=d)
            if n != "k":  # Whisper's key projection has no bias
                w[f"{p}.self_attn.linear_{n}.bias"] = uni(d, fan_in=d)
        w[f"{p}.feed_forward.w_1.weight"] = uni(f, d, fan_in=d)
        w[f"{p}.feed_forward.w_1.bias"] = uni(f, fan_in=d)
        w[f"{p}.feed_forward.w_2.weight"] = uni(d, f, fan_in=f)
        w[f"{p}.feed_forward.w_2.bias"] = uni(d, fan_in=f)
        for n in "norm1", "norm2":
            w[f"{p}.{n}.weight"] = 1 + 0.2 * torch.randn(d, generator=g)
            w[f"{p}.{n}.bias"] = 0.2 * torch.randn(d, generator=g)
    w["encoder.after_norm.weight"] = 1 + 0.2 * torch.randn(d, generator=g)
    w["encoder.after_norm.bias"] = 0.2 * torch.randn(d, generator=g)
    return w


def encoder_forward(w, mel):
    """Whisper's encoder (REFERENCE.md §3) on mel [1, 80, T], float32."""
    d, h = ENC["d_model"], ENC["heads"]
    x = F.gelu(F.conv1d(mel, w["encoder.embed.conv.0.weight"], w["encoder.embed.conv.0.bias"], padding=1))
    x = F.gelu(F.conv1d(x, w["encoder.embed.conv.2.weight"], w["encoder.embed.conv.2.bias"], stride=2, padding=1))
    x = x.transpose(1, 2)
    b, t, _ = x.shape
    x = x + w["encoder.embed.pos_enc.pe"][0, :t]

    def ln(y, n):
        return F.layer_norm(y, (d,), w[n + ".weight"], w[n + ".bias"], eps=1e-5)

    def lin(y, n):
        return F.linear(y, w[n + ".weight"], w.get(n + ".bias"))

    for i in range(ENC["layers"]):
        p = f"encoder.encoders.{i}"
        y = ln(x, p + ".norm1")
        q, k, v = (lin(y, f"{p}.self_attn.linear_{n}").view(b, t, h, d // h).transpose(1, 2) for n in "qkv")
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // h), dim=-1)
        x = x + lin((att @ v).transpose(1, 2).reshape(b, t, d), p + ".self_attn.linear_out")
        y = ln(x, p + ".norm2")
        x = x + lin(F.gelu(lin(y, p + ".feed_forward.w_1")), p + ".feed_forward.w_2")
    return ln(x, "encoder.after_norm")


def llm_with_lora(g):
    cfg = transformers.LlamaConfig(attention_bias=True, tie_word_embeddings=False, hidden_act="silu", **LLM)
    torch.manual_seed(7)
    llm = transformers.LlamaForCausalLM(cfg)
    lcfg = peft.LoraConfig(r=LORA["rank"], lora_alpha=LORA["alpha"], lora_dropout=0.0,
                           target_modules=LORA["targets"])
    llm = peft.get_peft_model(llm, lcfg)
    with torch.no_grad():
        for name, p in llm.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:  # base weights and both LoRA factors (B is zero at init; nonzero here)
                p.copy_(0.125 * torch.randn(p.shape, generator=g))
    return llm.eval()


def hf_config_json():
    """The config.json an openPangu-style release folder has (read by LlmConfig::from_hf_json)."""
    c = dict(LLM)
    c.update(model_type="PanguEmbedded", architectures=["PanguEmbeddedForCausalLM"], bias=True,
             hidden_act="silu", tie_word_embeddings=False, torch_dtype="bfloat16")
    return c


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "llm").mkdir(exist_ok=True)
    g = torch.Generator().manual_seed(2026)

    sd = collections.OrderedDict()
    sd.update(encoder_weights(g))
    ada = ag.random_weights(ADAPTER, g)
    ada["speech_transformer.embed.pos_enc.pe"] = ag.positions(ADAPTER["max_positions"], ADAPTER["dim"])[None]
    sd.update(ada)
    d = ENC["d_model"]
    sd["ln_speech.weight"] = 1 + 0.2 * torch.randn(d, generator=g)
    sd["ln_speech.bias"] = 0.2 * torch.randn(d, generator=g)
    sd["speaker_head.weight"] = torch.randn(ADAPTER["n_speech_tokens"] - 2, LLM["hidden_size"], generator=g)
    sd["speaker_head.bias"] = torch.randn(ADAPTER["n_speech_tokens"] - 2, generator=g)
    llm = llm_with_lora(g).to(torch.bfloat16)
    for k, v in llm.state_dict().items():
        sd["llama_model." + k] = v
    hd = LLM["head_dim"]
    inv_freq = 1.0 / (LLM["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    for i in range(LLM["num_hidden_layers"]):
        sd[f"llama_model.base_model.model.model.layers.{i}.self_attn.rotary_emb.inv_freq"] = inv_freq
    sd = collections.OrderedDict((k, v if k.endswith("inv_freq") else v.to(torch.bfloat16).contiguous())
                                 for k, v in sd.items())
    torch.save(sd, OUT / "infer.pt")
    back = torch.load(OUT / "infer.pt", weights_only=True)
    assert list(back) == list(sd) and all(torch.equal(back[k], v) for k, v in sd.items())

    # The reference, in float32 on the bf16-rounded weights (what the Rust model computes).
    w = {k: v.float() for k, v in sd.items()}
    mel = torch.randn(1, ENC["n_mels"], FRAMES, generator=g) * 0.5
    with torch.no_grad():
        enc = encoder_forward(w, mel)
        # The adapter reference computes its own positions; the model reads the stored (bf16) table.
        stored_pe = w["speech_transformer.embed.pos_enc.pe"][0]
        ag.positions = lambda t, dim: stored_pe[:t]
        rows, out_lens = ag.released(w, ADAPTER, enc, [enc.shape[1]])
        n = ADAPTER["n_speech_tokens"]
        emb = w["speech_token_emded.weight"]
        speech = torch.cat([emb[n - 2][None], rows[0], emb[n - 1][None]])[None]

        # A float32 copy holding the bf16-rounded weights. Not `llm.float()`: casting the model to
        # bf16 also rounded RoPE's non-persistent inv_freq buffer, which the checkpoint does not
        # hold and the Rust model computes in f32 from θ.
        llm32 = llm_with_lora(torch.Generator().manual_seed(0))
        llm32.load_state_dict({k: v.float() for k, v in llm.state_dict().items()})
        table = llm32.get_input_embeddings()
        embeds = torch.cat([table(torch.tensor([PREFIX])), speech, table(torch.tensor([SUFFIX]))], dim=1)
        logits = llm32(inputs_embeds=embeds).logits[0, -1]
        gen = llm32.generate(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long),
                             max_new_tokens=GREEDY, min_new_tokens=GREEDY, do_sample=False, num_beams=1,
                             repetition_penalty=1.0, eos_token_id=None, pad_token_id=0)
    golden = {
        "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
        "mel_shape": list(mel.shape), "mel": mel.flatten().tolist(),
        "speech_shape": list(speech.shape), "speech": speech.flatten().tolist(),
        "prefix": PREFIX, "suffix": SUFFIX,
        "last_logits": logits.tolist(),
        "greedy": gen[0, -GREEDY:].tolist(),
    }
    (OUT / "golden.json").write_text(json.dumps(golden))
    (OUT / "llm" / "config.json").write_text(json.dumps(hf_config_json(), indent=2) + "\n")
    preset = {
        "name": "osum-released-tiny",
        "description": "A tiny random model in the released OSUM-Pangu checkpoint layout (tests only)",
        "llm": {"hf_dir": "llm"},
        "checkpoint": "infer.pt",
        "obtain": "run scripts/goldens/make_osum_released.py",
        "template": "osum-pangu",
        "generation": {"max_new_tokens": 8, "repetition_penalty": 1.05},
        "encoder_dims": {k: ENC[k] for k in ("n_mels", "d_model", "layers", "heads", "ffn", "positions")},
        "adapter": ADAPTER,
        "lora": {"rank": LORA["rank"], "alpha": LORA["alpha"], "dropout": 0.1, "targets": LORA["targets"]},
    }
    (OUT / "preset.json").write_text(json.dumps(preset, indent=2, ensure_ascii=False) + "\n")
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(f"{p.stat().st_size:8d}  {p.relative_to(OUT)}")
    print("speech", list(speech.shape), "out_lens", out_lens, "greedy", golden["greedy"])


if __name__ == "__main__":
    main()
