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

/// `tensors` (names must be unique) as the bytes of one safetensors file, in their own dtypes:
/// for callers that write files their own way (the trainer writes checkpoints atomically).
/// `metadata` goes into the header's `__metadata__` map.
pub fn safetensors_bytes(
    tensors: &[(String, Tensor)],
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let fail = |msg: String| AdapterError::Save {
        path: "<safetensors in memory>".into(),
        msg,
    };
    let data = host_data(tensors, &fail)?;
    let views = views_of(&data, &fail)?;
    safetensors::tensor::serialize(views, &metadata).map_err(|e| fail(e.to_string()))
}

type HostData = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

fn host_data(
    tensors: &[(String, Tensor)],
    fail: &dyn Fn(String) -> AdapterError,
) -> Result<HostData> {
    let mut data: HostData = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        if data.iter().any(|(n, _, _, _)| n == name) {
            return Err(fail(format!("tensor name `{name}` appears twice")));
        }
        let (dtype, bytes) = bytes_of(t.to_host()?);
        data.push((name.clone(), dtype, t.shape().to_vec(), bytes));
    }
    Ok(data)
}

fn views_of<'a>(
    data: &'a HostData,
    fail: &dyn Fn(String) -> AdapterError,
) -> Result<Vec<(&'a str, TensorView<'a>)>> {
    data.iter()
        .map(|(n, d, s, b)| {
            TensorView::new(*d, s.clone(), b)
                .map(|v| (n.as_str(), v))
                .map_err(|e| fail(format!("tensor `{n}`: {e}")))
        })
        .collect()
}

/// Write `tensors` (names must be unique) to `path` as safetensors, in their own dtypes.
pub fn save_safetensors(path: impl AsRef<Path>, tensors: &[(String, Tensor)]) -> Result<()> {
    let path = path.as_ref();
    let fail = |msg: String| AdapterError::Save {
        path: path.display().to_string(),
        msg,
    };
    let data = host_data(tensors, &fail)?;
    let views = views_of(&data, &fail)?;
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
