//! `--check-weights`: every float tensor is scanned as it is loaded, and the first NaN or
//! infinity is an error naming the file, the tensor and the element, instead of a model that
//! silently answers nonsense (or a training run whose loss turns NaN at some later step).
//!
//! Off unless [`set_enabled`] is called: the scan reads every weight once, which costs a pass
//! over the file that zero-copy loading otherwise avoids.

use super::WeightsError;
use crate::engine::{HostBuffer, Tensor};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turn the scan on or off for the rest of the process.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::SeqCst);
}

/// `t` (tensor `name` of `path`) unchanged, or, when the scan is on, an error at its first
/// non-finite element.
pub(crate) fn checked(path: &Path, name: &str, t: Tensor) -> Result<Tensor, WeightsError> {
    if !ENABLED.load(Ordering::SeqCst) {
        return Ok(t);
    }
    let host = t.to_host().map_err(|source| WeightsError::Engine {
        path: path.to_path_buf(),
        name: name.to_string(),
        source,
    })?;
    let first = match &host {
        HostBuffer::F32(v) => first_non_finite(v.iter().copied()),
        HostBuffer::F16(v) => first_non_finite(v.iter().map(|x| x.to_f32())),
        HostBuffer::BF16(v) => first_non_finite(v.iter().map(|x| x.to_f32())),
        _ => None,
    };
    match first {
        None => Ok(t),
        Some((i, x)) => Err(WeightsError::NonFinite {
            path: path.to_path_buf(),
            name: name.to_string(),
            index: i,
            value: x,
        }),
    }
}

/// The index and value of the first NaN or infinity.
fn first_non_finite(values: impl Iterator<Item = f32>) -> Option<(usize, f32)> {
    values.enumerate().find(|(_, x)| !x.is_finite())
}
