//! Reader for GGUF v3 files, llama.cpp's format (REFERENCE.md §8).
//!
//! Layout, all little-endian: `"GGUF"`, `u32 version` (3), `u64 n_tensors`, `u64 n_kv`, then `n_kv`
//! metadata entries `(str key, u32 value_type, value)`, then `n_tensors` tensor infos
//! `(str name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset)`, padding up to
//! `general.alignment` (default 32), and the data section; each tensor's offset counts from the
//! start of the data section. A `str` is `u64 len` + UTF-8 bytes; an array value is
//! `u32 element_type, u64 count` + elements (arrays may nest).
//!
//! GGUF lists dimensions fastest-varying first (`ne[0]` is the number of columns); the engine's
//! shapes are row-major, so a tensor with `ne = [576, 49152]` loads as `[49152, 576]`.
//!
//! The file is memory-mapped and checked once when opened: every count and length is compared
//! with the bytes left before anything is allocated from it (and lists still grow only as entries
//! are actually read), arrays may nest only [`MAX_DEPTH`] deep, and every tensor's byte range must
//! lie inside the data section, be aligned, and not overlap another. Quantized tensors are
//! dequantized to f32 when loaded ([`quant`]); F32, F16 and BF16 keep their type.
//!
//! - `value`: the metadata value types ([`GgufValue`], [`GgufValueType`], [`GgufArray`]).
//! - `parse`: reading and checking the header, metadata and tensor infos.
//! - [`quant`]: the GGML block types and their dequantization.
//! - [`llama`]: GGUF → HF Llama names, undoing llama.cpp's q/k row permutation, the `llama.*`
//!   hyper-parameters, and [`GgufLlama`], a [`TensorSource`] with HF names.

pub mod llama;
mod parse;
pub mod quant;
mod value;

pub use llama::{GgufLlama, LlamaParams};
pub use quant::GgmlType;
pub use value::{GgufArray, GgufValue, GgufValueType};

use super::stored::{map_file, tensor_from_map, to_host_buffer, StoredDType};
use super::{TensorSource, WeightsError};
use crate::engine::{Device, HostBuffer, Tensor};
use memmap2::Mmap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The only GGUF version this reader accepts.
pub const GGUF_VERSION: u32 = 3;
/// The data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: usize = 32;
/// How deep arrays may nest (an array of arrays is depth 2). Real files use 1; the limit keeps a
/// hostile file from exhausting the stack through recursion.
pub const MAX_DEPTH: usize = 8;
/// GGML tensors have at most this many dimensions.
pub const MAX_DIMS: usize = 4;

/// Where one tensor's bytes are and what they hold.
#[derive(Debug, Clone)]
pub struct GgufTensorInfo {
    /// The tensor's name.
    pub name: String,
    /// The GGML type of its bytes.
    pub ggml_type: GgmlType,
    /// The dimensions as the file lists them, fastest-varying first (`ne[0]` = columns).
    pub ne: Vec<u64>,
    /// The engine (row-major) shape: `ne` reversed.
    pub shape: Vec<usize>,
    /// Absolute byte offset of the data in the file.
    pub offset: usize,
    /// Byte length of the data.
    pub size: usize,
}

impl GgufTensorInfo {
    /// The number of values.
    pub fn elem_count(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A memory-mapped, checked GGUF v3 file.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    map: Arc<Mmap>,
    metadata: Vec<(String, GgufValue)>,
    meta_index: HashMap<String, usize>,
    tensors: Vec<GgufTensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: usize,
    data_start: usize,
}

impl GgufFile {
    /// Map and check `path`. Fails on any structural problem, naming the byte offset.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, WeightsError> {
        let path = path.as_ref().to_path_buf();
        let map = Arc::new(map_file(&path)?);
        let parsed = parse::parse(&path, &map)?;
        Ok(GgufFile {
            path,
            map,
            metadata: parsed.metadata,
            meta_index: parsed.meta_index,
            tensors: parsed.tensors,
            tensor_index: parsed.tensor_index,
            alignment: parsed.alignment,
            data_start: parsed.data_start,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The data alignment in bytes (`general.alignment`, else 32).
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// The absolute offset of the data section.
    pub fn data_start(&self) -> usize {
        self.data_start
    }

    // ---- metadata ----

    /// Every metadata entry, in file order.
    pub fn metadata(&self) -> &[(String, GgufValue)] {
        &self.metadata
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.meta_index.get(key).map(|&i| &self.metadata[i].1)
    }

    fn meta_err(&self, key: &str, msg: String) -> WeightsError {
        WeightsError::Metadata {
            path: self.path.clone(),
            key: key.to_string(),
            msg,
        }
    }

    /// `key` converted by `conv`: `Ok(None)` when absent, an error naming the expected and found
    /// type when present but not convertible.
    fn typed<'a, T>(
        &'a self,
        key: &str,
        expected: &str,
        conv: impl FnOnce(&'a GgufValue) -> Option<T>,
    ) -> Result<Option<T>, WeightsError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => conv(v).map(Some).ok_or_else(|| {
                self.meta_err(key, format!("expected {expected}, found {}", v.describe()))
            }),
        }
    }

    fn required<T>(&self, key: &str, v: Option<T>) -> Result<T, WeightsError> {
        v.ok_or_else(|| self.meta_err(key, "absent".into()))
    }

    /// An integer that fits in u32 (any integer type), absent → `Ok(None)`.
    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>, WeightsError> {
        self.typed(key, "an integer that fits in u32", GgufValue::as_u32)
    }

    /// An integer that fits in u32 (any integer type).
    pub fn get_u32(&self, key: &str) -> Result<u32, WeightsError> {
        let v = self.opt_u32(key)?;
        self.required(key, v)
    }

    /// An integer that fits in u64 (any integer type), absent → `Ok(None)`.
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, WeightsError> {
        self.typed(key, "an integer that fits in u64", GgufValue::as_u64)
    }

    /// An integer that fits in u64 (any integer type).
    pub fn get_u64(&self, key: &str) -> Result<u64, WeightsError> {
        let v = self.opt_u64(key)?;
        self.required(key, v)
    }

    /// An f32 (or f64, rounded), absent → `Ok(None)`.
    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>, WeightsError> {
        self.typed(key, "f32", GgufValue::as_f32)
    }

    /// An f32 (or f64, rounded).
    pub fn get_f32(&self, key: &str) -> Result<f32, WeightsError> {
        let v = self.opt_f32(key)?;
        self.required(key, v)
    }

    /// A bool, absent → `Ok(None)`.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, WeightsError> {
        self.typed(key, "bool", GgufValue::as_bool)
    }

    /// A string, absent → `Ok(None)`.
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, WeightsError> {
        self.typed(key, "string", GgufValue::as_str)
    }

    /// A string.
    pub fn get_str(&self, key: &str) -> Result<&str, WeightsError> {
        let v = self.opt_str(key)?;
        self.required(key, v)
    }

    /// An array (of any element type).
    pub fn get_array(&self, key: &str) -> Result<&GgufArray, WeightsError> {
        let v = self.typed(key, "array", GgufValue::as_array)?;
        self.required(key, v)
    }

    /// An array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>, WeightsError> {
        let a = self.get_array(key)?;
        a.items
            .iter()
            .map(GgufValue::as_str)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                self.meta_err(
                    key,
                    format!("expected an array of strings, found {}", a.elem.name()),
                )
            })
    }

    /// An array of integers, each converted to i64.
    pub fn get_int_array(&self, key: &str) -> Result<Vec<i64>, WeightsError> {
        let a = self.get_array(key)?;
        a.items
            .iter()
            .map(GgufValue::as_i64)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                self.meta_err(
                    key,
                    format!("expected an array of integers, found {}", a.elem.name()),
                )
            })
    }

    // ---- tensors ----

    /// Every tensor, in file order.
    pub fn tensor_infos(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    /// The tensor `name`.
    pub fn info(&self, name: &str) -> Result<&GgufTensorInfo, WeightsError> {
        self.tensor_index
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| WeightsError::Missing {
                path: self.path.clone(),
                name: name.to_string(),
            })
    }

    /// Every tensor name, in file order.
    pub fn names(&self) -> Vec<&str> {
        self.tensors.iter().map(|t| t.name.as_str()).collect()
    }

    /// The engine (row-major) shape of `name`.
    pub fn shape(&self, name: &str) -> Result<&[usize], WeightsError> {
        Ok(&self.info(name)?.shape)
    }

    /// The GGML type `name` is stored as.
    pub fn ggml_type(&self, name: &str) -> Result<GgmlType, WeightsError> {
        Ok(self.info(name)?.ggml_type)
    }

    /// The raw stored bytes of `name`.
    pub fn raw_bytes(&self, name: &str) -> Result<&[u8], WeightsError> {
        let t = self.info(name)?;
        Ok(&self.map[t.offset..t.offset + t.size])
    }

    /// The element type `name` loads as: F32, F16, BF16 as stored; the block types this reader
    /// dequantizes load as F32; the plain integer/f64 types are reported as such (they do not
    /// load); other block types are [`WeightsError::UnsupportedQuant`]. Use
    /// [`GgufFile::ggml_type`] for the stored type.
    pub fn dtype(&self, name: &str) -> Result<StoredDType, WeightsError> {
        let t = self.info(name)?;
        t.ggml_type
            .loads_as()
            .ok_or_else(|| self.unsupported(&t.name, t.ggml_type))
    }

    fn unsupported(&self, name: &str, ty: GgmlType) -> WeightsError {
        WeightsError::UnsupportedQuant {
            path: self.path.clone(),
            name: name.to_string(),
            ggml_type: ty.name().to_string(),
        }
    }

    /// The values of `name` on the host: F32/F16/BF16 as stored, Q8_0/Q4_0/Q4_1 dequantized to
    /// f32 (in the engine's row-major order, which is the file's order).
    pub fn host(&self, name: &str) -> Result<HostBuffer, WeightsError> {
        let t = self.info(name)?;
        let bytes = &self.map[t.offset..t.offset + t.size];
        if matches!(
            t.ggml_type,
            GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1
        ) {
            // Dequantized values are new memory beside the (already charged) map.
            let what = format!("dequantizing tensor {name:?} to f32");
            super::budget::charge(&self.path, &what, t.elem_count() as u64 * 4)?;
        }
        if let Some(values) = quant::dequantize(t.ggml_type, bytes) {
            return Ok(HostBuffer::F32(values));
        }
        let unsupported = || self.unsupported(&t.name, t.ggml_type);
        let stored = t.ggml_type.loads_as().ok_or_else(unsupported)?;
        to_host_buffer(bytes, stored).ok_or_else(|| WeightsError::Unsupported {
            path: self.path.clone(),
            name: name.to_string(),
            dtype: stored.to_string(),
        })
    }

    /// The values of `name` as f32 (F16/BF16 widened exactly; block types dequantized).
    pub fn to_f32(&self, name: &str) -> Result<Vec<f32>, WeightsError> {
        Ok(match self.host(name)? {
            HostBuffer::F32(v) => v,
            HostBuffer::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            HostBuffer::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
            other => {
                return Err(WeightsError::WrongKind {
                    path: self.path.clone(),
                    name: name.to_string(),
                    msg: format!("holds {:?} values, not floats", other.dtype()),
                })
            }
        })
    }

    /// Load `name` onto `dev` with its engine shape (see [`GgufFile::host`] for the dtype):
    /// F32/F16/BF16 borrow the map ([`tensor_from_map`]), block types are dequantized.
    pub fn tensor(&self, name: &str, dev: &Arc<dyn Device>) -> Result<Tensor, WeightsError> {
        let t = self.load_unchecked(name, dev)?;
        super::finite::checked(&self.path, name, t)
    }

    /// Load `name` without the `--check-weights` scan.
    fn load_unchecked(&self, name: &str, dev: &Arc<dyn Device>) -> Result<Tensor, WeightsError> {
        let t = self.info(name)?;
        // Only the plain float types are stored as the engine keeps them.
        let plain = match t.ggml_type {
            GgmlType::F32 => Some(StoredDType::F32),
            GgmlType::F16 => Some(StoredDType::F16),
            GgmlType::BF16 => Some(StoredDType::BF16),
            _ => None,
        };
        if let Some(stored) = plain {
            let (begin, end) = (t.offset, t.offset + t.size);
            if let Some(loaded) = tensor_from_map(&self.map, begin, end, stored, &t.shape, dev) {
                return loaded.map_err(|source| WeightsError::Engine {
                    path: self.path.clone(),
                    name: name.to_string(),
                    source,
                });
            }
        }
        let host = self.host(name)?;
        self.upload(name, host, &t.shape, dev)
    }

    /// Upload `host` as tensor `name` (errors name the file and tensor).
    pub(crate) fn upload(
        &self,
        name: &str,
        host: HostBuffer,
        shape: &[usize],
        dev: &Arc<dyn Device>,
    ) -> Result<Tensor, WeightsError> {
        Tensor::from_host(host, shape, dev).map_err(|source| WeightsError::Engine {
            path: self.path.clone(),
            name: name.to_string(),
            source,
        })
    }
}

impl TensorSource for GgufFile {
    fn names(&self) -> Vec<&str> {
        GgufFile::names(self)
    }
    fn shape(&self, name: &str) -> Result<&[usize], WeightsError> {
        GgufFile::shape(self, name)
    }
    fn dtype(&self, name: &str) -> Result<StoredDType, WeightsError> {
        GgufFile::dtype(self, name)
    }
    fn tensor(&self, name: &str, dev: &Arc<dyn Device>) -> Result<Tensor, WeightsError> {
        GgufFile::tensor(self, name, dev)
    }
}

#[cfg(test)]
#[path = "gguf_tests.rs"]
pub(crate) mod tests;
