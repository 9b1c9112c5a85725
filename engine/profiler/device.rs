//! [`ProfiledDevice`]: a [`Device`] that forwards every call to another device and records
//! what it did and how long it took. It reports the wrapped device's name, so tensors made
//! through it and through the bare device still match.

use super::cost;
use super::record::{OpRecord, Recorder, TensorInfo};
use crate::engine::device::{
    AdamWParams, AttentionParams, BinaryOp, Buffer, Conv2dParams, Device, ReduceOp, RopeStyle,
    UnaryOp, View,
};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::layout::Layout;
use crate::engine::storage::{DeviceBuffer, HostBuffer, MappedHost};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Wraps a device and records every op into a [`Recorder`].
#[derive(Debug)]
pub struct ProfiledDevice {
    inner: Arc<dyn Device>,
    name: Arc<str>,
    recorder: Arc<Recorder>,
}

/// Operands of a call: their shapes/dtypes and the bytes read from them.
struct Inputs {
    infos: Vec<TensorInfo>,
    bytes: u64,
}

impl Inputs {
    fn of(views: &[View]) -> Self {
        Inputs {
            infos: views.iter().map(TensorInfo::of).collect(),
            bytes: cost::bytes_read(views),
        }
    }
    /// Optional views (bias, mask) skipped when absent.
    fn of_opt(views: &[Option<View>]) -> Self {
        let present: Vec<View> = views.iter().flatten().copied().collect();
        Self::of(&present)
    }
    /// Whole buffers read in full (in-place operands, host uploads).
    fn with_buffers(mut self, bufs: &[(usize, DType)]) -> Self {
        for &(len, dtype) in bufs {
            self.infos.push(TensorInfo {
                shape: vec![len],
                dtype,
            });
            self.bytes = self.bytes.saturating_add(cost::bytes_of(len as u64, dtype));
        }
        self
    }
}

/// The output's shape when it agrees with the buffer's length, else the flat length (a
/// profiler reports what happened; it never second-guesses the device).
fn out(shape: Vec<usize>, buf: &dyn DeviceBuffer) -> TensorInfo {
    let shape = if cost::product(&shape) == buf.len() as u64 {
        shape
    } else {
        vec![buf.len()]
    };
    TensorInfo {
        shape,
        dtype: buf.dtype(),
    }
}

/// `shape` with dimension `dim` replaced by `size` (unchanged if `dim` is out of range).
fn with_dim(shape: &[usize], dim: usize, size: usize) -> Vec<usize> {
    let mut s = shape.to_vec();
    if let Some(d) = s.get_mut(dim) {
        *d = size;
    }
    s
}

fn elems(v: &View) -> u64 {
    cost::product(v.shape())
}

/// Small, stable per-thread ids for the trace's `tid` (std's `ThreadId` has no stable integer).
fn thread_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static TID: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    TID.with(|t| *t)
}

impl ProfiledDevice {
    /// Record `inner`'s calls into `recorder`.
    pub fn new(inner: Arc<dyn Device>, recorder: Arc<Recorder>) -> Self {
        let name = Arc::from(inner.name());
        ProfiledDevice {
            inner,
            name,
            recorder,
        }
    }

    /// The wrapped device.
    pub fn inner(&self) -> &Arc<dyn Device> {
        &self.inner
    }

    /// Time `run`, then record `op` with its inputs and what `describe` says about the result
    /// (outputs and FLOPs). Failed calls are not recorded; their error passes through.
    fn call<T>(
        &self,
        op: &'static str,
        inputs: Inputs,
        run: impl FnOnce() -> Result<T>,
        describe: impl FnOnce(&T) -> (Vec<TensorInfo>, u64),
    ) -> Result<T> {
        let start = Instant::now();
        let (result, launches) = crate::kernels::collect_launches(run);
        let result = result?;
        let dur = start.elapsed();
        let (outputs, flops) = describe(&result);
        let written = outputs
            .iter()
            .map(|o| cost::bytes_of(cost::product(&o.shape), o.dtype))
            .fold(0u64, u64::saturating_add);
        let origin = self.recorder.origin();
        self.recorder.record(OpRecord {
            device: self.name.clone(),
            op,
            inputs: inputs.infos,
            outputs,
            start_us: start.saturating_duration_since(origin).as_secs_f64() * 1e6,
            dur_us: dur.as_secs_f64() * 1e6,
            flops,
            bytes: inputs.bytes.saturating_add(written),
            thread: thread_id(),
            launches,
        });
        Ok(result)
    }

    /// A call returning one buffer of `shape` that costs `flops`.
    fn one(
        &self,
        op: &'static str,
        inputs: Inputs,
        shape: Vec<usize>,
        flops: u64,
        run: impl FnOnce() -> Result<Buffer>,
    ) -> Result<Buffer> {
        self.call(op, inputs, run, |b| (vec![out(shape, &**b)], flops))
    }
}

impl Device for ProfiledDevice {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn from_host(&self, data: HostBuffer) -> Result<Buffer> {
        let (n, dt) = (data.len(), data.dtype());
        let ins = Inputs::of(&[]).with_buffers(&[(n, dt)]);
        self.one("from_host", ins, vec![n], 0, || self.inner.from_host(data))
    }
    fn from_mapped(&self, data: MappedHost) -> Result<Buffer> {
        let (n, dt) = (data.len(), data.dtype());
        let ins = Inputs::of(&[]).with_buffers(&[(n, dt)]);
        self.one("from_mapped", ins, vec![n], 0, || {
            self.inner.from_mapped(data)
        })
    }
    fn to_host(&self, src: View) -> Result<HostBuffer> {
        let shape = src.shape().to_vec();
        self.call(
            "to_host",
            Inputs::of(&[src]),
            || self.inner.to_host(src),
            |h| (vec![out(shape, h)], 0),
        )
    }
    fn zeros(&self, dtype: DType, len: usize) -> Result<Buffer> {
        self.one("zeros", Inputs::of(&[]), vec![len], 0, || {
            self.inner.zeros(dtype, len)
        })
    }
    fn copy_strided(&self, src: View) -> Result<Buffer> {
        let shape = src.shape().to_vec();
        self.one("copy", Inputs::of(&[src]), shape, 0, || {
            self.inner.copy_strided(src)
        })
    }
    fn copy_into(&self, dst: &mut dyn DeviceBuffer, dst_layout: &Layout, src: View) -> Result<()> {
        let written = TensorInfo {
            shape: dst_layout.shape().to_vec(),
            dtype: dst.dtype(),
        };
        self.call(
            "copy_into",
            Inputs::of(&[src]),
            || self.inner.copy_into(dst, dst_layout, src),
            |_| (vec![written], 0),
        )
    }
    fn cast(&self, src: View, dtype: DType) -> Result<Buffer> {
        let shape = src.shape().to_vec();
        self.one("cast", Inputs::of(&[src]), shape, 0, || {
            self.inner.cast(src, dtype)
        })
    }

    fn unary(&self, op: UnaryOp, src: View) -> Result<Buffer> {
        let (shape, n) = (src.shape().to_vec(), elems(&src));
        self.one(
            op.name(),
            Inputs::of(&[src]),
            shape,
            cost::elementwise(n),
            || self.inner.unary(op, src),
        )
    }
    fn binary(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<Buffer> {
        let (shape, n) = (lhs.shape().to_vec(), elems(&lhs));
        let ins = Inputs::of(&[lhs, rhs]);
        self.one(op.name(), ins, shape, cost::elementwise(n), || {
            self.inner.binary(op, lhs, rhs)
        })
    }
    fn where_cond(&self, cond: View, on_true: View, on_false: View) -> Result<Buffer> {
        let (shape, n) = (cond.shape().to_vec(), elems(&cond));
        let ins = Inputs::of(&[cond, on_true, on_false]);
        self.one("where_cond", ins, shape, cost::elementwise(n), || {
            self.inner.where_cond(cond, on_true, on_false)
        })
    }
    fn reduce(&self, op: ReduceOp, src: View, dim: usize) -> Result<Buffer> {
        let (shape, n) = (with_dim(src.shape(), dim, 1), elems(&src));
        self.one(
            op.name(),
            Inputs::of(&[src]),
            shape,
            cost::reduce(n),
            || self.inner.reduce(op, src, dim),
        )
    }

    fn matmul(&self, lhs: View, rhs: View) -> Result<Buffer> {
        let (ls, rs) = (lhs.shape(), rhs.shape());
        let (m, k, n) = (
            cost::dim_from_end(ls, 1),
            cost::dim_from_end(ls, 0),
            cost::dim_from_end(rs, 0),
        );
        let batch_dims = &ls[..ls.len().saturating_sub(2)];
        let shape = [batch_dims, &[m, n]].concat();
        let flops = cost::matmul(cost::product(batch_dims), m as u64, k as u64, n as u64);
        self.one("matmul", Inputs::of(&[lhs, rhs]), shape, flops, || {
            self.inner.matmul(lhs, rhs)
        })
    }
    fn linear(&self, x: View, w: View, b: Option<View>, act: Option<UnaryOp>) -> Result<Buffer> {
        let fan_in = cost::dim_from_end(x.shape(), 0);
        let fan_out = cost::dim_from_end(w.shape(), 1);
        let tokens = elems(&x) / (fan_in.max(1) as u64);
        let shape = with_dim(x.shape(), x.shape().len().saturating_sub(1), fan_out);
        let flops = cost::linear(tokens, fan_in as u64, fan_out as u64, b.is_some());
        let ins = Inputs::of_opt(&[Some(x), Some(w), b]);
        // The fused activation shows in the op name (its few flops per output are not counted).
        let name = match act {
            Some(UnaryOp::Gelu) => "linear+gelu",
            Some(_) => "linear+act",
            None => "linear",
        };
        self.one(name, ins, shape, flops, || self.inner.linear(x, w, b, act))
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
        let fan_in = cost::dim_from_end(x.shape(), 0);
        let fan_out = cost::dim_from_end(w.shape(), 1);
        let rank = cost::dim_from_end(a.shape(), 1);
        let tokens = elems(&x) / (fan_in.max(1) as u64);
        let shape = with_dim(x.shape(), x.shape().len().saturating_sub(1), fan_out);
        let flops = cost::lora_linear(tokens, fan_in as u64, fan_out as u64, rank as u64);
        let ins = Inputs::of_opt(&[Some(x), Some(w), b, Some(a), Some(bm)]);
        self.one("lora_linear", ins, shape, flops, || {
            self.inner.lora_linear(x, w, b, a, bm, scale)
        })
    }

    fn index_select(&self, src: View, ids: View, dim: usize) -> Result<Buffer> {
        let shape = with_dim(src.shape(), dim, elems(&ids) as usize);
        self.one("index_select", Inputs::of(&[src, ids]), shape, 0, || {
            self.inner.index_select(src, ids, dim)
        })
    }
    fn index_add(&self, dst: View, ids: View, src: View, dim: usize) -> Result<Buffer> {
        let (shape, n) = (dst.shape().to_vec(), elems(&src));
        let ins = Inputs::of(&[dst, ids, src]);
        self.one("index_add", ins, shape, cost::elementwise(n), || {
            self.inner.index_add(dst, ids, src, dim)
        })
    }
    fn gather(&self, src: View, index: View, dim: usize) -> Result<Buffer> {
        let shape = index.shape().to_vec();
        self.one("gather", Inputs::of(&[src, index]), shape, 0, || {
            self.inner.gather(src, index, dim)
        })
    }
    fn scatter_add(&self, dst: View, index: View, src: View, dim: usize) -> Result<Buffer> {
        let (shape, n) = (dst.shape().to_vec(), elems(&src));
        let ins = Inputs::of(&[dst, index, src]);
        self.one("scatter_add", ins, shape, cost::elementwise(n), || {
            self.inner.scatter_add(dst, index, src, dim)
        })
    }
    fn concat(&self, parts: &[View], dim: usize) -> Result<Buffer> {
        let total = parts
            .iter()
            .map(|p| p.shape().get(dim).copied().unwrap_or(0))
            .sum();
        let shape = parts
            .first()
            .map(|p| with_dim(p.shape(), dim, total))
            .unwrap_or_default();
        self.one("concat", Inputs::of(parts), shape, 0, || {
            self.inner.concat(parts, dim)
        })
    }

    fn softmax(&self, src: View) -> Result<Buffer> {
        let (shape, n) = (src.shape().to_vec(), elems(&src));
        self.one(
            "softmax",
            Inputs::of(&[src]),
            shape,
            cost::softmax(n),
            || self.inner.softmax(src),
        )
    }
    fn log_softmax(&self, src: View) -> Result<Buffer> {
        let (shape, n) = (src.shape().to_vec(), elems(&src));
        self.one(
            "log_softmax",
            Inputs::of(&[src]),
            shape,
            cost::softmax(n),
            || self.inner.log_softmax(src),
        )
    }
    fn layer_norm(&self, x: View, w: View, b: Option<View>, eps: f32) -> Result<Buffer> {
        let (shape, n) = (x.shape().to_vec(), elems(&x));
        let ins = Inputs::of_opt(&[Some(x), Some(w), b]);
        self.one("layer_norm", ins, shape, cost::layer_norm(n), || {
            self.inner.layer_norm(x, w, b, eps)
        })
    }
    fn rms_norm(&self, x: View, w: View, eps: f32) -> Result<Buffer> {
        let (shape, n) = (x.shape().to_vec(), elems(&x));
        self.one(
            "rms_norm",
            Inputs::of(&[x, w]),
            shape,
            cost::rms_norm(n),
            || self.inner.rms_norm(x, w, eps),
        )
    }
    fn rope(&self, x: View, cos: View, sin: View, style: RopeStyle) -> Result<Buffer> {
        let (shape, n) = (x.shape().to_vec(), elems(&x));
        self.one(
            "rope",
            Inputs::of(&[x, cos, sin]),
            shape,
            cost::rope(n),
            || self.inner.rope(x, cos, sin, style),
        )
    }
    fn conv2d(&self, x: View, w: View, b: Option<View>, p: &Conv2dParams) -> Result<Buffer> {
        let (xs, ws) = (x.shape(), w.shape());
        let at = |s: &[usize], i: usize| s.get(i).copied().unwrap_or(0);
        let (n, c, o) = (at(xs, 0), at(xs, 1), at(ws, 0));
        let (kh, kw) = (at(ws, 2), at(ws, 3));
        let (oh, ow) = p
            .output_hw((at(xs, 2), at(xs, 3)), (kh, kw))
            .unwrap_or((0, 0));
        let flops = cost::conv2d(
            n as u64, o as u64, oh as u64, ow as u64, c as u64, kh as u64, kw as u64,
        );
        let ins = Inputs::of_opt(&[Some(x), Some(w), b]);
        self.one("conv2d", ins, vec![n, o, oh, ow], flops, || {
            self.inner.conv2d(x, w, b, p)
        })
    }
    fn im2col(&self, x: View, kernel: (usize, usize), p: &Conv2dParams) -> Result<Buffer> {
        let xs = x.shape();
        let at = |i: usize| xs.get(i).copied().unwrap_or(0);
        let (oh, ow) = p.output_hw((at(2), at(3)), kernel).unwrap_or((0, 0));
        let shape = vec![at(0), at(1) * kernel.0 * kernel.1, oh * ow];
        self.one("im2col", Inputs::of(&[x]), shape, 0, || {
            self.inner.im2col(x, kernel, p)
        })
    }
    fn col2im(
        &self,
        cols: View,
        channels: usize,
        input_hw: (usize, usize),
        kernel: (usize, usize),
        p: &Conv2dParams,
    ) -> Result<Buffer> {
        let n = cols.shape().first().copied().unwrap_or(0);
        let shape = vec![n, channels, input_hw.0, input_hw.1];
        let flops = cost::elementwise(elems(&cols));
        self.one("col2im", Inputs::of(&[cols]), shape, flops, || {
            self.inner.col2im(cols, channels, input_hw, kernel, p)
        })
    }
    fn attention(
        &self,
        q: View,
        k: View,
        v: View,
        mask: Option<View>,
        p: &AttentionParams,
    ) -> Result<Buffer> {
        let shape = q.shape().to_vec();
        let flops = attention_flops(&q, &k, p, cost::attention);
        let ins = Inputs::of_opt(&[Some(q), Some(k), Some(v), mask]);
        self.one("attention", ins, shape, flops, || {
            self.inner.attention(q, k, v, mask, p)
        })
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
        let shapes = [q.shape().to_vec(), k.shape().to_vec(), v.shape().to_vec()];
        let flops = attention_flops(&q, &k, p, cost::attention_backward);
        let ins = Inputs::of_opt(&[Some(q), Some(k), Some(v), mask, Some(dout)]);
        self.call(
            "attention_backward",
            ins,
            || self.inner.attention_backward(q, k, v, mask, dout, p),
            |(dq, dk, dv)| {
                let [sq, sk, sv] = shapes;
                (vec![out(sq, &**dq), out(sk, &**dk), out(sv, &**dv)], flops)
            },
        )
    }
    fn cross_entropy(&self, logits: View, targets: View, ignore_index: i64) -> Result<Buffer> {
        let shape = vec![logits.shape().first().copied().unwrap_or(0)];
        let flops = cost::cross_entropy(elems(&logits));
        let ins = Inputs::of(&[logits, targets]);
        self.one("cross_entropy", ins, shape, flops, || {
            self.inner.cross_entropy(logits, targets, ignore_index)
        })
    }
    fn cross_entropy_backward(
        &self,
        logits: View,
        targets: View,
        grad: View,
        ignore_index: i64,
    ) -> Result<Buffer> {
        let (shape, n) = (logits.shape().to_vec(), elems(&logits));
        let ins = Inputs::of(&[logits, targets, grad]);
        self.one(
            "cross_entropy_backward",
            ins,
            shape,
            cost::cross_entropy(n),
            || {
                self.inner
                    .cross_entropy_backward(logits, targets, grad, ignore_index)
            },
        )
    }
    fn ctc_loss(&self, log_probs: View, labels: View, blank: usize) -> Result<Buffer> {
        let flops = cost::ctc(&log_probs, &labels);
        let ins = Inputs::of(&[log_probs, labels]);
        self.one("ctc_loss", ins, vec![1], flops, || {
            self.inner.ctc_loss(log_probs, labels, blank)
        })
    }
    fn ctc_loss_backward(
        &self,
        log_probs: View,
        labels: View,
        grad: View,
        blank: usize,
    ) -> Result<Buffer> {
        let (shape, flops) = (log_probs.shape().to_vec(), cost::ctc(&log_probs, &labels));
        let ins = Inputs::of(&[log_probs, labels, grad]);
        self.one("ctc_loss_backward", ins, shape, flops, || {
            self.inner.ctc_loss_backward(log_probs, labels, grad, blank)
        })
    }

    fn adamw_step(
        &self,
        param: &mut dyn DeviceBuffer,
        grad: View,
        m: &mut dyn DeviceBuffer,
        v: &mut dyn DeviceBuffer,
        hp: &AdamWParams,
    ) -> Result<()> {
        // Reads θ, g, m, v; writes θ, m, v.
        let state = [
            (param.len(), param.dtype()),
            (m.len(), m.dtype()),
            (v.len(), v.dtype()),
        ];
        let ins = Inputs::of(&[grad]).with_buffers(&state);
        let outputs: Vec<TensorInfo> = state
            .iter()
            .map(|&(len, dtype)| TensorInfo {
                shape: vec![len],
                dtype,
            })
            .collect();
        let flops = cost::adamw(state[0].0 as u64);
        self.call(
            "adamw_step",
            ins,
            || self.inner.adamw_step(param, grad, m, v, hp),
            |_| (outputs, flops),
        )
    }

    fn unsupported(&self, op: &'static str) -> Error {
        self.inner.unsupported(op)
    }
}

/// FLOPs of an attention call from q `[B, Hq, Tq, D]` and k `[B, Hkv, Tk, D]`.
fn attention_flops(
    q: &View,
    k: &View,
    p: &AttentionParams,
    formula: fn(u64, u64, u64, u64, u64, bool) -> u64,
) -> u64 {
    let (qs, ks) = (q.shape(), k.shape());
    let at = |s: &[usize], i: usize| s.get(i).copied().unwrap_or(0) as u64;
    formula(
        at(qs, 0),
        at(qs, 1),
        at(qs, 2),
        at(ks, 2),
        at(qs, 3),
        p.causal,
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Names of the `fn`s between `start` and the first line that closes the block.
    fn fns<'a>(src: &'a str, start: &str) -> BTreeSet<&'a str> {
        let from = src.find(start).expect("block start");
        let block = &src[from..];
        let block = &block[..block.find("\n}\n").expect("block end")];
        block
            .split("fn ")
            .skip(1)
            .map(|rest| rest.split(['(', '<']).next().unwrap_or("").trim())
            .collect()
    }

    /// A trait method the wrapper does not forward would silently hit the trait's default
    /// (an `Unsupported` error) whenever profiling is on: every method must be forwarded.
    #[test]
    fn forwards_every_device_method() {
        let in_trait = fns(include_str!("../device.rs"), "pub trait Device");
        let forwarded = fns(include_str!("device.rs"), "impl Device for ProfiledDevice");
        assert!(in_trait.len() > 25, "{in_trait:?}");
        assert_eq!(in_trait, forwarded);
    }
}
