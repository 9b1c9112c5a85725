//! LoRA linear layer on the CPU: `y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ`.
//!
//! The rank-r intermediate `h = x·Aᵀ` (`[rows, r]`) is computed first and scaled, then
//! `h·Bᵀ` is added: O(rows·r·(in + out)) extra work and no `[out, in]` temporary, where forming
//! the merged update `B·A` would cost O(out·r·in) and a full weight-sized buffer per call.

use super::gemm::{Finish, Precision};
use super::matmul::{f32_rows, linear_rows, matmul_into, Matrix};
use super::memory::boxed;
use crate::engine::device::{Buffer, View};
use crate::engine::error::{Error, Result};
use crate::engine::storage::HostBuffer;

const OP: &str = "lora_linear";

/// `x [.., in]`, W `[out, in]`, b `[out]`, A `[r, in]`, B `[out, r]` → `[.., out]` (f32).
/// W, b, A and B may be f32, f16 or bf16; x is f32. Any strides. The frozen product `x·Wᵀ`
/// runs in the device's `precision`; the rank-r products are small and stay f32.
pub fn lora_linear(
    x: View,
    w: View,
    b: Option<View>,
    (a, bm, scale): (View, View, f32),
    precision: Precision,
) -> Result<Buffer> {
    let (am, bmm) = (Matrix::of(OP, &a)?, Matrix::of(OP, &bm)?);
    let mismatch = |other: &View| Error::ShapeMismatch {
        op: OP,
        lhs: x.shape().to_vec(),
        rhs: other.shape().to_vec(),
    };
    // y = x·Wᵀ + b (shapes of x, W and b checked there), then the low-rank update.
    let (mut y, rows) = linear_rows(OP, (&x, &w, b.as_ref()), Finish::None, precision)?;
    let (inp, out, r) = (am.cols, bmm.rows, am.rows);
    if x.shape().last() != Some(&inp) {
        return Err(mismatch(&a));
    }
    if out != w.shape()[0] || bmm.cols != r {
        return Err(mismatch(&bm));
    }
    let xv = f32_rows(OP, &x)?;

    // h = s·(x·Aᵀ), then y += h·Bᵀ.
    let mut h = vec![0f32; rows * r];
    matmul_into(&xv, rows, &am.t(), &mut h);
    h.iter_mut().for_each(|v| *v *= scale);
    matmul_into(&h, rows, &bmm.t(), &mut y);
    Ok(boxed(HostBuffer::F32(y)))
}
