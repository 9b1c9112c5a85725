//! The on-disk cache of frozen Whisper-encoder outputs (DESIGN "Trainer": the encoder never
//! trains, so its output for a clip is computed once and read back in later epochs and stages).
//!
//! One file per clip, named by a SHA-256 of the encoder name, the clip's canonical path, size
//! and modification time, so an edited or replaced clip gets a new entry. A file is
//! `OSUMFEA1`, `u32 frames`, `u32 dim` (little-endian), then `frames·dim` f32 values; a file whose
//! length does not match its header is refused, never trusted for an allocation size.

use crate::engine::{Device, Tensor};
use crate::train::atomic::write_atomic;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"OSUMFEA1";
const HEADER: usize = 16;

/// A folder of cached encoder outputs for one encoder.
#[derive(Debug, Clone)]
pub struct FeatureCache {
    dir: PathBuf,
    encoder: String,
    /// Entries read back from disk so far.
    pub hits: u64,
    /// Entries computed (and written) so far.
    pub misses: u64,
}

impl FeatureCache {
    /// A cache in `dir` (created when missing) for the encoder called `encoder`.
    pub fn new(dir: &Path, encoder: &str) -> Result<FeatureCache, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: cannot create the feature cache: {e}", dir.display()))?;
        Ok(FeatureCache {
            dir: dir.to_path_buf(),
            encoder: encoder.to_string(),
            hits: 0,
            misses: 0,
        })
    }

    /// The cache file for `audio` (which must exist).
    pub fn entry_path(&self, audio: &Path) -> Result<PathBuf, String> {
        let meta = std::fs::metadata(audio)
            .map_err(|e| format!("{}: cannot read the audio file: {e}", audio.display()))?;
        let canon = audio
            .canonicalize()
            .map_err(|e| format!("{}: {e}", audio.display()))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let mut h = Sha256::new();
        for part in [
            self.encoder.as_bytes(),
            canon.to_string_lossy().as_bytes(),
            &meta.len().to_le_bytes(),
            &mtime.to_le_bytes(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(self.dir.join(format!("{hex}.f32")))
    }

    /// The features of `audio` `[1, frames, dim]`: read from the cache, or computed by
    /// `compute` and stored.
    pub fn get_or_compute(
        &mut self,
        audio: &Path,
        device: &Arc<dyn Device>,
        compute: impl FnOnce() -> Result<Tensor, String>,
    ) -> Result<Tensor, String> {
        let path = self.entry_path(audio)?;
        if path.exists() {
            self.hits += 1;
            return read_entry(&path, device);
        }
        let t = compute()?;
        write_entry(&path, &t)?;
        self.misses += 1;
        Ok(t)
    }
}

fn write_entry(path: &Path, t: &Tensor) -> Result<(), String> {
    let [1, frames, dim] = t.shape() else {
        return Err(format!(
            "encoder features must be [1, frames, dim], got {:?}",
            t.shape()
        ));
    };
    let values = t.to_vec::<f32>().map_err(|e| e.to_string())?;
    let mut bytes = Vec::with_capacity(HEADER + values.len() * 4);
    bytes.extend_from_slice(MAGIC);
    for n in [*frames, *dim] {
        let n = u32::try_from(n).map_err(|_| format!("feature size {n} exceeds u32"))?;
        bytes.extend_from_slice(&n.to_le_bytes());
    }
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    write_atomic(path, &bytes)
}

fn read_entry(path: &Path, device: &Arc<dyn Device>) -> Result<Tensor, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |why: &str| {
        format!(
            "{}: not a valid feature-cache entry ({why}); delete it to recompute",
            path.display()
        )
    };
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err(bad("bad header"));
    }
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let (frames, dim) = (word(8) as usize, word(12) as usize);
    // The header must agree with the file's actual length before anything is sized by it.
    let count = frames.checked_mul(dim).filter(|&n| n > 0);
    if count.and_then(|n| n.checked_mul(4)) != Some(bytes.len() - HEADER) {
        return Err(bad("the length disagrees with the header"));
    }
    let values: Vec<f32> = bytes[HEADER..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Tensor::from_vec(values, &[1, frames, dim], device).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_a_torn_entry_is_refused() {
        let dev = crate::engine::cpu_device();
        let tmp = crate::scratch_dir("features");
        let dir = tmp.path();
        let audio = dir.join("clip.wav");
        std::fs::write(&audio, b"RIFF fake").unwrap();
        let mut cache = FeatureCache::new(&dir.join("cache"), "enc").unwrap();
        let t =
            Tensor::from_vec(vec![1.0f32, -2.0, 3.5, 0.25, 5.0, 6.0], &[1, 3, 2], &dev).unwrap();
        let a = cache
            .get_or_compute(&audio, &dev, || Ok(t.clone()))
            .unwrap();
        let b = cache
            .get_or_compute(&audio, &dev, || Err("must not recompute".into()))
            .unwrap();
        assert_eq!((cache.misses, cache.hits), (1, 1));
        assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
        assert_eq!(b.shape(), &[1, 3, 2]);
        let entry = cache.entry_path(&audio).unwrap();
        let bytes = std::fs::read(&entry).unwrap();
        std::fs::write(&entry, &bytes[..bytes.len() - 4]).unwrap();
        let e = read_entry(&entry, &dev).unwrap_err();
        assert!(e.contains("disagrees with the header"), "{e}");
        // Another encoder never sees this encoder's entries.
        let other = FeatureCache::new(&dir.join("cache"), "other").unwrap();
        assert_ne!(other.entry_path(&audio).unwrap(), entry);
    }
}
