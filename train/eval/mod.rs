//! Evaluation (`osum eval`): run the OSUM model on every audio item of a manifest and score the
//! answers — IFR, per-task accuracy, WER/CER, latency ([`metrics`]) on normalized text ([`text`]) —
//! optionally a second time with the fixed tag instruction for the fixed-vs-natural-language table.

pub mod metrics;
pub mod text;

use crate::model::llm::GenerationConfig;
use crate::model::osum::{OsumModel, MAX_SECONDS};
use crate::train::data::{fixed_instruction, Manifest};
use metrics::{score, Totals};
use serde_json::{json, Value};
use std::time::Instant;

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Score at most this many audio items (the first ones, in file order).
    pub limit: Option<usize>,
    /// Also ask every item with [`fixed_instruction`] of its tasks.
    pub compare_fixed: bool,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Totals with the items' own (natural-language) instructions.
    pub natural: Totals,
    /// Totals with the fixed tag instructions (`compare_fixed`).
    pub fixed: Option<Totals>,
    /// One JSON object per scored item (for `--predictions`).
    pub predictions: Vec<Value>,
    /// Text-only items passed over (they have no audio to ask about).
    pub skipped_text_only: usize,
}

impl Report {
    /// The summary object `osum eval --json` prints: [`Totals::to_json`] of the natural run plus
    /// `skipped_text_only`, and `fixed` (the same fields) with `--compare-fixed`.
    pub fn to_json(&self) -> Value {
        let mut v = self.natural.to_json();
        v["skipped_text_only"] = json!(self.skipped_text_only);
        if let Some(f) = &self.fixed {
            v["fixed"] = f.to_json();
        }
        v
    }
}

/// Ask `model` about every audio item of `manifest`, calling `progress(done, total, report)` after
/// each. An item whose audio cannot be read or answered is an error naming it (never skipped).
pub fn evaluate(
    model: &OsumModel,
    manifest: &Manifest,
    cfg: &GenerationConfig,
    opts: &Options,
    progress: &mut dyn FnMut(usize, usize, &Report),
) -> Result<Report, String> {
    let mut report = Report {
        fixed: opts.compare_fixed.then(Totals::default),
        ..Report::default()
    };
    let audio_items: Vec<_> = manifest
        .items
        .iter()
        .filter(|i| i.audio.is_some())
        .collect();
    report.skipped_text_only = manifest.items.len() - audio_items.len();
    let total = opts
        .limit
        .map_or(audio_items.len(), |l| l.min(audio_items.len()));
    for (k, item) in audio_items.into_iter().take(total).enumerate() {
        let name = item.id.clone().unwrap_or_else(|| format!("item {}", k + 1));
        let at = |e: String| format!("{name}: {e}");
        let tasks = item.task_list().map_err(at)?;
        let path = manifest
            .audio_path(item)
            .ok_or_else(|| at("no audio".into()))?;
        let samples = crate::model::audio::load_clip(&path, None, MAX_SECONDS)
            .map_err(|e| at(e.to_string()))?;
        let ask = |instruction: &str| -> Result<(Value, metrics::Score), String> {
            let t0 = Instant::now();
            let ans = model.ask(&samples, instruction, cfg, &mut |_| {})?;
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            let s = score(item, &tasks, &ans.parsed, ms);
            let mut v = s.to_json();
            v["instruction"] = json!(instruction);
            v["raw"] = json!(ans.text);
            v["answer"] = ans.parsed.to_json();
            Ok((v, s))
        };
        let (mut line, s) = ask(&item.instruction).map_err(at)?;
        report.natural.add(&s);
        if let Some(fixed) = report.fixed.as_mut() {
            let (fv, fs) = ask(&fixed_instruction(&tasks)).map_err(at)?;
            fixed.add(&fs);
            line["fixed"] = fv;
        }
        line["id"] = json!(item.id);
        line["audio"] = json!(item.audio);
        line["tasks"] = json!(item.tasks);
        report.predictions.push(line);
        progress(k + 1, total, &report);
    }
    Ok(report)
}
