//! `Tensor`: an `Arc`-shared handle to storage + layout + dtype + device + autograd state.
//!
//! Cloning a tensor is cheap. Views share storage. Ops live in `engine/ops`, one file per family.

use super::autograd::{self, BackwardOp, Gradients, Node};
use super::device::{Buffer, Device, View};
use super::dtype::DType;
use super::error::{Error, Result};
use super::layout::{checked_elem_count, Layout};
use super::rng::Rng;
use super::storage::{DeviceBuffer, HostBuffer, HostElem, MappedHost, MappedRegion, Storage};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLockReadGuard};

/// Unique identity of a tensor handle (views and results get fresh ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

impl TensorId {
    fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TensorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// How a tensor takes part in autograd.
#[derive(Debug)]
enum GradState {
    /// Constant or frozen: never receives a gradient.
    None,
    /// Trainable leaf: [`Tensor::backward`] returns its gradient.
    Variable,
    /// Result of a recorded op.
    Node(Arc<Node>),
}

#[derive(Debug)]
struct Inner {
    id: TensorId,
    storage: Arc<Storage>,
    layout: Layout,
    dtype: DType,
    device: Arc<dyn Device>,
    grad: GradState,
}

/// An n-dimensional array on a device.
#[derive(Clone)]
pub struct Tensor(Arc<Inner>);

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor({:?}, {:?}, {}, id {})",
            self.shape(),
            self.dtype(),
            self.0.device.name(),
            self.0.id.0
        )
    }
}

/// A read guard on a tensor's storage that hands out a [`View`] for device calls.
pub struct TensorRead<'a> {
    guard: RwLockReadGuard<'a, Box<dyn DeviceBuffer>>,
    layout: &'a Layout,
}

impl TensorRead<'_> {
    /// The buffer seen through the tensor's layout.
    pub fn view(&self) -> View<'_> {
        View::new(&**self.guard, self.layout)
    }
}

impl Tensor {
    // ---- construction -----------------------------------------------------------------------

    fn build(
        storage: Arc<Storage>,
        layout: Layout,
        dtype: DType,
        device: Arc<dyn Device>,
        grad: GradState,
    ) -> Tensor {
        Tensor(Arc::new(Inner {
            id: TensorId::fresh(),
            storage,
            layout,
            dtype,
            device,
            grad,
        }))
    }

    /// A tensor over a fresh contiguous device buffer, recording `backward` on the tape when
    /// gradients are enabled and any of `inputs` tracks them. This is how every op returns.
    pub fn from_op(
        buf: Buffer,
        shape: &[usize],
        device: &Arc<dyn Device>,
        inputs: &[&Tensor],
        backward: impl FnOnce() -> Box<dyn BackwardOp>,
    ) -> Result<Tensor> {
        let t = Self::from_buffer(buf, shape, device)?;
        if !autograd::should_record(inputs) {
            return Ok(t);
        }
        let node = Node {
            op: backward(),
            inputs: inputs.iter().map(|&t| t.clone()).collect(),
        };
        Ok(t.with_grad(GradState::Node(Arc::new(node))))
    }

    /// Result of an op that has no backward: an error if gradients are being recorded through
    /// any input (never silently cut the graph).
    pub fn from_op_no_backward(
        buf: Buffer,
        shape: &[usize],
        device: &Arc<dyn Device>,
        inputs: &[&Tensor],
        op: &'static str,
    ) -> Result<Tensor> {
        if autograd::should_record(inputs) {
            return Err(Error::NoBackward { op });
        }
        Self::from_buffer(buf, shape, device)
    }

    /// A constant tensor over a device buffer holding exactly `shape`'s elements, row-major.
    pub fn from_buffer(buf: Buffer, shape: &[usize], device: &Arc<dyn Device>) -> Result<Tensor> {
        let layout = Layout::contiguous(shape);
        if buf.len() != layout.elem_count() {
            return Err(Error::ElementCount {
                op: "from_buffer",
                len: buf.len(),
                shape: shape.to_vec(),
            });
        }
        let dtype = buf.dtype();
        Ok(Self::build(
            Arc::new(Storage::new(buf)),
            layout,
            dtype,
            device.clone(),
            GradState::None,
        ))
    }

    /// A view of this tensor's storage with another layout, recording `backward` if tracked.
    pub fn view_op(
        &self,
        layout: Layout,
        backward: impl FnOnce() -> Box<dyn BackwardOp>,
    ) -> Tensor {
        let grad = if autograd::should_record(&[self]) {
            GradState::Node(Arc::new(Node {
                op: backward(),
                inputs: vec![self.clone()],
            }))
        } else {
            GradState::None
        };
        Self::build(
            self.0.storage.clone(),
            layout,
            self.0.dtype,
            self.0.device.clone(),
            grad,
        )
    }

    fn with_grad(&self, grad: GradState) -> Tensor {
        Self::build(
            self.0.storage.clone(),
            self.0.layout.clone(),
            self.0.dtype,
            self.0.device.clone(),
            grad,
        )
    }

    /// Upload host data with the given shape.
    pub fn from_host(
        data: HostBuffer,
        shape: &[usize],
        device: &Arc<dyn Device>,
    ) -> Result<Tensor> {
        let n = checked_elem_count("from_host", shape)?;
        if data.len() != n {
            return Err(Error::ElementCount {
                op: "from_host",
                len: data.len(),
                shape: shape.to_vec(),
            });
        }
        let buf = device.from_host(data)?;
        Self::from_buffer(buf, shape, device)
    }

    /// Data borrowed from a read-only memory map (a weight file) with the given shape: the CPU
    /// device keeps the borrow (no copy; writes to the tensor are refused), other devices upload
    /// a copy.
    pub fn from_mapped(
        data: MappedHost,
        shape: &[usize],
        device: &Arc<dyn Device>,
    ) -> Result<Tensor> {
        let n = checked_elem_count("from_mapped", shape)?;
        if data.len() != n {
            return Err(Error::ElementCount {
                op: "from_mapped",
                len: data.len(),
                shape: shape.to_vec(),
            });
        }
        let buf = device.from_mapped(data)?;
        Self::from_buffer(buf, shape, device)
    }

    /// The memory-mapped file region this tensor's storage borrows, if it does.
    pub fn mapped_region(&self) -> Option<MappedRegion> {
        self.0.storage.read().mapped()
    }

    /// Upload a typed vector with the given shape.
    pub fn from_vec<T: HostElem>(
        data: Vec<T>,
        shape: &[usize],
        device: &Arc<dyn Device>,
    ) -> Result<Tensor> {
        Self::from_host(HostBuffer::from_vec(data), shape, device)
    }

    /// Zeros.
    pub fn zeros(shape: &[usize], dtype: DType, device: &Arc<dyn Device>) -> Result<Tensor> {
        let n = checked_elem_count("zeros", shape)?;
        Self::from_buffer(device.zeros(dtype, n)?, shape, device)
    }

    /// Ones.
    pub fn ones(shape: &[usize], dtype: DType, device: &Arc<dyn Device>) -> Result<Tensor> {
        Self::full(1.0, shape, dtype, device)
    }

    /// Every element equal to `value` (converted to `dtype`).
    pub fn full(
        value: f64,
        shape: &[usize],
        dtype: DType,
        device: &Arc<dyn Device>,
    ) -> Result<Tensor> {
        let n = checked_elem_count("full", shape)?;
        let data = match dtype {
            DType::F32 => HostBuffer::F32(vec![value as f32; n]),
            DType::F16 => HostBuffer::F16(vec![half::f16::from_f64(value); n]),
            DType::BF16 => HostBuffer::BF16(vec![half::bf16::from_f64(value); n]),
            DType::U32 => HostBuffer::U32(vec![value as u32; n]),
            DType::I64 => HostBuffer::I64(vec![value as i64; n]),
        };
        Self::from_host(data, shape, device)
    }

    /// `[start, start+1, …, end)` as a 1-D tensor of `dtype`.
    pub fn arange(start: i64, end: i64, dtype: DType, device: &Arc<dyn Device>) -> Result<Tensor> {
        let n = (end - start).max(0) as usize;
        let vals = (start..end).map(|v| v as f64);
        let data = match dtype {
            DType::F32 => HostBuffer::F32(vals.map(|v| v as f32).collect()),
            DType::F16 => HostBuffer::F16(vals.map(half::f16::from_f64).collect()),
            DType::BF16 => HostBuffer::BF16(vals.map(half::bf16::from_f64).collect()),
            DType::U32 => {
                if start < 0 {
                    return Err(Error::invalid(
                        "arange",
                        format!("u32 range starts at {start}"),
                    ));
                }
                HostBuffer::U32((start..end).map(|v| v as u32).collect())
            }
            DType::I64 => HostBuffer::I64((start..end).collect()),
        };
        Self::from_host(data, &[n], device)
    }

    /// Normal(mean, std) f32 samples from a seeded generator.
    pub fn randn(
        shape: &[usize],
        mean: f32,
        std: f32,
        rng: &mut Rng,
        device: &Arc<dyn Device>,
    ) -> Result<Tensor> {
        let n = checked_elem_count("randn", shape)?;
        let data = (0..n).map(|_| mean + std * rng.normal()).collect();
        Self::from_vec::<f32>(data, shape, device)
    }

    /// Uniform[lo, hi) f32 samples from a seeded generator.
    pub fn rand_uniform(
        shape: &[usize],
        lo: f32,
        hi: f32,
        rng: &mut Rng,
        device: &Arc<dyn Device>,
    ) -> Result<Tensor> {
        let n = checked_elem_count("rand_uniform", shape)?;
        let data = (0..n).map(|_| lo + (hi - lo) * rng.uniform()).collect();
        Self::from_vec::<f32>(data, shape, device)
    }

    /// Zeros with this tensor's shape, dtype and device.
    pub fn zeros_like(&self) -> Result<Tensor> {
        Self::zeros(self.shape(), self.dtype(), self.device())
    }

    /// Ones with this tensor's shape, dtype and device.
    pub fn ones_like(&self) -> Result<Tensor> {
        Self::ones(self.shape(), self.dtype(), self.device())
    }

    // ---- accessors --------------------------------------------------------------------------

    /// Identity of this handle.
    pub fn id(&self) -> TensorId {
        self.0.id
    }
    /// Dimensions.
    pub fn shape(&self) -> &[usize] {
        self.0.layout.shape()
    }
    /// Size of dimension `dim` (negative counts from the end).
    pub fn dim(&self, dim: isize) -> Result<usize> {
        Ok(self.shape()[self.0.layout.dim("dim", dim)?])
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.layout.rank()
    }
    /// Number of elements.
    pub fn elem_count(&self) -> usize {
        self.0.layout.elem_count()
    }
    /// Strides, offset and shape.
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }
    /// Element type.
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }
    /// The device holding the storage.
    pub fn device(&self) -> &Arc<dyn Device> {
        &self.0.device
    }
    /// True if this tensor and `other` share storage.
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }
    /// Lock the storage for reading; `.view()` gives the argument for a device call.
    pub fn read(&self) -> TensorRead<'_> {
        TensorRead {
            guard: self.0.storage.read(),
            layout: &self.0.layout,
        }
    }
    /// Storage handle (for in-place device ops such as the optimizer step).
    pub(crate) fn storage(&self) -> &Arc<Storage> {
        &self.0.storage
    }

    // ---- autograd ---------------------------------------------------------------------------

    /// A trainable leaf sharing this tensor's storage: `backward` returns its gradient.
    pub fn variable(&self) -> Tensor {
        self.with_grad(GradState::Variable)
    }
    /// A trainable leaf whose storage the optimizer may update in place: [`Tensor::variable`],
    /// after a copy when the storage is borrowed from a read-only memory map (weights loaded
    /// zero-copy from a checkpoint that training continues from).
    pub fn owned_variable(&self) -> Result<Tensor> {
        if self.mapped_region().is_some() {
            Ok(self.copy()?.variable())
        } else {
            Ok(self.variable())
        }
    }
    /// A constant sharing this tensor's storage, cut from the tape on purpose.
    pub fn detach(&self) -> Tensor {
        self.with_grad(GradState::None)
    }
    /// True for trainable leaves.
    pub fn is_variable(&self) -> bool {
        matches!(self.0.grad, GradState::Variable)
    }
    /// True if gradients flow to or through this tensor.
    pub fn tracks_grad(&self) -> bool {
        !matches!(self.0.grad, GradState::None)
    }
    pub(crate) fn node(&self) -> Option<&Arc<Node>> {
        match &self.0.grad {
            GradState::Node(n) => Some(n),
            _ => None,
        }
    }
    /// Gradients of every trainable leaf this scalar depends on.
    pub fn backward(&self) -> Result<Gradients> {
        autograd::backward(self)
    }

    // ---- host round-trips -------------------------------------------------------------------

    /// Download as a contiguous host buffer.
    pub fn to_host(&self) -> Result<HostBuffer> {
        let r = self.read();
        self.device().to_host(r.view())
    }

    /// Download as a typed vector (row-major); the dtype must match `T`.
    pub fn to_vec<T: HostElem>(&self) -> Result<Vec<T>> {
        let host = self.to_host()?;
        let found = host.dtype();
        host.into_vec::<T>().ok_or(Error::DTypeMismatch {
            op: "to_vec",
            lhs: T::DTYPE,
            rhs: found,
        })
    }

    /// The single value of a one-element f32 tensor.
    pub fn to_scalar_f32(&self) -> Result<f32> {
        if self.elem_count() != 1 {
            return Err(Error::BadShape {
                op: "to_scalar",
                shape: self.shape().to_vec(),
                msg: "expected exactly one element".into(),
            });
        }
        Ok(self.to_vec::<f32>()?[0])
    }

    // ---- checks shared by ops ---------------------------------------------------------------

    /// Error unless `other` is on the same device.
    pub fn check_same_device(&self, op: &'static str, other: &Tensor) -> Result<()> {
        let (a, b) = (self.device().name(), other.device().name());
        if a != b {
            return Err(Error::DeviceMismatch { op, lhs: a, rhs: b });
        }
        Ok(())
    }

    /// Error unless `other` has the same dtype.
    pub fn check_same_dtype(&self, op: &'static str, other: &Tensor) -> Result<()> {
        if self.dtype() != other.dtype() {
            return Err(Error::DTypeMismatch {
                op,
                lhs: self.dtype(),
                rhs: other.dtype(),
            });
        }
        Ok(())
    }

    /// Error unless this tensor has `dtype`.
    pub fn check_dtype(&self, op: &'static str, dtype: DType) -> Result<()> {
        if self.dtype() != dtype {
            return Err(Error::DTypeMismatch {
                op,
                lhs: self.dtype(),
                rhs: dtype,
            });
        }
        Ok(())
    }

    /// Error unless this tensor has exactly `rank` dimensions.
    pub fn check_rank(&self, op: &'static str, rank: usize) -> Result<()> {
        if self.rank() != rank {
            return Err(Error::BadShape {
                op,
                shape: self.shape().to_vec(),
                msg: format!("expected rank {rank}"),
            });
        }
        Ok(())
    }
}
