//! WeNet's absolute positions (`PositionalEncoding`, "abs_pos"): **interleaved** sines and
//! cosines, `pe[t, 2i] = sin(t·w_i)`, `pe[t, 2i+1] = cos(t·w_i)`, `w_i = exp(−2i·ln(10⁴)/d)`,
//! added after scaling the input by `√d` (unlike Whisper's table, which puts all sines first).

use super::{AdapterError, Result};
use crate::engine::{Device, Tensor};
use std::sync::Arc;

/// Rows `0..len` of the table for width `dim` (even), computed the way WeNet builds its f32
/// buffer: `w_i` and `t·w_i` are rounded to f32 as PyTorch does, so the argument of every
/// sine matches the trained table's to within PyTorch's f32 `exp` rounding; the sine itself is
/// taken in f64 and rounded once.
pub fn sinusoid_rows(len: usize, dim: usize) -> Vec<f32> {
    // `-(math.log(10000.0) / d_model)` is a Python float; it meets the f32 arange as an f32.
    let step = (-(10000f64.ln() / dim as f64)) as f32;
    let freqs: Vec<f32> = (0..dim / 2)
        .map(|i| ((2 * i) as f32 * step).exp())
        .collect();
    let mut out = Vec::with_capacity(len * dim);
    for t in 0..len {
        for &w in &freqs {
            let arg = (t as f32 * w) as f64;
            out.push(arg.sin() as f32);
            out.push(arg.cos() as f32);
        }
    }
    out
}

/// Where the positions come from.
#[derive(Debug, Clone)]
pub enum PositionTable {
    /// Computed on demand ([`sinusoid_rows`]) up to `max` positions.
    Computed {
        /// Width of a row.
        dim: usize,
        /// Longest sequence accepted (WeNet's `max_len`).
        max: usize,
    },
    /// The checkpoint's own `[L, dim]` buffer (`embed.pos_enc.pe`).
    Loaded(Tensor),
}

impl PositionTable {
    /// The first `len` rows as `[len, dim]` on `device`; refuses sequences longer than the
    /// table, as WeNet's `assert offset + size <= max_len` does.
    pub fn rows(&self, len: usize, device: &Arc<dyn Device>) -> Result<Tensor> {
        let too_long = |max: usize| {
            AdapterError::Input(format!(
                "{len} downsampled positions exceed the {max} of the positional table \
                 (max_positions)"
            ))
        };
        match self {
            PositionTable::Computed { dim, max } => {
                if len > *max {
                    return Err(too_long(*max));
                }
                Ok(Tensor::from_vec(
                    sinusoid_rows(len, *dim),
                    &[len, *dim],
                    device,
                )?)
            }
            PositionTable::Loaded(t) => {
                let max = t.shape()[0];
                if len > max {
                    return Err(too_long(max));
                }
                Ok(t.narrow(0, 0, len)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_interleave_sine_and_cosine() {
        let d = 8;
        let rows = sinusoid_rows(3, d);
        assert_eq!(&rows[..d], &[0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        for i in 0..d / 2 {
            let w = (-(2.0 * i as f64) * 10000f64.ln() / d as f64).exp();
            for t in 1..3 {
                let (s, c) = (rows[t * d + 2 * i], rows[t * d + 2 * i + 1]);
                assert!((s as f64 - (t as f64 * w).sin()).abs() < 1e-6);
                assert!((c as f64 - (t as f64 * w).cos()).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn too_long_is_refused() {
        let dev = crate::engine::cpu_device();
        let table = PositionTable::Computed { dim: 4, max: 10 };
        assert_eq!(table.rows(10, &dev).unwrap().shape(), &[10, 4]);
        let msg = table.rows(11, &dev).unwrap_err().to_string();
        assert!(msg.contains("max_positions"), "{msg}");
    }
}
