//! The full OSUM model (REFERENCE §1): speech → log-mel (OSUM mode, no padding) → Whisper encoder
//! → adapter → `[speech BOS] speech [speech EOS]` spliced into the prompt's text embeddings →
//! the LLM (with LoRA) → an answer of task tags and text, parsed by [`crate::model::tags`].

use crate::engine::{no_grad, Device, Rng, Tensor};
use crate::model::adapter::{Adapter, AdapterConfig};
use crate::model::audio::{log_mel, MelMode};
use crate::model::llm::{peft::attach_peft_lora, GenerationConfig, LoraTarget};
use crate::model::preset::Preset;
use crate::model::prompt::Segment;
use crate::model::tags::{parse, Parsed};
use crate::model::text::TextModel;
use crate::model::weights::{CtModel, SafeTensors};
use crate::model::whisper::Whisper;
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
}

/// One answer.
pub struct Answer {
    /// The generated text.
    pub text: String,
    /// Its tags and fields.
    pub parsed: Parsed,
    /// Generated token ids.
    pub tokens: Vec<u32>,
    /// Speech positions given to the LLM (BOS/EOS included).
    pub speech_positions: usize,
}

impl OsumModel {
    /// Load the preset's encoder, adapter and LLM; adapter and LoRA from `checkpoint` (a folder
    /// with [`ADAPTER_FILE`] and optionally [`LORA_FILE`]) or, without one, untrained.
    pub fn open(
        preset: Preset,
        checkpoint: Option<&Path>,
        device: &Arc<dyn Device>,
    ) -> Result<OsumModel> {
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
        let mut text =
            TextModel::open_source(&preset.llm, &home, preset.template, device).map_err(msg)?;
        let (adapter, trained) = match checkpoint {
            Some(dir) => {
                let src = SafeTensors::open(dir.join(ADAPTER_FILE)).map_err(msg)?;
                let adapter = Adapter::load(&acfg, &src, "", device).map_err(msg)?;
                let lora = dir.join(LORA_FILE);
                if let (Some(spec), true) = (&preset.lora, lora.exists()) {
                    let src = SafeTensors::open(&lora).map_err(msg)?;
                    attach_peft_lora(&mut text.llm, &src, "", spec.alpha, false).map_err(msg)?;
                }
                (adapter, true)
            }
            None => {
                let adapter = Adapter::random(&acfg, 0, device).map_err(msg)?;
                if let Some(spec) = &preset.lora {
                    let targets = lora_targets(&spec.targets)?;
                    let layers = text.llm.config.layers;
                    let mut rng = Rng::new(0);
                    text.llm
                        .add_lora(&targets, 0..layers, spec.rank, spec.alpha, &mut rng)
                        .map_err(msg)?;
                }
                (adapter, false)
            }
        };
        Ok(OsumModel {
            preset,
            whisper,
            adapter,
            text,
            trained,
        })
    }

    /// Speech embeddings `[1, n + 2, llm_dim]` (BOS, speech, EOS) of 16 kHz mono `samples`
    /// (inference: nothing is recorded for gradients).
    pub fn speech_embeddings(&self, samples: &[f32]) -> Result<Tensor> {
        let enc = self.encoder_features(samples)?;
        no_grad(|| self.speech_from_features(&enc))
    }

    /// The frozen Whisper encoder's output `[1, T, enc_dim]` for 16 kHz mono `samples` (OSUM
    /// log-mel, no padding; at most [`MAX_SECONDS`]). The trainer caches these, since the
    /// encoder never trains (REFERENCE §7, DESIGN "Trainer").
    pub fn encoder_features(&self, samples: &[f32]) -> Result<Tensor> {
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
        let dev = self.whisper.encoder_device();
        no_grad(|| {
            let mel = Tensor::from_vec(mel, &[1, 80, frames], &dev).map_err(msg)?;
            self.whisper.encoder.forward(&mel).map_err(msg)
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
        (0..feats.len())
            .map(|b| {
                let rows = out.item(b).map_err(msg)?;
                self.adapter
                    .wrap_speech(&rows)
                    .map_err(msg)?
                    .unsqueeze(0)
                    .map_err(msg)
            })
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
        let (embeds, context) = self.prompt_embeddings(instruction, Some(&speech))?;
        let (gen, text) = self
            .text
            .generate_text(&context, Some(&embeds), cfg, on_text)
            .map_err(msg)?;
        Ok(Answer {
            parsed: parse(&text),
            text,
            tokens: gen.tokens,
            speech_positions: speech.shape()[1],
        })
    }
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
