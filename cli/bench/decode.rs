//! `osum bench decode`: single-sequence decode speed of the LLM (one token per forward, KV
//! cache), as tokens/s and as the fraction of the machine's read bandwidth it reaches. Decode is
//! memory-bound: each token reads every weight once, so `bytes/token ÷ time/token` against the
//! bandwidth measured in the same run (alternating) says how close to the limit it runs.
//!
//! Models: the real SmolLM2-135M (GGUF, dequantized to f32 on load, when installed) and an
//! openPangu-Embedded-7B-shaped model with random bf16 weights and fewer layers (default 4 of 34,
//! so it fits any machine; every layer costs the same, so the fraction carries over).

use super::bandwidth::ReadBuffer;
use super::measure;
use super::{f, r, BenchArgs, Output};

/// Any error as the message string the bench functions return.
fn es(e: impl std::fmt::Display) -> String {
    e.to_string()
}
use osum::engine::{no_grad, DType, Device, HostBuffer, Tensor};
use osum::model::llm::random::{parameter_specs, MemSource, ParamRole};
use osum::model::llm::sampling::argmax;
use osum::model::llm::{Llm, LlmConfig};
use osum::model::weights::GgufLlama;
use rayon::prelude::*;
use serde_json::json;
use std::sync::Arc;

/// Layers of the 7B-shaped model (bf16: ≈ 0.4 GB each, plus 2 × 1.26 GB embedding and head).
const PANGU_LAYERS: usize = 4;
/// Prompt tokens before the timed decode steps.
const PROMPT: usize = 16;

pub fn run(a: &BenchArgs, dev: &Arc<dyn Device>, out: &mut Output) -> Result<(), String> {
    let threads = rayon::current_num_threads();
    let bw_bytes = if a.quick { 8 << 20 } else { 1 << 30 };
    eprintln!(
        "bench decode: one token per step with a KV cache after a {PROMPT}-token prompt, device {}, \
         {threads} threads; bandwidth: {threads}-thread read of {} MiB, best pass",
        dev.name(),
        bw_bytes >> 20
    );
    let buf = ReadBuffer::new(bw_bytes, a.seed ^ 0xDEC0);
    let steps = if a.quick { 4 } else { 32 };

    if !a.quick {
        let path =
            osum::model::home().join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
        if path.exists() {
            eprintln!("  smollm2-135m (real weights, f32 after dequantization) …");
            let src = GgufLlama::open(&path).map_err(es)?;
            let cfg = LlmConfig::from_gguf(src.params()).map_err(es)?;
            let llm = Llm::load(&src, cfg, dev).map_err(es)?;
            drop(src);
            measure_model(a, out, &buf, threads, "smollm2-135m", "f32", &llm, steps)?;
        } else {
            eprintln!("  smollm2-135m: not installed (run `osum setup`), skipped");
        }
    }

    let mut cfg = LlmConfig::openpangu_embedded_7b();
    let name;
    if a.quick {
        cfg.hidden = 256;
        cfg.ffn = 512;
        cfg.heads = 4;
        cfg.kv_heads = 2;
        cfg.head_dim = 64;
        cfg.vocab = 4096;
        cfg.layers = 2;
        cfg.bos_id = Some(1);
        cfg.eos_ids = vec![2];
        name = "pangu-shaped-tiny".to_string();
    } else {
        cfg.layers = PANGU_LAYERS;
        name = format!("openpangu-7b-shaped-{PANGU_LAYERS}-layers");
    }
    eprintln!("  {name} (random bf16 weights) …");
    let src = random_bf16(&cfg, a.seed, dev)?;
    let llm = Llm::load(&src, cfg, dev).map_err(es)?;
    drop(src);
    measure_model(a, out, &buf, threads, &name, "bf16", &llm, steps)
}

/// Bytes one decode step reads from weights: every parameter tensor once (the tied or separate
/// LM head included; the embedding row lookup is negligible and not counted).
fn weight_bytes_per_token(c: &LlmConfig, dtype_bytes: usize) -> usize {
    let (h, q, kv) = (c.hidden, c.heads * c.head_dim, c.kv_heads * c.head_dim);
    let per_layer = h * q + 2 * h * kv + q * h + 3 * h * c.ffn;
    let biases = (if c.qkv_bias { q + 2 * kv } else { 0 }) + if c.o_bias { h } else { 0 };
    // Biases and norms are kept in f32.
    c.layers * (per_layer * dtype_bytes + (biases + 2 * h) * 4) + c.vocab * h * dtype_bytes + h * 4
}

#[allow(clippy::too_many_arguments)]
fn measure_model(
    a: &BenchArgs,
    out: &mut Output,
    buf: &ReadBuffer,
    threads: usize,
    name: &str,
    dtype: &str,
    llm: &Llm,
    steps: usize,
) -> Result<(), String> {
    let c = &llm.config;
    let bytes = weight_bytes_per_token(c, if dtype == "bf16" { 2 } else { 4 }) as f64;
    let prompt: Vec<u32> = (0..PROMPT as u32)
        .map(|i| (i * 37 + 11) % c.vocab as u32)
        .collect();
    // One round: a fresh cache, the prompt, then `steps` single-token forwards; the per-token
    // time is taken over the decode steps only.
    let mut per_token = Vec::new();
    let mut decode = || -> Result<(), String> {
        no_grad(|| -> Result<(), String> {
            let mut cache = llm.new_cache(1, PROMPT + steps + 1).map_err(es)?;
            let x = llm.embed_ids(&prompt).map_err(es)?;
            let h = llm.hidden_states(&x, Some(&mut cache)).map_err(es)?;
            let mut next = argmax_last(llm, &h)?;
            let t = std::time::Instant::now();
            for _ in 0..steps {
                let x = llm.embed_ids(&[next]).map_err(es)?;
                let h = llm.hidden_states(&x, Some(&mut cache)).map_err(es)?;
                next = argmax_last(llm, &h)?;
            }
            per_token.push(t.elapsed().as_secs_f64() / steps as f64);
            Ok(())
        })
    };
    let s = measure::alternate(a.reps.or(Some(3)), &mut decode, &mut || {
        buf.pass(threads);
        Ok(())
    })?;
    // The warm-up round is the first entry.
    let tok_s = measure::median(&per_token[1..]);
    let bw = buf.bytes() as f64 / measure::best(&s.b) / 1e9;
    let gbps = bytes / tok_s / 1e9;
    let fraction = gbps / bw;
    out.row(
        json!({
            "bench": "decode", "model": name, "weights": dtype, "dtype": dtype, "layers": c.layers,
            "shape": format!("{}x{}x{}", c.layers, c.hidden, c.ffn),
            "tokens_per_s": r(1.0 / tok_s), "ms_per_token": r(tok_s * 1e3),
            "bytes_per_token": bytes as u64, "weights_gbps": r(gbps),
            "bandwidth_gbps": r(bw), "fraction": r(fraction),
            "prompt": PROMPT, "steps": steps, "reps": per_token.len() - 1, "threads": threads,
        }),
        &[
            ("model", name.to_string()),
            ("weights", dtype.to_string()),
            ("tokens/s", f(1.0 / tok_s, 2)),
            ("MB/token", f(bytes / 1e6, 1)),
            ("GB/s", f(gbps, 2)),
            ("read GB/s", f(bw, 2)),
            ("fraction", f(fraction, 3)),
        ],
    );
    Ok(())
}

/// The most likely next token after the last position of `h` `[1, T, hidden]`.
fn argmax_last(llm: &Llm, h: &Tensor) -> Result<u32, String> {
    let t = h.shape()[1];
    let logits = llm
        .logits(&h.narrow(1, t - 1, 1).map_err(es)?)
        .map_err(es)?
        .to_vec::<f32>()
        .map_err(es)?;
    Ok(argmax(&logits))
}

/// Every tensor of `c` with uniform random values in ±0.02 (norms 1 ± 0.02), bf16, filled in
/// parallel from a counter-based hash (a 7B-shaped embedding alone is 628 M values).
fn random_bf16(c: &LlmConfig, seed: u64, dev: &Arc<dyn Device>) -> Result<MemSource, String> {
    let mut src = MemSource::default();
    let mut n_tensor = 0u64;
    let mut put = |name: String, shape: &[usize], mean: f32, dtype: DType| -> Result<(), String> {
        n_tensor += 1;
        let len: usize = shape.iter().product();
        let key = seed ^ n_tensor.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let value = |i: usize| {
            let mut z = key.wrapping_add((i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9));
            z = (z ^ (z >> 31)).wrapping_mul(0x94D0_49BB_1331_11EB);
            mean + 0.04 * (((z >> 40) as f32) / (1u64 << 24) as f32 - 0.5)
        };
        let host = match dtype {
            DType::BF16 => {
                let mut v = vec![half::bf16::ZERO; len];
                v.par_iter_mut()
                    .enumerate()
                    .for_each(|(i, x)| *x = half::bf16::from_f32(value(i)));
                HostBuffer::BF16(v)
            }
            _ => HostBuffer::F32((0..len).map(value).collect()),
        };
        let t = Tensor::from_host(host, shape, dev).map_err(es)?;
        src.tensors.insert(name, t);
        Ok(())
    };
    for (name, shape, role) in parameter_specs(c) {
        match role {
            ParamRole::Matrix => put(name, &shape, 0.0, DType::BF16)?,
            ParamRole::Norm => put(name, &shape, 1.0, DType::F32)?,
            ParamRole::Bias => put(name, &shape, 0.0, DType::F32)?,
        }
    }
    Ok(src)
}
