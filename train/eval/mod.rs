//! Evaluation (`osum eval`): run the OSUM model on every item of a manifest and score the answers
//! — IFR, per-task accuracy, WER/CER, latency ([`metrics`]) on normalized text ([`text`]) —
//! optionally a second time with the fixed tag instruction for the fixed-vs-natural-language table.
//! Text-only items (stage II intents, stage I text QA) are asked without a speech slot, as
//! training prompts them, and totalled apart, so the audio numbers mean the same with or without
//! them.

pub mod metrics;
pub mod text;

use crate::model::llm::GenerationConfig;
use crate::model::osum::{OsumModel, MAX_SECONDS};
use crate::train::data::{fixed_instruction, Manifest};
use metrics::{score, Totals};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Instant;

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Score at most this many items (the first ones, in file order).
    pub limit: Option<usize>,
    /// Also ask every audio item with [`fixed_instruction`] of its tasks.
    pub compare_fixed: bool,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Totals of the audio items with their own (natural-language) instructions.
    pub natural: Totals,
    /// Totals of the audio items with the fixed tag instructions (`compare_fixed`).
    pub fixed: Option<Totals>,
    /// Totals of the text-only items: IFR, and `chat` accuracy over text QA items.
    pub text: Totals,
    /// [`Report::natural`] split by the items' `speaker` field (items without one are left out):
    /// on a benchmark that holds out whole voices, the totals hide which voice a model misses.
    pub by_speaker: BTreeMap<String, Totals>,
    /// One JSON object per scored item (for `--predictions`).
    pub predictions: Vec<Value>,
}

impl Report {
    /// The summary object `osum eval --json` prints: [`Totals::to_json`] of the audio items with
    /// their own instructions, plus `text` (the same fields) when text-only items were scored and
    /// `fixed` with `--compare-fixed`, and `by_speaker` (the same fields but latency, per
    /// speaker) when items name their speaker.
    pub fn to_json(&self) -> Value {
        let mut v = self.natural.to_json();
        if self.text.n > 0 {
            v["text"] = self.text.to_json();
        }
        if !self.by_speaker.is_empty() {
            let per: serde_json::Map<String, Value> = self
                .by_speaker
                .iter()
                .map(|(speaker, t)| {
                    let mut s = t.to_json();
                    if let Some(o) = s.as_object_mut() {
                        o.remove("latency_ms");
                    }
                    (speaker.clone(), s)
                })
                .collect();
            v["by_speaker"] = Value::Object(per);
        }
        if let Some(f) = &self.fixed {
            v["fixed"] = f.to_json();
        }
        v
    }
}

/// Ask `model` about every item of `manifest`, calling `progress(done, total, report)` after
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
    let total = opts
        .limit
        .map_or(manifest.items.len(), |l| l.min(manifest.items.len()));
    for (k, item) in manifest.items.iter().take(total).enumerate() {
        let name = item.id.clone().unwrap_or_else(|| format!("item {}", k + 1));
        let at = |e: String| format!("{name}: {e}");
        let tasks = item.task_list().map_err(at)?;
        let samples = match manifest.audio_path(item) {
            Some(path) => Some(
                crate::model::audio::load_clip(&path, None, MAX_SECONDS)
                    .map_err(|e| at(e.to_string()))?,
            ),
            None => None,
        };
        let ask = |instruction: &str| -> Result<(Value, metrics::Score), String> {
            let t0 = Instant::now();
            let ans = match &samples {
                Some(samples) => model.ask(samples, instruction, cfg, &mut |_| {})?,
                None => model.ask_text(instruction, cfg, &mut |_| {})?,
            };
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            let s = score(item, &tasks, &ans.parsed, ms);
            let mut v = s.to_json();
            v["instruction"] = json!(instruction);
            v["raw"] = json!(ans.text);
            v["answer"] = ans.parsed.to_json();
            Ok((v, s))
        };
        let (mut line, s) = ask(&item.instruction).map_err(at)?;
        if samples.is_none() {
            report.text.add(&s);
        } else {
            report.natural.add(&s);
            if let Some(speaker) = &item.speaker {
                report
                    .by_speaker
                    .entry(speaker.clone())
                    .or_default()
                    .add(&s);
            }
            if let Some(fixed) = report.fixed.as_mut() {
                let (fv, fs) = ask(&fixed_instruction(&tasks)).map_err(at)?;
                fixed.add(&fs);
                line["fixed"] = fv;
            }
        }
        line["id"] = json!(item.id);
        line["audio"] = json!(item.audio);
        line["tasks"] = json!(item.tasks);
        if let Some(speaker) = &item.speaker {
            line["speaker"] = json!(speaker);
        }
        report.predictions.push(line);
        progress(k + 1, total, &report);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(n: usize, gender: (usize, usize)) -> Totals {
        Totals {
            n,
            followed: n,
            labels: BTreeMap::from([("gender", gender)]),
            latencies_ms: vec![5.0; n],
            ..Totals::default()
        }
    }

    #[test]
    fn the_summary_splits_by_speaker_only_when_items_name_one() {
        let mut r = Report {
            natural: totals(3, (2, 3)),
            ..Report::default()
        };
        assert!(r.to_json().get("by_speaker").is_none());
        r.by_speaker.insert("flite:awb".into(), totals(2, (1, 2)));
        r.by_speaker.insert("espeak:f4".into(), totals(1, (1, 1)));
        let v = r.to_json();
        assert_eq!(v["by_speaker"]["flite:awb"]["n"], 2);
        assert_eq!(v["by_speaker"]["flite:awb"]["acc"]["gender"], 0.5);
        assert_eq!(v["by_speaker"]["espeak:f4"]["acc_n"]["gender"], 1);
        assert!(v["by_speaker"]["espeak:f4"].get("latency_ms").is_none());
        assert_eq!(v["n"], 3);
    }
}
