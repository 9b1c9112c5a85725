//! Cross-entropy and its logits gradient on the Ascend device (kernels/ascend/cross_entropy.cpp).
//! Targets (u32/i64) are checked on the host first: out of range is an
//! [`Error::IndexOutOfRange`] naming the op, `ignore_index` rows give 0 loss and 0 gradient.

use super::operands::{checked_ids, dense_f32, gm_bytes, require_f32};
use super::AscendDevice;
use crate::engine::device::{Buffer, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::kernels::{self, nn, GmF32};

fn rows_vocab(op: &'static str, logits: &View) -> Result<(usize, usize)> {
    match logits.shape() {
        [n, v] => Ok((*n, *v)),
        s => Err(Error::BadShape {
            op,
            shape: s.to_vec(),
            msg: "expected logits [N, V]".into(),
        }),
    }
}

fn check_rows(op: &'static str, what: &View, n: usize, v: usize) -> Result<()> {
    if what.layout.elem_count() != n {
        return Err(Error::ShapeMismatch {
            op,
            lhs: vec![n, v],
            rhs: what.shape().to_vec(),
        });
    }
    Ok(())
}

/// Per-row negative log-likelihood `[N]`.
pub fn cross_entropy(
    dev: &AscendDevice,
    logits: View,
    targets: View,
    ignore_index: i64,
) -> Result<Buffer> {
    const OP: &str = "cross_entropy";
    const KERNEL: &str = "osum_cross_entropy_f32";
    require_f32(dev, OP, &logits)?;
    let (n, v) = rows_vocab(OP, &logits)?;
    check_rows(OP, &targets, n, v)?;
    let tgt = checked_ids(dev, OP, &targets, v, Some(ignore_index))?;
    let out = dev.alloc(OP, DType::F32, n)?;
    if n == 0 {
        return Ok(Box::new(out));
    }
    let x = dense_f32(dev, OP, &logits)?;
    let kerr = |e: kernels::KernelError| dev.backend(OP, e);
    nn::cross_entropy_f32(
        dev.stream(),
        n,
        v,
        x.gm(KERNEL).map_err(kerr)?,
        gm_bytes(dev, OP, KERNEL, tgt.mem(), 0, n * 4)?,
        GmF32::new(KERNEL, out.mem(), 0, n).map_err(kerr)?,
    )
    .map_err(kerr)?;
    Ok(Box::new(out))
}

/// `dlogits[i] = grad[i]·(softmax(logits[i]) − onehot(target[i]))`, zero for ignored rows.
pub fn cross_entropy_backward(
    dev: &AscendDevice,
    logits: View,
    targets: View,
    grad: View,
    ignore_index: i64,
) -> Result<Buffer> {
    const OP: &str = "cross_entropy_backward";
    const KERNEL: &str = "osum_cross_entropy_bwd_f32";
    require_f32(dev, OP, &logits)?;
    require_f32(dev, OP, &grad)?;
    let (n, v) = rows_vocab(OP, &logits)?;
    check_rows(OP, &targets, n, v)?;
    check_rows(OP, &grad, n, v)?;
    let tgt = checked_ids(dev, OP, &targets, v, Some(ignore_index))?;
    let out = dev.alloc(OP, DType::F32, n * v)?;
    if n * v == 0 {
        return Ok(Box::new(out));
    }
    let (x, g) = (dense_f32(dev, OP, &logits)?, dense_f32(dev, OP, &grad)?);
    let kerr = |e: kernels::KernelError| dev.backend(OP, e);
    nn::cross_entropy_backward_f32(
        dev.stream(),
        n,
        v,
        x.gm(KERNEL).map_err(kerr)?,
        gm_bytes(dev, OP, KERNEL, tgt.mem(), 0, n * 4)?,
        g.gm(KERNEL).map_err(kerr)?,
        GmF32::new(KERNEL, out.mem(), 0, n * v).map_err(kerr)?,
    )
    .map_err(kerr)?;
    Ok(Box::new(out))
}
