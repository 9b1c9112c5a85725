//! `osum bench --device ascend-sim attention|conv|lora`: our AscendC kernels on the simulator,
//! one launch per shape, reporting the simulator's counters and the roofline's **predicted**
//! Ascend 910B3 time, arithmetic intensity and bounding unit ([`osum::kernels::roofline`]).
//! Nothing here is measured on an NPU: predicted figures carry the label
//! "predicted (simulated counters, not hardware)", and `sim_wall_ms` is the CPU time the
//! simulator took (a simulation cost, not a kernel speed).

use super::{f, r, uniform_on, BenchArgs, Kind, Output};
use osum::engine::{AttentionParams, Conv2dParams, Device, Rng, Tensor};
use osum::kernels::{self, roofline};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

/// A conv case: x shape, w shape, stride, padding.
type ConvCase = ([usize; 4], [usize; 4], (usize, usize), (usize, usize));

/// One benchmark case: a label and the op to run once on the device.
type Case<'a> = (String, Box<dyn Fn() -> Result<Tensor, String> + 'a>);

fn err(e: osum::engine::Error) -> String {
    e.to_string()
}

/// Run the cases of `kind` on `dev` (ascend-sim) and print one row per case.
pub fn run(
    kind: Kind,
    a: &BenchArgs,
    dev: &Arc<dyn Device>,
    out: &mut Output,
) -> Result<(), String> {
    let mut rng = Rng::new(a.seed);
    let mut t = |shape: &[usize]| uniform_on(shape, &mut rng, dev);
    let mut cases: Vec<Case> = Vec::new();
    match kind {
        Kind::Attention => {
            // (batch, q heads, kv heads, Tq, Tk, head dim, causal): an encoder block
            // (Whisper-tiny width), a GQA prefill and a GQA decode step over a cache.
            let shapes: &[(usize, usize, usize, usize, usize, usize, bool)] = if a.quick {
                &[(1, 2, 1, 16, 16, 32, true)]
            } else {
                &[
                    (1, 6, 6, 256, 256, 64, false),
                    (1, 8, 2, 128, 128, 64, true),
                    (1, 8, 2, 1, 1024, 64, true),
                ]
            };
            for &(b, hq, hkv, tq, tk, d, causal) in shapes {
                let (q, k, v) = (
                    t(&[b, hq, tq, d])?,
                    t(&[b, hkv, tk, d])?,
                    t(&[b, hkv, tk, d])?,
                );
                let p = AttentionParams {
                    scale: 1.0 / (d as f32).sqrt(),
                    causal,
                };
                let label = format!(
                    "b{b} h{hq}/{hkv} tq{tq} tk{tk} d{d}{}",
                    if causal { " causal" } else { "" }
                );
                cases.push((
                    label,
                    Box::new(move || q.attention(&k, &v, None, &p).map_err(err)),
                ));
            }
        }
        Kind::Conv => {
            // Conv1d as height 1: Whisper-tiny's front end (80 mel → 384, k3, stride 1 then 2)
            // on 10 s of frames; the adapter's 3×3 stride-2 downsampling conv.
            let shapes: &[ConvCase] = if a.quick {
                &[([1, 4, 1, 64], [8, 4, 1, 3], (1, 2), (0, 1))]
            } else {
                &[
                    ([1, 80, 1, 1000], [384, 80, 1, 3], (1, 1), (0, 1)),
                    ([1, 384, 1, 1000], [384, 384, 1, 3], (1, 2), (0, 1)),
                    ([1, 1, 500, 384], [64, 1, 3, 3], (2, 2), (0, 0)),
                ]
            };
            for &(xs, ws, stride, padding) in shapes {
                let (x, w, bias) = (t(&xs)?, t(&ws)?, t(&[ws[0]])?);
                let p = Conv2dParams {
                    stride,
                    padding,
                    dilation: (1, 1),
                };
                let label = format!("x{xs:?} w{ws:?} s{stride:?} p{padding:?}");
                cases.push((
                    label,
                    Box::new(move || x.conv2d(&w, Some(&bias), &p).map_err(err)),
                ));
            }
        }
        Kind::Lora => {
            // (rows, in, out, rank): decode and a prefill chunk of a SmolLM2-135M projection
            // (576) and a 7B-shaped one (4096) with the presets' rank 64.
            let shapes: &[(usize, usize, usize, usize)] = if a.quick {
                &[(4, 64, 48, 8)]
            } else {
                &[
                    (1, 576, 576, 8),
                    (128, 576, 576, 8),
                    (1, 4096, 4096, 64),
                    (64, 4096, 4096, 64),
                ]
            };
            for &(m, k, n, rank) in shapes {
                let (x, w, am, bm) = (t(&[m, k])?, t(&[n, k])?, t(&[rank, k])?, t(&[n, rank])?);
                let label = format!("{m}x{k} -> {n} rank {rank}");
                cases.push((
                    label,
                    Box::new(move || x.lora_linear(&w, None, &am, &bm, 0.5).map_err(err)),
                ));
            }
        }
        _ => return Err("bench on ascend-sim covers attention, conv and lora".into()),
    }
    let soc = roofline::ASCEND_910B3;
    for (label, op) in cases {
        let start = Instant::now();
        let y = op()?;
        // Counters of the op's kernel launch (the last launch on this thread).
        let stats = kernels::last_launch_stats();
        let wall = start.elapsed().as_secs_f64();
        drop(y);
        let p = roofline::predict(&soc, &stats);
        let bench = match kind {
            Kind::Attention => "attention",
            Kind::Conv => "conv",
            _ => "lora",
        };
        let obj = json!({
            "bench": bench, "shape": label, "device": "ascend-sim", "soc": soc.name,
            "label": roofline::PREDICTED_LABEL,
            "predicted_us": r(p.predicted_us), "bound": p.bound.name(),
            "cube_us": r(p.cube_us), "vector_us": r(p.vector_us), "hbm_us": r(p.hbm_us),
            "l2_us": r(p.l2_us), "arithmetic_intensity": r(p.arithmetic_intensity),
            "flops": p.flops, "gm_bytes": p.gm_bytes, "blocks": stats.blocks,
            "cube_macs": stats.cube_macs, "vector_repeats": stats.vector_repeats,
            "l1_to_l0_bytes": stats.l1_to_l0_bytes, "peak_ub_bytes": stats.peak_ub_bytes,
            "peak_l1_bytes": stats.peak_l1_bytes, "sim_wall_ms": r(wall * 1e3),
        });
        out.row(
            obj,
            &[
                ("shape", label.clone()),
                ("predicted µs*", f(p.predicted_us, 2)),
                ("bound", p.bound.name().to_string()),
                ("FLOP/byte", f(p.arithmetic_intensity, 1)),
                ("cube µs", f(p.cube_us, 2)),
                ("vector µs", f(p.vector_us, 2)),
                ("HBM µs", f(p.hbm_us, 2)),
                ("blocks", stats.blocks.to_string()),
                ("sim ms", f(wall * 1e3, 1)),
            ],
        );
    }
    if !a.json {
        eprintln!(
            "* {} on {}; `sim ms` is the CPU simulator's own run time",
            roofline::PREDICTED_LABEL,
            soc.name
        );
    }
    Ok(())
}
