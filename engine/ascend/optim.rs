//! The fused AdamW step on the Ascend device through `osum_adamw_f32`
//! (kernels/ascend/adamw.cpp), in place on param, m and v (contiguous f32 buffers of this
//! device). The gradient is made dense f32 on the device first.

use super::memory::AscendBuffer;
use super::operands::dense_f32;
use super::AscendDevice;
use crate::engine::device::{AdamWParams, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::storage::DeviceBuffer;
use crate::kernels::{self, nn, GmF32};

const OP: &str = "adamw_step";
const KERNEL: &str = "osum_adamw_f32";

fn state<'a>(dev: &AscendDevice, what: &str, b: &'a dyn DeviceBuffer) -> Result<&'a AscendBuffer> {
    let buf = b
        .as_any()
        .downcast_ref::<AscendBuffer>()
        .ok_or_else(|| Error::invalid(OP, format!("{what} does not belong to {}", dev.name)))?;
    if buf.dtype() != DType::F32 {
        return Err(Error::UnsupportedDType {
            op: OP,
            dtype: buf.dtype(),
            device: dev.name.to_string(),
        });
    }
    Ok(buf)
}

/// One AdamW step.
pub fn adamw_step(
    dev: &AscendDevice,
    param: &mut dyn DeviceBuffer,
    grad: View,
    m: &mut dyn DeviceBuffer,
    v: &mut dyn DeviceBuffer,
    hp: &AdamWParams,
) -> Result<()> {
    if hp.step == 0 {
        return Err(Error::invalid(
            OP,
            "step is 1-based (bias correction divides by 1 − β^step)",
        ));
    }
    let (p, mb, vb) = (
        state(dev, "param", &*param)?,
        state(dev, "m", &*m)?,
        state(dev, "v", &*v)?,
    );
    let n = grad.layout.elem_count();
    if p.len() != n || mb.len() != n || vb.len() != n {
        return Err(Error::invalid(
            OP,
            format!(
                "param/m/v/grad lengths {}/{}/{}/{} differ",
                p.len(),
                mb.len(),
                vb.len(),
                n
            ),
        ));
    }
    if n == 0 {
        return Ok(());
    }
    let g = dense_f32(dev, OP, &grad)?;
    let kerr = |e: kernels::KernelError| dev.backend(OP, e);
    // The kernel writes through device pointers; `&mut` on the three state buffers is held for
    // the whole call, so nothing else reads them meanwhile.
    nn::adamw_f32(
        dev.stream(),
        hp,
        GmF32::new(KERNEL, p.mem(), 0, n).map_err(kerr)?,
        g.gm(KERNEL).map_err(kerr)?,
        GmF32::new(KERNEL, mb.mem(), 0, n).map_err(kerr)?,
        GmF32::new(KERNEL, vb.mem(), 0, n).map_err(kerr)?,
    )
    .map_err(kerr)?;
    Ok(())
}
