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
        let (o, lse) = inputs.forward_all(Some(&kt));
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
