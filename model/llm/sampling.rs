//! Choosing a token from a row of logits, with HF transformers' semantics: repetition penalty,
//! top-k and top-p filters, argmax and seeded sampling.

use crate::engine::Rng;

/// The distinct ids seen so far, in first-seen order (the penalty touches each once).
pub(crate) struct SeenTokens {
    pub(crate) mask: Vec<bool>,
    ids: Vec<u32>,
}

impl SeenTokens {
    pub(crate) fn new(vocab: usize, context: &[u32]) -> SeenTokens {
        let mut s = SeenTokens {
            mask: vec![false; vocab],
            ids: Vec::new(),
        };
        context.iter().for_each(|&t| s.insert(t));
        s
    }
    pub(crate) fn insert(&mut self, t: u32) {
        if let Some(m) = self.mask.get_mut(t as usize) {
            if !*m {
                *m = true;
                self.ids.push(t);
            }
        }
    }
    pub(crate) fn ids(&self) -> &[u32] {
        &self.ids
    }
}

/// HF's repetition penalty on `scores` for each distinct id in `seen`: `s > 0` → `s/p`,
/// else `s·p` (`p` = 1 leaves them unchanged). Ids outside `scores` are ignored.
pub fn apply_repetition_penalty(scores: &mut [f32], seen: &[u32], p: f32) {
    if p == 1.0 {
        return;
    }
    for &t in seen {
        if let Some(s) = scores.get_mut(t as usize) {
            *s = if *s < 0.0 { *s * p } else { *s / p };
        }
    }
}

/// Set every score below the `k`-th largest to −∞ (ties with it survive); `k` 0 or ≥ len: no-op.
pub fn top_k_filter(scores: &mut [f32], k: usize) {
    if k == 0 || k >= scores.len() {
        return;
    }
    let mut sorted: Vec<f32> = scores.to_vec();
    // The k-th largest: partition instead of a full sort (vocabularies are ~150k).
    let (_, kth, _) = sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    let kth = *kth;
    for s in scores.iter_mut() {
        if *s < kth {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// Nucleus filter as HF's `TopPLogitsWarper`: sort ascending, drop tokens while the cumulative
/// probability is ≤ 1 − `p`, always keep the largest; dropped scores become −∞. `p` ≥ 1: no-op.
pub fn top_p_filter(scores: &mut [f32], p: f32) {
    if p >= 1.0 || scores.is_empty() {
        return;
    }
    let probs = softmax64(scores);
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let limit = 1.0 - p as f64;
    let mut cum = 0.0;
    for &i in &order[..order.len() - 1] {
        cum += probs[i];
        if cum > limit {
            break;
        }
        scores[i] = f32::NEG_INFINITY;
    }
}

/// Probabilities of `scores` (f64, max-subtracted; −∞ → 0).
fn softmax64(scores: &[f32]) -> Vec<f64> {
    let m = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    if m == f64::NEG_INFINITY {
        return vec![1.0 / scores.len() as f64; scores.len()];
    }
    let e: Vec<f64> = scores.iter().map(|&s| (s as f64 - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|x| x / z).collect()
}

/// `log_softmax` in f64.
pub(crate) fn log_softmax64(scores: &[f32]) -> Vec<f64> {
    let m = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = scores.iter().map(|&s| (s as f64 - m).exp()).sum();
    let lz = m + z.ln();
    scores.iter().map(|&s| s as f64 - lz).collect()
}

/// Index of the largest score (the first on ties; NaN never wins).
pub fn argmax(scores: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] || scores[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

/// Draw an index from `softmax(scores)` with one uniform number from `rng`.
pub fn sample(scores: &[f32], rng: &mut Rng) -> u32 {
    let probs = softmax64(scores);
    let u = rng.uniform() as f64;
    let mut cum = 0.0;
    let mut last = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            cum += p;
            last = i;
            if u < cum {
                return i as u32;
            }
        }
    }
    last as u32 // rounding left u ≥ Σp: the last token with mass
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEG: f32 = f32::NEG_INFINITY;

    #[test]
    fn top_k_keeps_the_k_largest_and_their_ties() {
        let mut s = vec![1.0, 5.0, 3.0, 5.0, 2.0];
        top_k_filter(&mut s, 2);
        assert_eq!(s, [NEG, 5.0, NEG, 5.0, NEG]);
        let mut s = vec![1.0, 5.0, 3.0, 5.0, 2.0];
        top_k_filter(&mut s, 3);
        assert_eq!(s, [NEG, 5.0, 3.0, 5.0, NEG]);
        let mut s = vec![1.0, 2.0];
        top_k_filter(&mut s, 0);
        top_k_filter(&mut s, 5);
        assert_eq!(s, [1.0, 2.0], "0 and k ≥ len are no-ops");
    }

    #[test]
    fn top_p_drops_the_tail_below_one_minus_p_and_keeps_the_top() {
        let probs = [0.5f32, 0.3, 0.15, 0.05];
        let logits: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
        let kept = |p: f32| {
            let mut s = logits.clone();
            top_p_filter(&mut s, p);
            s.iter().map(|v| v.is_finite()).collect::<Vec<_>>()
        };
        assert_eq!(kept(0.9), [true, true, true, false]);
        assert_eq!(kept(0.75), [true, true, false, false]);
        assert_eq!(
            kept(0.01),
            [true, false, false, false],
            "the top always stays"
        );
        assert_eq!(kept(1.0), [true; 4]);
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_once_per_id() {
        let mut s = vec![2.0, -2.0, 0.5, 3.0];
        let mut seen = SeenTokens::new(4, &[0, 1, 0, 7]);
        seen.insert(1);
        assert_eq!(
            seen.ids(),
            [0, 1],
            "distinct ids; out-of-vocabulary ids ignored"
        );
        apply_repetition_penalty(&mut s, seen.ids(), 2.0);
        assert_eq!(s, [1.0, -4.0, 0.5, 3.0]);
        apply_repetition_penalty(&mut s, &[0, 1], 1.0);
        assert_eq!(s, [1.0, -4.0, 0.5, 3.0]);
    }

    #[test]
    fn argmax_takes_the_first_of_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5]), 1);
    }

    #[test]
    fn sampling_is_seeded_and_follows_the_distribution() {
        let logits = [0.7f32.ln(), 0.3f32.ln(), NEG];
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..20_000)
                .map(|_| sample(&logits, &mut rng))
                .collect::<Vec<_>>()
        };
        let a = draw(3);
        assert_eq!(a, draw(3));
        assert_ne!(a, draw(4));
        assert!(!a.contains(&2), "a filtered token is never drawn");
        let share = a.iter().filter(|&&t| t == 0).count() as f64 / a.len() as f64;
        assert!((share - 0.7).abs() < 0.015, "{share}");
    }
}
