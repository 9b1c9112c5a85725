//! LLM sizes and switches (REFERENCE §5): presets for the three models and parsing of a
//! Hugging Face `config.json` (`llama`, `qwen2` and openPangu's `PanguEmbedded`).

use super::{LlmError, Result};
use crate::engine::RopeStyle;
use serde_json::Value;
use std::path::Path;

/// Every size and switch of a Llama-family decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    /// Residual width.
    pub hidden: usize,
    /// Inner width of the SwiGLU MLP.
    pub ffn: usize,
    /// Decoder blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (GQA: `heads % kv_heads == 0`).
    pub kv_heads: usize,
    /// Channels per head (not necessarily `hidden / heads`).
    pub head_dim: usize,
    /// Vocabulary size (rows of the embedding and of the LM head).
    pub vocab: usize,
    /// RoPE base θ: `inv_freq[i] = θ^(−2i/head_dim)`.
    pub rope_theta: f32,
    /// Which channel pairs RoPE rotates: HF checkpoints use rotate-half; GGUF files store q/k
    /// rows permuted for the interleaved form (REFERENCE §5), so they either un-permute on load
    /// or keep the permutation and use [`RopeStyle::Interleaved`].
    pub rope_style: RopeStyle,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Biases on the q, k and v projections (openPangu, Qwen2).
    pub qkv_bias: bool,
    /// Bias on the output projection (openPangu only).
    pub o_bias: bool,
    /// The LM head reuses the token embedding (SmolLM2): no `lm_head.weight` is read.
    pub tied_embeddings: bool,
    /// The BOS id the configuration names, if any.
    pub bos_id: Option<u32>,
    /// Whether prompts start with [`LlmConfig::bos_id`] (openPangu's tokenizer adds it; Qwen2's
    /// and SmolLM2's do not).
    pub add_bos: bool,
    /// Ids that end generation (one or several).
    pub eos_ids: Vec<u32>,
    /// Positions the model was trained for (bounds the KV cache).
    pub max_positions: usize,
}

/// Upper bound on every size, so a corrupt config cannot ask for absurd allocations later
/// (random weights, caches). Far above any released model.
const MAX_DIM: usize = 1 << 22;

impl LlmConfig {
    /// openPangu-Embedded-7B-V1.1 (REFERENCE §5; 32768 positions as its `config.json`).
    pub fn openpangu_embedded_7b() -> LlmConfig {
        LlmConfig {
            hidden: 4096,
            ffn: 12800,
            layers: 34,
            heads: 32,
            kv_heads: 8,
            head_dim: 128,
            vocab: 153376,
            rope_theta: 1.6e7,
            rope_style: RopeStyle::RotateHalf,
            rms_eps: 1e-5,
            qkv_bias: true,
            o_bias: true,
            tied_embeddings: false,
            bos_id: Some(1),
            add_bos: true,
            eos_ids: vec![45892],
            max_positions: 32768,
        }
    }

    /// Qwen2-7B as used by OSUM (REFERENCE §5; 32768 positions, its native context).
    pub fn qwen2_7b() -> LlmConfig {
        LlmConfig {
            hidden: 3584,
            ffn: 18944,
            layers: 28,
            heads: 28,
            kv_heads: 4,
            head_dim: 128,
            vocab: 152064,
            rope_theta: 1e6,
            rope_style: RopeStyle::RotateHalf,
            rms_eps: 1e-6,
            qkv_bias: true,
            o_bias: false,
            tied_embeddings: false,
            bos_id: None,
            add_bos: false,
            eos_ids: vec![151643],
            max_positions: 32768,
        }
    }

    /// SmolLM2-135M(-Instruct), the small real model (REFERENCE §5).
    pub fn smollm2_135m() -> LlmConfig {
        LlmConfig {
            hidden: 576,
            ffn: 1536,
            layers: 30,
            heads: 9,
            kv_heads: 3,
            head_dim: 64,
            vocab: 49152,
            rope_theta: 1e5,
            rope_style: RopeStyle::RotateHalf,
            rms_eps: 1e-5,
            qkv_bias: false,
            o_bias: false,
            tied_embeddings: true,
            bos_id: Some(1),
            add_bos: false,
            eos_ids: vec![2],
            max_positions: 8192,
        }
    }

    /// Query heads per key/value head.
    pub fn group(&self) -> usize {
        self.heads / self.kv_heads.max(1)
    }

    /// The configuration a GGUF file records (llama.cpp's `llama.*` keys, read by
    /// [`LlamaParams`](crate::model::weights::gguf::llama::LlamaParams)). Weights read through
    /// `GgufLlama` are already back in HF order, so RoPE is rotate-half.
    pub fn from_gguf(p: &crate::model::weights::gguf::llama::LlamaParams) -> Result<LlmConfig> {
        if p.rope_dim != p.head_dim {
            return Err(LlmError::Config {
                source_name: "gguf".into(),
                msg: format!(
                    "partial RoPE (rope.dimension_count {} < head_dim {}) is not supported",
                    p.rope_dim, p.head_dim
                ),
            });
        }
        let c = LlmConfig {
            hidden: p.hidden,
            ffn: p.ffn,
            layers: p.layers,
            heads: p.heads,
            kv_heads: p.kv_heads,
            head_dim: p.head_dim,
            vocab: p.vocab,
            rope_theta: p.rope_theta,
            rope_style: RopeStyle::RotateHalf,
            rms_eps: p.rms_eps,
            qkv_bias: false,
            o_bias: false,
            tied_embeddings: p.tied_embeddings,
            bos_id: p.bos,
            add_bos: p.add_bos,
            eos_ids: p.eos.into_iter().collect(),
            max_positions: p.context_length,
        };
        c.validate("gguf")?;
        Ok(c)
    }

    /// Read and parse an HF `config.json`.
    pub fn from_hf_file(path: impl AsRef<Path>) -> Result<LlmConfig> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| LlmError::Config {
            source_name: path.display().to_string(),
            msg: format!("cannot read: {e}"),
        })?;
        Self::from_hf_json(&text, &path.display().to_string())
    }

    /// Parse the text of an HF `config.json`; `source_name` names it in errors.
    ///
    /// `model_type` selects the bias convention: `llama` reads `attention_bias` (q, k, v **and**
    /// o, as HF's `LlamaAttention`), `qwen2` always has q, k, v biases and none on o,
    /// `PanguEmbedded` reads `bias` (q, k, v and o). Missing optional fields take the HF class
    /// defaults (`rope_theta` 10000, `rms_norm_eps` 1e-6, `num_key_value_heads` = heads,
    /// `head_dim` = hidden/heads, untied). Features this implementation lacks (`rope_scaling`,
    /// `mlp_bias`, an activation other than SiLU) are refused rather than ignored.
    pub fn from_hf_json(text: &str, source_name: &str) -> Result<LlmConfig> {
        let err = |msg: String| LlmError::Config {
            source_name: source_name.to_string(),
            msg,
        };
        let json: Value = serde_json::from_str(text).map_err(|e| err(format!("not JSON: {e}")))?;
        let obj = json
            .as_object()
            .ok_or_else(|| err("the top level is not an object".into()))?;
        let present = |key: &str| obj.get(key).filter(|v| !v.is_null());
        let size = |key: &str| -> Result<usize> {
            let v = present(key).ok_or_else(|| err(format!("missing `{key}`")))?;
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| err(format!("`{key}` = {v} is not a non-negative integer")))
        };
        let size_or = |key: &str, default: usize| match present(key) {
            Some(_) => size(key),
            None => Ok(default),
        };
        let float_or = |key: &str, default: f64| -> Result<f64> {
            match present(key) {
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| err(format!("`{key}` = {v} is not a number"))),
                None => Ok(default),
            }
        };
        let bool_or = |key: &str, default: bool| -> Result<bool> {
            match present(key) {
                Some(v) => v
                    .as_bool()
                    .ok_or_else(|| err(format!("`{key}` = {v} is not a boolean"))),
                None => Ok(default),
            }
        };
        let id = |v: &Value| -> Result<u32> {
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| err(format!("token id {v} is not a u32")))
        };

        let model_type = present("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| err("missing `model_type`".into()))?;
        let (qkv_bias, o_bias, add_bos) = match model_type {
            "llama" => {
                let b = bool_or("attention_bias", false)?;
                (b, b, false)
            }
            "qwen2" => (true, false, false),
            "PanguEmbedded" => {
                let b = bool_or("bias", true)?;
                (b, b, true)
            }
            other => {
                return Err(err(format!(
                    "model_type {other:?} is not supported (llama, qwen2, PanguEmbedded)"
                )))
            }
        };
        if bool_or("mlp_bias", false)? {
            return Err(err("`mlp_bias` = true is not supported".into()));
        }
        if let Some(v) = present("rope_scaling") {
            return Err(err(format!("`rope_scaling` = {v} is not supported")));
        }
        if bool_or("use_sliding_window", false)? {
            return Err(err("`use_sliding_window` = true is not supported".into()));
        }
        if let Some(act) = present("hidden_act") {
            if act.as_str() != Some("silu") {
                return Err(err(format!("`hidden_act` = {act} is not supported (silu)")));
            }
        }

        let hidden = size("hidden_size")?;
        let heads = size("num_attention_heads")?;
        if heads == 0 {
            return Err(err("`num_attention_heads` is 0".into()));
        }
        let eos_ids = match present("eos_token_id") {
            None => vec![],
            Some(Value::Array(ids)) => ids.iter().map(id).collect::<Result<_>>()?,
            Some(v) => vec![id(v)?],
        };
        let bos_id = present("bos_token_id").map(id).transpose()?;
        let rope_theta = float_or("rope_theta", 10000.0)? as f32;
        let rms_eps = float_or("rms_norm_eps", 1e-6)? as f32;
        let config = LlmConfig {
            hidden,
            ffn: size("intermediate_size")?,
            layers: size("num_hidden_layers")?,
            heads,
            kv_heads: size_or("num_key_value_heads", heads)?,
            head_dim: size_or("head_dim", hidden / heads)?,
            vocab: size("vocab_size")?,
            rope_theta,
            rope_style: RopeStyle::RotateHalf,
            rms_eps,
            qkv_bias,
            o_bias,
            tied_embeddings: bool_or("tie_word_embeddings", false)?,
            bos_id,
            add_bos: add_bos && bos_id.is_some(),
            eos_ids,
            max_positions: size_or("max_position_embeddings", 2048)?,
        };
        config.validate(source_name)?;
        Ok(config)
    }

    /// Check the sizes are positive, consistent (GQA grouping, even head_dim, ids inside the
    /// vocabulary) and bounded; `source_name` names the configuration in the error.
    pub fn validate(&self, source_name: &str) -> Result<()> {
        let err = |msg: String| LlmError::Config {
            source_name: source_name.to_string(),
            msg,
        };
        let sizes = [
            ("hidden", self.hidden),
            ("ffn", self.ffn),
            ("layers", self.layers),
            ("heads", self.heads),
            ("kv_heads", self.kv_heads),
            ("head_dim", self.head_dim),
            ("vocab", self.vocab),
            ("max_positions", self.max_positions),
        ];
        for (name, v) in sizes {
            if v == 0 || v > MAX_DIM {
                return Err(err(format!("{name} = {v} is outside 1..={MAX_DIM}")));
            }
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return Err(err(format!(
                "heads {} are not a multiple of kv_heads {}",
                self.heads, self.kv_heads
            )));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(err(format!(
                "head_dim {} must be even for RoPE",
                self.head_dim
            )));
        }
        if self.heads * self.head_dim > MAX_DIM {
            return Err(err(format!(
                "heads × head_dim = {} exceeds {MAX_DIM}",
                self.heads * self.head_dim
            )));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(err(format!(
                "rope_theta {} must be positive",
                self.rope_theta
            )));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps >= 0.0) {
            return Err(err(format!(
                "rms_eps {} must be non-negative",
                self.rms_eps
            )));
        }
        for &id in self.eos_ids.iter().chain(&self.bos_id) {
            if id as usize >= self.vocab {
                return Err(err(format!(
                    "token id {id} is outside the vocabulary of {}",
                    self.vocab
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_match_reference_table() {
        for c in [
            LlmConfig::openpangu_embedded_7b(),
            LlmConfig::qwen2_7b(),
            LlmConfig::smollm2_135m(),
        ] {
            c.validate("preset").unwrap();
        }
        let p = LlmConfig::openpangu_embedded_7b();
        assert_eq!((p.group(), p.qkv_bias, p.o_bias), (4, true, true));
        let q = LlmConfig::qwen2_7b();
        assert_eq!((q.group(), q.qkv_bias, q.o_bias), (7, true, false));
        let s = LlmConfig::smollm2_135m();
        assert_eq!(
            (s.group(), s.tied_embeddings, s.eos_ids.clone()),
            (3, true, vec![2])
        );
    }

    const PANGU: &str = r#"{"architectures": ["PanguEmbeddedForCausalLM"], "bias": true,
        "bos_token_id": 1, "pad_token_id": 0, "eos_token_id": 45892, "hidden_act": "silu",
        "hidden_size": 4096, "intermediate_size": 12800, "max_position_embeddings": 32768,
        "model_type": "PanguEmbedded", "num_attention_heads": 32, "num_hidden_layers": 34,
        "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 16000000.0,
        "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 153376}"#;

    #[test]
    fn parses_pangu_config_as_the_preset() {
        let c = LlmConfig::from_hf_json(PANGU, "pangu").unwrap();
        assert_eq!(c, LlmConfig::openpangu_embedded_7b());
    }

    #[test]
    fn llama_attention_bias_sets_qkvo_and_qwen2_sets_qkv_only() {
        let llama = r#"{"model_type": "llama", "hidden_size": 64, "intermediate_size": 160,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 16, "vocab_size": 300, "attention_bias": true, "eos_token_id": [2, 7],
            "tie_word_embeddings": true}"#;
        let c = LlmConfig::from_hf_json(llama, "t").unwrap();
        assert!(c.qkv_bias && c.o_bias && c.tied_embeddings);
        assert_eq!(
            (c.eos_ids.clone(), c.rope_theta, c.rms_eps),
            (vec![2, 7], 1e4, 1e-6)
        );
        let qwen = llama.replace("\"llama\"", "\"qwen2\"");
        let c = LlmConfig::from_hf_json(&qwen, "t").unwrap();
        assert!(c.qkv_bias && !c.o_bias);
        let no_bias = llama.replace("\"attention_bias\": true", "\"attention_bias\": false");
        let c = LlmConfig::from_hf_json(&no_bias, "t").unwrap();
        assert!(!c.qkv_bias && !c.o_bias);
    }

    #[test]
    fn refuses_bad_or_unsupported_configs_with_the_source_named() {
        let cases = [
            ("not json", "not JSON"),
            (r#"{"model_type": "gpt2"}"#, "not supported"),
            (
                &PANGU.replace("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 5"),
                "multiple",
            ),
            (
                &PANGU.replace("\"vocab_size\": 153376", "\"vocab_size\": -3"),
                "vocab_size",
            ),
            (&PANGU.replace("\"hidden_size\": 4096,", ""), "hidden_size"),
            (
                &PANGU.replace("\"bias\": true", "\"rope_scaling\": {\"type\": \"linear\"}"),
                "rope_scaling",
            ),
            (&PANGU.replace("\"silu\"", "\"gelu\""), "hidden_act"),
            (&PANGU.replace("45892", "999999"), "outside the vocabulary"),
        ];
        for (text, want) in cases {
            let e = LlmConfig::from_hf_json(text, "cfg.json")
                .unwrap_err()
                .to_string();
            assert!(e.contains("cfg.json") && e.contains(want), "{e}");
        }
    }
}
