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
use crate::engine::storage::HostBuffer;
use crate::with_host_buffer;
use half::{bf16, f16};
use rayon::prelude::*;

/// Below this many elements, rayon's scheduling costs more than it saves.
pub const PAR_THRESHOLD: usize = 1 << 15;
/// Elements per parallel piece of an elementwise op (a few tens of µs of work).
const CHUNK: usize = 1 << 13;

/// erf(x) to ~1.2e-7 absolute (Numerical Recipes `erfc` Chebyshev fit, evaluated in f64).
pub fn erf(x: f32) -> f32 {
    let z = (x as f64).abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    let r = 1.0 - erfc;
    (if x >= 0.0 { r } else { -r }) as f32
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
        UnaryOp::Gelu => 0.5 * x * (1.0 + erf(x * INV_SQRT2)),
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
        UnaryOp::GeluDeriv => {
            0.5 * (1.0 + erf(x * INV_SQRT2)) + x * INV_SQRT_2PI * (-0.5 * x * x).exp()
        }
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
    match op {
        UnaryOp::Neg => out.iter_mut().zip(x).for_each(|(o, &v)| *o = -v),
        UnaryOp::Exp => out
            .iter_mut()
            .zip(x)
            .for_each(|(o, &v)| *o = vector::exp(v)),
        UnaryOp::Sqrt => out.iter_mut().zip(x).for_each(|(o, &v)| *o = v.sqrt()),
        UnaryOp::Recip => out.iter_mut().zip(x).for_each(|(o, &v)| *o = 1.0 / v),
        UnaryOp::Abs => out.iter_mut().zip(x).for_each(|(o, &v)| *o = v.abs()),
        UnaryOp::Sqr => out.iter_mut().zip(x).for_each(|(o, &v)| *o = v * v),
        UnaryOp::Sigmoid => out.iter_mut().zip(x).for_each(|(o, &v)| *o = sigmoid(v)),
        UnaryOp::Relu => out.iter_mut().zip(x).for_each(|(o, &v)| *o = v.max(0.0)),
        UnaryOp::Silu => out
            .iter_mut()
            .zip(x)
            .for_each(|(o, &v)| *o = v * sigmoid(v)),
        UnaryOp::SiluDeriv => out.iter_mut().zip(x).for_each(|(o, &v)| {
            let s = sigmoid(v);
            *o = s * (1.0 + v * (1.0 - s));
        }),
        UnaryOp::Step => out
            .iter_mut()
            .zip(x)
            .for_each(|(o, &v)| *o = if v > 0.0 { 1.0 } else { 0.0 }),
        UnaryOp::Affine { mul, add } => {
            out.iter_mut().zip(x).for_each(|(o, &v)| *o = v * mul + add)
        }
        // libm functions (log, tanh, sin, cos, powf) and the f64 erf stay scalar.
        _ => map(out, &unary_fn(op)),
    }
}

multiversion! {
    fn unary_slice(op: UnaryOp, x: &[f32], out: &mut [f32]) = unary_body;
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
    let it = out.iter_mut().zip(a.iter().zip(b));
    match op {
        BinaryOp::Add => it.for_each(|(o, (&x, &y))| *o = x + y),
        BinaryOp::Sub => it.for_each(|(o, (&x, &y))| *o = x - y),
        BinaryOp::Mul => it.for_each(|(o, (&x, &y))| *o = x * y),
        BinaryOp::Div => it.for_each(|(o, (&x, &y))| *o = x / y),
        _ => {
            let f = arith(op);
            it.for_each(|(o, (&x, &y))| *o = f(x, y));
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
