//! Optimizer updates applied in place to parameter storage.

use crate::engine::device::AdamWParams;
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::tensor::Tensor;

/// Error unless `t` is f32, has `grad`'s shape and is the whole of its storage laid out
/// row-major from element 0, so an in-place update of the buffer is exactly an update of `t`.
fn check_state(what: &str, t: &Tensor, grad: &Tensor) -> Result<()> {
    const OP: &str = "adamw_step";
    t.check_same_device(OP, grad)?;
    if t.dtype() != DType::F32 {
        return Err(Error::invalid(
            OP,
            format!("{what} must be f32, got {:?}", t.dtype()),
        ));
    }
    if t.shape() != grad.shape() {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: t.shape().to_vec(),
            rhs: grad.shape().to_vec(),
        });
    }
    let buffer_len = t.read().view().buf.len();
    let l = t.layout();
    if !l.is_contiguous() || l.offset() != 0 || buffer_len != t.elem_count() {
        return Err(Error::invalid(
            OP,
            format!(
                "{what} must be a contiguous tensor covering its whole storage \
                 (shape {:?}, strides {:?}, offset {}, storage of {buffer_len} elements)",
                t.shape(),
                l.strides(),
                l.offset()
            ),
        ));
    }
    Ok(())
}

/// One AdamW step (decoupled weight decay, Loshchilov & Hutter) updating `param`, `m` and `v`
/// in place from `grad`; `hp.step` is the 1-based step count used for bias correction.
///
/// `param`, `m` and `v` must be f32, contiguous, start at offset 0 and cover their whole storage
/// (in-place updates go to the buffer, so a view of part of a buffer is refused), have `grad`'s
/// shape, and be three distinct storages, none shared with `grad` (each is locked for the
/// update, and locking one storage twice would deadlock). `grad` may be any float dtype and
/// layout.
///
/// This is an optimizer update, not a graph op: it is allowed on trainable leaves
/// ([`Tensor::variable`]), records nothing on the tape and returns no tensor. Every view sharing
/// `param`'s storage sees the new values.
pub fn adamw_step(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    hp: &AdamWParams,
) -> Result<()> {
    const OP: &str = "adamw_step";
    if !grad.dtype().is_float() {
        return Err(Error::invalid(
            OP,
            format!("grad must be a float tensor, got {:?}", grad.dtype()),
        ));
    }
    check_state("param", param, grad)?;
    check_state("m", m, grad)?;
    check_state("v", v, grad)?;
    let named = [("param", param), ("m", m), ("v", v), ("grad", grad)];
    for (i, (a_name, a)) in named.iter().enumerate() {
        for (b_name, b) in &named[i + 1..] {
            if a.same_storage(b) {
                return Err(Error::invalid(
                    OP,
                    format!("{a_name} and {b_name} share storage; each needs its own buffer"),
                ));
            }
        }
    }
    if hp.step == 0 {
        return Err(Error::invalid(OP, "step is 1-based, got 0"));
    }
    let g = grad.read();
    let (mut pw, mut mw, mut vw) = (
        param.storage().write(),
        m.storage().write(),
        v.storage().write(),
    );
    param
        .device()
        .adamw_step(&mut **pw, g.view(), &mut **mw, &mut **vw, hp)
}
