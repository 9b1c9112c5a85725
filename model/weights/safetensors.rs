//! Reader for safetensors files, single (`model.safetensors`) or sharded
//! (`model.safetensors.index.json` naming one shard file per tensor).
//!
//! One file: `u64 n` (little-endian), `n` bytes of JSON `{name: {dtype, shape, data_offsets:
//! [begin, end]}, "__metadata__": {..}}`, then the data; offsets count from the end of the JSON.
//! Every field is checked when the file is opened: the header length against the file, each
//! tensor's byte range against the data, its size against dtype × shape, and that no two ranges
//! overlap. Tensors borrow the map when loaded (zero-copy; see [`super::stored::tensor_from_map`]).

use super::stored::{byte_size, map_file, tensor_from_map, StoredDType};
use super::{TensorSource, WeightsError};
use crate::engine::{Device, Tensor};
use memmap2::Mmap;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where one tensor's bytes are (absolute offsets in its file) and what they hold.
#[derive(Debug, Clone)]
struct Entry {
    dtype: StoredDType,
    shape: Vec<usize>,
    begin: usize,
    end: usize,
}

/// One memory-mapped `.safetensors` file.
#[derive(Debug)]
pub struct SafeFile {
    path: PathBuf,
    map: Arc<Mmap>,
    entries: BTreeMap<String, Entry>,
}

impl SafeFile {
    /// Map and check `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<SafeFile, WeightsError> {
        let path = path.as_ref().to_path_buf();
        let map = Arc::new(map_file(&path)?);
        let entries = parse(&path, &map)?;
        Ok(SafeFile { path, map, entries })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn entry(&self, name: &str) -> Result<&Entry, WeightsError> {
        self.entries.get(name).ok_or_else(|| WeightsError::Missing {
            path: self.path.clone(),
            name: name.to_string(),
        })
    }

    fn tensor(&self, name: &str, dev: &Arc<dyn Device>) -> Result<Tensor, WeightsError> {
        let t = self.load_unchecked(name, dev)?;
        super::finite::checked(&self.path, name, t)
    }

    /// Load `name` without the `--check-weights` scan.
    fn load_unchecked(&self, name: &str, dev: &Arc<dyn Device>) -> Result<Tensor, WeightsError> {
        let e = self.entry(name)?;
        let loaded = tensor_from_map(&self.map, e.begin, e.end, e.dtype, &e.shape, dev)
            .ok_or_else(|| WeightsError::Unsupported {
                path: self.path.clone(),
                name: name.to_string(),
                dtype: e.dtype.to_string(),
            })?;
        loaded.map_err(|source| WeightsError::Engine {
            path: self.path.clone(),
            name: name.to_string(),
            source,
        })
    }
}

/// A safetensors model: one file, or the shards an `*.index.json` names.
#[derive(Debug)]
pub struct SafeTensors {
    /// The file opened: the safetensors file or the index (named by errors about missing tensors).
    source: PathBuf,
    files: Vec<SafeFile>,
    /// Tensor name → index into `files`.
    index: BTreeMap<String, usize>,
}

impl SafeTensors {
    /// Open `path`: a file ending in `.json` is read as a shard index, anything else as one
    /// safetensors file.
    pub fn open(path: impl AsRef<Path>) -> Result<SafeTensors, WeightsError> {
        let path = path.as_ref();
        if path.extension().is_some_and(|e| e == "json") {
            return Self::open_index(path);
        }
        let file = SafeFile::open(path)?;
        let index = file.entries.keys().map(|k| (k.clone(), 0)).collect();
        Ok(SafeTensors {
            source: path.to_path_buf(),
            files: vec![file],
            index,
        })
    }

    /// Open a shard index (`{"weight_map": {tensor: "shard file name"}}`); the shards are looked
    /// up next to it, and each must hold the tensors the index assigns to it.
    pub fn open_index(path: &Path) -> Result<SafeTensors, WeightsError> {
        let text = std::fs::read(path).map_err(|source| WeightsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |msg: String| WeightsError::malformed(path, 0, msg);
        let json: Value =
            serde_json::from_slice(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let map = json
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("no \"weight_map\" object".into()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut files: Vec<SafeFile> = Vec::new();
        let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
        let mut index = BTreeMap::new();
        for (tensor, shard) in map {
            let shard = shard
                .as_str()
                .ok_or_else(|| bad(format!("weight_map[{tensor:?}] is not a file name")))?;
            // Plain file names only: an index must not reach outside its directory.
            if shard.is_empty() || shard.contains(['/', '\\']) || shard == ".." {
                return Err(bad(format!(
                    "weight_map[{tensor:?}] = {shard:?} is not a plain file name"
                )));
            }
            let i = match by_name.get(shard) {
                Some(&i) => i,
                None => {
                    files.push(SafeFile::open(dir.join(shard))?);
                    by_name.insert(shard, files.len() - 1);
                    files.len() - 1
                }
            };
            files[i].entry(tensor)?;
            index.insert(tensor.clone(), i);
        }
        Ok(SafeTensors {
            source: path.to_path_buf(),
            files,
            index,
        })
    }

    fn file(&self, name: &str) -> Result<&SafeFile, WeightsError> {
        match self.index.get(name) {
            Some(&i) => Ok(&self.files[i]),
            None => Err(WeightsError::Missing {
                path: self.source.clone(),
                name: name.to_string(),
            }),
        }
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.index.keys().map(String::as_str).collect()
    }

    /// The shape of `name`.
    pub fn shape(&self, name: &str) -> Result<&[usize], WeightsError> {
        Ok(&self.file(name)?.entry(name)?.shape)
    }

    /// The stored element type of `name`.
    pub fn dtype(&self, name: &str) -> Result<StoredDType, WeightsError> {
        Ok(self.file(name)?.entry(name)?.dtype)
    }

    /// Load `name` onto `dev`: F32, F16 and BF16 keep their type; others are
    /// [`WeightsError::Unsupported`].
    pub fn tensor(&self, name: &str, dev: &Arc<dyn Device>) -> Result<Tensor, WeightsError> {
        self.file(name)?.tensor(name, dev)
    }
}

impl TensorSource for SafeTensors {
    fn names(&self) -> Vec<&str> {
        SafeTensors::names(self)
    }
    fn shape(&self, name: &str) -> Result<&[usize], WeightsError> {
        SafeTensors::shape(self, name)
    }
    fn dtype(&self, name: &str) -> Result<StoredDType, WeightsError> {
        SafeTensors::dtype(self, name)
    }
    fn tensor(&self, name: &str, dev: &Arc<dyn Device>) -> Result<Tensor, WeightsError> {
        SafeTensors::tensor(self, name, dev)
    }
}

fn dtype_from_name(s: &str) -> Option<StoredDType> {
    use StoredDType::*;
    Some(match s {
        "F32" => F32,
        "F16" => F16,
        "BF16" => BF16,
        "F64" => F64,
        "I8" => I8,
        "I16" => I16,
        "I32" => I32,
        "I64" => I64,
        "U8" => U8,
        "U16" => U16,
        "U32" => U32,
        "U64" => U64,
        "BOOL" => Bool,
        "F8_E4M3" => F8E4M3,
        "F8_E5M2" => F8E5M2,
        _ => return None,
    })
}

/// Check the header and every tensor entry of one file.
fn parse(path: &Path, data: &[u8]) -> Result<BTreeMap<String, Entry>, WeightsError> {
    let bad = |offset: usize, msg: String| WeightsError::malformed(path, offset as u64, msg);
    if data.len() < 8 {
        return Err(bad(
            0,
            format!(
                "file is {} bytes, shorter than the 8-byte header length",
                data.len()
            ),
        ));
    }
    let n = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    let room = (data.len() - 8) as u64;
    if n > room {
        return Err(bad(
            0,
            format!("header length {n} runs past the end of the file ({room} bytes follow it)"),
        ));
    }
    let data_start = 8 + n as usize;
    let data_len = data.len() - data_start;
    let json: Value = serde_json::from_slice(&data[8..data_start])
        .map_err(|e| bad(8, format!("header is not JSON: {e}")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| bad(8, "header is not a JSON object".into()))?;
    let mut entries = BTreeMap::new();
    for (name, v) in obj {
        if name == "__metadata__" {
            continue;
        }
        let field = |key: &str| {
            v.get(key)
                .ok_or_else(|| bad(8, format!("tensor {name:?}: no {key:?}")))
        };
        let dtype_s = field("dtype")?.as_str().unwrap_or("");
        let dtype = dtype_from_name(dtype_s)
            .ok_or_else(|| bad(8, format!("tensor {name:?}: unknown dtype {dtype_s:?}")))?;
        let nums = |key: &str| -> Result<Vec<usize>, WeightsError> {
            let arr = field(key)?
                .as_array()
                .ok_or_else(|| bad(8, format!("tensor {name:?}: {key:?} is not an array")))?;
            arr.iter()
                .map(|x| {
                    x.as_u64()
                        .and_then(|x| usize::try_from(x).ok())
                        .ok_or_else(|| {
                            bad(8, format!("tensor {name:?}: {key:?} holds {x}, not a size"))
                        })
                })
                .collect()
        };
        let shape = nums("shape")?;
        let offs = nums("data_offsets")?;
        let [begin, end] = offs[..] else {
            return Err(bad(
                8,
                format!(
                    "tensor {name:?}: data_offsets has {} numbers, not 2",
                    offs.len()
                ),
            ));
        };
        if begin > end || end > data_len {
            return Err(bad(
                data_start,
                format!(
                    "tensor {name:?}: data_offsets [{begin}, {end}] outside the {data_len} data bytes"
                ),
            ));
        }
        let needed = byte_size(&shape, dtype.size_in_bytes());
        if needed != Some(end - begin) {
            let needed = needed.map_or("more than usize".to_string(), |n| n.to_string());
            return Err(bad(
                data_start + begin,
                format!(
                    "tensor {name:?}: {} bytes in data_offsets, shape {shape:?} of {dtype} needs {needed}",
                    end - begin
                ),
            ));
        }
        entries.insert(
            name.clone(),
            Entry {
                dtype,
                shape,
                begin: data_start + begin,
                end: data_start + end,
            },
        );
    }
    // No two tensors may share bytes.
    let mut ranges: Vec<(&String, &Entry)> = entries.iter().collect();
    ranges.sort_by_key(|(_, e)| (e.begin, e.end));
    for w in ranges.windows(2) {
        let ((a, ea), (b, eb)) = (w[0], w[1]);
        if eb.begin < ea.end {
            return Err(bad(eb.begin, format!("tensors {a:?} and {b:?} overlap")));
        }
    }
    Ok(entries)
}

#[cfg(test)]
#[path = "safetensors_tests.rs"]
mod tests;
