//! Elementwise kernels: unary functions, binary arithmetic/comparisons, `where`.
//! f32 is the native type; f16/bf16 inputs are widened, computed in f32 and narrowed back.
//!
//! The op is matched once per slice, not per element, so each arm is a plain loop the compiler
//! vectorizes (compiled for AVX-512 / AVX2 / baseline by `multiversion!`, with the polynomial
//! `vector::exp` for the exponential family). Inputs of at least [`PAR_THRESHOLD`] elements are
//! split into [`CHUNK`]-element pieces over rayon; smaller ones stay on the calling thread.

use super::memory::{boxed, contiguous, f32_values, host, strided_copy};
use super::vector::{self, multiversion};
use crate::engine::device::{BinaryOp, Buffer, UnaryOp, View};
use crate::engine::dtype::{DType, WithDType};
use crate::engine::error::{Error, Result};
use crate::engine::layout::Layout;
use crate::engine::storage::HostBuffer;
use crate::with_host_buffer;
use half::{bf16, f16};
use rayon::prelude::*;
use std::borrow::Cow;

/// Below this many elements, rayon's scheduling costs more than it saves.
pub const PAR_THRESHOLD: usize = 1 << 15;
/// Elements per parallel piece of an elementwise op (a few tens of µs of work).
const CHUNK: usize = 1 << 13;

/// erf(x) in f32, branch-free so slice loops over it vectorize (GELU is hot in the Whisper
/// encoder: 4·T·d elements per block). Numerical Recipes' Chebyshev fit of erfc,
/// `erfc(z) ≈ t·exp(−z² + P(t))`, `t = 1/(1 + z/2)`, whose own error is 1.2e-7; evaluated in f32 with
/// the polynomial [`vector::exp`] the result is within 4e-7 of the true erf (3.9e-7 measured on
/// [−4.5, 4.5]; the unit test asserts 5e-7).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_2 + t * 0.170_872_77))))))));
    let r = 1.0 - t * vector::exp(poly);
    r.copysign(x)
}

/// GELU, exact erf form: x·Φ(x) = ½x(1 + erf(x/√2)).
#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * INV_SQRT2))
}

/// d/dx GELU = Φ(x) + x·φ(x).
#[inline(always)]
fn gelu_deriv(x: f32) -> f32 {
    0.5 * (1.0 + erf(x * INV_SQRT2)) + x * INV_SQRT_2PI * vector::exp(-0.5 * x * x)
}

const INV_SQRT2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// 1/(1+e⁻ˣ) with the polynomial exp (e⁻ˣ = +∞ for x < −88.7 gives exactly 0).
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + vector::exp(-x))
}

/// The scalar function of a unary op.
pub fn unary_fn(op: UnaryOp) -> impl Fn(f32) -> f32 + Sync {
    move |x: f32| match op {
        UnaryOp::Neg => -x,
        UnaryOp::Exp => vector::exp(x),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Recip => 1.0 / x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sqr => x * x,
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => sigmoid(x),
        UnaryOp::Relu => x.max(0.0),
        UnaryOp::Gelu => gelu(x),
        UnaryOp::Silu => x * sigmoid(x),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Step => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        UnaryOp::GeluDeriv => gelu_deriv(x),
        UnaryOp::SiluDeriv => {
            let s = sigmoid(x);
            s * (1.0 + x * (1.0 - s))
        }
        UnaryOp::Affine { mul, add } => x * mul + add,
        UnaryOp::Powf(e) => x.powf(e),
    }
}

/// `out[i] = f(x[i], y[i])` over equal-length slices, split into [`CHUNK`]s over rayon when
/// large. `f` is called once per chunk, so it can hold a whole vectorized loop.
fn chunked(out: &mut [f32], x: &[f32], y: &[f32], f: impl Fn(&mut [f32], &[f32], &[f32]) + Sync) {
    if out.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .zip(y.par_chunks(CHUNK))
            .for_each(|((o, x), y)| f(o, x, y));
    } else {
        f(out, x, y);
    }
}

/// The loop of one unary op, matched once; the arms the compiler can vectorize are spelled out.
#[inline(always)]
fn unary_body(op: UnaryOp, x: &[f32], out: &mut [f32]) {
    let map = |out: &mut [f32], f: &dyn Fn(f32) -> f32| {
        out.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v));
    };
    // A plain `for` loop per arm: its body is inlined into the target-feature copy made by
    // `multiversion!`. (An iterator `for_each` compiles to a separate `fold` function that LLVM
    // may leave un-inlined — then built for the baseline ISA: GELU ran 10× slower that way.)
    macro_rules! each {
        (|$v:ident| $e:expr) => {
            for (o, &$v) in out.iter_mut().zip(x) {
                *o = $e;
            }
        };
    }
    match op {
        UnaryOp::Neg => each!(|v| -v),
        UnaryOp::Exp => each!(|v| vector::exp(v)),
        UnaryOp::Sqrt => each!(|v| v.sqrt()),
        UnaryOp::Recip => each!(|v| 1.0 / v),
        UnaryOp::Abs => each!(|v| v.abs()),
        UnaryOp::Sqr => each!(|v| v * v),
        UnaryOp::Sigmoid => each!(|v| sigmoid(v)),
        UnaryOp::Relu => each!(|v| v.max(0.0)),
        UnaryOp::Silu => each!(|v| v * sigmoid(v)),
        UnaryOp::SiluDeriv => each!(|v| {
            let s = sigmoid(v);
            s * (1.0 + v * (1.0 - s))
        }),
        UnaryOp::Gelu => each!(|v| gelu(v)),
        UnaryOp::GeluDeriv => each!(|v| gelu_deriv(v)),
        UnaryOp::Step => each!(|v| if v > 0.0 { 1.0 } else { 0.0 }),
        UnaryOp::Affine { mul, add } => each!(|v| v * mul + add),
        // libm functions (log, tanh, sin, cos, powf) stay scalar.
        _ => map(out, &unary_fn(op)),
    }
}

multiversion! {
    fn unary_slice(op: UnaryOp, x: &[f32], out: &mut [f32]) = unary_body;
}

#[inline(always)]
fn gelu_in_place_body(x: &mut [f32]) {
    // A `for` loop, not `for_each`: see `unary_body`.
    for v in x.iter_mut() {
        *v = gelu(*v);
    }
}

multiversion! {
    /// GELU (erf form) in place: the activation the GEMM applies to finished tiles
    /// (`gemm::Finish::Gelu`).
    pub fn gelu_in_place(x: &mut [f32]) = gelu_in_place_body;
}

/// Unary kernel.
pub fn unary(op: UnaryOp, src: View) -> Result<Buffer> {
    let x = f32_values(op.name(), &src)?;
    let mut out = vec![0f32; x.len()];
    chunked(&mut out, &x, &x, |o, x, _| unary_slice(op, x, o));
    Ok(boxed(narrow_to(src.dtype(), out)))
}

/// Narrow f32 results back to the input's float dtype.
fn narrow_to(dtype: DType, v: Vec<f32>) -> HostBuffer {
    match dtype {
        DType::F16 => HostBuffer::F16(v.iter().map(|&x| f16::from_f32(x)).collect()),
        DType::BF16 => HostBuffer::BF16(v.iter().map(|&x| bf16::from_f32(x)).collect()),
        _ => HostBuffer::F32(v),
    }
}

fn arith(op: BinaryOp) -> impl Fn(f32, f32) -> f32 + Sync {
    move |a, b| match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Maximum => a.max(b),
        BinaryOp::Minimum => a.min(b),
        _ => unreachable!("comparisons take the compare path"),
    }
}

/// The loop of one arithmetic op, matched once so each arm vectorizes.
#[inline(always)]
fn arith_body(op: BinaryOp, a: &[f32], b: &[f32], out: &mut [f32]) {
    // `for` loops, not `for_each`: see `unary_body`.
    macro_rules! each {
        (|$x:ident, $y:ident| $e:expr) => {
            for (o, (&$x, &$y)) in out.iter_mut().zip(a.iter().zip(b)) {
                *o = $e;
            }
        };
    }
    match op {
        BinaryOp::Add => each!(|x, y| x + y),
        BinaryOp::Sub => each!(|x, y| x - y),
        BinaryOp::Mul => each!(|x, y| x * y),
        BinaryOp::Div => each!(|x, y| x / y),
        BinaryOp::Maximum => each!(|x, y| x.max(y)),
        BinaryOp::Minimum => each!(|x, y| x.min(y)),
        _ => {
            let f = arith(op);
            each!(|x, y| f(x, y))
        }
    }
}

multiversion! {
    fn arith_slice(op: BinaryOp, a: &[f32], b: &[f32], out: &mut [f32]) = arith_body;
}

fn compare<T: PartialOrd>(op: BinaryOp, a: T, b: T) -> u32 {
    (match op {
        BinaryOp::Eq => a == b,
        BinaryOp::Ne => a != b,
        BinaryOp::Lt => a < b,
        BinaryOp::Le => a <= b,
        BinaryOp::Gt => a > b,
        BinaryOp::Ge => a >= b,
        _ => unreachable!("arithmetic takes the arith path"),
    }) as u32
}

/// Binary kernel over two views of the same shape (broadcast already expressed in strides).
pub fn binary(op: BinaryOp, lhs: View, rhs: View) -> Result<Buffer> {
    let (hl, hr) = (host(&lhs)?, host(&rhs)?);
    if hl.dtype() != hr.dtype() {
        return Err(Error::DTypeMismatch {
            op: op.name(),
            lhs: hl.dtype(),
            rhs: hr.dtype(),
        });
    }
    if op.is_comparison() {
        fn cmp_all<T: WithDType>(op: BinaryOp, a: &[T], b: &[T]) -> Vec<u32> {
            a.iter().zip(b).map(|(&x, &y)| compare(op, x, y)).collect()
        }
        let out = match (hl, hr) {
            (HostBuffer::U32(a), HostBuffer::U32(b)) => {
                cmp_all(op, &contiguous(a, lhs.layout), &contiguous(b, rhs.layout))
            }
            (HostBuffer::I64(a), HostBuffer::I64(b)) => {
                cmp_all(op, &contiguous(a, lhs.layout), &contiguous(b, rhs.layout))
            }
            _ => {
                let (a, b) = (f32_values(op.name(), &lhs)?, f32_values(op.name(), &rhs)?);
                cmp_all(op, &a, &b)
            }
        };
        return Ok(boxed(HostBuffer::U32(out)));
    }
    if let (HostBuffer::F32(a), HostBuffer::F32(b)) = (hl, hr) {
        if let Some(out) = arith_rows(op, (a, lhs.layout), (b, rhs.layout)) {
            return Ok(boxed(HostBuffer::F32(out)));
        }
    }
    let a = f32_values(op.name(), &lhs)?;
    let b = f32_values(op.name(), &rhs)?;
    if a.len() != b.len() {
        return Err(Error::ShapeMismatch {
            op: op.name(),
            lhs: lhs.shape().to_vec(),
            rhs: rhs.shape().to_vec(),
        });
    }
    let mut out = vec![0f32; a.len()];
    chunked(&mut out, &a, &b, |o, x, y| arith_slice(op, x, y, o));
    Ok(boxed(narrow_to(hl.dtype(), out)))
}

/// Shortest last dim the row-wise path takes; below it the per-row offset walk costs more than
/// a gathered copy.
const MIN_ROW: usize = 16;

/// f32 arithmetic read in place, one output row (the last dim) at a time, when each operand's
/// last dim is dense (stride 1) or broadcast (stride 0, e.g. a bias added to every row): no
/// operand is gathered into a temporary first. `None` when the layouts do not qualify.
fn arith_rows(
    op: BinaryOp,
    (a, la): (&[f32], &Layout),
    (b, lb): (&[f32], &Layout),
) -> Option<Vec<f32>> {
    let shape = la.shape();
    let n = *shape.last()?;
    let (sa, sb) = (*la.strides().last()?, *lb.strides().last()?);
    if op.is_comparison() || shape != lb.shape() || n < MIN_ROW || sa > 1 || sb > 1 {
        return None;
    }
    let rows_of = |l: &Layout| {
        let r = l.rank();
        Layout::new(
            shape[..r - 1].to_vec(),
            l.strides()[..r - 1].to_vec(),
            l.offset(),
        )
    };
    let (ra, rb) = (rows_of(la), rows_of(lb));
    let offsets: Vec<(usize, usize)> = ra.offsets().zip(rb.offsets()).collect();
    let mut out = vec![0f32; offsets.len() * n];
    // A broadcast operand's row is one value repeated: materialise that row once per row.
    fn splat(v: &[f32], off: usize, stride: usize, n: usize) -> Cow<'_, [f32]> {
        if stride == 1 {
            Cow::Borrowed(&v[off..off + n])
        } else {
            Cow::Owned(vec![v[off]; n])
        }
    }
    let row = |o: &mut [f32], (oa, ob): (usize, usize)| {
        arith_slice(op, &splat(a, oa, sa, n), &splat(b, ob, sb, n), o);
    };
    let rows_per_task = CHUNK.div_ceil(n).max(1);
    if out.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(rows_per_task * n)
            .zip(offsets.par_chunks(rows_per_task))
            .for_each(|(o, offs)| o.chunks_mut(n).zip(offs).for_each(|(o, &off)| row(o, off)));
    } else {
        out.chunks_mut(n)
            .zip(&offsets)
            .for_each(|(o, &off)| row(o, off));
    }
    Some(out)
}

/// `cond ? t : f` over three views of the same shape.
pub fn where_cond(cond: View, on_true: View, on_false: View) -> Result<Buffer> {
    let c = match host(&cond)? {
        HostBuffer::U32(c) => contiguous(c, cond.layout),
        other => {
            return Err(Error::DTypeMismatch {
                op: "where_cond",
                lhs: other.dtype(),
                rhs: DType::U32,
            })
        }
    };
    let (ht, hf) = (host(&on_true)?, host(&on_false)?);
    fn pick<T: Copy>(c: &[u32], t: Vec<T>, f: Vec<T>) -> Vec<T> {
        c.iter()
            .zip(t.into_iter().zip(f))
            .map(|(&c, (t, f))| if c != 0 { t } else { f })
            .collect()
    }
    let out = with_host_buffer!(ht, t => {
        let f = hf.as_slice().ok_or(Error::DTypeMismatch {
            op: "where_cond",
            lhs: ht.dtype(),
            rhs: hf.dtype(),
        })?;
        HostBuffer::from_vec(pick(&c, strided_copy(t, on_true.layout), strided_copy(f, on_false.layout)))
    });
    Ok(boxed(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Maclaurin series in f64; on |x| < 4.5 the largest term is ~1e8, so the
    /// alternating sum keeps ~1e-8 absolute accuracy, far below what is being checked.
    fn erf_series(x: f64) -> f64 {
        let (mut term, mut sum, x2) = (x, x, x * x);
        for n in 1..200 {
            term *= -x2 / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_is_within_5e_7_of_the_series_and_odd() {
        let mut worst = 0f64;
        for i in -45_000..=45_000 {
            let x = i as f32 * 1e-4;
            let err = (erf(x) as f64 - erf_series(x as f64)).abs();
            worst = worst.max(err);
            assert_eq!(erf(-x), -erf(x), "erf must be odd at {x}");
        }
        assert!(worst <= 5e-7, "worst |erf − series| = {worst:e}");
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert!(erf(f32::NAN).is_nan());
    }

    #[test]
    fn vectorized_gelu_matches_the_scalar_function() {
        let x: Vec<f32> = (-3000..3000).map(|i| i as f32 * 2.7e-3).collect();
        for op in [UnaryOp::Gelu, UnaryOp::GeluDeriv] {
            let mut out = vec![0f32; x.len()];
            unary_slice(op, &x, &mut out);
            let f = unary_fn(op);
            for (&v, &o) in x.iter().zip(&out) {
                assert!(
                    (o - f(v)).abs() <= 1e-6,
                    "{op:?}({v}) = {o}, scalar {}",
                    f(v)
                );
            }
        }
    }

    /// The gathered reference of `arith_rows`: every operand copied out through its layout.
    fn gathered(op: BinaryOp, (a, la): (&[f32], &Layout), (b, lb): (&[f32], &Layout)) -> Vec<f32> {
        let (a, b) = (strided_copy(a, la), strided_copy(b, lb));
        a.iter().zip(&b).map(|(&x, &y)| arith(op)(x, y)).collect()
    }

    #[test]
    fn row_wise_arithmetic_matches_the_gathered_path_for_dense_and_broadcast_rows() {
        let v: Vec<f32> = (0..300_000)
            .map(|i| ((i * 37) % 101) as f32 * 0.25 - 12.0)
            .collect();
        let dense = |shape: &[usize]| Layout::contiguous(shape);
        // [rows, n] cases: (lhs layout, rhs layout); rows·n over PAR_THRESHOLD in the big ones.
        let cases = [
            (dense(&[3, 40]), Layout::new(vec![3, 40], vec![0, 1], 7)), // bias row
            (
                dense(&[1500, 64]),
                Layout::new(vec![1500, 64], vec![0, 1], 0),
            ),
            (dense(&[2, 700, 33]), dense(&[2, 700, 33])), // residual
            (Layout::new(vec![50, 20], vec![40, 1], 3), dense(&[50, 20])), // narrowed lhs rows
            (dense(&[4, 16]), Layout::new(vec![4, 16], vec![1, 0], 9)), // one value per row
        ];
        for (la, lb) in &cases {
            for op in [
                BinaryOp::Add,
                BinaryOp::Sub,
                BinaryOp::Mul,
                BinaryOp::Maximum,
            ] {
                let fast = arith_rows(op, (&v, la), (&v, lb)).expect("layouts qualify");
                assert_eq!(
                    fast,
                    gathered(op, (&v, la), (&v, lb)),
                    "{op:?} {la:?} {lb:?}"
                );
            }
        }
        // A transposed operand (last stride ≠ 0, 1) and short rows take the gathered path.
        let t = Layout::new(vec![20, 30], vec![1, 20], 0);
        assert!(arith_rows(BinaryOp::Add, (&v, &t), (&v, &dense(&[20, 30]))).is_none());
        assert!(arith_rows(BinaryOp::Add, (&v, &dense(&[9, 8])), (&v, &dense(&[9, 8]))).is_none());
    }
}
