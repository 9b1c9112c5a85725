//! What the readers share: the element types a file may store, mapping a file into memory, and
//! turning a stored tensor into an engine tensor: borrowed from the map where the bytes can be
//! read in place ([`tensor_from_map`], zero-copy on the CPU), else converted into an owned
//! [`HostBuffer`] ([`to_host_buffer`]).

use super::WeightsError;
use crate::engine::{DType, Device, HostBuffer, MappedHost, Tensor};
use half::{bf16, f16};
use memmap2::Mmap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// The element type of a stored tensor, as the file names it. Only [`StoredDType::F32`],
/// [`StoredDType::F16`] and [`StoredDType::BF16`] load into engine tensors; the others are
/// kept so that shapes and sizes can still be checked and errors can name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoredDType {
    F32,
    F16,
    BF16,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Bool,
    F8E4M3,
    F8E5M2,
}

impl StoredDType {
    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        use StoredDType::*;
        match self {
            I8 | U8 | Bool | F8E4M3 | F8E5M2 => 1,
            F16 | BF16 | I16 | U16 => 2,
            F32 | I32 | U32 => 4,
            F64 | I64 | U64 => 8,
        }
    }

    /// The engine dtype a tensor of this type loads as, if any.
    pub fn engine_dtype(self) -> Option<DType> {
        match self {
            StoredDType::F32 => Some(DType::F32),
            StoredDType::F16 => Some(DType::F16),
            StoredDType::BF16 => Some(DType::BF16),
            _ => None,
        }
    }

    /// A lower-case name for messages.
    pub fn name(self) -> &'static str {
        use StoredDType::*;
        match self {
            F32 => "f32",
            F16 => "f16",
            BF16 => "bf16",
            F64 => "f64",
            I8 => "i8",
            I16 => "i16",
            I32 => "i32",
            I64 => "i64",
            U8 => "u8",
            U16 => "u16",
            U32 => "u32",
            U64 => "u64",
            Bool => "bool",
            F8E4M3 => "f8_e4m3",
            F8E5M2 => "f8_e5m2",
        }
    }
}

impl std::fmt::Display for StoredDType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Copy little-endian `bytes` of `dtype` into a host buffer; `None` for types the engine lacks.
/// The caller has checked that `bytes.len()` is the element count times the element size.
pub(crate) fn to_host_buffer(bytes: &[u8], dtype: StoredDType) -> Option<HostBuffer> {
    Some(match dtype {
        StoredDType::F32 => HostBuffer::F32(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        StoredDType::F16 => HostBuffer::F16(
            bytes
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        StoredDType::BF16 => HostBuffer::BF16(
            bytes
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        _ => return None,
    })
}

/// The tensor stored as `dtype` in `map[begin..end]` with `shape`, on `dev`; `None` for types
/// the engine lacks. The caller has checked the range against the file and its length against
/// the element count. The bytes are borrowed from the map (the CPU keeps them there; other
/// devices upload a copy) unless they cannot be read in place as the element type: a start
/// that is not aligned to the element size is a limit of the file's layout (safetensors pads
/// its header to 8 bytes only by convention, CTranslate2 packs variables unpadded, a PyTorch
/// view may start at an odd element), and then the bytes are copied into an owned buffer.
pub(crate) fn tensor_from_map(
    map: &Arc<Mmap>,
    begin: usize,
    end: usize,
    dtype: StoredDType,
    shape: &[usize],
    dev: &Arc<dyn Device>,
) -> Option<crate::engine::Result<Tensor>> {
    let dt = dtype.engine_dtype()?;
    let len = (end - begin) / dtype.size_in_bytes();
    let bytes: crate::engine::SharedBytes = map.clone();
    Some(match MappedHost::new(bytes, begin, len, dt) {
        Some(m) => Tensor::from_mapped(m, shape, dev),
        None => Tensor::from_host(to_host_buffer(&map[begin..end], dtype)?, shape, dev),
    })
}

/// The product of `dims` times `elem` bytes, or `None` on overflow.
pub(crate) fn byte_size(dims: &[usize], elem: usize) -> Option<usize> {
    dims.iter().try_fold(elem, |acc, &d| acc.checked_mul(d))
}

/// Map `path` read-only, charging its size to the memory budget ([`super::budget`]) first.
pub(crate) fn map_file(path: &Path) -> Result<Mmap, WeightsError> {
    let io = |source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    super::budget::charge(path, "mapping the file", len)?;
    // SAFETY: the map is read-only and private to this process. If another process truncates or
    // rewrites the file while it is mapped, reads may fault or see new bytes; weight files are
    // written once (`osum setup` writes a temporary file and renames it), so we accept that.
    unsafe { Mmap::map(&file) }.map_err(io)
}
