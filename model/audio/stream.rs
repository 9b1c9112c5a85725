//! [`AudioStream`]: a file's audio as mono 16 kHz samples, read a block at a time, so hours of
//! audio are processed in windows within a memory bound that does not grow with the length.

use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::Path;

use super::raw::RawFrames;
use super::resample::To16k;
use super::wav::WavFrames;
use super::{check_rate, AudioError, SAMPLE_RATE};

/// Input frames decoded per block.
const BLOCK: usize = 16_384;

enum Frames {
    Wav(WavFrames),
    Raw(RawFrames),
}

/// A decoder of one audio file (see [`super::load`] for the formats) that hands out its
/// 16 kHz mono samples in order, as many as asked for at a time.
pub struct AudioStream {
    frames: Frames,
    /// Present when the file is not at 16 kHz.
    resampler: Option<To16k>,
    /// Decoded 16 kHz samples not yet handed out.
    ready: Vec<f32>,
    ended: bool,
    len_16k: u64,
}

impl AudioStream {
    /// Open `path` and check its header; the samples are read on demand.
    pub fn open(path: &Path, raw_rate: Option<u32>) -> Result<AudioStream, AudioError> {
        let io = |source| AudioError::Io {
            path: path.into(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        Self::new(path, Box::new(BufReader::new(file)), len, raw_rate)
    }

    /// A stream over the bytes of a file already in memory; `path` names it in errors and
    /// picks the format by extension.
    pub fn from_bytes(
        path: &Path,
        bytes: Vec<u8>,
        raw_rate: Option<u32>,
    ) -> Result<AudioStream, AudioError> {
        let len = bytes.len() as u64;
        Self::new(path, Box::new(Cursor::new(bytes)), len, raw_rate)
    }

    fn new(
        path: &Path,
        mut input: Box<dyn Read + Send>,
        len: u64,
        raw_rate: Option<u32>,
    ) -> Result<AudioStream, AudioError> {
        if len == 0 {
            return Err(AudioError::Empty { path: path.into() });
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let (frames, rate) = if let Some("raw" | "pcm") = ext.as_deref() {
            let raw = RawFrames::open(path, input, len)?;
            (Frames::Raw(raw), raw_rate.unwrap_or(SAMPLE_RATE))
        } else {
            // Look at the first bytes for the RIFF tag, then hand them back to the parser.
            let mut head = Vec::with_capacity(4);
            (&mut input)
                .take(4)
                .read_to_end(&mut head)
                .map_err(|source| AudioError::Io {
                    path: path.into(),
                    source,
                })?;
            if head != b"RIFF" && ext.as_deref() != Some("wav") {
                return Err(AudioError::UnknownFormat { path: path.into() });
            }
            let input: Box<dyn Read + Send> = Box::new(Cursor::new(head).chain(input));
            let wav = WavFrames::open(path, input, len)?;
            let rate = wav.rate;
            (Frames::Wav(wav), rate)
        };
        check_rate(path, rate)?;
        let total = match &frames {
            Frames::Wav(w) => w.frames(),
            Frames::Raw(r) => r.frames(),
        };
        let (resampler, len_16k) = if rate == SAMPLE_RATE {
            (None, total)
        } else {
            let r = To16k::new(path, rate, total)?;
            let n = r.remaining();
            (Some(r), n)
        };
        Ok(AudioStream {
            frames,
            resampler,
            ready: Vec::new(),
            ended: false,
            len_16k,
        })
    }

    /// Samples at 16 kHz in the whole file (from its header or length).
    pub fn len_16k(&self) -> u64 {
        self.len_16k
    }

    /// The next up to `max` samples; fewer only at the end, none after it.
    pub fn read(&mut self, max: usize) -> Result<Vec<f32>, AudioError> {
        while self.ready.len() < max && !self.ended {
            let mut block = Vec::with_capacity(BLOCK);
            let n = match &mut self.frames {
                Frames::Wav(w) => w.read_block(BLOCK, &mut block)?,
                Frames::Raw(r) => r.read_block(BLOCK, &mut block)?,
            };
            match (&mut self.resampler, n) {
                (None, 0) => self.ended = true,
                (None, _) => self.ready.extend_from_slice(&block),
                (Some(r), 0) => {
                    r.finish(&mut self.ready)?;
                    self.ended = true;
                }
                (Some(r), _) => r.push(&block, &mut self.ready)?,
            }
        }
        let n = max.min(self.ready.len());
        Ok(self.ready.drain(..n).collect())
    }

    /// All the remaining samples.
    pub fn read_to_end(mut self) -> Result<Vec<f32>, AudioError> {
        let mut all = Vec::new();
        loop {
            let block = self.read(1 << 20)?;
            if block.is_empty() {
                return Ok(all);
            }
            all.extend_from_slice(&block);
        }
    }
}
