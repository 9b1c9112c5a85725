use super::*;
use crate::engine::rng::Rng;

/// The blocked backward against the per-row one, on shapes with several row blocks and
/// key tiles, GQA, a head dim that is not a multiple of 16, causal and not.
#[test]
fn blocked_backward_matches_the_per_row_backward() {
    for causal in [false, true] {
        let dims = Dims {
            b: 2,
            hq: 4,
            hkv: 2,
            tq: 37,
            tk: 150,
            d: 20,
        };
        let mut rng = Rng::new(7);
        let mut randn = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal()).collect() };
        let nq = dims.b * dims.hq * dims.tq * dims.d;
        let nk = dims.b * dims.hkv * dims.tk * dims.d;
        let (q, k, v, dout) = (randn(nq), randn(nk), randn(nk), randn(nq));
        let head = dims.tk * dims.d;
        let inputs = Inputs {
            q: &q,
            k: Heads::dense(Cow::Borrowed(&k), dims.hkv, head),
            v: Heads::dense(Cow::Borrowed(&v), dims.hkv, head),
            mask: None,
            dims,
            p: AttentionParams { scale: 0.3, causal },
        };
        let kt = pack_keys(&inputs.k, &dims);
        let (o, lse) = inputs.forward_all(Keys::F32(&kt));
        let delta: Vec<f32> = dout
            .chunks(dims.d)
            .zip(o.chunks(dims.d))
            .map(|(a, b)| dot(a, b))
            .collect();
        let saved = Saved {
            dout: &dout,
            kt: &kt,
            vt: &pack_keys(&inputs.v, &dims),
            lse: &lse,
            delta: &delta,
        };
        let (ql, kl) = (nq / (dims.b * dims.hkv), nk / (dims.b * dims.hkv));
        for u in 0..dims.b * dims.hkv {
            let (mut dq, mut dk, mut dv) = (vec![0f32; ql], vec![0f32; kl], vec![0f32; kl]);
            inputs.backward_blocked(&saved, u, &mut dq, &mut dk, &mut dv);
            let (mut rq, mut rk, mut rv) = (vec![0f32; ql], vec![0f32; kl], vec![0f32; kl]);
            let (bi, kv) = (u / dims.hkv, u % dims.hkv);
            inputs.backward_unit(&dout, bi, kv, &mut rq, &mut rk, &mut rv);
            for (name, got, want) in [("dq", dq, rq), ("dk", dk, rk), ("dv", dv, rv)] {
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-4 + 1e-4 * w.abs(),
                        "{name}[{i}] unit {u} causal {causal}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

/// The bf16 forward against an f64 reference on bf16-rounded q, k, v (what the kernels
/// multiply). The one remaining rounding is of the probabilities P to bf16, relative 2⁻⁹ each,
/// so every output is within 2⁻⁹·max|v| of the reference (bound 4e-3·max|v| + 1e-4): odd and
/// wide head dims, key counts off the tile size, GQA, causal, an additive mask with −∞ entries.
#[cfg(target_arch = "x86_64")]
#[test]
fn bf16_forward_matches_f64_on_bf16_rounded_inputs() {
    if !Precision::Bf16.supported() {
        eprintln!("skipped: this CPU has no AVX512_BF16");
        return;
    }
    let round = |x: f32| half::bf16::from_f32(x).to_f32();
    let cases = [
        (1, 4, 2, 53, 131, 33, true, false),
        (2, 2, 1, 20, 64, 80, false, true),
        (1, 6, 6, 100, 100, 64, false, false),
        (1, 2, 2, 9, 7, 4, true, true),
    ];
    for (b, hq, hkv, tq, tk, d, causal, masked) in cases {
        let dims = Dims {
            b,
            hq,
            hkv,
            tq,
            tk,
            d,
        };
        let mut rng = Rng::new(11);
        let mut randn = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal()).collect() };
        let (nq, nk) = (b * hq * tq * d, b * hkv * tk * d);
        let (q, k, v) = (randn(nq), randn(nk), randn(nk));
        let mut mask = randn(b * hq * tq * tk);
        for (i, m) in mask.iter_mut().enumerate() {
            if i % 7 == 3 {
                *m = f32::NEG_INFINITY;
            }
        }
        let tqk = tq * tk;
        let inputs = Inputs {
            q: &q,
            k: Heads::dense(Cow::Borrowed(&k), hkv, tk * d),
            v: Heads::dense(Cow::Borrowed(&v), hkv, tk * d),
            mask: masked.then(|| Mask {
                data: &mask,
                strides: [hq * tqk, tqk, tk, 1],
                offset: 0,
            }),
            dims,
            p: AttentionParams { scale: 0.2, causal },
        };
        let packed = super::bf16::Packed::new(&inputs.k, &inputs.v, &dims);
        let (got, _) = inputs.forward_all(Keys::Bf16(&packed));
        let vmax = v.iter().fold(0f32, |a, &x| a.max(x.abs()));
        let tol = 4e-3 * vmax as f64 + 1e-4;
        for bi in 0..b {
            for h in 0..hq {
                let kv = h / (hq / hkv);
                for i in 0..tq {
                    let qo = dims.row(bi, h, hq, i, tq);
                    let lim = dims.visible(causal, i);
                    let s: Vec<f64> = (0..lim)
                        .map(|j| {
                            let ko = dims.row(bi, kv, hkv, j, tk);
                            let dotp: f64 = (0..d)
                                .map(|e| round(q[qo + e]) as f64 * round(k[ko + e]) as f64)
                                .sum();
                            let m = if masked {
                                mask[(bi * hq + h) * tqk + i * tk + j]
                            } else {
                                0.0
                            };
                            0.2 * dotp + m as f64
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let w: Vec<f64> = s.iter().map(|&x| (x - max).exp()).collect();
                    let l: f64 = w.iter().sum();
                    for e in 0..d {
                        let want = if max == f64::NEG_INFINITY {
                            0.0
                        } else {
                            (0..lim)
                                .map(|j| w[j] * round(v[dims.row(bi, kv, hkv, j, tk) + e]) as f64)
                                .sum::<f64>()
                                / l
                        };
                        let g = got[qo + e] as f64;
                        assert!(
                            (g - want).abs() <= tol,
                            "{:?} ({bi},{h},{i},{e}): {g} vs {want}",
                            (b, hq, hkv, tq, tk, d, causal, masked)
                        );
                    }
                }
            }
        }
    }
}
