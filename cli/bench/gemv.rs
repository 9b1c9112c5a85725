//! `osum bench gemv`: the decode GEMV `x·Wᵀ` with a bf16 W. Throughput is weight bytes / time,
//! set against the machine's read bandwidth measured in the same run (alternating with it).

use super::bandwidth::ReadBuffer;
use super::measure;
use super::{err, f, gflops, ms, r, uniform, BenchArgs, Output};
use osum::engine::profiler::cost;
use osum::engine::{no_grad, DType, Rng};
use serde_json::json;

pub fn run(a: &BenchArgs, threads: usize, out: &mut Output) -> Result<(), String> {
    let shapes: Vec<[usize; 3]> = if !a.shapes.is_empty() {
        a.shapes.clone()
    } else if a.quick {
        vec![[1, 256, 512]]
    } else {
        vec![[1, 4096, 12800]]
    };
    // ≥ 512 MiB: far beyond any last-level cache, so every pass reads DRAM.
    let bw_bytes = if a.quick { 8 << 20 } else { 512 << 20 };
    eprintln!(
        "bench gemv: f32 x · bf16 Wᵀ, {threads} threads; bandwidth: {threads}-thread sum over \
         {} MiB of random floats, best pass",
        bw_bytes >> 20
    );
    let buf = ReadBuffer::new(bw_bytes, a.seed ^ 0xB4);
    let mut rng = Rng::new(a.seed);
    for [m, k, n] in shapes {
        let shape = format!("{m}x{k}x{n}");
        eprintln!("  {shape} …");
        let x = uniform(&[m, k], &mut rng)?;
        let w = uniform(&[n, k], &mut rng)?
            .to_dtype(DType::BF16)
            .map_err(err)?;
        let wt = w.t().map_err(err)?;
        let s = measure::alternate(
            a.reps,
            &mut || no_grad(|| x.matmul(&wt)).map(drop).map_err(err),
            &mut || {
                buf.pass(threads);
                Ok(())
            },
        )?;
        let ours_s = measure::median(&s.a);
        let weight_bytes = (n * k * DType::BF16.size_in_bytes()) as f64;
        let ours_gbps = weight_bytes / ours_s / 1e9;
        let bw_gbps = buf.bytes() as f64 / measure::best(&s.b) / 1e9;
        let fraction = ours_gbps / bw_gbps;
        let og = gflops(cost::matmul(1, m as u64, k as u64, n as u64), ours_s);
        let obj = json!({
            "bench": "gemv", "shape": shape, "dtype": "bf16",
            "ours_gbps": r(ours_gbps), "bandwidth_gbps": r(bw_gbps), "fraction": r(fraction),
            "ours_ms": r(ours_s * 1e3), "ours_gflops": r(og),
            "reps": s.reps(), "threads": threads,
        });
        out.row(
            obj,
            &[
                ("shape", shape.clone()),
                ("weights", "bf16".into()),
                ("ours ms", ms(ours_s)),
                ("ours GB/s", f(ours_gbps, 2)),
                ("read GB/s", f(bw_gbps, 2)),
                ("fraction", f(fraction, 3)),
                ("ours GFLOP/s", f(og, 1)),
                ("reps", s.reps().to_string()),
            ],
        );
    }
    Ok(())
}
