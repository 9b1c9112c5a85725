//! A small mixed-radix complex FFT (recursive decimation in time) for the STFT of §2.
//!
//! n_fft = 400 = 4·4·5·5 is not a power of two, so radix-2 will not do. Each stage of radix p
//! does p twiddle multiplies and a p-point DFT per output group: N·Σp work instead of N² for a
//! direct DFT. Twiddles come from one table of W_N^j computed in f64.

/// A complex number in f32.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct C {
    pub re: f32,
    pub im: f32,
}

impl C {
    #[inline(always)]
    fn mul(self, o: C) -> C {
        C {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }
    #[inline(always)]
    fn add(self, o: C) -> C {
        C {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }
}

/// Largest radix a plan may use (size of the per-stage scratch).
const MAX_RADIX: usize = 8;

/// A forward FFT plan for one size: `X[k] = Σ x[n]·e^{−2πikn/N}`.
pub(super) struct Fft {
    n: usize,
    factors: Vec<usize>,
    /// `tw[j] = e^{−2πij/N}`.
    tw: Vec<C>,
}

impl Fft {
    /// Plans a size-`n` FFT; `n` must factor into radices ≤ 8 (i.e. 2, 3, 5, 7 only).
    pub fn new(n: usize) -> Fft {
        assert!(n > 0, "FFT size must be positive");
        let mut factors = Vec::new();
        let mut rest = n;
        for p in [4, 2, 3, 5, 7] {
            while rest.is_multiple_of(p) {
                factors.push(p);
                rest /= p;
            }
        }
        assert!(rest == 1, "FFT size {n} has a prime factor above 7");
        let tw = (0..n)
            .map(|j| {
                let a = -2.0 * std::f64::consts::PI * j as f64 / n as f64;
                C {
                    re: a.cos() as f32,
                    im: a.sin() as f32,
                }
            })
            .collect();
        Fft { n, factors, tw }
    }

    /// `out = FFT(input)`; both of the planned length.
    pub fn forward(&self, input: &[C], out: &mut [C]) {
        assert!(
            input.len() == self.n && out.len() == self.n,
            "FFT buffers must have the planned length"
        );
        self.stage(input, 1, &self.factors, out);
    }

    /// FFT of the `out.len()` inputs `input[0], input[stride], …` into `out`.
    fn stage(&self, input: &[C], stride: usize, factors: &[usize], out: &mut [C]) {
        let n = out.len();
        let Some((&p, rest)) = factors.split_first() else {
            out[0] = input[0];
            return;
        };
        let m = n / p;
        // p interleaved sub-FFTs of length m: sub-sequence q is input[q], input[q+p], …
        for q in 0..p {
            self.stage(
                &input[q * stride..],
                stride * p,
                rest,
                &mut out[q * m..(q + 1) * m],
            );
        }
        // Combine: X[k + r·m] = Σ_q W_n^{qk} · Y_q[k] · W_p^{qr}.
        let step = self.n / n; // W_n^j = W_N^{j·step}
        let wp = self.n / p; // W_p^j = W_N^{j·wp}
        let mut t = [C::default(); MAX_RADIX];
        for k in 0..m {
            for (q, tq) in t.iter_mut().enumerate().take(p) {
                *tq = out[q * m + k].mul(self.tw[q * k * step]);
            }
            for r in 0..p {
                let mut acc = t[0];
                for (q, tq) in t.iter().enumerate().take(p).skip(1) {
                    acc = acc.add(tq.mul(self.tw[(q * r % p) * wp]));
                }
                out[k + r * m] = acc;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dft(x: &[C]) -> Vec<C> {
        let n = x.len();
        (0..n)
            .map(|k| {
                let (mut re, mut im) = (0f64, 0f64);
                for (j, v) in x.iter().enumerate() {
                    let a = -2.0 * std::f64::consts::PI * ((j * k) % n) as f64 / n as f64;
                    re += v.re as f64 * a.cos() - v.im as f64 * a.sin();
                    im += v.re as f64 * a.sin() + v.im as f64 * a.cos();
                }
                C {
                    re: re as f32,
                    im: im as f32,
                }
            })
            .collect()
    }

    /// Matches a direct f64 DFT to 1e-4 relative to the input scale, for mixed sizes.
    #[test]
    fn matches_direct_dft() {
        for n in [1, 2, 3, 4, 5, 6, 8, 12, 25, 40, 100, 400, 7 * 9] {
            let x: Vec<C> = (0..n)
                .map(|i| C {
                    re: ((i * 37 % 11) as f32 - 5.0) / 5.0,
                    im: ((i * 13 % 7) as f32 - 3.0) / 3.0,
                })
                .collect();
            let fft = Fft::new(n);
            let mut y = vec![C::default(); n];
            fft.forward(&x, &mut y);
            for (a, b) in y.iter().zip(dft(&x)) {
                let tol = 1e-4 * (n as f32).sqrt();
                assert!(
                    (a.re - b.re).abs() < tol && (a.im - b.im).abs() < tol,
                    "n={n}: {a:?} vs {b:?}"
                );
            }
        }
    }
}
