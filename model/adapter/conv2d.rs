//! The paper's downsampler: WeNet's `Conv2dSubsampling4` used as the speech transformer's
//! embed layer. The encoder output `[B, T, F]` is an image `[B, 1, T, F]`;
//! `Conv2d(1→C, 3×3, stride 2)` → ReLU → `Conv2d(C→C, 3×3, stride 2)` → ReLU gives
//! `[B, C, T'', F'']` with `n ↦ (n − 1)/2` twice on both axes (no padding); time-major rows of
//! `C·F''` channels (channel-major within a row, as `transpose(1, 2).view(b, t, c·f)`) go
//! through `embed.out.0`, a Linear to the transformer width.
//!
//! Output `u` reads frames `4u ..= 4u + 6`; WeNet counts an item's valid outputs with
//! `mask[2::2][2::2]`, whose last one reads frames up to `len − 1` only, so right padding of a
//! batch never reaches an item's valid outputs.

use super::layers::Linear;
use super::params::Take;
use super::Result;
use crate::engine::{Conv2dParams, Tensor};

/// `speech_transformer.embed.{conv.0, conv.2, out.0}`: `[B, T, F]` → `[B, T'', dim]`.
pub struct Conv2dSubsampler {
    conv0: (Tensor, Tensor),
    conv2: (Tensor, Tensor),
    out: Linear,
}

impl Conv2dSubsampler {
    /// Its parameters (WeNet names, under `speech_transformer.embed`).
    pub(crate) fn take(p: &mut Take) -> Result<Conv2dSubsampler> {
        let mut conv = |i: usize| -> Result<(Tensor, Tensor)> {
            Ok((
                p.get(&format!("speech_transformer.embed.conv.{i}.weight"))?,
                p.get(&format!("speech_transformer.embed.conv.{i}.bias"))?,
            ))
        };
        let (conv0, conv2) = (conv(0)?, conv(2)?);
        Ok(Conv2dSubsampler {
            conv0,
            conv2,
            out: Linear::take(p, "speech_transformer.embed.out.0")?,
        })
    }

    /// Apply to `x` `[B, T, F]` with `T ≥ 7` and `F ≥ 7` (checked by the caller and config).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let p = Conv2dParams {
            stride: (2, 2),
            padding: (0, 0),
            dilation: (1, 1),
        };
        let h = x
            .unsqueeze(1)?
            .conv2d(&self.conv0.0, Some(&self.conv0.1), &p)?
            .relu()?
            .conv2d(&self.conv2.0, Some(&self.conv2.1), &p)?
            .relu()?;
        let s = h.shape();
        let (b, c, t, f) = (s[0], s[1], s[2], s[3]);
        let rows = h.transpose(1, 2)?.contiguous()?.reshape(&[b, t, c * f])?;
        self.out.forward(&rows)
    }
}
