//! Text generation with an [`Llm`]: greedy, sampling (temperature, top-k, top-p, seeded) and
//! beam search, with HF-style repetition penalty, one or several stop ids, a token budget and a
//! callback per produced token (streaming).
//!
//! Semantics follow HF transformers 4.46 so that goldens made with `generate()` compare exactly:
//! - repetition penalty over every id in the context plus the output so far: a score `s > 0`
//!   becomes `s/p`, otherwise `s·p`; in beam search it acts on log-probabilities (HF applies its
//!   processors after `log_softmax` there);
//! - sampling: penalty → temperature → top-k (keep scores ≥ the k-th largest) → top-p (drop the
//!   smallest tokens whose cumulative probability stays ≤ 1 − p, always keeping the largest);
//! - beam search: HF's `BeamSearchScorer` with `early_stopping=False` (see [`beam_search`]).

use super::beam::beam_search;
use super::cache::LlmCache;
use super::model::Llm;
use super::sampling::{
    apply_repetition_penalty, argmax, sample, top_k_filter, top_p_filter, SeenTokens,
};
use super::{LlmError, Result};
use crate::engine::{no_grad, Rng, Tensor};

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// The highest score (first index on ties).
    Greedy,
    /// A draw from the filtered distribution; `top_k` 0 and `top_p` 1.0 disable those filters.
    Sample {
        /// Divides the logits (> 0).
        temperature: f32,
        /// Keep only the `top_k` largest scores (ties included); 0 = off.
        top_k: usize,
        /// Keep the smallest set of largest scores whose probability reaches `top_p`; 1 = off.
        top_p: f32,
        /// Seed of the engine's [`Rng`]: the same seed gives the same tokens.
        seed: u64,
    },
    /// Beam search over `num_beams` hypotheses, scored by sum of log-probs / length^penalty.
    Beam {
        /// Hypotheses kept per step (≥ 1).
        num_beams: usize,
        /// Exponent on the generated length (1.0 = average log-prob).
        length_penalty: f32,
    },
}

/// Everything [`generate`] needs besides the model and prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// At most this many new tokens (a stop id counts as one).
    pub max_new_tokens: usize,
    /// Generation stops at any of these ids (the stop id is not part of the output).
    pub eos_ids: Vec<u32>,
    /// HF repetition penalty; 1.0 = off.
    pub repetition_penalty: f32,
    /// Token choice.
    pub strategy: Strategy,
}

impl GenerationConfig {
    /// Greedy decoding of up to `max_new_tokens`, stopping at `eos_ids`, no penalty.
    pub fn greedy(max_new_tokens: usize, eos_ids: Vec<u32>) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens,
            eos_ids,
            repetition_penalty: 1.0,
            strategy: Strategy::Greedy,
        }
    }

    fn validate(&self, vocab: usize) -> Result<()> {
        let bad = |m: String| Err(LlmError::Invalid(format!("generation config: {m}")));
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return bad(format!(
                "repetition_penalty {} must be positive",
                self.repetition_penalty
            ));
        }
        if let Some(id) = self.eos_ids.iter().find(|&&id| id as usize >= vocab) {
            return bad(format!("eos id {id} is outside the vocabulary of {vocab}"));
        }
        match self.strategy {
            Strategy::Greedy => {}
            Strategy::Sample {
                temperature, top_p, ..
            } => {
                if !(temperature.is_finite() && temperature > 0.0) {
                    return bad(format!("temperature {temperature} must be positive"));
                }
                if !(top_p > 0.0 && top_p <= 1.0) {
                    return bad(format!("top_p {top_p} must be in (0, 1]"));
                }
            }
            Strategy::Beam {
                num_beams,
                length_penalty,
            } => {
                if num_beams == 0 || num_beams > vocab {
                    return bad(format!("num_beams {num_beams} must be in 1..={vocab}"));
                }
                if !length_penalty.is_finite() {
                    return bad(format!("length_penalty {length_penalty} is not finite"));
                }
            }
        }
        Ok(())
    }
}

/// What [`generate`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// New tokens, without the stop id.
    pub tokens: Vec<u32>,
    /// The stop id that ended generation, `None` when the budget ran out.
    pub eos: Option<u32>,
    /// Beam search: the chosen hypothesis' score (sum of log-probs / length^penalty, the length
    /// counting a stop id), as HF's `sequences_scores`. `None` for greedy and sampling.
    pub score: Option<f64>,
}

/// Generate after the token ids `prompt` (BOS included if the model wants one). `on_token` is
/// called with each new token as it is chosen (after the search for beam search), never with
/// the stop id. The repetition penalty sees the prompt and the output.
pub fn generate(
    model: &Llm,
    prompt: &[u32],
    cfg: &GenerationConfig,
    on_token: &mut dyn FnMut(u32),
) -> Result<Generation> {
    if prompt.is_empty() {
        return Err(LlmError::Invalid("the prompt is empty".into()));
    }
    let embeds = no_grad(|| model.embed_ids(prompt))?;
    generate_from_embeds(model, &embeds, prompt, cfg, on_token)
}

/// Generate after input embeddings `[1, T, hidden]` (e.g. text with speech spliced in).
/// `context_ids` are the ids the repetition penalty counts besides the output (HF counts
/// `input_ids`: pass the prompt's text ids to match a call with ids, or `&[]` to match a call
/// with `inputs_embeds` only).
pub fn generate_from_embeds(
    model: &Llm,
    embeds: &Tensor,
    context_ids: &[u32],
    cfg: &GenerationConfig,
    on_token: &mut dyn FnMut(u32),
) -> Result<Generation> {
    let vocab = model.config.vocab;
    cfg.validate(vocab)?;
    let t = match embeds.shape() {
        [1, t, _] if *t > 0 => *t,
        s => {
            return Err(LlmError::Invalid(format!(
                "generation takes one sequence of embeddings [1, T>0, hidden], got {s:?}"
            )))
        }
    };
    if let Some(id) = context_ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(LlmError::Invalid(format!(
            "context id {id} is outside the vocabulary of {vocab}"
        )));
    }
    let capacity = t + cfg.max_new_tokens;
    if capacity > model.config.max_positions {
        return Err(LlmError::Invalid(format!(
            "prompt {t} + max_new_tokens {} exceeds the model's {} positions",
            cfg.max_new_tokens, model.config.max_positions
        )));
    }
    if cfg.max_new_tokens == 0 {
        return Ok(Generation {
            tokens: vec![],
            eos: None,
            score: None,
        });
    }
    no_grad(|| {
        let mut cache = model.new_cache(1, capacity)?;
        let first = last_logits(model, embeds, &mut cache)?;
        match cfg.strategy {
            Strategy::Beam {
                num_beams,
                length_penalty,
            } => {
                let mut stepper = LlmStepper {
                    model,
                    cache: cache.repeat_batch(num_beams, capacity)?,
                };
                let out = beam_search(
                    &mut stepper,
                    first.into_iter().next().unwrap_or_default(),
                    context_ids,
                    cfg,
                    num_beams,
                    length_penalty,
                )?;
                out.tokens.iter().for_each(|&tok| on_token(tok));
                Ok(out)
            }
            _ => {
                let mut stepper = LlmStepper { model, cache };
                let logits = first.into_iter().next().unwrap_or_default();
                decode_one(&mut stepper, logits, context_ids, cfg, on_token)
            }
        }
    })
}

/// Logits of the last position of each row after running `x` `[B, T, hidden]` into `cache`.
fn last_logits(model: &Llm, x: &Tensor, cache: &mut LlmCache) -> Result<Vec<Vec<f32>>> {
    let h = model.hidden_states(x, Some(cache))?;
    let t = h.shape()[1];
    let logits = model.logits(&h.narrow(1, t - 1, 1)?)?;
    let b = logits.shape()[0];
    let v = logits.shape()[2];
    let flat = logits.to_vec::<f32>()?;
    Ok((0..b).map(|i| flat[i * v..(i + 1) * v].to_vec()).collect())
}

/// One decoding step for a batch of rows: the source of next-token logits. Split from the
/// [`Llm`] so that the search logic can be tested on small hand-made distributions.
pub trait Stepper {
    /// Reorder the rows (row `i` continues old row `parents[i]`), append `tokens[i]` to row `i`
    /// and return each row's next-token logits.
    fn step(&mut self, parents: &[u32], tokens: &[u32]) -> Result<Vec<Vec<f32>>>;
}

/// An [`Llm`] and its KV cache as a [`Stepper`].
struct LlmStepper<'a> {
    model: &'a Llm,
    cache: LlmCache,
}

impl Stepper for LlmStepper<'_> {
    fn step(&mut self, parents: &[u32], tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        self.cache.reorder(parents)?;
        let ids = Tensor::from_vec(tokens.to_vec(), &[tokens.len(), 1], self.model.device())?;
        let x = self.model.embed(&ids)?;
        last_logits(self.model, &x, &mut self.cache)
    }
}

/// Greedy or sampled decoding of one sequence from the logits after the prompt.
pub fn decode_one(
    stepper: &mut dyn Stepper,
    mut logits: Vec<f32>,
    context_ids: &[u32],
    cfg: &GenerationConfig,
    on_token: &mut dyn FnMut(u32),
) -> Result<Generation> {
    let mut seen = SeenTokens::new(logits.len(), context_ids);
    let mut rng = match cfg.strategy {
        Strategy::Sample { seed, .. } => Some(Rng::new(seed)),
        _ => None,
    };
    let mut tokens = Vec::new();
    for step in 0..cfg.max_new_tokens {
        apply_repetition_penalty(&mut logits, seen.ids(), cfg.repetition_penalty);
        let tok = match (&cfg.strategy, rng.as_mut()) {
            (
                Strategy::Sample {
                    temperature,
                    top_k,
                    top_p,
                    ..
                },
                Some(rng),
            ) => {
                logits.iter_mut().for_each(|l| *l /= temperature);
                top_k_filter(&mut logits, *top_k);
                top_p_filter(&mut logits, *top_p);
                sample(&logits, rng)
            }
            _ => argmax(&logits),
        };
        if cfg.eos_ids.contains(&tok) {
            return Ok(Generation {
                tokens,
                eos: Some(tok),
                score: None,
            });
        }
        tokens.push(tok);
        seen.insert(tok);
        on_token(tok);
        if step + 1 < cfg.max_new_tokens {
            let rows = stepper.step(&[0], &[tok])?;
            check_rows(&rows, 1, seen.mask.len())?;
            logits = rows.into_iter().next().unwrap_or_default();
        }
    }
    Ok(Generation {
        tokens,
        eos: None,
        score: None,
    })
}

/// Error unless a stepper returned `n` rows of `vocab` logits.
pub(crate) fn check_rows(rows: &[Vec<f32>], n: usize, vocab: usize) -> Result<()> {
    if rows.len() != n || rows.iter().any(|r| r.len() != vocab) {
        return Err(LlmError::Invalid(format!(
            "a decoding step returned {} rows of lengths {:?}, expected {n} of {vocab}",
            rows.len(),
            rows.iter().map(Vec::len).collect::<Vec<_>>()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bigram table: next-token probabilities depend only on the last token. Tokens: 0 = eos,
    /// 1 = A, 2 = B, 3 = C. After the prompt A is likeliest (0.5) but leads to a flat
    /// distribution; B (0.4) leads to C with 0.9, which then ends with 0.95. Greedy picks A; a
    /// beam of 2 finds B C (0.36 > 0.5/3).
    struct Bigram;
    fn row(last: Option<u32>) -> Vec<f32> {
        let p: [f32; 4] = match last {
            None => [0.0, 0.5, 0.4, 0.1],
            Some(1) => [0.01, 0.33, 0.33, 0.33],
            Some(2) => [0.02, 0.04, 0.04, 0.9],
            _ => [0.95, 0.02, 0.02, 0.01],
        };
        p.iter()
            .map(|&x| if x > 0.0 { x.ln() } else { -1e9 })
            .collect()
    }
    impl Stepper for Bigram {
        fn step(&mut self, _parents: &[u32], tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
            Ok(tokens.iter().map(|&t| row(Some(t))).collect())
        }
    }

    fn cfg(n: usize, eos: Vec<u32>, strategy: Strategy) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens: n,
            eos_ids: eos,
            repetition_penalty: 1.0,
            strategy,
        }
    }

    fn beams(num_beams: usize) -> Strategy {
        Strategy::Beam {
            num_beams,
            length_penalty: 1.0,
        }
    }

    #[test]
    fn beam_search_finds_the_better_path_greedy_misses() {
        let greedy = decode_one(
            &mut Bigram,
            row(None),
            &[],
            &cfg(2, vec![], Strategy::Greedy),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(greedy.tokens, [1, 1]);
        let c = cfg(2, vec![], beams(2));
        let b = beam_search(&mut Bigram, row(None), &[], &c, 2, 1.0).unwrap();
        assert_eq!(b.tokens, [2, 3]);
        let want = (0.4f64.ln() + 0.9f64.ln()) / 2.0;
        assert!((b.score.unwrap() - want).abs() < 1e-6, "{b:?}");
        // One beam is greedy.
        let one = beam_search(
            &mut Bigram,
            row(None),
            &[],
            &cfg(2, vec![], beams(1)),
            1,
            1.0,
        )
        .unwrap();
        assert_eq!(one.tokens, greedy.tokens);
    }

    #[test]
    fn beam_search_finishes_at_eos_with_length_normalized_score() {
        let c = cfg(6, vec![0], beams(2));
        let b = beam_search(&mut Bigram, row(None), &[], &c, 2, 1.0).unwrap();
        assert_eq!((b.tokens.clone(), b.eos), (vec![2, 3], Some(0)));
        let want = (0.4f64.ln() + 0.9f64.ln() + 0.95f64.ln()) / 3.0;
        assert!((b.score.unwrap() - want).abs() < 1e-6, "{b:?}");
    }

    #[test]
    fn greedy_stops_at_eos_and_respects_the_budget() {
        let c = cfg(10, vec![0], Strategy::Greedy);
        // B-first table: start from the row after B.
        let g = decode_one(&mut Bigram, row(Some(2)), &[], &c, &mut |_| {}).unwrap();
        assert_eq!((g.tokens, g.eos), (vec![3], Some(0)));
        let c = cfg(3, vec![], Strategy::Greedy);
        let g = decode_one(&mut Bigram, row(Some(2)), &[], &c, &mut |_| {}).unwrap();
        assert_eq!(
            (g.tokens, g.eos),
            (vec![3, 0, 0], None),
            "no stop ids: 0 is a token"
        );
    }

    #[test]
    fn bad_generation_configs_are_refused() {
        let bad = [
            cfg(1, vec![9], Strategy::Greedy),
            GenerationConfig {
                repetition_penalty: 0.0,
                ..cfg(1, vec![], Strategy::Greedy)
            },
            cfg(
                1,
                vec![],
                Strategy::Sample {
                    temperature: 0.0,
                    top_k: 0,
                    top_p: 1.0,
                    seed: 0,
                },
            ),
            cfg(
                1,
                vec![],
                Strategy::Sample {
                    temperature: 1.0,
                    top_k: 0,
                    top_p: 0.0,
                    seed: 0,
                },
            ),
            cfg(1, vec![], beams(0)),
            cfg(1, vec![], beams(5)),
        ];
        for c in bad {
            assert!(c.validate(4).is_err(), "{c:?}");
        }
    }
}
