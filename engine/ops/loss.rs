//! Cross-entropy loss with integer targets and an ignore index.

use crate::engine::autograd::BackwardOp;
use crate::engine::device::{ReduceOp, UnaryOp, View};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::tensor::Tensor;

impl Tensor {
    /// Mean cross-entropy of logits `[.., V]` (f32) against integer targets (u32 or i64) with one
    /// entry per row of the logits (e.g. logits `[B, T, V]`, targets `[B, T]`), as a 0-d tensor.
    ///
    /// Rows whose target equals `ignore_index` (e.g. −100 for padding) are left out of both the
    /// sum and the count. If every row is ignored the loss is defined as 0 and its gradient is 0
    /// (instead of the 0/0 = NaN a literal mean would give), so a fully padded batch is harmless.
    /// A target outside `0..V` that is not `ignore_index` is an [`Error::IndexOutOfRange`].
    ///
    /// Backward: `dlogits[i] = g/count·(softmax(logits[i]) − onehot(target[i]))`, zero for
    /// ignored rows (the device's fused `cross_entropy_backward`).
    pub fn cross_entropy(&self, targets: &Tensor, ignore_index: i64) -> Result<Tensor> {
        const OP: &str = "cross_entropy";
        self.check_dtype(OP, DType::F32)?;
        self.check_same_device(OP, targets)?;
        if !matches!(targets.dtype(), DType::U32 | DType::I64) {
            return Err(Error::DTypeMismatch {
                op: OP,
                lhs: DType::I64,
                rhs: targets.dtype(),
            });
        }
        let Some((&vocab, lead)) = self.shape().split_last() else {
            return Err(Error::BadShape {
                op: OP,
                shape: vec![],
                msg: "expected logits [.., V]".into(),
            });
        };
        let rows: usize = lead.iter().product();
        if targets.elem_count() != rows {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: self.shape().to_vec(),
                rhs: targets.shape().to_vec(),
            });
        }
        let count = count_targets(OP, targets, vocab, ignore_index)?;
        // Mean over the counted rows; an all-ignored batch sums zeros, so scale 0 keeps it 0.
        let scale = if count == 0 { 0.0 } else { 1.0 / count as f32 };
        // The device takes any strides, so only a rank change needs a reshape (which copies
        // when the logits are not contiguous).
        let logits = if self.rank() == 2 {
            self.clone()
        } else {
            self.reshape(&[rows, vocab])?
        };
        let targets = if targets.rank() == 1 {
            targets.clone()
        } else {
            targets.reshape(&[rows])?
        };
        let dev = self.device();
        let buf = {
            let (l, t) = (logits.read(), targets.read());
            let per_row = dev.cross_entropy(l.view(), t.view(), ignore_index)?;
            let per_row_layout = crate::engine::Layout::contiguous(&[rows]);
            let total = dev.reduce(ReduceOp::Sum, View::new(&*per_row, &per_row_layout), 0)?;
            let total_layout = crate::engine::Layout::contiguous(&[1]);
            dev.unary(
                UnaryOp::Affine {
                    mul: scale,
                    add: 0.0,
                },
                View::new(&*total, &total_layout),
            )?
        };
        Tensor::from_op(buf, &[], dev, &[&logits, &targets], || {
            Box::new(CrossEntropyBackward {
                ignore_index,
                scale,
            })
        })
    }
}

/// Number of rows whose target is not `ignore_index`, checking every other target is in
/// `0..vocab`. Reads the targets on the host (they are small: one id per row).
fn count_targets(op: &'static str, targets: &Tensor, vocab: usize, ignore: i64) -> Result<usize> {
    let ids: Vec<i64> = match targets.dtype() {
        DType::U32 => targets
            .to_vec::<u32>()?
            .into_iter()
            .map(i64::from)
            .collect(),
        _ => targets.to_vec::<i64>()?,
    };
    let mut count = 0;
    for t in ids {
        if t == ignore {
            continue;
        }
        if t < 0 || t as u64 >= vocab as u64 {
            return Err(Error::IndexOutOfRange {
                op,
                index: t,
                size: vocab,
            });
        }
        count += 1;
    }
    Ok(count)
}

/// `loss = scale·Σᵢ nllᵢ` ⇒ each row receives `g·scale` (a stride-0 broadcast of the scalar),
/// which the device turns into `g·scale·(softmax − onehot)`.
struct CrossEntropyBackward {
    ignore_index: i64,
    scale: f32,
}
impl BackwardOp for CrossEntropyBackward {
    fn name(&self) -> &'static str {
        "cross_entropy"
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (logits, targets) = (&inputs[0], &inputs[1]);
        if !needs[0] {
            return Ok(vec![None, None]);
        }
        let rows = logits.shape()[0];
        let per_row = g.scale(self.scale)?.broadcast_as(&[rows])?;
        let dev = logits.device();
        let buf = {
            let (l, t, pg) = (logits.read(), targets.read(), per_row.read());
            dev.cross_entropy_backward(l.view(), t.view(), pg.view(), self.ignore_index)?
        };
        Ok(vec![
            Some(Tensor::from_buffer(buf, logits.shape(), dev)?),
            None,
        ])
    }
}

impl Tensor {
    /// CTC negative log-likelihood (Graves et al. 2006) of `labels` (u32/i64 `[L]`) under this
    /// sequence's log-probabilities `[T, C]` (f32, normally a `log_softmax` over the classes),
    /// with class `blank` as the CTC blank, as a 0-d tensor.
    ///
    /// Labels must lie in `0..C` and differ from `blank`. A sequence that cannot emit its labels
    /// (`T` below [`ctc_min_frames`], e.g. two frames for `a a`) is an error rather than an
    /// infinite loss: callers check the length first and skip such items visibly.
    ///
    /// Backward: `dlog_probs[t, k] = −g·γ_t(k)`, the posterior occupancy of `k` at `t` (the
    /// device's `ctc_loss_backward`); through a `log_softmax` this is `softmax − γ`.
    pub fn ctc_loss(&self, labels: &Tensor, blank: usize) -> Result<Tensor> {
        const OP: &str = "ctc_loss";
        self.check_dtype(OP, DType::F32)?;
        self.check_same_device(OP, labels)?;
        let (frames, classes) = match self.shape() {
            [t, c] => (*t, *c),
            s => {
                return Err(Error::BadShape {
                    op: OP,
                    shape: s.to_vec(),
                    msg: "expected log-probabilities [T, C]".into(),
                })
            }
        };
        if labels.rank() != 1 || !matches!(labels.dtype(), DType::U32 | DType::I64) {
            return Err(Error::BadShape {
                op: OP,
                shape: labels.shape().to_vec(),
                msg: format!(
                    "expected labels [L] of u32 or i64, got {:?}",
                    labels.dtype()
                ),
            });
        }
        let ids: Vec<u32> = labels_on_host(OP, labels, classes, blank)?;
        let need = ctc_min_frames(&ids);
        if frames < need {
            return Err(Error::BadShape {
                op: OP,
                shape: self.shape().to_vec(),
                msg: format!(
                    "{frames} frames cannot emit {} labels (CTC needs at least {need})",
                    ids.len()
                ),
            });
        }
        let dev = self.device();
        let buf = {
            let (lp, l) = (self.read(), labels.read());
            dev.ctc_loss(lp.view(), l.view(), blank)?
        };
        Tensor::from_op(buf, &[], dev, &[self, labels], || {
            Box::new(CtcBackward { blank })
        })
    }
}

/// The fewest frames CTC needs to emit `labels`: one per label plus a blank between each
/// repeated pair (repeats collapse, so `a a` needs `a ∅ a`).
pub fn ctc_min_frames(labels: &[u32]) -> usize {
    labels.len() + labels.windows(2).filter(|w| w[0] == w[1]).count()
}

/// CTC labels read on the host (one id per label), each checked to be a class other than blank.
fn labels_on_host(
    op: &'static str,
    labels: &Tensor,
    classes: usize,
    blank: usize,
) -> Result<Vec<u32>> {
    let ids: Vec<i64> = match labels.dtype() {
        DType::U32 => labels.to_vec::<u32>()?.into_iter().map(i64::from).collect(),
        _ => labels.to_vec::<i64>()?,
    };
    if blank >= classes {
        return Err(Error::IndexOutOfRange {
            op,
            index: blank as i64,
            size: classes,
        });
    }
    ids.into_iter()
        .map(|t| {
            if t < 0 || t as u64 >= classes as u64 || t as u64 == blank as u64 {
                Err(Error::IndexOutOfRange {
                    op,
                    index: t,
                    size: classes,
                })
            } else {
                Ok(t as u32)
            }
        })
        .collect()
}

/// `loss = nll(log_probs)` ⇒ the device's occupancy gradient scaled by `g`.
struct CtcBackward {
    blank: usize,
}
impl BackwardOp for CtcBackward {
    fn name(&self) -> &'static str {
        "ctc_loss"
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (log_probs, labels) = (&inputs[0], &inputs[1]);
        if !needs[0] {
            return Ok(vec![None, None]);
        }
        let g = g.reshape(&[1])?;
        let dev = log_probs.device();
        let buf = {
            let (lp, l, gv) = (log_probs.read(), labels.read(), g.read());
            dev.ctc_loss_backward(lp.view(), l.view(), gv.view(), self.blank)?
        };
        Ok(vec![
            Some(Tensor::from_buffer(buf, log_probs.shape(), dev)?),
            None,
        ])
    }
}
