//! Every encoder layer's output for a manifest's clips, mean- and std-pooled over time
//! (`osum features`): the input of the linear probes in scripts/probe_encoder_features.py,
//! which measure how much of a label (gender, style, …) each layer of the frozen encoder makes
//! readable on voices a probe never saw.
//!
//! Why: the attribute alignment (train/attributes.rs) can only teach the adapter what the encoder
//! already carries. A linear probe that reads gender off held-out voices at 89% is the yardstick
//! for a model on the same input: a model well below it has room in training, a model on it needs
//! better features or data to move.
//!
//! The file is safetensors: one f32 tensor `pooled` `[clips, layers, 2·d]` (each layer's mean over
//! frames, then its standard deviation), and in the header's metadata the `encoder`, the `layers`'
//! names and the clips' `audio` fields (a JSON list, as written in the manifest, in the order of
//! the tensor's rows; each clip once, in order of first appearance).

use crate::engine::Tensor;
use crate::model::adapter::safetensors_bytes;
use crate::model::audio;
use crate::model::osum::{OsumModel, MAX_SECONDS};
use crate::train::atomic::write_atomic;
use crate::train::data::Manifest;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Pooled per-layer encoder features of a set of clips.
pub struct PooledLayers {
    /// The encoder's name (the preset's `encoder`).
    pub encoder: String,
    /// Each clip's `audio` field, in row order.
    pub audio: Vec<String>,
    /// Layer names: `stem`, `block1` … `blockN`, `ln_post`.
    pub layers: Vec<String>,
    /// Encoder width `d`.
    pub dim: usize,
    /// `[clips, layers, 2·d]` row-major: per layer the mean over frames, then the std.
    pub pooled: Vec<f32>,
}

/// Mean then (population) standard deviation over the rows of `x` `[frames, dim]`.
fn mean_and_std(x: &[f32], dim: usize) -> Vec<f32> {
    let frames = (x.len() / dim).max(1) as f64;
    let mut sum = vec![0f64; dim];
    let mut sq = vec![0f64; dim];
    for row in x.chunks_exact(dim) {
        for ((s, q), &v) in sum.iter_mut().zip(&mut sq).zip(row) {
            *s += v as f64;
            *q += (v as f64) * (v as f64);
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / frames).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| (q / frames - m * m).max(0.0).sqrt());
    mean.iter().copied().chain(std).map(|v| v as f32).collect()
}

/// One clip's `[layers, 2·d]` pooled rows from its per-layer outputs `[1, T, d]`.
fn pool_clip(layers: &[Tensor]) -> Result<(usize, Vec<f32>), String> {
    let mut out = Vec::new();
    let mut dim = 0;
    for t in layers {
        let [1, _, d] = *t.shape() else {
            return Err(format!("encoder layer is {:?}, not [1, T, d]", t.shape()));
        };
        dim = d;
        let x = t.to_vec::<f32>().map_err(|e| e.to_string())?;
        out.extend(mean_and_std(&x, d));
    }
    Ok((dim, out))
}

/// Pool every layer of `model`'s encoder over each distinct clip of `manifest` (text-only items
/// are skipped); `progress(done, total)` is called after each clip.
pub fn pool_layers(
    model: &OsumModel,
    encoder: &str,
    manifest: &Manifest,
    mut progress: impl FnMut(usize, usize),
) -> Result<PooledLayers, String> {
    let mut seen = HashSet::new();
    let clips: Vec<_> = manifest
        .items
        .iter()
        .filter(|it| it.audio.as_ref().is_some_and(|a| seen.insert(a.clone())))
        .collect();
    if clips.is_empty() {
        return Err("the manifest has no items with audio".into());
    }
    let mut out = PooledLayers {
        encoder: encoder.to_string(),
        audio: Vec::with_capacity(clips.len()),
        layers: Vec::new(),
        dim: 0,
        pooled: Vec::new(),
    };
    for (i, item) in clips.iter().enumerate() {
        let name = item.audio.clone().unwrap_or_default();
        let path = manifest
            .audio_path(item)
            .ok_or_else(|| format!("{name}: no audio path"))?;
        let samples = audio::load_clip(&path, None, MAX_SECONDS)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let layers = model
            .encoder_layers(&samples)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let (dim, rows) = pool_clip(&layers)?;
        if i == 0 {
            out.layers = model.whisper.encoder.layer_names();
            out.dim = dim;
        }
        out.pooled.extend(rows);
        out.audio.push(name);
        progress(i + 1, clips.len());
    }
    Ok(out)
}

impl PooledLayers {
    /// Write as safetensors (see the module docs), atomically.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let shape = [self.audio.len(), self.layers.len(), 2 * self.dim];
        let pooled = Tensor::from_vec(self.pooled.clone(), &shape, &crate::engine::cpu_device())
            .map_err(|e| e.to_string())?;
        let metadata = HashMap::from([
            ("encoder".to_string(), self.encoder.clone()),
            ("layers".to_string(), self.layers.join(",")),
            (
                "audio".to_string(),
                serde_json::to_string(&self.audio).map_err(|e| e.to_string())?,
            ),
        ]);
        let bytes = safetensors_bytes(&[("pooled".to_string(), pooled)], Some(metadata))
            .map_err(|e| e.to_string())?;
        write_atomic(path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_std_pool_each_column_over_the_frames() {
        // Two frames of three columns: means 2, 0, 5; population stds 1, 0, 0.
        let x = [1.0, 0.0, 5.0, 3.0, 0.0, 5.0];
        assert_eq!(mean_and_std(&x, 3), vec![2.0, 0.0, 5.0, 1.0, 0.0, 0.0]);
    }
}
