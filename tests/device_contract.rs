//! The Device contract seen from outside: a device that implements only memory transfers must
//! refuse every compute op with an error naming the op and itself (never a silent CPU fallback),
//! and tensors on different devices never mix.

use osum::engine::{
    cpu::CpuDevice, AttentionParams, Buffer, DType, Device, Error, HostBuffer, Result, Tensor, View,
};
use std::sync::Arc;

/// Memory only: uploads, downloads and copies go through host buffers; nothing else is provided.
#[derive(Debug)]
struct MemoryOnlyDevice;

impl Device for MemoryOnlyDevice {
    fn name(&self) -> String {
        "memory-only".into()
    }
    fn from_host(&self, data: HostBuffer) -> Result<Buffer> {
        CpuDevice::default().from_host(data)
    }
    fn to_host(&self, src: View) -> Result<HostBuffer> {
        CpuDevice::default().to_host(src)
    }
    fn zeros(&self, dtype: DType, len: usize) -> Result<Buffer> {
        CpuDevice::default().zeros(dtype, len)
    }
    fn copy_strided(&self, src: View) -> Result<Buffer> {
        CpuDevice::default().copy_strided(src)
    }
}

fn memory_only() -> Arc<dyn Device> {
    Arc::new(MemoryOnlyDevice)
}

fn expect_unsupported(r: Result<Tensor>, op: &str) {
    match r {
        Err(e @ Error::Unsupported { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(op) && msg.contains("memory-only"), "{msg}");
        }
        other => panic!("{op}: expected an Unsupported error, got {other:?}"),
    }
}

#[test]
fn a_device_without_kernels_refuses_each_op_by_name() -> Result<()> {
    let dev = memory_only();
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2], &dev)?;
    // Memory ops work: views and host round-trips need no kernels beyond copies.
    assert_eq!(
        x.t()?.contiguous()?.to_vec::<f32>()?,
        vec![1.0, 3.0, 2.0, 4.0]
    );
    expect_unsupported(x.exp(), "exp");
    expect_unsupported(x.add(&x), "add");
    expect_unsupported(x.sum_keepdim(0), "sum");
    expect_unsupported(x.matmul(&x), "matmul");
    expect_unsupported(x.softmax(), "softmax");
    expect_unsupported(x.to_dtype(DType::F16), "cast");
    let w = Tensor::ones(&[2], DType::F32, &dev)?;
    expect_unsupported(x.layer_norm(&w, None, 1e-5), "layer_norm");
    expect_unsupported(x.rms_norm(&w, 1e-5), "rms_norm");
    let q = Tensor::zeros(&[1, 1, 2, 2], DType::F32, &dev)?;
    let p = AttentionParams {
        scale: 1.0,
        causal: true,
    };
    expect_unsupported(q.attention(&q, &q, None, &p), "attention");
    Ok(())
}

#[test]
fn tensors_on_different_devices_never_mix() -> Result<()> {
    let cpu = osum::engine::cpu_device();
    let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2], &cpu)?;
    let b = Tensor::from_vec(vec![1.0f32, 2.0], &[2], &memory_only())?;
    for (op, r) in [
        ("add", a.add(&b)),
        ("matmul", a.reshape(&[1, 2])?.matmul(&b.reshape(&[2, 1])?)),
        ("cat", Tensor::cat(&[a.clone(), b.clone()], 0)),
    ] {
        match r {
            Err(e @ Error::DeviceMismatch { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(op) && msg.contains("cpu") && msg.contains("memory-only"),
                    "{msg}"
                );
            }
            other => panic!("{op}: expected a DeviceMismatch error, got {other:?}"),
        }
    }
    Ok(())
}
