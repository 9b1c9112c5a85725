//! The adapter's parameter table: every tensor's OSUM name and shape for a config, in one fixed
//! order, with the initialisation PyTorch would give it. Loading (from any
//! [`TensorSource`], with an optional key prefix) and random init both produce the same
//! `(name, f32 tensor)` list, so the network is built one way whatever the origin.

use super::config::{AdapterConfig, AdapterVariant};
use super::{AdapterError, Result};
use crate::engine::{DType, Device, Rng, Tensor};
use crate::model::weights::TensorSource;
use std::collections::HashMap;
use std::sync::Arc;

/// The buffer WeNet registers for the sinusoidal table (`[1, max_len, dim]`). Optional: when a
/// checkpoint has it, it is used as is (it is the exact f32 table the model was trained with).
pub const POS_TABLE: &str = "speech_transformer.embed.pos_enc.pe";

/// How PyTorch initialises a tensor of this kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// `U(−bound, bound)`: Linear/Conv weights and biases (`kaiming_uniform_(a=√5)` gives
    /// `bound = 1/√fan_in` for the weight; the bias uses the same bound).
    Uniform(f32),
    /// `N(0, std²)`: `nn.Embedding` (std 1).
    Normal(f32),
    /// LayerNorm scale.
    Ones,
    /// LayerNorm shift.
    Zeros,
}

/// One parameter: OSUM name (without prefix), shape, initialisation.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Name as in the released checkpoints, e.g. `speech_llama_proj.weight`.
    pub name: String,
    /// Shape (PyTorch layout: Linear `[out, in]`, Conv1d `[out, in, k]`, Conv2d
    /// `[out, in, kh, kw]`).
    pub shape: Vec<usize>,
    /// Initialisation for training from scratch.
    pub init: Init,
}

/// Collects specs under the naming helpers below.
struct Table(Vec<ParamSpec>);

impl Table {
    fn push(&mut self, name: String, shape: Vec<usize>, init: Init) {
        self.0.push(ParamSpec { name, shape, init });
    }

    /// A layer with weight `shape` (`shape[0]` outputs, fan-in the rest) and a bias.
    fn affine(&mut self, prefix: &str, shape: Vec<usize>) {
        let fan_in: usize = shape[1..].iter().product();
        let bound = 1.0 / (fan_in as f32).sqrt();
        let out = shape[0];
        self.push(format!("{prefix}.weight"), shape, Init::Uniform(bound));
        self.push(format!("{prefix}.bias"), vec![out], Init::Uniform(bound));
    }

    fn norm(&mut self, prefix: &str, d: usize) {
        self.push(format!("{prefix}.weight"), vec![d], Init::Ones);
        self.push(format!("{prefix}.bias"), vec![d], Init::Zeros);
    }
}

/// Every parameter of the adapter for `c`, in a fixed order (downsampler, transformer, proj,
/// speech embeddings).
pub fn param_specs(c: &AdapterConfig) -> Vec<ParamSpec> {
    let mut t = Table(Vec::new());
    let d = c.dim;
    match c.variant {
        AdapterVariant::Released => {
            // nn.Sequential indices: pads at 0, 3, 6, GELUs at 2, 5, 8.
            t.affine("down_sample_2.conv.1", vec![d, c.enc_dim, 3]);
            t.affine("down_sample_2.conv.4", vec![d, d, 3]);
            t.affine("down_sample_2.conv.7", vec![d, d, 3]);
            t.affine("speech_transformer.embed.out.0", vec![d, d]);
            t.norm("speech_transformer.embed.out.1", d);
        }
        AdapterVariant::Conv2dPaper => {
            let ch = c.conv_channels();
            t.affine("speech_transformer.embed.conv.0", vec![ch, 1, 3, 3]);
            t.affine("speech_transformer.embed.conv.2", vec![ch, ch, 3, 3]);
            t.affine(
                "speech_transformer.embed.out.0",
                vec![d, ch * c.conv_freq_bins()],
            );
        }
    }
    for i in 0..c.layers {
        let p = format!("speech_transformer.encoders.{i}");
        for proj in ["q", "k", "v", "out"] {
            t.affine(&format!("{p}.self_attn.linear_{proj}"), vec![d, d]);
        }
        t.affine(&format!("{p}.feed_forward.w_1"), vec![c.ffn, d]);
        t.affine(&format!("{p}.feed_forward.w_2"), vec![d, c.ffn]);
        t.norm(&format!("{p}.norm1"), d);
        t.norm(&format!("{p}.norm2"), d);
    }
    t.norm("speech_transformer.after_norm", d);
    t.affine("speech_llama_proj", vec![c.llm_dim, d]);
    t.push(
        "speech_token_emded.weight".into(),
        vec![c.n_speech_tokens, c.llm_dim],
        Init::Normal(1.0),
    );
    t.0
}

/// Named f32 parameters in [`param_specs`] order.
pub type NamedParams = Vec<(String, Tensor)>;

/// Seeded random parameters for `c` (PyTorch's default init), drawn in [`param_specs`] order.
pub fn random_params(
    c: &AdapterConfig,
    seed: u64,
    device: &Arc<dyn Device>,
) -> Result<NamedParams> {
    c.validate()?;
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for s in param_specs(c) {
        let t = match s.init {
            Init::Uniform(b) => Tensor::rand_uniform(&s.shape, -b, b, &mut rng, device)?,
            Init::Normal(std) => Tensor::randn(&s.shape, 0.0, std, &mut rng, device)?,
            Init::Ones => Tensor::ones(&s.shape, DType::F32, device)?,
            Init::Zeros => Tensor::zeros(&s.shape, DType::F32, device)?,
        };
        out.push((s.name, t));
    }
    Ok(out)
}

/// Load every parameter of `c` from `src`, named `prefix + name` (e.g. prefix `""` for the
/// OSUM checkpoint's own keys, `"adapter."` for a nested file). Every shape is checked before
/// any data is read; tensors are widened to f32. Also returns the position table
/// ([`POS_TABLE`]) as `[L, dim]` when the file has one.
pub fn load_params<S: TensorSource + ?Sized>(
    c: &AdapterConfig,
    src: &S,
    prefix: &str,
    device: &Arc<dyn Device>,
) -> Result<(NamedParams, Option<Tensor>)> {
    c.validate()?;
    let specs = param_specs(c);
    for s in &specs {
        let full = format!("{prefix}{}", s.name);
        let found = src.shape(&full)?;
        if found != s.shape.as_slice() {
            return Err(AdapterError::BadShape {
                name: full,
                expected: s.shape.clone(),
                found: found.to_vec(),
            });
        }
    }
    let mut out = Vec::with_capacity(specs.len());
    for s in specs {
        let t = src.tensor(&format!("{prefix}{}", s.name), device)?;
        out.push((s.name, to_f32(t)?));
    }
    let name = format!("{prefix}{POS_TABLE}");
    let table = match src.shape(&name) {
        Ok(shape) => {
            let ok = shape.len() == 3 && shape[0] == 1 && shape[1] > 0 && shape[2] == c.dim;
            if !ok {
                return Err(AdapterError::BadShape {
                    name,
                    expected: vec![1, c.max_positions, c.dim],
                    found: shape.to_vec(),
                });
            }
            Some(to_f32(src.tensor(&name, device)?)?.squeeze(0)?)
        }
        Err(_) => None,
    };
    Ok((out, table))
}

/// Check an in-memory set against [`param_specs`] (names and shapes; extra names are
/// ignored) and return it in spec order as f32.
pub fn params_from_map(c: &AdapterConfig, mut map: HashMap<String, Tensor>) -> Result<NamedParams> {
    c.validate()?;
    let mut out = Vec::new();
    for s in param_specs(c) {
        let t = map
            .remove(&s.name)
            .ok_or_else(|| AdapterError::Missing(s.name.clone()))?;
        if t.shape() != s.shape.as_slice() {
            return Err(AdapterError::BadShape {
                name: s.name,
                expected: s.shape,
                found: t.shape().to_vec(),
            });
        }
        out.push((s.name, to_f32(t)?));
    }
    Ok(out)
}

/// The engine's activations are f32; half-precision weights are widened once at load.
fn to_f32(t: Tensor) -> Result<Tensor> {
    Ok(if t.dtype() == DType::F32 {
        t
    } else {
        t.to_dtype(DType::F32)?
    })
}

/// Hands out parameters by name while the network is assembled.
pub(crate) struct Take(HashMap<String, Tensor>);

impl Take {
    pub(crate) fn new(params: &NamedParams) -> Take {
        Take(params.iter().cloned().collect())
    }

    /// The tensor `name` (present by construction: every name comes from [`param_specs`]).
    pub(crate) fn get(&mut self, name: &str) -> Result<Tensor> {
        self.0
            .remove(name)
            .ok_or_else(|| AdapterError::Missing(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_table_matches_the_osum_checkpoint_sizes() {
        let specs = param_specs(&AdapterConfig::osum_pangu());
        let count: usize = specs
            .iter()
            .map(|s| s.shape.iter().product::<usize>())
            .sum();
        // 3 convs (3·(1024·1024·3 + 1024)) + embed.out (1024² + 1024 + 2·1024)
        // + 4 blocks (4·(1024² + 1024) + 2·1024·2560 + 2560 + 1024 + 4·1024)
        // + after_norm + proj (4096·1024 + 4096) + speech embeddings 4099·4096.
        let convs = 3 * (1024 * 1024 * 3 + 1024);
        let embed = 1024 * 1024 + 1024 + 2 * 1024;
        let block = 4 * (1024 * 1024 + 1024) + 2 * 1024 * 2560 + 2560 + 1024 + 4 * 1024;
        let tail = 2 * 1024 + 4096 * 1024 + 4096 + 4099 * 4096;
        assert_eq!(count, convs + embed + 4 * block + tail);
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        for n in [
            "down_sample_2.conv.1.weight",
            "down_sample_2.conv.7.bias",
            "speech_transformer.embed.out.1.weight",
            "speech_transformer.encoders.3.self_attn.linear_out.bias",
            "speech_transformer.encoders.0.feed_forward.w_1.weight",
            "speech_transformer.after_norm.bias",
            "speech_llama_proj.weight",
            "speech_token_emded.weight",
        ] {
            assert!(names.contains(&n), "{n}");
        }
    }

    #[test]
    fn init_bounds_are_pytorch_like() {
        let c = AdapterConfig::osum_tiny();
        let dev = crate::engine::cpu_device();
        let params = random_params(&c, 3, &dev).unwrap();
        let get = |n: &str| {
            params
                .iter()
                .find(|(k, _)| k == n)
                .unwrap()
                .1
                .to_vec::<f32>()
                .unwrap()
        };
        let w = get("down_sample_2.conv.1.weight");
        let bound = 1.0 / ((384 * 3) as f32).sqrt();
        assert!(w.iter().all(|v| v.abs() <= bound));
        assert!(w.iter().any(|v| v.abs() > 0.9 * bound));
        assert!(get("speech_transformer.after_norm.weight")
            .iter()
            .all(|&v| v == 1.0));
        let e = get("speech_token_emded.weight");
        let var = e.iter().map(|v| v * v).sum::<f32>() / e.len() as f32;
        assert!((var - 1.0).abs() < 0.02, "{var}");
        let again = random_params(&c, 3, &dev).unwrap();
        assert_eq!(
            again[0].1.to_vec::<f32>().unwrap(),
            params[0].1.to_vec::<f32>().unwrap()
        );
    }
}
