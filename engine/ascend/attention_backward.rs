//! Attention backward on the Ascend device through `osum_flash_attention_bwd_f32`
//! (kernels/ascend/attention_backward.cpp): flash-style recomputation, causal or not, GQA.
//!
//! Taken: f32 q/k/v/dout `[B, H, T, D]` (strided views are made dense by the device first), an
//! optional additive f32 mask, head dim ≤ 128, causal or not — the same cases as the forward
//! kernel; anything else is refused by name.

use super::operands::{dense_f32, require_f32};
use super::AscendDevice;
use crate::engine::device::{AttentionParams, Buffer, Device, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::kernels::{self, nn, AttentionShape, GmF32, ATTENTION_MAX_HEAD_DIM};

const OP: &str = "attention_backward";
const KERNEL: &str = "osum_flash_attention_bwd_f32";

/// Gradients `(dq, dk, dv)` of attention given the output gradient `dout`.
pub fn attention_backward(
    dev: &AscendDevice,
    (q, k, v): (View, View, View),
    mask: Option<View>,
    dout: View,
    p: &AttentionParams,
) -> Result<(Buffer, Buffer, Buffer)> {
    for t in [&q, &k, &v, &dout] {
        require_f32(dev, OP, t)?;
    }
    let (qsh, ksh) = (q.shape(), k.shape());
    if qsh.len() != 4 || ksh.len() != 4 || v.shape() != ksh || dout.shape() != qsh {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: qsh.to_vec(),
            rhs: ksh.to_vec(),
        });
    }
    let shape = AttentionShape {
        batch: qsh[0],
        heads_q: qsh[1],
        heads_kv: ksh[1],
        tq: qsh[2],
        tk: ksh[2],
        d: qsh[3],
        causal: p.causal,
        scale: p.scale,
    };
    if shape.d > ATTENTION_MAX_HEAD_DIM {
        return Err(dev.unsupported_case(
            OP,
            format!("head dim {} > {ATTENTION_MAX_HEAD_DIM}", shape.d),
        ));
    }
    let q_len = shape.batch * shape.heads_q * shape.tq * shape.d;
    let kv_len = shape.batch * shape.heads_kv * shape.tk * shape.d;
    let dq = dev.alloc(OP, DType::F32, q_len)?;
    let dk = dev.zeros(DType::F32, kv_len)?;
    let dv = dev.zeros(DType::F32, kv_len)?;
    if q_len == 0 || kv_len == 0 {
        if q_len > 0 {
            return Err(dev.unsupported_case(OP, "zero keys"));
        }
        return Ok((Box::new(dq), dk, dv));
    }
    let kerr = |e: kernels::KernelError| dev.backend(OP, e);
    let mask = super::attention::attention_mask(dev, OP, KERNEL, mask.as_ref(), &shape)?;
    let (blocks, tiling) = nn::attention_backward_tiling(&shape).map_err(kerr)?;
    let ws_len = blocks as usize * tiling.ws_per_block as usize;
    let ws = dev.alloc(OP, DType::F32, ws_len)?;
    let (qd, kd, vd, dod) = (
        dense_f32(dev, OP, &q)?,
        dense_f32(dev, OP, &k)?,
        dense_f32(dev, OP, &v)?,
        dense_f32(dev, OP, &dout)?,
    );
    fn mem<'b>(b: &'b Buffer, len: usize) -> Result<GmF32<'b>> {
        let a = b
            .as_any()
            .downcast_ref::<super::memory::AscendBuffer>()
            .ok_or_else(|| Error::invalid(OP, "zeros did not return an Ascend buffer"))?;
        GmF32::new(KERNEL, a.mem(), 0, len).map_err(|e| Error::invalid(OP, e.to_string()))
    }
    nn::flash_attention_backward_f32(
        dev.stream(),
        &shape,
        (
            qd.gm(KERNEL).map_err(kerr)?,
            kd.gm(KERNEL).map_err(kerr)?,
            vd.gm(KERNEL).map_err(kerr)?,
            dod.gm(KERNEL).map_err(kerr)?,
        ),
        mask.as_ref(),
        GmF32::new(KERNEL, dq.mem(), 0, q_len).map_err(kerr)?,
        mem(&dk, kv_len)?,
        mem(&dv, kv_len)?,
        GmF32::new(KERNEL, ws.mem(), 0, ws_len).map_err(kerr)?,
    )
    .map_err(kerr)?;
    Ok((Box::new(dq), dk, dv))
}
