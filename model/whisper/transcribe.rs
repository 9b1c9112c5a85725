//! Speech → text with a Whisper checkpoint directory: 30 s windows, each padded to 3000 log-mel
//! frames as Whisper was trained (REFERENCE §2.5), decoded greedily and joined.

use super::{Result, Whisper, WhisperError, WhisperTokenizer, NO_TIMESTAMPS_EN, SOT_EN};
use crate::engine::{Device, Tensor};
use crate::model::audio::{log_mel, MelMode};
use crate::model::weights::CtModel;
use std::path::Path;
use std::sync::Arc;

/// Samples in one 30 s window at 16 kHz.
pub const WINDOW: usize = 480_000;
/// Upper bound on tokens per window (the decoder has 448 positions).
pub const MAX_TOKENS: usize = 224;

/// A loaded model directory (`model.bin` + `tokenizer.json`, as `osum setup` installs them).
pub struct Transcriber {
    /// The network.
    pub model: Whisper,
    /// ids → text.
    pub tokenizer: WhisperTokenizer,
}

/// One window's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Start of the window, seconds.
    pub start: f32,
    /// End of the window (or of the audio), seconds.
    pub end: f32,
    /// The greedy tokens (no prompt, no end-of-text).
    pub tokens: Vec<u32>,
    /// Their text.
    pub text: String,
}

impl Transcriber {
    /// Load `dir/model.bin` (CTranslate2) and `dir/tokenizer.json`.
    pub fn open(dir: &Path, device: &Arc<dyn Device>) -> Result<Transcriber> {
        let bin = dir.join("model.bin");
        let src = CtModel::open(&bin).map_err(|e| WhisperError::Source {
            name: bin.display().to_string(),
            msg: e.to_string(),
        })?;
        let model = Whisper::load(&src, device)?;
        let tokenizer = WhisperTokenizer::from_file(&dir.join("tokenizer.json"))?;
        Ok(Transcriber { model, tokenizer })
    }

    /// Transcribe 16 kHz mono samples window by window (English-only prompt
    /// `<|startoftranscript|><|notimestamps|>`).
    pub fn transcribe(&self, samples: &[f32]) -> Result<Vec<Segment>> {
        let device = self.model.encoder_device();
        let mut out = Vec::new();
        for (i, chunk) in samples.chunks(WINDOW).enumerate() {
            let (mel, frames) = log_mel(chunk, MelMode::Whisper);
            let mel = Tensor::from_vec(mel, &[self.model.config.n_mels, frames], &device)?;
            let tokens = self
                .model
                .greedy(&mel, &[SOT_EN, NO_TIMESTAMPS_EN], MAX_TOKENS)?;
            let text = self.tokenizer.decode(&tokens)?;
            let start = (i * WINDOW) as f32 / 16000.0;
            out.push(Segment {
                start,
                end: start + chunk.len() as f32 / 16000.0,
                tokens,
                text,
            });
        }
        Ok(out)
    }
}
