//! The device conformance suite: every op checked against a plain f64 reference loop, and every
//! differentiable op checked against central finite differences, written once against
//! `Arc<dyn Device>` so that each device runs the same cases unchanged.
//!
//! A device's test file says `#[macro_use] mod conformance; device_suite!(path::to::device_fn);`
//! and gets one `#[test]` per case, named `<group>::<case>`.
//!
//! Tolerances: forward checks state theirs per case; gradient checks use [`GradTol::default`]
//! (step 1e-3, |auto − numeric| ≤ 3e-3 + 1e-2·|numeric|) unless a case says otherwise. The loss
//! for a gradient check is Σ out·R with a fixed random R, accumulated in f64 on the host, so the
//! only rounding is the f32 forward itself.
#![allow(dead_code)]

use osum::engine::{no_grad, Device, Result, Rng, Tensor};
use std::sync::Arc;

/// The device under test.
pub type Dev = Arc<dyn Device>;

/// Generates one test per listed case of a group, each calling `$group::$case(&$dev())`.
macro_rules! conformance_cases {
    ($dev:path, $group:ident, [$($case:ident),* $(,)?]) => {
        mod $group {
            $(
                #[test]
                fn $case() {
                    let dev = $dev();
                    if let Err(e) = crate::conformance::$group::$case(&dev) {
                        panic!("{} on {}: {e}", stringify!($case), dev.name());
                    }
                }
            )*
        }
    };
}

#[macro_use]
pub mod elementwise;
#[macro_use]
pub mod linalg_index;
#[macro_use]
pub mod nn;
#[macro_use]
pub mod conv_attention;
#[macro_use]
pub mod training;

/// Every conformance case for the device returned by `$dev()`.
macro_rules! device_suite {
    ($dev:path) => {
        elementwise_cases!($dev);
        linalg_index_cases!($dev);
        nn_cases!($dev);
        conv_attention_cases!($dev);
        training_cases!($dev);
    };
}

// ---- data helpers ------------------------------------------------------------------------------

/// Seeded normal f32 values.
pub fn randn_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.normal()).collect()
}

/// A seeded normal f32 tensor.
pub fn randn(dev: &Dev, shape: &[usize], seed: u64) -> Result<Tensor> {
    Tensor::from_vec(randn_vec(shape.iter().product(), seed), shape, dev)
}

/// The same values as `t` seen through a non-contiguous layout (last two dims stored
/// transposed). Differentiable, so it can sit inside a gradient check.
pub fn noncontig(t: &Tensor) -> Result<Tensor> {
    assert!(t.rank() >= 2, "noncontig needs rank >= 2");
    let s = t.t()?.contiguous()?.t()?;
    assert!(
        !s.layout().is_contiguous() || t.shape()[t.rank() - 1] == 1 || t.shape()[t.rank() - 2] == 1
    );
    Ok(s)
}

/// Host f64 copy of any tensor.
pub fn values(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_host()?.to_f64_vec())
}

/// Row-major multi-index of flat index `i` in `shape`.
pub fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

/// Flat row-major index of a multi-index.
pub fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// Panics with the first offending element unless `|got − want| ≤ atol + rtol·|want|` everywhere.
pub fn assert_close(got: &[f64], want: &[f64], atol: f64, rtol: f64, what: &str) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} vs {}",
        got.len(),
        want.len()
    );
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= atol + rtol * w.abs() || (g.is_nan() && w.is_nan()) || g == w;
        assert!(
            ok,
            "{what}: element {i}: got {g}, want {w} (atol {atol}, rtol {rtol})"
        );
    }
}

/// Compare a tensor with reference values.
pub fn assert_tensor_close(
    t: &Tensor,
    want: &[f64],
    atol: f64,
    rtol: f64,
    what: &str,
) -> Result<()> {
    assert_close(&values(t)?, want, atol, rtol, what);
    Ok(())
}

/// The exact error function in f64 (series below 3, continued fraction above), for references.
pub fn erf64(x: f64) -> f64 {
    let z = x.abs();
    let r = if z < 3.0 {
        // erf z = 2/√π Σ (−1)ⁿ z^(2n+1) / (n!(2n+1))
        let mut term = z;
        let mut sum = z;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -z * z / n;
            sum += term / (2.0 * n + 1.0);
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    } else {
        // erfc z = e^{-z²}/√π · 1/(z + 1/2/(z + 1/(z + 3/2/(z + …))))
        let mut f = z;
        for k in (1..60).rev() {
            f = z + (k as f64 / 2.0) / f;
        }
        1.0 - (-z * z).exp() / std::f64::consts::PI.sqrt() / f
    };
    if x < 0.0 {
        -r
    } else {
        r
    }
}

// ---- gradient check ----------------------------------------------------------------------------

/// Finite-difference settings.
#[derive(Clone, Copy, Debug)]
pub struct GradTol {
    /// Central-difference step.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
}

impl Default for GradTol {
    fn default() -> Self {
        GradTol {
            eps: 1e-3,
            atol: 3e-3,
            rtol: 1e-2,
        }
    }
}

/// Checks the autograd gradient of every float input of `f` against central differences of
/// L = Σ f(inputs)·R (R fixed random). Integer inputs (ids) are passed through unchecked.
pub fn grad_check<F>(dev: &Dev, inputs: &[Tensor], f: F, tol: GradTol, what: &str) -> Result<()>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    let vars: Vec<Tensor> = inputs
        .iter()
        .map(|t| {
            if t.dtype().is_float() {
                t.variable()
            } else {
                t.clone()
            }
        })
        .collect();
    let out = f(&vars)?;
    let r = randn(dev, out.shape(), 0xC0FFEE)?;
    let r_host = values(&r)?;
    let grads = out.mul(&r)?.sum_all()?.backward()?;

    let loss_at = |xs: &[Tensor]| -> Result<f64> {
        let o = no_grad(|| f(xs))?;
        Ok(values(&o)?.iter().zip(&r_host).map(|(a, b)| a * b).sum())
    };
    for (k, x) in inputs.iter().enumerate() {
        if !x.dtype().is_float() {
            continue;
        }
        let auto = match grads.get(&vars[k]) {
            Some(g) => values(g)?,
            None => vec![0.0; x.elem_count()],
        };
        let base: Vec<f32> = x.to_dtype(osum::engine::DType::F32)?.to_vec()?;
        let mut numeric = Vec::with_capacity(base.len());
        for j in 0..base.len() {
            let at = |delta: f64| -> Result<f64> {
                let mut v = base.clone();
                v[j] = (base[j] as f64 + delta) as f32;
                let mut xs = inputs.to_vec();
                xs[k] = Tensor::from_vec(v, x.shape(), dev)?.to_dtype(x.dtype())?;
                loss_at(&xs)
            };
            numeric.push((at(tol.eps)? - at(-tol.eps)?) / (2.0 * tol.eps));
        }
        assert_close(
            &auto,
            &numeric,
            tol.atol,
            tol.rtol,
            &format!("{what}: d/d input {k}"),
        );
    }
    Ok(())
}
