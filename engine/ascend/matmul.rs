//! Matrix products on the Ascend device through `osum_matmul_f32` (kernels/ascend/matmul.cpp),
//! which computes `A·Btᵀ` from row-major A `[M, K]` and Bt `[N, K]`.
//!
//! The engine's matmul is `[…, M, K] × […, K, N]`; the kernel reads it directly when the lhs
//! rows are dense and the rhs is the transposed view of a dense `[N, K]` matrix — `linear`
//! (x·Wᵀ), q·kᵀ — i.e. the K dimension of rhs has stride 1. Any other layout (the backward's
//! `dY·W`, `Xᵀ·dY`) is first rearranged on the device by the strided-copy kernel into those
//! layouts (`dense_copy`; a transposing L1 → L0B load would avoid the copy). Batches launch
//! once per batch index.

use super::memory::AscendBuffer;
use super::operands::widened_f32;
use super::AscendDevice;
use crate::engine::device::{Buffer, View};
use crate::engine::dtype::DType;
use crate::engine::error::Result;
use crate::engine::layout::Layout;
use crate::kernels::{self, GmF32, MatmulShape};

const OP: &str = "matmul";

/// Row stride of a `[rows, cols]` matrix whose inner stride must be 1 (size-1 dims may have any
/// stride); `None` when the layout does not fit.
fn row_stride(rows: usize, cols: usize, row_s: usize, col_s: usize) -> Option<usize> {
    if cols > 1 && col_s != 1 {
        return None;
    }
    let ld = if rows == 1 { cols } else { row_s };
    (ld >= cols).then_some(ld)
}

/// Batched `lhs × rhs` (f32 out). f16/bf16 operands are widened to f32 by the cast kernel
/// first, keeping their layout ([`widened_f32`]), as the CPU device widens half weights.
pub fn matmul(dev: &AscendDevice, lhs: View, rhs: View) -> Result<Buffer> {
    let wl = widened_f32(dev, OP, &lhs)?;
    let wr = widened_f32(dev, OP, &rhs)?;
    let lhs = wl.as_ref().map_or(lhs, |(b, l)| View::new(&**b, l));
    let rhs = wr.as_ref().map_or(rhs, |(b, l)| View::new(&**b, l));
    let (ll, rl) = (lhs.layout, rhs.layout);
    let r = ll.rank();
    let (m, k, n) = (ll.shape()[r - 2], ll.shape()[r - 1], rl.shape()[r - 1]);
    let batch: Vec<usize> = ll.shape()[..r - 2].to_vec();
    let batch_count: usize = batch.iter().product();
    let out = dev.alloc(OP, DType::F32, batch_count * m * n)?;
    if batch_count * m * n == 0 {
        return Ok(Box::new(out));
    }
    if k == 0 {
        // An empty inner dimension sums nothing: C = 0 (no kernel needed).
        out.mem()
            .zero(out.bytes())
            .map_err(|e| dev.backend(OP, e))?;
        return Ok(Box::new(out));
    }
    let (ls, rs) = (ll.strides(), rl.strides());
    // Layouts the cube path cannot read directly are first rearranged on the device by the
    // strided-copy kernel (an explicit device step, never a CPU fallback): lhs into dense rows,
    // rhs into the transposed [N, K] weight layout.
    let (lhs_copy, lda) = match row_stride(m, k, ls[r - 2], ls[r - 1]) {
        Some(lda) => (None, lda),
        None => (Some(dense_copy(dev, &lhs, false)?), k),
    };
    // rhs [K, N] with K stride 1 is Bt [N, K] row-major with row stride = N's stride.
    let (rhs_copy, ldb) = match row_stride(n, k, rs[r - 1], rs[r - 2]) {
        Some(ldb) => (None, ldb),
        None => (Some(dense_copy(dev, &rhs, true)?), k),
    };
    let shape = MatmulShape {
        m,
        n,
        k,
        lda,
        ldb,
        ldc: n,
    };
    let kerr = |e: kernels::KernelError| dev.backend(OP, e);
    let a_need = (m - 1) * lda + k;
    let b_need = (n - 1) * ldb + k;
    let batch_layout =
        |l: &Layout| Layout::new(batch.clone(), l.strides()[..r - 2].to_vec(), l.offset());
    let dense_batch = |rows: usize| {
        Layout::contiguous(&batch)
            .strides()
            .iter()
            .map(|s| s * rows * k)
            .collect::<Vec<_>>()
    };
    let (a, la) = match &lhs_copy {
        Some(c) => (c, Layout::new(batch.clone(), dense_batch(m), 0)),
        None => (dev.buffer(OP, &lhs)?, batch_layout(ll)),
    };
    let (b, lb) = match &rhs_copy {
        Some(c) => (c, Layout::new(batch.clone(), dense_batch(n), 0)),
        None => (dev.buffer(OP, &rhs)?, batch_layout(rl)),
    };
    for (i, (oa, ob)) in la.offsets().zip(lb.offsets()).enumerate() {
        let ga = GmF32::new("osum_matmul_f32", a.mem(), oa, a_need).map_err(kerr)?;
        let gb = GmF32::new("osum_matmul_f32", b.mem(), ob, b_need).map_err(kerr)?;
        let gc = GmF32::new("osum_matmul_f32", out.mem(), i * m * n, m * n).map_err(kerr)?;
        kernels::matmul_f32(dev.stream(), &shape, ga, gb, gc).map_err(kerr)?;
    }
    Ok(Box::new(out))
}

/// A dense copy of a batched matrix view `[…, R, C]`: row-major (`transposed = false`), or
/// each matrix transposed to `[…, C, R]` row-major (`transposed = true`, the `[N, K]` layout
/// the cube path reads for the rhs).
fn dense_copy(dev: &AscendDevice, v: &View, transposed: bool) -> Result<AscendBuffer> {
    let shape = v.shape();
    let r = shape.len();
    let out = dev.alloc(OP, DType::F32, v.layout.elem_count())?;
    let dst = if transposed {
        let mut ts = shape.to_vec();
        ts.swap(r - 2, r - 1);
        let mut strides = Layout::contiguous(&ts).strides().to_vec();
        strides.swap(r - 2, r - 1);
        Layout::new(shape.to_vec(), strides, 0)
    } else {
        Layout::contiguous(shape)
    };
    super::plain::copy_layout(dev, OP, v, &out, &dst)?;
    Ok(out)
}
