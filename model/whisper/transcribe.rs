//! Speech → text with a Whisper checkpoint directory: 30 s windows, each padded to 3000 log-mel
//! frames as Whisper was trained (REFERENCE §2.5), decoded greedily and joined.

use super::{Result, Suppress, Whisper, WhisperError, WhisperTokenizer, NO_TIMESTAMPS_EN, SOT_EN};
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
    /// Tokens greedy decoding skips (from `config.json`; none without one).
    pub suppress: Suppress,
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
    /// Load `dir/model.bin` (CTranslate2), `dir/tokenizer.json` and, when present, the
    /// suppressed tokens of `dir/config.json`.
    pub fn open(dir: &Path, device: &Arc<dyn Device>) -> Result<Transcriber> {
        let bin = dir.join("model.bin");
        let src = CtModel::open(&bin).map_err(|e| WhisperError::Source {
            name: bin.display().to_string(),
            msg: e.to_string(),
        })?;
        let model = Whisper::load(&src, device)?;
        let tokenizer = WhisperTokenizer::from_file(&dir.join("tokenizer.json"))?;
        let suppress = read_suppress(&dir.join("config.json"))?;
        Ok(Transcriber {
            model,
            tokenizer,
            suppress,
        })
    }

    /// Transcribe 16 kHz mono samples window by window (English-only prompt
    /// `<|startoftranscript|><|notimestamps|>`).
    pub fn transcribe(&self, samples: &[f32]) -> Result<Vec<Segment>> {
        let mut at = 0;
        let mut out = Vec::new();
        self.transcribe_stream(
            |want| {
                let n = want.min(samples.len() - at);
                at += n;
                Ok(samples[at - n..at].to_vec())
            },
            |seg| {
                out.push(seg);
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Transcribe samples pulled from `read(want)` (up to `want` more 16 kHz samples, none at
    /// the end), handing each window's [`Segment`] to `emit` as soon as it is decoded. At most
    /// one window and the sample after it are held, so memory does not grow with the length.
    pub fn transcribe_stream(
        &self,
        mut read: impl FnMut(usize) -> Result<Vec<f32>>,
        mut emit: impl FnMut(Segment) -> Result<()>,
    ) -> Result<()> {
        let device = self.model.encoder_device();
        // [`window_len`] decides where to cut from the next WINDOW + 1 samples.
        let mut buf: Vec<f32> = Vec::with_capacity(WINDOW + 1);
        let mut consumed = 0usize;
        let mut ended = false;
        loop {
            while !ended && buf.len() <= WINDOW {
                let more = read(WINDOW + 1 - buf.len())?;
                ended = more.is_empty();
                buf.extend_from_slice(&more);
            }
            if buf.is_empty() {
                return Ok(());
            }
            let n = window_len(&buf);
            let chunk = &buf[..n];
            let (mel, frames) = log_mel(chunk, MelMode::Whisper);
            let mel = Tensor::from_vec(mel, &[self.model.config.n_mels, frames], &device)?;
            let tokens = self.model.greedy(
                &mel,
                &[SOT_EN, NO_TIMESTAMPS_EN],
                MAX_TOKENS,
                &self.suppress,
            )?;
            let text = self.tokenizer.decode(&tokens)?;
            let start = consumed as f32 / 16000.0;
            consumed += n;
            emit(Segment {
                start,
                end: start + n as f32 / 16000.0,
                tokens,
                text,
            })?;
            buf.drain(..n);
        }
    }
}

/// `suppress_ids` / `suppress_ids_begin` of a CTranslate2 Whisper `config.json` (default when
/// the file is absent; an error naming the file and field when it is malformed).
pub fn read_suppress(path: &Path) -> Result<Suppress> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Suppress::default()),
        Err(e) => return Err(WhisperError::Invalid(format!("{}: {e}", path.display()))),
    };
    let bad = |what: String| WhisperError::Invalid(format!("{}: {what}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let ids = |field: &str| -> Result<Vec<u32>> {
        match v.get(field) {
            None => Ok(Vec::new()),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| bad(format!("`{field}` holds {x}, expected a token id")))
                })
                .collect(),
            Some(x) => Err(bad(format!(
                "`{field}` is {x}, expected an array of token ids"
            ))),
        }
    };
    Ok(Suppress {
        always: ids("suppress_ids")?,
        at_begin: ids("suppress_ids_begin")?,
    })
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
    fn suppress_lists_from_config() {
        let dir = crate::scratch_dir("suppress");
        let p = dir.path().join("config.json");
        assert_eq!(read_suppress(&p).unwrap(), Suppress::default());
        std::fs::write(
            &p,
            r#"{"suppress_ids": [1, 2], "suppress_ids_begin": [220, 50256]}"#,
        )
        .unwrap();
        let s = read_suppress(&p).unwrap();
        assert_eq!((s.always, s.at_begin), (vec![1, 2], vec![220, 50256]));
        std::fs::write(&p, r#"{"suppress_ids": [-1]}"#).unwrap();
        let e = read_suppress(&p).unwrap_err().to_string();
        assert!(
            e.contains("config.json") && e.contains("suppress_ids"),
            "{e}"
        );
    }

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
