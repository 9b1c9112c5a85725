//! The Whisper audio encoder (REFERENCE §3): conv1 (k3 s1 p1) → GELU → conv2 (k3 s2 p1) → GELU
//! → `[B, T/2, d]` + positions (sliced for short inputs) → pre-LN blocks → `ln_post`.

use super::config::WhisperConfig;
use super::layers::{Attention, Mlp, Norm};
use super::params::Params;
use super::{Result, WhisperError};
use crate::engine::Tensor;

/// One pre-LN encoder block.
struct Block {
    attn_ln: Norm,
    attn: Attention,
    mlp_ln: Norm,
    mlp: Mlp,
}

/// The encoder's weights.
pub struct Encoder {
    config: WhisperConfig,
    conv1: (Tensor, Tensor),
    conv2: (Tensor, Tensor),
    pos: Tensor,
    blocks: Vec<Block>,
    ln_post: Norm,
}

impl Encoder {
    /// Load every encoder tensor (names via the session's convention, shapes checked).
    pub fn load(p: &mut Params) -> Result<Encoder> {
        let c = p.config;
        let mut blocks = Vec::with_capacity(c.n_audio_layer);
        for n in 0..c.n_audio_layer {
            let pre = format!("encoder.blocks.{n}");
            blocks.push(Block {
                attn_ln: Norm::load(p, &format!("{pre}.attn_ln"))?,
                attn: Attention::load(p, &format!("{pre}.attn"), c.n_audio_head)?,
                mlp_ln: Norm::load(p, &format!("{pre}.mlp_ln"))?,
                mlp: Mlp::load(p, &format!("{pre}.mlp"))?,
            });
        }
        Ok(Encoder {
            config: c,
            conv1: (p.get("encoder.conv1.weight")?, p.get("encoder.conv1.bias")?),
            conv2: (p.get("encoder.conv2.weight")?, p.get("encoder.conv2.bias")?),
            pos: p.get("encoder.positional_embedding")?,
            blocks,
            ln_post: Norm::load(p, "encoder.ln_post")?,
        })
    }

    /// The sizes this encoder was loaded with.
    pub fn config(&self) -> &WhisperConfig {
        &self.config
    }

    /// Encode log-mel features `[B, n_mels, T]` (T ≤ 2·n_audio_ctx, e.g. 3000 for 30 s, or
    /// shorter without padding as OSUM does) → `[B, ⌈T/2⌉, d_model]`. Call inside `no_grad`
    /// for inference.
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let x = self.stem(mel)?;
        let x = self.blocks.iter().try_fold(x, |x, b| b.forward(&x))?;
        self.ln_post.forward(&x)
    }

    /// Every stage of [`Encoder::forward`], for probing what each layer holds
    /// (`osum features`): the residual stream after the conv stem and positions, after each
    /// block, and the final `ln_post` output (the one `forward` returns); `n_audio_layer + 2`
    /// tensors of `[B, ⌈T/2⌉, d_model]`.
    pub fn forward_layers(&self, mel: &Tensor) -> Result<Vec<Tensor>> {
        self.layers_through(mel, self.blocks.len() + 1)
    }

    /// The names of [`Encoder::forward_layers`]' outputs, in order: `stem`, `block1` …
    /// `blockN`, `ln_post` (as `osum features` labels them and presets name adapter taps).
    pub fn layer_names(&self) -> Vec<String> {
        std::iter::once("stem".to_string())
            .chain((1..=self.blocks.len()).map(|n| format!("block{n}")))
            .chain(std::iter::once("ln_post".to_string()))
            .collect()
    }

    /// The position of the layer called `name` among [`Encoder::layer_names`].
    pub fn layer_index(&self, name: &str) -> Result<usize> {
        let names = self.layer_names();
        names.iter().position(|n| n == name).ok_or_else(|| {
            WhisperError::Invalid(format!(
                "the encoder has no layer `{name}` (it has {})",
                names.join(", ")
            ))
        })
    }

    /// The outputs of the layers at `taps` (indices into [`Encoder::forward_layers`], in the
    /// order given) concatenated on the feature axis: `[B, ⌈T/2⌉, taps.len()·d_model]`. Taps
    /// `[ln_post]` are [`Encoder::forward`]; blocks past the deepest tap are not run.
    pub fn forward_taps(&self, mel: &Tensor, taps: &[usize]) -> Result<Tensor> {
        let last = self.blocks.len() + 1;
        match taps {
            [] => return Err(WhisperError::Invalid("no encoder layer to tap".into())),
            [t] if *t == last => return self.forward(mel),
            _ => {}
        }
        let deepest = *taps.iter().max().unwrap_or(&0);
        if deepest > last {
            return Err(WhisperError::Invalid(format!(
                "encoder layer {deepest} does not exist (the layers are 0 ..= {last})"
            )));
        }
        let layers = self.layers_through(mel, deepest)?;
        let parts: Vec<Tensor> = taps.iter().map(|&t| layers[t].clone()).collect();
        Ok(Tensor::cat(&parts, -1)?)
    }

    /// The layers `0 ..= deepest` of [`Encoder::forward_layers`] (`deepest` at most
    /// `n_audio_layer + 1`, `ln_post`), running no block past the deepest.
    fn layers_through(&self, mel: &Tensor, deepest: usize) -> Result<Vec<Tensor>> {
        let mut layers = vec![self.stem(mel)?];
        for b in &self.blocks[..deepest.min(self.blocks.len())] {
            let next = b.forward(&layers[layers.len() - 1])?;
            layers.push(next);
        }
        if deepest > self.blocks.len() {
            let out = self.ln_post.forward(&layers[layers.len() - 1])?;
            layers.push(out);
        }
        Ok(layers)
    }

    /// conv1 → GELU → conv2 (stride 2) → GELU → `[B, T/2, d]` + positions.
    fn stem(&self, mel: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let s = mel.shape();
        if s.len() != 3 || s[1] != c.n_mels || s[2] == 0 {
            return Err(WhisperError::Invalid(format!(
                "encoder input has shape {s:?}, expected [batch, {}, frames > 0]",
                c.n_mels
            )));
        }
        let x = mel
            .conv1d(&self.conv1.0, Some(&self.conv1.1), 1, 1, 1)?
            .gelu()?;
        let x = x
            .conv1d(&self.conv2.0, Some(&self.conv2.1), 2, 1, 1)?
            .gelu()?;
        let t = x.shape()[2];
        if t > c.n_audio_ctx {
            return Err(WhisperError::Invalid(format!(
                "{} mel frames give {t} encoder positions, more than the {} the model has",
                s[2], c.n_audio_ctx
            )));
        }
        Ok(x.transpose(1, 2)?.add(&self.pos.narrow(0, 0, t)?)?)
    }
}

impl Block {
    /// `x + attn(ln(x))`, then `+ mlp(ln(·))`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.add(&self.attn.self_attend(&self.attn_ln.forward(x)?, false)?)?;
        Ok(x.add(&self.mlp.forward(&self.mlp_ln.forward(&x)?)?)?)
    }
}
