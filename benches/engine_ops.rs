//! Criterion benchmarks of the engine's hot ops on the CPU device: matmul (square, a linear layer
//! on a batch of tokens, decode-time GEMV with a bf16 weight) and attention (encoder-style and
//! causal). Inputs are seeded random data: untouched zero pages would read impossibly fast.
//! Criterion's "elem/s" throughput is FLOP/s here: each case declares its FLOP count as elements
//! (2·M·K·N for matmul; 4·B·H·Tq·Tk·D for attention, halved when causal).
//! Run: `cargo bench --bench engine_ops`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use osum::engine::{cpu_device, no_grad, AttentionParams, DType, Rng, Tensor};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0, &mut Rng::new(seed), &cpu_device()).expect("randn")
}

fn bench_matmul(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul");
    g.sample_size(10);
    // (name, M, K, N, weight dtype)
    let cases = [
        ("square", 256, 256, 256, DType::F32),
        ("square", 512, 512, 512, DType::F32),
        ("linear_tokens", 128, 1024, 1024, DType::F32),
        ("gemv_bf16", 1, 2048, 2048, DType::BF16),
    ];
    for (name, m, k, n, wdt) in cases {
        let a = randn(&[m, k], 1);
        let w = randn(&[n, k], 2).to_dtype(wdt).expect("cast");
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        g.bench_with_input(
            BenchmarkId::new(name, format!("{m}x{k}x{n}_{wdt:?}")),
            &(),
            |bch, _| bch.iter(|| no_grad(|| a.linear(&w, None)).expect("matmul")),
        );
    }
    g.finish();
}

fn bench_attention(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention");
    g.sample_size(10);
    // (name, B, H, T, D, causal)
    let cases = [
        ("encoder", 1, 6, 375, 64, false),
        ("causal", 1, 8, 256, 64, true),
    ];
    for (name, b, h, t, d, causal) in cases {
        let q = randn(&[b, h, t, d], 3);
        let k = randn(&[b, h, t, d], 4);
        let v = randn(&[b, h, t, d], 5);
        let p = AttentionParams {
            scale: 1.0 / (d as f32).sqrt(),
            causal,
        };
        let flops = 4 * b * h * t * t * d / if causal { 2 } else { 1 };
        g.throughput(Throughput::Elements(flops as u64));
        g.bench_with_input(
            BenchmarkId::new(name, format!("{b}x{h}x{t}x{d}")),
            &(),
            |bch, _| bch.iter(|| no_grad(|| q.attention(&k, &v, None, &p)).expect("attention")),
        );
    }
    g.finish();
}

criterion_group!(benches, bench_matmul, bench_attention);
criterion_main!(benches);
