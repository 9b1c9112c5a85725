//! FLOP and byte counts per op: every formula the profiler reports lives here.
//!
//! FLOPs count one multiply-add as two operations (the convention GEMM libraries and
//! vendors' peak figures use). Bytes are the elements an op reads plus the elements it writes,
//! each times its dtype size; a broadcast (stride-0) dimension is read once, so a bias broadcast
//! over a batch counts its own size, not the batch's. These are the *minimum* bytes an op must
//! move, which makes achieved GB/s comparable with the machine's read bandwidth.
//!
//! All arithmetic saturates: a profiler must never panic or wrap on a huge shape.

use crate::engine::device::View;
use crate::engine::dtype::DType;

/// Saturating product of a list of sizes.
pub fn product(dims: &[usize]) -> u64 {
    dims.iter()
        .fold(1u64, |acc, &d| acc.saturating_mul(d as u64))
}

/// Elements a view actually touches: dimensions with stride 0 (broadcast) count once.
pub fn distinct_elems(v: &View) -> u64 {
    let l = v.layout;
    if l.shape().contains(&0) {
        return 0;
    }
    l.shape()
        .iter()
        .zip(l.strides())
        .filter(|&(_, &s)| s != 0)
        .fold(1u64, |acc, (&d, _)| acc.saturating_mul(d as u64))
}

/// Bytes of `elems` elements of `dtype`.
pub fn bytes_of(elems: u64, dtype: DType) -> u64 {
    elems.saturating_mul(dtype.size_in_bytes() as u64)
}

/// Bytes read from the input views (each counted by [`distinct_elems`]).
pub fn bytes_read(inputs: &[View]) -> u64 {
    inputs
        .iter()
        .map(|v| bytes_of(distinct_elems(v), v.dtype()))
        .fold(0u64, u64::saturating_add)
}

/// Dimension `i` counted from the end (0 = last), or 1 when the rank is too small.
pub fn dim_from_end(shape: &[usize], i: usize) -> usize {
    shape
        .len()
        .checked_sub(i + 1)
        .map(|j| shape[j])
        .unwrap_or(1)
}

/// Elementwise ops (unary, binary, where, casts that compute): one operation per output
/// element, `n`.
pub fn elementwise(n: u64) -> u64 {
    n
}

/// Reductions: one operation per input element, `n`.
pub fn reduce(input_elems: u64) -> u64 {
    input_elems
}

/// Batched matmul `[batch, M, K] × [batch, K, N]`: `2·batch·M·K·N`.
pub fn matmul(batch: u64, m: u64, k: u64, n: u64) -> u64 {
    2u64.saturating_mul(batch)
        .saturating_mul(m)
        .saturating_mul(k)
        .saturating_mul(n)
}

/// Linear layer `x [tokens, in] · Wᵀ [in, out] (+ b)`: `2·tokens·in·out`, plus `tokens·out`
/// additions for the bias.
pub fn linear(tokens: u64, fan_in: u64, fan_out: u64, bias: bool) -> u64 {
    let per_token = 2u64
        .saturating_mul(fan_in)
        .saturating_add(u64::from(bias))
        .saturating_mul(fan_out);
    tokens.saturating_mul(per_token)
}

/// LoRA linear over `tokens` rows: the base GEMM plus both low-rank GEMMs,
/// `2·tokens·(in·out + in·r + r·out)` (the bias and the scaled add are lower order).
pub fn lora_linear(tokens: u64, fan_in: u64, fan_out: u64, rank: u64) -> u64 {
    let per_token = fan_in
        .saturating_mul(fan_out)
        .saturating_add(fan_in.saturating_mul(rank))
        .saturating_add(rank.saturating_mul(fan_out));
    2u64.saturating_mul(tokens).saturating_mul(per_token)
}

/// Convolution `x [N, C, H, W] ⋆ w [O, C, KH, KW] → [N, O, OH, OW]`:
/// `2·N·O·OH·OW·C·KH·KW` (the bias add is lower order).
pub fn conv2d(n: u64, o: u64, oh: u64, ow: u64, c: u64, kh: u64, kw: u64) -> u64 {
    [n, o, oh, ow, c, kh, kw]
        .iter()
        .fold(2u64, |acc, &d| acc.saturating_mul(d))
}

/// Query/key pairs attention evaluates per (batch, head): `Tq·Tk`, or with causal masking
/// aligned to the end of the keys (query `i` sees keys `j ≤ i + Tk − Tq`) the visible pairs
/// only, `Σᵢ clamp(i + Tk − Tq + 1, 0, Tk)` — `T(T+1)/2 ≈ T²/2` when `Tq = Tk = T`, and all `Tk`
/// keys for a one-token decode step.
pub fn attention_pairs(tq: u64, tk: u64, causal: bool) -> u64 {
    if !causal {
        return tq.saturating_mul(tk);
    }
    // Queries before `first` see no key; from there the counts rise by one up to Tk: an
    // arithmetic series `a, a+1, …, Tk` with `a = first + Tk − Tq + 1`.
    let first = tq.saturating_sub(tk);
    let count = tq - first;
    if count == 0 {
        return 0;
    }
    let a = first + tk + 1 - tq;
    // (a + Tk)·count is even: count = Tk − a + 1, so one of the two factors is even.
    ((a + tk) as u128 * count as u128 / 2).min(u64::MAX as u128) as u64
}

/// Attention forward: `q·kᵀ` and `p·v`, each `2·D` per visible pair and query head:
/// `4·B·Hq·pairs·D` (softmax is lower order). Non-causal: `4·B·Hq·Tq·Tk·D`; causal ≈ half.
pub fn attention(b: u64, hq: u64, tq: u64, tk: u64, d: u64, causal: bool) -> u64 {
    4u64.saturating_mul(b)
        .saturating_mul(hq)
        .saturating_mul(attention_pairs(tq, tk, causal))
        .saturating_mul(d)
}

/// Attention backward with recomputed probabilities: five pair-sized GEMMs (`q·kᵀ` again,
/// `dV = Pᵀ·dO`, `dP = dO·Vᵀ`, `dQ = dS·K`, `dK = dSᵀ·Q`), i.e. 2.5× the forward:
/// `10·B·Hq·pairs·D` (the FlashAttention-2 paper's convention).
pub fn attention_backward(b: u64, hq: u64, tq: u64, tk: u64, d: u64, causal: bool) -> u64 {
    attention(b, hq, tq, tk, d, causal).saturating_mul(5) / 2
}

/// Softmax / log-softmax over rows: max, subtract, exp, sum, divide (or log) — `5·n`.
pub fn softmax(n: u64) -> u64 {
    5u64.saturating_mul(n)
}

/// LayerNorm: mean, subtract, square, sum, normalise, scale, shift — `7·n`.
pub fn layer_norm(n: u64) -> u64 {
    7u64.saturating_mul(n)
}

/// RMSNorm: square, sum, normalise, scale — `4·n`.
pub fn rms_norm(n: u64) -> u64 {
    4u64.saturating_mul(n)
}

/// Rotary embedding: two multiplies and one add per output element — `3·n`.
pub fn rope(n: u64) -> u64 {
    3u64.saturating_mul(n)
}

/// Cross-entropy forward or backward over `n` logits: a softmax pass — `5·n`.
pub fn cross_entropy(n: u64) -> u64 {
    softmax(n)
}

/// CTC over `[T, C]` log-probabilities and `L` labels: per frame and lattice state (`2L + 1`)
/// a three-way log-sum-exp and an add (≈ 10), forward or backward — `10·T·(2L + 1)`.
pub fn ctc(log_probs: &View, labels: &View) -> u64 {
    let frames = log_probs.shape().first().copied().unwrap_or(0) as u64;
    let states = 2u64
        .saturating_mul(product(labels.shape()))
        .saturating_add(1);
    10u64.saturating_mul(frames).saturating_mul(states)
}

/// AdamW per parameter: two moment updates (3 + 4), bias corrections, √, divide, decay and
/// the update (≈ 6) — `13·n`.
pub fn adamw(n: u64) -> u64 {
    13u64.saturating_mul(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::layout::Layout;
    use crate::engine::storage::HostBuffer;

    #[test]
    fn gemm_and_conv_count_two_flops_per_multiply_add() {
        assert_eq!(matmul(1, 1024, 1024, 1024), 2 * 1024 * 1024 * 1024);
        assert_eq!(matmul(3, 2, 5, 7), 2 * 3 * 2 * 5 * 7);
        assert_eq!(linear(10, 4, 3, false), 2 * 10 * 4 * 3);
        assert_eq!(linear(10, 4, 3, true), 2 * 10 * 4 * 3 + 10 * 3);
        // Whisper-medium conv1: 80 → 1024 channels, kernel 3, 3000 frames (height 1).
        assert_eq!(conv2d(1, 1024, 1, 3000, 80, 1, 3), 2 * 1024 * 3000 * 80 * 3);
        assert_eq!(lora_linear(10, 4, 6, 2), 2 * 10 * (4 * 6 + 4 * 2 + 2 * 6));
    }

    #[test]
    fn attention_counts_visible_pairs() {
        assert_eq!(
            attention(1, 16, 1500, 1500, 64, false),
            4 * 16 * 1500 * 1500 * 64
        );
        // Square causal: T(T+1)/2 pairs, the "half" of the full matrix plus the diagonal.
        assert_eq!(attention_pairs(512, 512, true), 512 * 513 / 2);
        assert_eq!(
            attention(2, 32, 512, 512, 128, true),
            4 * 2 * 32 * (512 * 513 / 2) * 128
        );
        // Decode with a KV cache: one query sees every key.
        assert_eq!(attention_pairs(1, 100, true), 100);
        // Chunked prefill (Tq < Tk): query i sees Tk − Tq + 1 + i keys.
        let brute = |tq: u64, tk: u64| {
            (0..tq)
                .map(|i| (i as i64 + tk as i64 - tq as i64 + 1).clamp(0, tk as i64) as u64)
                .sum::<u64>()
        };
        for (tq, tk) in [(3, 10), (10, 3), (7, 7), (1, 1), (0, 5), (5, 0)] {
            assert_eq!(attention_pairs(tq, tk, true), brute(tq, tk), "{tq}x{tk}");
        }
        assert_eq!(
            attention_backward(1, 1, 4, 4, 8, false),
            5 * attention(1, 1, 4, 4, 8, false) / 2
        );
    }

    #[test]
    fn elementwise_families_and_saturation() {
        assert_eq!(elementwise(10), 10);
        assert_eq!(reduce(12), 12);
        assert_eq!(softmax(4), 20);
        assert_eq!(matmul(u64::MAX, 2, 2, 2), u64::MAX);
        assert_eq!(product(&[usize::MAX, 4]), u64::MAX);
    }

    #[test]
    fn bytes_count_broadcast_dimensions_once() {
        let buf = HostBuffer::F32(vec![0.0; 8]);
        let dense = Layout::contiguous(&[2, 4]);
        assert_eq!(bytes_read(&[View::new(&buf, &dense)]), 8 * 4);
        // A [4] bias broadcast over 1000 rows reads 4 elements.
        let bias = Layout::new(vec![1000, 4], vec![0, 1], 0);
        assert_eq!(bytes_read(&[View::new(&buf, &bias)]), 4 * 4);
        let empty = Layout::contiguous(&[0, 4]);
        assert_eq!(bytes_read(&[View::new(&buf, &empty)]), 0);
        assert_eq!(bytes_of(3, DType::BF16), 6);
        assert_eq!(dim_from_end(&[2, 3, 4], 0), 4);
        assert_eq!(dim_from_end(&[2, 3, 4], 2), 2);
        assert_eq!(dim_from_end(&[4], 1), 1);
    }
}
