//! A text LLM ready to talk: the [`Llm`], its tokenizer and its prompt template. `osum chat`
//! runs on this; the OSUM model adds the speech path on top of the same pieces.

use crate::engine::{no_grad, Device, Tensor};
use crate::model::llm::{self, generate_from_embeds, Generation, GenerationConfig, Llm, LlmConfig};
use crate::model::prompt::{Segment, Template};
use crate::model::tokenizer::gguf_bpe;
use crate::model::tokenizer::sentencepiece::SentencePiece;
use crate::model::weights::{GgufLlama, SafeTensors, TensorSource};
use std::path::Path;
use std::sync::Arc;

/// What can go wrong opening or running a text model.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// The LLM (config, weights, generation).
    #[error(transparent)]
    Llm(#[from] llm::LlmError),
    /// An engine op.
    #[error(transparent)]
    Engine(#[from] crate::engine::Error),
    /// The weights file.
    #[error(transparent)]
    Weights(#[from] crate::model::weights::WeightsError),
    /// The model's files are not where the preset says.
    #[error("{0}")]
    Missing(String),
    /// The tokenizer (named file and problem).
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, TextError>;

/// The tokenizers the presets use.
pub enum TextTokenizer {
    /// A `tokenizers`-crate tokenizer (HF `tokenizer.json`, or GGUF-embedded byte-level BPE).
    Hf(Box<tokenizers::Tokenizer>),
    /// SentencePiece `tokenizer.model` (openPangu).
    SentencePiece(Box<SentencePiece>),
}

impl TextTokenizer {
    /// Token ids of `text`; special tokens written in the text (`<|im_start|>`, `[unused9]`) map
    /// to their ids. No BOS/EOS is added here.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            TextTokenizer::Hf(t) => t
                .encode(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| TextError::Tokenizer(e.to_string())),
            TextTokenizer::SentencePiece(s) => Ok(s.encode(text)),
        }
    }

    /// The text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match self {
            TextTokenizer::Hf(t) => t
                .decode(ids, true)
                .map_err(|e| TextError::Tokenizer(e.to_string())),
            TextTokenizer::SentencePiece(s) => s
                .decode(ids)
                .map_err(|e| TextError::Tokenizer(e.to_string())),
        }
    }

    /// Tokens the tokenizer can produce (added/special tokens included).
    pub fn vocab_size(&self) -> usize {
        match self {
            TextTokenizer::Hf(t) => t.get_vocab_size(true),
            TextTokenizer::SentencePiece(s) => s.vocab_size(),
        }
    }

    /// An error naming `file` unless every id this tokenizer produces has a row in the
    /// model's embedding of `vocab` rows: a mismatched pair would otherwise fail (or read the
    /// wrong row) only when an affected token first appears.
    fn check_fits(&self, file: &Path, vocab: usize) -> Result<()> {
        let n = self.vocab_size();
        if n > vocab {
            return Err(TextError::Tokenizer(format!(
                "{}: has {n} tokens but the model's vocabulary (vocab_size) is {vocab}; the \
                 tokenizer belongs to another model",
                file.display()
            )));
        }
        Ok(())
    }

    /// The id of a single (special) token, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        match self {
            TextTokenizer::Hf(t) => t.token_to_id(token),
            TextTokenizer::SentencePiece(s) => s.get_piece_id(token),
        }
    }
}

/// An LLM with its tokenizer and template.
pub struct TextModel {
    /// The decoder.
    pub llm: Llm,
    /// Its tokenizer.
    pub tokenizer: TextTokenizer,
    /// How prompts are laid out.
    pub template: Template,
}

impl TextModel {
    /// Open a llama.cpp GGUF file (weights, hyper-parameters and embedded tokenizer).
    pub fn open_gguf(path: &Path, template: Template, device: &Arc<dyn Device>) -> Result<Self> {
        let src = GgufLlama::open(path)?;
        let config = LlmConfig::from_gguf(src.params())?;
        let tok =
            gguf_bpe::from_gguf(src.file()).map_err(|e| TextError::Tokenizer(e.to_string()))?;
        let tokenizer = TextTokenizer::Hf(Box::new(tok.tokenizer));
        tokenizer.check_fits(path, config.vocab)?;
        let llm = Llm::load(&src, config, device)?;
        Ok(TextModel {
            llm,
            tokenizer,
            template,
        })
    }

    /// Open the LLM a preset names (`source` resolved under `home`).
    pub fn open_source(
        source: &crate::model::preset::LlmSource,
        home: &Path,
        template: Template,
        device: &Arc<dyn Device>,
    ) -> Result<Self> {
        use crate::model::preset::LlmSource;
        let path = source.path(home);
        if !path.exists() {
            return Err(TextError::Missing(format!(
                "{} not found (`osum setup` installs the small models; large ones are placed there by hand)",
                path.display()
            )));
        }
        match source {
            LlmSource::Gguf(_) => Self::open_gguf(&path, template, device),
            LlmSource::HfDir(_) => Self::open_hf_dir(&path, template, device),
        }
    }

    /// Open a Hugging Face model folder as the openPangu and Qwen2 releases ship them:
    /// `config.json`, `model.safetensors.index.json` + shards (or one `model.safetensors`), and
    /// `tokenizer.json` or, failing that, a SentencePiece `tokenizer.model`. Weights keep their
    /// stored type (bf16 stays bf16).
    pub fn open_hf_dir(dir: &Path, template: Template, device: &Arc<dyn Device>) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        let weights = if index.exists() {
            index
        } else {
            dir.join("model.safetensors")
        };
        let src = SafeTensors::open(&weights)?;
        Self::open_hf_dir_with_weights(dir, &src, template, device)
    }

    /// `config.json` and the tokenizer from an HF release folder `dir`, as
    /// [`TextModel::open_hf_dir`], but the weights from `weights` under HF names (the LLM part
    /// of a released OSUM checkpoint, which stores its own copy of the LLM).
    pub fn open_hf_dir_with_weights(
        dir: &Path,
        weights: &dyn TensorSource,
        template: Template,
        device: &Arc<dyn Device>,
    ) -> Result<Self> {
        let config = LlmConfig::from_hf_file(dir.join("config.json"))?;
        let (tj, tm) = (dir.join("tokenizer.json"), dir.join("tokenizer.model"));
        let tok_file = if tj.exists() { &tj } else { &tm };
        let tokenizer = if tj.exists() {
            let t = tokenizers::Tokenizer::from_file(&tj)
                .map_err(|e| TextError::Tokenizer(format!("{}: {e}", tj.display())))?;
            TextTokenizer::Hf(Box::new(t))
        } else if tm.exists() {
            let s = SentencePiece::load(&tm).map_err(|e| TextError::Tokenizer(e.to_string()))?;
            TextTokenizer::SentencePiece(Box::new(s))
        } else {
            return Err(TextError::Tokenizer(format!(
                "{}: neither tokenizer.json nor tokenizer.model",
                dir.display()
            )));
        };
        tokenizer.check_fits(tok_file, config.vocab)?;
        let llm = Llm::load(weights, config, device)?;
        Ok(TextModel {
            llm,
            tokenizer,
            template,
        })
    }

    /// Ids of the text segments and BOS (when the model adds one); `speech` is where a speech
    /// segment sits (index into the returned pieces), for the OSUM model to splice.
    pub fn encode_segments(&self, segs: &[Segment]) -> Result<Vec<Vec<u32>>> {
        let mut out = Vec::with_capacity(segs.len());
        for (i, s) in segs.iter().enumerate() {
            let mut ids = match s {
                Segment::Text(t) => self.tokenizer.encode(t)?,
                Segment::Speech => Vec::new(),
            };
            if i == 0 && self.llm.config.add_bos {
                if let Some(b) = self.llm.config.bos_id {
                    ids.insert(0, b);
                }
            }
            out.push(ids);
        }
        Ok(out)
    }

    /// Stop ids: the model's EOS ids plus the template's end-of-turn token.
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut ids = self.llm.config.eos_ids.clone();
        if let Some(t) = self
            .template
            .end_of_turn()
            .and_then(|t| self.tokenizer.token_id(t))
        {
            if !ids.contains(&t) {
                ids.push(t);
            }
        }
        ids
    }

    /// Generate after `prompt` (text ids) with `cfg`, calling `on_text` with each new piece of
    /// decoded text as tokens arrive.
    pub fn generate_text(
        &self,
        prompt: &[u32],
        embeds: Option<&Tensor>,
        cfg: &GenerationConfig,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<(Generation, String)> {
        let own;
        let embeds = match embeds {
            Some(e) => e,
            None => {
                own = no_grad(|| self.llm.embed_ids(prompt))?;
                &own
            }
        };
        // Decode the whole output each time and emit the new suffix: byte-level BPE pieces can
        // be partial UTF-8, so token-by-token decoding would print broken characters.
        let mut toks = Vec::new();
        let mut shown = String::new();
        let mut failed = None;
        let gen = generate_from_embeds(&self.llm, embeds, prompt, cfg, &mut |t| {
            toks.push(t);
            match self.tokenizer.decode(&toks) {
                Ok(text) if !text.ends_with('\u{FFFD}') => {
                    if let Some(new) = text.strip_prefix(shown.as_str()) {
                        on_text(new);
                    }
                    shown = text;
                }
                Ok(_) => {}
                Err(e) => failed = Some(e),
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        let text = self.tokenizer.decode(&gen.tokens)?;
        if let Some(rest) = text.strip_prefix(shown.as_str()) {
            on_text(rest);
        }
        Ok((gen, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder laid out like an HF release, in the shape of the committed tiny Llama
    /// (openPangu-shaped, q/k/v/o biases), with the committed SentencePiece model; removed when
    /// the returned guard drops.
    fn hf_dir(with_tokenizer: bool) -> tempfile::TempDir {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let guard = crate::scratch_dir("hf-dir");
        let dir = guard.path();
        // The tiny Llama's shape with a vocabulary the 1000-piece tokenizer fits (a larger
        // tokenizer is refused at load), seeded random weights.
        let mut cfg: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("llama_tiny/config.json")).unwrap(),
        )
        .unwrap();
        cfg["vocab_size"] = 1000.into();
        std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
        let config = LlmConfig::from_hf_file(dir.join("config.json")).unwrap();
        let dev = crate::engine::cpu_device();
        let src = crate::model::llm::random::random_weights(
            &config,
            7,
            0.2,
            crate::engine::DType::F32,
            &dev,
        )
        .unwrap();
        let named: Vec<(String, Tensor)> = src
            .names()
            .into_iter()
            .map(|n| (n.to_string(), src.tensor(n, &dev).unwrap()))
            .collect();
        crate::model::adapter::save_safetensors(dir.join("model.safetensors"), &named).unwrap();
        if with_tokenizer {
            std::fs::copy(root.join("spm/unigram.model"), dir.join("tokenizer.model")).unwrap();
        }
        guard
    }

    #[test]
    fn an_hf_folder_with_a_sentencepiece_tokenizer_opens() {
        let dev = crate::engine::cpu_device();
        let dir = hf_dir(true);
        let m = TextModel::open_hf_dir(dir.path(), Template::PanguNative, &dev).unwrap();
        assert_eq!(m.llm.config.hidden, 64);
        assert!(m.llm.config.qkv_bias && m.llm.config.o_bias);
        assert!(matches!(m.tokenizer, TextTokenizer::SentencePiece(_)));
        assert!(m.tokenizer.token_id("[unused9]").is_some());
    }

    #[test]
    fn an_hf_folder_without_a_tokenizer_is_an_error_naming_it() {
        let dev = crate::engine::cpu_device();
        let dir = hf_dir(false);
        let e = TextModel::open_hf_dir(dir.path(), Template::OsumPangu, &dev)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("neither tokenizer.json nor tokenizer.model"),
            "{e}"
        );
    }
}
