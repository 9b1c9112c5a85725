//! Adapter sizes and the downsampler variant (REFERENCE §4), with presets for the released
//! OSUM-Pangu adapter and for the small `osum-tiny` model, readable from / writable to JSON so a
//! preset can be kept as an editable file (`model/adapter/presets/*.json` hold both presets;
//! a test keeps them equal to the constructors).

use super::{AdapterError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Which 4× downsampler sits in front of the speech transformer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdapterVariant {
    /// The released checkpoints: `down_sample_2`, three causal Conv1d (k3, strides 1, 2, 2,
    /// GELU), then `speech_transformer.embed.out` = Linear + LayerNorm.
    Released,
    /// The paper's description: WeNet `Conv2dSubsampling4` as the transformer's embed layer
    /// (`speech_transformer.embed.conv.{0,2}` 3×3 stride 2 + ReLU, then `embed.out.0` Linear).
    Conv2dPaper,
}

/// Every size and switch of the speech adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterConfig {
    /// The downsampler in front of the transformer.
    pub variant: AdapterVariant,
    /// Width of the Whisper encoder output (the adapter's input channels).
    pub enc_dim: usize,
    /// Width of the speech transformer (and of the Conv1d downsampler's outputs).
    pub dim: usize,
    /// Attention heads of the speech transformer (`dim % heads == 0`).
    pub heads: usize,
    /// Hidden width of the ReLU feed-forward.
    pub ffn: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Width of the LLM's embeddings (output of `speech_llama_proj`).
    pub llm_dim: usize,
    /// Positions of the sinusoidal table (WeNet's `max_len`, 5000): longer downsampled inputs
    /// are refused, as WeNet's assertion refuses them.
    pub max_positions: usize,
    /// Rows of `speech_token_emded`; the last two are the speech BOS and EOS.
    pub n_speech_tokens: usize,
    /// Output channels of both 2-D convolutions of [`AdapterVariant::Conv2dPaper`] (WeNet uses
    /// the transformer width). Unused by the released variant.
    #[serde(default)]
    pub conv_channels: Option<usize>,
    /// Epsilon of every LayerNorm. WeNet as vendored by OSUM uses 1e-5 everywhere
    /// (`TransformerEncoder(norm_eps=1e-5)`, `LinearNoSubsampling`'s `LayerNorm(eps=1e-5)`).
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f32,
    /// When set, every projected speech row is rescaled to this RMS (a parameter-free RMSNorm
    /// after `speech_llama_proj`; the BOS/EOS rows are untouched). Not in the released OSUM
    /// adapter (absent there). osum-tiny sets it to SmolLM2-135M's token-embedding RMS (0.136):
    /// measured on a stage-I run, projected rows grew to RMS ≈ 1.4, 10× any text row, and
    /// because an RMSNorm's gradient scales with 1/RMS of its input the speech rows then got
    /// 20–90× less gradient than the BOS/EOS rows, and the frozen LLM answered every clip alike.
    #[serde(default)]
    pub output_rms: Option<f32>,
}

fn default_norm_eps() -> f32 {
    1e-5
}

/// Upper bound on every size, so a corrupt preset cannot ask for absurd allocations
/// (random init, position tables). Far above the released sizes.
const MAX_DIM: usize = 1 << 20;
/// Upper bound on the parameter count of one tensor (2^34 f32 = 64 GB).
const MAX_TENSOR: usize = 1 << 34;

impl AdapterConfig {
    /// The adapter of the released OSUM-Pangu checkpoint: Whisper-medium encoder (1024), a
    /// 4-block, 4-head transformer of width 1024 with FFN 2560, openPangu-7B width 4096,
    /// 4099 speech tokens (BOS 4097, EOS 4098).
    pub fn osum_pangu() -> AdapterConfig {
        AdapterConfig {
            variant: AdapterVariant::Released,
            enc_dim: 1024,
            dim: 1024,
            heads: 4,
            ffn: 2560,
            layers: 4,
            llm_dim: 4096,
            max_positions: 5000,
            n_speech_tokens: 4099,
            conv_channels: None,
            norm_eps: 1e-5,
            output_rms: None,
        }
    }

    /// `osum-tiny`: Whisper tiny.en (384) into SmolLM2-135M (576) through a 2-block transformer
    /// of width 384 with 6 heads of 64 and FFN 1024; speech rows rescaled to SmolLM2's embedding
    /// RMS ([`AdapterConfig::output_rms`]).
    pub fn osum_tiny() -> AdapterConfig {
        AdapterConfig {
            variant: AdapterVariant::Released,
            enc_dim: 384,
            dim: 384,
            heads: 6,
            ffn: 1024,
            layers: 2,
            llm_dim: 576,
            max_positions: 5000,
            n_speech_tokens: 4099,
            conv_channels: None,
            norm_eps: 1e-5,
            output_rms: Some(0.136),
        }
    }

    /// The same sizes with another downsampler.
    pub fn with_variant(mut self, variant: AdapterVariant) -> AdapterConfig {
        self.variant = variant;
        self
    }

    /// Channels of the paper variant's convolutions (defaults to `dim`, as WeNet).
    pub fn conv_channels(&self) -> usize {
        self.conv_channels.unwrap_or(self.dim)
    }

    /// Feature bins left after the paper variant's two 3×3 stride-2 convolutions over the
    /// `enc_dim` axis: `((enc_dim − 1)/2 − 1)/2` (WeNet's `Conv2dSubsampling4`).
    pub fn conv_freq_bins(&self) -> usize {
        conv2d_out_len(conv2d_out_len(self.enc_dim))
    }

    /// Row index of the speech BOS embedding (`n_speech_tokens − 2`).
    pub fn bos_id(&self) -> usize {
        self.n_speech_tokens - 2
    }

    /// Row index of the speech EOS embedding (`n_speech_tokens − 1`).
    pub fn eos_id(&self) -> usize {
        self.n_speech_tokens - 1
    }

    /// Downsampled length of a whole padded batch of `t` encoder frames: `⌈⌈t/2⌉/2⌉` for the
    /// released variant (a left pad of 2 with k3: `⌊(t + 2 − 3)/s⌋ + 1 = ⌈t/s⌉`), and
    /// `((t − 1)/2 − 1)/2` for the paper variant. `None` when PyTorch would refuse the input
    /// (t = 0, or t < 7 for the paper variant, where the kernels do not fit).
    pub fn downsampled_len(&self, t: usize) -> Option<usize> {
        match self.variant {
            AdapterVariant::Released => (t > 0).then(|| t.div_ceil(2).div_ceil(2)),
            AdapterVariant::Conv2dPaper => {
                (t >= 3 && conv2d_out_len(t) >= 3).then(|| conv2d_out_len(conv2d_out_len(t)))
            }
        }
    }

    /// Valid outputs of one item of `len` frames inside a padded batch, as OSUM's masks count
    /// them: `mask[0::2][0::2]` (released: `⌈⌈len/2⌉/2⌉`) or WeNet's `mask[2::2][2::2]`
    /// (paper: `len ↦ (len − 1)/2` twice, 0 for short items).
    pub fn item_len(&self, len: usize) -> usize {
        match self.variant {
            AdapterVariant::Released => len.div_ceil(2).div_ceil(2),
            AdapterVariant::Conv2dPaper => conv2d_out_len(conv2d_out_len(len)),
        }
    }

    /// Check every size (positive, bounded, divisible where it must be); the error names the
    /// field.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(AdapterError::Config(msg));
        if let Some(r) = self.output_rms {
            if !(r.is_finite() && r > 0.0) {
                return bad(format!("output_rms must be a positive number, not {r}"));
            }
        }
        let sizes = [
            ("enc_dim", self.enc_dim),
            ("dim", self.dim),
            ("heads", self.heads),
            ("ffn", self.ffn),
            ("llm_dim", self.llm_dim),
            ("max_positions", self.max_positions),
            ("n_speech_tokens", self.n_speech_tokens),
            ("conv_channels", self.conv_channels()),
        ];
        for (name, v) in sizes {
            if v == 0 || v > MAX_DIM {
                return bad(format!("{name} = {v} is outside 1..={MAX_DIM}"));
            }
        }
        if self.layers > 1024 {
            return bad(format!("layers = {} is above 1024", self.layers));
        }
        if !self.dim.is_multiple_of(self.heads) {
            return bad(format!(
                "dim {} is not divisible by heads {}",
                self.dim, self.heads
            ));
        }
        if !self.dim.is_multiple_of(2) {
            // The interleaved table has as many sine as cosine columns.
            return bad(format!("dim {} must be even (sin/cos positions)", self.dim));
        }
        if self.n_speech_tokens < 2 {
            return bad(format!(
                "n_speech_tokens = {} leaves no room for the speech BOS and EOS rows",
                self.n_speech_tokens
            ));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return bad(format!("norm_eps = {} must be positive", self.norm_eps));
        }
        if self.variant == AdapterVariant::Conv2dPaper && self.conv_freq_bins() == 0 {
            return bad(format!(
                "enc_dim {} is too small for two 3×3 stride-2 convolutions (needs ≥ 7)",
                self.enc_dim
            ));
        }
        let largest = [
            self.dim
                .checked_mul(self.conv_channels() * self.conv_freq_bins()),
            self.n_speech_tokens.checked_mul(self.llm_dim),
            self.ffn.checked_mul(self.dim),
            self.max_positions.checked_mul(self.dim),
        ];
        if largest.iter().any(|n| n.is_none_or(|n| n > MAX_TENSOR)) {
            return bad(format!("a tensor would exceed {MAX_TENSOR} elements"));
        }
        Ok(())
    }

    /// Parse a JSON preset and validate it.
    pub fn from_json(text: &str) -> Result<AdapterConfig> {
        let c: AdapterConfig = serde_json::from_str(text)
            .map_err(|e| AdapterError::Config(format!("adapter config JSON: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    /// Read a JSON preset file; errors name the file.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<AdapterConfig> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| AdapterError::Config(format!("{}: {e}", path.display())))?;
        Self::from_json(&text).map_err(|e| AdapterError::Config(format!("{}: {e}", path.display())))
    }

    /// Pretty JSON of this config (the format [`AdapterConfig::from_json`] reads).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a plain struct always serialises")
    }
}

/// Output length of a 3-wide, stride-2, unpadded convolution (and of WeNet's `mask[2::2]`):
/// `(n − 1)/2`, 0 when the kernel does not fit.
fn conv2d_out_len(n: usize) -> usize {
    n.saturating_sub(1) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_lengths_are_nested_ceilings() {
        let c = AdapterConfig::osum_tiny();
        let cases = [
            (1, 1),
            (2, 1),
            (3, 1),
            (4, 1),
            (5, 2),
            (7, 2),
            (8, 2),
            (9, 3),
            (100, 25),
        ];
        for (t, want) in cases {
            assert_eq!(c.downsampled_len(t), Some(want), "t = {t}");
            assert_eq!(c.item_len(t), want, "t = {t}");
        }
        assert_eq!(c.downsampled_len(1500), Some(375));
        assert_eq!(c.downsampled_len(0), None);
    }

    #[test]
    fn paper_lengths_follow_wenet() {
        let c = AdapterConfig::osum_tiny().with_variant(AdapterVariant::Conv2dPaper);
        for t in 0..7 {
            assert_eq!(c.downsampled_len(t), None, "t = {t}");
        }
        // PyTorch: (t − 3)/2 + 1 twice; WeNet's masks: [2::2] twice.
        for t in 7..3000 {
            let conv = |n: usize| (n - 3) / 2 + 1;
            assert_eq!(c.downsampled_len(t), Some(conv(conv(t))), "t = {t}");
            let slice = |n: usize| (2..n).step_by(2).count();
            assert_eq!(c.item_len(t), slice(slice(t)), "t = {t}");
        }
        assert_eq!(c.downsampled_len(1500), Some(374));
        assert_eq!(c.conv_freq_bins(), 95);
    }

    #[test]
    fn presets_validate_and_round_trip_through_json() {
        for c in [
            AdapterConfig::osum_pangu(),
            AdapterConfig::osum_tiny(),
            AdapterConfig::osum_tiny().with_variant(AdapterVariant::Conv2dPaper),
        ] {
            c.validate().unwrap();
            assert_eq!(AdapterConfig::from_json(&c.to_json()).unwrap(), c);
        }
        let c = AdapterConfig::osum_pangu();
        assert_eq!((c.bos_id(), c.eos_id()), (4097, 4098));
    }

    #[test]
    fn committed_preset_files_equal_the_constructors() {
        let files = [
            (
                include_str!("presets/osum_pangu.json"),
                AdapterConfig::osum_pangu(),
            ),
            (
                include_str!("presets/osum_tiny.json"),
                AdapterConfig::osum_tiny(),
            ),
        ];
        for (text, want) in files {
            assert_eq!(AdapterConfig::from_json(text).unwrap(), want);
        }
    }

    #[test]
    fn optional_fields_default_and_bad_configs_are_refused() {
        let text = r#"{"variant":"conv2d_paper","enc_dim":16,"dim":8,"heads":2,"ffn":16,
            "layers":1,"llm_dim":12,"max_positions":64,"n_speech_tokens":5}"#;
        let c = AdapterConfig::from_json(text).unwrap();
        assert_eq!((c.conv_channels(), c.norm_eps), (8, 1e-5));
        let typo = text.replace("\"ffn\"", "\"fnn\"");
        assert!(AdapterConfig::from_json(&typo).is_err());
        let odd_heads = text.replace("\"heads\":2", "\"heads\":3");
        let msg = AdapterConfig::from_json(&odd_heads)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("heads"), "{msg}");
        let huge = text.replace("\"dim\":8", "\"dim\":99999999999");
        assert!(AdapterConfig::from_json(&huge).is_err());
        let one_token = text.replace("\"n_speech_tokens\":5", "\"n_speech_tokens\":1");
        assert!(AdapterConfig::from_json(&one_token).is_err());
    }
}
