//! Audio front end (REFERENCE.md §2): files → mono f32 at 16 kHz → 80-bin log-mel.
//!
//! - [`load`], [`load_clip`] (refuses clips over a length before decoding) / [`AudioStream`]
//!   (block by block): WAV (via hound) or raw s16le → mono `f32` in [-1, 1] at [`SAMPLE_RATE`].
//! - [`log_mel`] / [`log_mel_tensor`]: the Whisper log-mel `[80, T]`, padded to 30 s
//!   ([`MelMode::Whisper`]) or not ([`MelMode::Osum`]).

mod fft;
mod mel;
mod raw;
mod resample;
mod stream;
mod wav;

use std::path::{Path, PathBuf};

pub use stream::AudioStream;

pub use mel::{
    log_mel, log_mel_tensor, mel_filterbank, MelMode, HOP, N_FFT, N_FREQ, N_MELS, WHISPER_FRAMES,
    WHISPER_SAMPLES,
};

/// The model's input rate: everything is resampled to 16 kHz mono (REFERENCE.md §1, §2.1).
pub const SAMPLE_RATE: u32 = 16_000;

/// Lowest input rate accepted; anything below is certainly a corrupt header, not audio.
pub const MIN_RATE: u32 = 1_000;
/// Highest input rate accepted (8× 96 kHz); anything above is a corrupt header.
pub const MAX_RATE: u32 = 768_000;

/// Why an audio file could not be turned into samples. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be opened or read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file has no bytes at all.
    #[error("{path}: empty file")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Neither a `.raw`/`.pcm` extension nor a RIFF/WAVE header.
    #[error(
        "{path}: unknown audio format (expected a RIFF/WAVE file, or raw s16le named .raw/.pcm)"
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The WAV header or data is malformed or uses an encoding we do not decode.
    #[error("{path}: invalid WAV: {msg}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// What was wrong, and what was expected.
        msg: String,
    },
    /// A raw PCM file that is not whole 16-bit samples.
    #[error("{path}: raw s16le data has {len} bytes, expected an even number")]
    RawOddLength {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        len: u64,
    },
    /// A sample rate outside [`MIN_RATE`]..=[`MAX_RATE`].
    #[error("{path}: sample rate {rate} Hz is outside the supported {MIN_RATE}..={MAX_RATE} Hz")]
    BadRate {
        /// The file.
        path: PathBuf,
        /// The rate the header (or the caller) gave.
        rate: u32,
    },
    /// Longer than the caller takes (see [`load_clip`]); known from the header, before decoding.
    #[error(
        "{path}: the audio is {seconds:.1} s long; at most {max_seconds} s is taken \
         (trim it, e.g. `sox in.wav out.wav trim 0 {max_seconds}`)"
    )]
    TooLong {
        /// The file.
        path: PathBuf,
        /// Its length at 16 kHz, in seconds.
        seconds: f64,
        /// The limit.
        max_seconds: f32,
    },
    /// The resampler refused the conversion.
    #[error("{path}: resampling {rate} Hz to 16 kHz failed: {msg}")]
    Resample {
        /// The file.
        path: PathBuf,
        /// The input rate.
        rate: u32,
        /// The resampler's message.
        msg: String,
    },
}

/// Loads an audio file as mono `f32` samples in [-1, 1] at 16 kHz.
///
/// Format: files named `*.raw` / `*.pcm` are headerless signed 16-bit little-endian mono at
/// `raw_rate` (default 16 kHz); everything else must be a RIFF/WAVE file (PCM 8/16/24/32-bit
/// integer or 32-bit float, any channel count; channels are averaged, §2.1). Other rates are
/// converted with a band-limited FFT resampler (rubato). `raw_rate` is ignored for WAV.
/// Long files are better read window by window through [`AudioStream`].
pub fn load(path: impl AsRef<Path>, raw_rate: Option<u32>) -> Result<Vec<f32>, AudioError> {
    AudioStream::open(path.as_ref(), raw_rate)?.read_to_end()
}

/// Like [`load`], for one clip of at most `max_seconds`: a longer file is refused from its header
/// (or, for raw PCM, its size) before any sample is decoded, so an hour-long file costs no more
/// than a short one to turn down.
pub fn load_clip(
    path: impl AsRef<Path>,
    raw_rate: Option<u32>,
    max_seconds: f32,
) -> Result<Vec<f32>, AudioError> {
    let path = path.as_ref();
    let stream = AudioStream::open(path, raw_rate)?;
    let seconds = stream.len_16k() as f64 / SAMPLE_RATE as f64;
    if seconds > max_seconds as f64 {
        return Err(AudioError::TooLong {
            path: path.into(),
            seconds,
            max_seconds,
        });
    }
    stream.read_to_end()
}

/// Decodes the bytes of a file (see [`load`]); `path` names it in errors and picks the format
/// by extension.
pub fn decode(path: &Path, bytes: &[u8], raw_rate: Option<u32>) -> Result<Vec<f32>, AudioError> {
    AudioStream::from_bytes(path, bytes.to_vec(), raw_rate)?.read_to_end()
}

fn check_rate(path: &Path, rate: u32) -> Result<(), AudioError> {
    if (MIN_RATE..=MAX_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(AudioError::BadRate {
            path: path.into(),
            rate,
        })
    }
}
