//! LoRA linear layer on the CPU: `y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ`.
//!
//! The rank-r intermediate `h = x·Aᵀ` (`[rows, r]`) is computed first and scaled, then
//! `h·Bᵀ` is added: O(rows·r·(in + out)) extra work and no `[out, in]` temporary, where forming
//! the merged update `B·A` would cost O(out·r·in) and a full weight-sized buffer per call.

use super::matmul::{f32_rows, matmul_into, Matrix};
use super::memory::{boxed, f32_values};
use crate::engine::device::{Buffer, View};
use crate::engine::error::{Error, Result};
use crate::engine::storage::HostBuffer;

const OP: &str = "lora_linear";

/// `x [.., in]`, W `[out, in]`, b `[out]`, A `[r, in]`, B `[out, r]` → `[.., out]` (f32).
/// W, b, A and B may be f32, f16 or bf16; x is f32. Any strides.
pub fn lora_linear(
    x: View,
    w: View,
    b: Option<View>,
    a: View,
    bm: View,
    scale: f32,
) -> Result<Buffer> {
    let (wm, am, bmm) = (
        Matrix::of(OP, &w)?,
        Matrix::of(OP, &a)?,
        Matrix::of(OP, &bm)?,
    );
    let xs = x.shape();
    let Some(&inp) = xs.last() else {
        return Err(Error::BadShape {
            op: OP,
            shape: xs.to_vec(),
            msg: "x needs at least one dimension".into(),
        });
    };
    let (out, r) = (wm.rows, am.rows);
    let mismatch = |other: &View| Error::ShapeMismatch {
        op: OP,
        lhs: xs.to_vec(),
        rhs: other.shape().to_vec(),
    };
    if wm.cols != inp {
        return Err(mismatch(&w));
    }
    if am.cols != inp {
        return Err(mismatch(&a));
    }
    if bmm.rows != out || bmm.cols != r {
        return Err(mismatch(&bm));
    }
    let rows: usize = xs[..xs.len() - 1].iter().product();
    let xv = f32_rows(OP, &x)?;

    // y starts as the broadcast bias, then accumulates x·Wᵀ.
    let mut y = vec![0f32; rows * out];
    if let Some(b) = b {
        let bv = f32_values(OP, &b)?;
        if b.shape() != [out] {
            return Err(mismatch(&b));
        }
        if out > 0 {
            y.chunks_exact_mut(out)
                .for_each(|row| row.copy_from_slice(&bv));
        }
    }
    matmul_into(&xv, rows, &wm.t(), &mut y);

    // h = s·(x·Aᵀ), then y += h·Bᵀ.
    let mut h = vec![0f32; rows * r];
    matmul_into(&xv, rows, &am.t(), &mut h);
    h.iter_mut().for_each(|v| *v *= scale);
    matmul_into(&h, rows, &bmm.t(), &mut y);
    Ok(boxed(HostBuffer::F32(y)))
}
