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
        let mut at = 0;
        while at < samples.len() {
            let chunk = &samples[at..at + window_len(&samples[at..])];
            let (mel, frames) = log_mel(chunk, MelMode::Whisper);
            let mel = Tensor::from_vec(mel, &[self.model.config.n_mels, frames], &device)?;
            let tokens = self
                .model
                .greedy(&mel, &[SOT_EN, NO_TIMESTAMPS_EN], MAX_TOKENS)?;
            let text = self.tokenizer.decode(&tokens)?;
            let start = at as f32 / 16000.0;
            at += chunk.len();
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

/// Samples in the next window of `rest`: all of it when it fits in 30 s, else a cut at the
/// quietest 20 ms block of the window's last 5 s, so a word is rarely split between windows
/// (the decoder sees no timestamps to resume mid-word).
pub fn window_len(rest: &[f32]) -> usize {
    const BLOCK: usize = 320;
    if rest.len() <= WINDOW {
        return rest.len();
    }
    let energy = |b: usize| -> f32 { rest[b..b + BLOCK].iter().map(|x| x * x).sum() };
    let first = (WINDOW - 5 * 16000) / BLOCK;
    let quietest = (first..WINDOW / BLOCK)
        .min_by(|&a, &b| energy(a * BLOCK).total_cmp(&energy(b * BLOCK)))
        .unwrap_or(WINDOW / BLOCK - 1);
    // Cut in the middle of the quiet block.
    quietest * BLOCK + BLOCK / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cut_at_silence_and_cover_everything() {
        assert_eq!(window_len(&[0.1; 1000]), 1000);
        assert_eq!(window_len(&vec![0.1; WINDOW]), WINDOW);
        let mut x = vec![0.5f32; WINDOW + 5000];
        x[27 * 16000..27 * 16000 + 640].fill(0.0);
        let n = window_len(&x);
        assert!((27 * 16000..27 * 16000 + 640).contains(&n), "{n}");
        assert!(window_len(&vec![0.5; 2 * WINDOW]) <= WINDOW);
    }
}
