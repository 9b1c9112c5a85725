//! Whisper sizes: the released presets and inference from a checkpoint's shapes (REFERENCE §3).

use super::names::Convention;
use super::params::{logical_shape_of, WeightLookup};
use super::{Result, WhisperError};

/// Hyper-parameters of one Whisper model (OpenAI's `ModelDimensions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhisperConfig {
    /// Mel bins of the input (80; 128 for large-v3).
    pub n_mels: usize,
    /// Encoder positions (1500 = 30 s after the stride-2 conv).
    pub n_audio_ctx: usize,
    /// Residual width of encoder and decoder.
    pub d_model: usize,
    /// Encoder attention heads.
    pub n_audio_head: usize,
    /// Encoder blocks.
    pub n_audio_layer: usize,
    /// Hidden width of the feed-forward blocks (4·d_model in every release).
    pub ffn: usize,
    /// Vocabulary size (51864 English-only, 51865 multilingual, 51866 large-v3).
    pub n_vocab: usize,
    /// Decoder positions (448).
    pub n_text_ctx: usize,
    /// Decoder attention heads.
    pub n_text_head: usize,
    /// Decoder blocks (0 for encoder-only checkpoints).
    pub n_text_layer: usize,
}

/// Every released Whisper head has 64 channels.
pub const HEAD_DIM: usize = 64;

impl WhisperConfig {
    fn preset(d: usize, layers: usize, n_vocab: usize) -> WhisperConfig {
        WhisperConfig {
            n_mels: 80,
            n_audio_ctx: 1500,
            d_model: d,
            n_audio_head: d / HEAD_DIM,
            n_audio_layer: layers,
            ffn: 4 * d,
            n_vocab,
            n_text_ctx: 448,
            n_text_head: d / HEAD_DIM,
            n_text_layer: layers,
        }
    }

    /// A released size by name: tiny, tiny.en, base, base.en, small, small.en, medium,
    /// medium.en, large (v1/v2), large-v3.
    pub fn named(name: &str) -> Option<WhisperConfig> {
        let (base, en) = match name.strip_suffix(".en") {
            Some(b) => (b, true),
            None => (name, false),
        };
        let vocab = if en { 51864 } else { 51865 };
        let c = match base {
            "tiny" => Self::preset(384, 4, vocab),
            "base" => Self::preset(512, 6, vocab),
            "small" => Self::preset(768, 12, vocab),
            "medium" => Self::preset(1024, 24, vocab),
            "large" | "large-v1" | "large-v2" if !en => Self::preset(1280, 32, vocab),
            "large-v3" if !en => WhisperConfig {
                n_mels: 128,
                n_vocab: 51866,
                ..Self::preset(1280, 32, vocab)
            },
            _ => return None,
        };
        Some(c)
    }

    /// Encoder attention head width.
    pub fn audio_head_dim(&self) -> usize {
        self.d_model / self.n_audio_head
    }

    /// Decoder attention head width.
    pub fn text_head_dim(&self) -> usize {
        self.d_model / self.n_text_head
    }

    /// Read the sizes off a checkpoint: n_mels and d_model from conv1, ffn from the first
    /// block's fc1, layers by probing blocks, heads as d_model/64, contexts and vocabulary from
    /// the position and token tables (decoder sizes 0 when there is no decoder).
    pub fn infer(src: &dyn WeightLookup, conv: Convention) -> Result<WhisperConfig> {
        let need = |logical: &str| -> Result<Vec<usize>> {
            logical_shape_of(src, conv, logical)?.ok_or_else(|| WhisperError::MissingTensor {
                name: conv.name(logical).map(|l| l.name).unwrap_or_default(),
                convention: conv,
                logical: logical.to_string(),
            })
        };
        let conv1 = need("encoder.conv1.weight")?;
        if conv1.len() != 3 || conv1[0] % HEAD_DIM != 0 {
            return Err(WhisperError::Invalid(format!(
                "conv1 weight has shape {conv1:?}, expected [d_model (a multiple of {HEAD_DIM}), n_mels, 3]"
            )));
        }
        let (d, n_mels) = (conv1[0], conv1[1]);
        let ffn = need("encoder.blocks.0.mlp.0.weight")?[0];
        let pos = need("encoder.positional_embedding")?;
        let n_audio_ctx = pos[0];
        let count = |part: &str| -> Result<usize> {
            let mut n = 0;
            while logical_shape_of(src, conv, &format!("{part}.blocks.{n}.attn_ln.weight"))?
                .is_some()
            {
                n += 1;
            }
            Ok(n)
        };
        let n_audio_layer = count("encoder")?;
        let emb = logical_shape_of(src, conv, "decoder.token_embedding.weight")?;
        let (n_vocab, n_text_ctx, n_text_layer) = match emb {
            Some(e) => (
                e[0],
                need("decoder.positional_embedding")?[0],
                count("decoder")?,
            ),
            None => (0, 0, 0),
        };
        Ok(WhisperConfig {
            n_mels,
            n_audio_ctx,
            d_model: d,
            n_audio_head: d / HEAD_DIM,
            n_audio_layer,
            ffn,
            n_vocab,
            n_text_ctx,
            n_text_head: d / HEAD_DIM,
            n_text_layer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_reference_table() {
        let t = WhisperConfig::named("tiny.en").unwrap();
        assert_eq!(
            (t.d_model, t.n_audio_layer, t.n_audio_head, t.ffn),
            (384, 4, 6, 1536)
        );
        assert_eq!(t.n_vocab, 51864);
        let m = WhisperConfig::named("medium").unwrap();
        assert_eq!(
            (m.d_model, m.n_audio_layer, m.n_audio_head, m.ffn),
            (1024, 24, 16, 4096)
        );
        assert_eq!(WhisperConfig::named("large-v3").unwrap().n_mels, 128);
        assert!(WhisperConfig::named("large.en").is_none());
        assert!(WhisperConfig::named("huge").is_none());
    }
}
