//! `osum bench gemm`: f32 GEMM, ours (`Tensor::matmul` on the `--device`) vs the `gemm` crate's
//! f32, FLOPs `2·M·K·N`. On `cpu-bf16` ours rounds the operands to bf16 (f32 accumulation), so
//! the max relative difference column shows that rounding (~1e-2), not a bug.

use super::measure;
use super::reference::{self, Mat};
use super::{err, max_rel_diff, report_pair, require_reference, uniform_on, BenchArgs, Output};
use osum::engine::cpu::gemm::Precision;
use osum::engine::profiler::cost;
use osum::engine::{no_grad, Device, Rng};
use std::sync::Arc;

struct GemmCase {
    m: usize,
    k: usize,
    n: usize,
    /// rhs given as W [N, K] and used transposed (a linear layer), else B [K, N].
    transposed: bool,
    note: &'static str,
}

fn cases(a: &BenchArgs) -> Vec<GemmCase> {
    let case = |m, k, n, transposed, note| GemmCase {
        m,
        k,
        n,
        transposed,
        note,
    };
    if !a.shapes.is_empty() {
        return a
            .shapes
            .iter()
            .map(|&[m, k, n]| case(m, k, n, true, "custom"))
            .collect();
    }
    if a.quick {
        return vec![
            case(64, 64, 64, false, "quick"),
            case(48, 80, 96, true, "quick"),
        ];
    }
    vec![
        case(1024, 1024, 1024, false, "square"),
        case(1500, 1024, 4096, true, "whisper-medium FFN up"),
        case(1500, 4096, 1024, true, "whisper-medium FFN down"),
        case(256, 4096, 4096, true, "LLM prefill"),
    ]
}

pub fn run(
    a: &BenchArgs,
    threads: usize,
    dev: &Arc<dyn Device>,
    out: &mut Output,
) -> Result<(), String> {
    require_reference()?;
    let kernel = match dev.name().as_str() {
        "cpu" => format!(" ({})", Precision::F32.kernel_name()),
        "cpu-bf16" => format!(" ({})", Precision::Bf16.kernel_name()),
        _ => String::new(),
    };
    eprintln!(
        "bench gemm: f32 tensors on device {}{kernel}, {threads} threads; reference: {}",
        dev.name(),
        reference::describe(threads)
    );
    let mut rng = Rng::new(a.seed);
    for c in cases(a) {
        let shape = format!("{}x{}x{}", c.m, c.k, c.n);
        let rhs_layout = if c.transposed { "NxK^T" } else { "KxN" };
        eprintln!("  {shape} ({}, rhs {rhs_layout}) …", c.note);
        let x = uniform_on(&[c.m, c.k], &mut rng, dev)?;
        let (w, rhs) = if c.transposed {
            let w = uniform_on(&[c.n, c.k], &mut rng, dev)?;
            let t = w.t().map_err(err)?;
            (w, t)
        } else {
            let b = uniform_on(&[c.k, c.n], &mut rng, dev)?;
            (b.clone(), b)
        };
        let (xv, wv) = (
            x.to_vec::<f32>().map_err(err)?,
            w.to_vec::<f32>().map_err(err)?,
        );
        let lhs = Mat::row_major(&xv, c.m, c.k);
        let rhs_ref = if c.transposed {
            Mat::transposed(&wv, c.k, c.n)
        } else {
            Mat::row_major(&wv, c.k, c.n)
        };
        let mut dst = vec![0f32; c.m * c.n];
        let mut ours_out = None;
        let s = measure::alternate(
            a.reps,
            &mut || {
                // Free the previous result first, as a loop reusing its output would.
                drop(ours_out.take());
                ours_out = Some(no_grad(|| x.matmul(&rhs)).map_err(err)?);
                Ok(())
            },
            &mut || reference::gemm(lhs, rhs_ref, &mut dst, threads),
        )?;
        let ours_vals = match &ours_out {
            Some(t) => t.to_vec::<f32>().map_err(err)?,
            None => Vec::new(),
        };
        let diff = max_rel_diff(&ours_vals, &dst);
        let flops = cost::matmul(1, c.m as u64, c.k as u64, c.n as u64);
        let label = ("rhs", rhs_layout);
        report_pair(
            out,
            "gemm",
            &shape,
            flops,
            &s,
            diff,
            label,
            threads,
            &dev.name(),
        );
    }
    Ok(())
}
