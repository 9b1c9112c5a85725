//! What a training run leaves behind and shows while it runs: one JSON line per optimizer step
//! ([`RunLog`]), a loss-curve picture ([`loss_svg`], hand-written SVG) and a one-line progress
//! display with loss, learning rate and tokens per second ([`progress_line`]).

use crate::train::atomic::write_atomic;
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One optimizer step, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 1-based step.
    pub step: u64,
    /// The training objective, averaged over the step's micro-batches: the mean target-token
    /// cross-entropy (times `llm_weight` when that is not 1), plus `ctc_weight ×` the CTC term
    /// and `attr_weight ×` the attribute term when the run uses them.
    pub loss: f32,
    /// The mean per-label CTC loss of the step (runs with `--ctc-weight` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctc_loss: Option<f32>,
    /// The mean attribute-alignment cross-entropy of the step (runs with `--attr-weight` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attr_loss: Option<f32>,
    /// Learning rate used.
    pub lr: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Items in the step.
    pub items: usize,
    /// Input positions run through the LLM (no padding).
    pub tokens: usize,
    /// Target tokens scored.
    pub target_tokens: usize,
    /// Wall time of the step in seconds (encoder features included when not cached).
    pub secs: f64,
    /// Epoch (1-based) the step's last item came from.
    pub epoch: u64,
}

/// The JSONL log of a run: appended after every step; on resume, cut back to the checkpoint's
/// step first, so the file always describes one trajectory.
pub struct RunLog {
    path: PathBuf,
}

impl RunLog {
    /// Open `path`, keeping only the records with `step ≤ keep_until` (a fresh run passes 0).
    /// Returns the log and the records kept.
    pub fn open(path: &Path, keep_until: u64) -> Result<(RunLog, Vec<StepRecord>), String> {
        let mut kept = Vec::new();
        if keep_until > 0 {
            if let Ok(text) = std::fs::read_to_string(path) {
                for line in text.lines() {
                    // A line torn by a kill mid-write is dropped with everything after it.
                    match serde_json::from_str::<StepRecord>(line) {
                        Ok(r) if r.step <= keep_until => kept.push(r),
                        _ => break,
                    }
                }
            }
        }
        let mut text = String::new();
        for r in &kept {
            text.push_str(&serde_json::to_string(r).map_err(|e| e.to_string())?);
            text.push('\n');
        }
        write_atomic(path, text.as_bytes())?;
        Ok((
            RunLog {
                path: path.to_path_buf(),
            },
            kept,
        ))
    }

    /// Append one record.
    pub fn append(&mut self, r: &StepRecord) -> Result<(), String> {
        let mut f = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        let line = serde_json::to_string(r).map_err(|e| e.to_string())?;
        writeln!(f, "{line}").map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// An SVG line chart of loss against step (raw loss in light blue, a moving average in dark
/// blue), with labelled axes.
pub fn loss_svg(records: &[StepRecord], title: &str) -> String {
    let (w, h) = (720.0f64, 400.0f64);
    let (left, right, top, bottom) = (64.0, 16.0, 36.0, 44.0);
    let pts: Vec<(f64, f64)> = records
        .iter()
        .filter(|r| r.loss.is_finite())
        .map(|r| (r.step as f64, r.loss as f64))
        .collect();
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n",
        w / 2.0,
        escape(title)
    );
    if pts.is_empty() {
        s.push_str(
            "<text x=\"360\" y=\"200\" text-anchor=\"middle\">no steps yet</text>\n</svg>\n",
        );
        return s;
    }
    let x0 = pts[0].0.min(pts[pts.len() - 1].0);
    let x1 = pts.iter().map(|p| p.0).fold(x0 + 1.0, f64::max);
    let y1 = pts.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    let y0 = pts.iter().map(|p| p.1).fold(f64::MAX, f64::min).min(0.0);
    let y1 = if y1 > y0 { y1 } else { y0 + 1.0 };
    let px = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let py = |y: f64| top + (1.0 - (y - y0) / (y1 - y0)) * (h - top - bottom);
    // Axes, ticks and labels.
    s.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>\n",
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    ));
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        // Steps are whole numbers: each x tick sits at a whole step.
        let (xv, yv) = ((x0 + f * (x1 - x0)).round(), y0 + f * (y1 - y0));
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{:.0}</text>\n\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.3}</text>\n\
             <line x1=\"{left}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\n",
            px(xv),
            h - bottom + 16.0,
            xv,
            left - 6.0,
            py(yv) + 4.0,
            yv,
            py(yv),
            w - right,
            py(yv)
        ));
    }
    s.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>\n\
         <text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">loss</text>\n",
        (left + w - right) / 2.0,
        h - 8.0,
        h / 2.0,
        h / 2.0
    ));
    let polyline = |p: &[(f64, f64)], color: &str, width: f64| {
        let coords: Vec<String> = p
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"{width}\" points=\"{}\"/>\n",
            coords.join(" ")
        )
    };
    s.push_str(&polyline(&pts, "#9ecae1", 1.0));
    let k = (pts.len() / 20).max(1);
    let smooth: Vec<(f64, f64)> = (0..pts.len())
        .map(|i| {
            let lo = i.saturating_sub(k - 1);
            let win = &pts[lo..=i];
            (
                pts[i].0,
                win.iter().map(|p| p.1).sum::<f64>() / win.len() as f64,
            )
        })
        .collect();
    s.push_str(&polyline(&smooth, "#08519c", 2.0));
    s.push_str("</svg>\n");
    s
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The progress display's line: `step 12/400 [####------] loss 2.314 lr 1.2e-4 850 tok/s
/// 1.9 items/s eta 3m20s`. Rates are over the whole run so far (`secs`, `tokens`, `items`).
pub fn progress_line(
    r: &StepRecord,
    total_steps: u64,
    secs: f64,
    tokens: usize,
    items: usize,
    steps_done_in_run: u64,
) -> String {
    let width = 20usize;
    let frac = (r.step as f64 / total_steps.max(1) as f64).min(1.0);
    let filled = (frac * width as f64).round() as usize;
    let bar: String = "#".repeat(filled) + &"-".repeat(width - filled);
    let per_step = secs / steps_done_in_run.max(1) as f64;
    let eta = per_step * total_steps.saturating_sub(r.step) as f64;
    let ctc = r
        .ctc_loss
        .map_or(String::new(), |c| format!(" (ctc {c:.4})"));
    let attr = r
        .attr_loss
        .map_or(String::new(), |c| format!(" (attr {c:.4})"));
    format!(
        "step {}/{} [{bar}] loss {:.4}{ctc}{attr} lr {:.2e} {:.0} tok/s {:.2} items/s eta {}",
        r.step,
        total_steps,
        r.loss,
        r.lr,
        tokens as f64 / secs.max(1e-9),
        items as f64 / secs.max(1e-9),
        human_secs(eta)
    )
}

/// `3m20s`, `1h05m`, `42s`.
pub fn human_secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(step: u64, loss: f32) -> StepRecord {
        StepRecord {
            step,
            loss,
            ctc_loss: None,
            attr_loss: None,
            lr: 1e-3,
            grad_norm: 1.0,
            items: 2,
            tokens: 100,
            target_tokens: 10,
            secs: 0.5,
            epoch: 1,
        }
    }

    #[test]
    fn the_log_is_cut_back_to_the_resumed_step() {
        let dir = crate::scratch_dir("runlog");
        let p = dir.path().join("log.jsonl");
        let (mut log, kept) = RunLog::open(&p, 0).unwrap();
        assert!(kept.is_empty());
        for s in 1..=5 {
            log.append(&rec(s, 5.0 - s as f32)).unwrap();
        }
        let (_, kept) = RunLog::open(&p, 3).unwrap();
        assert_eq!(kept.iter().map(|r| r.step).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(std::fs::read_to_string(&p).unwrap().lines().count(), 3);
    }

    #[test]
    fn the_svg_has_both_curves_and_axis_labels() {
        let recs: Vec<_> = (1..=50).map(|s| rec(s, 3.0 / s as f32)).collect();
        let svg = loss_svg(&recs, "stage 1 <osum-tiny>");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(">step</text>") && svg.contains(">loss</text>"));
        assert!(svg.contains("stage 1 &lt;osum-tiny&gt;"));
    }

    #[test]
    fn progress_shows_loss_lr_and_rates() {
        let l = progress_line(&rec(10, 1.25), 40, 5.0, 1000, 20, 10);
        assert!(
            l.starts_with("step 10/40 [#####---------------] loss 1.2500"),
            "{l}"
        );
        assert!(
            l.contains("200 tok/s") && l.contains("4.00 items/s") && l.contains("eta 15s"),
            "{l}"
        );
    }
}
