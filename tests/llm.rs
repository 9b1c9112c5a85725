//! The Llama-family LLM against HF transformers goldens (scripts/goldens/make_llama_tiny.py):
//! a tiny openPangu-shaped Llama (q, k, v, o biases; GQA 4/2; untied), the same in bf16, and a
//! Qwen2 (q, k, v biases; tied). Plus cache/full consistency, RoPE layouts, LoRA and errors.

use osum::engine::{cpu_device, no_grad, DType, Device, RopeStyle, Tensor};
use osum::model::llm::generate::{generate, GenerationConfig, Strategy};
use osum::model::llm::random::{random_weights, MemSource};
use osum::model::llm::{Llm, LlmConfig, LlmError, LoraTarget};
use osum::model::weights::SafeTensors;
use serde_json::Value;

mod golden;
use golden::{floats, ids as ids_of, max_abs_diff as max_diff};
use std::path::PathBuf;
use std::sync::Arc;

/// |ours − HF| bound for f32 logits (HF runs f32 too; differences are summation order).
const TOL_HF: f32 = 1e-4;
/// |cached − full| bound: the same engine computing the same values in another grouping.
const TOL_CACHE: f32 = 1e-5;

fn dev() -> Arc<dyn Device> {
    cpu_device()
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/llama_tiny")
        .join(name)
}

fn golden() -> Value {
    let text = std::fs::read_to_string(data("golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn load(config: &str, weights: &str) -> Llm {
    let cfg = LlmConfig::from_hf_file(data(config)).unwrap();
    let src = SafeTensors::open(data(weights)).unwrap();
    Llm::load(&src, cfg, &dev()).unwrap()
}

fn llama() -> Llm {
    load("config.json", "model.safetensors")
}

fn ids_tensor(ids: &[u32]) -> Tensor {
    Tensor::from_vec(ids.to_vec(), &[1, ids.len()], &dev()).unwrap()
}

fn full_logits(m: &Llm, ids: &[u32]) -> Vec<f32> {
    no_grad(|| m.forward(&ids_tensor(ids), None))
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
}

#[test]
fn config_json_reads_the_openpangu_shape() {
    let c = LlmConfig::from_hf_file(data("config.json")).unwrap();
    assert_eq!((c.hidden, c.ffn, c.layers), (64, 160, 2));
    assert_eq!((c.heads, c.kv_heads, c.head_dim, c.vocab), (4, 2, 16, 300));
    assert_eq!((c.rope_theta, c.rms_eps), (1.6e7, 1e-5));
    assert!(c.qkv_bias && c.o_bias && !c.tied_embeddings);
    let q = LlmConfig::from_hf_file(data("qwen2_config.json")).unwrap();
    assert!(q.qkv_bias && !q.o_bias && q.tied_embeddings);
}

/// Logits of every position vs HF, for each of the three checkpoints.
#[test]
fn logits_match_hf_llama_bf16_qwen2() {
    let g = golden();
    let ids = ids_of(&g["ids"]);
    for (key, m) in [
        ("llama", llama()),
        ("llama_bf16", load("config.json", "model_bf16.safetensors")),
        ("qwen2", load("qwen2_config.json", "qwen2.safetensors")),
    ] {
        let want = floats(&g[key]["logits"]);
        let got = full_logits(&m, &ids);
        let d = max_diff(&got, &want);
        println!("{key}: max |ours − HF| = {d:.2e}");
        assert!(d <= TOL_HF, "{key}: max diff {d}");
    }
}

#[test]
fn bf16_weights_stay_bf16() {
    let m = load("config.json", "model_bf16.safetensors");
    assert_eq!(m.embedding_table().dtype(), DType::BF16);
    assert_eq!(m.blocks[0].attn.q.weight().dtype(), DType::BF16);
    assert_eq!(m.blocks[0].attn.q.bias().unwrap().dtype(), DType::F32);
}

#[test]
fn greedy_tokens_match_hf_exactly() {
    let g = golden();
    let ids = ids_of(&g["ids"]);
    for (key, m) in [
        ("llama", llama()),
        ("llama_bf16", load("config.json", "model_bf16.safetensors")),
        ("qwen2", load("qwen2_config.json", "qwen2.safetensors")),
    ] {
        let cfg = GenerationConfig::greedy(10, vec![]);
        let mut streamed = Vec::new();
        let out = generate(&m, &ids, &cfg, &mut |t| streamed.push(t)).unwrap();
        assert_eq!(out.tokens, ids_of(&g[key]["greedy"]), "{key}");
        assert_eq!(
            streamed, out.tokens,
            "{key}: the callback sees every token in order"
        );
        assert_eq!(out.eos, None);
    }
}

#[test]
fn greedy_with_repetition_penalty_matches_hf() {
    let g = golden();
    let m = llama();
    let prompt = ids_of(&g["llama"]["greedy_rep1.3_prompt"]);
    let mut cfg = GenerationConfig::greedy(12, vec![]);
    cfg.repetition_penalty = 1.3;
    let out = generate(&m, &prompt, &cfg, &mut |_| {}).unwrap();
    assert_eq!(out.tokens, ids_of(&g["llama"]["greedy_rep1.3"]));
}

#[test]
fn beam_search_matches_hf_with_and_without_eos() {
    let g = golden();
    let m = llama();
    let prompt = ids_of(&g["llama"]["beam3_prompt"]);
    let beam = |eos: Vec<u32>| GenerationConfig {
        max_new_tokens: 8,
        eos_ids: eos,
        repetition_penalty: 1.0,
        strategy: Strategy::Beam {
            num_beams: 3,
            length_penalty: 1.0,
        },
    };
    let out = generate(&m, &prompt, &beam(vec![]), &mut |_| {}).unwrap();
    assert_eq!(out.tokens, ids_of(&g["llama"]["beam3"]));
    let want = g["llama"]["beam3_score"].as_f64().unwrap();
    assert!(
        (out.score.unwrap() - want).abs() < 1e-4,
        "{out:?} vs {want}"
    );

    let eos = g["llama"]["beam3_eos"].as_u64().unwrap() as u32;
    let mut hf = ids_of(&g["llama"]["beam3_with_eos"]);
    let out = generate(&m, &prompt, &beam(vec![eos]), &mut |_| {}).unwrap();
    assert_eq!(hf.pop(), Some(eos), "the golden hypothesis ends at the eos");
    assert_eq!((out.tokens.clone(), out.eos), (hf, Some(eos)));
    let want = g["llama"]["beam3_with_eos_score"].as_f64().unwrap();
    assert!(
        (out.score.unwrap() - want).abs() < 1e-4,
        "{out:?} vs {want}"
    );
}

/// Prompt at once, then one token at a time through the KV cache: the last-position logits
/// equal HF's incremental ones and our own full-sequence ones.
#[test]
fn kv_cache_incremental_logits_equal_full_sequence() {
    let g = golden();
    let ids = ids_of(&g["ids"]);
    let m = llama();
    let v = m.config.vocab;
    let n0 = g["llama"]["incremental_prompt"].as_u64().unwrap() as usize;
    let full = full_logits(&m, &ids);
    let hf = floats(&g["llama"]["incremental_logits"]);
    no_grad(|| {
        let mut cache = m.new_cache(1, ids.len()).unwrap();
        let mut steps = vec![ids[..n0].to_vec()];
        steps.extend(ids[n0..].iter().map(|&t| vec![t]));
        let mut pos = 0;
        for (i, s) in steps.iter().enumerate() {
            let logits = m.forward(&ids_tensor(s), Some(&mut cache)).unwrap();
            pos += s.len();
            assert_eq!(cache.len(), pos);
            let last = logits
                .narrow(1, s.len() - 1, 1)
                .unwrap()
                .to_vec::<f32>()
                .unwrap();
            let d_full = max_diff(&last, &full[(pos - 1) * v..pos * v]);
            let d_hf = max_diff(&last, &hf[i * v..(i + 1) * v]);
            assert!(d_full <= TOL_CACHE, "step {i}: cache vs full {d_full}");
            assert!(d_hf <= TOL_HF, "step {i}: cache vs HF {d_hf}");
        }
        // The cache is full now: one more position is an error, not a panic.
        let e = m.forward(&ids_tensor(&[3]), Some(&mut cache)).unwrap_err();
        assert!(e.to_string().contains("do not fit"), "{e}");
    });
}

/// GQA (4 query / 2 kv heads in the goldens) also with MHA and MQA shapes, on random weights:
/// cached decoding equals the full pass; two sequences batched equal each run alone.
#[test]
fn mha_gqa_mqa_cache_and_batch_consistency() {
    for kv_heads in [4, 2, 1] {
        let mut c = LlmConfig::from_hf_file(data("config.json")).unwrap();
        c.kv_heads = kv_heads;
        let src = random_weights(&c, 5, 0.1, DType::F32, &dev()).unwrap();
        let m = Llm::load(&src, c.clone(), &dev()).unwrap();
        let a: Vec<u32> = (0..9).map(|i| (i * 37 + 5) % 300).collect();
        let b: Vec<u32> = (0..9).map(|i| (i * 11 + 90) % 300).collect();
        let (fa, fb) = (full_logits(&m, &a), full_logits(&m, &b));
        no_grad(|| {
            let mut cache = m.new_cache(1, 9).unwrap();
            let mut got = m
                .forward(&ids_tensor(&a[..4]), Some(&mut cache))
                .unwrap()
                .to_vec::<f32>()
                .unwrap();
            got.extend(
                m.forward(&ids_tensor(&a[4..]), Some(&mut cache))
                    .unwrap()
                    .to_vec::<f32>()
                    .unwrap(),
            );
            assert!(max_diff(&got, &fa) <= TOL_CACHE, "kv_heads {kv_heads}");
            let both: Vec<u32> = a.iter().chain(&b).copied().collect();
            let t = Tensor::from_vec(both, &[2, 9], &dev()).unwrap();
            let batched = m.forward(&t, None).unwrap().to_vec::<f32>().unwrap();
            let (ba, bb) = batched.split_at(fa.len());
            assert!(max_diff(ba, &fa) <= TOL_CACHE && max_diff(bb, &fb) <= TOL_CACHE);
        });
    }
}

/// GGUF-style checkpoints keep q/k rows permuted for interleaved RoPE (REFERENCE §5): with the
/// rows permuted and `RopeStyle::Interleaved`, the logits are those of the HF layout.
#[test]
fn interleaved_rope_on_permuted_weights_equals_rotate_half() {
    let g = golden();
    let ids = ids_of(&g["ids"]);
    let m = llama();
    let want = full_logits(&m, &ids);
    let c = m.config.clone();
    let src = SafeTensors::open(data("model.safetensors")).unwrap();
    let mut mem = MemSource::default();
    for name in src.names() {
        let mut t = src.tensor(name, &dev()).unwrap();
        let heads = if name.contains("q_proj") {
            c.heads
        } else {
            c.kv_heads
        };
        if name.contains("q_proj") || name.contains("k_proj") {
            // Row (h, half, i) → (h, i, half): rotate-half pairs (i, i + D/2) become (2i, 2i+1).
            let s = t.shape().to_vec();
            let cols: usize = s[1..].iter().product();
            t = t
                .reshape(&[heads, 2, c.head_dim / 2, cols])
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
                .reshape(&s)
                .unwrap();
        }
        mem.tensors.insert(name.to_string(), t);
    }
    let mut ci = c.clone();
    ci.rope_style = RopeStyle::Interleaved;
    let mi = Llm::load(&mem, ci, &dev()).unwrap();
    let got = full_logits(&mi, &ids);
    assert!(max_diff(&got, &want) <= TOL_CACHE);
    // And the permuted weights with rotate-half are a different model.
    let mut cw = c;
    cw.rope_style = RopeStyle::RotateHalf;
    let wrong = full_logits(&Llm::load(&mem, cw, &dev()).unwrap(), &ids);
    assert!(max_diff(&wrong, &want) > 1e-2);
}

/// Fresh LoRA (B = 0) changes nothing; after a training step it does; merged equals unmerged;
/// unmerge restores the base; only A and B get gradients.
#[test]
fn lora_training_merge_and_unmerge() {
    let g = golden();
    let ids = ids_of(&g["ids"]);
    let mut m = llama();
    let base = full_logits(&m, &ids);
    let mut rng = osum::engine::Rng::new(9);
    let n = m
        .add_lora(&LoraTarget::OSUM, 0..2, 4, 8.0, &mut rng)
        .unwrap();
    assert_eq!(n, 12, "6 targets × 2 layers");
    assert!(
        max_diff(&full_logits(&m, &ids), &base) == 0.0,
        "B = 0: no change"
    );
    let params = m.lora_parameters();
    assert_eq!(params.len(), 24);
    assert_eq!(params[0].0, "model.layers.0.self_attn.q_proj.lora_A.weight");

    // Full-sequence forward with autograd: next-token loss, gradients reach A and B.
    let x = ids_tensor(&ids[..ids.len() - 1]);
    let targets = Tensor::from_vec(ids[1..].to_vec(), &[ids.len() - 1], &dev()).unwrap();
    let logits = m.forward(&x, None).unwrap();
    let loss = logits
        .reshape(&[ids.len() - 1, m.config.vocab])
        .unwrap()
        .cross_entropy(&targets, -100)
        .unwrap();
    let grads = loss.backward().unwrap();
    assert_eq!(grads.len(), 24, "exactly the LoRA tensors are trainable");
    let gb = grads.get(&params[1].1).unwrap().to_vec::<f32>().unwrap();
    assert!(gb.iter().any(|v| v.abs() > 0.0), "B gets a gradient");
    // A step on every B (plain SGD in place) makes the adapters non-zero.
    no_grad(|| {
        for (_, p) in params.iter().filter(|(n, _)| n.contains("lora_B")) {
            let step = p.sub(&grads.get(p).unwrap().scale(0.5).unwrap()).unwrap();
            p.write_slice(0, 0, &step.detach()).unwrap();
        }
    });
    let adapted = full_logits(&m, &ids);
    assert!(max_diff(&adapted, &base) > 1e-3);
    m.merge_lora().unwrap();
    assert!(m.blocks[0].attn.q.is_merged());
    let merged = full_logits(&m, &ids);
    assert!(
        max_diff(&merged, &adapted) <= TOL_CACHE,
        "merged = unmerged"
    );
    m.unmerge_lora().unwrap();
    assert!(max_diff(&full_logits(&m, &ids), &adapted) <= TOL_CACHE);
    // Detaching every adapter gives the base model back.
    for block in &mut m.blocks {
        for (_, lin) in block.linears_mut() {
            lin.detach_lora().unwrap();
        }
    }
    assert!(max_diff(&full_logits(&m, &ids), &base) <= TOL_CACHE);
}

#[test]
fn seeded_sampling_is_reproducible_and_seed_dependent() {
    let g = golden();
    let ids = ids_of(&g["ids"]);
    let m = llama();
    let cfg = |seed| GenerationConfig {
        max_new_tokens: 12,
        eos_ids: vec![],
        repetition_penalty: 1.1,
        strategy: Strategy::Sample {
            temperature: 1.5,
            top_k: 50,
            top_p: 0.95,
            seed,
        },
    };
    let run = |seed| generate(&m, &ids, &cfg(seed), &mut |_| {}).unwrap().tokens;
    let (a, b, c) = (run(1), run(1), run(2));
    assert_eq!(a, b);
    assert_eq!(a.len(), 12);
    assert_ne!(
        a, c,
        "another seed, another draw (12 tokens at temperature 1.5)"
    );
}

#[test]
fn generation_stops_at_any_of_several_eos_ids() {
    let g = golden();
    let ids = ids_of(&g["ids"]);
    let greedy = ids_of(&g["llama"]["greedy"]);
    let m = llama();
    // Stop ids: one never produced and the third greedy token.
    let cfg = GenerationConfig::greedy(10, vec![299, greedy[2]]);
    let mut streamed = vec![];
    let out = generate(&m, &ids, &cfg, &mut |t| streamed.push(t)).unwrap();
    let first = greedy.iter().position(|&t| t == greedy[2]).unwrap();
    assert_eq!(out.tokens, greedy[..first]);
    assert_eq!(out.eos, Some(greedy[2]));
    assert_eq!(streamed, out.tokens, "the stop id is not streamed");
}

#[test]
fn embeddings_path_equals_ids_path_and_bad_inputs_are_errors() {
    let g = golden();
    let ids = ids_of(&g["ids"]);
    let m = llama();
    let via_embeds = no_grad(|| {
        let e = m.embed_ids(&ids).unwrap();
        m.forward_embeds(&e, None).unwrap().to_vec::<f32>().unwrap()
    });
    assert_eq!(via_embeds, full_logits(&m, &ids));
    // Id outside the vocabulary, wrong embedding width, wrong cache batch: errors.
    assert!(no_grad(|| m.forward(&ids_tensor(&[300]), None)).is_err());
    let bad = Tensor::zeros(&[1, 3, 63], DType::F32, &dev()).unwrap();
    assert!(matches!(
        no_grad(|| m.forward_embeds(&bad, None)),
        Err(LlmError::Invalid(_))
    ));
    let mut cache = m.new_cache(2, 8).unwrap();
    assert!(no_grad(|| m.forward(&ids_tensor(&[3]), Some(&mut cache))).is_err());
    assert!(m.new_cache(1, 129).is_err(), "capacity above max_positions");
    // A prompt plus budget beyond max_positions is refused up front.
    let cfg = GenerationConfig::greedy(200, vec![]);
    assert!(generate(&m, &ids, &cfg, &mut |_| {}).is_err());
}

#[test]
fn missing_or_misshapen_tensors_are_named() {
    let c = LlmConfig::from_hf_file(data("config.json")).unwrap();
    let mut src = random_weights(&c, 1, 0.1, DType::F32, &dev()).unwrap();
    src.tensors.remove("model.layers.1.self_attn.o_proj.bias");
    match Llm::load(&src, c.clone(), &dev()) {
        Err(LlmError::MissingTensor(n)) => assert_eq!(n, "model.layers.1.self_attn.o_proj.bias"),
        other => panic!("{other:?}"),
    }
    let mut src = random_weights(&c, 1, 0.1, DType::F32, &dev()).unwrap();
    let wrong = Tensor::zeros(&[16, 64], DType::F32, &dev()).unwrap();
    src.tensors
        .insert("model.layers.0.self_attn.k_proj.weight".into(), wrong);
    let e = Llm::load(&src, c, &dev()).unwrap_err().to_string();
    assert!(e.contains("k_proj.weight") && e.contains("[32, 64]"), "{e}");
}

/// Timing on a SmolLM2-135M-shaped model with random bf16 weights (`--ignored --nocapture`):
/// prompt of 64 tokens, then 32 greedy tokens through the KV cache.
#[test]
#[ignore]
fn timing_smollm2_shaped_bf16() {
    let c = LlmConfig::smollm2_135m();
    let t0 = std::time::Instant::now();
    let src = random_weights(&c, 1, 0.02, DType::BF16, &dev()).unwrap();
    let m = Llm::load(&src, c, &dev()).unwrap();
    println!("random weights + load: {:.2?}", t0.elapsed());
    let prompt: Vec<u32> = (0..64).map(|i| (i * 97 + 13) % 49152).collect();
    let t0 = std::time::Instant::now();
    let _ = no_grad(|| m.forward(&ids_tensor(&prompt), None)).unwrap();
    println!("prefill 64 tokens (all logits): {:.2?}", t0.elapsed());
    let cfg = GenerationConfig::greedy(32, vec![]);
    let t0 = std::time::Instant::now();
    let out = generate(&m, &prompt, &cfg, &mut |_| {}).unwrap();
    let dt = t0.elapsed();
    println!(
        "prefill + {} greedy tokens: {dt:.2?} ({:.1} tokens/s)",
        out.tokens.len(),
        out.tokens.len() as f64 / dt.as_secs_f64()
    );
    // With OSUM_PROFILE=trace.json: the per-op table on stderr.
    osum::engine::profiler::finish().unwrap();
}

/// A cloned cache continues independently; reordering rows swaps whole histories.
#[test]
fn cache_clone_and_reorder() {
    let m = llama();
    let (a, b) = ([5u32, 9, 44, 17], [120u32, 3, 250, 61]);
    let step = |cache: &mut osum::model::llm::LlmCache, toks: &[u32]| {
        let t = Tensor::from_vec(toks.to_vec(), &[toks.len(), 1], &dev()).unwrap();
        m.forward(&t, Some(cache)).unwrap().to_vec::<f32>().unwrap()
    };
    no_grad(|| {
        let mut c1 = m.new_cache(1, 8).unwrap();
        m.forward(&ids_tensor(&a), Some(&mut c1)).unwrap();
        let mut c2 = c1.try_clone().unwrap();
        let x1 = step(&mut c1, &[7]);
        let _ = step(&mut c1, &[8]); // c1 moves on; c2 must not see it
        let x2 = step(&mut c2, &[7]);
        assert_eq!(x1, x2);
        assert_eq!((c1.len(), c2.len()), (6, 5));

        let both: Vec<u32> = a.iter().chain(&b).copied().collect();
        let mut c = m.new_cache(2, 8).unwrap();
        m.forward(
            &Tensor::from_vec(both, &[2, 4], &dev()).unwrap(),
            Some(&mut c),
        )
        .unwrap();
        let plain = step(&mut c.try_clone().unwrap(), &[7, 7]);
        c.reorder(&[1, 0]).unwrap();
        let swapped = step(&mut c, &[7, 7]);
        let v = m.config.vocab;
        assert_eq!(&swapped[..v], &plain[v..]);
        assert_eq!(&swapped[v..], &plain[..v]);
        assert!(c.reorder(&[0, 2]).is_err(), "row out of range");
    });
}

/// LoRA dropout acts only while gradients are recorded: two training passes differ, inference
/// (`no_grad`) equals the model without dropout, and gradients still reach A and B.
#[test]
fn lora_dropout_only_in_training() {
    let g = golden();
    let ids = ids_of(&g["ids"]);
    let mut m = llama();
    let mut rng = osum::engine::Rng::new(4);
    m.add_lora(&[LoraTarget::Q, LoraTarget::Down], 0..2, 4, 8.0, &mut rng)
        .unwrap();
    // Non-zero B so the adapter path matters.
    no_grad(|| {
        for (_, p) in m
            .lora_parameters()
            .iter()
            .filter(|(n, _)| n.contains("lora_B"))
        {
            let r = Tensor::randn(p.shape(), 0.0, 0.1, &mut rng, &dev()).unwrap();
            p.write_slice(0, 0, &r).unwrap();
        }
    });
    let trained_view = |m: &Llm| m.forward(&ids_tensor(&ids), None).unwrap();
    let eval = full_logits(&m, &ids);
    let no_dropout = trained_view(&m).to_vec::<f32>().unwrap();
    assert!(max_diff(&no_dropout, &eval) <= TOL_CACHE);
    m.set_lora_dropout(0.1, 7).unwrap();
    assert_eq!(m.blocks[0].attn.q.lora().unwrap().dropout(), 0.1);
    assert!(
        max_diff(&full_logits(&m, &ids), &eval) <= TOL_CACHE,
        "no dropout in eval"
    );
    let (y1, y2) = (trained_view(&m), trained_view(&m));
    let (v1, v2) = (y1.to_vec::<f32>().unwrap(), y2.to_vec::<f32>().unwrap());
    assert!(max_diff(&v1, &v2) > 1e-4, "fresh masks each pass");
    assert!(max_diff(&v1, &eval) > 1e-4);
    let grads = y1.mean_all().unwrap().backward().unwrap();
    assert_eq!(grads.len(), 8, "A and B of 2 targets × 2 layers");
    assert!(m.set_lora_dropout(1.0, 0).is_err());
}
