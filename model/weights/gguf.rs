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
//! - [`quant`]: the GGML block types and their dequantization.
//! - [`llama`]: GGUF → HF Llama names, undoing llama.cpp's q/k row permutation, the `llama.*`
//!   hyper-parameters, and [`GgufLlama`], a [`TensorSource`] with HF names.

pub mod llama;
pub mod quant;

pub use llama::{GgufLlama, LlamaParams};
pub use quant::GgmlType;

use super::stored::{map_file, to_host_buffer, StoredDType};
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

/// The type tag of a metadata value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl GgufValueType {
    /// The type for the file's tag, if it is one.
    pub fn from_id(id: u32) -> Option<Self> {
        use GgufValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The fewest bytes a value of this type takes in the file: what bounds an array's count.
    fn min_bytes(self) -> usize {
        use GgufValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            // element type + count
            Array => 12,
        }
    }

    /// A lower-case name for messages.
    pub fn name(self) -> &'static str {
        use GgufValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(GgufArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// An array value: its declared element type (kept so that an empty array still has one) and
/// its items, all of that type.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufArray {
    pub elem: GgufValueType,
    pub items: Vec<GgufValue>,
}

impl GgufValue {
    /// The value's type tag.
    pub fn value_type(&self) -> GgufValueType {
        use GgufValue as V;
        use GgufValueType as T;
        match self {
            V::U8(_) => T::U8,
            V::I8(_) => T::I8,
            V::U16(_) => T::U16,
            V::I16(_) => T::I16,
            V::U32(_) => T::U32,
            V::I32(_) => T::I32,
            V::F32(_) => T::F32,
            V::Bool(_) => T::Bool,
            V::String(_) => T::String,
            V::Array(_) => T::Array,
            V::U64(_) => T::U64,
            V::I64(_) => T::I64,
            V::F64(_) => T::F64,
        }
    }

    /// Any integer value as i128 (every GGUF integer type fits), else `None`.
    fn as_i128(&self) -> Option<i128> {
        use GgufValue as V;
        Some(match *self {
            V::U8(x) => x.into(),
            V::I8(x) => x.into(),
            V::U16(x) => x.into(),
            V::I16(x) => x.into(),
            V::U32(x) => x.into(),
            V::I32(x) => x.into(),
            V::U64(x) => x.into(),
            V::I64(x) => x.into(),
            _ => return None,
        })
    }

    /// An integer value of any width that fits in u32. (Writers differ in the integer type they
    /// pick for the same key, e.g. token ids, so the value matters, not the tag.)
    pub fn as_u32(&self) -> Option<u32> {
        self.as_i128().and_then(|x| u32::try_from(x).ok())
    }

    /// An integer value of any width that fits in u64.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_i128().and_then(|x| u64::try_from(x).ok())
    }

    /// An integer value of any width that fits in i64.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_i128().and_then(|x| i64::try_from(x).ok())
    }

    /// An f32, or an f64 rounded to f32.
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            GgufValue::F32(x) => Some(x),
            GgufValue::F64(x) => Some(x as f32),
            _ => None,
        }
    }

    /// A bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            GgufValue::Bool(x) => Some(x),
            _ => None,
        }
    }

    /// A string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// An array.
    pub fn as_array(&self) -> Option<&GgufArray> {
        match self {
            GgufValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A short description for messages: the type, and the value unless it is large.
    fn describe(&self) -> String {
        match self {
            GgufValue::String(s) if s.len() <= 40 => format!("string {s:?}"),
            GgufValue::String(s) => format!("string of {} bytes", s.len()),
            GgufValue::Array(a) => format!("array of {} {}", a.items.len(), a.elem.name()),
            v => format!("{} {v:?}", v.value_type().name()),
        }
    }
}

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
    map: Mmap,
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
        let map = map_file(&path)?;
        let parsed = parse(&path, &map)?;
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

    /// Load `name` onto `dev` with its engine shape (see [`GgufFile::host`] for the dtype).
    pub fn tensor(&self, name: &str, dev: &Arc<dyn Device>) -> Result<Tensor, WeightsError> {
        let host = self.host(name)?;
        let shape = &self.info(name)?.shape;
        self.upload(name, host, shape, dev)
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

// ---- parsing ----

struct Parsed {
    metadata: Vec<(String, GgufValue)>,
    meta_index: HashMap<String, usize>,
    tensors: Vec<GgufTensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: usize,
    data_start: usize,
}

/// A position in the mapped bytes; every read checks the bytes left.
struct Cursor<'a> {
    path: &'a Path,
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn err_at(&self, at: usize, msg: String) -> WeightsError {
        WeightsError::malformed(self.path, at as u64, msg)
    }

    fn left(&self) -> usize {
        self.data.len() - self.pos
    }

    fn bytes(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8], WeightsError> {
        if n > self.left() {
            return Err(self.err_at(
                self.pos,
                format!(
                    "{}: needs {n} bytes, only {} left in the file",
                    what(),
                    self.left()
                ),
            ));
        }
        let b = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    fn array<const N: usize>(
        &mut self,
        what: &dyn Fn() -> String,
    ) -> Result<[u8; N], WeightsError> {
        Ok(self.bytes(N, what)?.try_into().expect("N bytes"))
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, WeightsError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, WeightsError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count of items of at least `min_bytes` each: refused if that many could not fit in
    /// what is left of the file, so no count the file states can size an allocation.
    fn count(
        &mut self,
        min_bytes: usize,
        what: &dyn Fn() -> String,
    ) -> Result<usize, WeightsError> {
        let at = self.pos;
        let n = self.u64(what)?;
        let room = (self.left() / min_bytes.max(1)) as u64;
        if n > room {
            return Err(self.err_at(
                at,
                format!(
                    "{}: count {n} cannot fit in the {} bytes left (each takes at least {min_bytes})",
                    what(),
                    self.left()
                ),
            ));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, WeightsError> {
        let at = self.pos;
        let len = self.count(1, &|| format!("{} (string length)", what()))?;
        let b = self.bytes(len, what)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| self.err_at(at, format!("{}: string is not UTF-8", what())))
    }

    fn value(
        &mut self,
        ty: GgufValueType,
        depth: usize,
        what: &dyn Fn() -> String,
    ) -> Result<GgufValue, WeightsError> {
        use GgufValue as V;
        use GgufValueType as T;
        Ok(match ty {
            T::U8 => V::U8(self.array::<1>(what)?[0]),
            T::I8 => V::I8(i8::from_le_bytes(self.array(what)?)),
            T::U16 => V::U16(u16::from_le_bytes(self.array(what)?)),
            T::I16 => V::I16(i16::from_le_bytes(self.array(what)?)),
            T::U32 => V::U32(self.u32(what)?),
            T::I32 => V::I32(i32::from_le_bytes(self.array(what)?)),
            T::F32 => V::F32(f32::from_le_bytes(self.array(what)?)),
            T::U64 => V::U64(self.u64(what)?),
            T::I64 => V::I64(i64::from_le_bytes(self.array(what)?)),
            T::F64 => V::F64(f64::from_le_bytes(self.array(what)?)),
            T::Bool => {
                let at = self.pos;
                match self.array::<1>(what)?[0] {
                    0 => V::Bool(false),
                    1 => V::Bool(true),
                    b => return Err(self.err_at(at, format!("{}: bool byte {b}", what()))),
                }
            }
            T::String => V::String(self.string(what)?),
            T::Array => {
                if depth >= MAX_DEPTH {
                    return Err(self.err_at(
                        self.pos,
                        format!("{}: arrays nested deeper than {MAX_DEPTH}", what()),
                    ));
                }
                let at = self.pos;
                let tag = self.u32(what)?;
                let elem = GgufValueType::from_id(tag).ok_or_else(|| {
                    self.err_at(at, format!("{}: unknown array element type {tag}", what()))
                })?;
                let n = self.count(elem.min_bytes(), &|| format!("{} (array count)", what()))?;
                // Grows as items are read (the count was bounded by the bytes left above).
                let mut items = Vec::new();
                for i in 0..n {
                    items.push(self.value(elem, depth + 1, &|| format!("{}[{i}]", what()))?);
                }
                V::Array(GgufArray { elem, items })
            }
        })
    }
}

fn parse(path: &Path, data: &[u8]) -> Result<Parsed, WeightsError> {
    let mut c = Cursor { path, data, pos: 0 };
    let magic = c.array::<4>(&|| "magic".into())?;
    if &magic != b"GGUF" {
        return Err(c.err_at(
            0,
            format!("magic is {magic:02x?}, not \"GGUF\": not a GGUF file"),
        ));
    }
    let version = c.u32(&|| "version".into())?;
    if version != GGUF_VERSION {
        let hint = if version.swap_bytes() == GGUF_VERSION {
            " (a big-endian file; only little-endian files are read)"
        } else if version < GGUF_VERSION {
            " (an older GGUF; convert it with a current llama.cpp)"
        } else {
            ""
        };
        return Err(c.err_at(
            4,
            format!("GGUF version {version}{hint}; only version {GGUF_VERSION} is supported"),
        ));
    }
    // A tensor info takes at least 24 bytes (name length, n_dims, type, offset); a metadata entry
    // at least 13 (key length, value type, one value byte).
    let n_tensors = c.count(24, &|| "tensor count".into())?;
    let n_kv = c.count(13, &|| "metadata count".into())?;

    let mut metadata = Vec::new();
    let mut meta_index = HashMap::new();
    for i in 0..n_kv {
        let at = c.pos;
        let key = c.string(&|| format!("metadata entry {i} key"))?;
        let what = |k: &str| format!("metadata {k:?}");
        let tag_at = c.pos;
        let tag = c.u32(&|| what(&key))?;
        let ty = GgufValueType::from_id(tag)
            .ok_or_else(|| c.err_at(tag_at, format!("{}: unknown value type {tag}", what(&key))))?;
        let value = c.value(ty, 0, &|| what(&key))?;
        if meta_index.insert(key.clone(), metadata.len()).is_some() {
            return Err(c.err_at(at, format!("metadata key {key:?} appears twice")));
        }
        metadata.push((key, value));
    }

    let alignment = match meta_index.get("general.alignment").map(|&i| &metadata[i].1) {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u32() {
            Some(a) if a > 0 && a.is_power_of_two() => a as usize,
            _ => {
                return Err(WeightsError::Metadata {
                    path: path.to_path_buf(),
                    key: "general.alignment".into(),
                    msg: format!("must be a power of two, found {}", v.describe()),
                })
            }
        },
    };

    struct Raw {
        at: usize,
        name: String,
        ne: Vec<u64>,
        ty: GgmlType,
        offset: u64,
    }
    let mut raw = Vec::new();
    let mut tensor_index = HashMap::new();
    for i in 0..n_tensors {
        let at = c.pos;
        let name = c.string(&|| format!("tensor info {i} name"))?;
        let what = || format!("tensor {name:?}");
        let dims_at = c.pos;
        let n_dims = c.u32(&what)? as usize;
        if n_dims > MAX_DIMS {
            return Err(c.err_at(
                dims_at,
                format!("{}: {n_dims} dimensions, at most {MAX_DIMS}", what()),
            ));
        }
        let mut ne = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            ne.push(c.u64(&what)?);
        }
        let ty_at = c.pos;
        let id = c.u32(&what)?;
        let ty = GgmlType::from_id(id)
            .ok_or_else(|| c.err_at(ty_at, format!("{}: unknown GGML type id {id}", what())))?;
        let offset = c.u64(&what)?;
        if tensor_index.insert(name.clone(), raw.len()).is_some() {
            return Err(c.err_at(at, format!("tensor name {name:?} appears twice")));
        }
        raw.push(Raw {
            at,
            name,
            ne,
            ty,
            offset,
        });
    }

    let info_end = c.pos;
    let data_start = info_end
        .checked_next_multiple_of(alignment)
        .unwrap_or(usize::MAX);
    if !raw.is_empty() && data_start > data.len() {
        return Err(c.err_at(
            info_end,
            format!(
                "the data section would start at byte {data_start} (aligned to {alignment}), past the end of the {}-byte file",
                data.len()
            ),
        ));
    }
    let data_len = data.len().saturating_sub(data_start);

    let mut tensors = Vec::with_capacity(raw.len());
    for r in raw {
        let bad = |msg: String| {
            WeightsError::malformed(path, r.at as u64, format!("tensor {:?}: {msg}", r.name))
        };
        let (blk, blk_bytes) = (r.ty.block_len(), r.ty.block_bytes());
        if let Some(&cols) = r.ne.first() {
            if cols % blk as u64 != 0 {
                return Err(bad(format!(
                    "{} rows of {cols} values are not whole blocks of {blk}",
                    r.ty.name()
                )));
            }
        }
        let shape: Option<Vec<usize>> =
            r.ne.iter()
                .rev()
                .map(|&d| usize::try_from(d).ok())
                .collect();
        let size = shape
            .as_ref()
            .and_then(|s| s.iter().try_fold(1usize, |a, &d| a.checked_mul(d)))
            .and_then(|n| (n / blk).checked_mul(blk_bytes));
        let (Some(shape), Some(size)) = (shape, size) else {
            return Err(bad(format!("dimensions {:?} overflow", r.ne)));
        };
        let offset = usize::try_from(r.offset).unwrap_or(usize::MAX);
        if offset % alignment != 0 {
            return Err(bad(format!(
                "data offset {offset} is not a multiple of the alignment {alignment}"
            )));
        }
        if offset > data_len || size > data_len - offset {
            return Err(bad(format!(
                "data [{offset}, {offset} + {size}) of {} {:?} lies outside the {data_len}-byte data section",
                r.ty.name(),
                r.ne
            )));
        }
        tensors.push(GgufTensorInfo {
            name: r.name,
            ggml_type: r.ty,
            ne: r.ne,
            shape,
            offset: data_start + offset,
            size,
        });
    }

    // No two tensors may share bytes (zero-size tensors occupy none).
    let mut order: Vec<&GgufTensorInfo> = tensors.iter().filter(|t| t.size > 0).collect();
    order.sort_by_key(|t| t.offset);
    for w in order.windows(2) {
        if w[1].offset < w[0].offset + w[0].size {
            return Err(WeightsError::malformed(
                path,
                w[1].offset as u64,
                format!("tensors {:?} and {:?} overlap", w[0].name, w[1].name),
            ));
        }
    }

    Ok(Parsed {
        metadata,
        meta_index,
        tensors,
        tensor_index,
        alignment,
        data_start,
    })
}

#[cfg(test)]
#[path = "gguf_tests.rs"]
mod tests;
