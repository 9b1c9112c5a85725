#!/usr/bin/env python3
"""Goldens for tests/llm.rs: tiny random Llama-family models run by HF transformers.

Writes to tests/data/llama_tiny/:
  config.json, model.safetensors      openPangu-shaped LlamaForCausalLM (attention_bias=True: q, k,
                                      v and o biases; GQA 4/2 heads, head_dim 16, untied), f32,
                                      plus an unused `rotary_emb.inv_freq` as openPangu stores
  model_bf16.safetensors              the same weights rounded to bf16
  qwen2_config.json, qwen2.safetensors  Qwen2ForCausalLM (q, k, v biases only, tied embeddings)
  golden.json                         ids, logits and token sequences (see `golden` below)

Reference: transformers 4.46.3 with torch (Debian python3-torch 1.13) on CPU, float32, eager
attention. Run from the repository root:
  python3 -m venv --system-site-packages /tmp/venv && /tmp/venv/bin/pip install \
      transformers==4.46.3 "numpy<2" safetensors
  /tmp/venv/bin/python scripts/goldens/make_llama_tiny.py
"""

import json
import os

import torch
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

OUT = "tests/data/llama_tiny"
SIZES = dict(
    vocab_size=300,
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=128,
    rms_norm_eps=1e-5,
    bos_token_id=1,
    eos_token_id=2,
    hidden_act="silu",
)


def randomize(model, seed):
    """Weights with a spread large enough that logits differ clearly (HF's init is 0.02)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.125 * torch.randn(p.shape, generator=g))
    model.eval()
    return model


def r8(x):
    """Floats to 8 significant digits (well inside the f32 tolerances the tests use)."""
    return [float(f"{v:.8g}") for v in x]


def logits_all(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def greedy(model, ids, n, **kw):
    """n new tokens, never stopping early (no eos), plus the smallest top-1/top-2 logit gap seen
    (how robust exact-token comparison is)."""
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            num_beams=1,
            eos_token_id=None,
            pad_token_id=0,
            synced_gpus=False,  # torch 1.13's torch.distributed import fails on Python 3.11
            output_scores=True,
            return_dict_in_generate=True,
            **kw,
        )
    gaps = []
    for s in out.scores:
        top = torch.topk(s[0].float(), 2).values
        gaps.append(float(top[0] - top[1]))
    return out.sequences[0, len(ids):].tolist(), min(gaps)


def beam(model, ids, n, beams, eos, **kw):
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            max_new_tokens=n,
            do_sample=False,
            num_beams=beams,
            length_penalty=1.0,
            early_stopping=False,
            eos_token_id=eos,
            pad_token_id=0,
            synced_gpus=False,  # torch 1.13's torch.distributed import fails on Python 3.11
            output_scores=True,
            return_dict_in_generate=True,
            **kw,
        )
    seq = out.sequences[0, len(ids):].tolist()
    while seq and seq[-1] == 0 and eos is not None and eos != 0:  # drop padding after eos
        seq.pop()
    return seq, float(out.sequences_scores[0])


def incremental(model, ids, n_prompt):
    """Last-position logits when feeding ids[:n_prompt] at once, then one id at a time, with HF's
    KV cache."""
    rows = []
    with torch.no_grad():
        out = model(torch.tensor([ids[:n_prompt]]), use_cache=True)
        past = out.past_key_values
        rows.append(r8(out.logits[0, -1].tolist()))
        for t in ids[n_prompt:]:
            out = model(torch.tensor([[t]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
            rows.append(r8(out.logits[0, -1].tolist()))
    return rows


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    ids = torch.randint(3, 300, (12,), generator=torch.Generator().manual_seed(1)).tolist()
    golden = {
        "reference": f"transformers {transformers.__version__}, torch {torch.__version__}, "
        "float32, eager attention",
        "ids": ids,
    }

    # openPangu-shaped Llama: q, k, v, o biases, GQA, θ 1.6e7, untied.
    cfg = LlamaConfig(
        **SIZES,
        rope_theta=1.6e7,
        attention_bias=True,
        tie_word_embeddings=False,
        attn_implementation="eager",
    )
    llama = randomize(LlamaForCausalLM(cfg), seed=2)
    cfg.to_json_file(f"{OUT}/config.json")
    state = {k: v.contiguous() for k, v in llama.state_dict().items()}
    # openPangu checkpoints store an unused inv_freq per layer; the loader must skip it.
    half = SIZES["head_dim"] // 2
    state["model.layers.0.self_attn.rotary_emb.inv_freq"] = 1.6e7 ** (
        -torch.arange(half, dtype=torch.float32) / half
    )
    save_file(state, f"{OUT}/model.safetensors")
    full = logits_all(llama, ids)
    golden["llama"] = {
        "logits": [r8(row) for row in full.tolist()],
        "incremental_prompt": 5,
        "incremental_logits": incremental(llama, ids, 5),
    }
    tok, gap = greedy(llama, ids, 10)
    golden["llama"]["greedy"] = tok
    golden["llama"]["greedy_min_gap"] = gap
    tok, gap = greedy(llama, ids[:4], 12, repetition_penalty=1.3)
    golden["llama"]["greedy_rep1.3_prompt"] = ids[:4]
    golden["llama"]["greedy_rep1.3"] = tok
    golden["llama"]["greedy_rep1.3_min_gap"] = gap
    seq, score = beam(llama, ids[:6], 8, 3, None)
    golden["llama"]["beam3_prompt"] = ids[:6]
    golden["llama"]["beam3"] = seq
    golden["llama"]["beam3_score"] = score
    # The same with an eos the beams meet: the most likely first greedy token of this prompt.
    eos = greedy(llama, ids[:6], 3)[0][1]
    seq, score = beam(llama, ids[:6], 8, 3, eos)
    golden["llama"]["beam3_eos"] = eos
    golden["llama"]["beam3_with_eos"] = seq
    golden["llama"]["beam3_with_eos_score"] = score
    # HF applies the repetition penalty to log-probabilities in beam search.
    seq, score = beam(llama, ids[:6], 8, 3, None, repetition_penalty=1.3)
    golden["llama"]["beam3_rep1.3"] = seq
    golden["llama"]["beam3_rep1.3_score"] = score

    # bf16 storage: the same model with every tensor rounded to bf16, run in f32.
    bf = {k: v.to(torch.bfloat16) for k, v in state.items()}
    save_file(bf, f"{OUT}/model_bf16.safetensors")
    with torch.no_grad():
        for p in llama.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    full = logits_all(llama, ids)
    tok, gap = greedy(llama, ids, 10)
    golden["llama_bf16"] = {
        "logits": [r8(row) for row in full.tolist()],
        "greedy": tok,
        "greedy_min_gap": gap,
    }

    # Qwen2: q, k, v biases, none on o; tied embeddings.
    qcfg = Qwen2Config(
        **SIZES,
        rope_theta=1e6,
        tie_word_embeddings=True,
        use_sliding_window=False,
        attn_implementation="eager",
    )
    qwen = randomize(Qwen2ForCausalLM(qcfg), seed=3)
    qcfg.to_json_file(f"{OUT}/qwen2_config.json")
    qstate = {k: v.contiguous() for k, v in qwen.state_dict().items() if k != "lm_head.weight"}
    save_file(qstate, f"{OUT}/qwen2.safetensors")
    full = logits_all(qwen, ids)
    tok, gap = greedy(qwen, ids, 10)
    golden["qwen2"] = {
        "logits": [r8(row) for row in full.tolist()],
        "greedy": tok,
        "greedy_min_gap": gap,
    }

    with open(f"{OUT}/golden.json", "w") as f:
        json.dump(golden, f)
    for k in ("llama", "llama_bf16", "qwen2"):
        print(k, "greedy", golden[k]["greedy"], "min gap", golden[k]["greedy_min_gap"])
    print("beam3", golden["llama"]["beam3"], golden["llama"]["beam3_score"])
    print("beam3 eos", eos, golden["llama"]["beam3_with_eos"], golden["llama"]["beam3_with_eos_score"])


if __name__ == "__main__":
    main()
