//! Beam search with HF transformers' `BeamSearchScorer` semantics (`early_stopping=False`).

use super::generate::{check_rows, Generation, GenerationConfig, Stepper};
use super::sampling::{log_softmax64, SeenTokens};
use super::{LlmError, Result};

/// Finished hypotheses, best `n` kept (HF's `BeamHypotheses`).
struct Finished {
    n: usize,
    length_penalty: f64,
    /// (normalized score, tokens, stop id).
    hyps: Vec<(f64, Vec<u32>, Option<u32>)>,
    worst: f64,
}

impl Finished {
    fn add(&mut self, tokens: Vec<u32>, eos: Option<u32>, sum_logprobs: f64, len: usize) {
        let score = sum_logprobs / (len as f64).powf(self.length_penalty);
        if self.hyps.len() < self.n || score > self.worst {
            self.hyps.push((score, tokens, eos));
            if self.hyps.len() > self.n {
                let (worst_i, _) = self
                    .hyps
                    .iter()
                    .enumerate()
                    .min_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
                    .unwrap_or((0, &self.hyps[0]));
                self.hyps.remove(worst_i);
                self.worst = self.hyps.iter().map(|h| h.0).fold(f64::INFINITY, f64::min);
            } else {
                self.worst = self.worst.min(score);
            }
        }
    }

    /// HF's `early_stopping=False` test: no running beam can beat the worst kept hypothesis.
    fn is_done(&self, best_running: f64, generated: usize) -> bool {
        self.hyps.len() >= self.n
            && self.worst >= best_running / (generated as f64).powf(self.length_penalty)
    }
}

/// One running beam.
#[derive(Clone)]
struct Beam {
    tokens: Vec<u32>,
    score: f64,
}

/// Beam search as HF's `BeamSearchScorer` (`early_stopping=False`): each step scores every
/// (beam, token) as beam score + log-softmax (penalty applied to the log-probs), keeps the best
/// `max(2, 1 + #eos)·num_beams` candidates in order; a stop id among the first `num_beams`
/// finishes a hypothesis (normalized by its length including the stop id), other candidates
/// fill the next `num_beams` beams. Search ends when no running beam can beat the finished ones
/// or at `max_new_tokens`, where running beams join the finished set. `first` are the logits
/// after the prompt (the same for every beam, so only beam 0 is expanded at the first step).
pub fn beam_search(
    stepper: &mut dyn Stepper,
    first: Vec<f32>,
    context_ids: &[u32],
    cfg: &GenerationConfig,
    num_beams: usize,
    length_penalty: f32,
) -> Result<Generation> {
    let vocab = first.len();
    if vocab == 0 {
        return Err(LlmError::Invalid("beam search: empty logits".into()));
    }
    let mut fin = Finished {
        n: num_beams,
        length_penalty: length_penalty as f64,
        hyps: Vec::new(),
        worst: 1e9,
    };
    let mut beams = vec![Beam {
        tokens: vec![],
        score: 0.0,
    }];
    let mut logits = vec![first];
    let keep = 2.max(1 + cfg.eos_ids.len()) * num_beams;
    for step in 0..cfg.max_new_tokens {
        // Candidates: the `keep` best (score, beam, token) over all beams.
        let mut cands: Vec<(f64, usize, u32)> = Vec::with_capacity(keep * beams.len());
        for (bi, (beam, row)) in beams.iter().zip(&logits).enumerate() {
            let mut lp = log_softmax64(row);
            if cfg.repetition_penalty != 1.0 {
                let mut seen = SeenTokens::new(vocab, context_ids);
                beam.tokens.iter().for_each(|&t| seen.insert(t));
                for &t in seen.ids() {
                    let s = &mut lp[t as usize];
                    let p = cfg.repetition_penalty as f64;
                    *s = if *s < 0.0 { *s * p } else { *s / p };
                }
            }
            let mut idx: Vec<usize> = (0..vocab).collect();
            let k = keep.min(vocab);
            idx.select_nth_unstable_by(k - 1, |&a, &b| lp[b].total_cmp(&lp[a]));
            cands.extend(idx[..k].iter().map(|&v| (beam.score + lp[v], bi, v as u32)));
        }
        cands.sort_by(|a, b| b.0.total_cmp(&a.0));
        cands.truncate(keep);
        let mut next: Vec<(Beam, u32)> = Vec::with_capacity(num_beams); // (beam, parent row)
        for (rank, &(score, bi, tok)) in cands.iter().enumerate() {
            let parent = &beams[bi];
            if cfg.eos_ids.contains(&tok) {
                if rank < num_beams {
                    fin.add(parent.tokens.clone(), Some(tok), score, step + 1);
                }
            } else {
                let mut tokens = parent.tokens.clone();
                tokens.push(tok);
                next.push((Beam { tokens, score }, bi as u32));
            }
            if next.len() == num_beams {
                break;
            }
        }
        let best_running = cands.first().map_or(f64::NEG_INFINITY, |c| c.0);
        if fin.is_done(best_running, step + 1) {
            return Ok(best(fin));
        }
        if next.len() < num_beams {
            return Err(LlmError::Invalid(format!(
                "beam search: fewer than {num_beams} candidates are not stop ids"
            )));
        }
        if step + 1 == cfg.max_new_tokens {
            for (b, _) in next {
                let len = b.tokens.len();
                fin.add(b.tokens, None, b.score, len);
            }
            return Ok(best(fin));
        }
        // At step 0 every cache row holds the prompt, so any parent row works for row i.
        let parents: Vec<u32> = next.iter().map(|(_, p)| *p).collect();
        let toks: Vec<u32> = next
            .iter()
            .map(|(b, _)| b.tokens[b.tokens.len() - 1])
            .collect();
        logits = stepper.step(&parents, &toks)?;
        check_rows(&logits, num_beams, vocab)?;
        beams = next.into_iter().map(|(b, _)| b).collect();
    }
    Ok(best(fin))
}

/// The highest-scoring finished hypothesis.
fn best(fin: Finished) -> Generation {
    let top = fin.hyps.into_iter().max_by(|a, b| a.0.total_cmp(&b.0));
    match top {
        Some((score, tokens, eos)) => Generation {
            tokens,
            eos,
            score: Some(score),
        },
        None => Generation {
            tokens: vec![],
            eos: None,
            score: None,
        },
    }
}
