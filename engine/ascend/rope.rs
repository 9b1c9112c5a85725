//! Rotary embedding on the Ascend device through `osum_rope_f32` (kernels/ascend/rope.cpp),
//! both pair styles. x `[…, T, D]`, tables cos/sin `[T, D/2]`; operands made dense f32 on the
//! device first.

use super::operands::{dense_f32, require_f32};
use super::AscendDevice;
use crate::engine::device::{Buffer, RopeStyle, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::kernels::{self, nn};

const OP: &str = "rope";
const KERNEL: &str = "osum_rope_f32";

/// `(x₁, x₂) ↦ (x₁·cos − x₂·sin, x₂·cos + x₁·sin)` over the pairs `style` selects.
pub fn rope(dev: &AscendDevice, x: View, cos: View, sin: View, style: RopeStyle) -> Result<Buffer> {
    require_f32(dev, OP, &x)?;
    let (t, d) = match x.shape() {
        [.., t, d] => (*t, *d),
        _ => {
            return Err(Error::BadShape {
                op: OP,
                shape: x.shape().to_vec(),
                msg: "expected [.., T, D]".into(),
            })
        }
    };
    let half = d / 2;
    if !d.is_multiple_of(2)
        || cos.layout.elem_count() != t * half
        || sin.layout.elem_count() != t * half
    {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: x.shape().to_vec(),
            rhs: cos.shape().to_vec(),
        });
    }
    let n = x.layout.elem_count();
    let out = dev.alloc(OP, DType::F32, n)?;
    if n == 0 {
        return Ok(Box::new(out));
    }
    if d > nn::ROPE_MAX_DIM {
        return Err(dev.unsupported_case(OP, format!("head dim {d} > {}", nn::ROPE_MAX_DIM)));
    }
    let (xd, cd, sd) = (
        dense_f32(dev, OP, &x)?,
        dense_f32(dev, OP, &cos)?,
        dense_f32(dev, OP, &sin)?,
    );
    let kerr = |e: kernels::KernelError| dev.backend(OP, e);
    nn::rope_f32(
        dev.stream(),
        n / d,
        t,
        half,
        style == RopeStyle::Interleaved,
        xd.gm(KERNEL).map_err(kerr)?,
        cd.gm(KERNEL).map_err(kerr)?,
        sd.gm(KERNEL).map_err(kerr)?,
        kernels::GmF32::new(KERNEL, out.mem(), 0, n).map_err(kerr)?,
    )
    .map_err(kerr)?;
    Ok(Box::new(out))
}
