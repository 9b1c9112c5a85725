//! `osum bench gemm|gemv|attention|conv`: our CPU kernels, through the public `Tensor` API,
//! against a reference in the same process — ours and the reference alternate after a warm-up
//! and medians are reported (see `measure.rs`). Inputs are seeded random data.
//!
//! - gemm: f32 GEMM vs the `gemm` crate. FLOPs `2·M·K·N`.
//! - gemv: decode-time `x·Wᵀ` with a bf16 W; GB/s = weight bytes / time, against the machine's
//!   read bandwidth measured here (see `bandwidth.rs`), alternating with it.
//! - attention: our fused attention vs our own two batched GEMMs `Q·Kᵀ` and `P·V` alone.
//! - conv: our conv1d vs im2col + the `gemm` crate.

use super::bandwidth::ReadBuffer;
use super::measure::{self, Samples};
use super::reference::{self, Conv1d, Mat};
use clap::error::ErrorKind;
use clap::{Args, ValueEnum};
use osum::engine::profiler::cost;
use osum::engine::{cpu_device, no_grad, AttentionParams, DType, Rng, Tensor};
use serde_json::{json, Value};

/// Options of `osum bench`.
#[derive(Args)]
#[command(after_help = "\
Examples:
  osum bench gemm                      readable table, adaptive repetitions
  osum bench gemv --json               one JSON object per line on stdout
  osum --threads 1 bench attention --reps 5
  osum bench gemm --shape 512x512x512 --shape 1x4096x4096

Every shape runs ours and the reference alternately after a warm-up and reports medians;
the host's speed drifts, so compare ratios rather than absolute figures across runs.
Exit codes: 0 ok, 1 a benchmark failed (or the reference is not compiled in), 2 usage error.")]
pub struct BenchArgs {
    /// Which kernels: gemm (f32, vs the gemm crate), gemv (bf16 weights, vs memory bandwidth),
    /// attention (fused vs its two GEMMs), conv (vs im2col + the gemm crate).
    #[arg(value_enum)]
    kind: Kind,
    /// One JSON object per shape per line on stdout; logs stay on stderr.
    #[arg(long)]
    json: bool,
    /// Timed repetitions of each side per shape (default: as many as fit in ~3 s, 3 to 21).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    reps: Option<u32>,
    /// Tiny shapes and a small bandwidth buffer: a smoke test, the figures mean nothing.
    #[arg(long)]
    quick: bool,
    /// Custom MxKxN shapes for gemm (as x·Wᵀ, W [N, K]) or gemv (bf16 W [N, K]); repeatable.
    #[arg(long = "shape", value_name = "MxKxN", value_parser = parse_mkn)]
    shapes: Vec<[usize; 3]>,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Kernel families.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Gemm,
    Gemv,
    Attention,
    Conv,
}

impl BenchArgs {
    /// Option combinations clap cannot check.
    pub fn usage_problem(&self) -> Option<(ErrorKind, String)> {
        let shaped = matches!(self.kind, Kind::Gemm | Kind::Gemv);
        (!self.shapes.is_empty() && !shaped).then(|| {
            (
                ErrorKind::ArgumentConflict,
                "--shape applies to `bench gemm` and `bench gemv` only".to_string(),
            )
        })
    }
}

fn parse_mkn(s: &str) -> Result<[usize; 3], String> {
    let dims: Vec<usize> = s
        .split(['x', 'X'])
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("expected MxKxN with positive integers, got {s:?}"))?;
    match dims[..] {
        [m, k, n] if m > 0 && k > 0 && n > 0 => {
            let elems = [m * k, k * n, m * n];
            if m.checked_mul(k).is_none()
                || k.checked_mul(n).is_none()
                || m.checked_mul(n).is_none()
                || elems.iter().any(|&e| e > 1 << 32)
            {
                return Err(format!(
                    "shape {s} is too large (at most 2³² elements per matrix)"
                ));
            }
            Ok([m, k, n])
        }
        _ => Err(format!("expected MxKxN with positive integers, got {s:?}")),
    }
}

/// Run the chosen benchmark; the error is the message for stderr (exit code 1).
pub fn run(a: BenchArgs) -> Result<(), String> {
    let threads = rayon::current_num_threads();
    let mut out = Output::new(a.json);
    match a.kind {
        Kind::Gemm => gemm(&a, threads, &mut out),
        Kind::Gemv => gemv(&a, threads, &mut out),
        Kind::Attention => attention(&a, &mut out),
        Kind::Conv => conv(&a, threads, &mut out),
    }
}

/// Where results go: JSON lines, or a table whose header is printed with the first row.
struct Output {
    json: bool,
    header_done: bool,
}

impl Output {
    fn new(json: bool) -> Self {
        Output {
            json,
            header_done: false,
        }
    }

    /// One result: `obj` as a JSON line, or `cols` (label, value) as a table row.
    fn row(&mut self, obj: Value, cols: &[(&str, String)]) {
        if self.json {
            println!("{obj}");
            return;
        }
        let line = |pick: fn(&(&str, String)) -> String| {
            let cells: Vec<String> = cols
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let w = c.0.chars().count().max(9);
                    let s = pick(c);
                    // The first column (the shape) reads best left-aligned and wide.
                    if i == 0 {
                        format!("{s:<30}")
                    } else {
                        format!("{s:>w$}")
                    }
                })
                .collect();
            println!("{}", cells.join(" ").trim_end());
        };
        if !self.header_done {
            line(|c| c.0.to_string());
            self.header_done = true;
        }
        line(|c| c.1.clone());
    }
}

fn f(x: f64, digits: usize) -> String {
    format!("{x:.digits$}")
}

/// Milliseconds with at least three significant digits (a quick run's 0.004 ms stays visible).
fn ms(secs: f64) -> String {
    let x = secs * 1e3;
    let digits = if x > 0.0 && x.is_finite() {
        (2 - x.log10().floor() as i32).clamp(1, 6) as usize
    } else {
        1
    };
    f(x, digits)
}

/// GFLOP/s of `flops` in `secs`.
fn gflops(flops: u64, secs: f64) -> f64 {
    flops as f64 / secs / 1e9
}

/// Round for JSON: figures with ~4 significant digits are what a reader can trust.
fn r(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let scale = 10f64.powi(3 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

fn err(e: osum::engine::Error) -> String {
    e.to_string()
}

fn uniform(shape: &[usize], rng: &mut Rng) -> Result<Tensor, String> {
    Tensor::rand_uniform(shape, -1.0, 1.0, rng, &cpu_device()).map_err(err)
}

/// max |ours − ref| / max |ref| — a sanity check that both computed the same product.
fn max_rel_diff(ours: &[f32], theirs: &[f32]) -> f64 {
    let scale = theirs.iter().fold(0f64, |m, &x| m.max(x.abs() as f64));
    let diff = ours
        .iter()
        .zip(theirs)
        .fold(0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
    if ours.len() != theirs.len() {
        return f64::INFINITY;
    }
    if scale > 0.0 {
        diff / scale
    } else {
        diff
    }
}

fn require_reference() -> Result<(), String> {
    if reference::available() {
        Ok(())
    } else {
        Err(reference::NOT_COMPILED.into())
    }
}

// ---- gemm ------------------------------------------------------------------------------------

struct GemmCase {
    m: usize,
    k: usize,
    n: usize,
    /// rhs given as W [N, K] and used transposed (a linear layer), else B [K, N].
    transposed: bool,
    note: &'static str,
}

fn gemm_cases(a: &BenchArgs) -> Vec<GemmCase> {
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

fn gemm(a: &BenchArgs, threads: usize, out: &mut Output) -> Result<(), String> {
    require_reference()?;
    eprintln!(
        "bench gemm: f32, {threads} threads; reference: {}",
        reference::describe(threads)
    );
    let mut rng = Rng::new(a.seed);
    for c in gemm_cases(a) {
        let shape = format!("{}x{}x{}", c.m, c.k, c.n);
        let rhs_layout = if c.transposed { "NxK^T" } else { "KxN" };
        eprintln!("  {shape} ({}, rhs {rhs_layout}) …", c.note);
        let x = uniform(&[c.m, c.k], &mut rng)?;
        let (w, rhs) = if c.transposed {
            let w = uniform(&[c.n, c.k], &mut rng)?;
            let t = w.t().map_err(err)?;
            (w, t)
        } else {
            let b = uniform(&[c.k, c.n], &mut rng)?;
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
        report_pair(out, "gemm", &shape, flops, &s, diff, label, threads);
    }
    Ok(())
}

/// One f32 "ours vs reference" throughput row (gemm, conv); `label` is one extra
/// (key, value) column.
#[allow(clippy::too_many_arguments)]
fn report_pair(
    out: &mut Output,
    bench: &str,
    shape: &str,
    flops: u64,
    s: &Samples,
    diff: f64,
    label: (&str, &str),
    threads: usize,
) {
    let (ours_s, ref_s) = (measure::median(&s.a), measure::median(&s.b));
    let (og, rg) = (gflops(flops, ours_s), gflops(flops, ref_s));
    let ratio = og / rg;
    let mut obj = json!({
        "bench": bench, "shape": shape, "dtype": "f32",
        "ours_gflops": r(og), "ref_gflops": r(rg), "ratio": r(ratio),
        "ours_ms": r(ours_s * 1e3), "ref_ms": r(ref_s * 1e3),
        "reps": s.reps(), "threads": threads, "max_rel_diff": r(diff),
    });
    obj[label.0] = json!(label.1);
    out.row(
        obj,
        &[
            ("shape", shape.to_string()),
            (label.0, label.1.to_string()),
            ("ours ms", ms(ours_s)),
            ("ours GFLOP/s", f(og, 1)),
            ("ref ms", ms(ref_s)),
            ("ref GFLOP/s", f(rg, 1)),
            ("ours/ref", f(ratio, 3)),
            ("reps", s.reps().to_string()),
            ("max rel diff", format!("{diff:.1e}")),
        ],
    );
}

// ---- gemv ------------------------------------------------------------------------------------

fn gemv(a: &BenchArgs, threads: usize, out: &mut Output) -> Result<(), String> {
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

// ---- attention -------------------------------------------------------------------------------

struct AttnCase {
    b: usize,
    t: usize,
    hq: usize,
    hkv: usize,
    d: usize,
    causal: bool,
}

fn attention(a: &BenchArgs, out: &mut Output) -> Result<(), String> {
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

// ---- conv ------------------------------------------------------------------------------------

fn conv(a: &BenchArgs, threads: usize, out: &mut Output) -> Result<(), String> {
    require_reference()?;
    let g = |c, l, o, stride| Conv1d {
        c,
        l,
        o,
        k: 3,
        stride,
        pad: 1,
    };
    let cases = if a.quick {
        vec![("quick1", g(8, 64, 16, 1)), ("quick2", g(16, 64, 16, 2))]
    } else {
        vec![
            ("whisper_conv1", g(80, 3000, 1024, 1)),
            ("whisper_conv2", g(1024, 3000, 1024, 2)),
        ]
    };
    eprintln!(
        "bench conv: f32 conv1d (batch 1, kernel 3, padding 1), {threads} threads; reference: \
         im2col + {}",
        reference::describe(threads)
    );
    let mut rng = Rng::new(a.seed);
    for (name, c) in cases {
        let shape = format!("c{}_l{}_o{}_k{}_s{}", c.c, c.l, c.o, c.k, c.stride);
        eprintln!("  {name} {shape} …");
        let x = uniform(&[1, c.c, c.l], &mut rng)?;
        let w = uniform(&[c.o, c.c, c.k], &mut rng)?;
        let (xv, wv) = (
            x.to_vec::<f32>().map_err(err)?,
            w.to_vec::<f32>().map_err(err)?,
        );
        let ol = c.out_len();
        let mut cols = vec![0f32; c.c * c.k * ol];
        let mut dst = vec![0f32; c.o * ol];
        let mut ours_out = None;
        let s = measure::alternate(
            a.reps,
            &mut || {
                ours_out = Some(no_grad(|| x.conv1d(&w, None, c.stride, c.pad, 1)).map_err(err)?);
                Ok(())
            },
            &mut || {
                reference::im2col_1d(&xv, c, &mut cols);
                let wm = Mat::row_major(&wv, c.o, c.c * c.k);
                reference::gemm(wm, Mat::row_major(&cols, c.c * c.k, ol), &mut dst, threads)
            },
        )?;
        let ours_vals = match &ours_out {
            Some(t) => t.to_vec::<f32>().map_err(err)?,
            None => Vec::new(),
        };
        let diff = max_rel_diff(&ours_vals, &dst);
        let (o, l, ci, k) = (c.o as u64, ol as u64, c.c as u64, c.k as u64);
        let flops = cost::conv2d(1, o, 1, l, ci, 1, k);
        report_pair(
            out,
            "conv",
            &shape,
            flops,
            &s,
            diff,
            ("name", name),
            threads,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_and_refuse_garbage() {
        assert_eq!(parse_mkn("1x4096x12800"), Ok([1, 4096, 12800]));
        assert_eq!(parse_mkn("2X3x4"), Ok([2, 3, 4]));
        for bad in [
            "",
            "1x2",
            "1x2x3x4",
            "0x1x1",
            "axbxc",
            "1x-2x3",
            "99999999x99999999x1",
        ] {
            assert!(parse_mkn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rounding_keeps_four_significant_digits() {
        assert_eq!(r(123.456_78), 123.5);
        assert!((r(0.000_123_456) - 0.000_123_5).abs() < 1e-15);
        assert_eq!(r(0.0), 0.0);
        assert!(r(f64::NAN).is_nan());
        assert_eq!(max_rel_diff(&[1.0, 2.0], &[1.0, 2.5]), 0.2);
        assert_eq!(ms(0.000_004_2), "0.00420");
        assert_eq!(ms(0.143_62), "143.6");
        assert_eq!(ms(0.0), "0.0");
        assert_eq!(max_rel_diff(&[1.0], &[1.0, 2.0]), f64::INFINITY);
    }
}
