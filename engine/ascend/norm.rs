//! LayerNorm and RMSNorm over the last dimension on the Ascend device through `osum_norm_f32`
//! (kernels/ascend/norm.cpp). x, weight and bias are made dense f32 on the device first
//! ([`super::operands::dense_f32`]); f16/bf16 weights go through the device's cast.

use super::operands::dense_f32;
use super::AscendDevice;
use crate::engine::device::{Buffer, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::kernels::{self, nn};

const KERNEL: &str = "osum_norm_f32";

fn check_param(op: &'static str, p: &View, d: usize) -> Result<()> {
    if p.layout.elem_count() != d {
        return Err(Error::BadShape {
            op,
            shape: p.shape().to_vec(),
            msg: format!("expected {d} elements, one per feature of the last dimension"),
        });
    }
    Ok(())
}

/// Layer norm (`rms = false`, optional bias) or RMS norm (`rms = true`, no bias).
pub fn norm(
    dev: &AscendDevice,
    op: &'static str,
    x: View,
    w: View,
    b: Option<View>,
    eps: f32,
    rms: bool,
) -> Result<Buffer> {
    if x.dtype() != DType::F32 {
        return Err(Error::UnsupportedDType {
            op,
            dtype: x.dtype(),
            device: dev.name.to_string(),
        });
    }
    let cols = x.shape().last().copied().unwrap_or(1);
    check_param(op, &w, cols)?;
    if let Some(b) = &b {
        check_param(op, b, cols)?;
    }
    let n = x.layout.elem_count();
    let out = dev.alloc(op, DType::F32, n)?;
    if n == 0 {
        return Ok(Box::new(out));
    }
    let (xd, wd) = (dense_f32(dev, op, &x)?, dense_f32(dev, op, &w)?);
    let bd = b.map(|b| dense_f32(dev, op, &b)).transpose()?;
    let kerr = |e: kernels::KernelError| dev.backend(op, e);
    nn::norm_f32(
        dev.stream(),
        n / cols,
        cols,
        eps,
        rms,
        xd.gm(KERNEL).map_err(kerr)?,
        wd.gm(KERNEL).map_err(kerr)?,
        bd.as_ref()
            .map(|b| b.gm(KERNEL))
            .transpose()
            .map_err(kerr)?,
        kernels::GmF32::new(KERNEL, out.mem(), 0, n).map_err(kerr)?,
    )
    .map_err(kerr)?;
    Ok(Box::new(out))
}
