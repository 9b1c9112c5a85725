//! Linear layers on the Ascend device through `osum_lora_linear_f32`
//! (kernels/ascend/lora_linear.cpp): `lora_linear` (`x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ`, fused on the
//! cube: both products accumulate into one L0C tile, `B·A` is never formed) and `linear`
//! (`act(x·Wᵀ + b)`, the rank-0 case, GELU fused into the epilogue).
//!
//! x `[…, in]` is read as `[rows, in]`; operands are made dense f32 first
//! ([`super::operand`]: f16/bf16 weights through the cast kernel). Shapes were checked by the
//! ops layer (engine/ops/matmul.rs, engine/ops/lora.rs).

use super::operands::{dense_f32, Dense};
use super::AscendDevice;
use crate::engine::device::{Buffer, Device, UnaryOp, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::layout::Layout;
use crate::kernels::lora::{self, Activation, LoraOperands, LoraShape};
use crate::kernels::{self, GmF32};

const KERNEL: &str = "osum_lora_linear_f32";

/// `y = x·Wᵀ + b + scale·(x·Aᵀ)·Bᵀ`.
pub fn lora_linear(
    dev: &AscendDevice,
    x: View,
    w: View,
    b: Option<View>,
    (a, bm, scale): (View, View, f32),
) -> Result<Buffer> {
    let rank = a.shape().first().copied().unwrap_or(0);
    run(
        dev,
        "lora_linear",
        (x, w, b),
        Some((a, bm, rank, scale)),
        Activation::None,
    )
}

/// `y = act(x·Wᵀ + b)`; `act` is `None` or GELU, any other activation is an error naming it.
pub fn linear(
    dev: &AscendDevice,
    x: View,
    w: View,
    b: Option<View>,
    act: Option<UnaryOp>,
) -> Result<Buffer> {
    let act = match act {
        None => Activation::None,
        Some(UnaryOp::Gelu) => Activation::Gelu,
        Some(other) => {
            return Err(Error::Unsupported {
                op: other.name(),
                device: format!("{} (fused into linear)", dev.name),
            })
        }
    };
    run(dev, "linear", (x, w, b), None, act)
}

type LoraPair<'a> = (View<'a>, View<'a>, usize, f32);

fn run(
    dev: &AscendDevice,
    op: &'static str,
    (x, w, b): (View, View, Option<View>),
    lora: Option<LoraPair>,
    act: Activation,
) -> Result<Buffer> {
    let kerr = |e: kernels::KernelError| dev.backend(op, e);
    let k = x.shape().last().copied().unwrap_or(1);
    let n = w.shape()[0];
    // Rows from the leading dims, not elem_count / k: with k = 0 that division says 0 rows and
    // would return an empty output for a non-empty shape.
    let dims = x.shape();
    let m: usize = dims[..dims.len().saturating_sub(1)].iter().product();
    let rank = lora.map_or(0, |l| l.2);
    let out = dev.alloc(op, DType::F32, m * n)?;
    if m * n == 0 {
        return Ok(Box::new(out));
    }
    if k == 0 {
        return empty_product(dev, (m, n), b, act);
    }
    if lora.is_some() && rank == 0 {
        return Err(dev.unsupported_case(op, "LoRA rank 0"));
    }
    let shape = LoraShape {
        m,
        n,
        k,
        rank,
        scale: lora.map_or(0.0, |l| l.3),
        bias: b.is_some(),
        act,
    };
    let (blocks, tiling) = lora::lora_linear_tiling(&shape).map_err(kerr)?;
    let ws_len = lora::lora_workspace_len(blocks, &tiling);
    let ws = dev.alloc(op, DType::F32, ws_len)?;
    let (xd, wd) = (dense_f32(dev, op, &x)?, dense_f32(dev, op, &w)?);
    let bd = b.map(|b| dense_f32(dev, op, &b)).transpose()?;
    let pair: Option<(Dense, Dense)> = lora
        .map(|(a, bm, _, _)| Ok::<_, Error>((dense_f32(dev, op, &a)?, dense_f32(dev, op, &bm)?)))
        .transpose()?;
    let operands = LoraOperands {
        x: xd.gm(KERNEL).map_err(kerr)?,
        w: wd.gm(KERNEL).map_err(kerr)?,
        b: bd
            .as_ref()
            .map(|b| b.gm(KERNEL))
            .transpose()
            .map_err(kerr)?,
        lora: pair
            .as_ref()
            .map(|(a, bm)| Ok((a.gm(KERNEL)?, bm.gm(KERNEL)?)))
            .transpose()
            .map_err(kerr)?,
    };
    lora::lora_linear_f32(
        dev.stream(),
        &shape,
        operands,
        GmF32::new(KERNEL, out.mem(), 0, m * n).map_err(kerr)?,
        GmF32::new(KERNEL, ws.mem(), 0, ws_len).map_err(kerr)?,
    )
    .map_err(kerr)?;
    Ok(Box::new(out))
}

/// `act(x·Wᵀ + b)` with zero input features: both products are empty sums (the LoRA term
/// too), so every row is `act(b)`, or `act(0)` without a bias. Made on the device: the bias
/// broadcast to `[m, n]` by the copy/cast kernel (a stride-0 view), zeros by the runtime's
/// memset, the activation by the unary kernel.
fn empty_product(
    dev: &AscendDevice,
    (m, n): (usize, usize),
    b: Option<View>,
    act: Activation,
) -> Result<Buffer> {
    let rows = match b {
        Some(b) => {
            let stride = b.layout.strides().last().copied().unwrap_or(0);
            let broadcast = Layout::new(vec![m, n], vec![0, stride], b.layout.offset());
            dev.cast(View::new(b.buf, &broadcast), DType::F32)?
        }
        None => dev.zeros(DType::F32, m * n)?,
    };
    match act {
        Activation::None => Ok(rows),
        Activation::Gelu => {
            let dense = Layout::contiguous(&[m, n]);
            dev.unary(UnaryOp::Gelu, View::new(&*rows, &dense))
        }
    }
}
