//! `osum bench attention`: our fused attention forward vs our own two batched GEMMs `Q·Kᵀ`
//! and `P·V` alone on the same shapes; ratio = fused time / GEMM time.

use super::measure;
use super::{err, f, gflops, ms, r, uniform, BenchArgs, Output};
use osum::engine::profiler::cost;
use osum::engine::{no_grad, AttentionParams, Rng, Tensor};
use serde_json::json;

struct AttnCase {
    b: usize,
    t: usize,
    hq: usize,
    hkv: usize,
    d: usize,
    causal: bool,
}

pub fn run(a: &BenchArgs, out: &mut Output) -> Result<(), String> {
    let case = |t, hq, hkv, d, causal| AttnCase {
        b: 1,
        t,
        hq,
        hkv,
        d,
        causal,
    };
    let cases = if a.quick {
        vec![case(32, 2, 2, 16, false), case(16, 4, 2, 8, true)]
    } else {
        vec![case(1500, 16, 16, 64, false), case(512, 32, 8, 128, true)]
    };
    eprintln!(
        "bench attention: f32, {} threads; fused = Tensor::attention forward, gemms = our \
         batched Q·Kᵀ then P·V alone (K/V expanded to the query heads)",
        rayon::current_num_threads()
    );
    let mut rng = Rng::new(a.seed);
    for c in cases {
        let shape = format!(
            "b{}_t{}_hq{}_hkv{}_d{}{}",
            c.b,
            c.t,
            c.hq,
            c.hkv,
            c.d,
            if c.causal { "_causal" } else { "" }
        );
        eprintln!("  {shape} …");
        let q = uniform(&[c.b, c.hq, c.t, c.d], &mut rng)?;
        let k = uniform(&[c.b, c.hkv, c.t, c.d], &mut rng)?;
        let v = uniform(&[c.b, c.hkv, c.t, c.d], &mut rng)?;
        let (kx, vx) = (expand_heads(&k, c.hq)?, expand_heads(&v, c.hq)?);
        let kxt = kx.transpose(-1, -2).map_err(err)?;
        let p = AttentionParams {
            scale: 1.0 / (c.d as f32).sqrt(),
            causal: c.causal,
        };
        let s = measure::alternate(
            a.reps,
            &mut || {
                no_grad(|| q.attention(&k, &v, None, &p))
                    .map(drop)
                    .map_err(err)
            },
            &mut || {
                no_grad(|| q.matmul(&kxt)?.matmul(&vx))
                    .map(drop)
                    .map_err(err)
            },
        )?;
        let (fused_s, gemms_s) = (measure::median(&s.a), measure::median(&s.b));
        let (b, hq, t, d) = (c.b as u64, c.hq as u64, c.t as u64, c.d as u64);
        let fused_flops = cost::attention(b, hq, t, t, d, c.causal);
        let gemm_flops = 2 * cost::matmul(b * hq, t, d, t);
        let obj = json!({
            "bench": "attention", "shape": shape, "dtype": "f32", "causal": c.causal,
            "fused_ms": r(fused_s * 1e3), "gemms_ms": r(gemms_s * 1e3),
            "ratio": r(fused_s / gemms_s),
            "fused_gflops": r(gflops(fused_flops, fused_s)),
            "gemms_gflops": r(gflops(gemm_flops, gemms_s)),
            "reps": s.reps(), "threads": rayon::current_num_threads(),
        });
        out.row(
            obj,
            &[
                ("shape", shape.clone()),
                ("fused ms", ms(fused_s)),
                ("gemms ms", ms(gemms_s)),
                ("fused/gemms", f(fused_s / gemms_s, 3)),
                ("fused GFLOP/s", f(gflops(fused_flops, fused_s), 1)),
                ("gemms GFLOP/s", f(gflops(gemm_flops, gemms_s), 1)),
                ("reps", s.reps().to_string()),
            ],
        );
    }
    Ok(())
}

/// `[B, Hkv, T, D]` → contiguous `[B, Hq, T, D]` where query head `h` gets kv head
/// `h / (Hq/Hkv)` (the GQA grouping), made once outside the timed region.
fn expand_heads(t: &Tensor, hq: usize) -> Result<Tensor, String> {
    let s = t.shape().to_vec();
    let group = hq / s[1];
    if group == 1 {
        return Ok(t.clone());
    }
    t.unsqueeze(2)
        .and_then(|u| u.broadcast_as(&[s[0], s[1], group, s[2], s[3]]))
        .and_then(|u| u.contiguous())
        .and_then(|u| u.reshape(&[s[0], hq, s[2], s[3]]))
        .map_err(err)
}
