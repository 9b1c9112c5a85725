//! The three training stages of OSUM-Pangu (REFERENCE §7, DESIGN "Trainer") and the loop that
//! runs one of them:
//!
//! - **Stage I**, tag-based speech alignment: items with audio, prompted with their fixed task
//!   tags ([`fixed_instruction`]), with the manifest's text QA items ([`Item::is_text_qa`]:
//!   written question → answer) mixed in; adapter + LoRA train, encoder and LLM stay frozen.
//! - **Stage II**, text-only intent parsing: items without audio (text QA aside),
//!   natural-language instruction → task tags; only LoRA trains.
//! - **Stage III**, joint: items with audio and their natural-language instruction → tags +
//!   answer, so the loss covers both the intent and the speech answer; adapter + LoRA train.
//!
//! [`TextQaMix`] can mix the text QA items into stages II and III as well.
//!
//! Each stage after the first starts from the previous one's checkpoint (`--from`). The target
//! is always [`Item::target`] followed by the end-of-answer token; the loss is the mean
//! cross-entropy over those tokens ([`crate::train::batch`]).
//!
//! Determinism: one seed fixes the initialisation, the data order (a generator whose state is
//! checkpointed) and the LoRA dropout masks (reseeded from the seed, step and micro-batch), so
//! a resumed run repeats the uninterrupted run's trajectory.

use crate::engine::{Device, Gradients, Rng, Tensor};
use crate::model::adapter::Adapter;
use crate::model::audio;
use crate::model::llm::{Llm, Lora};
use crate::model::osum::{lora_targets, OsumModel, MAX_SECONDS};
use crate::model::preset::Preset;
use crate::train::attributes::AttributeAlignment;
use crate::train::batch::{batch_loss, Example};
use crate::train::checkpoint::{self, settings_mismatch, TrainState};
use crate::train::ctc::CtcAlignment;
use crate::train::data::{fixed_instruction, Item, Manifest};
use crate::train::features::FeatureCache;
use crate::train::log::{loss_svg, RunLog, StepRecord};
use crate::train::optim::{
    clip_factor, AdamW, AdamWConfig, Schedule, WarmupCosine, WarmupInverseSqrt,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The JSONL log of a run, in its output folder.
pub const LOG_FILE: &str = "train-log.jsonl";
/// The loss-curve picture of a run, in its output folder.
pub const CURVE_FILE: &str = "loss.svg";

/// One of the three stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Fixed task tags + audio → answer; adapter + LoRA.
    TagAlignment,
    /// Natural instruction (text only) → task tags; LoRA.
    IntentParsing,
    /// Natural instruction + audio → tags + answer; adapter + LoRA.
    Joint,
}

impl Stage {
    /// The stage numbered 1, 2 or 3.
    pub fn from_number(n: u8) -> Result<Stage, String> {
        match n {
            1 => Ok(Stage::TagAlignment),
            2 => Ok(Stage::IntentParsing),
            3 => Ok(Stage::Joint),
            _ => Err(format!("--stage must be 1, 2 or 3, not {n}")),
        }
    }

    /// 1, 2 or 3.
    pub fn number(self) -> u8 {
        match self {
            Stage::TagAlignment => 1,
            Stage::IntentParsing => 2,
            Stage::Joint => 3,
        }
    }

    /// Whether the adapter trains (it is unused in the text-only stage).
    pub fn trains_adapter(self) -> bool {
        self != Stage::IntentParsing
    }

    /// Whether the stage reads items with audio (else the text-only ones).
    pub fn uses_audio(self) -> bool {
        self != Stage::IntentParsing
    }

    /// Whether the stage trains on `item`: its own kind of items (audio for stages I and III,
    /// text-only intents for stage II), and the text QA items when `text_qa` mixes them in.
    fn takes(self, item: &Item, text_qa: bool) -> bool {
        if item.is_text_qa() {
            return text_qa;
        }
        match self {
            Stage::TagAlignment | Stage::Joint => item.audio.is_some(),
            Stage::IntentParsing => item.audio.is_none(),
        }
    }

    /// The instruction placed in the prompt for `item`: a text QA item's own question; else
    /// stage I's fixed task tags or the item's natural-language instruction.
    fn instruction(self, item: &Item) -> Result<String, String> {
        match self {
            _ if item.is_text_qa() => Ok(item.instruction.clone()),
            Stage::TagAlignment => Ok(fixed_instruction(&item.task_list()?)),
            Stage::IntentParsing | Stage::Joint => Ok(item.instruction.clone()),
        }
    }
}

/// Which stages mix in the manifest's text QA items (`osum train --text-qa`). They train
/// through the answer loss alone, so a run with `--llm-weight 0` leaves them out whatever this
/// says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextQaMix {
    /// Stage I only, as REFERENCE §7 lays out the recipe.
    #[default]
    StageOne,
    /// Every stage. Measured on osum-tiny (README, "Text QA"): with the questions in stage I
    /// alone the LLM answers held-out ones after stage I, and after stages II and III it answers
    /// every question with task tags, because stage II teaches that any text-only prompt is an
    /// instruction to parse; kept in every stage, they survive stage III.
    Every,
    /// None.
    Off,
}

impl TextQaMix {
    /// Whether `stage` mixes them in.
    pub fn in_stage(self, stage: Stage) -> bool {
        match self {
            TextQaMix::StageOne => stage == Stage::TagAlignment,
            TextQaMix::Every => true,
            TextQaMix::Off => false,
        }
    }
}

/// The examples of `stage` among the manifest's items, with their tokenized targets.
///
/// With `aux.ctc`, audio items that have a transcript also get its token ids as CTC labels
/// (train/ctc.rs); with `aux.attributes`, audio items get their closed-set labels
/// (train/attributes.rs). With `text_qa`, the stage also takes the text QA items.
pub fn examples(
    stage: Stage,
    manifest: &Manifest,
    model: &OsumModel,
    aux: AuxLabels,
    text_qa: bool,
) -> Result<Vec<Example>, String> {
    let end = model.answer_end_id()?;
    let mut out = Vec::new();
    for (i, item) in manifest.items.iter().enumerate() {
        if !stage.takes(item, text_qa) {
            continue;
        }
        let at = |e: String| format!("manifest item {}: {e}", i + 1);
        let target = item.target().map_err(at)?;
        let mut ids = model
            .text
            .tokenizer
            .encode(&target)
            .map_err(|e| at(e.to_string()))?;
        ids.push(end);
        let ctc_labels = match (&item.transcript, aux.ctc && item.audio.is_some()) {
            (Some(t), true) => Some(
                model
                    .text
                    .tokenizer
                    .encode(t)
                    .map_err(|e| at(e.to_string()))?,
            ),
            _ => None,
        };
        out.push(Example {
            item: i,
            id: item.id.clone(),
            instruction: stage.instruction(item).map_err(at)?,
            audio: manifest.audio_path(item),
            target: ids,
            ctc_labels,
            attributes: if aux.attributes && item.audio.is_some() {
                AttributeAlignment::targets(item).map_err(at)?
            } else {
                Vec::new()
            },
        });
    }
    if out.is_empty() || (stage.uses_audio() && out.iter().all(|e| e.audio.is_none())) {
        return Err(format!(
            "the manifest has no {} items for stage {}",
            if stage.uses_audio() {
                "audio"
            } else {
                "text-only"
            },
            stage.number()
        ));
    }
    Ok(out)
}

/// Which auxiliary labels [`examples`] attaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuxLabels {
    /// Transcript token ids for the CTC alignment.
    pub ctc: bool,
    /// Closed-set labels for the attribute alignment.
    pub attributes: bool,
}

/// Which learning-rate schedule follows the warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleKind {
    /// Cosine decay to a tenth of the peak at the last step.
    Cosine,
    /// `peak·√(warmup/step)` (OSUM-Pangu's).
    InverseSqrt,
}

/// Everything a training run is given.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The stage.
    pub stage: Stage,
    /// The model preset.
    pub preset: Preset,
    /// The training manifest.
    pub manifest: PathBuf,
    /// The output (checkpoint) folder.
    pub out: PathBuf,
    /// The previous stage's checkpoint folder (required for stages 2 and 3).
    pub from: Option<PathBuf>,
    /// Continue from `out`'s checkpoint.
    pub resume: bool,
    /// Seed of the initialisation, the data order and the dropout masks.
    pub seed: u64,
    /// Peak learning rate.
    pub lr: f32,
    /// Warmup steps.
    pub warmup: u64,
    /// The decay after warmup.
    pub schedule: ScheduleKind,
    /// Optimizer steps; `None`: enough for `epochs` passes over the data.
    pub steps: Option<u64>,
    /// Passes over the data when `steps` is not given.
    pub epochs: f64,
    /// Items per micro-batch.
    pub batch: usize,
    /// Micro-batches per optimizer step (gradient accumulation).
    pub accum: usize,
    /// Global gradient-norm clip.
    pub clip: f32,
    /// AdamW hyper-parameters.
    pub adamw: AdamWConfig,
    /// LoRA dropout (the preset's when `None`).
    pub lora_dropout: Option<f32>,
    /// Weight of the auxiliary CTC alignment loss (train/ctc.rs); 0 = off (the paper's recipe).
    pub ctc_weight: f32,
    /// Weight of the auxiliary attribute alignment loss (train/attributes.rs); 0 = off.
    pub attr_weight: f32,
    /// Weight of the answer loss; 0 skips the LLM (adapter-only training on the alignment terms).
    pub llm_weight: f32,
    /// Which stages mix in the manifest's text QA items.
    pub text_qa: TextQaMix,
    /// Write a checkpoint every this many steps (and at the end).
    pub save_every: u64,
    /// Stop after this step without a final checkpoint, as a kill would (resume tests).
    pub stop_after: Option<u64>,
    /// Folder of the encoder-feature cache.
    pub feature_cache: PathBuf,
}

impl TrainOptions {
    /// REFERENCE §7's recipe for `stage`: AdamW β (0.9, 0.99), ε 1e-6, weight decay 0.01, clip
    /// 5; warmup + inverse-sqrt. Four items per step, as one right-padded batch (one batch of 4
    /// runs about 20% fewer CPU-seconds per item than 4 accumulated batches of 1 on osum-tiny;
    /// `accum` still accumulates on top). The learning rate and warmup are scaled from
    /// OSUM-Pangu's 5e-4 / 2000 steps to runs of a few hundred steps (1e-3, warmup 20).
    pub fn recipe(stage: Stage, preset: Preset, manifest: PathBuf, out: PathBuf) -> TrainOptions {
        TrainOptions {
            stage,
            preset,
            manifest,
            out: out.clone(),
            from: None,
            resume: false,
            seed: 1,
            lr: 1e-3,
            warmup: 20,
            schedule: ScheduleKind::InverseSqrt,
            steps: None,
            epochs: 1.0,
            batch: 4,
            accum: 1,
            clip: 5.0,
            adamw: AdamWConfig {
                beta1: 0.9,
                beta2: 0.99,
                eps: 1e-6,
                weight_decay: 0.01,
            },
            lora_dropout: None,
            ctc_weight: 0.0,
            attr_weight: 0.0,
            llm_weight: 1.0,
            text_qa: TextQaMix::StageOne,
            save_every: 50,
            stop_after: None,
            feature_cache: crate::model::home().join("cache/features"),
        }
    }
}

/// What a finished (or stopped) run did.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Every logged step of the run's trajectory (including steps before a resume).
    pub records: Vec<StepRecord>,
    /// The step it stopped at.
    pub step: u64,
    /// The planned number of steps.
    pub total_steps: u64,
    /// Examples of the stage.
    pub examples: usize,
    /// Of which text QA items.
    pub text_qa_examples: usize,
    /// Wall seconds of the steps run in this process.
    pub secs: f64,
    /// Of which spent computing encoder features (cache misses).
    pub encoder_secs: f64,
    /// Items, input tokens and target tokens processed in this process.
    pub items: usize,
    /// Input tokens processed in this process (no padding).
    pub tokens: usize,
    /// Target tokens scored in this process.
    pub target_tokens: usize,
    /// Feature-cache hits and misses.
    pub cache_hits: u64,
    /// Feature-cache misses.
    pub cache_misses: u64,
    /// Clips left out of the CTC term because they had fewer speech rows than their transcript
    /// needs (runs with `--ctc-weight` only).
    pub ctc_skipped: usize,
}

/// The epoch-by-epoch data order: a shuffle per epoch from one generator; its state before the
/// current epoch's shuffle and the position in the epoch are what a checkpoint stores.
struct DataOrder {
    before: Rng,
    rng: Rng,
    order: Vec<usize>,
    cursor: usize,
    epoch: u64,
}

impl DataOrder {
    fn fresh(seed: u64, n: usize) -> DataOrder {
        let rng = Rng::new(seed ^ 0xDA7A_0DE5_5EED_0001);
        DataOrder {
            before: rng.clone(),
            rng,
            order: (0..n).collect(),
            cursor: n,
            epoch: 0,
        }
    }

    fn restore(state: &TrainState, n: usize) -> Result<DataOrder, String> {
        let mut o = DataOrder {
            before: Rng::from_state(state.order_rng),
            rng: Rng::from_state(state.order_rng),
            order: (0..n).collect(),
            cursor: state.cursor,
            epoch: state.epoch,
        };
        if state.cursor > n {
            return Err(format!(
                "the checkpoint is {} items into an epoch of {n}",
                state.cursor
            ));
        }
        if o.epoch > 0 {
            o.shuffle();
        }
        Ok(o)
    }

    fn shuffle(&mut self) {
        self.order = (0..self.order.len()).collect();
        for i in (1..self.order.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            self.order.swap(i, j);
        }
    }

    fn next(&mut self) -> usize {
        if self.cursor >= self.order.len() {
            self.before = self.rng.clone();
            self.shuffle();
            self.epoch += 1;
            self.cursor = 0;
        }
        self.cursor += 1;
        self.order[self.cursor - 1]
    }
}

/// Names the first of `named` holding a NaN or infinity (`what` says whose values they are),
/// so a diverged run says where it diverged, or says that all of them are finite.
fn non_finite_tensor<'a>(named: impl Iterator<Item = (&'a str, &'a Tensor)>, what: &str) -> String {
    for (name, t) in named {
        let bad = match t.to_host() {
            Ok(crate::engine::HostBuffer::F32(v)) => v.iter().position(|x| !x.is_finite()),
            _ => None,
        };
        if let Some(i) = bad {
            return format!("first non-finite {what}: {name} at element {i}");
        }
    }
    format!("every {what} is finite")
}

/// Convert every attached LoRA's tensors to trainable leaves (or constants), in place.
fn set_lora_trainable(llm: &mut Llm, trainable: bool) -> Result<(), String> {
    let msg = |e: crate::model::llm::LlmError| e.to_string();
    for block in &mut llm.blocks {
        for (_, lin) in block.linears_mut() {
            if let Some(l) = lin.detach_lora().map_err(msg)? {
                let (a, b) = if trainable {
                    let own = |t: &Tensor| t.owned_variable().map_err(|e| e.to_string());
                    (own(l.a())?, own(l.b())?)
                } else {
                    (l.a().detach(), l.b().detach())
                };
                lin.attach_lora(Lora::from_tensors(a, b, l.alpha()).map_err(msg)?)
                    .map_err(msg)?;
            }
        }
    }
    Ok(())
}

/// Remove every LoRA.
fn drop_lora(llm: &mut Llm) -> Result<(), String> {
    for block in &mut llm.blocks {
        for (_, lin) in block.linears_mut() {
            lin.detach_lora().map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// The adapter and LoRA tensors under checkpoint names (`adapter/…`, `lora/…`).
fn named_state(model: &OsumModel) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = model
        .adapter
        .named_parameters()
        .iter()
        .map(|(n, t)| (format!("adapter/{n}"), t.clone()))
        .collect();
    v.extend(
        model
            .text
            .llm
            .lora_parameters()
            .into_iter()
            .map(|(n, t)| (format!("lora/{n}"), t)),
    );
    v
}

/// SHA-256 of a file's bytes, hex.
fn file_digest(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A seed for micro-batch `micro` of `step`'s dropout masks.
fn dropout_seed(seed: u64, step: u64, micro: usize) -> u64 {
    let mut r = Rng::new(seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((micro as u64) << 48));
    r.next_u64()
}

/// Open the model for `opts` with the stage's trainable tensors set up (fresh, from `--from`,
/// or — for `--resume` — from the checkpoint in `opts.out`).
fn prepare_model(
    opts: &TrainOptions,
    resume: Option<&checkpoint::Loaded>,
    dev: &Arc<dyn Device>,
) -> Result<OsumModel, String> {
    let stage = opts.stage;
    if stage != Stage::TagAlignment && opts.from.is_none() && resume.is_none() {
        return Err(format!(
            "stage {} starts from stage {}'s checkpoint: pass --from DIR",
            stage.number(),
            stage.number() - 1
        ));
    }
    let from = if resume.is_some() {
        None
    } else {
        opts.from.as_deref()
    };
    let mut model = OsumModel::open(opts.preset.clone(), from, dev)?;
    let acfg = model.adapter.config().clone();
    let spec = opts
        .preset
        .lora
        .clone()
        .ok_or_else(|| format!("preset {} has no LoRA to train", opts.preset.name))?;
    let msg = |e: crate::model::adapter::AdapterError| e.to_string();
    if let Some(ck) = resume {
        model.adapter = Adapter::load(&acfg, &ck.tensors, "adapter/", dev).map_err(msg)?;
        drop_lora(&mut model.text.llm)?;
        let n = crate::model::llm::peft::attach_peft_lora(
            &mut model.text.llm,
            &ck.tensors,
            "lora/",
            spec.alpha,
            false,
        )
        .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the checkpoint holds no LoRA tensors".into());
        }
    } else if from.is_none() {
        // Stage I from scratch: the run's own seed, not `open`'s fixed one, with the speech rows
        // at the scale of the LLM's token embeddings (see `Adapter::random_matched`).
        let embed_rms = model.text.llm.embedding_rms().map_err(|e| e.to_string())?;
        model.adapter = Adapter::random_matched(&acfg, opts.seed, embed_rms, dev).map_err(msg)?;
        drop_lora(&mut model.text.llm)?;
        let layers = model.text.llm.config.layers;
        let mut rng = Rng::new(opts.seed);
        model
            .text
            .llm
            .add_lora(
                &lora_targets(&spec.targets)?,
                0..layers,
                spec.rank,
                spec.alpha,
                &mut rng,
            )
            .map_err(|e| e.to_string())?;
    } else if model.text.llm.lora_parameters().is_empty() {
        return Err(format!(
            "{}: no {} to continue from",
            opts.from.as_deref().unwrap_or(Path::new("")).display(),
            crate::model::osum::LORA_FILE
        ));
    }
    let adapter = std::mem::replace(
        &mut model.adapter,
        Adapter::random(&acfg, 0, dev).map_err(msg)?,
    );
    model.adapter = if stage.trains_adapter() {
        adapter.trainable()
    } else {
        adapter.frozen()
    }
    .map_err(msg)?;
    set_lora_trainable(&mut model.text.llm, true)?;
    model.trained = true;
    Ok(model)
}

/// Run `opts`' stage, calling `on_step` after every optimizer step (progress display).
pub fn train(
    opts: &TrainOptions,
    dev: &Arc<dyn Device>,
    on_step: &mut dyn FnMut(&StepRecord, &TrainSummary),
) -> Result<TrainSummary, String> {
    if opts.batch == 0 || opts.accum == 0 {
        return Err("--batch and --accum must be positive".into());
    }
    if !(opts.lr.is_finite() && opts.lr > 0.0) {
        return Err(format!("--lr must be a positive number, not {}", opts.lr));
    }
    check_loss_weights(opts)?;
    let manifest = Manifest::load(&opts.manifest)?;
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| format!("{}: cannot create: {e}", opts.out.display()))?;
    let loaded = if opts.resume {
        Some(checkpoint::load(&opts.out)?)
    } else {
        None
    };
    let mut model = prepare_model(opts, loaded.as_ref(), dev)?;
    let aux = AuxLabels {
        ctc: opts.ctc_weight > 0.0,
        attributes: opts.attr_weight > 0.0,
    };
    // Text QA trains through the answer loss alone: an alignment-only run leaves it out.
    let text_qa = opts.llm_weight > 0.0 && opts.text_qa.in_stage(opts.stage);
    let examples = examples(opts.stage, &manifest, &model, aux, text_qa)?;
    let per_step = opts.batch * opts.accum;
    let total_steps = match opts.steps {
        Some(s) => s,
        None => ((opts.epochs * examples.len() as f64) / per_step as f64).ceil() as u64,
    }
    .max(1);
    let dropout = opts
        .lora_dropout
        .or(opts.preset.lora.as_ref().map(|l| l.dropout))
        .unwrap_or(0.0);
    let settings = serde_json::json!({
        "stage": opts.stage.number(),
        "preset": opts.preset.name,
        "manifest_sha256": file_digest(&opts.manifest)?,
        "from": opts.from.as_ref().map(|p| p.display().to_string()),
        "seed": opts.seed,
        "lr": opts.lr,
        "warmup": opts.warmup,
        "schedule": format!("{:?}", opts.schedule),
        "total_steps": total_steps,
        "batch": opts.batch,
        "accum": opts.accum,
        "clip": opts.clip,
        "adamw": [opts.adamw.beta1, opts.adamw.beta2, opts.adamw.eps, opts.adamw.weight_decay],
        "lora_dropout": dropout,
    });
    // Only non-default weights are recorded, so runs without them resume as before.
    let mut settings = settings;
    if opts.ctc_weight != 0.0 || opts.llm_weight != 1.0 {
        settings["ctc_weight"] = opts.ctc_weight.into();
        settings["llm_weight"] = opts.llm_weight.into();
    }
    if opts.attr_weight != 0.0 {
        settings["attr_weight"] = opts.attr_weight.into();
    }
    if opts.text_qa != TextQaMix::default() {
        settings["text_qa"] = format!("{:?}", opts.text_qa).into();
    }
    let ctc = if opts.ctc_weight > 0.0 {
        Some(CtcAlignment::new(&model, &examples)?)
    } else {
        None
    };
    let attributes = if opts.attr_weight > 0.0 {
        Some(AttributeAlignment::new(&model)?)
    } else {
        None
    };
    let named = named_state(&model);
    let params: Vec<(String, Tensor)> = named
        .iter()
        // The LoRA trains only when the LLM runs (`--llm-weight 0` trains the adapter alone, and
        // a tensor that never gets a gradient has no optimizer moments to checkpoint).
        .filter(|(n, _)| {
            if n.starts_with("lora/") {
                opts.llm_weight > 0.0
            } else {
                opts.stage.trains_adapter()
            }
        })
        .cloned()
        .collect();
    let param_tensors: Vec<Tensor> = params.iter().map(|(_, t)| t.clone()).collect();
    let mut opt = AdamW::new(opts.adamw);
    let (mut order, start_step) = match &loaded {
        Some(ck) => {
            if let Some(m) = settings_mismatch(&ck.state.settings, &settings) {
                return Err(format!(
                    "{}: cannot resume with different settings: {m}",
                    opts.out.display()
                ));
            }
            let mut moments = Vec::new();
            for (name, p) in &params {
                let get = |k: &str| {
                    ck.tensors
                        .tensor(&format!("{k}/{name}"), dev)
                        .map_err(|e| e.to_string())
                };
                if ck.state.step > 0 {
                    moments.push((p.clone(), get("adam_m")?, get("adam_v")?));
                }
            }
            opt.restore(ck.state.step, moments)
                .map_err(|e| e.to_string())?;
            (
                DataOrder::restore(&ck.state, examples.len())?,
                ck.state.step,
            )
        }
        None => (DataOrder::fresh(opts.seed, examples.len()), 0),
    };
    let sched = match opts.schedule {
        ScheduleKind::Cosine => Schedule::Cosine(WarmupCosine {
            peak: opts.lr,
            floor: opts.lr * 0.1,
            warmup: opts.warmup,
            total: total_steps,
        }),
        ScheduleKind::InverseSqrt => Schedule::InverseSqrt(WarmupInverseSqrt {
            peak: opts.lr,
            warmup: opts.warmup,
        }),
    };
    let mut cache = FeatureCache::new(&opts.feature_cache, &opts.preset.feature_source())?;
    let (mut log, records) = RunLog::open(&opts.out.join(LOG_FILE), start_step)?;
    let mut summary = TrainSummary {
        records,
        step: start_step,
        total_steps,
        examples: examples.len(),
        text_qa_examples: examples
            .iter()
            .filter(|e| manifest.items[e.item].is_text_qa())
            .count(),
        secs: 0.0,
        encoder_secs: 0.0,
        items: 0,
        tokens: 0,
        target_tokens: 0,
        cache_hits: 0,
        cache_misses: 0,
        ctc_skipped: 0,
    };
    let title = format!(
        "osum train: stage {} · {} · {} examples",
        opts.stage.number(),
        opts.preset.name,
        examples.len()
    );
    let save = |summary: &TrainSummary, opt: &AdamW, order: &DataOrder| -> Result<(), String> {
        let state = TrainState {
            step: summary.step,
            order_rng: order.before.state(),
            epoch: order.epoch,
            cursor: order.cursor,
            settings: settings.clone(),
        };
        checkpoint::save(&opts.out, &named, opt, &state)?;
        crate::train::atomic::write_atomic(
            &opts.out.join(CURVE_FILE),
            loss_svg(&summary.records, &title).as_bytes(),
        )
    };
    if start_step == 0 {
        // A step-0 checkpoint: a kill during the first steps still leaves something to resume.
        save(&summary, &opt, &order)?;
    }
    for step in start_step + 1..=total_steps {
        if opts.stop_after.is_some_and(|s| step > s) {
            return Ok(summary);
        }
        let t0 = Instant::now();
        let mut enc_secs = 0.0;
        let mut sums: HashMap<usize, Tensor> = HashMap::new();
        let (mut loss_sum, mut items, mut tokens, mut targets) = (0.0f64, 0, 0, 0);
        let mut scored_micro = 0usize;
        let (mut ctc_mean, mut attr_mean) = (TermMean::default(), TermMean::default());
        let mut ctc_skipped = 0;
        for micro in 0..opts.accum {
            let picked: Vec<&Example> = (0..opts.batch).map(|_| &examples[order.next()]).collect();
            if dropout > 0.0 {
                model
                    .text
                    .llm
                    .set_lora_dropout(dropout, dropout_seed(opts.seed, step, micro))
                    .map_err(|e| e.to_string())?;
            }
            // Encoder features (cached), then one adapter batch for the clips of the batch.
            let mut feats = Vec::with_capacity(picked.len());
            for ex in &picked {
                let Some(path) = &ex.audio else { continue };
                let te = Instant::now();
                feats.push(cache.get_or_compute(path, dev, || {
                    let samples = audio::load_clip(path, None, MAX_SECONDS)
                        .map_err(|e| format!("{}: {e}", ex.name()))?;
                    model
                        .encoder_features(&samples)
                        .map_err(|e| format!("{} ({}): {e}", ex.name(), path.display()))
                })?);
                enc_secs += te.elapsed().as_secs_f64();
            }
            let mut embedded = if feats.is_empty() {
                Vec::new()
            } else {
                model.speech_from_feature_batch(&feats)?
            }
            .into_iter();
            let speech: Vec<Option<Tensor>> = picked
                .iter()
                .map(|ex| ex.audio.as_ref().and_then(|_| embedded.next()))
                .collect();
            let mut objective: Option<Tensor> = None;
            if opts.llm_weight > 0.0 {
                let bl = batch_loss(&model, &picked, &speech)?;
                tokens += bl.tokens;
                targets += bl.target_tokens;
                objective = Some(weighted(bl.loss, opts.llm_weight)?);
            }
            if let Some(ctc) = &ctc {
                let labels: Vec<Option<&[u32]>> =
                    picked.iter().map(|e| e.ctc_labels.as_deref()).collect();
                let (term, skipped) = ctc.batch_loss(&model, &speech, &labels)?;
                ctc_skipped += skipped;
                if let Some(term) = term {
                    objective = add_term(objective, term, opts.ctc_weight, &mut ctc_mean)?;
                }
            }
            if let Some(attributes) = &attributes {
                let targets: Vec<&[_]> = picked.iter().map(|e| e.attributes.as_slice()).collect();
                if let Some(term) = attributes.batch_loss(&speech, &targets)? {
                    objective = add_term(objective, term, opts.attr_weight, &mut attr_mean)?;
                }
            }
            items += picked.len();
            // A micro-batch with nothing to score (alignment terms only, and no clip qualifies) adds
            // nothing.
            let Some(objective) = objective else { continue };
            let l = objective.to_scalar_f32().map_err(|e| e.to_string())?;
            if !l.is_finite() {
                let names: Vec<String> = picked.iter().map(|e| e.name()).collect();
                return Err(format!(
                    "step {step}: the loss is {l} (micro-batch {micro}: {}; {}); training \
                     stopped, the last checkpoint in {} is step {}",
                    names.join(", "),
                    non_finite_tensor(
                        params.iter().map(|(n, t)| (n.as_str(), t)),
                        "trainable tensor"
                    ),
                    opts.out.display(),
                    last_saved(step, opts.save_every, start_step)
                ));
            }
            loss_sum += l as f64;
            scored_micro += 1;
            let grads = objective.backward().map_err(|e| e.to_string())?;
            for (i, p) in param_tensors.iter().enumerate() {
                if let Some(g) = grads.get(p) {
                    let g = match sums.remove(&i) {
                        Some(acc) => acc.add(g).map_err(|e| e.to_string())?,
                        None => g.clone(),
                    };
                    sums.insert(i, g);
                }
            }
        }
        // The step's gradient is the mean of its micro-batches' gradients.
        let mut grads = Gradients::default();
        let inv = 1.0 / opts.accum as f32;
        for (i, g) in sums {
            grads.insert(
                &param_tensors[i],
                if opts.accum == 1 {
                    g
                } else {
                    g.scale(inv).map_err(|e| e.to_string())?
                },
            );
        }
        let (factor, norm) =
            clip_factor(&param_tensors, &grads, opts.clip).map_err(|e| e.to_string())?;
        if !norm.is_finite() {
            return Err(format!(
                "step {step}: the gradient norm is {norm} ({}); training stopped, the last \
                 checkpoint in {} is step {}",
                non_finite_tensor(
                    params
                        .iter()
                        .filter_map(|(n, t)| grads.get(t).map(|g| (n.as_str(), g))),
                    "gradient"
                ),
                opts.out.display(),
                last_saved(step, opts.save_every, start_step)
            ));
        }
        let lr = sched.lr(step);
        opt.step(&param_tensors, &grads, lr, factor)
            .map_err(|e| e.to_string())?;
        let secs = t0.elapsed().as_secs_f64();
        let rec = StepRecord {
            step,
            loss: (loss_sum / scored_micro.max(1) as f64) as f32,
            ctc_loss: ctc.as_ref().map(|_| ctc_mean.value()),
            attr_loss: attributes.as_ref().map(|_| attr_mean.value()),
            lr,
            grad_norm: norm,
            items,
            tokens,
            target_tokens: targets,
            secs,
            epoch: order.epoch,
        };
        log.append(&rec)?;
        summary.records.push(rec.clone());
        summary.step = step;
        summary.secs += secs;
        summary.encoder_secs += enc_secs;
        summary.items += items;
        summary.tokens += tokens;
        summary.target_tokens += targets;
        summary.cache_hits = cache.hits;
        summary.cache_misses = cache.misses;
        summary.ctc_skipped += ctc_skipped;
        on_step(&rec, &summary);
        if step % opts.save_every.max(1) == 0 || step == total_steps {
            save(&summary, &opt, &order)?;
        }
    }
    Ok(summary)
}

/// The running mean of an auxiliary term over a step's micro-batches, as logged.
#[derive(Default)]
struct TermMean {
    sum: f64,
    count: usize,
}

impl TermMean {
    fn value(&self) -> f32 {
        (self.sum / self.count.max(1) as f64) as f32
    }
}

/// `w·t` (`t` itself for weight 1, so the paper's recipe runs the same ops as before the weights
/// existed).
fn weighted(t: Tensor, w: f32) -> Result<Tensor, String> {
    if w == 1.0 {
        Ok(t)
    } else {
        t.scale(w).map_err(|e| e.to_string())
    }
}

/// `objective + weight·term` (just the weighted term when there is no objective yet), noting
/// the unweighted term's value in `mean`.
fn add_term(
    objective: Option<Tensor>,
    term: Tensor,
    weight: f32,
    mean: &mut TermMean,
) -> Result<Option<Tensor>, String> {
    let msg = |e: crate::engine::Error| e.to_string();
    mean.sum += term.to_scalar_f32().map_err(msg)? as f64;
    mean.count += 1;
    let term = weighted(term, weight)?;
    Ok(Some(match objective {
        Some(o) => o.add(&term).map_err(msg)?,
        None => term,
    }))
}

/// The loss weights must be finite and non-negative, score something, and use CTC only where
/// the adapter trains (the text-only stage has no speech rows).
fn check_loss_weights(opts: &TrainOptions) -> Result<(), String> {
    for (flag, w) in [
        ("--ctc-weight", opts.ctc_weight),
        ("--llm-weight", opts.llm_weight),
        ("--attr-weight", opts.attr_weight),
    ] {
        if !(w.is_finite() && w >= 0.0) {
            return Err(format!("{flag} must be a non-negative number, not {w}"));
        }
    }
    if opts.ctc_weight > 0.0 && !opts.stage.trains_adapter() {
        return Err(format!(
            "--ctc-weight needs speech: stage {} trains no adapter",
            opts.stage.number()
        ));
    }
    if opts.attr_weight > 0.0 && !opts.stage.trains_adapter() {
        return Err(format!(
            "--attr-weight needs speech: stage {} trains no adapter",
            opts.stage.number()
        ));
    }
    if opts.llm_weight == 0.0 && opts.ctc_weight == 0.0 && opts.attr_weight == 0.0 {
        return Err(
            "--llm-weight 0 needs --ctc-weight or --attr-weight above 0: nothing would train"
                .into(),
        );
    }
    Ok(())
}

/// The step of the last checkpoint written before `step`.
fn last_saved(step: u64, every: u64, start: u64) -> u64 {
    let every = every.max(1);
    let prev = (step - 1) / every * every;
    prev.max(start)
}
