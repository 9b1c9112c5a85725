//! `osum bench conv`: Whisper-medium's two convolutions, our `conv1d` vs im2col + the `gemm`
//! crate.

use super::measure;
use super::reference::{self, Conv1d, Mat};
use super::{err, max_rel_diff, report_pair, require_reference, uniform, BenchArgs, Output};
use osum::engine::profiler::cost;
use osum::engine::{no_grad, Rng};

pub fn run(a: &BenchArgs, threads: usize, out: &mut Output) -> Result<(), String> {
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
                // Free the previous result first, as a loop reusing its output would.
                drop(ours_out.take());
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
            "cpu",
        );
    }
    Ok(())
}
