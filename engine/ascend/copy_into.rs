//! In-place copy into a strided region of a device buffer (`copy_into`, how KV caches append) on
//! the Ascend device. The destination region is walked as runs of contiguous elements (the
//! trailing dims whose strides are dense collapse into one run, e.g. the `t·D` floats of one head
//! in a `[B, H, capacity, D]` cache) and each run is one device-to-device `aclrtMemcpy` — runtime
//! copies, no arithmetic, the same as the 2-D strided copies ACL offers. A strided source is made
//! contiguous by the device first.

use super::memory::AscendBuffer;
use super::AscendDevice;
use crate::engine::device::{Buffer, Device, View};
use crate::engine::error::{Error, Result};
use crate::engine::layout::Layout;
use crate::engine::storage::DeviceBuffer;

const OP: &str = "copy_into";

/// Elements per contiguous run of `l` and the layout of the runs' starting offsets.
fn runs(l: &Layout) -> (usize, Layout) {
    let (shape, strides) = (l.shape(), l.strides());
    let mut run = 1;
    let mut d = shape.len();
    while d > 0 && (shape[d - 1] == 1 || strides[d - 1] == run) {
        run *= shape[d - 1];
        d -= 1;
    }
    (
        run,
        Layout::new(shape[..d].to_vec(), strides[..d].to_vec(), l.offset()),
    )
}

/// Write `src` into the elements of `dst` that `dst_layout` selects.
pub fn copy_into(
    dev: &AscendDevice,
    dst: &mut dyn DeviceBuffer,
    dst_layout: &Layout,
    src: View,
) -> Result<()> {
    let d = dst
        .as_any()
        .downcast_ref::<AscendBuffer>()
        .ok_or_else(|| Error::invalid(OP, format!("buffer does not belong to {}", dev.name)))?;
    if d.dtype() != src.dtype() {
        return Err(Error::DTypeMismatch {
            op: OP,
            lhs: d.dtype(),
            rhs: src.dtype(),
        });
    }
    if dst_layout.shape() != src.shape() {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: dst_layout.shape().to_vec(),
            rhs: src.shape().to_vec(),
        });
    }
    if dst_layout.max_index_exclusive() > d.len() {
        return Err(Error::invalid(OP, "destination view exceeds its buffer"));
    }
    if dst_layout.elem_count() == 0 {
        return Ok(());
    }
    let owned: Buffer;
    let (smem, sstart) = match src.layout.contiguous_range() {
        Some((start, _)) => (dev.buffer(OP, &src)?.mem(), start),
        None => {
            owned = dev.copy_strided(src)?;
            let a = owned
                .as_any()
                .downcast_ref::<AscendBuffer>()
                .ok_or_else(|| Error::invalid(OP, "copy did not return an Ascend buffer"))?;
            (a.mem(), 0)
        }
    };
    let es = d.dtype().size_in_bytes();
    let (run, starts) = runs(dst_layout);
    for (i, at) in starts.offsets().enumerate() {
        d.mem()
            .copy_from(at * es, smem, (sstart + i * run) * es, run * es)
            .map_err(|e| dev.backend(OP, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_collapse_dense_trailing_dims() {
        // A [1, 3, 5, 4] slice of a [1, 3, 8, 4] cache: runs of 5·4 floats, one per head.
        let l = Layout::new(vec![1, 3, 5, 4], vec![96, 32, 4, 1], 8);
        let (run, starts) = runs(&l);
        assert_eq!(run, 20);
        assert_eq!(starts.offsets().collect::<Vec<_>>(), vec![8, 40, 72]);
        // A transposed view has runs of one element.
        let t = Layout::new(vec![2, 3], vec![1, 2], 0);
        assert_eq!(runs(&t).0, 1);
        // A dense view is one run.
        let c = Layout::new(vec![2, 3], vec![3, 1], 4);
        let (run, starts) = runs(&c);
        assert_eq!((run, starts.offsets().collect::<Vec<_>>()), (6, vec![4]));
    }
}
