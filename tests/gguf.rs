//! The GGUF reader, its Llama view and its tokenizer on the real SmolLM2-135M-Instruct Q4_1 file
//! (skipped with a message when `osum setup` has not installed it), against goldens written by
//! `scripts/goldens/gguf_smollm2.py` with the `gguf` Python package (llama.cpp's reader and
//! dequantizer). Dequantized values must agree within 1e-6 absolute.

use osum::engine::{cpu_device, DType};
use osum::model::tokenizer::gguf_bpe;
use osum::model::weights::gguf::GgufValue;
use osum::model::weights::{GgufFile, GgufLlama, TensorSource};
use serde_json::Value;
use std::path::PathBuf;

/// Absolute tolerance for dequantized values (both sides compute the same f32 products, so the
/// expected difference is 0; the bound allows for a different but valid rounding order).
const TOL: f64 = 1e-6;

/// The real GGUF file, if `osum setup` put it under `osum::model::home()`.
fn smollm2() -> Option<PathBuf> {
    let p = osum::model::home()
        .join("smollm2-135m-instruct")
        .join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "skipped: {} is absent (run `osum setup` to fetch SmolLM2-135M-Instruct)",
            p.display()
        );
        None
    }
}

fn golden() -> Value {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/goldens/gguf_smollm2.json"
    );
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// Max |ours − golden| over a golden sample (`indices`, `values`), checking the shape too.
fn sample_diff(ours: &[f32], shape: &[usize], s: &Value) -> f64 {
    assert_eq!(shape, usizes(&s["shape"]), "{}", s["name"]);
    let idx = usizes(&s["indices"]);
    let want = s["values"].as_array().unwrap();
    assert_eq!(idx.len(), want.len());
    idx.iter()
        .zip(want)
        .map(|(&i, w)| (ours[i] as f64 - w.as_f64().unwrap()).abs())
        .fold(0.0, f64::max)
}

#[test]
fn real_smollm2_gguf_matches_the_gguf_python_package() {
    let Some(path) = smollm2() else { return };
    let g = golden();
    let t0 = std::time::Instant::now();
    let f = GgufFile::open(&path).unwrap();
    eprintln!("open + check: {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
    assert_eq!(f.alignment() as u64, g["alignment"].as_u64().unwrap());
    assert_eq!(f.data_start() as u64, g["data_offset"].as_u64().unwrap());
    let types = g["tensor_types"].as_object().unwrap();
    assert_eq!(f.tensor_infos().len(), types.len());
    for t in f.tensor_infos() {
        assert_eq!(
            t.ggml_type.name(),
            types[&t.name].as_str().unwrap(),
            "{}",
            t.name
        );
    }

    // Scalar metadata: same keys, same values.
    let meta = g["metadata"].as_object().unwrap();
    let arrays = g["arrays"].as_object().unwrap();
    assert_eq!(f.metadata().len(), meta.len() + arrays.len());
    for (k, want) in meta {
        let v = f.get(k).unwrap_or_else(|| panic!("{k} absent"));
        let same = match (v, want) {
            (GgufValue::String(s), Value::String(w)) => s == w,
            (GgufValue::Bool(b), Value::Bool(w)) => b == w,
            (GgufValue::F32(x), Value::Number(w)) => *x as f64 == w.as_f64().unwrap(),
            (v, Value::Number(w)) => v.as_i64() == w.as_i64(),
            _ => false,
        };
        assert!(same, "{k}: ours {v:?}, golden {want}");
    }
    for (k, want) in arrays {
        let items = &f.get_array(k).unwrap().items;
        assert_eq!(items.len() as u64, want["len"].as_u64().unwrap(), "{k}");
        let as_json = |v: &GgufValue| match v {
            GgufValue::String(s) => Value::from(s.as_str()),
            v => Value::from(v.as_i64().unwrap()),
        };
        let first: Vec<Value> = items.iter().take(20).map(as_json).collect();
        assert_eq!(&Value::from(first), &want["first"], "{k}");
        let last: Vec<Value> = items[items.len().saturating_sub(3)..]
            .iter()
            .map(as_json)
            .collect();
        assert_eq!(&Value::from(last), &want["last"], "{k}");
    }

    // Dequantized values as stored (Q8_0, Q4_1, F32).
    for s in g["samples"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        let d = sample_diff(&f.to_f32(name).unwrap(), f.shape(name).unwrap(), s);
        eprintln!("{name} ({}): max abs diff {d:e}", s["ggml_type"]);
        assert!(d <= TOL, "{name}: {d}");
    }

    // The HF view: q/k rows unpermuted as numpy does it.
    let m = GgufLlama::new(f).unwrap();
    for s in g["unpermuted"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        let v = match m.host(name).unwrap() {
            osum::engine::HostBuffer::F32(v) => v,
            other => panic!("{name}: {:?}", other.dtype()),
        };
        let d = sample_diff(&v, m.shape(name).unwrap(), s);
        eprintln!("{name} (unpermuted): max abs diff {d:e}");
        assert!(d <= TOL, "{name}: {d}");
    }
}

#[test]
fn real_smollm2_loads_with_hf_llama_names() {
    let Some(path) = smollm2() else { return };
    let g = golden();
    let meta = &g["metadata"];
    let m = GgufLlama::open(&path).unwrap();
    let p = m.params();
    let num = |k: &str| meta[k].as_u64().unwrap() as usize;
    assert_eq!(p.hidden, num("llama.embedding_length"));
    assert_eq!(p.ffn, num("llama.feed_forward_length"));
    assert_eq!(p.layers, num("llama.block_count"));
    assert_eq!(p.heads, num("llama.attention.head_count"));
    assert_eq!(p.kv_heads, num("llama.attention.head_count_kv"));
    assert_eq!(p.vocab, num("llama.vocab_size"));
    assert_eq!(p.context_length, num("llama.context_length"));
    assert_eq!(p.rope_dim, num("llama.rope.dimension_count"));
    assert_eq!(p.bos, Some(num("tokenizer.ggml.bos_token_id") as u32));
    assert_eq!(p.eos, Some(num("tokenizer.ggml.eos_token_id") as u32));
    assert_eq!(
        p.rope_theta as f64,
        meta["llama.rope.freq_base"].as_f64().unwrap()
    );
    assert_eq!(
        p.rms_eps as f64,
        meta["llama.attention.layer_norm_rms_epsilon"]
            .as_f64()
            .unwrap()
    );
    // REFERENCE.md §5: SmolLM2-135M is 576 / 1536 / 30 layers, 9 heads of 64, 3 KV heads,
    // tied embeddings, no BOS added.
    assert_eq!(
        (p.hidden, p.ffn, p.layers, p.heads, p.kv_heads, p.head_dim),
        (576, 1536, 30, 9, 3, 64)
    );
    assert!(p.tied_embeddings && !p.add_bos);

    let names = TensorSource::names(&m);
    assert_eq!(
        names.len(),
        2 + 9 * 30,
        "embedding, final norm, 9 per layer"
    );
    let dev = cpu_device();
    for (name, shape) in [
        ("model.embed_tokens.weight", vec![49152, 576]),
        ("model.layers.0.self_attn.q_proj.weight", vec![576, 576]),
        ("model.layers.0.self_attn.k_proj.weight", vec![192, 576]),
        ("model.layers.0.self_attn.v_proj.weight", vec![192, 576]),
        ("model.layers.0.self_attn.o_proj.weight", vec![576, 576]),
        ("model.layers.29.mlp.gate_proj.weight", vec![1536, 576]),
        ("model.layers.29.mlp.up_proj.weight", vec![1536, 576]),
        ("model.layers.29.mlp.down_proj.weight", vec![576, 1536]),
        ("model.layers.29.input_layernorm.weight", vec![576]),
        ("model.layers.29.post_attention_layernorm.weight", vec![576]),
        ("model.norm.weight", vec![576]),
    ] {
        assert_eq!(m.shape(name).unwrap(), &shape[..], "{name}");
    }
    // Every tensor loads (dequantized to f32) and is finite.
    let t0 = std::time::Instant::now();
    let e = m.tensor("model.embed_tokens.weight", &dev).unwrap();
    eprintln!(
        "token_embd (Q8_0, {} values) dequantized and uploaded in {:.1} ms",
        e.elem_count(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    for name in names {
        let t = m.tensor(name, &dev).unwrap();
        assert_eq!(t.dtype(), DType::F32, "{name}");
        assert_eq!(t.shape(), m.shape(name).unwrap());
        let v = t.to_vec::<f32>().unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{name}");
    }
}

#[test]
fn real_smollm2_tokenizer() {
    let Some(path) = smollm2() else { return };
    let f = GgufFile::open(&path).unwrap();
    let t0 = std::time::Instant::now();
    let t = gguf_bpe::from_gguf(&f).unwrap();
    eprintln!(
        "tokenizer built in {:.1} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!((t.bos, t.eos, t.add_bos), (Some(1), Some(2), false));
    let tok = &t.tokenizer;
    assert_eq!(tok.get_vocab_size(true), 49152);
    // DATA.md (HF transformers 4.46.3 on SmolLM2-135M-Instruct, no BOS).
    let e = tok.encode("The capital of France is", true).unwrap();
    assert_eq!(e.get_ids(), [504, 3575, 282, 4649, 314]);
    // Chat markers are single special ids; digits are split one by one.
    let e = tok
        .encode("<|im_start|>user\nHi 2024<|im_end|>", true)
        .unwrap();
    let ids = e.get_ids();
    assert_eq!((ids[0], *ids.last().unwrap()), (1, 2), "{ids:?}");
    let digits: Vec<&str> = e
        .get_tokens()
        .iter()
        .map(String::as_str)
        .filter(|s| s.chars().any(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(digits, ["2", "0", "2", "4"]);
    assert_eq!(tok.decode(ids, true).unwrap(), "user\nHi 2024");
    for s in [
        "The capital of France is",
        "Ünïcödé façade — naïve café, 東京タワー, Привет мир",
        "emoji 🙂👍🏽🇫🇷 and 3.14159 × 10^23, 1,000,000",
        "  leading spaces\n\n\ttabs and newlines \r\n",
        "<|im_start|>assistant\nOK<|im_end|>",
        "",
    ] {
        let e = tok.encode(s, false).unwrap();
        assert_eq!(tok.decode(e.get_ids(), false).unwrap(), s, "{s:?}");
    }
}
