//! The released checkpoints' downsampler, `down_sample_2` (OSUM's `GxlConv1dSubsampling4`):
//! three times `ConstantPad1d((2, 0))` → `Conv1d(k3, stride s)` → GELU, with s = 1, 2, 2.
//!
//! The left-only pad makes each conv causal: output `i` reads inputs `i·s − 2 ..= i·s`, so the
//! whole stack's output `j` depends on frames `≤ 4j` only. Lengths: `⌊(n + 2 − 3)/s⌋ + 1`, i.e.
//! `n` then `⌈n/2⌉` then `⌈⌈n/2⌉/2⌉`, which is also how OSUM's masks (`mask[:, :, 0::2]` twice)
//! count an item's valid outputs. Right padding of a batch therefore never reaches an item's
//! valid outputs.

use super::params::Take;
use super::Result;
use crate::engine::Tensor;

/// Strides of the three convolutions, with their `nn.Sequential` indices.
const CONVS: [(usize, usize); 3] = [(1, 1), (4, 2), (7, 2)];
/// Zeros prepended before each convolution (kernel − 1).
const LEFT_PAD: usize = 2;

/// `down_sample_2`: `[B, T, enc_dim]` → `[B, ⌈⌈T/2⌉/2⌉, dim]`.
pub struct CausalDownsampler {
    convs: Vec<(Tensor, Tensor, usize)>,
}

impl CausalDownsampler {
    /// `down_sample_2.conv.{1,4,7}.{weight,bias}`.
    pub(crate) fn take(p: &mut Take) -> Result<CausalDownsampler> {
        let mut convs = Vec::new();
        for (idx, stride) in CONVS {
            let w = p.get(&format!("down_sample_2.conv.{idx}.weight"))?;
            let b = p.get(&format!("down_sample_2.conv.{idx}.bias"))?;
            convs.push((w, b, stride));
        }
        Ok(CausalDownsampler { convs })
    }

    /// Apply to `x` `[B, T, C]` with `T ≥ 1` (checked by the caller).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.transpose(1, 2)?;
        for (w, b, stride) in &self.convs {
            // The engine pads both sides; with a pad of 2 on each side the first outputs are
            // exactly those of a left-only pad (same windows), and the left-only count is
            // ⌊(n − 1)/s⌋ + 1: keep those, drop the windows that reach into the right pad.
            let n = h.shape()[2];
            let keep = (n - 1) / stride + 1;
            h = h
                .conv1d(w, Some(b), *stride, LEFT_PAD, 1)?
                .narrow(2, 0, keep)?
                .gelu()?;
        }
        Ok(h.transpose(1, 2)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{cpu_device, Rng};
    use crate::model::adapter::params::random_params;
    use crate::model::adapter::AdapterConfig;

    /// Output `j` reads frames `4j − 8 ..= 4j`: perturbing frame `t` leaves every output before
    /// `⌈t/4⌉` bit-identical and changes output `⌈t/4⌉` (when it exists).
    #[test]
    fn downsampler_is_causal() {
        let dev = cpu_device();
        let c = AdapterConfig {
            enc_dim: 8,
            dim: 8,
            heads: 2,
            ..AdapterConfig::osum_tiny()
        };
        let params = random_params(&c, 4, &dev).unwrap();
        let down = CausalDownsampler::take(&mut Take::new(&params)).unwrap();
        let frames = 23;
        let mut rng = Rng::new(9);
        let base: Vec<f32> = (0..frames * 8).map(|_| rng.normal()).collect();
        let run = |v: Vec<f32>| {
            let x = Tensor::from_vec(v, &[1, frames, 8], &dev).unwrap();
            down.forward(&x).unwrap().to_vec::<f32>().unwrap()
        };
        let y0 = run(base.clone());
        let outs = frames.div_ceil(4);
        assert_eq!(y0.len(), outs * 8);
        for t in 0..frames {
            let mut v = base.clone();
            for ch in 0..8 {
                v[t * 8 + ch] += 1.0;
            }
            let y = run(v);
            let first = t.div_ceil(4);
            assert_eq!(
                &y[..first * 8],
                &y0[..first * 8],
                "frame {t} reached an earlier output"
            );
            if first < outs {
                let row = first * 8..(first + 1) * 8;
                assert_ne!(
                    &y[row.clone()],
                    &y0[row],
                    "frame {t} did not reach output {first}"
                );
            }
        }
    }
}
