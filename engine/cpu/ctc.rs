//! Connectionist temporal classification (Graves et al. 2006, "Connectionist Temporal
//! Classification", §4.1) over one sequence of log-probabilities `[T, C]`.
//!
//! The labels `l` (length `L`) are extended with blanks to `l' = (b, l1, b, l2, …, lL, b)`
//! (`S = 2L + 1` states). In log space, with `lp[t, k]` the input:
//! - forward `α_0(0) = lp[0, b]`, `α_0(1) = lp[0, l1]`, and
//!   `α_t(s) = lp[t, l'_s] + lse(α_{t−1}(s), α_{t−1}(s−1), α_{t−1}(s−2) if l'_s ≠ b and l'_s ≠ l'_{s−2})`;
//!   `nll = −lse(α_{T−1}(S−1), α_{T−1}(S−2))`;
//! - backward `β` mirrors it from the end, with `β_t(s)` including `lp[t, l'_s]`;
//! - the occupancy `γ_t(k) = Σ_{s: l'_s = k} exp(α_t(s) + β_t(s) − lp[t, k] + nll)` is the
//!   posterior probability of emitting `k` at `t`, and `∂nll/∂lp[t, k] = −γ_t(k)` (eq. 14–16).
//!
//! The recursions run in f64 over the `T × S` lattice; only the `L + 1` label columns of the
//! input are read. A sequence too short for its labels (`T` below [`crate::engine::ops::loss::ctc_min_frames`]) has no path:
//! its loss is `+∞` and its gradient zero; the tensor-level op refuses it before calling here.

use super::memory::{boxed, f32_only, id_values};
use crate::engine::device::{Buffer, View};
use crate::engine::error::{Error, Result};
use crate::engine::storage::HostBuffer;
use std::borrow::Cow;

/// `ln(e^a + e^b)` without overflow; `−∞` is the identity.
fn lse2(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// The checked inputs of one CTC call: dense log-probs, the extended label sequence and sizes.
struct Lattice<'a> {
    lp: Cow<'a, [f32]>,
    frames: usize,
    classes: usize,
    /// `l'`: blank, l1, blank, l2, …, lL, blank.
    ext: Vec<usize>,
}

impl<'a> Lattice<'a> {
    fn new(
        op: &'static str,
        log_probs: &View<'a>,
        labels: &View,
        blank: usize,
    ) -> Result<Lattice<'a>> {
        let (frames, classes) = match log_probs.shape() {
            [t, c] => (*t, *c),
            s => {
                return Err(Error::BadShape {
                    op,
                    shape: s.to_vec(),
                    msg: "expected log-probabilities [T, C]".into(),
                })
            }
        };
        if blank >= classes {
            return Err(Error::IndexOutOfRange {
                op,
                index: blank as i64,
                size: classes,
            });
        }
        let lp = f32_only(op, log_probs)?;
        let mut ext = Vec::new();
        for id in id_values(op, labels)? {
            if id < 0 || id as u64 >= classes as u64 || id as usize == blank {
                return Err(Error::IndexOutOfRange {
                    op,
                    index: id,
                    size: classes,
                });
            }
            ext.push(blank);
            ext.push(id as usize);
        }
        ext.push(blank);
        Ok(Lattice {
            lp,
            frames,
            classes,
            ext,
        })
    }

    fn at(&self, t: usize, s: usize) -> f64 {
        self.lp[t * self.classes + self.ext[s]] as f64
    }

    /// Whether state `s` may be entered from `s − 2` (skipping the blank between two labels).
    fn can_skip(&self, s: usize) -> bool {
        s >= 2 && self.ext[s] != self.ext[s - 2]
    }

    /// `α` over the lattice, `[T][S]` flattened.
    fn alpha(&self) -> Vec<f64> {
        let (t_n, s_n) = (self.frames, self.ext.len());
        let mut a = vec![f64::NEG_INFINITY; t_n * s_n];
        if t_n == 0 {
            return a;
        }
        a[0] = self.at(0, 0);
        if s_n > 1 {
            a[1] = self.at(0, 1);
        }
        for t in 1..t_n {
            for s in 0..s_n {
                let prev = &a[(t - 1) * s_n..t * s_n];
                let mut v = prev[s];
                if s >= 1 {
                    v = lse2(v, prev[s - 1]);
                }
                if self.can_skip(s) {
                    v = lse2(v, prev[s - 2]);
                }
                a[t * s_n + s] = if v == f64::NEG_INFINITY {
                    v
                } else {
                    v + self.at(t, s)
                };
            }
        }
        a
    }

    /// `β` over the lattice (each entry includes its own frame's log-prob), `[T][S]` flattened.
    fn beta(&self) -> Vec<f64> {
        let (t_n, s_n) = (self.frames, self.ext.len());
        let mut b = vec![f64::NEG_INFINITY; t_n * s_n];
        if t_n == 0 {
            return b;
        }
        let last = (t_n - 1) * s_n;
        b[last + s_n - 1] = self.at(t_n - 1, s_n - 1);
        if s_n > 1 {
            b[last + s_n - 2] = self.at(t_n - 1, s_n - 2);
        }
        for t in (0..t_n - 1).rev() {
            for s in 0..s_n {
                let next = &b[(t + 1) * s_n..(t + 2) * s_n];
                let mut v = next[s];
                if s + 1 < s_n {
                    v = lse2(v, next[s + 1]);
                }
                if s + 2 < s_n && self.can_skip(s + 2) {
                    v = lse2(v, next[s + 2]);
                }
                b[t * s_n + s] = if v == f64::NEG_INFINITY {
                    v
                } else {
                    v + self.at(t, s)
                };
            }
        }
        b
    }

    /// `−ln p(l | x)` from `α`; `+∞` when no path exists.
    fn nll(&self, alpha: &[f64]) -> f64 {
        let s_n = self.ext.len();
        if self.frames == 0 {
            return f64::INFINITY;
        }
        let row = &alpha[(self.frames - 1) * s_n..];
        let mut total = row[s_n - 1];
        if s_n > 1 {
            total = lse2(total, row[s_n - 2]);
        }
        -total
    }
}

/// The CTC negative log-likelihood of `labels` (`[L]`, u32/i64, none equal to `blank`) under
/// `log_probs` (`[T, C]` f32), as a `[1]` buffer; `+∞` when `T` is too short for the labels.
pub fn ctc_loss(log_probs: View, labels: View, blank: usize) -> Result<Buffer> {
    let lat = Lattice::new("ctc_loss", &log_probs, &labels, blank)?;
    let nll = lat.nll(&lat.alpha());
    Ok(boxed(HostBuffer::F32(vec![nll as f32])))
}

/// `∂(g·nll)/∂lp[t, k] = −g·γ_t(k)` for the `[1]` upstream gradient `g`, as `[T, C]`; all zero
/// when no path exists.
pub fn ctc_loss_backward(
    log_probs: View,
    labels: View,
    grad: View,
    blank: usize,
) -> Result<Buffer> {
    const OP: &str = "ctc_loss_backward";
    let lat = Lattice::new(OP, &log_probs, &labels, blank)?;
    let g = match &*f32_only(OP, &grad)? {
        [g] => *g as f64,
        _ => {
            return Err(Error::BadShape {
                op: OP,
                shape: grad.shape().to_vec(),
                msg: "expected the scalar gradient of the loss".into(),
            })
        }
    };
    let mut out = vec![0.0f32; lat.frames * lat.classes];
    let alpha = lat.alpha();
    let nll = lat.nll(&alpha);
    if !nll.is_finite() {
        return Ok(boxed(HostBuffer::F32(out)));
    }
    let beta = lat.beta();
    let s_n = lat.ext.len();
    // γ_t(k) summed in f64 per frame: a label can occupy several states (repeats, blanks).
    let mut occupancy = vec![0.0f64; lat.classes];
    for t in 0..lat.frames {
        let mut touched = Vec::with_capacity(s_n);
        for s in 0..s_n {
            let ab = alpha[t * s_n + s] + beta[t * s_n + s];
            if ab == f64::NEG_INFINITY {
                continue;
            }
            let k = lat.ext[s];
            occupancy[k] += (ab - lat.at(t, s) + nll).exp();
            touched.push(k);
        }
        for k in touched {
            let o = std::mem::take(&mut occupancy[k]);
            if o != 0.0 {
                out[t * lat.classes + k] = (-g * o) as f32;
            }
        }
    }
    Ok(boxed(HostBuffer::F32(out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::layout::Layout;

    fn run(lp: &[f32], t: usize, c: usize, labels: &[u32], blank: usize) -> (f32, Vec<f32>) {
        let lp_buf = boxed(HostBuffer::F32(lp.to_vec()));
        let lab = boxed(HostBuffer::U32(labels.to_vec()));
        let g = boxed(HostBuffer::F32(vec![1.0]));
        let (ll, labl, gl) = (
            Layout::contiguous(&[t, c]),
            Layout::contiguous(&[labels.len()]),
            Layout::contiguous(&[1]),
        );
        let loss = ctc_loss(View::new(&*lp_buf, &ll), View::new(&*lab, &labl), blank).unwrap();
        let grad = ctc_loss_backward(
            View::new(&*lp_buf, &ll),
            View::new(&*lab, &labl),
            View::new(&*g, &gl),
            blank,
        )
        .unwrap();
        let host = |b: &Buffer| match b.as_any().downcast_ref::<HostBuffer>() {
            Some(HostBuffer::F32(v)) => v.clone(),
            _ => unreachable!("the CPU device returns f32 host buffers"),
        };
        (host(&loss)[0], host(&grad))
    }

    #[test]
    fn loss_of_one_frame_one_label_is_its_negative_log_prob() {
        let lp = [0.2f32.ln(), 0.8f32.ln()];
        let (loss, grad) = run(&lp, 1, 2, &[1], 0);
        assert!((loss - (-(0.8f32.ln()))).abs() < 1e-6);
        assert_eq!(grad, vec![0.0, -1.0]);
    }

    #[test]
    fn two_frames_sum_the_three_paths_of_one_label() {
        // Paths for "a" over 2 frames: (a,a), (b,a), (a,b) with p_b = 0.4, p_a = 0.6 each frame.
        let lp = [0.4f32.ln(), 0.6f32.ln(), 0.4f32.ln(), 0.6f32.ln()];
        let (loss, _) = run(&lp, 2, 2, &[1], 0);
        let p: f64 = 0.6 * 0.6 + 0.4 * 0.6 + 0.6 * 0.4;
        assert!((loss as f64 - (-p.ln())).abs() < 1e-6);
    }

    #[test]
    fn repeated_labels_need_a_blank_between_them() {
        use crate::engine::ops::loss::ctc_min_frames;
        assert_eq!(ctc_min_frames(&[3, 3]), 3);
        assert_eq!(ctc_min_frames(&[3, 4, 4, 4]), 6);
        let lp = vec![(1.0f32 / 3.0).ln(); 2 * 3];
        let (loss, grad) = run(&lp, 2, 3, &[1, 1], 0);
        assert!(loss.is_infinite());
        assert!(grad.iter().all(|&g| g == 0.0));
    }

    #[test]
    fn occupancy_sums_to_one_per_frame() {
        let (t, c) = (7, 5);
        let lp: Vec<f32> = (0..t * c)
            .map(|i| (i * 37 % 11) as f32 * 0.3 - 1.5)
            .collect();
        let (_, grad) = run(&lp, t, c, &[2, 4, 4, 1], 0);
        for row in grad.chunks(c) {
            let s: f32 = row.iter().sum();
            assert!((s + 1.0).abs() < 1e-5, "{row:?}");
        }
    }

    #[test]
    fn labels_equal_to_blank_or_out_of_range_are_refused() {
        let lp_buf = boxed(HostBuffer::F32(vec![0.0; 6]));
        let ll = Layout::contiguous(&[2, 3]);
        for bad in [0u32, 3] {
            let lab = boxed(HostBuffer::U32(vec![bad]));
            let labl = Layout::contiguous(&[1]);
            let e = ctc_loss(View::new(&*lp_buf, &ll), View::new(&*lab, &labl), 0);
            assert!(matches!(e, Err(Error::IndexOutOfRange { .. })), "{bad}");
        }
    }
}
