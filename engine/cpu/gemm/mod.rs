//! Single-precision GEMM for the CPU: `C = A·B` or `C += A·B` on strided operands, with the rhs
//! in f32, f16 or bf16 (widened to f32 while it is packed; all arithmetic is f32).
//!
//! Structure (BLIS, Van Zee & van de Geijn 2015): the product is cut into `KC`-deep passes;
//! B is packed into `NR`-wide panels (contiguous, zero-padded, f32), blocks of A into `MR`-tall
//! panels, and a register-blocked micro-kernel multiplies one `MR × KC` panel by one `KC × NR`
//! panel into an `MR × NR` tile of C held entirely in registers. Strides (transposed or narrowed
//! operands) are absorbed by packing, so no operand is ever copied as a whole. The micro-kernel
//! is chosen once per process from the CPU's features ([`Isa`]): AVX-512 (6×64), AVX2+FMA
//! (6×16) or portable (4×8); bf16 products run on AMX tiles (32×32) where the CPU has AMX, else
//! on AVX512_BF16 (6×64). `blocked.rs` holds the loop nests and the split over threads.
//!
//! Products with at most [`GEMV_MAX_M`] rows whose rhs columns are dense (`x·Wᵀ` with W stored
//! `[N, K]`, a linear layer at decode time) skip packing: [`gemv`] streams every weight row once.
//!
//! Products with at most [`skinny::SKINNY`] columns (LoRA's rank-r factors) skip packing too:
//! [`skinny`] streams A once, in f32.
//!
//! Packing buffers are kept per thread between calls (at most KC × NC f32 = 8 MiB for the
//! calling thread, a few hundred KiB for the others), so steady-state products allocate nothing.

mod blocked;
pub mod gemv;
mod kernel_amx_bf16;
mod kernel_avx2;
mod kernel_avx512;
mod kernel_avx512_bf16;
mod kernel_portable;
mod pack;
mod skinny;
mod transpose;

use half::{bf16, f16};

/// Products with at most this many rows and a rhs whose columns are dense use [`gemv`].
pub const GEMV_MAX_M: usize = 8;
/// Multiply-adds below which a product stays on the calling thread (rayon's fork/join costs a
/// few microseconds, about 2¹⁷ multiply-adds at the kernels' speed).
const PAR_WORK: usize = 1 << 17;

pub use super::isa::Isa;

/// The arithmetic of the packed (blocked) products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// f32 operands, f32 accumulation.
    #[default]
    F32,
    /// Operands rounded to bf16 (nearest even) as they are packed, products summed in f32: by
    /// AMX `tdpbf16ps` tiles where the CPU has AMX-BF16 (about 2–3× our f32 kernel's rate on
    /// Sapphire Rapids), else by AVX512_BF16 `vdpbf16ps` (twice the f32 rate on Zen 4, none on
    /// Sapphire Rapids, where it issues at half the rate of an FMA). Only for CPUs where
    /// [`Precision::Bf16.supported()`](Precision::supported); products with at most
    /// [`GEMV_MAX_M`] rows, and narrow ones ([`skinny`]), are memory-bound and stay f32.
    Bf16,
}

impl Precision {
    /// True when this CPU can run the kernels of this precision.
    pub fn supported(self) -> bool {
        match self {
            Precision::F32 => true,
            #[cfg(target_arch = "x86_64")]
            Precision::Bf16 => {
                Isa::detected() == Isa::Avx512 && std::arch::is_x86_feature_detected!("avx512bf16")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Precision::Bf16 => false,
        }
    }

    /// The micro-kernel that runs this precision's packed products on this CPU, for benchmark
    /// headers (so a figure says which kernel it measured).
    pub fn kernel_name(self) -> &'static str {
        blocked::kernel_name(Isa::detected(), self)
    }
}

/// The elements of a rhs operand: f32, or a half type widened to f32 as it is read.
#[derive(Clone, Copy, Debug)]
pub enum Weights<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// IEEE half values.
    F16(&'a [f16]),
    /// bfloat16 values (the top half of an f32).
    BF16(&'a [bf16]),
}

impl Weights<'_> {
    fn len(&self) -> usize {
        match self {
            Weights::F32(x) => x.len(),
            Weights::F16(x) => x.len(),
            Weights::BF16(x) => x.len(),
        }
    }
}

/// What C holds before the product is added to it: `C = start + A·B`.
#[derive(Clone, Copy, Debug)]
pub enum Start<'a> {
    /// Nothing: C's previous contents are ignored (overwritten).
    Zero,
    /// C's current contents: `C += A·B`.
    Keep,
    /// One row of `n` values added to every row of C (a linear layer's bias). It enters C
    /// where the first pass writes each tile, so it costs no pass of its own over C.
    Row(&'a [f32]),
}

impl<'a> Start<'a> {
    /// The bias row, if any.
    fn row(self) -> Option<&'a [f32]> {
        match self {
            Start::Row(r) => Some(r),
            _ => None,
        }
    }

    /// Set `C[0..m, 0..n]` (dense rows, row stride `c_rs`) to its start value, for the paths
    /// that then accumulate (a zero-depth product, the GEMV paths).
    fn apply(self, c: &mut [f32], (m, n): (usize, usize), c_rs: usize) {
        if matches!(self, Start::Keep) {
            return;
        }
        for i in 0..m {
            self.apply_row(&mut c[i * c_rs..i * c_rs + n]);
        }
    }

    /// Set one dense row segment of C (`n` long) to its start value.
    fn apply_row(self, row: &mut [f32]) {
        match self {
            Start::Zero => row.fill(0.0),
            Start::Keep => {}
            Start::Row(r) => row.copy_from_slice(&r[..row.len()]),
        }
    }
}

/// A function applied in place to C once its products are complete (an activation fused into
/// the product): tile by tile as the last pass writes them, while they are still in L1, so the
/// activation needs no pass over C and no buffer of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Finish {
    /// Leave C as is.
    #[default]
    None,
    /// GELU (erf form), as [`crate::engine::cpu::elementwise::gelu_in_place`].
    Gelu,
}

impl Finish {
    /// Apply to one dense row segment of C.
    fn apply(self, row: &mut [f32]) {
        match self {
            Finish::None => {}
            Finish::Gelu => crate::engine::cpu::elementwise::gelu_in_place(row),
        }
    }

    /// Apply to `C[0..m, 0..n]` (dense rows, row stride `c_rs`).
    fn apply_rows(self, c: &mut [f32], (m, n): (usize, usize), c_rs: usize) {
        if self == Finish::None {
            return;
        }
        for i in 0..m {
            self.apply(&mut c[i * c_rs..i * c_rs + n]);
        }
    }
}

/// A strided rhs: element `(p, j)` of the `[K, N]` matrix is `elems[p·rs + j·cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Rhs<'a> {
    /// The elements.
    pub elems: Weights<'a>,
    /// Row stride (between consecutive `p`).
    pub rs: usize,
    /// Column stride (between consecutive `j`).
    pub cs: usize,
}

/// `C = A·B` (or `C += A·B` when `accumulate`) in f32, for strided operands.
///
/// * A is `[m, k]`: element `(i, p)` is `a[i·a_rs + p·a_cs]` (a transposed A is `a_rs = 1`).
/// * B is `[k, n]`: element `(p, j)` is `b[p·b_rs + j·b_cs]`; `x·Wᵀ` with W stored `[n, k]` is
///   `b_rs = 1, b_cs = k`.
/// * C is `[m, n]` with dense rows: element `(i, j)` is `c[i·c_rs + j]`, `c_rs ≥ n`.
/// * `parallel` lets the product use rayon's threads (it still stays on the calling thread when
///   small); pass `false` from inside an already-parallel loop over many small products.
///
/// Without `accumulate`, C's previous contents are ignored (overwritten, even when `k == 0`).
///
/// # Panics
/// When a slice is too short for the shape and strides given (a caller bug, never user input).
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    c: &mut [f32],
    c_rs: usize,
    accumulate: bool,
    parallel: bool,
) {
    let rhs = Rhs {
        elems: Weights::F32(b),
        rs: b_rs,
        cs: b_cs,
    };
    let start = if accumulate { Start::Keep } else { Start::Zero };
    gemm_precision(
        Precision::F32,
        m,
        k,
        n,
        a,
        a_rs,
        a_cs,
        rhs,
        c,
        c_rs,
        (start, Finish::None),
        parallel,
    );
}

/// [`sgemm`] with a rhs of any [`Weights`] type (f16/bf16 are widened to f32 exactly), in a
/// chosen [`Precision`], onto a chosen [`Start`] value of C (a bias row needs `n` values), with
/// a [`Finish`] applied to the result.
///
/// # Panics
/// When `precision` is not [`supported`](Precision::supported) on this CPU (callers check once,
/// when they choose it), or when a slice is too short (as [`sgemm`]).
#[allow(clippy::too_many_arguments)]
pub fn gemm_precision(
    precision: Precision,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: Rhs,
    c: &mut [f32],
    c_rs: usize,
    (start, finish): (Start, Finish),
    parallel: bool,
) {
    assert!(
        precision.supported(),
        "gemm: {precision:?} is not supported on this CPU"
    );
    gemm_with(
        Isa::detected(),
        precision,
        m,
        k,
        n,
        a,
        a_rs,
        a_cs,
        b,
        c,
        c_rs,
        (start, finish),
        parallel,
    );
}

/// Index of the last element of a strided `[rows, cols]` matrix, plus one (0 when empty).
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// [`gemm_precision`] on a given instruction set (tests force each one in turn).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_with(
    isa: Isa,
    precision: Precision,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: Rhs,
    c: &mut [f32],
    c_rs: usize,
    (start, finish): (Start, Finish),
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    // These bounds make every unchecked access in the kernels and packers below in range.
    assert!(extent(m, k, a_rs, a_cs) <= a.len(), "sgemm: A too short");
    assert!(
        extent(k, n, b.rs, b.cs) <= b.elems.len(),
        "sgemm: B too short"
    );
    assert!(
        c_rs >= n && extent(m, n, c_rs, 1) <= c.len(),
        "sgemm: C too short"
    );
    assert!(
        start.row().is_none_or(|r| r.len() >= n),
        "sgemm: bias too short"
    );
    if k == 0 {
        start.apply(c, (m, n), c_rs);
        finish.apply_rows(c, (m, n), c_rs);
        return;
    }
    let parallel = parallel && m * k * n >= PAR_WORK && rayon::current_num_threads() > 1;
    if m <= GEMV_MAX_M && (b.rs == 1 || k == 1) {
        // Rows of Wᵀ… i.e. columns of B are dense: one streamed pass over B.
        let x = gemv::Lhs {
            a,
            rs: a_rs,
            cs: a_cs,
        };
        let out = gemv::Out { c_rs, c_cs: 1 };
        // The streamed pass accumulates onto C, set to its start value first (M ≤ 8 rows).
        let keep = !matches!(start, Start::Zero);
        if start.row().is_some() {
            start.apply(c, (m, n), c_rs);
        }
        gemv::gemv(isa, m, k, n, x, b.elems, b.cs, c, out, keep, parallel);
        finish.apply_rows(c, (m, n), c_rs);
        return;
    }
    if n == 1 && a_cs == 1 && m > GEMV_MAX_M {
        // Matrix × vector: (A·b)ᵀ = bᵀ·Aᵀ, a one-row product whose "weights" are the rows of A.
        let bcol = pack::dense(b, k, 1, false);
        let x = gemv::Lhs {
            a: &bcol,
            rs: k,
            cs: 1,
        };
        let out = gemv::Out {
            c_rs: 1,
            c_cs: c_rs,
        };
        let keep = !matches!(start, Start::Zero);
        if start.row().is_some() {
            start.apply(c, (m, 1), c_rs);
        }
        gemv::gemv(
            isa,
            1,
            k,
            m,
            x,
            Weights::F32(a),
            a_rs,
            c,
            out,
            keep,
            parallel,
        );
        finish.apply_rows(c, (m, 1), c_rs);
        return;
    }
    if skinny::gemm((m, k, n), (a, a_rs, a_cs), b, (c, c_rs), start, parallel) {
        finish.apply_rows(c, (m, n), c_rs);
        return;
    }
    blocked::gemm(
        isa,
        precision,
        (m, k, n),
        (a, a_rs, a_cs),
        b,
        (c, c_rs),
        (start, finish),
        parallel,
    );
}

/// A pointer to C shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: the tasks holding copies write disjoint tiles of C and are joined before the
// borrow of C that produced the pointer ends.
unsafe impl Send for SharedMut {}
// SAFETY: as above.
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper, not the field).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

#[cfg(test)]
mod tests;
