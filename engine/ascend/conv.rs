//! Convolution on the Ascend device: conv2d (`osum_conv2d_f32`, implicit GEMM on the cube),
//! and the im2col / col2im pair (`osum_im2col_f32`, `osum_col2im_f32`, vector cores) that the
//! conv2d backward is built from (engine/ops/conv.rs). Conv1d reaches conv2d as height 1.
//!
//! Operands are made dense f32 first ([`super::operand`]): strided inputs through the gather
//! kernel, f16/bf16 weights through the cast kernel. Shapes were checked by the ops layer.

use super::operands::dense_f32;
use super::AscendDevice;
use crate::engine::device::{Buffer, Conv2dParams, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::kernels::conv::{self, ConvShape};
use crate::kernels::{self, GmF32};

fn dims4(op: &'static str, v: &View) -> Result<[usize; 4]> {
    v.shape().try_into().map_err(|_| Error::BadShape {
        op,
        shape: v.shape().to_vec(),
        msg: "expected rank 4".into(),
    })
}

/// Conv2d: x `[N, C, H, W]`, w `[O, C, KH, KW]`, b `[O]` → `[N, O, OH, OW]`.
pub fn conv2d(
    dev: &AscendDevice,
    x: View,
    w: View,
    b: Option<View>,
    p: &Conv2dParams,
) -> Result<Buffer> {
    const OP: &str = "conv2d";
    const KERNEL: &str = "osum_conv2d_f32";
    let [n, c, h, wd] = dims4(OP, &x)?;
    let [o, _, kh, kw] = dims4(OP, &w)?;
    let s = ConvShape {
        n,
        c,
        input_hw: (h, wd),
        kernel: (kh, kw),
        params: *p,
    };
    let kerr = |e: kernels::KernelError| dev.backend(OP, e);
    let g = s.geometry(KERNEL).map_err(kerr)?;
    let out_len = n * o * g.oh as usize * g.ow as usize;
    let out = dev.alloc(OP, DType::F32, out_len)?;
    if out_len == 0 {
        return Ok(Box::new(out));
    }
    if c * kh * kw == 0 {
        return Err(dev.unsupported_case(OP, "an empty kernel (C·KH·KW = 0)"));
    }
    let (xd, wdn) = (dense_f32(dev, OP, &x)?, dense_f32(dev, OP, &w)?);
    let bd = b.map(|b| dense_f32(dev, OP, &b)).transpose()?;
    let (blocks, tiling) = conv::conv2d_tiling(&s, o, b.is_some()).map_err(kerr)?;
    let ws_len = conv::conv2d_workspace_len(blocks, &tiling);
    let ws = dev.alloc(OP, DType::F32, ws_len)?;
    conv::conv2d_f32(
        dev.stream(),
        &s,
        o,
        (
            xd.gm(KERNEL).map_err(kerr)?,
            wdn.gm(KERNEL).map_err(kerr)?,
            bd.as_ref()
                .map(|b| b.gm(KERNEL))
                .transpose()
                .map_err(kerr)?,
        ),
        GmF32::new(KERNEL, out.mem(), 0, out_len).map_err(kerr)?,
        GmF32::new(KERNEL, ws.mem(), 0, ws_len).map_err(kerr)?,
    )
    .map_err(kerr)?;
    Ok(Box::new(out))
}

/// im2col: x `[N, C, H, W]` → `[N, C·KH·KW, OH·OW]`.
pub fn im2col(
    dev: &AscendDevice,
    x: View,
    kernel: (usize, usize),
    p: &Conv2dParams,
) -> Result<Buffer> {
    const OP: &str = "im2col";
    const KERNEL: &str = "osum_im2col_f32";
    let [n, c, h, w] = dims4(OP, &x)?;
    let s = ConvShape {
        n,
        c,
        input_hw: (h, w),
        kernel,
        params: *p,
    };
    let kerr = |e: kernels::KernelError| dev.backend(OP, e);
    let g = s.geometry(KERNEL).map_err(kerr)?;
    let len = n * c * kernel.0 * kernel.1 * g.oh as usize * g.ow as usize;
    let out = dev.alloc(OP, DType::F32, len)?;
    if len == 0 {
        return Ok(Box::new(out));
    }
    let xd = dense_f32(dev, OP, &x)?;
    conv::im2col_f32(
        dev.stream(),
        &s,
        xd.gm(KERNEL).map_err(kerr)?,
        GmF32::new(KERNEL, out.mem(), 0, len).map_err(kerr)?,
    )
    .map_err(kerr)?;
    Ok(Box::new(out))
}

/// col2im: cols `[N, C·KH·KW, OH·OW]` → `[N, C, H, W]`, overlaps added.
pub fn col2im(
    dev: &AscendDevice,
    cols: View,
    channels: usize,
    input_hw: (usize, usize),
    kernel: (usize, usize),
    p: &Conv2dParams,
) -> Result<Buffer> {
    const OP: &str = "col2im";
    const KERNEL: &str = "osum_col2im_f32";
    let n = cols.shape().first().copied().unwrap_or(0);
    let s = ConvShape {
        n,
        c: channels,
        input_hw,
        kernel,
        params: *p,
    };
    let kerr = |e: kernels::KernelError| dev.backend(OP, e);
    let g = s.geometry(KERNEL).map_err(kerr)?;
    let cols_len = n * channels * kernel.0 * kernel.1 * g.oh as usize * g.ow as usize;
    if cols.layout.elem_count() != cols_len {
        return Err(Error::BadShape {
            op: OP,
            shape: cols.shape().to_vec(),
            msg: format!("expected {cols_len} elements for {s:?}"),
        });
    }
    let len = n * channels * input_hw.0 * input_hw.1;
    let out = dev.alloc(OP, DType::F32, len)?;
    if len == 0 {
        return Ok(Box::new(out));
    }
    if cols_len == 0 {
        out.mem()
            .zero(out.bytes())
            .map_err(|e| dev.backend(OP, e))?;
        return Ok(Box::new(out));
    }
    let cd = dense_f32(dev, OP, &cols)?;
    conv::col2im_f32(
        dev.stream(),
        &s,
        cd.gm(KERNEL).map_err(kerr)?,
        GmF32::new(KERNEL, out.mem(), 0, len).map_err(kerr)?,
    )
    .map_err(kerr)?;
    Ok(Box::new(out))
}
