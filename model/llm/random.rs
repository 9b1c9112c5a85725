//! Seeded random weights under HF names, held in memory, so models of any shape can be built
//! and tested without files.

use super::config::LlmConfig;
use super::Result;
use crate::engine::{DType, Device, Rng, Tensor};
use crate::model::weights::{StoredDType, TensorSource, WeightsError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Named tensors in memory, readable as a [`TensorSource`].
#[derive(Debug, Default, Clone)]
pub struct MemSource {
    /// Name → tensor.
    pub tensors: BTreeMap<String, Tensor>,
}

impl MemSource {
    fn missing(name: &str) -> WeightsError {
        WeightsError::Missing {
            path: PathBuf::from("<memory>"),
            name: name.to_string(),
        }
    }

    fn get(&self, name: &str) -> std::result::Result<&Tensor, WeightsError> {
        self.tensors.get(name).ok_or_else(|| Self::missing(name))
    }
}

impl TensorSource for MemSource {
    fn names(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }
    fn shape(&self, name: &str) -> std::result::Result<&[usize], WeightsError> {
        Ok(self.get(name)?.shape())
    }
    fn dtype(&self, name: &str) -> std::result::Result<StoredDType, WeightsError> {
        Ok(match self.get(name)?.dtype() {
            DType::F32 => StoredDType::F32,
            DType::F16 => StoredDType::F16,
            DType::BF16 => StoredDType::BF16,
            DType::U32 => StoredDType::U32,
            DType::I64 => StoredDType::I64,
        })
    }
    fn tensor(
        &self,
        name: &str,
        dev: &Arc<dyn Device>,
    ) -> std::result::Result<Tensor, WeightsError> {
        let t = self.get(name)?;
        if t.device().name() == dev.name() {
            return Ok(t.clone());
        }
        let engine = |source| WeightsError::Engine {
            path: PathBuf::from("<memory>"),
            name: name.to_string(),
            source,
        };
        Tensor::from_host(t.to_host().map_err(engine)?, t.shape(), dev).map_err(engine)
    }
}

/// What a parameter is, for initialisation and storage choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRole {
    /// A projection or embedding matrix.
    Matrix,
    /// An RMSNorm weight (initialised around 1).
    Norm,
    /// A projection bias.
    Bias,
}

/// Every tensor `config` implies, in load order: HF name, shape, role.
pub fn parameter_specs(c: &LlmConfig) -> Vec<(String, Vec<usize>, ParamRole)> {
    let (h, q_out, kv_out) = (c.hidden, c.heads * c.head_dim, c.kv_heads * c.head_dim);
    let mut out = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![c.vocab, h],
        ParamRole::Matrix,
    )];
    for i in 0..c.layers {
        let p = format!("model.layers.{i}");
        out.push((
            format!("{p}.input_layernorm.weight"),
            vec![h],
            ParamRole::Norm,
        ));
        out.push((
            format!("{p}.post_attention_layernorm.weight"),
            vec![h],
            ParamRole::Norm,
        ));
        for (name, o, inp, bias) in [
            ("self_attn.q_proj", q_out, h, c.qkv_bias),
            ("self_attn.k_proj", kv_out, h, c.qkv_bias),
            ("self_attn.v_proj", kv_out, h, c.qkv_bias),
            ("self_attn.o_proj", h, q_out, c.o_bias),
            ("mlp.gate_proj", c.ffn, h, false),
            ("mlp.up_proj", c.ffn, h, false),
            ("mlp.down_proj", h, c.ffn, false),
        ] {
            out.push((
                format!("{p}.{name}.weight"),
                vec![o, inp],
                ParamRole::Matrix,
            ));
            if bias {
                out.push((format!("{p}.{name}.bias"), vec![o], ParamRole::Bias));
            }
        }
    }
    out.push(("model.norm.weight".into(), vec![h], ParamRole::Norm));
    if !c.tied_embeddings {
        out.push(("lm_head.weight".into(), vec![c.vocab, h], ParamRole::Matrix));
    }
    out
}

/// Every tensor `config` implies, N(0, `std`²) (norm weights 1 + N(0, `std`²)), from `seed`,
/// stored as `dtype`.
pub fn random_weights(
    config: &LlmConfig,
    seed: u64,
    std: f32,
    dtype: DType,
    device: &Arc<dyn Device>,
) -> Result<MemSource> {
    config.validate("random_weights")?;
    let c = config;
    let mut rng = Rng::new(seed);
    let mut src = MemSource::default();
    for (name, shape, role) in parameter_specs(c) {
        let mean = if role == ParamRole::Norm { 1.0 } else { 0.0 };
        let t = Tensor::randn(&shape, mean, std, &mut rng, device)?.to_dtype(dtype)?;
        src.tensors.insert(name, t);
    }
    Ok(src)
}
