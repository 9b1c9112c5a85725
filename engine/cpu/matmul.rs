//! Batched matmul on the CPU.
//!
//! Operands arrive as strided views. Each `[K, N]` right-hand block is *packed* once into a
//! row-major f32 panel: row-major f32 blocks are borrowed as they are, column-major
//! (transposed) blocks are read column by column in cache-sized tiles, and f16/bf16 weights are
//! widened while packing, so the inner loops only ever see contiguous f32. When every batch entry
//! shares one rhs block (the common `x[B, T, in] · Wᵀ` with W broadcast by stride 0), the batch
//! is folded into the row dimension and the product runs as one `[B·M, K] × [K, N]` GEMM.
//!
//! The GEMM itself is deliberately simple (the deep SIMD kernel is a later issue): blocked over
//! N (so a slice of each C row stays in L1) and K (so a B panel stays in L2), four rows of C per
//! pass so each loaded row of B is used four times, inner loops are contiguous axpys the
//! compiler vectorizes, and rayon splits row blocks (or column blocks when there are few rows).

use super::memory::{boxed, host};
use super::vector::dot;
use crate::engine::device::{Buffer, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::layout::Layout;
use crate::engine::storage::HostBuffer;
use half::{bf16, f16, slice::HalfFloatSliceExt};
use rayon::prelude::*;
use std::borrow::Cow;
use std::collections::HashMap;

/// Multiply-adds below which a product stays on the calling thread.
const PAR_WORK: usize = 1 << 16;
/// Columns of C updated per pass: 4 rows × NC f32 = 8 KiB stay in L1.
const NC: usize = 512;
/// Depth of one pass: a KC × NC panel of B (256 KiB) stays in L2.
const KC: usize = 128;
/// Products with a transposed rhs and at most this many rows use dot products against the rhs
/// columns directly: packing would cost as much as the product itself.
const DOT_MAX_ROWS: usize = 4;
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
        match host(v)? {
            HostBuffer::F32(x) => Ok(Elems::F32(x)),
            HostBuffer::F16(x) => Ok(Elems::F16(x)),
            HostBuffer::BF16(x) => Ok(Elems::BF16(x)),
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

    /// True when the elements are dense and row-major (so an f32 block can be borrowed).
    fn is_row_major(&self) -> bool {
        (self.cols <= 1 || self.cs == 1) && (self.rows <= 1 || self.rs == self.cols)
    }

    /// True when each column is dense (a transposed row-major block).
    fn is_col_major(&self) -> bool {
        self.rows <= 1 || self.rs == 1
    }

    /// The matrix as row-major f32: borrowed when it already is, otherwise packed.
    pub fn row_major(&self) -> Cow<'a, [f32]> {
        let len = self.rows * self.cols;
        if let (Elems::F32(x), true) = (self.elems, self.is_row_major()) {
            if len == 0 {
                return Cow::Borrowed(&[]);
            }
            return Cow::Borrowed(&x[self.offset..self.offset + len]);
        }
        let mut out = vec![0f32; len];
        self.pack_into(&mut out);
        Cow::Owned(out)
    }

    /// Write the matrix row-major into `out` (length rows·cols), widening to f32.
    fn pack_into(&self, out: &mut [f32]) {
        match self.elems {
            Elems::F32(x) => pack(x, self, out),
            Elems::F16(x) => pack(x, self, out),
            Elems::BF16(x) => pack(x, self, out),
        }
    }

    /// Column `j` as contiguous f32 (needs [`Matrix::is_col_major`]): borrowed for f32,
    /// widened into `buf` otherwise.
    fn column<'b>(&self, j: usize, buf: &'b mut Vec<f32>) -> &'b [f32]
    where
        'a: 'b,
    {
        let range = self.offset + j * self.cs..self.offset + j * self.cs + self.rows;
        buf.resize(self.rows, 0.0);
        match self.elems {
            Elems::F32(x) => return &x[range],
            Elems::F16(x) => Widen::widen_into(&x[range], buf),
            Elems::BF16(x) => Widen::widen_into(&x[range], buf),
        }
        buf
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

/// `[…, M, K] × […, K, N] → […, M, N]` with equal (possibly stride-0) batch dims; `lhs` is f32,
/// `rhs` f32/f16/bf16, both with any strides.
pub fn matmul(lhs: View, rhs: View) -> Result<Buffer> {
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
        let a = f32_rows(OP, &lhs)?;
        matmul_into(&a, batch * m, &rhs_block(rhs_offsets[0]), &mut out);
        return Ok(boxed(HostBuffer::F32(out)));
    }
    batched(lhs, &rhs_offsets, rhs_block, (m, k, n), &mut out)?;
    Ok(boxed(HostBuffer::F32(out)))
}

/// Batches with distinct rhs blocks. Blocks repeated by a partial broadcast are packed once.
fn batched<'a>(
    lhs: View<'a>,
    rhs_offsets: &[usize],
    rhs_block: impl Fn(usize) -> Matrix<'a>,
    (m, k, n): (usize, usize, usize),
    out: &mut [f32],
) -> Result<()> {
    let mut slot: HashMap<usize, usize> = HashMap::new();
    let mut panels: Vec<Cow<[f32]>> = Vec::new();
    let which: Vec<usize> = rhs_offsets
        .iter()
        .map(|&off| {
            *slot.entry(off).or_insert_with(|| {
                panels.push(rhs_block(off).row_major());
                panels.len() - 1
            })
        })
        .collect();
    let HostBuffer::F32(a) = host(&lhs)? else {
        return Err(Error::invalid("matmul", "lhs must be f32"));
    };
    let ll = lhs.layout;
    let r = ll.rank();
    let lhs_offsets = batch_offsets(ll);
    let lhs_block = |offset| Matrix {
        elems: Elems::F32(a),
        offset,
        rows: m,
        cols: k,
        rs: ll.strides()[r - 2],
        cs: ll.strides()[r - 1],
    };
    let batch = rhs_offsets.len();
    let per_batch = m * k * n;
    // Many small products: one per task. Few large ones: parallelise inside each.
    let outer_par = batch > 1
        && batch * per_batch >= PAR_WORK
        && (per_batch < PAR_WORK || batch >= rayon::current_num_threads());
    let run = |(bi, c): (usize, &mut [f32])| {
        let a = lhs_block(lhs_offsets[bi]).row_major();
        gemm_impl(&a, &panels[which[bi]], c, m, k, n, !outer_par);
    };
    if outer_par {
        out.par_chunks_mut(m * n).enumerate().for_each(run);
    } else {
        out.chunks_mut(m * n).enumerate().for_each(run);
    }
    Ok(())
}

/// `C[rows × N] += A[rows × K] · B` with A contiguous row-major f32 and B any strided
/// `[K, N]` matrix (f32/f16/bf16). A transposed B with few rows is read column by column
/// (dot products, no packing); anything else is packed once and multiplied by [`gemm`].
pub fn matmul_into(a: &[f32], rows: usize, b: &Matrix, c: &mut [f32]) {
    let (k, n) = (b.rows, b.cols);
    if rows == 0 || k == 0 || n == 0 {
        return;
    }
    if rows <= DOT_MAX_ROWS && n > 1 && b.is_col_major() && !b.is_row_major() {
        return gemm_dot_columns(a, rows, b, c);
    }
    gemm(a, &b.row_major(), c, rows, k, n);
}

/// `C += A·B` where each column of B is dense: `C[i, j] += A[i, :] · B[:, j]`.
/// Parallel over columns; the result is gathered column-major and added in one pass.
fn gemm_dot_columns(a: &[f32], rows: usize, b: &Matrix, c: &mut [f32]) {
    let (k, n) = (b.rows, b.cols);
    let mut ct = vec![0f32; n * rows];
    let col = |buf: &mut Vec<f32>, (j, cj): (usize, &mut [f32])| {
        let bj = b.column(j, buf);
        for (i, v) in cj.iter_mut().enumerate() {
            *v = dot(&a[i * k..(i + 1) * k], bj);
        }
    };
    if rows * k * n >= PAR_WORK {
        ct.par_chunks_mut(rows)
            .enumerate()
            .for_each_init(Vec::new, col);
    } else {
        let mut buf = Vec::new();
        ct.chunks_mut(rows)
            .enumerate()
            .for_each(|x| col(&mut buf, x));
    }
    for (j, cj) in ct.chunks_exact(rows).enumerate() {
        for (i, &v) in cj.iter().enumerate() {
            c[i * n + j] += v;
        }
    }
}

// ---- GEMM ------------------------------------------------------------------------------------

/// C[m×n] += A[m×k]·B[k×n], all contiguous row-major f32. Parallel when large.
pub fn gemm(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    gemm_impl(a, b, c, m, k, n, true);
}

/// [`gemm`] with the caller deciding whether rayon may be used.
fn gemm_impl(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize, par: bool) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let (a, b, c) = (&a[..m * k], &b[..k * n], &mut c[..m * n]);
    let threads = rayon::current_num_threads();
    let par = par && m * k * n >= PAR_WORK && threads > 1;
    if n == 1 {
        // Matrix × vector: one dot product per row.
        let row = |(i, ci): (usize, &mut f32)| *ci += dot(&a[i * k..(i + 1) * k], b);
        if par {
            c.par_iter_mut().enumerate().for_each(row);
        } else {
            c.iter_mut().enumerate().for_each(row);
        }
        return;
    }
    if !par {
        return block_kernel(a, k, b, n, 0, c, n, m, n);
    }
    if m >= 8 * threads {
        // Row blocks (multiples of 4 rows), about four per thread for load balance.
        let mb = m.div_ceil(4 * threads).next_multiple_of(4);
        c.par_chunks_mut(mb * n).enumerate().for_each(|(bi, cb)| {
            let rows = cb.len() / n;
            let a = &a[bi * mb * k..(bi * mb + rows) * k];
            block_kernel(a, k, b, n, 0, cb, n, rows, n);
        });
    } else {
        // Few rows (decoding, GEMV-like): split the columns, each task into its own buffer.
        let nb = n.div_ceil(4 * threads).max(64);
        let parts: Vec<(usize, Vec<f32>)> = (0..n.div_ceil(nb))
            .into_par_iter()
            .map(|t| {
                let (j0, w) = (t * nb, nb.min(n - t * nb));
                let mut part = vec![0f32; m * w];
                block_kernel(a, k, b, n, j0, &mut part, w, m, w);
                (j0, part)
            })
            .collect();
        for (j0, part) in parts {
            let w = part.len() / m;
            for (ci, pi) in c.chunks_exact_mut(n).zip(part.chunks_exact(w)) {
                ci[j0..j0 + w]
                    .iter_mut()
                    .zip(pi)
                    .for_each(|(c, &p)| *c += p);
            }
        }
    }
}

/// `C[0..m, 0..w] += A · B[:, j0..j0+w]`: A `[m, k]` row-major, B with row stride `ldb`,
/// C with row stride `ldc`. Blocked over N (NC) and K (KC), four rows of C at a time.
#[allow(clippy::too_many_arguments)]
fn block_kernel(
    a: &[f32],
    k: usize,
    b: &[f32],
    ldb: usize,
    j0: usize,
    c: &mut [f32],
    ldc: usize,
    m: usize,
    w: usize,
) {
    for jb in (0..w).step_by(NC) {
        let je = (jb + NC).min(w);
        let bcols = j0 + jb..j0 + je;
        for pb in (0..k).step_by(KC) {
            let pe = (pb + KC).min(k);
            let mut i = 0;
            while i + 4 <= m {
                let rows = &mut c[i * ldc..(i + 4) * ldc];
                let (r0, rest) = rows.split_at_mut(ldc);
                let (r1, rest) = rest.split_at_mut(ldc);
                let (r2, r3) = rest.split_at_mut(ldc);
                for p in pb..pe {
                    let brow = &b[p * ldb + bcols.start..p * ldb + bcols.end];
                    let x = [
                        a[i * k + p],
                        a[(i + 1) * k + p],
                        a[(i + 2) * k + p],
                        a[(i + 3) * k + p],
                    ];
                    axpy4(
                        x,
                        brow,
                        [
                            &mut r0[jb..je],
                            &mut r1[jb..je],
                            &mut r2[jb..je],
                            &mut r3[jb..je],
                        ],
                    );
                }
                i += 4;
            }
            for i in i..m {
                let ci = &mut c[i * ldc + jb..i * ldc + je];
                for p in pb..pe {
                    let x = a[i * k + p];
                    let brow = &b[p * ldb + bcols.start..p * ldb + bcols.end];
                    ci.iter_mut().zip(brow).for_each(|(c, &b)| *c += x * b);
                }
            }
        }
    }
}

/// `c[r] += x[r]·b` for four rows at once, so each element of `b` is loaded once for four
/// multiply-adds.
#[inline(always)]
fn axpy4(x: [f32; 4], b: &[f32], c: [&mut [f32]; 4]) {
    let [c0, c1, c2, c3] = c;
    for ((((v0, v1), v2), v3), &bv) in c0
        .iter_mut()
        .zip(c1.iter_mut())
        .zip(c2.iter_mut())
        .zip(c3.iter_mut())
        .zip(b)
    {
        *v0 += x[0] * bv;
        *v1 += x[1] * bv;
        *v2 += x[2] * bv;
        *v3 += x[3] * bv;
    }
}
