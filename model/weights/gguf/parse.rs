//! Parsing and checking a mapped GGUF file (the layout is in the parent module's docs). Every
//! count is bounded by the bytes left before use, arrays nest at most [`MAX_DEPTH`] deep, and
//! tensor byte ranges are checked for alignment, bounds and overlap.

use super::{
    GgmlType, GgufArray, GgufTensorInfo, GgufValue, GgufValueType, DEFAULT_ALIGNMENT, GGUF_VERSION,
    MAX_DEPTH, MAX_DIMS,
};
use crate::model::weights::WeightsError;
use std::collections::HashMap;
use std::path::Path;

/// What [`parse`] found.
pub(super) struct Parsed {
    pub(super) metadata: Vec<(String, GgufValue)>,
    pub(super) meta_index: HashMap<String, usize>,
    pub(super) tensors: Vec<GgufTensorInfo>,
    pub(super) tensor_index: HashMap<String, usize>,
    pub(super) alignment: usize,
    pub(super) data_start: usize,
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

/// Parse and check the whole file.
pub(super) fn parse(path: &Path, data: &[u8]) -> Result<Parsed, WeightsError> {
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
