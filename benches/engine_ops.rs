//! Criterion benchmarks of the engine's hot ops on the CPU device, on the shapes of
//! `osum bench` (issue 3): f32 GEMM (1024³; Whisper-medium FFN 1500×1024×4096 and
//! 1500×4096×1024 as x·Wᵀ; LLM prefill 256×4096×4096 as x·Wᵀ), the decode GEMV 1×4096×12800
//! with a bf16 W, attention (1500 tokens × 16 heads × 64; 512 tokens causal, 32 query / 8 KV
//! heads × 128) and Whisper-medium's two convolutions.
//!
//! Inputs are seeded random data: untouched zero pages would read impossibly fast. Criterion's
//! "elem/s" is FLOP/s here (each case declares its FLOP count, from the profiler's formulas),
//! except the GEMV, whose throughput is bytes of weights (criterion prints B/s).
//! `osum bench` is the tool for comparisons (it runs the reference alternately in the same
//! process); these track our own kernels over time.
//! Run: `cargo bench --bench engine_ops` (a filter such as `-- gemm` narrows it).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use osum::engine::profiler::cost;
use osum::engine::{cpu_device, no_grad, AttentionParams, DType, Rng, Tensor};
use std::time::Duration;

fn uniform(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_uniform(shape, -1.0, 1.0, &mut Rng::new(seed), &cpu_device()).expect("rand")
}

/// Few samples and short windows: the big shapes take up to a second per call.
fn quick<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g
}

fn bench_gemm(c: &mut Criterion) {
    let mut g = quick(c, "gemm_f32");
    // (M, K, N, rhs as W [N, K] transposed)
    let cases = [
        (1024, 1024, 1024, false),
        (1500, 1024, 4096, true),
        (1500, 4096, 1024, true),
        (256, 4096, 4096, true),
    ];
    for (m, k, n, transposed) in cases {
        let x = uniform(&[m, k], 1);
        let rhs = if transposed {
            uniform(&[n, k], 2).t().expect("t")
        } else {
            uniform(&[k, n], 2)
        };
        g.throughput(Throughput::Elements(cost::matmul(
            1, m as u64, k as u64, n as u64,
        )));
        let id = format!("{m}x{k}x{n}{}", if transposed { "_wT" } else { "" });
        g.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter(|| no_grad(|| x.matmul(&rhs)).expect("matmul"))
        });
    }
    g.finish();
}

fn bench_gemv(c: &mut Criterion) {
    let mut g = quick(c, "gemv_bf16");
    let (m, k, n) = (1, 4096, 12800);
    let x = uniform(&[m, k], 3);
    let w = uniform(&[n, k], 4).to_dtype(DType::BF16).expect("cast");
    g.throughput(Throughput::Bytes(
        (n * k * DType::BF16.size_in_bytes()) as u64,
    ));
    g.bench_function(BenchmarkId::from_parameter(format!("{m}x{k}x{n}")), |b| {
        b.iter(|| no_grad(|| x.linear(&w, None)).expect("gemv"))
    });
    g.finish();
}

fn bench_attention(c: &mut Criterion) {
    let mut g = quick(c, "attention");
    // (T, Hq, Hkv, D, causal), batch 1
    let cases = [(1500, 16, 16, 64, false), (512, 32, 8, 128, true)];
    for (t, hq, hkv, d, causal) in cases {
        let q = uniform(&[1, hq, t, d], 5);
        let k = uniform(&[1, hkv, t, d], 6);
        let v = uniform(&[1, hkv, t, d], 7);
        let p = AttentionParams {
            scale: 1.0 / (d as f32).sqrt(),
            causal,
        };
        let flops = cost::attention(1, hq as u64, t as u64, t as u64, d as u64, causal);
        g.throughput(Throughput::Elements(flops));
        let id = format!(
            "t{t}_hq{hq}_hkv{hkv}_d{d}{}",
            if causal { "_causal" } else { "" }
        );
        g.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter(|| no_grad(|| q.attention(&k, &v, None, &p)).expect("attention"))
        });
    }
    g.finish();
}

fn bench_conv(c: &mut Criterion) {
    let mut g = quick(c, "conv1d");
    // Whisper-medium: (C, L, O, stride), kernel 3, padding 1.
    let cases = [("conv1", 80, 3000, 1024, 1), ("conv2", 1024, 3000, 1024, 2)];
    for (name, ch, l, o, stride) in cases {
        let x = uniform(&[1, ch, l], 8);
        let w = uniform(&[o, ch, 3], 9);
        let ol = (l + 2 - 3) / stride + 1;
        let flops = cost::conv2d(1, o as u64, 1, ol as u64, ch as u64, 1, 3);
        g.throughput(Throughput::Elements(flops));
        let id = format!("{name}_c{ch}_l{l}_o{o}_s{stride}");
        g.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter(|| no_grad(|| x.conv1d(&w, None, stride, 1, 1)).expect("conv1d"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_gemm, bench_gemv, bench_attention, bench_conv);
criterion_main!(benches);
