//! Reader for PyTorch checkpoints written by `torch.save` (≥ 1.6): the released OSUM `infer.pt`
//! and OSUM-Pangu checkpoints (REFERENCE.md §7, §8).
//!
//! The file is a zip. Under one top-level folder (`archive/` or the file's stem) it holds
//! `data.pkl`, a pickle that describes the saved object, and `data/KEY`, one raw little-endian
//! storage per key; newer writers add `byteorder`, `version`, `.format_version`,
//! `.storage_alignment` and `.data/serialization_id`. A tensor in the pickle is
//! `_rebuild_tensor_v2(storage, offset, size, stride, …)` where the storage is a persistent id
//! `('storage', torch.XStorage, KEY, location, numel)`.
//!
//! [`PtCheckpoint::open`] maps the file, reads the zip directory, runs `data.pkl` through the
//! restricted unpickler of [`super::pickle`] (which refuses every global but the few that rebuild
//! tensors: a checkpoint cannot run code here), finds the state dict, and checks every tensor's
//! view against its storage entry. Torch stores entries uncompressed, so tensor bytes are sliced
//! straight out of the map (see [`PtCheckpoint::bytes`]); compressed entries (a re-zipped file)
//! are inflated on load.
//!
//! On top of the generic reader, [`PtCheckpoint::osum_mapping`] sorts the raw OSUM keys into
//! encoder / adapter / LLM base / LoRA A / LoRA B with canonical names (see [`normalize_key`]).

use super::pickle::{Id, Pickle, PickleError, TensorRef, Value};
use super::stored::{byte_size, map_file, tensor_from_map, to_host_buffer, StoredDType};
use super::{TensorSource, WeightsError};
use crate::engine::{Device, HostBuffer, Tensor};
use memmap2::Mmap;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest `data.pkl` accepted. The pickle of a 16 GB, 2000-tensor checkpoint is a few hundred
/// KB; the cap keeps a compressed entry from inflating without bound.
const MAX_PICKLE_BYTES: u64 = 1 << 30;
/// Deepest nesting of dicts walked when looking for tensors.
const MAX_DICT_DEPTH: usize = 32;
/// Most dict entries visited while flattening (shared sub-dicts are walked once per path, so a
/// hostile pickle could otherwise make the walk exponential).
const MAX_VISITS: usize = 1 << 22;
/// Keys that commonly wrap a state dict in a training checkpoint, tried in this order.
const WRAPPER_KEYS: [&str; 6] = [
    "state_dict",
    "model_state_dict",
    "model",
    "module",
    "net",
    "params",
];

/// The bytes a [`zip::ZipArchive`] reads: the shared map, so the archive can live beside it.
#[derive(Clone)]
struct MapBytes(Arc<Mmap>);

impl AsRef<[u8]> for MapBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

type Archive = zip::ZipArchive<Cursor<MapBytes>>;

/// One zip entry: where its bytes are.
#[derive(Debug, Clone)]
struct ZipEntry {
    index: usize,
    /// Offset of the (possibly compressed) data in the file.
    data_start: u64,
    /// Uncompressed size.
    size: u64,
    /// Stored without compression: the bytes can be sliced from the map.
    stored: bool,
}

/// One tensor of the checkpoint, checked against its storage.
#[derive(Debug, Clone)]
pub struct PtTensorInfo {
    /// Element type (from the storage class).
    pub dtype: StoredDType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides in elements.
    pub stride: Vec<usize>,
    /// First element of the view in its storage.
    pub offset: usize,
    /// The storage key (`data/KEY`).
    pub storage: String,
}

impl PtTensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        // Checked against the storage at open, so it cannot overflow.
        self.shape.iter().product()
    }

    /// Row-major contiguous: the only layout [`PtCheckpoint::tensor`] loads. Dimensions of
    /// size 1 may have any stride (PyTorch leaves them arbitrary).
    pub fn is_contiguous(&self) -> bool {
        let mut want = 1usize;
        for (&d, &s) in self.shape.iter().zip(&self.stride).rev() {
            if d != 1 && s != want {
                return self.numel() == 0;
            }
            want = want.saturating_mul(d);
        }
        true
    }

    /// The identity of the data: two names with equal keys are the same tensor.
    fn view_key(&self) -> (&str, usize, &[usize], &[usize], StoredDType) {
        (
            &self.storage,
            self.offset,
            &self.shape,
            &self.stride,
            self.dtype,
        )
    }
}

/// A PyTorch checkpoint: the state dict's tensors by name.
pub struct PtCheckpoint {
    path: PathBuf,
    map: Arc<Mmap>,
    archive: Archive,
    /// `data/KEY` entries by KEY.
    storages: HashMap<String, ZipEntry>,
    tensors: BTreeMap<String, PtTensorInfo>,
    /// Name → the first name (sorted) holding the very same view, for names that alias another.
    aliases: BTreeMap<String, String>,
    /// The dict keys leading from the pickle's root to the state dict (empty: the root).
    state_dict_path: Vec<String>,
    /// Names of non-tensor entries of the state dict (ints, strings, None, …), skipped.
    skipped: Vec<String>,
}

impl std::fmt::Debug for PtCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PtCheckpoint")
            .field("path", &self.path)
            .field("tensors", &self.tensors.len())
            .field("state_dict_path", &self.state_dict_path)
            .finish_non_exhaustive()
    }
}

impl PtCheckpoint {
    /// Open `path`, finding the state dict automatically: the root dict if it holds tensors,
    /// else the first of `state_dict`, `model_state_dict`, `model`, `module`, `net`, `params`
    /// that holds tensors, else the only dict under the root that holds tensors.
    /// Nested dicts inside the state dict are flattened with `.`.
    pub fn open(path: impl AsRef<Path>) -> Result<PtCheckpoint, WeightsError> {
        Self::open_inner(path.as_ref(), None)
    }

    /// Open `path` taking the state dict at the given dict keys (e.g. `&["model"]`; `&[]` for
    /// the root).
    pub fn open_at(path: impl AsRef<Path>, keys: &[&str]) -> Result<PtCheckpoint, WeightsError> {
        Self::open_inner(path.as_ref(), Some(keys))
    }

    fn open_inner(path: &Path, keys: Option<&[&str]>) -> Result<PtCheckpoint, WeightsError> {
        let bad = |offset: u64, msg: String| WeightsError::malformed(path, offset, msg);
        let map = Arc::new(map_file(path)?);
        if map.first() == Some(&0x80) {
            return Err(bad(
                0,
                "a bare pickle (torch.save before 1.6 or _use_new_zipfile_serialization=False); \
                 re-save it with a current torch"
                    .into(),
            ));
        }
        let mut archive = zip::ZipArchive::new(Cursor::new(MapBytes(map.clone())))
            .map_err(|e| bad(0, format!("not a zip: {e}")))?;
        let entries = read_directory(path, &map, &mut archive)?;

        // Exactly one `<folder>/data.pkl`: its folder prefixes every other record.
        let pkls: Vec<&String> = entries
            .keys()
            .filter(|n| {
                n.strip_suffix("data.pkl").is_some_and(|p| {
                    p.is_empty() || (p.ends_with('/') && p.matches('/').count() == 1)
                })
            })
            .collect();
        let pkl_name = match pkls[..] {
            [one] => one.clone(),
            [] => {
                return Err(bad(
                    0,
                    "no data.pkl in the zip: not a torch.save checkpoint".into(),
                ))
            }
            _ => return Err(bad(0, format!("several data.pkl records: {pkls:?}"))),
        };
        let prefix = pkl_name[..pkl_name.len() - "data.pkl".len()].to_string();

        if let Some(e) = entries.get(&format!("{prefix}byteorder")) {
            let order = read_entry(path, &map, &archive, e, 16)?;
            if order.as_ref() != b"little" {
                return Err(bad(
                    e.data_start,
                    format!(
                        "byteorder is {:?}; only little-endian checkpoints are supported",
                        String::from_utf8_lossy(&order)
                    ),
                ));
            }
        }

        let pkl_entry = &entries[&pkl_name];
        let pkl = read_entry(path, &map, &archive, pkl_entry, MAX_PICKLE_BYTES)?;
        let pickle = Pickle::parse(&pkl).map_err(|e| match e {
            PickleError::Forbidden { offset, global } => WeightsError::ForbiddenGlobal {
                path: path.to_path_buf(),
                entry: pkl_name.clone(),
                offset: offset as u64,
                global,
            },
            PickleError::Malformed { offset, msg } => bad(
                // The file offset where the entry is stored as is; else the entry's start.
                pkl_entry.data_start + if pkl_entry.stored { offset as u64 } else { 0 },
                format!("{pkl_name} at pickle byte {offset}: {msg}"),
            ),
        })?;

        let storages: HashMap<String, ZipEntry> = entries
            .iter()
            .filter_map(|(n, e)| {
                let key = n.strip_prefix(&prefix)?.strip_prefix("data/")?;
                Some((key.to_string(), e.clone()))
            })
            .collect();

        let (state_dict_path, sd) = find_state_dict(path, &pickle, keys)?;
        let mut flat = Vec::new();
        let mut skipped = Vec::new();
        let mut visits = 0;
        flatten(
            path,
            &pickle,
            sd,
            String::new(),
            0,
            &mut visits,
            &mut flat,
            &mut skipped,
        )?;

        let mut tensors = BTreeMap::new();
        for (name, t) in flat {
            let info = check_tensor(path, &name, t, &storages)?;
            if tensors.insert(name.clone(), info).is_some() {
                return Err(bad(
                    pkl_entry.data_start,
                    format!("tensor name {name:?} occurs twice after flattening nested dicts"),
                ));
            }
        }
        // Storages shared with different element types or sizes would be read two ways.
        let mut seen: HashMap<&str, (StoredDType, &str)> = HashMap::new();
        for (name, t) in &tensors {
            if let Some(&(dt, other)) = seen.get(t.storage.as_str()) {
                if dt != t.dtype {
                    return Err(bad(
                        storages[&t.storage].data_start,
                        format!(
                            "storage {:?} is {dt} for {other:?} but {} for {name:?}",
                            t.storage, t.dtype
                        ),
                    ));
                }
            } else {
                seen.insert(&t.storage, (t.dtype, name));
            }
        }

        let mut first: HashMap<_, &str> = HashMap::new();
        let mut aliases = BTreeMap::new();
        for (name, t) in &tensors {
            match first.get(&t.view_key()) {
                Some(&orig) => {
                    aliases.insert(name.clone(), orig.to_string());
                }
                None => {
                    first.insert(t.view_key(), name);
                }
            }
        }
        drop(first);

        Ok(PtCheckpoint {
            path: path.to_path_buf(),
            map,
            archive,
            storages,
            tensors,
            aliases,
            state_dict_path,
            skipped,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The dict keys from the pickle's root to the state dict that was read (empty: the root).
    pub fn state_dict_path(&self) -> &[String] {
        &self.state_dict_path
    }

    /// Names of state-dict entries that are not tensors (skipped).
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Every tensor name, sorted (aliases included).
    pub fn names(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }

    /// What the checkpoint says about `name`.
    pub fn info(&self, name: &str) -> Result<&PtTensorInfo, WeightsError> {
        self.tensors.get(name).ok_or_else(|| WeightsError::Missing {
            path: self.path.clone(),
            name: name.to_string(),
        })
    }

    /// The shape of `name`.
    pub fn shape(&self, name: &str) -> Result<&[usize], WeightsError> {
        Ok(&self.info(name)?.shape)
    }

    /// The stored element type of `name`.
    pub fn dtype(&self, name: &str) -> Result<StoredDType, WeightsError> {
        Ok(self.info(name)?.dtype)
    }

    /// If `name` is the same view of the same storage as an earlier (sorted) name, that name.
    /// Loaders use it to load shared data once.
    pub fn alias_of(&self, name: &str) -> Option<&str> {
        self.aliases.get(name).map(String::as_str)
    }

    /// The raw little-endian bytes of a contiguous tensor: borrowed from the map when the
    /// entry is stored (always, for `torch.save`), inflated otherwise. The slice starts at the
    /// tensor's first element; torch ≥ 2.1 aligns entries to 64 bytes, so it is aligned to the
    /// element size unless the view's offset is odd.
    pub fn bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, WeightsError> {
        let t = self.info(name)?;
        if !t.is_contiguous() {
            return Err(WeightsError::WrongKind {
                path: self.path.clone(),
                name: name.to_string(),
                msg: format!(
                    "not contiguous (shape {:?}, stride {:?}); only row-major tensors load",
                    t.shape, t.stride
                ),
            });
        }
        let es = t.dtype.size_in_bytes();
        // Both bounds were checked against the entry size at open.
        let begin = t.offset * es;
        let end = begin + t.numel() * es;
        let e = &self.storages[&t.storage];
        let all = read_entry(&self.path, &self.map, &self.archive, e, e.size)?;
        Ok(match all {
            Cow::Borrowed(b) => Cow::Borrowed(&b[begin..end]),
            Cow::Owned(mut v) => {
                v.truncate(end);
                v.drain(..begin);
                Cow::Owned(v)
            }
        })
    }

    /// The values of an integer tensor (i64, i32, i16, i8, u8, bool), widened to i64.
    pub fn int_values(&self, name: &str) -> Result<Vec<i64>, WeightsError> {
        let t = self.info(name)?;
        let b = self.bytes(name)?;
        let v = match t.dtype {
            StoredDType::I64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
            StoredDType::I32 => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64)
                .collect(),
            StoredDType::I16 => b
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as i64)
                .collect(),
            StoredDType::I8 => b.iter().map(|&x| x as i8 as i64).collect(),
            StoredDType::U8 | StoredDType::Bool => b.iter().map(|&x| x as i64).collect(),
            other => {
                return Err(WeightsError::WrongKind {
                    path: self.path.clone(),
                    name: name.to_string(),
                    msg: format!("is {other}, not an integer tensor"),
                })
            }
        };
        Ok(v)
    }

    /// Load `name` onto `dev`: f32, f16, bf16 keep their type, i64 loads as i64; other types
    /// are [`WeightsError::Unsupported`], non-contiguous views [`WeightsError::WrongKind`].
    /// Float tensors of stored (uncompressed) entries borrow the map ([`tensor_from_map`]);
    /// compressed entries are inflated into owned memory.
    pub fn tensor(&self, name: &str, dev: &Arc<dyn Device>) -> Result<Tensor, WeightsError> {
        let t = self.load_unchecked(name, dev)?;
        super::finite::checked(&self.path, name, t)
    }

    /// Load `name` without the `--check-weights` scan.
    fn load_unchecked(&self, name: &str, dev: &Arc<dyn Device>) -> Result<Tensor, WeightsError> {
        let t = self.info(name)?;
        let e = &self.storages[&t.storage];
        if e.stored && t.is_contiguous() {
            let es = t.dtype.size_in_bytes();
            // Both bounds were checked against the entry size at open.
            let begin = e.data_start as usize + t.offset * es;
            let end = begin + t.numel() * es;
            if let Some(loaded) = tensor_from_map(&self.map, begin, end, t.dtype, &t.shape, dev) {
                return loaded.map_err(|source| WeightsError::Engine {
                    path: self.path.clone(),
                    name: name.to_string(),
                    source,
                });
            }
        }
        let bytes = self.bytes(name)?;
        let host = match t.dtype {
            StoredDType::I64 => Some(HostBuffer::I64(
                bytes
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
            )),
            dt => to_host_buffer(&bytes, dt),
        };
        let host = host.ok_or_else(|| WeightsError::Unsupported {
            path: self.path.clone(),
            name: name.to_string(),
            dtype: t.dtype.to_string(),
        })?;
        Tensor::from_host(host, &t.shape, dev).map_err(|source| WeightsError::Engine {
            path: self.path.clone(),
            name: name.to_string(),
            source,
        })
    }

    /// Load several tensors, reading data shared by aliases once (the returned tensors share
    /// one device buffer). Results are in the order of `names`.
    pub fn tensors(
        &self,
        names: &[&str],
        dev: &Arc<dyn Device>,
    ) -> Result<Vec<Tensor>, WeightsError> {
        let mut loaded: HashMap<&str, Tensor> = HashMap::new();
        let mut out = Vec::with_capacity(names.len());
        for &name in names {
            self.info(name)?;
            let root = self.alias_of(name).unwrap_or(name);
            let t = match loaded.get(root) {
                Some(t) => t.clone(),
                None => {
                    let t = self.tensor(root, dev)?;
                    loaded.insert(root, t.clone());
                    t
                }
            };
            out.push(t);
        }
        Ok(out)
    }

    /// The OSUM view of the checkpoint with the default [`KeyLayout`]: see
    /// [`PtCheckpoint::osum_mapping_with`].
    pub fn osum_mapping(&self) -> Result<OsumMapping, WeightsError> {
        self.osum_mapping_with(&KeyLayout::default())
    }

    /// Sort every tensor into a [`Component`] with a canonical name ([`normalize_key`]).
    /// Aliases that normalize to the same entry are kept once (the first name). Two different
    /// tensors that normalize to the same entry — e.g. both `q_proj.weight` and
    /// `q_proj.base_layer.weight` — are an error naming both. Entries of
    /// [`Component::Ignored`] are dropped.
    pub fn osum_mapping_with(&self, layout: &KeyLayout) -> Result<OsumMapping, WeightsError> {
        let mut entries: BTreeMap<(Component, String), String> = BTreeMap::new();
        let mut lora_adapters: Vec<String> = Vec::new();
        for raw in self.tensors.keys() {
            let k = normalize_key(raw, layout);
            if k.component == Component::Ignored {
                continue;
            }
            if let Some(a) = k.adapter {
                if !lora_adapters.contains(&a) {
                    lora_adapters.push(a);
                }
            }
            match entries.get(&(k.component, k.name.clone())) {
                None => {
                    entries.insert((k.component, k.name), raw.clone());
                }
                Some(prev) => {
                    let same =
                        self.alias_of(raw).unwrap_or(raw) == self.alias_of(prev).unwrap_or(prev);
                    if !same {
                        return Err(WeightsError::malformed(
                            &self.path,
                            0,
                            format!(
                                "{prev:?} and {raw:?} both map to {:?} {:?} but hold different data",
                                k.component, k.name
                            ),
                        ));
                    }
                }
            }
        }
        Ok(OsumMapping {
            entries,
            lora_adapters,
        })
    }
}

impl TensorSource for PtCheckpoint {
    fn names(&self) -> Vec<&str> {
        PtCheckpoint::names(self)
    }
    fn shape(&self, name: &str) -> Result<&[usize], WeightsError> {
        PtCheckpoint::shape(self, name)
    }
    fn dtype(&self, name: &str) -> Result<StoredDType, WeightsError> {
        PtCheckpoint::dtype(self, name)
    }
    fn tensor(&self, name: &str, dev: &Arc<dyn Device>) -> Result<Tensor, WeightsError> {
        PtCheckpoint::tensor(self, name, dev)
    }
}

// ---------------------------------------------------------------------------------------------
// The zip container.

/// Every file entry of the archive by name, with its data range checked against the file.
fn read_directory(
    path: &Path,
    map: &Mmap,
    archive: &mut Archive,
) -> Result<HashMap<String, ZipEntry>, WeightsError> {
    let bad = |offset: u64, msg: String| WeightsError::malformed(path, offset, msg);
    let mut out = HashMap::new();
    for index in 0..archive.len() {
        let f = archive
            .by_index_raw(index)
            .map_err(|e| bad(0, format!("zip entry {index}: {e}")))?;
        if f.is_dir() {
            continue;
        }
        let name = f.name().to_string();
        let data_start = f.data_start();
        let stored = f.compression() == zip::CompressionMethod::Stored;
        if f.encrypted() {
            return Err(bad(
                f.header_start(),
                format!("zip entry {name:?} is encrypted"),
            ));
        }
        if stored && f.compressed_size() != f.size() {
            return Err(bad(
                f.header_start(),
                format!(
                    "zip entry {name:?} is stored but its sizes differ ({} vs {})",
                    f.compressed_size(),
                    f.size()
                ),
            ));
        }
        let end = data_start.checked_add(f.compressed_size());
        if end.is_none_or(|e| e > map.len() as u64) {
            return Err(bad(
                data_start,
                format!(
                    "zip entry {name:?}: {} bytes at {data_start} run past the end of the {}-byte file (truncated?)",
                    f.compressed_size(),
                    map.len()
                ),
            ));
        }
        let entry = ZipEntry {
            index,
            data_start,
            size: f.size(),
            stored,
        };
        if out.insert(name.clone(), entry).is_some() {
            return Err(bad(data_start, format!("zip entry {name:?} occurs twice")));
        }
    }
    Ok(out)
}

/// The uncompressed bytes of `e`, refusing entries larger than `limit`.
fn read_entry<'m>(
    path: &Path,
    map: &'m Mmap,
    archive: &Archive,
    e: &ZipEntry,
    limit: u64,
) -> Result<Cow<'m, [u8]>, WeightsError> {
    let bad = |msg: String| WeightsError::malformed(path, e.data_start, msg);
    if e.size > limit {
        return Err(bad(format!(
            "zip entry of {} bytes, more than the {limit} expected",
            e.size
        )));
    }
    if e.stored {
        // In range: checked by `read_directory`.
        let start = e.data_start as usize;
        return Ok(Cow::Borrowed(&map[start..start + e.size as usize]));
    }
    let mut archive = archive.clone();
    let f = archive
        .by_index(e.index)
        .map_err(|err| bad(format!("cannot inflate zip entry: {err}")))?;
    // Read one byte past the stated size to catch an entry that inflates to more.
    let mut out = Vec::new();
    f.take(e.size + 1)
        .read_to_end(&mut out)
        .map_err(|err| bad(format!("cannot inflate zip entry: {err}")))?;
    if out.len() as u64 != e.size {
        return Err(bad(format!(
            "zip entry inflates to {} bytes, its header says {}",
            out.len(),
            e.size
        )));
    }
    Ok(Cow::Owned(out))
}

// ---------------------------------------------------------------------------------------------
// From the pickle to named tensors.

/// Does dict `id` hold a tensor directly?
fn holds_tensors(p: &Pickle, id: Id) -> bool {
    p.dict_entries(id)
        .is_some_and(|e| e.iter().any(|&(_, v)| matches!(p.get(v), Value::Tensor(_))))
}

fn key_text(p: &Pickle, k: Id) -> Option<String> {
    match p.get(k) {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// The state dict: at `keys` if given, else found as [`PtCheckpoint::open`] describes.
fn find_state_dict(
    path: &Path,
    p: &Pickle,
    keys: Option<&[&str]>,
) -> Result<(Vec<String>, Id), WeightsError> {
    let bad = |msg: String| WeightsError::malformed(path, 0, format!("data.pkl: {msg}"));
    let root = p.root();
    let Some(root_entries) = p.dict_entries(root) else {
        return Err(bad(format!(
            "the saved object is not a dict ({:?}), so it holds no state dict",
            p.get(root)
        )
        .chars()
        .take(200)
        .collect()));
    };
    let lookup = |entries: &[(Id, Id)], key: &str| {
        entries
            .iter()
            .find(|&&(k, _)| p.as_str(k) == Some(key))
            .map(|&(_, v)| v)
    };
    if let Some(keys) = keys {
        let mut at = root;
        for (i, key) in keys.iter().enumerate() {
            let entries = p
                .dict_entries(at)
                .ok_or_else(|| bad(format!("{:?} is not a dict", &keys[..i])))?;
            at = lookup(&entries, key).ok_or_else(|| bad(format!("no key {:?}", &keys[..=i])))?;
        }
        if p.dict_entries(at).is_none() {
            return Err(bad(format!("{keys:?} is not a dict")));
        }
        return Ok((keys.iter().map(|s| s.to_string()).collect(), at));
    }
    if holds_tensors(p, root) {
        return Ok((Vec::new(), root));
    }
    for key in WRAPPER_KEYS {
        if let Some(v) = lookup(&root_entries, key) {
            if holds_tensors(p, v) {
                return Ok((vec![key.to_string()], v));
            }
        }
    }
    let with_tensors: Vec<(Id, Id)> = root_entries
        .iter()
        .copied()
        .filter(|&(_, v)| holds_tensors(p, v))
        .collect();
    let root_keys: Vec<String> = root_entries
        .iter()
        .filter_map(|&(k, _)| key_text(p, k))
        .take(20)
        .collect();
    match with_tensors[..] {
        [(k, v)] => match key_text(p, k) {
            Some(k) => Ok((vec![k], v)),
            None => Err(bad("the dict holding tensors has a non-string key".into())),
        },
        [] => Err(bad(format!(
            "no dict of tensors at the root or under one of its keys {root_keys:?}"
        ))),
        _ => Err(bad(format!(
            "several dicts of tensors under the root keys {root_keys:?}; choose one with PtCheckpoint::open_at"
        ))),
    }
}

/// Collect the tensors of dict `id` (and of dicts nested in it, names joined by `.`).
#[allow(clippy::too_many_arguments)]
fn flatten<'p>(
    path: &Path,
    p: &'p Pickle,
    id: Id,
    prefix: String,
    depth: usize,
    visits: &mut usize,
    out: &mut Vec<(String, &'p TensorRef)>,
    skipped: &mut Vec<String>,
) -> Result<(), WeightsError> {
    let bad = |msg: String| WeightsError::malformed(path, 0, format!("data.pkl: {msg}"));
    if depth > MAX_DICT_DEPTH {
        return Err(bad(format!(
            "dicts nested deeper than {MAX_DICT_DEPTH} at {prefix:?}"
        )));
    }
    let entries = p.dict_entries(id).expect("flatten is called on dicts");
    for (k, v) in entries {
        *visits += 1;
        if *visits > MAX_VISITS {
            return Err(bad(format!("more than {MAX_VISITS} dict entries")));
        }
        let Some(key) = key_text(p, k) else {
            return Err(bad(format!(
                "a key under {prefix:?} is a {:?}, not a string",
                p.get(k)
            )
            .chars()
            .take(200)
            .collect()));
        };
        let name = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match p.get(v) {
            Value::Tensor(t) => out.push((name, t)),
            Value::Dict(_) => flatten(path, p, v, name, depth + 1, visits, out, skipped)?,
            _ => skipped.push(name),
        }
    }
    Ok(())
}

/// Check `t`'s view against its storage entry.
fn check_tensor(
    path: &Path,
    name: &str,
    t: &TensorRef,
    storages: &HashMap<String, ZipEntry>,
) -> Result<PtTensorInfo, WeightsError> {
    let s = &t.storage;
    let e = storages.get(&s.key).ok_or_else(|| {
        WeightsError::malformed(
            path,
            0,
            format!(
                "tensor {name:?}: its storage data/{} is not in the zip",
                s.key
            ),
        )
    })?;
    let bad = |msg: String| {
        WeightsError::malformed(path, e.data_start, format!("tensor {name:?}: {msg}"))
    };
    let es = s.dtype.size_in_bytes() as u64;
    if s.numel.checked_mul(es) != Some(e.size) {
        return Err(bad(format!(
            "storage data/{} is {} bytes, but {} elements of {} need {}",
            s.key,
            e.size,
            s.numel,
            s.dtype,
            s.numel.saturating_mul(es)
        )));
    }
    let to_usize = |x: u64, what: &str| {
        usize::try_from(x).map_err(|_| bad(format!("{what} {x} does not fit in usize")))
    };
    let shape = t
        .size
        .iter()
        .map(|&d| to_usize(d, "dimension"))
        .collect::<Result<Vec<_>, _>>()?;
    let stride = t
        .stride
        .iter()
        .map(|&d| to_usize(d, "stride"))
        .collect::<Result<Vec<_>, _>>()?;
    let offset = to_usize(t.offset, "storage offset")?;
    let numel = byte_size(&shape, 1).ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    // Even an empty view's offset must lie within the storage (bytes() slices from it).
    if offset as u64 > s.numel {
        return Err(bad(format!(
            "storage offset {offset} is past the {} elements of storage data/{}",
            s.numel, s.key
        )));
    }
    if numel > 0 {
        // The last element the view reads must be inside the storage.
        let last = shape
            .iter()
            .zip(&stride)
            .try_fold(offset as u64, |acc, (&d, &s)| {
                (d as u64 - 1)
                    .checked_mul(s as u64)
                    .and_then(|x| x.checked_add(acc))
            });
        if last.is_none_or(|l| l >= s.numel) {
            return Err(bad(format!(
                "view (offset {offset}, shape {shape:?}, stride {stride:?}) reaches past the {} elements of storage data/{}",
                s.numel, s.key
            )));
        }
    }
    Ok(PtTensorInfo {
        dtype: s.dtype,
        shape,
        stride,
        offset,
        storage: s.key.clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// OSUM key layout.

/// The part of the OSUM model a checkpoint tensor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// The Whisper encoder (REFERENCE.md §3). Canonical name: the WeNet name, i.e. the key with
    /// the layout's encoder prefix replaced by `encoder.` (e.g.
    /// `encoder.encoders.0.self_attn.linear_q.weight`, `encoder.embed.conv.0.weight`), which is
    /// what [`crate::model::whisper::Convention::Wenet`] looks up.
    Encoder,
    /// The adapter (REFERENCE.md §4). Canonical name: the full key, e.g.
    /// `down_sample_2.conv.1.weight`, `speech_llama_proj.weight`, `speech_token_emded.weight`.
    Adapter,
    /// An LLM weight, with LoRA unmerged (the base weight). Canonical name: Hugging Face
    /// Llama naming, e.g. `model.layers.0.self_attn.q_proj.weight`, `lm_head.weight`.
    LlmBase,
    /// LoRA A (`[r, in]`) of the LLM linear whose canonical name is the module path, e.g.
    /// `model.layers.0.self_attn.q_proj`.
    LoraA,
    /// LoRA B (`[out, r]`), named like [`Component::LoraA`].
    LoraB,
    /// Anything else, under its raw key.
    Other,
    /// Stale copies that loaders must not use (PEFT's `original_module` beside
    /// `modules_to_save`); dropped from [`OsumMapping`].
    Ignored,
}

/// A raw key sorted by [`normalize_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedKey {
    /// Which part of the model.
    pub component: Component,
    /// The canonical name within the component (see [`Component`]).
    pub name: String,
    /// The PEFT adapter name of a LoRA tensor (`default` in OSUM), else `None`.
    pub adapter: Option<String>,
}

/// The prefix of WeNet encoder names, which canonical [`Component::Encoder`] names carry
/// whatever the checkpoint's own encoder prefix.
pub const WENET_ENCODER_PREFIX: &str = "encoder.";

/// The top-level module names of an OSUM state dict. The defaults are those of the released
/// OSUM / OSUM-Pangu code (REFERENCE.md §3, §4, §7).
#[derive(Debug, Clone)]
pub struct KeyLayout {
    /// Prefix of encoder keys, replaced by `encoder.` in canonical names.
    pub encoder_prefix: String,
    /// Prefix of the LLM keys, stripped (with PEFT's `base_model.model.`).
    pub llm_prefix: String,
    /// First components of adapter keys (kept in canonical names).
    pub adapter_modules: Vec<String>,
}

impl Default for KeyLayout {
    fn default() -> Self {
        KeyLayout {
            encoder_prefix: "encoder.".into(),
            llm_prefix: "llama_model.".into(),
            adapter_modules: [
                "down_sample_2",
                "speech_transformer",
                "speech_llama_proj",
                "speech_token_emded",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// Sort one raw key. Leading `module.` (DDP wrappers) are dropped first. LLM keys:
/// - `llama_model.base_model.model.X` (PEFT) and `llama_model.X` both give `X`;
/// - `….q_proj.base_layer.weight` → [`Component::LlmBase`] `….q_proj.weight` (PEFT ≥ 0.7);
/// - `….q_proj.weight` next to LoRA (older PEFT) is already the base weight;
/// - `….q_proj.lora_A.NAME.weight` → [`Component::LoraA`] `….q_proj`, adapter `NAME`
///   (likewise `lora_B`);
/// - `….modules_to_save.NAME.…` → the trained copy, as `LlmBase`; `….original_module.…` →
///   [`Component::Ignored`]; other PEFT tensors (`lora_embedding_*`, `lora_magnitude_vector`)
///   → [`Component::Other`].
pub fn normalize_key(raw: &str, layout: &KeyLayout) -> NormalizedKey {
    let mut key = raw;
    while let Some(rest) = key.strip_prefix("module.") {
        key = rest;
    }
    let plain = |component, name: &str| NormalizedKey {
        component,
        name: name.to_string(),
        adapter: None,
    };
    if let Some(rest) = key.strip_prefix(layout.encoder_prefix.as_str()) {
        return plain(Component::Encoder, &format!("{WENET_ENCODER_PREFIX}{rest}"));
    }
    let first = key.split('.').next().unwrap_or("");
    if layout.adapter_modules.iter().any(|m| m == first) {
        return plain(Component::Adapter, key);
    }
    let Some(rest) = key.strip_prefix(layout.llm_prefix.as_str()) else {
        return plain(Component::Other, raw);
    };
    let rest = rest.strip_prefix("base_model.model.").unwrap_or(rest);
    for (marker, component) in [
        (".lora_A.", Component::LoraA),
        (".lora_B.", Component::LoraB),
    ] {
        if let Some((module, tail)) = rest.split_once(marker) {
            // tail = "NAME.weight"
            return match tail.strip_suffix(".weight") {
                Some(adapter) if !adapter.contains('.') => NormalizedKey {
                    component,
                    name: module.to_string(),
                    adapter: Some(adapter.to_string()),
                },
                _ => plain(Component::Other, raw),
            };
        }
    }
    if rest.contains(".original_module.") {
        return plain(Component::Ignored, raw);
    }
    if let Some((module, tail)) = rest.split_once(".modules_to_save.") {
        // tail = "NAME.weight"
        return match tail.split_once('.') {
            Some((_, param)) => plain(Component::LlmBase, &format!("{module}.{param}")),
            None => plain(Component::Other, raw),
        };
    }
    if rest.contains(".lora_") {
        return plain(Component::Other, raw);
    }
    plain(Component::LlmBase, &rest.replace(".base_layer.", "."))
}

/// The OSUM tensors of a checkpoint: (component, canonical name) → raw key.
#[derive(Debug, Clone, Default)]
pub struct OsumMapping {
    entries: BTreeMap<(Component, String), String>,
    lora_adapters: Vec<String>,
}

impl OsumMapping {
    /// The raw checkpoint key of `name` in `component`.
    pub fn get(&self, component: Component, name: &str) -> Option<&str> {
        self.entries
            .get(&(component, name.to_string()))
            .map(String::as_str)
    }

    /// Every (canonical name, raw key) of `component`, sorted by name.
    pub fn component(&self, component: Component) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .filter(move |((c, _), _)| *c == component)
            .map(|((_, n), r)| (n.as_str(), r.as_str()))
    }

    /// Every entry: (component, canonical name, raw key).
    pub fn iter(&self) -> impl Iterator<Item = (Component, &str, &str)> {
        self.entries
            .iter()
            .map(|((c, n), r)| (*c, n.as_str(), r.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The PEFT adapter names seen on LoRA tensors (OSUM: `["default"]`).
    pub fn lora_adapters(&self) -> &[String] {
        &self.lora_adapters
    }
}

#[cfg(test)]
#[path = "pytorch_tests.rs"]
mod tests;
