//! Seeded random Whisper weights under any naming convention, so the loaders, name tables and
//! networks are tested without downloads. The same seed gives the same logical tensors in every
//! convention (CTranslate2's fused tensors are assembled from them, with its zero key biases).

use super::config::WhisperConfig;
use super::names::{logical_names, Convention};
use super::params::expected_shape;
use super::Result;
use crate::engine::{Device, Rng, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

/// The logical tensors (OpenAI names) of a random model: weights ~ N(0, 1/in), LayerNorm
/// scales near 1, biases and positions small. WeNet gets no decoder.
pub fn random_logical(
    c: &WhisperConfig,
    with_decoder: bool,
    seed: u64,
    device: &Arc<dyn Device>,
) -> Result<Vec<(String, Tensor)>> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    // Draw the decoder too even when it is dropped, so the encoder is the same either way.
    for name in logical_names(c.n_audio_layer, c.n_text_layer) {
        let shape = expected_shape(c, &name).expect("every logical name has a shape");
        let is_ln = name.ends_with("ln.weight") || name.ends_with("ln_post.weight");
        let t = if is_ln {
            Tensor::randn(&shape, 1.0, 0.1, &mut rng, device)?
        } else if shape.len() >= 2 && !name.contains("embedding") {
            let fan_in: usize = shape[1..].iter().product();
            Tensor::randn(&shape, 0.0, 1.0 / (fan_in as f32).sqrt(), &mut rng, device)?
        } else {
            Tensor::randn(&shape, 0.0, 0.1, &mut rng, device)?
        };
        if with_decoder || name.starts_with("encoder.") {
            out.push((name, t));
        }
    }
    Ok(out)
}

/// Random weights named as in `conv` (see [`random_logical`]).
pub fn random_weights(
    c: &WhisperConfig,
    conv: Convention,
    seed: u64,
    device: &Arc<dyn Device>,
) -> Result<HashMap<String, Tensor>> {
    let logical = random_logical(c, conv != Convention::Wenet, seed, device)?;
    let mut map = HashMap::new();
    // Fused tensors: name → (blocks, rows per block); absent blocks (key biases) stay zero.
    let mut fused: HashMap<String, Vec<Option<Tensor>>> = HashMap::new();
    for (name, t) in logical {
        let loc = conv.name(&name).expect("tables cover every logical name");
        match loc.split {
            None => {
                map.insert(loc.name, t);
            }
            Some((i, n)) => {
                fused.entry(loc.name).or_insert_with(|| vec![None; n])[i] = Some(t);
            }
        }
    }
    for (name, blocks) in fused {
        let like = blocks
            .iter()
            .flatten()
            .next()
            .expect("a fused tensor has a block")
            .clone();
        let parts = blocks
            .into_iter()
            .map(|b| b.map_or_else(|| like.zeros_like(), Ok))
            .collect::<crate::engine::Result<Vec<_>>>()?;
        map.insert(name, Tensor::cat(&parts, 0)?);
    }
    Ok(map)
}
