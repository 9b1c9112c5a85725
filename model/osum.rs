//! The full OSUM model (REFERENCE §1): speech → log-mel (OSUM mode, no padding) → Whisper encoder
//! → adapter → `[speech BOS] speech [speech EOS]` spliced into the prompt's text embeddings →
//! the LLM (with LoRA) → an answer of task tags and text, parsed by [`crate::model::tags`].

use crate::engine::{no_grad, Device, Rng, Tensor};
use crate::model::adapter::{Adapter, AdapterConfig};
use crate::model::audio::{log_mel, MelMode};
use crate::model::llm::{peft::attach_peft_lora, GenerationConfig, LoraTarget};
use crate::model::preset::{LlmSource, LoraSpec, Preset};
use crate::model::prompt::Segment;
use crate::model::tags::{parse, Parsed};
use crate::model::text::TextModel;
use crate::model::weights::{
    Component, CtModel, OsumMapping, PartSource, PtCheckpoint, SafeTensors,
};
use crate::model::whisper::{Convention, Whisper};
use std::path::Path;
use std::sync::Arc;

/// Longest input `ask` takes: the Whisper encoder's 3000 frames (30 s).
pub const MAX_SECONDS: f32 = 30.0;

/// The files of a trained checkpoint folder (`--checkpoint DIR`).
pub const ADAPTER_FILE: &str = "adapter.safetensors";
/// LoRA tensors in PEFT names (`model.layers.N.self_attn.q_proj.lora_A.weight`, …).
pub const LORA_FILE: &str = "lora.safetensors";

/// Anything that stops the model from loading or answering, as a message naming the cause.
pub type Result<T> = std::result::Result<T, String>;

fn msg(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The loaded model.
pub struct OsumModel {
    /// The preset it was built from.
    pub preset: Preset,
    /// Whisper (only the encoder is used).
    pub whisper: Whisper,
    /// The adapter.
    pub adapter: Adapter,
    /// LLM + tokenizer + template.
    pub text: TextModel,
    /// True when adapter and LoRA came from a trained checkpoint (false: untrained, random
    /// adapter and zero LoRA — answers are noise).
    pub trained: bool,
    /// The encoder layers the adapter reads ([`Preset::encoder_taps`] as indices into
    /// `Encoder::forward_layers`).
    taps: Vec<usize>,
}

/// One answer.
pub struct Answer {
    /// The generated text.
    pub text: String,
    /// Its tags and fields.
    pub parsed: Parsed,
    /// Generated token ids.
    pub tokens: Vec<u32>,
    /// Speech positions given to the LLM (BOS/EOS included; 0 for a text-only prompt).
    pub speech_positions: usize,
}

impl OsumModel {
    /// Load the preset's encoder, adapter and LLM; adapter and LoRA from `checkpoint` (a folder
    /// with [`ADAPTER_FILE`] and optionally [`LORA_FILE`]) or, without one, untrained. A preset
    /// naming a released checkpoint ([`Preset::checkpoint`]) loads everything from it
    /// ([`OsumModel::open_released`]).
    pub fn open(
        preset: Preset,
        checkpoint: Option<&Path>,
        device: &Arc<dyn Device>,
    ) -> Result<OsumModel> {
        if preset.checkpoint.is_some() {
            if let Some(dir) = checkpoint {
                return Err(format!(
                    "preset {} loads the released checkpoint; --checkpoint {} (a trained adapter \
                     and LoRA on top of it) is not supported for such presets yet",
                    preset.name,
                    dir.display()
                ));
            }
            return Self::open_released(preset, device);
        }
        let home = crate::model::home();
        let enc_name = preset
            .encoder
            .as_deref()
            .ok_or_else(|| format!("preset {} has no speech encoder", preset.name))?;
        let acfg: AdapterConfig = preset
            .adapter
            .clone()
            .ok_or_else(|| format!("preset {} has no adapter", preset.name))?;
        let bin = home.join(enc_name).join("model.bin");
        if !bin.exists() {
            return Err(format!("{} not found (run `osum setup`)", bin.display()));
        }
        let whisper = Whisper::load(&CtModel::open(&bin).map_err(msg)?, device).map_err(msg)?;
        let taps = adapter_taps(&preset, &whisper, &acfg)?;
        let adapter = match checkpoint {
            Some(dir) => {
                let src = SafeTensors::open(dir.join(ADAPTER_FILE)).map_err(msg)?;
                Adapter::load(&acfg, &src, "", device).map_err(msg)?
            }
            None => Adapter::random(&acfg, 0, device).map_err(msg)?,
        };
        let text = Self::open_llm(&preset, checkpoint, device)?;
        let trained = checkpoint.is_some();
        Ok(OsumModel {
            preset,
            whisper,
            adapter,
            text,
            trained,
            taps,
        })
    }

    /// The LLM of a trained preset with its LoRA: from `checkpoint`'s [`LORA_FILE`] (a folder
    /// without one, an adapter-only checkpoint, leaves the LLM as it is), or zero (untrained)
    /// without a checkpoint. All a text-only prompt needs (`osum chat`), so the encoder and
    /// adapter are not loaded. Not for released-checkpoint presets, whose LLM weights come from
    /// the checkpoint ([`OsumModel::open`]).
    pub fn open_llm(
        preset: &Preset,
        checkpoint: Option<&Path>,
        device: &Arc<dyn Device>,
    ) -> Result<TextModel> {
        if preset.checkpoint.is_some() {
            return Err(format!(
                "preset {} takes its LLM from a released checkpoint; load it whole",
                preset.name
            ));
        }
        let home = crate::model::home();
        let mut text =
            TextModel::open_source(&preset.llm, &home, preset.template, device).map_err(msg)?;
        let Some(spec) = &preset.lora else {
            return Ok(text);
        };
        match checkpoint {
            Some(dir) => {
                let lora = dir.join(LORA_FILE);
                if lora.exists() {
                    let src = SafeTensors::open(&lora).map_err(msg)?;
                    attach_peft_lora(&mut text.llm, &src, "", spec.alpha, false).map_err(msg)?;
                }
            }
            None => {
                let targets = lora_targets(&spec.targets)?;
                let layers = text.llm.config.layers;
                let mut rng = Rng::new(0);
                text.llm
                    .add_lora(&targets, 0..layers, spec.rank, spec.alpha, &mut rng)
                    .map_err(msg)?;
            }
        }
        Ok(text)
    }

    /// Load a preset whose weights all come from a released OSUM / OSUM-Pangu checkpoint
    /// ([`Preset::checkpoint`], REFERENCE §7): the Whisper encoder (WeNet names, checked against
    /// [`Preset::encoder_dims`]), the adapter ([`Preset::adapter`]), the LLM's base weights
    /// (with `config.json` and the tokenizer from the [`Preset::llm`] folder) and its unmerged
    /// LoRA ([`Preset::lora`]: rank and targets checked, α applied). Every tensor of the
    /// checkpoint must be used, except those of [`UNUSED_RELEASED_KEYS`]; a missing or
    /// mis-shaped tensor is an error naming it with the expected and found shape.
    pub fn open_released(preset: Preset, device: &Arc<dyn Device>) -> Result<OsumModel> {
        let home = crate::model::home();
        let name = &preset.name;
        let ck_path = match &preset.checkpoint {
            Some(p) => home.join(p),
            None => return Err(format!("preset {name} names no released checkpoint")),
        };
        if preset.encoder.is_some() {
            return Err(format!(
                "preset {name} names both `encoder` and `checkpoint`; the encoder of a released \
                 checkpoint is inside it: remove `encoder`"
            ));
        }
        let dims = preset.encoder_dims.ok_or_else(|| {
            format!("preset {name} names a checkpoint but no `encoder_dims` (the Whisper sizes)")
        })?;
        let acfg = preset
            .adapter
            .clone()
            .ok_or_else(|| format!("preset {name} has no adapter"))?;
        let llm_dir = match &preset.llm {
            LlmSource::HfDir(p) => home.join(p),
            LlmSource::Gguf(p) => {
                return Err(format!(
                    "preset {name}: with a released checkpoint, `llm` must be the LLM's release \
                     folder (hf_dir: config.json and tokenizer), not the GGUF file {}",
                    p.display()
                ))
            }
        };
        let obtain = || {
            preset
                .obtain
                .as_deref()
                .map(|o| format!("; to obtain it, {o}"))
                .unwrap_or_default()
        };
        for (path, what) in [
            (&ck_path, "the released checkpoint"),
            (&llm_dir.join("config.json"), "the LLM's config"),
        ] {
            if !path.exists() {
                return Err(format!(
                    "{} not found: preset {name} needs {what} there{}",
                    path.display(),
                    obtain()
                ));
            }
        }

        let ck = PtCheckpoint::open(&ck_path).map_err(msg)?;
        let map = ck.osum_mapping().map_err(msg)?;
        let enc = PartSource::new(&ck, &map, &[Component::Encoder]);
        let whisper = Whisper::load_with(&enc, Convention::Wenet, dims.whisper_config(), device)
            .map_err(msg)?;
        let taps = adapter_taps(&preset, &whisper, &acfg)?;
        let ada = PartSource::new(&ck, &map, &[Component::Adapter]);
        let adapter = Adapter::load(&acfg, &ada, "", device).map_err(msg)?;
        let base = PartSource::new(&ck, &map, &[Component::LlmBase]);
        let mut text =
            TextModel::open_hf_dir_with_weights(&llm_dir, &base, preset.template, device)
                .map_err(msg)?;
        let lora = PartSource::new(&ck, &map, &[Component::LoraA, Component::LoraB]);
        if !lora.is_empty() {
            let spec = preset.lora.as_ref().ok_or_else(|| {
                format!(
                    "{}: holds LoRA tensors but preset {name} has no `lora` (rank, α, targets)",
                    ck_path.display()
                )
            })?;
            check_lora(&ck, &map, spec)?;
            attach_peft_lora(&mut text.llm, &lora, "", spec.alpha, false).map_err(msg)?;
        }

        let mut unused: Vec<String> = [&enc, &ada, &base, &lora]
            .iter()
            .flat_map(|p| p.unused())
            .chain(
                map.component(Component::Other)
                    .map(|(_, raw)| raw.to_string()),
            )
            .filter(|raw| !is_unused_released_key(raw))
            .collect();
        if !unused.is_empty() {
            unused.sort();
            let n = unused.len();
            unused.truncate(12);
            return Err(format!(
                "{}: {n} tensors are not used by the model of preset {name} (a different model, \
                 or sizes that do not match the preset?): {}{}",
                ck_path.display(),
                unused.join(", "),
                if n > 12 { ", …" } else { "" }
            ));
        }
        Ok(OsumModel {
            preset,
            whisper,
            adapter,
            text,
            trained: true,
            taps,
        })
    }

    /// Ids that end an answer: the LLM's and template's ([`TextModel::stop_ids`]) and the
    /// preset's extra `stop_ids`.
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut ids = self.text.stop_ids();
        for &t in &self.preset.generation.stop_ids {
            if !ids.contains(&t) {
                ids.push(t);
            }
        }
        ids
    }

    /// Speech embeddings `[1, n + 2, llm_dim]` (BOS, speech, EOS) of 16 kHz mono `samples`
    /// (inference: nothing is recorded for gradients).
    pub fn speech_embeddings(&self, samples: &[f32]) -> Result<Tensor> {
        let enc = self.encoder_features(samples)?;
        no_grad(|| self.speech_from_features(&enc))
    }

    /// The frozen Whisper encoder's output `[1, T, enc_dim]` for 16 kHz mono `samples` (OSUM
    /// log-mel, no padding; at most [`MAX_SECONDS`]): the preset's encoder taps, by default
    /// the encoder's final output. The trainer caches these, since the
    /// encoder never trains (REFERENCE §7, DESIGN "Trainer").
    pub fn encoder_features(&self, samples: &[f32]) -> Result<Tensor> {
        let mel = self.encoder_input(samples)?;
        no_grad(|| self.whisper.encoder.forward_taps(&mel, &self.taps)).map_err(msg)
    }

    /// Every layer's output of the frozen encoder for `samples`, the input stem first and
    /// [`OsumModel::encoder_features`] last (see `Encoder::forward_layers`).
    pub fn encoder_layers(&self, samples: &[f32]) -> Result<Vec<Tensor>> {
        let mel = self.encoder_input(samples)?;
        no_grad(|| self.whisper.encoder.forward_layers(&mel)).map_err(msg)
    }

    /// The OSUM log-mel `[1, 80, T]` of 16 kHz mono `samples`, or an error for clips the
    /// encoder cannot take (longer than 30 s, shorter than two mel frames).
    fn encoder_input(&self, samples: &[f32]) -> Result<Tensor> {
        let secs = samples.len() as f32 / 16_000.0;
        if secs > MAX_SECONDS {
            return Err(format!(
                "the audio is {secs:.1} s long; the speech encoder takes at most {MAX_SECONDS} s \
                 (trim it, e.g. `sox in.wav out.wav trim 0 30`)"
            ));
        }
        let (mel, frames) = log_mel(samples, MelMode::Osum);
        if frames < 2 {
            return Err(format!(
                "the audio is too short ({secs:.3} s): at least 20 ms of speech is needed"
            ));
        }
        Tensor::from_vec(mel, &[1, 80, frames], &self.whisper.encoder_device()).map_err(msg)
    }

    /// Speech embeddings `[1, n + 2, llm_dim]` (BOS, speech, EOS) of a log-mel `[1, 80, T]`.
    pub fn speech_embeddings_of_mel(&self, mel: &Tensor) -> Result<Tensor> {
        no_grad(|| {
            let enc = self
                .whisper
                .encoder
                .forward_taps(mel, &self.taps)
                .map_err(msg)?;
            self.speech_from_features(&enc)
        })
    }

    /// `[1, n + 2, llm_dim]`: the adapter over encoder features `[1, T, enc_dim]`, between the
    /// speech BOS and EOS embeddings. Gradients reach the adapter when its parameters are
    /// trainable and recording is on (training); call under `no_grad` for inference.
    pub fn speech_from_features(&self, enc: &Tensor) -> Result<Tensor> {
        let mut v = self.speech_from_feature_batch(std::slice::from_ref(enc))?;
        v.pop()
            .ok_or_else(|| "the adapter returned no speech".to_string())
    }

    /// [`OsumModel::speech_from_features`] of several clips in one adapter batch: the features
    /// (each `[1, T_i, enc_dim]`) are right-padded to the longest and run together with their
    /// lengths, so every clip's rows equal a run of that clip alone (the adapter's padded-batch
    /// contract) at the cost of one batch instead of many.
    pub fn speech_from_feature_batch(&self, feats: &[Tensor]) -> Result<Vec<Tensor>> {
        let mut lengths = Vec::with_capacity(feats.len());
        for f in feats {
            match f.shape() {
                [1, t, _] => lengths.push(*t),
                s => return Err(format!("encoder features must be [1, T, dim], got {s:?}")),
            }
        }
        let longest = lengths.iter().copied().max().unwrap_or(0);
        let mut rows = Vec::with_capacity(feats.len());
        for (f, &t) in feats.iter().zip(&lengths) {
            rows.push(if t < longest {
                let dim = f.shape()[2];
                let pad =
                    Tensor::zeros(&[1, longest - t, dim], f.dtype(), f.device()).map_err(msg)?;
                Tensor::cat(&[f.clone(), pad], 1).map_err(msg)?
            } else {
                f.clone()
            });
        }
        let x = if rows.len() == 1 {
            rows[0].clone()
        } else {
            Tensor::cat(&rows, 0).map_err(msg)?
        };
        let out = self.adapter.forward(&x, &lengths).map_err(msg)?;
        let items = (0..feats.len())
            .map(|b| out.item(b).map_err(msg))
            .collect::<Result<Vec<_>>>()?;
        self.adapter
            .wrap_speech_items(&items)
            .map_err(msg)?
            .into_iter()
            .map(|w| w.unsqueeze(0).map_err(msg))
            .collect()
    }

    /// The prompt of `instruction` as the preset's template lays it out (REFERENCE §6), as input
    /// embeddings `[1, P, hidden]` with `speech` (`[1, n, hidden]`, from
    /// [`OsumModel::speech_embeddings`] or [`OsumModel::speech_from_features`]) spliced in at the
    /// template's speech slot, or no speech slot at all when `None` (text-only instructions,
    /// training stage II). Also returns the prompt's text ids in order (for generation's
    /// repetition penalty). `ask` and the trainer both build prompts here, so training and
    /// inference see the same layout.
    pub fn prompt_embeddings(
        &self,
        instruction: &str,
        speech: Option<&Tensor>,
    ) -> Result<(Tensor, Vec<u32>)> {
        let segs = self.preset.template.build(
            self.preset.system.as_deref(),
            instruction,
            speech.is_some(),
            false,
        );
        let ids = self.text.encode_segments(&segs).map_err(msg)?;
        let mut parts = Vec::new();
        for (seg, ids) in segs.iter().zip(&ids) {
            match (seg, speech) {
                (Segment::Speech, Some(s)) => parts.push(s.clone()),
                (Segment::Speech, None) => {
                    return Err("the template placed speech in a text-only prompt".into())
                }
                (Segment::Text(_), _) if ids.is_empty() => {}
                (Segment::Text(_), _) => {
                    parts.push(no_grad(|| self.text.llm.embed_ids(ids)).map_err(msg)?)
                }
            }
        }
        let embeds = Tensor::cat(&parts, 1).map_err(msg)?;
        Ok((embeds, ids.concat()))
    }

    /// The token that ends an answer: the template's end-of-turn token (`<|im_end|>` for
    /// ChatML), else the LLM's first EOS id. Training appends it to every target so the model
    /// learns to stop where generation stops ([`TextModel::stop_ids`]).
    pub fn answer_end_id(&self) -> Result<u32> {
        let turn = self
            .text
            .template
            .end_of_turn()
            .and_then(|t| self.text.tokenizer.token_id(t));
        turn.or_else(|| self.text.llm.config.eos_ids.first().copied())
            .ok_or_else(|| {
                format!(
                    "preset {}: neither an end-of-turn token nor an EOS id to end answers with",
                    self.preset.name
                )
            })
    }

    /// Answer `instruction` about `samples`, streaming text pieces to `on_text`.
    pub fn ask(
        &self,
        samples: &[f32],
        instruction: &str,
        cfg: &GenerationConfig,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Answer> {
        let speech = self.speech_embeddings(samples)?;
        self.answer(instruction, Some(&speech), cfg, on_text)
    }

    /// Answer a text-only `instruction` (no speech slot in the prompt), as training lays out
    /// text QA and intent items: what the checkpoint's LLM, LoRA included, says to plain text.
    pub fn ask_text(
        &self,
        instruction: &str,
        cfg: &GenerationConfig,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Answer> {
        self.answer(instruction, None, cfg, on_text)
    }

    /// Generate from the prompt of `instruction` with `speech` (or none) spliced in.
    fn answer(
        &self,
        instruction: &str,
        speech: Option<&Tensor>,
        cfg: &GenerationConfig,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Answer> {
        let (embeds, context) = self.prompt_embeddings(instruction, speech)?;
        let (gen, text) = self
            .text
            .generate_text(&context, Some(&embeds), cfg, on_text)
            .map_err(msg)?;
        Ok(Answer {
            parsed: parse(&text),
            text,
            tokens: gen.tokens,
            speech_positions: speech.map_or(0, |s| s.shape()[1]),
        })
    }
}

/// Keys of the released checkpoints that the model does not use, with why (REFERENCE §7 and the
/// released `LLMASR_Model`): `ln_speech`, a LayerNorm it builds but never applies;
/// `speaker_head`, the speech-token output head, used only when training speech output; and
/// each layer's `rotary_emb.inv_freq`, which the RoPE tables recompute from θ.
pub const UNUSED_RELEASED_KEYS: &[&str] = &["ln_speech.", "speaker_head.", "rotary_emb.inv_freq"];

fn is_unused_released_key(raw: &str) -> bool {
    let mut key = raw;
    while let Some(rest) = key.strip_prefix("module.") {
        key = rest;
    }
    UNUSED_RELEASED_KEYS.iter().any(|k| {
        if k.ends_with('.') {
            key.starts_with(k)
        } else {
            key.ends_with(k)
        }
    })
}

/// The checkpoint's LoRA against the preset: every adapted module is one of `spec.targets`,
/// A is `[rank, in]` and B is `[out, rank]` (the in/out sides are checked against the layer
/// when attached).
fn check_lora(ck: &PtCheckpoint, map: &OsumMapping, spec: &LoraSpec) -> Result<()> {
    for (component, (module, raw)) in [Component::LoraA, Component::LoraB]
        .into_iter()
        .flat_map(|c| map.component(c).map(move |e| (c, e)))
    {
        let target = module.rsplit('.').next().unwrap_or(module);
        if !spec.targets.iter().any(|t| t == target) {
            return Err(format!(
                "{}: tensor {raw} adapts {target}, which is not among the preset's LoRA \
                 targets {:?}",
                ck.path().display(),
                spec.targets
            ));
        }
        let shape = ck.shape(raw).map_err(msg)?;
        let (dim, side) = match component {
            Component::LoraA => (0, "[rank, in]"),
            _ => (1, "[out, rank]"),
        };
        if shape.len() != 2 || shape[dim] != spec.rank {
            return Err(format!(
                "{}: tensor {raw} has shape {shape:?}, expected {side} with rank {} (the preset's \
                 LoRA rank)",
                ck.path().display(),
                spec.rank
            ));
        }
    }
    Ok(())
}

/// Preset target names → LoRA targets.
pub fn lora_targets(names: &[String]) -> Result<Vec<LoraTarget>> {
    names
        .iter()
        .map(|n| {
            LoraTarget::from_module(n).ok_or_else(|| {
                let known: Vec<_> = LoraTarget::ALL.iter().map(|t| t.module()).collect();
                format!("unknown LoRA target `{n}` (known: {})", known.join(", "))
            })
        })
        .collect()
}

/// The preset's encoder taps as layer indices, checked against the encoder's layers and the
/// adapter's `enc_dim` (the taps' count × the encoder's width).
fn adapter_taps(preset: &Preset, whisper: &Whisper, acfg: &AdapterConfig) -> Result<Vec<usize>> {
    let names = preset.encoder_taps();
    let taps = names
        .iter()
        .map(|n| whisper.encoder.layer_index(n))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("preset {}: encoder_taps: {e}", preset.name))?;
    let width = whisper.encoder.config().d_model;
    if taps.is_empty() || acfg.enc_dim != taps.len() * width {
        return Err(format!(
            "preset {}: adapter.enc_dim is {} but the encoder taps [{}] give {} × {width} = {} \
             features per frame",
            preset.name,
            acfg.enc_dim,
            names.join(", "),
            taps.len(),
            taps.len() * width
        ));
    }
    Ok(taps)
}
