//! `osum bench gemm|gemv|attention|conv`: our CPU kernels, through the public `Tensor` API,
//! against a reference in the same process — ours and the reference alternate after a warm-up
//! and medians are reported (see `measure.rs`). Inputs are seeded random data.
//!
//! - gemm: f32 GEMM vs the `gemm` crate. FLOPs `2·M·K·N`.
//! - gemv: decode-time `x·Wᵀ` with a bf16 W; GB/s = weight bytes / time, against the machine's
//!   read bandwidth measured here (see `bandwidth.rs`), alternating with it.
//! - attention: our fused attention vs our own two batched GEMMs `Q·Kᵀ` and `P·V` alone.
//! - conv: our conv1d vs im2col + the `gemm` crate.

mod ascend;
mod attention;
mod bandwidth;
mod conv;
mod decode;
mod encoder;
mod gemm;
mod gemv;
mod measure;
mod reference;

use clap::error::ErrorKind;
use clap::{Args, ValueEnum};
use measure::Samples;
use osum::engine::{cpu_device, Rng, Tensor};
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
    /// attention (fused vs its two GEMMs), conv (vs im2col + the gemm crate), encoder (Whisper
    /// on 30 s, vs CTranslate2 when importable).
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
    Encoder,
    /// LLM decode tokens/s vs memory bandwidth: SmolLM2 and a 7B-shaped bf16 model.
    Decode,
    /// The fused LoRA linear kernel (`--device ascend-sim` only: predicted 910B time).
    Lora,
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

/// Largest matrix `--shape` may ask for (1 GiB of f32): beyond it the allocation, not the
/// kernel, would decide the outcome.
const MAX_MATRIX_ELEMS: usize = 1 << 28;

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
                || elems.iter().any(|&e| e > MAX_MATRIX_ELEMS)
            {
                return Err(format!(
                    "shape {s} is too large (at most 2²⁸ elements per matrix)"
                ));
            }
            Ok([m, k, n])
        }
        _ => Err(format!("expected MxKxN with positive integers, got {s:?}")),
    }
}

/// Run the chosen benchmark; the error is the message for stderr (exit code 1).
/// `device` opens the `--device` (only the model-level benchmarks use it; the kernel ones compare
/// specific kernels).
pub fn run(
    a: BenchArgs,
    device: impl Fn() -> Result<std::sync::Arc<dyn osum::engine::Device>, String>,
) -> Result<(), String> {
    let threads = rayon::current_num_threads();
    let mut out = Output::new(a.json);
    match a.kind {
        Kind::Gemm => gemm::run(&a, threads, &device()?, &mut out),
        Kind::Gemv => gemv::run(&a, threads, &mut out),
        // On ascend-sim these report the simulator's counters and the predicted 910B time.
        Kind::Attention | Kind::Conv | Kind::Lora => {
            let dev = device()?;
            if dev.name() == osum::engine::ascend::SIM_NAME {
                return ascend::run(a.kind, &a, &dev, &mut out);
            }
            match a.kind {
                Kind::Attention => attention::run(&a, &mut out),
                Kind::Conv => conv::run(&a, threads, &mut out),
                _ => Err(
                    "`bench lora` runs on `--device ascend-sim` (the fused Ascend kernel)".into(),
                ),
            }
        }
        Kind::Encoder => encoder::run(&a, &device()?, &mut out),
        Kind::Decode => decode::run(&a, &device()?, &mut out),
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
    uniform_on(shape, rng, &cpu_device())
}

/// [`uniform`] on a given device.
fn uniform_on(
    shape: &[usize],
    rng: &mut Rng,
    dev: &std::sync::Arc<dyn osum::engine::Device>,
) -> Result<Tensor, String> {
    Tensor::rand_uniform(shape, -1.0, 1.0, rng, dev).map_err(err)
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
    device: &str,
) {
    let (ours_s, ref_s) = (measure::median(&s.a), measure::median(&s.b));
    let (og, rg) = (gflops(flops, ours_s), gflops(flops, ref_s));
    let ratio = og / rg;
    let mut obj = json!({
        "bench": bench, "shape": shape, "dtype": "f32",
        "ours_gflops": r(og), "ref_gflops": r(rg), "ratio": r(ratio),
        "ours_ms": r(ours_s * 1e3), "ref_ms": r(ref_s * 1e3),
        "reps": s.reps(), "threads": threads, "max_rel_diff": r(diff), "device": device,
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
