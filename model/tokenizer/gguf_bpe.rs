//! The byte-level BPE tokenizer a GGUF file embeds (`tokenizer.ggml.model == "gpt2"`), rebuilt as a
//! `tokenizers::Tokenizer` so that it encodes exactly as the HF `tokenizer.json` it came from.
//!
//! What the file holds: `tokenizer.ggml.tokens` (the vocabulary, id = index, in byte-level form
//! where a space is `Ġ`), `tokenizer.ggml.merges` (`"left right"` in priority order),
//! `tokenizer.ggml.token_type` (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte),
//! `tokenizer.ggml.{bos,eos}_token_id`, `tokenizer.ggml.add_{bos,eos}_token`, and
//! `tokenizer.ggml.pre`, which names the pre-tokenizer of the original tokenizer.
//!
//! Pre-tokenizers: llama.cpp's converter names the original one by a hash of its output. For
//! `smollm` (SmolLM/SmolLM2) and the others llama.cpp treats the same way (`starcoder`, `refact`,
//! `command-r`, `codeshell`, `exaone`, `minerva`), digits are split one by one before the GPT-2
//! byte-level regex — HF `Sequence[Digits(individual), ByteLevel]`; `gpt-2`, `mpt`, `olmo` and
//! `jais` use the GPT-2 regex alone. Other names are refused rather than guessed, because a wrong
//! pre-tokenizer silently changes the ids.
//!
//! Control tokens (type 3) become special added tokens, matched whole before BPE and skippable
//! when decoding; user-defined tokens (type 4) become plain added tokens.

use crate::model::weights::{GgufFile, WeightsError};
use std::path::PathBuf;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Merges, Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

/// GGUF token types (`tokenizer.ggml.token_type`).
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// Why the tokenizer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GgufTokenizerError {
    /// A metadata entry is absent or mistyped.
    #[error(transparent)]
    Metadata(#[from] WeightsError),
    /// The file's tokenizer is not one this module builds.
    #[error("{}: {what}", path.display())]
    Unsupported { path: PathBuf, what: String },
    /// The vocabulary, merges or special tokens are inconsistent.
    #[error("{}: {msg}", path.display())]
    Invalid { path: PathBuf, msg: String },
}

/// A GGUF file's tokenizer and its special ids.
#[derive(Debug, Clone)]
pub struct GgufTokenizer {
    /// Encodes and decodes; with `add_special_tokens = true` it adds BOS/EOS as the file asks.
    pub tokenizer: Tokenizer,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.add_bos_token` (absent → false).
    pub add_bos: bool,
    /// `tokenizer.ggml.add_eos_token` (absent → false).
    pub add_eos: bool,
}

/// How text is split before BPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreSplit {
    /// The GPT-2 byte-level regex.
    Gpt2,
    /// Each digit on its own, then the GPT-2 byte-level regex.
    DigitsThenGpt2,
}

impl PreSplit {
    /// The split for a `tokenizer.ggml.pre` name (absent means GPT-2, as in llama.cpp's older
    /// files), `None` for names this module does not know.
    pub fn from_pre(pre: Option<&str>) -> Option<PreSplit> {
        match pre {
            None | Some("gpt-2" | "gpt2" | "mpt" | "olmo" | "jais") => Some(PreSplit::Gpt2),
            Some(
                "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
                | "minerva",
            ) => Some(PreSplit::DigitsThenGpt2),
            Some(_) => None,
        }
    }
}

/// What [`build`] needs, as a GGUF file states it.
#[derive(Debug, Clone)]
pub struct BpeSpec<'a> {
    /// Token strings, id = index (byte-level form).
    pub tokens: Vec<&'a str>,
    /// Token types, same length as `tokens` (empty: all normal).
    pub types: Vec<i64>,
    /// Merges, `"left right"`, highest priority first.
    pub merges: Vec<&'a str>,
    /// The pre-tokenizer.
    pub split: PreSplit,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
}

/// Build the tokenizer of `f` (see the module docs).
pub fn from_gguf(f: &GgufFile) -> Result<GgufTokenizer, GgufTokenizerError> {
    let path = f.path().to_path_buf();
    let model = f.get_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(GgufTokenizerError::Unsupported {
            path,
            what: format!(
                "tokenizer.ggml.model is {model:?}; only \"gpt2\" (byte-level BPE) is built here"
            ),
        });
    }
    let pre = f.opt_str("tokenizer.ggml.pre")?;
    let split = PreSplit::from_pre(pre).ok_or_else(|| GgufTokenizerError::Unsupported {
        path: path.clone(),
        what: format!("tokenizer.ggml.pre is {pre:?}, a pre-tokenizer this reader does not know"),
    })?;
    let types = match f.get("tokenizer.ggml.token_type") {
        Some(_) => f.get_int_array("tokenizer.ggml.token_type")?,
        None => Vec::new(),
    };
    let spec = BpeSpec {
        tokens: f.get_str_array("tokenizer.ggml.tokens")?,
        types,
        merges: f.get_str_array("tokenizer.ggml.merges")?,
        split,
        bos: f.opt_u32("tokenizer.ggml.bos_token_id")?,
        eos: f.opt_u32("tokenizer.ggml.eos_token_id")?,
        add_bos: f.opt_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(false),
        add_eos: f.opt_bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false),
    };
    let tokenizer = build(&spec).map_err(|msg| GgufTokenizerError::Invalid {
        path: path.clone(),
        msg,
    })?;
    Ok(GgufTokenizer {
        tokenizer,
        bos: spec.bos,
        eos: spec.eos,
        add_bos: spec.add_bos,
        add_eos: spec.add_eos,
    })
}

/// Build a byte-level BPE tokenizer from `spec`; the error says what is inconsistent.
pub fn build(spec: &BpeSpec) -> Result<Tokenizer, String> {
    let n = spec.tokens.len();
    if !spec.types.is_empty() && spec.types.len() != n {
        return Err(format!("{} token types for {n} tokens", spec.types.len()));
    }
    if u32::try_from(n).is_err() {
        return Err(format!("{n} tokens do not fit u32 ids"));
    }
    // Duplicate strings keep their first id, as a dictionary built in id order would.
    let mut vocab = Vocab::default();
    for (id, t) in spec.tokens.iter().enumerate() {
        vocab.entry(t.to_string()).or_insert(id as u32);
    }
    let merges: Merges = spec
        .merges
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| format!("merge {i} ({m:?}) is not two tokens separated by a space"))
        })
        .collect::<Result<_, _>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| format!("BPE model: {e}"))?;

    let mut tok = Tokenizer::new(bpe);
    // add_prefix_space false: SmolLM2 and GPT-2 encode "The" at the start of a text as "The".
    let byte_level = ByteLevel::new(false, false, true);
    let pre: PreTokenizerWrapper = match spec.split {
        PreSplit::Gpt2 => byte_level.into(),
        PreSplit::DigitsThenGpt2 => {
            Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
        }
    };
    tok.with_pre_tokenizer(Some(pre));
    tok.with_decoder(Some(DecoderWrapper::ByteLevel(byte_level)));

    let special = |ty: i64| -> Vec<AddedToken> {
        spec.types
            .iter()
            .zip(&spec.tokens)
            .filter(|(&t, _)| t == ty)
            .map(|(_, s)| AddedToken::from(s.to_string(), ty == CONTROL).normalized(false))
            .collect()
    };
    tok.add_special_tokens(&special(CONTROL));
    tok.add_tokens(&special(USER_DEFINED));

    let name = |id: Option<u32>, what: &str| -> Result<Option<(String, u32)>, String> {
        match id {
            None => Ok(None),
            Some(id) => match spec.tokens.get(id as usize) {
                Some(s) => Ok(Some((s.to_string(), id))),
                None => Err(format!(
                    "{what} id {id} is not below the vocabulary size {n}"
                )),
            },
        }
    };
    let bos = name(spec.bos, "BOS")?;
    let eos = name(spec.eos, "EOS")?;
    let mut single = vec![];
    let mut specials = vec![];
    if spec.add_bos {
        let (s, id) = bos.ok_or("add_bos_token is set but there is no BOS id")?;
        single.push(s.clone());
        specials.push((s, id));
    }
    single.push("$A".to_string());
    if spec.add_eos {
        let (s, id) = eos.ok_or("add_eos_token is set but there is no EOS id")?;
        single.push(s.clone());
        specials.push((s, id));
    }
    if !specials.is_empty() {
        let template = TemplateProcessing::builder()
            .try_single(single)
            .and_then(|b| {
                b.special_tokens(specials)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| format!("BOS/EOS template: {e}"))?;
        tok.with_post_processor(Some(template));
    }
    Ok(tok)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vocabulary of one control token, the 256 byte-level characters, and four merges.
    fn tiny(split: PreSplit, add_bos: bool) -> Tokenizer {
        let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
        alphabet.sort();
        let chars: Vec<String> = alphabet.iter().map(|c| c.to_string()).collect();
        let mut tokens = vec!["<|endoftext|>"];
        tokens.extend(chars.iter().map(String::as_str));
        tokens.extend(["Ġt", "he", "Ġthe", "12"]);
        let mut types = vec![1i64; tokens.len()];
        types[0] = CONTROL;
        build(&BpeSpec {
            tokens,
            types,
            merges: vec!["Ġ t", "h e", "Ġt he", "1 2"],
            split,
            bos: Some(0),
            eos: Some(0),
            add_bos,
            add_eos: false,
        })
        .unwrap()
    }

    fn ids(t: &Tokenizer, s: &str, special: bool) -> Vec<String> {
        let e = t.encode(s, special).unwrap();
        e.get_tokens().to_vec()
    }

    #[test]
    fn merges_digits_and_specials() {
        let t = tiny(PreSplit::DigitsThenGpt2, false);
        assert_eq!(t.get_vocab_size(true), 257 + 4);
        assert_eq!(ids(&t, "he the", false), ["he", "Ġthe"]);
        // Digits are split one by one, so the merge "1 2" never applies.
        assert_eq!(ids(&t, "x12", false), ["x", "1", "2"]);
        assert_eq!(
            ids(&t, "the<|endoftext|>the", false),
            ["t", "he", "<|endoftext|>", "t", "he"]
        );
        let t = tiny(PreSplit::Gpt2, false);
        assert_eq!(ids(&t, "x12", false), ["x", "12"]);
        // BOS only when the file asks for it and special tokens are added.
        let t = tiny(PreSplit::Gpt2, true);
        assert_eq!(ids(&t, "he", true), ["<|endoftext|>", "he"]);
        assert_eq!(ids(&t, "he", false), ["he"]);
        for s in ["héllo wörld 12 🙂\n\tx", "  two  spaces", ""] {
            let e = t.encode(s, false).unwrap();
            assert_eq!(t.decode(e.get_ids(), false).unwrap(), s);
        }
    }

    #[test]
    fn inconsistent_specs_are_errors() {
        let base = BpeSpec {
            tokens: vec!["a", "b", "ab"],
            types: vec![],
            merges: vec!["a b"],
            split: PreSplit::Gpt2,
            bos: None,
            eos: None,
            add_bos: false,
            add_eos: false,
        };
        build(&base).unwrap();
        let e = build(&BpeSpec {
            merges: vec!["ab"],
            ..base.clone()
        })
        .unwrap_err();
        assert!(e.contains("merge 0"), "{e}");
        let e = build(&BpeSpec {
            merges: vec!["a c"],
            ..base.clone()
        })
        .unwrap_err();
        assert!(e.contains("BPE model"), "{e}");
        let e = build(&BpeSpec {
            types: vec![1],
            ..base.clone()
        })
        .unwrap_err();
        assert!(e.contains("1 token types for 3 tokens"), "{e}");
        let e = build(&BpeSpec {
            add_bos: true,
            ..base.clone()
        })
        .unwrap_err();
        assert!(e.contains("no BOS"), "{e}");
        let e = build(&BpeSpec {
            bos: Some(9),
            ..base.clone()
        })
        .unwrap_err();
        assert!(e.contains("BOS id 9"), "{e}");
        assert_eq!(
            PreSplit::from_pre(Some("smollm")),
            Some(PreSplit::DigitsThenGpt2)
        );
        assert_eq!(PreSplit::from_pre(Some("llama-bpe")), None);
    }

    #[test]
    fn from_a_gguf_file() {
        use crate::model::weights::gguf::tests::{open, Builder};
        let file = |model: &str, pre: &str| {
            // token_type: an array (9) of 4 i32 (5): one control token, three normal ones.
            let mut types = 5u32.to_le_bytes().to_vec();
            types.extend_from_slice(&4u64.to_le_bytes());
            for t in [3i32, 1, 1, 1] {
                types.extend_from_slice(&t.to_le_bytes());
            }
            let b = Builder::new()
                .kv_str("tokenizer.ggml.model", model)
                .kv_str("tokenizer.ggml.pre", pre)
                .kv_strs("tokenizer.ggml.tokens", &["<s>", "a", "b", "ab"])
                .kv_raw("tokenizer.ggml.token_type", 9, &types)
                .kv_strs("tokenizer.ggml.merges", &["a b"])
                .kv_u32("tokenizer.ggml.bos_token_id", 0)
                .kv_raw("tokenizer.ggml.add_bos_token", 7, &[1]);
            open(&b.build()).unwrap()
        };
        let t = from_gguf(&file("gpt2", "smollm")).unwrap();
        assert_eq!((t.bos, t.eos, t.add_bos), (Some(0), None, true));
        let e = t.tokenizer.encode("ab<s>b", true).unwrap();
        assert_eq!(e.get_ids(), [0, 3, 0, 2]);
        let e = from_gguf(&file("llama", "smollm")).unwrap_err().to_string();
        assert!(e.contains("\"llama\"") && e.contains(".gguf"), "{e}");
        let e = from_gguf(&file("gpt2", "qwen2")).unwrap_err().to_string();
        assert!(
            e.contains("\"qwen2\"") && e.contains("pre-tokenizer"),
            "{e}"
        );
        let e = from_gguf(&open(&Builder::new().build()).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tokenizer.ggml.model") && e.contains("absent"),
            "{e}"
        );
    }
}
