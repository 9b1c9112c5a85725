//! Reader for CTranslate2 `model.bin` files (REFERENCE.md §8).
//!
//! Layout, all little-endian: `u32 version` (6), `str spec`, `u32 revision`, `u32 n_vars`, then per
//! variable `str name, u8 rank, u32 dims[rank], u8 dtype, u32 nbytes, data[nbytes]`, then
//! `u32 n_aliases` and `(str alias, str target)` pairs. A `str` is `u16 len` (counting a final NUL)
//! followed by `len` bytes. dtype codes: 0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16.
//!
//! The file is memory-mapped and parsed once: every length and count is checked against the bytes
//! left before it is used, and nothing is allocated from a count the file states (lists grow as
//! entries are actually read), so a corrupt or hostile file gives an error, never a huge allocation.

use super::stored::{byte_size, map_file, tensor_from_map, StoredDType};
use super::{TensorSource, WeightsError};
use crate::engine::{Device, Tensor};
use memmap2::Mmap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The binary version this reader understands (CTranslate2 ≥ 3 writes 6).
pub const CT_VERSION: u32 = 6;

/// One variable: where its bytes are in the map and what they hold.
#[derive(Debug, Clone)]
struct Var {
    name: String,
    shape: Vec<usize>,
    dtype: StoredDType,
    offset: usize,
    nbytes: usize,
}

/// A memory-mapped CTranslate2 model: variables by name, aliases resolved.
#[derive(Debug)]
pub struct CtModel {
    path: PathBuf,
    map: Arc<Mmap>,
    spec: String,
    revision: u32,
    vars: Vec<Var>,
    /// Variable and alias names → index into `vars`.
    index: HashMap<String, usize>,
    /// Alias names in file order (for [`CtModel::names`]).
    aliases: Vec<String>,
}

impl CtModel {
    /// Map and parse `path`. Fails on any structural problem, naming the byte offset.
    pub fn open(path: impl AsRef<Path>) -> Result<CtModel, WeightsError> {
        let path = path.as_ref().to_path_buf();
        let map = Arc::new(map_file(&path)?);
        let parsed = parse(&path, &map)?;
        Ok(CtModel {
            path,
            map,
            spec: parsed.spec,
            revision: parsed.revision,
            vars: parsed.vars,
            index: parsed.index,
            aliases: parsed.aliases,
        })
    }

    /// The file this model was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The model spec name the file records (e.g. `WhisperSpec`).
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// The spec revision the file records.
    pub fn revision(&self) -> u32 {
        self.revision
    }

    /// Every name [`CtModel::tensor`] accepts: variables in file order, then aliases.
    pub fn names(&self) -> Vec<&str> {
        self.vars
            .iter()
            .map(|v| v.name.as_str())
            .chain(self.aliases.iter().map(|a| a.as_str()))
            .collect()
    }

    fn var(&self, name: &str) -> Result<&Var, WeightsError> {
        self.index
            .get(name)
            .map(|&i| &self.vars[i])
            .ok_or_else(|| WeightsError::Missing {
                path: self.path.clone(),
                name: name.to_string(),
            })
    }

    /// The shape of `name` (alias or variable).
    pub fn shape(&self, name: &str) -> Result<&[usize], WeightsError> {
        Ok(&self.var(name)?.shape)
    }

    /// The stored element type of `name`.
    pub fn dtype(&self, name: &str) -> Result<StoredDType, WeightsError> {
        Ok(self.var(name)?.dtype)
    }

    /// The raw little-endian bytes of `name`, straight from the map.
    pub fn bytes(&self, name: &str) -> Result<&[u8], WeightsError> {
        let v = self.var(name)?;
        Ok(&self.map[v.offset..v.offset + v.nbytes])
    }

    /// Load `name` as an engine tensor on `dev`: f32 → F32, f16 → F16, bf16 → BF16; the integer
    /// types (quantized models) are refused with [`WeightsError::Unsupported`].
    pub fn tensor(&self, name: &str, dev: &Arc<dyn Device>) -> Result<Tensor, WeightsError> {
        let t = self.load_unchecked(name, dev)?;
        super::finite::checked(&self.path, name, t)
    }

    /// Load `name` without the `--check-weights` scan.
    fn load_unchecked(&self, name: &str, dev: &Arc<dyn Device>) -> Result<Tensor, WeightsError> {
        let v = self.var(name)?;
        let (begin, end) = (v.offset, v.offset + v.nbytes);
        let loaded =
            tensor_from_map(&self.map, begin, end, v.dtype, &v.shape, dev).ok_or_else(|| {
                WeightsError::Unsupported {
                    path: self.path.clone(),
                    name: name.to_string(),
                    dtype: v.dtype.to_string(),
                }
            })?;
        loaded.map_err(|source| WeightsError::Engine {
            path: self.path.clone(),
            name: name.to_string(),
            source,
        })
    }
}

impl CtModel {
    /// The value of an integer scalar variable: CTranslate2 stores the model's settings this way
    /// (in tiny.en e.g. `encoder/num_heads` = 6 as i16, `decoder/activation` as i8).
    pub fn int_scalar(&self, name: &str) -> Result<i64, WeightsError> {
        let v = self.var(name)?;
        let b = &self.map[v.offset..v.offset + v.nbytes];
        let value = match (v.dtype, b) {
            (StoredDType::I8, &[x]) => x as i8 as i64,
            (StoredDType::I16, &[x, y]) => i16::from_le_bytes([x, y]) as i64,
            (StoredDType::I32, &[x, y, z, w]) => i32::from_le_bytes([x, y, z, w]) as i64,
            _ => {
                return Err(WeightsError::WrongKind {
                    path: self.path.clone(),
                    name: name.to_string(),
                    msg: format!(
                        "expected one integer, found {} of shape {:?}",
                        v.dtype, v.shape
                    ),
                })
            }
        };
        Ok(value)
    }
}

impl TensorSource for CtModel {
    fn names(&self) -> Vec<&str> {
        CtModel::names(self)
    }
    fn shape(&self, name: &str) -> Result<&[usize], WeightsError> {
        CtModel::shape(self, name)
    }
    fn dtype(&self, name: &str) -> Result<StoredDType, WeightsError> {
        CtModel::dtype(self, name)
    }
    fn tensor(&self, name: &str, dev: &Arc<dyn Device>) -> Result<Tensor, WeightsError> {
        CtModel::tensor(self, name, dev)
    }
}

/// The parsed header, before it is joined with the map.
struct Parsed {
    spec: String,
    revision: u32,
    vars: Vec<Var>,
    index: HashMap<String, usize>,
    aliases: Vec<String>,
}

fn dtype_from_code(code: u8) -> Option<StoredDType> {
    Some(match code {
        0 => StoredDType::F32,
        1 => StoredDType::I8,
        2 => StoredDType::I16,
        3 => StoredDType::I32,
        4 => StoredDType::F16,
        5 => StoredDType::BF16,
        _ => return None,
    })
}

fn parse(path: &Path, data: &[u8]) -> Result<Parsed, WeightsError> {
    let mut c = Cursor { path, data, pos: 0 };
    let version = c.u32("version")?;
    if version != CT_VERSION {
        return Err(c.err_at(
            0,
            format!("binary version {version}, this reader supports only {CT_VERSION}"),
        ));
    }
    let spec = c.string("spec name")?;
    let revision = c.u32("spec revision")?;
    let n_vars = c.u32("variable count")?;
    c.check_count(n_vars, 8, "variable count")?;
    let mut vars = Vec::new();
    let mut index = HashMap::new();
    for i in 0..n_vars {
        let start = c.pos;
        let name = c.string("variable name")?;
        let rank = c.u8("rank")? as usize;
        let mut shape = Vec::with_capacity(rank); // at most 255
        for _ in 0..rank {
            shape.push(c.u32("dimension")? as usize);
        }
        let code_at = c.pos;
        let code = c.u8("dtype")?;
        let dtype = dtype_from_code(code).ok_or_else(|| {
            c.err_at(
                code_at,
                format!("variable {name:?}: unknown dtype code {code}"),
            )
        })?;
        let nbytes_at = c.pos;
        let nbytes = c.u32("byte count")? as usize;
        let needed = byte_size(&shape, dtype.size_in_bytes());
        if needed != Some(nbytes) {
            let needed = needed.map_or("more than usize".to_string(), |n| n.to_string());
            let msg = format!("variable {name:?}: {nbytes} bytes stated, shape {shape:?} of {dtype} needs {needed}");
            return Err(c.err_at(nbytes_at, msg));
        }
        let offset = c.pos;
        c.skip(
            nbytes,
            &format!("data of variable {name:?} ({i} of {n_vars})"),
        )?;
        if index.insert(name.clone(), vars.len()).is_some() {
            return Err(c.err_at(start, format!("variable {name:?} appears twice")));
        }
        vars.push(Var {
            name,
            shape,
            dtype,
            offset,
            nbytes,
        });
    }
    let n_aliases = c.u32("alias count")?;
    c.check_count(n_aliases, 4, "alias count")?;
    let mut pending = Vec::new();
    for _ in 0..n_aliases {
        let at = c.pos;
        let alias = c.string("alias name")?;
        let target = c.string("alias target")?;
        pending.push((at, alias, target));
    }
    if c.pos != data.len() {
        return Err(c.err_at(
            c.pos,
            format!("{} bytes left after the aliases", data.len() - c.pos),
        ));
    }
    // An alias may name another alias; resolve in rounds so the order in the file does not matter.
    let mut aliases = Vec::new();
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for (at, alias, target) in pending {
            match index.get(&target) {
                Some(&i) => {
                    if index.insert(alias.clone(), i).is_some() {
                        return Err(c.err_at(at, format!("alias {alias:?} reuses a taken name")));
                    }
                    aliases.push(alias);
                }
                None => rest.push((at, alias, target)),
            }
        }
        if rest.len() == before {
            let (at, alias, target) = &rest[0];
            return Err(c.err_at(
                *at,
                format!("alias {alias:?} points to {target:?}, which is no variable"),
            ));
        }
        pending = rest;
    }
    Ok(Parsed {
        spec,
        revision,
        vars,
        index,
        aliases,
    })
}

/// A bounds-checked reader over the mapped bytes.
struct Cursor<'a> {
    path: &'a Path,
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    /// An error unless `count` records of at least `min_bytes` each fit in the bytes left, so
    /// an absurd count is named as such instead of failing somewhere inside the records.
    fn check_count(&self, count: u32, min_bytes: usize, what: &str) -> Result<(), WeightsError> {
        let left = self.data.len() - self.pos;
        if count as usize > left / min_bytes {
            return Err(self.err_at(
                self.pos - 4,
                format!(
                    "{what} {count} cannot fit in the {left} bytes left (each takes at least \
                     {min_bytes})"
                ),
            ));
        }
        Ok(())
    }
}

impl<'a> Cursor<'a> {
    fn err_at(&self, offset: usize, msg: String) -> WeightsError {
        WeightsError::malformed(self.path, offset as u64, msg)
    }

    /// Take `n` bytes, or fail naming `what` if the file ends first.
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], WeightsError> {
        let data: &'a [u8] = self.data;
        let left = self.data.len() - self.pos;
        if n > left {
            return Err(self.err_at(
                self.pos,
                format!("{what}: needs {n} bytes, only {left} left in the file"),
            ));
        }
        let s = &data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn skip(&mut self, n: usize, what: &str) -> Result<(), WeightsError> {
        self.take(n, what).map(|_| ())
    }

    fn u8(&mut self, what: &str) -> Result<u8, WeightsError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, WeightsError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, WeightsError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `u16 len` then `len` bytes ending in NUL, UTF-8.
    fn string(&mut self, what: &str) -> Result<String, WeightsError> {
        let at = self.pos;
        let len = self.u16(what)? as usize;
        let bytes = self.take(len, what)?;
        match bytes.split_last() {
            Some((0, text)) => std::str::from_utf8(text)
                .map(str::to_string)
                .map_err(|_| self.err_at(at, format!("{what}: not UTF-8"))),
            _ => Err(self.err_at(at, format!("{what}: not NUL-terminated"))),
        }
    }
}

#[cfg(test)]
#[path = "ctranslate2_tests.rs"]
mod tests;
