//! Reading an LLM out of a checkpoint that wraps it (REFERENCE §7): OSUM's `infer.pt` stores the
//! LLM under a prefix (`llama_model.base_model.model.`) with unmerged PEFT LoRA, so a projection
//! is `….q_proj.base_layer.weight` (older PEFT: plain `….q_proj.weight`) next to
//! `….q_proj.lora_A.default.weight` `[r, in]` and `….q_proj.lora_B.default.weight` `[out, r]`.
//!
//! [`PeftView`] presents such a checkpoint under plain HF names, so [`Llm::load`] reads the base
//! weights unchanged; [`attach_peft_lora`] then attaches the adapters it finds.

use super::lora::Lora;
use super::model::Llm;
use super::{LlmError, Result};
use crate::engine::{DType, Device, Tensor};
use crate::model::weights::{StoredDType, TensorSource, WeightsError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A [`TensorSource`] showing the tensors of `inner` under `prefix` by their HF names:
/// `{prefix}X.base_layer.weight` appears as `X.weight`, `{prefix}Y` as `Y`; LoRA tensors and
/// names outside the prefix are hidden.
pub struct PeftView<'a> {
    inner: &'a dyn TensorSource,
    /// HF name → name in `inner`.
    map: BTreeMap<String, String>,
}

impl<'a> PeftView<'a> {
    /// Index the names of `inner` under `prefix` (e.g. `"llama_model.base_model.model."`, or
    /// `""`).
    pub fn new(inner: &'a dyn TensorSource, prefix: &str) -> PeftView<'a> {
        let mut map = BTreeMap::new();
        for name in inner.names() {
            let Some(rest) = name.strip_prefix(prefix) else {
                continue;
            };
            if rest.contains(".lora_") {
                continue;
            }
            let hf = match rest.strip_suffix(".base_layer.weight") {
                Some(stem) => format!("{stem}.weight"),
                None => match rest.strip_suffix(".base_layer.bias") {
                    Some(stem) => format!("{stem}.bias"),
                    None => rest.to_string(),
                },
            };
            map.insert(hf, name.to_string());
        }
        PeftView { inner, map }
    }

    fn inner_name(&self, name: &str) -> std::result::Result<&str, WeightsError> {
        self.map
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| WeightsError::Missing {
                path: "<peft view>".into(),
                name: name.to_string(),
            })
    }
}

impl TensorSource for PeftView<'_> {
    fn names(&self) -> Vec<&str> {
        self.map.keys().map(String::as_str).collect()
    }
    fn shape(&self, name: &str) -> std::result::Result<&[usize], WeightsError> {
        self.inner.shape(self.inner_name(name)?)
    }
    fn dtype(&self, name: &str) -> std::result::Result<StoredDType, WeightsError> {
        self.inner.dtype(self.inner_name(name)?)
    }
    fn tensor(
        &self,
        name: &str,
        dev: &Arc<dyn Device>,
    ) -> std::result::Result<Tensor, WeightsError> {
        self.inner.tensor(self.inner_name(name)?, dev)
    }
}

/// Attach every PEFT adapter stored in `src` under `prefix` to the matching projection of
/// `model` (`{prefix}{projection}.lora_{A,B}.default.weight`, or without `.default`), with
/// scale `alpha/r` (α is not in the state dict: OSUM uses r 8 / α 32, OSUM-Pangu r 64 / α 32).
/// A and B are converted to f32; `trainable` makes them trainable leaves. A projection with only
/// one of A/B is an error. Returns how many adapters were attached.
pub fn attach_peft_lora(
    model: &mut Llm,
    src: &dyn TensorSource,
    prefix: &str,
    alpha: f32,
    trainable: bool,
) -> Result<usize> {
    let device = model.device().clone();
    let fetch = |name: &str| -> Result<Option<Tensor>> {
        for cand in [
            format!("{prefix}{name}.default.weight"),
            format!("{prefix}{name}.weight"),
        ] {
            if src.shape(&cand).is_ok() {
                let t = src.tensor(&cand, &device)?.to_dtype(DType::F32)?;
                return Ok(Some(if trainable { t.variable() } else { t }));
            }
        }
        Ok(None)
    };
    let mut n = 0;
    for block in &mut model.blocks {
        for (_, lin) in block.linears_mut() {
            let a = fetch(&format!("{}.lora_A", lin.name()))?;
            let b = fetch(&format!("{}.lora_B", lin.name()))?;
            match (a, b) {
                (Some(a), Some(b)) => {
                    lin.attach_lora(Lora::from_tensors(a, b, alpha)?)?;
                    n += 1;
                }
                (None, None) => {}
                _ => {
                    return Err(LlmError::MissingTensor(format!(
                        "{prefix}{}.lora_A/lora_B (only one of the pair is present)",
                        lin.name()
                    )))
                }
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{cpu_device, no_grad, Rng};
    use crate::model::llm::random::{random_weights, MemSource};
    use crate::model::llm::LlmConfig;

    fn tiny() -> LlmConfig {
        LlmConfig {
            hidden: 16,
            ffn: 24,
            layers: 2,
            heads: 2,
            kv_heads: 1,
            head_dim: 8,
            vocab: 20,
            max_positions: 16,
            bos_id: Some(1),
            eos_ids: vec![2],
            ..LlmConfig::openpangu_embedded_7b()
        }
    }

    /// A PEFT-wrapped checkpoint (prefix, `base_layer`, `lora_*.default`) loads to the same
    /// logits as the plain model with the same adapters attached by hand.
    #[test]
    fn peft_checkpoint_equals_plain_model_with_adapters() {
        let dev = cpu_device();
        let c = tiny();
        let plain = random_weights(&c, 1, 0.2, DType::F32, &dev).unwrap();
        let prefix = "llama_model.base_model.model.";
        let mut wrapped = MemSource::default();
        let mut rng = Rng::new(2);
        let mut adapters = Vec::new();
        for (name, t) in &plain.tensors {
            let is_q = name.ends_with("q_proj.weight");
            let stored = if is_q {
                name.replace(".weight", ".base_layer.weight")
            } else {
                name.clone()
            };
            wrapped
                .tensors
                .insert(format!("{prefix}{stored}"), t.clone());
            if is_q {
                let stem = name.trim_end_matches(".weight");
                let a = Tensor::randn(&[4, 16], 0.0, 0.3, &mut rng, &dev).unwrap();
                let b = Tensor::randn(&[16, 4], 0.0, 0.3, &mut rng, &dev).unwrap();
                for (k, v) in [("lora_A", &a), ("lora_B", &b)] {
                    let key = format!("{prefix}{stem}.{k}.default.weight");
                    wrapped
                        .tensors
                        .insert(key, v.to_dtype(DType::BF16).unwrap());
                }
                adapters.push((stem.to_string(), a, b));
            }
        }
        let view = PeftView::new(&wrapped, prefix);
        let mut m = Llm::load(&view, c.clone(), &dev).unwrap();
        assert_eq!(
            attach_peft_lora(&mut m, &wrapped, prefix, 32.0, false).unwrap(),
            2
        );
        let mut want = Llm::load(&plain, c, &dev).unwrap();
        for block in &mut want.blocks {
            let (_, a, b) = adapters
                .iter()
                .find(|(s, _, _)| s == block.attn.q.name())
                .unwrap();
            let (a, b) = (
                a.to_dtype(DType::BF16)
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap(),
                b.to_dtype(DType::BF16)
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap(),
            );
            block
                .attn
                .q
                .attach_lora(Lora::from_tensors(a, b, 32.0).unwrap())
                .unwrap();
        }
        let ids = Tensor::from_vec(vec![1u32, 5, 7, 3], &[1, 4], &dev).unwrap();
        let (x, y) = no_grad(|| {
            (
                m.forward(&ids, None).unwrap().to_vec::<f32>().unwrap(),
                want.forward(&ids, None).unwrap().to_vec::<f32>().unwrap(),
            )
        });
        assert_eq!(x, y);
        // A lone lora_A is an error naming the projection.
        let lone = format!("{prefix}model.layers.0.self_attn.q_proj.lora_B.default.weight");
        wrapped.tensors.remove(&lone);
        let e = attach_peft_lora(&mut want, &wrapped, prefix, 32.0, false).unwrap_err();
        assert!(
            e.to_string().contains("model.layers.0.self_attn.q_proj"),
            "{e}"
        );
    }
}
