//! Attention forward on the Ascend device through `osum_flash_attention_f32`, `_f16` or
//! `_bf16` (kernels/ascend/attention.cpp): online softmax over key blocks, causal or not, GQA.
//!
//! Taken: q/k/v `[B, H, T, D]` all f32, all f16 or all bf16 (strided views are made dense by the
//! device first, in their own dtype), an optional f32 additive mask viewed as `[B, Hq, Tq, Tk]`
//! (any strides, 0 = broadcast), head dim ≤ 128, causal or not (causal with Tq > Tk: rows that
//! see no key give 0, as on the CPU). Half q/k/v are read by the kernel as such and fed to the
//! cube in their type with f32 accumulation (no conversion launch); the output is f32 for every
//! input dtype, since the softmax statistics and O accumulate in f32 and the kernel does not
//! round O back (the CPU device takes f32 q/k/v only). Anything else is refused by name (no
//! CPU fallback). The backward is `attention_backward.rs` (f32).

use super::operands::{dense, dense_f32};
use super::AscendDevice;
use crate::engine::device::{AttentionParams, Buffer, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::kernels::{
    self, AttentionElem, AttentionMask, AttentionShape, GmF32, ATTENTION_MAX_HEAD_DIM,
};

const OP: &str = "attention";

/// Scaled dot-product attention.
pub fn attention(
    dev: &AscendDevice,
    q: View,
    k: View,
    v: View,
    mask: Option<View>,
    p: &AttentionParams,
) -> Result<Buffer> {
    let elem = match q.dtype() {
        DType::F32 => AttentionElem::F32,
        DType::F16 => AttentionElem::F16,
        DType::BF16 => AttentionElem::Bf16,
        other => {
            return Err(Error::UnsupportedDType {
                op: OP,
                dtype: other,
                device: dev.name.to_string(),
            })
        }
    };
    for t in [&k, &v] {
        if t.dtype() != q.dtype() {
            return Err(dev.unsupported_case(
                OP,
                format!(
                    "q is {:?} but k/v are {:?}/{:?}",
                    q.dtype(),
                    k.dtype(),
                    v.dtype()
                ),
            ));
        }
    }
    let (qsh, ksh) = (q.shape(), k.shape());
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
    let out = dev.alloc(OP, DType::F32, q_len)?;
    if q_len == 0 || shape.tk == 0 {
        // Zero queries: nothing to compute. Zero keys: the engine's ops layer defines no result.
        if shape.tk == 0 && q_len > 0 {
            return Err(dev.unsupported_case(OP, "zero keys"));
        }
        return Ok(Box::new(out));
    }
    let kerr = |e: kernels::KernelError| dev.backend(OP, e);
    let kernel = elem.kernel();
    let mask = attention_mask(dev, OP, kernel, mask.as_ref(), &shape)?;
    let (blocks, tiling) = kernels::attention_tiling_for(&shape, elem).map_err(kerr)?;
    let ws_len = kernels::attention_workspace_len(blocks, &tiling);
    let ws = dev.alloc(OP, DType::F32, ws_len)?;
    let kv_len = shape.batch * shape.heads_kv * shape.tk * shape.d;
    let out_gm = GmF32::new(kernel, out.mem(), 0, q_len).map_err(kerr)?;
    let ws_gm = GmF32::new(kernel, ws.mem(), 0, ws_len).map_err(kerr)?;
    if elem != AttentionElem::F32 {
        // Strided q/k/v are gathered on the device in their own dtype (no conversion).
        let (bq, bk, bv) = (
            dense(dev, OP, &q)?,
            dense(dev, OP, &k)?,
            dense(dev, OP, &v)?,
        );
        let w = elem.bytes();
        kernels::flash_attention(
            dev.stream(),
            &shape,
            elem,
            (
                bq.gm_bytes(kernel, w).map_err(kerr)?,
                bk.gm_bytes(kernel, w).map_err(kerr)?,
                bv.gm_bytes(kernel, w).map_err(kerr)?,
            ),
            mask.as_ref(),
            out_gm,
            ws_gm,
        )
        .map_err(kerr)?;
        return Ok(Box::new(out));
    }
    // Strided q/k/v (head-split projections, KV-cache views) are made dense on the device.
    let (bq, bk, bv) = (
        dense_f32(dev, OP, &q)?,
        dense_f32(dev, OP, &k)?,
        dense_f32(dev, OP, &v)?,
    );
    let (qs, ks, vs) = (bq.start, bk.start, bv.start);
    kernels::flash_attention_masked_f32(
        dev.stream(),
        &shape,
        (
            GmF32::new(kernel, bq.mem(), qs, q_len).map_err(kerr)?,
            GmF32::new(kernel, bk.mem(), ks, kv_len).map_err(kerr)?,
            GmF32::new(kernel, bv.mem(), vs, kv_len).map_err(kerr)?,
        ),
        mask.as_ref(),
        out_gm,
        ws_gm,
    )
    .map_err(kerr)?;
    Ok(Box::new(out))
}

/// The kernel operand of an additive mask viewed as `[B, Hq, Tq, Tk]`: its buffer from the
/// view's offset, addressed through the view's strides (broadcast dims have stride 0).
pub(crate) fn attention_mask<'a>(
    dev: &AscendDevice,
    op: &'static str,
    kernel: &'static str,
    mask: Option<&View<'a>>,
    s: &AttentionShape,
) -> Result<Option<AttentionMask<'a>>> {
    let Some(m) = mask else {
        return Ok(None);
    };
    let want = [s.batch, s.heads_q, s.tq, s.tk];
    if m.shape() != want {
        return Err(Error::ShapeMismatch {
            op,
            lhs: m.shape().to_vec(),
            rhs: want.to_vec(),
        });
    }
    if m.dtype() != DType::F32 {
        return Err(Error::UnsupportedDType {
            op,
            dtype: m.dtype(),
            device: dev.name.to_string(),
        });
    }
    let buf = dev.buffer(op, m)?;
    let (start, end) = (m.layout.offset(), m.layout.max_index_exclusive());
    let gm = GmF32::new(kernel, buf.mem(), start, end.saturating_sub(start))
        .map_err(|e| dev.backend(op, e))?;
    let st = m.layout.strides();
    Ok(Some(AttentionMask {
        gm,
        strides: [st[0], st[1], st[2], st[3]],
    }))
}
