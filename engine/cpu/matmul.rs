//! Batched matmul on the CPU, on top of the packed GEMM in [`super::gemm`].
//!
//! Operands arrive as strided views and are handed to the GEMM as they are: its packing reads
//! transposed and narrowed blocks in place and widens f16/bf16 weights, so no operand is copied
//! first. When every batch entry shares one rhs block (the common `x[B, T, in] · Wᵀ` with W
//! broadcast by stride 0) and the lhs rows fold into one strided `[B·M, K]` matrix, the product
//! runs as one GEMM; otherwise each batch entry is its own GEMM (in parallel when there are
//! many small ones). Products with few rows and a transposed weight take the GEMM's streamed
//! GEMV path.

use super::gemm::{gemm_precision, sgemm, Finish, Precision, Rhs, Start, Weights};
use super::memory::{boxed, f32_values, host, host_slice};
use crate::engine::device::{Buffer, UnaryOp, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::layout::Layout;
use crate::engine::storage::{HostBuffer, HostSlice};
use half::{bf16, f16, slice::HalfFloatSliceExt};
use rayon::prelude::*;
use std::borrow::Cow;

/// Multiply-adds below which a product stays on the calling thread.
const PAR_WORK: usize = 1 << 16;
/// Column-major blocks are packed in strips this many columns wide…
const PACK_COLS: usize = 8;
/// …read in runs of this many rows…
const PACK_ROWS: usize = 64;
/// …by parallel tasks of this many output rows each.
const PACK_BAND: usize = 256;

// ---- operands --------------------------------------------------------------------------------

/// The elements behind a matmul operand: f32, or a half type widened to f32 while packing.
#[derive(Clone, Copy, Debug)]
pub enum Elems<'a> {
    /// f32 values (borrowed as they are when row-major).
    F32(&'a [f32]),
    /// f16 values.
    F16(&'a [f16]),
    /// bf16 values.
    BF16(&'a [bf16]),
}

impl<'a> Elems<'a> {
    /// The float elements of a CPU view's buffer; id dtypes are refused, naming `op`.
    pub fn of(op: &'static str, v: &View<'a>) -> Result<Self> {
        // Weights may be borrowed from a memory-mapped file: read them in place.
        match host_slice(v)? {
            HostSlice::F32(x) => Ok(Elems::F32(x)),
            HostSlice::F16(x) => Ok(Elems::F16(x)),
            HostSlice::BF16(x) => Ok(Elems::BF16(x)),
            other => Err(Error::UnsupportedDType {
                op,
                dtype: other.dtype(),
                device: "cpu".into(),
            }),
        }
    }
}

/// Element types a matmul operand may hold.
trait Widen: Copy + Sync {
    /// One value as f32.
    fn widen(self) -> f32;
    /// A run of values as f32 (`dst.len() == src.len()`). Halves convert through `half`'s
    /// slice converters, which use the CPU's conversion instructions (F16C) when present.
    fn widen_into(src: &[Self], dst: &mut [f32]);
}
impl Widen for f32 {
    fn widen(self) -> f32 {
        self
    }
    fn widen_into(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
}
impl Widen for f16 {
    fn widen(self) -> f32 {
        self.to_f32()
    }
    fn widen_into(src: &[f16], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
}
impl Widen for bf16 {
    fn widen(self) -> f32 {
        self.to_f32()
    }
    fn widen_into(src: &[bf16], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
}

/// A strided `[rows, cols]` matrix inside a buffer: element `(i, j)` sits at
/// `offset + i·rs + j·cs`.
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    /// The buffer.
    pub elems: Elems<'a>,
    /// Position of element `(0, 0)`.
    pub offset: usize,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl<'a> Matrix<'a> {
    /// A rank-2 float view as a matrix (error naming `op` for other ranks or id dtypes).
    pub fn of(op: &'static str, v: &View<'a>) -> Result<Self> {
        if v.layout.rank() != 2 {
            return Err(Error::BadShape {
                op,
                shape: v.shape().to_vec(),
                msg: "expected a matrix (rank 2)".into(),
            });
        }
        let (s, st) = (v.shape(), v.layout.strides());
        Ok(Matrix {
            elems: Elems::of(op, v)?,
            offset: v.layout.offset(),
            rows: s[0],
            cols: s[1],
            rs: st[0],
            cs: st[1],
        })
    }

    /// The transpose: same elements, strides swapped (no copy).
    pub fn t(self) -> Self {
        Matrix {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// True when each column is dense (a transposed row-major block).
    fn is_col_major(&self) -> bool {
        self.rows <= 1 || self.rs == 1
    }

    /// The matrix as a GEMM rhs (its buffer from the first element on). Needs a non-empty matrix.
    fn rhs(&self) -> Rhs<'a> {
        let elems = match self.elems {
            Elems::F32(x) => Weights::F32(&x[self.offset..]),
            Elems::F16(x) => Weights::F16(&x[self.offset..]),
            Elems::BF16(x) => Weights::BF16(&x[self.offset..]),
        };
        Rhs {
            elems,
            rs: self.rs,
            cs: self.cs,
        }
    }

    /// Write the matrix row-major into `out` (length rows·cols), widening to f32.
    fn pack_into(&self, out: &mut [f32]) {
        match self.elems {
            Elems::F32(x) => pack(x, self, out),
            Elems::F16(x) => pack(x, self, out),
            Elems::BF16(x) => pack(x, self, out),
        }
    }
}

/// Row-major packing of a strided matrix, reading it in the order its memory is dense.
fn pack<T: Widen>(src: &[T], m: &Matrix, out: &mut [f32]) {
    let (rows, cols) = (m.rows, m.cols);
    if rows == 0 || cols == 0 {
        return;
    }
    let at = |i: usize, j: usize| m.offset + i * m.rs + j * m.cs;
    if cols == 1 || m.cs == 1 {
        // Dense rows: widen row by row.
        for (i, o) in out.chunks_exact_mut(cols).enumerate() {
            T::widen_into(&src[at(i, 0)..at(i, 0) + cols], o);
        }
    } else if m.is_col_major() {
        // Dense columns (a transposed weight): transpose, in parallel over row bands when large.
        let band = |(b, o): (usize, &mut [f32])| {
            pack_columns(src, m, b * PACK_BAND, o.len() / cols, o);
        };
        if rows * cols >= PAR_WORK && rows > PACK_BAND {
            out.par_chunks_mut(PACK_BAND * cols)
                .enumerate()
                .for_each(band);
        } else {
            band((0, out));
        }
    } else {
        for (i, o) in out.chunks_exact_mut(cols).enumerate() {
            for (j, o) in o.iter_mut().enumerate() {
                *o = src[at(i, j)].widen();
            }
        }
    }
}

/// Rows `i0..i0 + n` of a column-major matrix into `out` (`n × cols`, row-major).
///
/// Works through strips of [`PACK_COLS`] columns: [`PACK_ROWS`]-long runs of each column are
/// widened into a small buffer (contiguous reads, vectorized conversion), then written out as
/// short row pieces. Each output row is written front to back, so the write streams never
/// revisit a line; keeping many output rows live instead (square tiles) thrashes L1 when the
/// row length is a multiple of 4 KiB, as it is for most weights.
fn pack_columns<T: Widen>(src: &[T], m: &Matrix, i0: usize, n: usize, out: &mut [f32]) {
    let cols = m.cols;
    let mut buf = [0f32; PACK_COLS * PACK_ROWS];
    for j0 in (0..cols).step_by(PACK_COLS) {
        let w = PACK_COLS.min(cols - j0);
        for r0 in (0..n).step_by(PACK_ROWS) {
            let h = PACK_ROWS.min(n - r0);
            for dj in 0..w {
                let s = m.offset + (i0 + r0) * m.rs + (j0 + dj) * m.cs;
                T::widen_into(&src[s..s + h], &mut buf[dj * PACK_ROWS..dj * PACK_ROWS + h]);
            }
            for di in 0..h {
                let o = &mut out[(r0 + di) * cols + j0..(r0 + di) * cols + j0 + w];
                for (dj, o) in o.iter_mut().enumerate() {
                    *o = buf[dj * PACK_ROWS + di];
                }
            }
        }
    }
}

/// The rows of an f32 view `[lead…, R, C]` (or `[C]`) as one row-major `[Π lead · R, C]`
/// matrix: borrowed when contiguous, otherwise packed block by block (transposed blocks
/// through the tiled path).
pub fn f32_rows<'a>(op: &'static str, v: &View<'a>) -> Result<Cow<'a, [f32]>> {
    let x = match host(v)? {
        HostBuffer::F32(x) => x,
        other => {
            return Err(Error::UnsupportedDType {
                op,
                dtype: other.dtype(),
                device: "cpu".into(),
            })
        }
    };
    let l = v.layout;
    if let Some((s, e)) = l.contiguous_range() {
        return Ok(Cow::Borrowed(&x[s..e]));
    }
    // Rank ≥ 1 here: a rank-0 layout is always contiguous.
    let l = if l.rank() == 1 {
        l.unsqueeze(0)
    } else {
        l.clone()
    };
    let r = l.rank();
    let (rows, cols) = (l.shape()[r - 2], l.shape()[r - 1]);
    let block = |offset| Matrix {
        elems: Elems::F32(x),
        offset,
        rows,
        cols,
        rs: l.strides()[r - 2],
        cs: l.strides()[r - 1],
    };
    let mut out = vec![0f32; l.elem_count()];
    if rows * cols > 0 {
        for (o, off) in out.chunks_exact_mut(rows * cols).zip(batch_offsets(&l)) {
            block(off).pack_into(o);
        }
    }
    Ok(Cow::Owned(out))
}

/// Buffer offset of each batch entry (row-major over all but the last two dims).
fn batch_offsets(l: &Layout) -> Vec<usize> {
    let r = l.rank();
    let outer = Layout::new(
        l.shape()[..r - 2].to_vec(),
        l.strides()[..r - 2].to_vec(),
        l.offset(),
    );
    outer.offsets().collect()
}

// ---- entry points ----------------------------------------------------------------------------

/// [`linear_rows`] as a device buffer (the device op `linear`); the CPU fuses GELU
/// (`Some(UnaryOp::Gelu)`), and any other activation is an error naming it.
pub fn linear(
    x: View,
    w: View,
    b: Option<View>,
    act: Option<UnaryOp>,
    precision: Precision,
) -> Result<Buffer> {
    let finish = match act {
        None => Finish::None,
        Some(UnaryOp::Gelu) => Finish::Gelu,
        Some(other) => {
            return Err(Error::Unsupported {
                op: other.name(),
                device: "cpu (fused into linear)".into(),
            })
        }
    };
    let (y, _) = linear_rows("linear", (&x, &w, b.as_ref()), finish, precision)?;
    Ok(boxed(HostBuffer::F32(y)))
}

/// `[…, M, K] × […, K, N] → […, M, N]` with equal (possibly stride-0) batch dims; `lhs` is f32,
/// `rhs` f32/f16/bf16, both with any strides; the packed products in `precision`.
pub fn matmul(lhs: View, rhs: View, precision: Precision) -> Result<Buffer> {
    const OP: &str = "matmul";
    let (ls, rs) = (lhs.shape(), rhs.shape());
    let r = ls.len();
    if r < 2 || rs.len() != r || ls[..r - 2] != rs[..r - 2] || ls[r - 1] != rs[r - 2] {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: ls.to_vec(),
            rhs: rs.to_vec(),
        });
    }
    if host(&lhs)?.dtype() != DType::F32 {
        return Err(Error::UnsupportedDType {
            op: OP,
            dtype: lhs.dtype(),
            device: "cpu".into(),
        });
    }
    let rhs_elems = Elems::of(OP, &rhs)?;
    let (m, k, n) = (ls[r - 2], ls[r - 1], rs[r - 1]);
    let batch: usize = ls[..r - 2].iter().product();
    let mut out = vec![0f32; batch * m * n];
    if out.is_empty() || k == 0 {
        // An empty sum is zero.
        return Ok(boxed(HostBuffer::F32(out)));
    }
    let rl = rhs.layout;
    let rhs_block = |offset| Matrix {
        elems: rhs_elems,
        offset,
        rows: k,
        cols: n,
        rs: rl.strides()[r - 2],
        cs: rl.strides()[r - 1],
    };
    let rhs_offsets = batch_offsets(rl);
    if rhs_offsets.iter().all(|&o| o == rhs_offsets[0]) {
        // One rhs block for every batch entry: fold the batch into M, one big GEMM.
        let b = rhs_block(rhs_offsets[0]).rhs();
        let HostBuffer::F32(x) = host(&lhs)? else {
            return Err(Error::invalid(OP, "lhs must be f32"));
        };
        if let Some((off, a_rs, a_cs)) = folded_rows(lhs.layout) {
            gemm_precision(
                precision,
                batch * m,
                k,
                n,
                &x[off..],
                a_rs,
                a_cs,
                b,
                &mut out,
                n,
                (Start::Zero, Finish::None),
                true,
            );
        } else {
            let a = f32_rows(OP, &lhs)?;
            gemm_precision(
                precision,
                batch * m,
                k,
                n,
                &a,
                k,
                1,
                b,
                &mut out,
                n,
                (Start::Zero, Finish::None),
                true,
            );
        }
        return Ok(boxed(HostBuffer::F32(out)));
    }
    batched(lhs, &rhs_offsets, rhs_block, (m, k, n), &mut out, precision)?;
    Ok(boxed(HostBuffer::F32(out)))
}

/// `y = act(x·Wᵀ + b)` for x `[…, in]` (f32, any strides), W `[out, in]` (f32/f16/bf16, any
/// strides), b `[out]`: the rows of y `[Π…, out]` as a row-major vector. The bias enters the
/// GEMM as its start value (`Start::Row`) and the activation as its `Finish`, both applied tile
/// by tile as the product is written, so the layer makes one pass over its output and allocates
/// nothing beyond it.
pub fn linear_rows(
    op: &'static str,
    (x, w, b): (&View, &View, Option<&View>),
    finish: Finish,
    precision: Precision,
) -> Result<(Vec<f32>, usize)> {
    let wm = Matrix::of(op, w)?;
    let xs = x.shape();
    let mismatch = |other: &View| Error::ShapeMismatch {
        op,
        lhs: xs.to_vec(),
        rhs: other.shape().to_vec(),
    };
    let Some(&inp) = xs.last() else {
        return Err(Error::BadShape {
            op,
            shape: xs.to_vec(),
            msg: "x needs at least one dimension".into(),
        });
    };
    if wm.cols != inp {
        return Err(mismatch(w));
    }
    let out = wm.rows;
    let bias = match b {
        Some(b) if b.shape() != [out] => return Err(mismatch(b)),
        Some(b) => Some(f32_values(op, b)?),
        None => None,
    };
    let rows: usize = xs[..xs.len() - 1].iter().product();
    let mut y = vec![0f32; rows * out];
    let start = bias.as_deref().map_or(Start::Zero, Start::Row);
    if y.is_empty() {
        return Ok((y, rows));
    }
    let HostBuffer::F32(xv) = host(x)? else {
        return Err(Error::UnsupportedDType {
            op,
            dtype: x.dtype(),
            device: "cpu".into(),
        });
    };
    if inp == 0 {
        // An empty sum: y = act(bias) (or act(0)), which the GEMM's zero-depth path gives.
        let none = Rhs {
            elems: Weights::F32(&[]),
            rs: out,
            cs: 1,
        };
        let c = (start, finish);
        gemm_precision(
            precision,
            rows,
            0,
            out,
            &[],
            0,
            1,
            none,
            &mut y,
            out,
            c,
            false,
        );
        return Ok((y, rows));
    }
    let rhs = wm.t().rhs();
    if let Some((off, rs, cs)) = folded_rows(x.layout) {
        let xv = &xv[off..];
        gemm_precision(
            precision,
            rows,
            inp,
            out,
            xv,
            rs,
            cs,
            rhs,
            &mut y,
            out,
            (start, finish),
            true,
        );
    } else {
        let a = f32_rows(op, x)?;
        gemm_precision(
            precision,
            rows,
            inp,
            out,
            &a,
            inp,
            1,
            rhs,
            &mut y,
            out,
            (start, finish),
            true,
        );
    }
    Ok((y, rows))
}

/// The rows of `[lead…, M, K]` as one strided `[Π lead · M, K]` matrix, when the leading dims
/// and M step through memory with one common stride: `(offset, row stride, column stride)`.
fn folded_rows(l: &Layout) -> Option<(usize, usize, usize)> {
    let r = l.rank();
    let (shape, strides) = (l.shape(), l.strides());
    // Dims of size 1 never move; the rest must nest: stride(outer) = stride(inner)·size(inner).
    let rows: Vec<usize> = (0..r - 1).filter(|&d| shape[d] > 1).collect();
    for w in rows.windows(2) {
        if strides[w[0]] != strides[w[1]] * shape[w[1]] {
            return None;
        }
    }
    let rs = rows.last().map_or(0, |&d| strides[d]);
    Some((l.offset(), rs, strides[r - 1]))
}

/// Batches with distinct rhs blocks: one GEMM per batch entry, operands read in place.
fn batched<'a>(
    lhs: View<'a>,
    rhs_offsets: &[usize],
    rhs_block: impl Fn(usize) -> Matrix<'a> + Sync,
    (m, k, n): (usize, usize, usize),
    out: &mut [f32],
    precision: Precision,
) -> Result<()> {
    let HostBuffer::F32(a) = host(&lhs)? else {
        return Err(Error::invalid("matmul", "lhs must be f32"));
    };
    let ll = lhs.layout;
    let r = ll.rank();
    let lhs_offsets = batch_offsets(ll);
    let (a_rs, a_cs) = (ll.strides()[r - 2], ll.strides()[r - 1]);
    let batch = rhs_offsets.len();
    let per_batch = m * k * n;
    // Many small products: one per task. Few large ones: parallelise inside each.
    let outer_par = batch > 1
        && batch * per_batch >= PAR_WORK
        && (per_batch < PAR_WORK || batch >= rayon::current_num_threads());
    let run = |(bi, c): (usize, &mut [f32])| {
        let b = rhs_block(rhs_offsets[bi]).rhs();
        let a = &a[lhs_offsets[bi]..];
        gemm_precision(
            precision,
            m,
            k,
            n,
            a,
            a_rs,
            a_cs,
            b,
            c,
            n,
            (Start::Zero, Finish::None),
            !outer_par,
        );
    };
    if outer_par {
        out.par_chunks_mut(m * n).enumerate().for_each(run);
    } else {
        out.chunks_mut(m * n).enumerate().for_each(run);
    }
    Ok(())
}

/// `C[rows × N] += A[rows × K] · B` with A contiguous row-major f32 and B any strided
/// `[K, N]` matrix (f32/f16/bf16). A transposed B with few rows takes the streamed GEMV path.
pub fn matmul_into(a: &[f32], rows: usize, b: &Matrix, c: &mut [f32]) {
    let (k, n) = (b.rows, b.cols);
    if rows == 0 || k == 0 || n == 0 {
        return;
    }
    gemm_precision(
        Precision::F32,
        rows,
        k,
        n,
        a,
        k,
        1,
        b.rhs(),
        c,
        n,
        (Start::Keep, Finish::None),
        true,
    );
}

/// C[m×n] += A[m×k]·B[k×n], all contiguous row-major f32. Parallel when large.
pub fn gemm(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    sgemm(m, k, n, a, k, 1, b, n, 1, c, n, true, true);
}
