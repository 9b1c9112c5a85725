//! Presets: plain JSON files (`presets/*.json`, built into the binary and overridable by a path)
//! naming the weights, template and generation defaults of a model.
//!
//! `--preset NAME` looks for a built-in preset; `--preset path/to/file.json` reads that file, so
//! a user edits a copy rather than the program.

use crate::model::adapter::AdapterConfig;
use crate::model::prompt::Template;
use crate::model::whisper::WhisperConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where an LLM's weights come from (paths relative to `osum::model::home()`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmSource {
    /// A llama.cpp GGUF file (weights, hyper-parameters and tokenizer in one).
    Gguf(PathBuf),
    /// A Hugging Face model folder (`config.json`, safetensors, `tokenizer.json` or
    /// `tokenizer.model`), as openPangu-Embedded-7B and Qwen2-7B are released.
    HfDir(PathBuf),
}

impl LlmSource {
    /// The path under `home`.
    pub fn path(&self, home: &Path) -> PathBuf {
        match self {
            LlmSource::Gguf(p) | LlmSource::HfDir(p) => home.join(p),
        }
    }
}

/// Generation defaults (REFERENCE §6: OSUM-Pangu decodes greedily with penalty 1.05).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationDefaults {
    /// At most this many new tokens.
    pub max_new_tokens: usize,
    /// HF repetition penalty (1.0 = off).
    #[serde(default = "one")]
    pub repetition_penalty: f32,
    /// Token ids that also end generation, beside the model's EOS and the template's end of
    /// turn (original OSUM stops on Qwen2's `<|endoftext|>` 151643, REFERENCE §5).
    #[serde(default)]
    pub stop_ids: Vec<u32>,
}

fn one() -> f32 {
    1.0
}

/// A model preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Short name (`--preset NAME`).
    pub name: String,
    /// One line for `--help` and logs.
    pub description: String,
    /// The LLM weights.
    pub llm: LlmSource,
    /// Prompt layout.
    pub template: Template,
    /// System prompt replacing the template's default.
    #[serde(default)]
    pub system: Option<String>,
    /// Generation defaults.
    pub generation: GenerationDefaults,
    /// Speech models only: the Whisper encoder, a model folder under `osum::model::home()`.
    /// Absent when the encoder comes from [`Preset::checkpoint`].
    #[serde(default)]
    pub encoder: Option<String>,
    /// Speech models only: the encoder layers whose outputs, concatenated on the feature axis,
    /// the adapter reads (names as `osum features` writes them: `stem`, `block1` …,
    /// `ln_post`). Absent means `["ln_post"]`, the encoder's output, as in OSUM; the adapter's
    /// `enc_dim` must be the taps' count × the encoder's width.
    #[serde(default)]
    pub encoder_taps: Option<Vec<String>>,
    /// Speech models only: a released OSUM / OSUM-Pangu checkpoint (`infer.pt`, REFERENCE §7)
    /// holding the Whisper encoder, the adapter, the LLM's base weights and its unmerged LoRA;
    /// a path under `osum::model::home()` or absolute. The LLM's `config.json` and tokenizer
    /// still come from [`Preset::llm`] (its release folder; its weights are not read).
    #[serde(default)]
    pub checkpoint: Option<PathBuf>,
    /// The sizes of the Whisper encoder inside [`Preset::checkpoint`]: every encoder tensor is
    /// checked against them.
    #[serde(default)]
    pub encoder_dims: Option<EncoderDims>,
    /// Where to get the files `osum setup` does not install, shown when they are missing.
    #[serde(default)]
    pub obtain: Option<String>,
    /// Speech models only: the adapter between encoder and LLM.
    #[serde(default)]
    pub adapter: Option<AdapterConfig>,
    /// LoRA on the LLM (REFERENCE §7).
    #[serde(default)]
    pub lora: Option<LoraSpec>,
    /// Speech models only: the trained adapter + LoRA shipped with the project (a folder under
    /// the project's `assets/`, as `osum train` writes it), used when no `--checkpoint` is given.
    #[serde(default)]
    pub trained: Option<String>,
}

/// Where LoRA goes and its size (REFERENCE §7: OSUM r 8 / α 32, OSUM-Pangu r 64 / α 32).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraSpec {
    /// Rank r.
    pub rank: usize,
    /// α (the update is scaled by α/r).
    pub alpha: f32,
    /// Dropout on the LoRA input while training.
    #[serde(default)]
    pub dropout: f32,
    /// Module names: any of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.
    pub targets: Vec<String>,
}

/// The sizes of a Whisper encoder (REFERENCE §3: medium is 1024 wide, 24 layers, 16 heads,
/// FFN 4096).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderDims {
    /// Mel bins of the input.
    #[serde(default = "eighty")]
    pub n_mels: usize,
    /// Residual width.
    pub d_model: usize,
    /// Encoder blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward width.
    pub ffn: usize,
    /// Encoder positions (1500 = 30 s); the checkpoint's table may hold more rows.
    #[serde(default = "fifteen_hundred")]
    pub positions: usize,
}

fn eighty() -> usize {
    80
}

fn fifteen_hundred() -> usize {
    1500
}

impl EncoderDims {
    /// The encoder-only Whisper config of these sizes (no decoder).
    pub fn whisper_config(&self) -> WhisperConfig {
        WhisperConfig {
            n_mels: self.n_mels,
            n_audio_ctx: self.positions,
            d_model: self.d_model,
            n_audio_head: self.heads,
            n_audio_layer: self.layers,
            ffn: self.ffn,
            n_vocab: 0,
            n_text_ctx: 0,
            n_text_head: 0,
            n_text_layer: 0,
        }
    }
}

/// The built-in presets, as the files in `presets/`.
const BUILT_IN: &[(&str, &str)] = &[
    ("smollm2", include_str!("../presets/smollm2.json")),
    ("openpangu-7b", include_str!("../presets/openpangu-7b.json")),
    ("qwen2-7b", include_str!("../presets/qwen2-7b.json")),
    ("osum-tiny", include_str!("../presets/osum-tiny.json")),
    (
        "osum-pangu-7b",
        include_str!("../presets/osum-pangu-7b.json"),
    ),
    (
        "osum-qwen2-7b",
        include_str!("../presets/osum-qwen2-7b.json"),
    ),
];

/// What went wrong finding or reading a preset.
#[derive(Debug, thiserror::Error)]
pub enum PresetError {
    /// Neither a built-in name nor a readable file.
    #[error("unknown preset `{0}` (built in: {1}; or give a path to a .json preset file)")]
    Unknown(String, String),
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// The JSON does not describe a preset.
    #[error("preset {origin}: {source}")]
    Parse {
        /// The file or built-in name.
        origin: String,
        /// The reason (names the field and line).
        source: serde_json::Error,
    },
}

impl Preset {
    /// The shipped trained checkpoint folder ([`Preset::trained`] under the project's
    /// `assets/`, or `$OSUM_ASSETS` when set), when the preset names one and it exists.
    pub fn shipped_checkpoint(&self) -> Option<PathBuf> {
        let name = self.trained.as_deref()?;
        let assets = std::env::var_os("OSUM_ASSETS")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("assets"));
        let dir = assets.join(name);
        dir.is_dir().then_some(dir)
    }

    /// The checkpoint to answer with: `explicit` (`--checkpoint`) when given, else the shipped
    /// one ([`Preset::shipped_checkpoint`]), else none (an untrained adapter).
    pub fn checkpoint_or_shipped(&self, explicit: Option<&Path>) -> Option<PathBuf> {
        explicit
            .map(Path::to_path_buf)
            .or_else(|| self.shipped_checkpoint())
    }

    /// The encoder layers the adapter reads ([`Preset::encoder_taps`], `["ln_post"]` when
    /// absent).
    pub fn encoder_taps(&self) -> Vec<String> {
        self.encoder_taps
            .clone()
            .unwrap_or_else(|| vec!["ln_post".to_string()])
    }

    /// What the adapter's input is computed from: the encoder's name, followed by
    /// `@tap+tap…` when it reads more than the encoder's output. Cached encoder features are
    /// keyed by it, so presets tapping different layers never share entries.
    pub fn feature_source(&self) -> String {
        let encoder = self.encoder.clone().unwrap_or_default();
        match self.encoder_taps() {
            taps if taps == ["ln_post"] => encoder,
            taps => format!("{encoder}@{}", taps.join("+")),
        }
    }

    /// The names of the built-in presets.
    pub fn built_in_names() -> Vec<&'static str> {
        BUILT_IN.iter().map(|(n, _)| *n).collect()
    }

    /// A built-in preset by name, or a preset file by path (anything ending in `.json` or
    /// containing a path separator).
    pub fn find(name_or_path: &str) -> Result<Preset, PresetError> {
        if let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            return Self::parse(text, name_or_path);
        }
        let looks_like_path = name_or_path.ends_with(".json") || name_or_path.contains('/');
        if !looks_like_path {
            return Err(PresetError::Unknown(
                name_or_path.into(),
                Self::built_in_names().join(", "),
            ));
        }
        let path = Path::new(name_or_path);
        let text = std::fs::read_to_string(path).map_err(|source| PresetError::Io {
            path: path.into(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, origin: &str) -> Result<Preset, PresetError> {
        serde_json::from_str(text).map_err(|source| PresetError::Parse {
            origin: origin.into(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_preset_parses() {
        for name in Preset::built_in_names() {
            let p = Preset::find(name).unwrap();
            assert_eq!(p.name, name);
        }
    }

    #[test]
    fn unknown_names_and_bad_files_are_clear_errors() {
        let e = Preset::find("nope").unwrap_err().to_string();
        assert!(
            e.contains("unknown preset `nope`") && e.contains("smollm2"),
            "{e}"
        );
        let e = Preset::find("/does/not/exist.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/does/not/exist.json"), "{e}");
        let e = Preset::parse(r#"{"name": "x"}"#, "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field"), "{e}");
    }

    /// Presets tapping different encoder layers must never read each other's cached features,
    /// while a preset tapping only the output keeps the cache key it always had.
    #[test]
    fn the_feature_source_names_the_encoder_and_any_extra_taps() {
        let mut p = Preset::find("osum-tiny").unwrap();
        p.encoder_taps = None;
        assert_eq!(p.encoder_taps(), ["ln_post"]);
        assert_eq!(p.feature_source(), "whisper-tiny.en");
        p.encoder_taps = Some(vec!["ln_post".into()]);
        assert_eq!(p.feature_source(), "whisper-tiny.en");
        p.encoder_taps = Some(vec!["stem".into(), "ln_post".into()]);
        assert_eq!(p.feature_source(), "whisper-tiny.en@stem+ln_post");
    }
}
