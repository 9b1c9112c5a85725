//! Rotary position embedding (RoFormer, Su et al. 2021): each pair `(x₁, x₂)` of a head vector
//! at position `t` is rotated by the angle whose cosine/sine the tables hold at `[t, i]`:
//! `(x₁, x₂) ↦ (x₁·cos − x₂·sin, x₂·cos + x₁·sin)`.

use super::memory::{boxed, f32_only, f32_values};
use super::norm::{for_each_row, last_dim};
use crate::engine::device::{Buffer, RopeStyle, View};
use crate::engine::error::{Error, Result};
use crate::engine::storage::HostBuffer;

/// Rope of x `[…, T, D]` with cos/sin `[T, D/2]` (f32, f16 or bf16 tables). Row `r` of the
/// flattened `[N·T, D]` input sits at position `r mod T`.
pub fn rope(x: View, cos: View, sin: View, style: RopeStyle) -> Result<Buffer> {
    const OP: &str = "rope";
    let xs = f32_only(OP, &x)?;
    let d = last_dim(&x);
    let t = match x.shape() {
        [.., t, _] => *t,
        _ => {
            return Err(Error::BadShape {
                op: OP,
                shape: x.shape().to_vec(),
                msg: "expected [.., T, D]".into(),
            })
        }
    };
    let half = d / 2;
    let (c, s) = (f32_values(OP, &cos)?, f32_values(OP, &sin)?);
    if !d.is_multiple_of(2) || c.len() != t * half || s.len() != t * half {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: x.shape().to_vec(),
            rhs: cos.shape().to_vec(),
        });
    }
    let mut out = vec![0f32; xs.len()];
    for_each_row(&mut out, d, |r, y| {
        let row = &xs[r * d..(r + 1) * d];
        let pos = r % t;
        let (cr, sr) = (&c[pos * half..][..half], &s[pos * half..][..half]);
        match style {
            RopeStyle::RotateHalf => rotate_half(row, y, cr, sr),
            RopeStyle::Interleaved => rotate_interleaved(row, y, cr, sr),
        }
    });
    Ok(boxed(HostBuffer::F32(out)))
}

/// Pairs `(i, i + D/2)`: the two halves are contiguous, so both loops vectorize.
fn rotate_half(x: &[f32], y: &mut [f32], c: &[f32], s: &[f32]) {
    let half = c.len();
    let (x1, x2) = x.split_at(half);
    let (y1, y2) = y.split_at_mut(half);
    for i in 0..half {
        y1[i] = x1[i] * c[i] - x2[i] * s[i];
        y2[i] = x2[i] * c[i] + x1[i] * s[i];
    }
}

/// Pairs `(2i, 2i + 1)`.
fn rotate_interleaved(x: &[f32], y: &mut [f32], c: &[f32], s: &[f32]) {
    for (((yp, xp), &ci), &si) in y.chunks_exact_mut(2).zip(x.chunks_exact(2)).zip(c).zip(s) {
        let (x1, x2) = (xp[0], xp[1]);
        yp[0] = x1 * ci - x2 * si;
        yp[1] = x2 * ci + x1 * si;
    }
}
