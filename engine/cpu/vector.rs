//! Vector primitives shared by the CPU kernels: a polynomial `exp` and slice loops (dot,
//! axpy, max, exp-and-sum, scale, f64 sums).
//!
//! Each slice primitive is written once as plain Rust the compiler vectorizes, then compiled
//! three times by [`multiversion!`]: for AVX-512, for AVX2+FMA and for the baseline target; the
//! call dispatches on [`Isa::detected`]. The loops have no data-dependent branches (selects only), so the
//! same source becomes 16-, 8- or 4-lane code.

pub use super::isa::Isa;

/// Defines `pub fn $name(args) -> ret` that runs the `#[inline(always)]` body `$body` compiled
/// for the detected [`Isa`].
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $t:ty),*) $(-> $ret:ty)? = $body:path;) => {
        $(#[$m])*
        $vis fn $name($($arg: $t),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                fn v512($($arg: $t),*) $(-> $ret)? { $body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                fn v256($($arg: $t),*) $(-> $ret)? { $body($($arg),*) }
                match $crate::engine::cpu::isa::Isa::detected() {
                    // SAFETY: Isa::detected() reported these features present on this CPU.
                    $crate::engine::cpu::vector::Isa::Avx512 => return unsafe { v512($($arg),*) },
                    // SAFETY: as above, AVX2 and FMA are present.
                    $crate::engine::cpu::vector::Isa::Avx2 => return unsafe { v256($($arg),*) },
                    $crate::engine::cpu::vector::Isa::Portable => {}
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

// ---- exp -----------------------------------------------------------------------------------------

/// Below this, `exp` flushes to 0: ln of the smallest normal f32 (2⁻¹²⁶), so no subnormal is
/// ever produced (they are slow and meaningless as probabilities).
pub const EXP_MIN: f32 = -87.336_54;
/// Above this, `exp` is +∞ (ln of the largest finite f32).
pub const EXP_MAX: f32 = 88.722_83;

/// eˣ in f32 by Cody–Waite range reduction and a degree-7 polynomial (Cephes `expf`):
/// `n = round(x·log₂e)`, `r = x − n·ln2` with ln2 split in two parts so `n·C1` is exact,
/// `eʳ ≈ 1 + r + r²·P(r)` on |r| ≤ ln2/2, then `eˣ = eʳ·2ⁿ` built from exponent bits (as two
/// factors 2^⌊n/2⌋·2^(n−⌊n/2⌋), each a normal number for every n in range).
///
/// Accuracy against f64 `exp` rounded to f32, over 2·10⁶ points of [−87.3, 88.7] and a dense
/// sweep of [−2, 2]: at most 1 ulp measured on AVX-512, AVX2 and portable builds (the unit test
/// asserts ≤ 2 ulp). `x < EXP_MIN` gives 0, `x > EXP_MAX` gives +∞,
/// NaN gives NaN. Branch-free, so slice loops over it vectorize.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4; // 355/512: n·C1 is exact for |n| < 2¹⁵
    const C2: f32 = -2.121_944_4e-4; // ln2 − C1
    const MAGIC: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer (ties to even)
    let xc = x.clamp(EXP_MIN, EXP_MAX); // NaN stays NaN
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = (xc - n * C1) - n * C2;
    let z = r * r;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5; // Cephes 5.0000001201e-1 rounds to 0.5 in f32
    let y = p * z + r + 1.0;
    let h = ni >> 1;
    let a = f32::from_bits(((h + 127) as u32) << 23);
    let b = f32::from_bits(((ni - h + 127) as u32) << 23);
    let e = y * a * b;
    if x < EXP_MIN {
        0.0
    } else if x > EXP_MAX {
        f32::INFINITY
    } else {
        e
    }
}

/// [`exp`] on 16 lanes with AVX-512 intrinsics (same constants and reduction; `vscalefps`
/// applies 2ⁿ, and FMA evaluates the polynomial, so results may differ from [`exp`] by 1 ulp).
/// For kernels that keep their data in registers.
#[cfg(target_arch = "x86_64")]
pub mod avx512 {
    use std::arch::x86_64::*;

    /// eˣ per lane: 0 below [`super::EXP_MIN`], +∞ above [`super::EXP_MAX`], NaN stays NaN.
    ///
    /// # Safety
    /// Callable only where AVX-512F is available (see [`super::isa`]).
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub fn exp(x: __m512) -> __m512 {
        // Clamping with x as the second operand keeps NaN (vmaxps returns it when unordered).
        let xc = _mm512_min_ps(
            _mm512_set1_ps(100.0),
            _mm512_max_ps(_mm512_set1_ps(-100.0), x),
        );
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(xc, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), xc);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
        let z = _mm512_mul_ps(r, r);
        let mut p = _mm512_set1_ps(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let y = _mm512_add_ps(_mm512_fmadd_ps(p, z, r), _mm512_set1_ps(1.0));
        // Above EXP_MAX n ≥ 128 and vscalefps overflows to +∞ by itself; below EXP_MIN flush.
        let e = _mm512_scalef_ps(y, n);
        let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, _mm512_set1_ps(super::EXP_MIN));
        _mm512_maskz_mov_ps(keep, e)
    }
}

#[inline(always)]
fn exp_in_place_body(x: &mut [f32]) {
    // `for`, not `for_each`: the loop must inline into the target-feature copy.
    for v in x.iter_mut() {
        *v = exp(*v);
    }
}

multiversion! {
    /// xᵢ ← exp(xᵢ) with [`exp`].
    pub fn exp_in_place(x: &mut [f32]) = exp_in_place_body;
}

// ---- reductions and maps ------------------------------------------------------------------------

/// Lanes of the partial sums: wide enough for one AVX-512 register (or two AVX2 ones), so the
/// compiler can keep them in registers without reordering a serial sum.
const LANES: usize = 16;

#[inline(always)]
fn dot_body(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    // Zipped iterators (not indices) so the lanes vectorize into whole registers.
    for (x, y) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

multiversion! {
    /// Σ aᵢ·bᵢ over the common length, with 16 independent partial sums (a single running sum
    /// is a serial dependency the compiler may not reorder).
    pub fn dot(a: &[f32], b: &[f32]) -> f32 = dot_body;
}

#[inline(always)]
fn axpy_body(y: &mut [f32], alpha: f32, x: &[f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

multiversion! {
    /// y += α·x over the common length.
    pub fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) = axpy_body;
}

#[inline(always)]
fn scale_body(x: &mut [f32], alpha: f32) {
    for v in x.iter_mut() {
        *v *= alpha;
    }
}

multiversion! {
    /// x ← α·x.
    pub fn scale(x: &mut [f32], alpha: f32) = scale_body;
}

#[inline(always)]
fn max_body(x: &[f32]) -> f32 {
    // Four registers' worth of lanes: one would make every step wait for the previous max.
    let mut acc = [f32::NEG_INFINITY; 4 * LANES];
    let c = x.chunks_exact(4 * LANES);
    let tail = c
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for v in c {
        for (a, &x) in acc.iter_mut().zip(v) {
            // A select rather than f32::max: same result on non-NaN input, and it vectorizes.
            *a = if x > *a { x } else { *a };
        }
    }
    acc.iter().copied().fold(tail, f32::max)
}

multiversion! {
    /// Largest element (−∞ for an empty slice). NaNs are skipped.
    pub fn max(x: &[f32]) -> f32 = max_body;
}

#[inline(always)]
fn sum_f64_body(x: &[f32]) -> f64 {
    // Independent f64 lanes: one running sum would wait on every add's latency.
    let mut acc = [0f64; LANES];
    let c = x.chunks_exact(LANES);
    let tail: f64 = c.remainder().iter().map(|&v| v as f64).sum();
    for v in c {
        for (a, &x) in acc.iter_mut().zip(v) {
            *a += x as f64;
        }
    }
    acc.iter().sum::<f64>() + tail
}

multiversion! {
    /// Σ xᵢ accumulated in f64 (in lanes, so the order differs from a left-to-right sum).
    pub fn sum_f64(x: &[f32]) -> f64 = sum_f64_body;
}

#[inline(always)]
fn add_widened_body(acc: &mut [f64], x: &[f32]) {
    for (a, &v) in acc.iter_mut().zip(x) {
        *a += v as f64;
    }
}

multiversion! {
    /// accᵢ += xᵢ (widened to f64) over the common length.
    pub fn add_widened(acc: &mut [f64], x: &[f32]) = add_widened_body;
}

#[inline(always)]
fn exp_sub_sum_body(x: &mut [f32], m: f32) -> f64 {
    // f32 partial sums over blocks of 1024 elements, folded into f64: the sum of a 150k-entry
    // vocabulary row stays accurate without a per-element conversion.
    let mut total = 0f64;
    for block in x.chunks_mut(1024) {
        let mut acc = [0f32; LANES];
        let mut c = block.chunks_exact_mut(LANES);
        for v in &mut c {
            for (a, x) in acc.iter_mut().zip(v.iter_mut()) {
                *x = exp(*x - m);
                *a += *x;
            }
        }
        for v in c.into_remainder() {
            *v = exp(*v - m);
            total += *v as f64;
        }
        total += acc.iter().map(|&a| a as f64).sum::<f64>();
    }
    total
}

multiversion! {
    /// xᵢ ← exp(xᵢ − m) with [`exp`]; returns Σ of the new values (in f64).
    pub fn exp_sub_sum(x: &mut [f32], m: f32) -> f64 = exp_sub_sum_body;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two finite f32 of the same sign.
    fn ulps(a: f32, b: f32) -> i64 {
        (a.to_bits() as i64 - b.to_bits() as i64).abs()
    }

    #[test]
    fn exp_is_within_two_ulp_of_f64_exp() {
        let (lo, hi, n) = (EXP_MIN as f64 + 1e-3, EXP_MAX as f64 - 1e-3, 2_000_000);
        let xs: Vec<f32> = (0..n)
            .map(|i| (lo + (hi - lo) * i as f64 / n as f64) as f32)
            .chain((-2000..2000).map(|i| i as f32 * 1e-3))
            .collect();
        let mut fast = xs.clone();
        exp_in_place(&mut fast);
        let mut worst = 0;
        for (&x, &got) in xs.iter().zip(&fast) {
            let want = (x as f64).exp() as f32;
            assert_eq!(
                got.to_bits(),
                exp(x).to_bits(),
                "slice and scalar differ at {x}"
            );
            let u = ulps(got, want);
            assert!(u <= 2, "exp({x}) = {got}, want {want}: {u} ulp");
            worst = worst.max(u);
        }
        eprintln!("exp: worst error {worst} ulp");
        assert!(worst >= 1, "a polynomial exp is not exact everywhere");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_exp_is_within_two_ulp_and_handles_edges() {
        if Isa::detected() != Isa::Avx512 {
            return;
        }
        let mut xs: Vec<f32> = (0..400_000)
            .map(|i| EXP_MIN + (EXP_MAX - EXP_MIN) * i as f32 / 400_000.0)
            .collect();
        xs.extend([
            f32::NEG_INFINITY,
            -100.0,
            EXP_MIN - 1e-3,
            89.0,
            f32::INFINITY,
            f32::NAN,
        ]);
        while !xs.len().is_multiple_of(16) {
            xs.push(0.5);
        }
        let mut worst = 0;
        for c in xs.chunks_exact(16) {
            let mut out = [0f32; 16];
            // SAFETY: AVX-512F is present (isa); both pointers address 16 floats.
            unsafe {
                let v = avx512::exp(std::arch::x86_64::_mm512_loadu_ps(c.as_ptr()));
                std::arch::x86_64::_mm512_storeu_ps(out.as_mut_ptr(), v);
            }
            for (&x, &got) in c.iter().zip(&out) {
                let want = (x as f64).exp() as f32;
                if x.is_nan() {
                    assert!(got.is_nan());
                } else if !(EXP_MIN..=EXP_MAX).contains(&x) {
                    assert_eq!(got, exp(x), "edge {x}");
                } else {
                    worst = worst.max(ulps(got, want));
                }
            }
        }
        eprintln!("avx512 exp: worst error {worst} ulp");
        assert!(worst <= 2);
    }

    #[test]
    fn exp_edges_flush_saturate_and_propagate_nan() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(EXP_MIN - 1e-3), 0.0);
        assert!(exp(EXP_MIN) > 0.0 && exp(EXP_MIN).is_normal());
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert!(exp(EXP_MAX).is_finite());
        assert!(exp(f32::NAN).is_nan());
        let mut v = [f32::NEG_INFINITY, f32::NAN, 1.0, -1.0, f32::INFINITY];
        exp_in_place(&mut v);
        assert_eq!(v[0], 0.0);
        assert!(v[1].is_nan());
        assert_eq!(v[4], f32::INFINITY);
    }

    #[test]
    fn slice_primitives_match_plain_loops_on_ragged_lengths() {
        for n in [0, 1, 7, 16, 19, 33, 1500] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| 1.0 - i as f32 * 0.25).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(&a, &b) as f64 - want).abs() < 1e-3 * (1.0 + want.abs()));
            let mut y = b.clone();
            axpy(&mut y, 2.0, &a);
            for i in 0..n {
                assert_eq!(y[i], b[i] + 2.0 * a[i]);
            }
            let m = a.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max(&a), m);
            let mut e = a.clone();
            let s = exp_sub_sum(&mut e, m);
            let want: f64 = a.iter().map(|&x| ((x - m) as f64).exp()).sum();
            assert!((s - want).abs() <= 1e-6 * want.max(1.0), "{s} vs {want}");
            for i in 0..n {
                assert_eq!(e[i], exp(a[i] - m));
            }
            let mut c = a.clone();
            scale(&mut c, 0.5);
            assert!(c.iter().zip(&a).all(|(c, a)| *c == a * 0.5));
        }
    }
}
