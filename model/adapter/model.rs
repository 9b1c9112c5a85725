//! [`Adapter`]: Whisper encoder output → LLM-width speech embeddings, over padded batches.

use super::config::{AdapterConfig, AdapterVariant};
use super::conv2d::Conv2dSubsampler;
use super::layers::{is_padded, key_mask, row_mask, Linear, Norm};
use super::params::{load_params, params_from_map, random_params, NamedParams, Take};
use super::positions::PositionTable;
use super::released::CausalDownsampler;
use super::transformer::SpeechTransformer;
use super::{AdapterError, Result};
use crate::engine::{DType, Device, Tensor};
use crate::model::weights::TensorSource;
use std::collections::HashMap;
use std::sync::Arc;

/// The downsampler and the transformer's embed layer, per variant.
enum Front {
    /// `down_sample_2`, then `embed.out.0` (Linear) and `embed.out.1` (LayerNorm).
    Released {
        down: CausalDownsampler,
        linear: Linear,
        norm: Norm,
    },
    /// `embed.conv.{0,2}` and `embed.out.0`.
    Conv2d(Conv2dSubsampler),
}

/// The adapter's output for a batch.
#[derive(Debug, Clone)]
pub struct AdapterOutput {
    /// `[B, T'', llm_dim]`; rows at and after `lengths[b]` are zero.
    pub embeddings: Tensor,
    /// Valid rows per item (OSUM's mask counts; see [`AdapterConfig::item_len`]).
    pub lengths: Vec<usize>,
}

impl AdapterOutput {
    /// The valid rows of item `b`, `[lengths[b], llm_dim]` (a view).
    pub fn item(&self, b: usize) -> Result<Tensor> {
        let len = *self.lengths.get(b).ok_or_else(|| {
            AdapterError::Input(format!("item {b} of a batch of {}", self.lengths.len()))
        })?;
        Ok(self
            .embeddings
            .narrow(0, b, 1)?
            .squeeze(0)?
            .narrow(0, 0, len)?)
    }
}

/// The speech adapter (REFERENCE §4).
pub struct Adapter {
    config: AdapterConfig,
    front: Front,
    transformer: SpeechTransformer,
    proj: Linear,
    /// `[llm_dim]` filled with [`AdapterConfig::output_rms`], the weight of the output rescale.
    output_scale: Option<Tensor>,
    speech_embed: Tensor,
    params: NamedParams,
    /// The checkpoint's position buffer, kept so a trainable copy uses the same table.
    pos_table: Option<Tensor>,
}

impl Adapter {
    /// Load from a weight file (any [`TensorSource`]: safetensors, the OSUM `.pt`, …) where
    /// every key is `prefix + OSUM name` (prefix `""` for the released checkpoint). Shapes are
    /// checked against `config` before reading; the parameters are constants (see
    /// [`Adapter::trainable`]).
    pub fn load<S: TensorSource + ?Sized>(
        config: &AdapterConfig,
        src: &S,
        prefix: &str,
        device: &Arc<dyn Device>,
    ) -> Result<Adapter> {
        let (params, table) = load_params(config, src, prefix, device)?;
        Self::build(config, params, table)
    }

    /// From tensors already in memory, keyed by OSUM names (extra keys are ignored).
    pub fn from_tensors(
        config: &AdapterConfig,
        tensors: HashMap<String, Tensor>,
    ) -> Result<Adapter> {
        Self::build(config, params_from_map(config, tensors)?, None)
    }

    /// Seeded random init as PyTorch would give it (Linear/Conv `U(±1/√fan_in)`, LayerNorm
    /// 1/0, embeddings `N(0, 1)`), as trainable variables, for training from scratch.
    pub fn random(config: &AdapterConfig, seed: u64, device: &Arc<dyn Device>) -> Result<Adapter> {
        let params = random_params(config, seed, device)?;
        Self::build(config, params, None)?.trainable()
    }

    /// [`Adapter::random`], with the two tensors that write into the LLM's input space
    /// (`speech_llama_proj`, `speech_token_emded`) scaled so the speech rows start at the RMS
    /// `embed_rms` of the LLM's own token embeddings instead of PyTorch's default scale.
    ///
    /// Why: with the default init a projected row has RMS ≈ 1/√3 (unit-variance input,
    /// `U(±1/√fan_in)` weights) and the speech BOS/EOS rows RMS 1, while SmolLM2-135M's token
    /// rows have RMS ≈ 0.11–0.14. Rows that much larger than any text row dominate their residual
    /// stream in every layer, so the frozen LLM barely processes them. Starting at the text
    /// scale puts the speech rows where the LLM's layers expect inputs. (It is a starting point,
    /// not a constraint: measured at lr 1.5e-3, Adam grew the projected rows back to RMS ≈ 1.4
    /// within 300 steps.)
    pub fn random_matched(
        config: &AdapterConfig,
        seed: u64,
        embed_rms: f32,
        device: &Arc<dyn Device>,
    ) -> Result<Adapter> {
        let default_rms = [
            ("speech_llama_proj.weight", 1.0 / 3f32.sqrt()),
            ("speech_llama_proj.bias", 1.0 / 3f32.sqrt()),
            ("speech_token_emded.weight", 1.0),
        ];
        let params = random_params(config, seed, device)?
            .into_iter()
            .map(
                |(name, t)| match default_rms.iter().find(|(n, _)| *n == name) {
                    Some((_, rms)) => Ok((name, t.affine(embed_rms / rms, 0.0)?)),
                    None => Ok((name, t)),
                },
            )
            .collect::<Result<NamedParams>>()?;
        Self::build(config, params, None)?.trainable()
    }

    /// The same adapter with every parameter a trainable variable (sharing storage, so an
    /// optimizer's in-place update is seen by both).
    pub fn trainable(self) -> Result<Adapter> {
        let params = self
            .params
            .into_iter()
            .map(|(n, t)| Ok((n, t.owned_variable()?)))
            .collect::<Result<_>>()?;
        Self::build(&self.config, params, self.pos_table)
    }

    /// The same adapter with every parameter a constant (inference; no gradients recorded).
    pub fn frozen(self) -> Result<Adapter> {
        let params = self
            .params
            .into_iter()
            .map(|(n, t)| (n, t.detach()))
            .collect();
        Self::build(&self.config, params, self.pos_table)
    }

    fn build(config: &AdapterConfig, params: NamedParams, pos: Option<Tensor>) -> Result<Adapter> {
        config.validate()?;
        let mut p = Take::new(&params);
        let eps = config.norm_eps;
        let front = match config.variant {
            AdapterVariant::Released => Front::Released {
                down: CausalDownsampler::take(&mut p)?,
                linear: Linear::take(&mut p, "speech_transformer.embed.out.0")?,
                norm: Norm::take(&mut p, "speech_transformer.embed.out.1", eps)?,
            },
            AdapterVariant::Conv2dPaper => Front::Conv2d(Conv2dSubsampler::take(&mut p)?),
        };
        let positions = match &pos {
            // The checkpoint's own rows, capped at the config's limit so both tables refuse
            // the same lengths.
            Some(t) => {
                let rows = t.shape()[0].min(config.max_positions);
                PositionTable::Loaded(t.narrow(0, 0, rows)?)
            }
            None => PositionTable::Computed {
                dim: config.dim,
                max: config.max_positions,
            },
        };
        let transformer = SpeechTransformer::take(
            &mut p,
            config.layers,
            config.heads,
            eps,
            config.dim,
            positions,
        )?;
        let proj = Linear::take(&mut p, "speech_llama_proj")?;
        let output_scale = match config.output_rms {
            Some(r) => {
                let dev = params
                    .first()
                    .map(|(_, t)| t.device().clone())
                    .ok_or_else(|| AdapterError::Config("an adapter without parameters".into()))?;
                Some(Tensor::from_vec(
                    vec![r; config.llm_dim],
                    &[config.llm_dim],
                    &dev,
                )?)
            }
            None => None,
        };
        Ok(Adapter {
            front,
            transformer,
            proj,
            output_scale,
            speech_embed: p.get("speech_token_emded.weight")?,
            config: config.clone(),
            params,
            pos_table: pos,
        })
    }

    /// The sizes this adapter was built with.
    pub fn config(&self) -> &AdapterConfig {
        &self.config
    }

    /// Every parameter with its OSUM name, in a fixed order (for the optimizer, and for saving
    /// with [`super::save_safetensors`]; [`Adapter::load`] with prefix `""` reads such a file).
    /// The position buffer is not a parameter and is not listed.
    pub fn named_parameters(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// The parameter tensors alone, in [`Adapter::named_parameters`] order.
    pub fn parameters(&self) -> Vec<Tensor> {
        self.params.iter().map(|(_, t)| t.clone()).collect()
    }

    /// The speech BOS embedding `[llm_dim]` (row `n_speech_tokens − 2`; a view, so gradients
    /// reach the table).
    pub fn bos(&self) -> Result<Tensor> {
        self.speech_token(self.config.bos_id())
    }

    /// The speech EOS embedding `[llm_dim]` (row `n_speech_tokens − 1`).
    pub fn eos(&self) -> Result<Tensor> {
        self.speech_token(self.config.eos_id())
    }

    /// Speech token 0 `[llm_dim]`, which no prompt uses: the class vector of the blank in the
    /// trainer's auxiliary CTC alignment (train/ctc.rs), so the blank trains with the adapter.
    pub fn ctc_blank(&self) -> Result<Tensor> {
        self.speech_token(0)
    }

    /// `[BOS; rows; EOS]`: speech rows `[n, llm_dim]` (e.g. [`AdapterOutput::item`]) between
    /// the speech BOS and EOS embeddings, `[n + 2, llm_dim]`, ready to splice into a prompt
    /// (REFERENCE §6).
    pub fn wrap_speech(&self, rows: &Tensor) -> Result<Tensor> {
        let mut wrapped = self.wrap_speech_items(std::slice::from_ref(rows))?;
        Ok(wrapped.remove(0))
    }

    /// [`Adapter::wrap_speech`] of each clip of a batch, with one BOS and one EOS view shared
    /// by all of them. Why: each view of the speech-token table sends its gradient back as a
    /// whole-table tensor (`[n_speech_tokens, llm_dim]`, 2.4M values for osum-tiny), so views
    /// taken per clip cost a table-sized zero fill, copy and add per clip and marker; shared
    /// views sum their clips' `[1, llm_dim]` gradients first and reach the table once.
    pub fn wrap_speech_items(&self, items: &[Tensor]) -> Result<Vec<Tensor>> {
        let d = self.config.llm_dim;
        if let Some(bad) = items.iter().find(|r| r.rank() != 2 || r.shape()[1] != d) {
            return Err(AdapterError::Input(format!(
                "speech rows must be [n, {d}], got {:?}",
                bad.shape()
            )));
        }
        let bos = self.bos()?.unsqueeze(0)?;
        let eos = self.eos()?.unsqueeze(0)?;
        items
            .iter()
            .map(|rows| Ok(Tensor::cat(&[bos.clone(), rows.clone(), eos.clone()], 0)?))
            .collect()
    }

    fn speech_token(&self, row: usize) -> Result<Tensor> {
        Ok(self.speech_embed.narrow(0, row, 1)?.squeeze(0)?)
    }

    /// Embed a padded batch of encoder outputs `x` `[B, T, enc_dim]` (f32) whose item `b` has
    /// `lengths[b] ≤ T` valid frames. Each item's valid rows equal a run of that item alone.
    /// Refuses empty batches, lengths over `T`, inputs too short for the downsampler
    /// (T = 0; T < 7 for the paper variant) and outputs longer than the position table.
    pub fn forward(&self, x: &Tensor, lengths: &[usize]) -> Result<AdapterOutput> {
        let t_out = self.check_input(x, lengths)?;
        let out_lens: Vec<usize> = lengths.iter().map(|&l| self.config.item_len(l)).collect();
        let h = match &self.front {
            Front::Released { down, linear, norm } => {
                norm.forward(&linear.forward(&down.forward(x)?)?)?
            }
            Front::Conv2d(sub) => sub.forward(x)?,
        };
        debug_assert_eq!(h.shape()[1], t_out);
        let dev = x.device();
        let padded = is_padded(&out_lens, t_out);
        let mask = padded
            .then(|| key_mask(&out_lens, t_out, dev))
            .transpose()?;
        let h = self.transformer.forward(&h, mask.as_ref())?;
        let mut e = self.proj.forward(&h)?;
        if let Some(scale) = &self.output_scale {
            e = e.rms_norm(scale, self.config.norm_eps)?;
        }
        if padded {
            e = e.mul(&row_mask(&out_lens, t_out, dev)?)?;
        }
        Ok(AdapterOutput {
            embeddings: e,
            lengths: out_lens,
        })
    }

    /// Shape, dtype and lengths of a batch; the downsampled length on success.
    fn check_input(&self, x: &Tensor, lengths: &[usize]) -> Result<usize> {
        let bad = |msg: String| Err(AdapterError::Input(msg));
        let s = x.shape();
        if s.len() != 3 || s[2] != self.config.enc_dim || x.dtype() != DType::F32 {
            return bad(format!(
                "expected f32 [batch, frames, {}], got {:?} {s:?}",
                self.config.enc_dim,
                x.dtype()
            ));
        }
        let (b, t) = (s[0], s[1]);
        if b == 0 {
            return bad("empty batch".into());
        }
        if lengths.len() != b {
            return bad(format!("{} lengths for a batch of {b}", lengths.len()));
        }
        if let Some(l) = lengths.iter().find(|&&l| l > t) {
            return bad(format!("length {l} exceeds the {t} frames of the batch"));
        }
        let Some(t_out) = self.config.downsampled_len(t) else {
            let min = match self.config.variant {
                AdapterVariant::Released => 1,
                AdapterVariant::Conv2dPaper => 7,
            };
            return bad(format!(
                "{t} frames are too few for the {:?} downsampler (needs ≥ {min})",
                self.config.variant
            ));
        };
        Ok(t_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu_device;

    fn rms(t: &Tensor) -> f32 {
        let v = t.to_vec::<f32>().unwrap();
        (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt()
    }

    /// Only the projection and the speech-token table are rescaled, by target ÷ default RMS;
    /// every other parameter is exactly `Adapter::random`'s.
    #[test]
    fn random_matched_rescales_only_the_llm_facing_tensors() {
        let dev = cpu_device();
        let c = AdapterConfig::osum_tiny();
        let plain = Adapter::random(&c, 5, &dev).unwrap();
        let matched = Adapter::random_matched(&c, 5, 0.1, &dev).unwrap();
        for ((name, a), (_, b)) in plain
            .named_parameters()
            .iter()
            .zip(matched.named_parameters())
        {
            let (ra, rb) = (rms(a), rms(b));
            match name.as_str() {
                // N(0, 1) rows → RMS 0.1.
                "speech_token_emded.weight" => assert!((rb - 0.1).abs() < 2e-3, "{name}: {rb}"),
                // U(±1/√fan_in) scaled by 0.1·√3: the ratio is exact.
                "speech_llama_proj.weight" | "speech_llama_proj.bias" => {
                    assert!((rb / ra - 0.1 * 3f32.sqrt()).abs() < 1e-4, "{name}")
                }
                _ => assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap()),
            }
        }
    }
}
