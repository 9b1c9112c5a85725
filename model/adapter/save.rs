//! Writing named tensors as one safetensors file (the adapter's, or any trainer's, parameters),
//! through the `safetensors` crate's serializer. The file is written next to its destination
//! and renamed into place, so an interrupted save never leaves a truncated checkpoint.

use super::{AdapterError, Result};
use crate::engine::{HostBuffer, Tensor};
use safetensors::tensor::{serialize_to_file, TensorView};
use safetensors::Dtype;
use std::path::Path;

/// Little-endian bytes and safetensors dtype of a host buffer.
fn bytes_of(h: HostBuffer) -> (Dtype, Vec<u8>) {
    match h {
        HostBuffer::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        HostBuffer::F16(v) => (Dtype::F16, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        HostBuffer::BF16(v) => (
            Dtype::BF16,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        HostBuffer::U32(v) => (Dtype::U32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        HostBuffer::I64(v) => (Dtype::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
    }
}

/// Write `tensors` (names must be unique) to `path` as safetensors, in their own dtypes.
pub fn save_safetensors(path: impl AsRef<Path>, tensors: &[(String, Tensor)]) -> Result<()> {
    let path = path.as_ref();
    let fail = |msg: String| AdapterError::Save {
        path: path.display().to_string(),
        msg,
    };
    let mut data = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        if data
            .iter()
            .any(|(n, _, _, _): &(String, _, _, _)| n == name)
        {
            return Err(fail(format!("tensor name `{name}` appears twice")));
        }
        let (dtype, bytes) = bytes_of(t.to_host()?);
        data.push((name.clone(), dtype, t.shape().to_vec(), bytes));
    }
    let views = data
        .iter()
        .map(|(n, d, s, b)| {
            TensorView::new(*d, s.clone(), b)
                .map(|v| (n.as_str(), v))
                .map_err(|e| fail(format!("tensor `{n}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let file_name = path
        .file_name()
        .ok_or_else(|| fail("not a file path".into()))?;
    let tmp = path.with_file_name(format!(".{}.partial", file_name.to_string_lossy()));
    serialize_to_file(views, &None, &tmp).map_err(|e| fail(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e.to_string())
    })
}
