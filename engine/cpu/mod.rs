//! The CPU device: host memory, rayon threads, hand-written SIMD micro-kernels for GEMM and
//! attention, auto-vectorized loops (compiled per ISA) for the rest.
//! Each op family's kernel lives in its own file; this file only dispatches.
//!
//! Two devices share these kernels: `cpu` (f32 arithmetic) and `cpu-bf16`, whose packed products
//! with more than a few rows (`matmul`, `linear`, `conv2d`) round their operands to bf16 and
//! multiply on AMX tiles or with AVX512_BF16, summing in f32 (see [`gemm::Precision`]), and
//! whose attention forward runs its two products on AVX512_BF16. Every other op — GEMV-shaped
//! products, attention backward, norms, elementwise — is the same f32 kernel on both.

pub mod attention;
pub mod conv;
pub mod ctc;
pub mod elementwise;
pub mod gemm;
pub mod heap;
pub mod index;
pub mod isa;
pub mod lora;
pub mod loss;
pub mod matmul;
pub mod memory;
pub mod norm;
pub mod optim;
pub mod reduce;
pub mod rope;
pub mod vector;

use crate::engine::device::{
    AdamWParams, AttentionParams, BinaryOp, Buffer, Conv2dParams, Device, ReduceOp, RopeStyle,
    UnaryOp, View,
};
use crate::engine::dtype::DType;
use crate::engine::error::Result;
use crate::engine::layout::Layout;
use crate::engine::storage::{DeviceBuffer, HostBuffer, MappedHost};
use std::sync::{Arc, OnceLock};

/// The CPU device: one shared instance per matrix-product precision.
#[derive(Debug, Default)]
pub struct CpuDevice {
    precision: gemm::Precision,
}

impl CpuDevice {
    /// The process-wide shared instance.
    pub fn shared() -> Arc<dyn Device> {
        static DEV: OnceLock<Arc<dyn Device>> = OnceLock::new();
        DEV.get_or_init(|| Arc::new(CpuDevice::default())).clone()
    }

    /// The shared `cpu-bf16` instance, or an error naming what this CPU lacks.
    pub fn shared_bf16() -> Result<Arc<dyn Device>> {
        if !gemm::Precision::Bf16.supported() {
            return Err(crate::engine::Error::Unsupported {
                op: "bf16 matrix products (AVX-512 with AVX512_BF16)",
                device: "cpu-bf16".into(),
            });
        }
        static DEV: OnceLock<Arc<dyn Device>> = OnceLock::new();
        Ok(DEV
            .get_or_init(|| {
                Arc::new(CpuDevice {
                    precision: gemm::Precision::Bf16,
                })
            })
            .clone())
    }
}

impl Device for CpuDevice {
    fn name(&self) -> String {
        match self.precision {
            gemm::Precision::F32 => "cpu".into(),
            gemm::Precision::Bf16 => "cpu-bf16".into(),
        }
    }

    fn from_host(&self, data: HostBuffer) -> Result<Buffer> {
        Ok(memory::boxed(data))
    }
    fn from_mapped(&self, data: MappedHost) -> Result<Buffer> {
        Ok(Box::new(memory::MappedBuffer::new(data)))
    }
    fn to_host(&self, src: View) -> Result<HostBuffer> {
        let buf = memory::copy_strided(src)?;
        let host = buf.as_any().downcast_ref::<HostBuffer>().cloned();
        host.ok_or_else(|| crate::engine::Error::invalid("to_host", "not a cpu buffer"))
    }
    fn zeros(&self, dtype: DType, len: usize) -> Result<Buffer> {
        Ok(memory::boxed(HostBuffer::zeros(dtype, len)))
    }
    fn copy_strided(&self, src: View) -> Result<Buffer> {
        memory::copy_strided(src)
    }
    fn copy_into(&self, dst: &mut dyn DeviceBuffer, dst_layout: &Layout, src: View) -> Result<()> {
        memory::copy_into(dst, dst_layout, src)
    }
    fn cast(&self, src: View, dtype: DType) -> Result<Buffer> {
        memory::cast(src, dtype)
    }

    fn unary(&self, op: UnaryOp, src: View) -> Result<Buffer> {
        elementwise::unary(op, src)
    }
    fn binary(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<Buffer> {
        elementwise::binary(op, lhs, rhs)
    }
    fn where_cond(&self, cond: View, on_true: View, on_false: View) -> Result<Buffer> {
        elementwise::where_cond(cond, on_true, on_false)
    }
    fn reduce(&self, op: ReduceOp, src: View, dim: usize) -> Result<Buffer> {
        reduce::reduce(op, src, dim)
    }

    fn matmul(&self, lhs: View, rhs: View) -> Result<Buffer> {
        matmul::matmul(lhs, rhs, self.precision)
    }
    fn linear(&self, x: View, w: View, b: Option<View>, act: Option<UnaryOp>) -> Result<Buffer> {
        matmul::linear(x, w, b, act, self.precision)
    }
    fn lora_linear(
        &self,
        x: View,
        w: View,
        b: Option<View>,
        a: View,
        bm: View,
        scale: f32,
    ) -> Result<Buffer> {
        lora::lora_linear(x, w, b, (a, bm, scale), self.precision)
    }

    fn index_select(&self, src: View, ids: View, dim: usize) -> Result<Buffer> {
        index::index_select(src, ids, dim)
    }
    fn index_add(&self, dst: View, ids: View, src: View, dim: usize) -> Result<Buffer> {
        index::index_add(dst, ids, src, dim)
    }
    fn gather(&self, src: View, index: View, dim: usize) -> Result<Buffer> {
        index::gather(src, index, dim)
    }
    fn scatter_add(&self, dst: View, index: View, src: View, dim: usize) -> Result<Buffer> {
        index::scatter_add(dst, index, src, dim)
    }
    fn concat(&self, parts: &[View], dim: usize) -> Result<Buffer> {
        index::concat(parts, dim)
    }

    fn softmax(&self, src: View) -> Result<Buffer> {
        norm::softmax(src)
    }
    fn log_softmax(&self, src: View) -> Result<Buffer> {
        norm::log_softmax(src)
    }
    fn layer_norm(&self, x: View, w: View, b: Option<View>, eps: f32) -> Result<Buffer> {
        norm::layer_norm(x, w, b, eps)
    }
    fn rms_norm(&self, x: View, w: View, eps: f32) -> Result<Buffer> {
        norm::rms_norm(x, w, eps)
    }
    fn rope(&self, x: View, cos: View, sin: View, style: RopeStyle) -> Result<Buffer> {
        rope::rope(x, cos, sin, style)
    }
    fn conv2d(&self, x: View, w: View, b: Option<View>, p: &Conv2dParams) -> Result<Buffer> {
        conv::conv2d(x, w, b, p, self.precision)
    }
    fn im2col(&self, x: View, kernel: (usize, usize), p: &Conv2dParams) -> Result<Buffer> {
        conv::im2col(x, kernel, p)
    }
    fn col2im(
        &self,
        cols: View,
        channels: usize,
        input_hw: (usize, usize),
        kernel: (usize, usize),
        p: &Conv2dParams,
    ) -> Result<Buffer> {
        conv::col2im(cols, channels, input_hw, kernel, p)
    }
    fn attention(
        &self,
        q: View,
        k: View,
        v: View,
        mask: Option<View>,
        p: &AttentionParams,
    ) -> Result<Buffer> {
        attention::attention(q, k, v, mask, p, self.precision)
    }
    fn attention_backward(
        &self,
        q: View,
        k: View,
        v: View,
        mask: Option<View>,
        dout: View,
        p: &AttentionParams,
    ) -> Result<(Buffer, Buffer, Buffer)> {
        attention::attention_backward(q, k, v, mask, dout, p)
    }
    fn cross_entropy(&self, logits: View, targets: View, ignore_index: i64) -> Result<Buffer> {
        loss::cross_entropy(logits, targets, ignore_index)
    }
    fn cross_entropy_backward(
        &self,
        logits: View,
        targets: View,
        grad: View,
        ignore_index: i64,
    ) -> Result<Buffer> {
        loss::cross_entropy_backward(logits, targets, grad, ignore_index)
    }
    fn ctc_loss(&self, log_probs: View, labels: View, blank: usize) -> Result<Buffer> {
        ctc::ctc_loss(log_probs, labels, blank)
    }
    fn ctc_loss_backward(
        &self,
        log_probs: View,
        labels: View,
        grad: View,
        blank: usize,
    ) -> Result<Buffer> {
        ctc::ctc_loss_backward(log_probs, labels, grad, blank)
    }

    fn adamw_step(
        &self,
        param: &mut dyn DeviceBuffer,
        grad: View,
        m: &mut dyn DeviceBuffer,
        v: &mut dyn DeviceBuffer,
        hp: &AdamWParams,
    ) -> Result<()> {
        optim::adamw_step(param, grad, m, v, hp)
    }
}
