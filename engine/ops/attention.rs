//! Scaled dot-product attention with grouped-query heads, causal masking aligned to the end of
//! the keys (KV-cache decoding) and an optional additive mask:
//! `out = softmax(scale·q·kᵀ + mask)·v`, computed by the device without a `Tq × Tk` buffer.
//! The backward calls the device's dedicated `attention_backward` (which recomputes the
//! probabilities) instead of differentiating a graph of small ops.

use crate::engine::autograd::{should_record, BackwardOp};
use crate::engine::device::{AttentionParams, Device, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::layout::Layout;
use crate::engine::tensor::Tensor;
use std::sync::Arc;

const OP: &str = "attention";

impl Tensor {
    /// Attention of queries `self` `[B, Hq, Tq, D]` over keys/values `[B, Hkv, Tk, D]`
    /// (`Hq % Hkv == 0`; query head `h` reads kv head `h / (Hq/Hkv)`), all f32. `mask` is an
    /// additive f32 mask broadcastable to `[B, Hq, Tq, Tk]` (e.g. `[1, 1, Tq, Tk]` or
    /// `[B, 1, 1, Tk]`, with −∞ to hide a key); it is a constant, so a mask that tracks
    /// gradients is refused with [`Error::NoBackward`]. With `p.causal`, query `i` sees keys
    /// `j ≤ i + Tk − Tq`. A query row that sees no key (all −∞) outputs zeros.
    pub fn attention(
        &self,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        p: &AttentionParams,
    ) -> Result<Tensor> {
        let q = self;
        for t in [k, v].into_iter().chain(mask) {
            q.check_same_device(OP, t)?;
        }
        for t in [q, k, v].into_iter().chain(mask) {
            t.check_dtype(OP, DType::F32)?;
        }
        check_shapes(q, k, v)?;
        let mask_layout = match mask {
            Some(m) => {
                if should_record(&[m]) {
                    return Err(Error::NoBackward { op: OP });
                }
                let (qs, ks) = (q.shape(), k.shape());
                Some(m.layout().broadcast_as(OP, &[qs[0], qs[1], qs[2], ks[2]])?)
            }
            None => None,
        };
        let mask = mask.map(|m| m.detach());
        let buf = {
            let (qr, kr, vr) = (q.read(), k.read(), v.read());
            let mr = mask.as_ref().map(|m| m.read());
            let mv = mr
                .as_ref()
                .zip(mask_layout.as_ref())
                .map(|(r, l)| View::new(r.view().buf, l));
            q.device()
                .attention(qr.view(), kr.view(), vr.view(), mv, p)?
        };
        Tensor::from_op(buf, q.shape(), q.device(), &[q, k, v], || {
            Box::new(AttentionBackward {
                mask: mask.zip(mask_layout),
                p: *p,
            })
        })
    }
}

/// Ranks, batch, head dim, head grouping and key length of q, k, v.
fn check_shapes(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<()> {
    for t in [q, k, v] {
        t.check_rank(OP, 4)?;
    }
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    let mismatch = |lhs: &[usize], rhs: &[usize]| Error::ShapeMismatch {
        op: OP,
        lhs: lhs.to_vec(),
        rhs: rhs.to_vec(),
    };
    if ks != vs {
        return Err(mismatch(ks, vs));
    }
    if ks[0] != qs[0] || ks[3] != qs[3] {
        return Err(mismatch(qs, ks));
    }
    if ks[1] == 0 || !qs[1].is_multiple_of(ks[1]) {
        return Err(Error::invalid(
            OP,
            format!(
                "query heads {} are not a multiple of kv heads {} (q {qs:?}, k {ks:?})",
                qs[1], ks[1]
            ),
        ));
    }
    Ok(())
}

/// Backward through the device's `attention_backward`; the mask (a constant) and its broadcast
/// layout are kept to recompute the same probabilities.
struct AttentionBackward {
    mask: Option<(Tensor, Layout)>,
    p: AttentionParams,
}

impl BackwardOp for AttentionBackward {
    fn name(&self) -> &'static str {
        OP
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        _: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
        let (dq, dk, dv) = {
            let (qr, kr, vr, gr) = (q.read(), k.read(), v.read(), g.read());
            let mr = self.mask.as_ref().map(|(m, l)| (m.read(), l));
            let mv = mr.as_ref().map(|(r, l)| View::new(r.view().buf, l));
            q.device().attention_backward(
                qr.view(),
                kr.view(),
                vr.view(),
                mv,
                gr.view(),
                &self.p,
            )?
        };
        let dev = q.device();
        Ok(vec![
            Some(Tensor::from_buffer(dq, q.shape(), dev)?),
            Some(Tensor::from_buffer(dk, k.shape(), dev)?),
            Some(Tensor::from_buffer(dv, v.shape(), dev)?),
        ])
    }
}

/// Keys and values of the tokens decoded so far, for incremental (token by token) attention.
///
/// Both buffers are allocated once as `[B, Hkv, capacity, D]` f32; [`KvCache::append`] writes
/// the new positions in place (no reallocation, no copy of the past) and returns views of the
/// filled prefix, ready for [`Tensor::attention`] with `causal: true` (causal masking is aligned
/// to the end of the keys, so new queries see the whole past and themselves).
#[derive(Debug)]
pub struct KvCache {
    k: Tensor,
    v: Tensor,
    len: usize,
}

impl KvCache {
    /// An empty cache for `batch × kv_heads` heads of `head_dim` values and up to `capacity`
    /// positions on `device`.
    pub fn new(
        batch: usize,
        kv_heads: usize,
        capacity: usize,
        head_dim: usize,
        device: &Arc<dyn Device>,
    ) -> Result<KvCache> {
        let shape = [batch, kv_heads, capacity, head_dim];
        Ok(KvCache {
            k: Tensor::zeros(&shape, DType::F32, device)?,
            v: Tensor::zeros(&shape, DType::F32, device)?,
            len: 0,
        })
    }

    /// Positions filled so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first append (or after [`KvCache::reset`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions the cache can hold.
    pub fn capacity(&self) -> usize {
        self.k.shape()[2]
    }

    /// Forget every position (the buffers are kept and overwritten by later appends).
    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Write `k_new`/`v_new` `[B, Hkv, T, D]` at positions `len..len+T` and return views
    /// `[B, Hkv, len+T, D]` of all cached keys and values. Errors (and leaves the cache
    /// unchanged) when the shapes do not match the cache or `len + T` exceeds the capacity.
    /// Views returned earlier stay valid: they cover the prefix that existed then. Writes are
    /// not differentiable: inputs that track gradients are refused while recording.
    pub fn append(&mut self, k_new: &Tensor, v_new: &Tensor) -> Result<(Tensor, Tensor)> {
        const OP: &str = "kv_cache_append";
        let want = self.k.shape();
        for t in [k_new, v_new] {
            t.check_rank(OP, 4)?;
            let s = t.shape();
            if s[0] != want[0] || s[1] != want[1] || s[3] != want[3] || s != k_new.shape() {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    lhs: want.to_vec(),
                    rhs: s.to_vec(),
                });
            }
        }
        let t = k_new.shape()[2];
        let end = self.len.checked_add(t).filter(|&e| e <= self.capacity());
        let Some(end) = end else {
            return Err(Error::invalid(
                OP,
                format!(
                    "{t} new positions do not fit: {} of {} already used",
                    self.len,
                    self.capacity()
                ),
            ));
        };
        self.k.write_slice(2, self.len, k_new)?;
        self.v.write_slice(2, self.len, v_new)?;
        self.len = end;
        Ok((self.k.narrow(2, 0, end)?, self.v.narrow(2, 0, end)?))
    }
}
