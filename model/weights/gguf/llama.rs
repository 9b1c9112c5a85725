//! GGUF Llama checkpoints seen as HF Llama checkpoints: the name map, the undoing of llama.cpp's
//! q/k row permutation, the `llama.*` hyper-parameters, and [`GgufLlama`], a [`TensorSource`]
//! that an HF-name Llama implementation can load unchanged.
//!
//! The permutation: llama.cpp's converter (`convert_hf_to_gguf.py`, `LlamaModel.permute`) stores
//! each head's q and k rows as `w.reshape(n_head, 2, hd/2, cols).swapaxes(1, 2)`, so that its
//! interleaved ("normal") RoPE, which rotates rows (2i, 2i+1), computes what HF's rotate-half RoPE
//! computes on rows (i, i + hd/2). Within head `h`, GGUF row `h·hd + 2i + s` is HF row
//! `h·hd + s·hd/2 + i` (s ∈ {0, 1}, i < hd/2). [`unpermute_rows`] applies the inverse,
//! `w.reshape(n_head, hd/2, 2, cols).swapaxes(1, 2)` (REFERENCE.md §5); for k the head count is
//! the KV head count. q/k biases, where present, were permuted the same way and are undone too.
//! Only the `llama` architecture is permuted by the converter (e.g. `qwen2` is stored as is and run
//! with NeoX RoPE), which is why [`GgufLlama`] accepts only `llama` files.

use super::GgufFile;
use crate::engine::{Device, HostBuffer, Tensor};
use crate::model::weights::{StoredDType, TensorSource, WeightsError};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The per-layer GGUF suffixes and their HF Llama equivalents (without `.weight`/`.bias`).
const LAYER_NAMES: &[(&str, &str)] = &[
    ("attn_norm", "input_layernorm"),
    ("ffn_norm", "post_attention_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

/// The whole-model GGUF names and their HF equivalents.
const GLOBAL_NAMES: &[(&str, &str)] = &[
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// The HF Llama name of GGUF tensor `gguf`, or `None` for names without one (e.g.
/// `rope_freqs.weight`).
pub fn hf_name(gguf: &str) -> Option<String> {
    if let Some(&(_, hf)) = GLOBAL_NAMES.iter().find(|(g, _)| *g == gguf) {
        return Some(hf.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (part, kind) = rest.rsplit_once('.')?;
    if kind != "weight" && kind != "bias" {
        return None;
    }
    let &(_, hf) = LAYER_NAMES.iter().find(|(g, _)| *g == part)?;
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// The GGUF name of HF Llama tensor `hf` (the inverse of [`hf_name`]).
pub fn gguf_name(hf: &str) -> Option<String> {
    if let Some(&(g, _)) = GLOBAL_NAMES.iter().find(|(_, h)| *h == hf) {
        return Some(g.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (part, kind) = rest.rsplit_once('.')?;
    if kind != "weight" && kind != "bias" {
        return None;
    }
    let &(g, _) = LAYER_NAMES.iter().find(|(_, h)| *h == part)?;
    Some(format!("blk.{layer}.{g}.{kind}"))
}

/// Which head count a GGUF tensor's rows were permuted with: `Some(false)` for q (attention
/// heads), `Some(true)` for k (KV heads), `None` for tensors stored as is.
fn permuted_kind(gguf: &str) -> Option<bool> {
    let part = gguf.strip_prefix("blk.")?.split('.').nth(1)?;
    match part {
        "attn_q" => Some(false),
        "attn_k" => Some(true),
        _ => None,
    }
}

/// Reorder the rows of a row-major `[rows, cols]` matrix stored by llama.cpp's converter back
/// into HF order (see the module docs); `None` unless `rows` is a whole number of heads of even
/// size. `data.len()` must be `rows · cols`.
pub fn unpermute_rows<T: Copy>(
    data: &[T],
    rows: usize,
    cols: usize,
    n_head: usize,
) -> Option<Vec<T>> {
    reorder_rows(data, rows, cols, n_head, |hd, r| {
        // HF row r = s·hd/2 + i comes from GGUF row 2i + s.
        let (s, i) = (r / (hd / 2), r % (hd / 2));
        2 * i + s
    })
}

/// The converter's permutation itself (HF order → GGUF order), the inverse of [`unpermute_rows`];
/// kept for tests and for writing GGUF-ordered weights.
pub fn permute_rows<T: Copy>(
    data: &[T],
    rows: usize,
    cols: usize,
    n_head: usize,
) -> Option<Vec<T>> {
    reorder_rows(data, rows, cols, n_head, |hd, r| {
        // GGUF row r = 2i + s comes from HF row s·hd/2 + i.
        let (i, s) = (r / 2, r % 2);
        s * (hd / 2) + i
    })
}

/// Row `r` of each head of the output is row `src(hd, r)` of the same head of the input.
fn reorder_rows<T: Copy>(
    data: &[T],
    rows: usize,
    cols: usize,
    n_head: usize,
    src: impl Fn(usize, usize) -> usize,
) -> Option<Vec<T>> {
    if n_head == 0 || !rows.is_multiple_of(n_head) || !(rows / n_head).is_multiple_of(2) {
        return None;
    }
    if rows.checked_mul(cols)? != data.len() {
        return None;
    }
    let hd = rows / n_head;
    let mut out = Vec::with_capacity(data.len());
    for h in 0..n_head {
        for r in 0..hd {
            let from = (h * hd + src(hd, r)) * cols;
            out.extend_from_slice(&data[from..from + cols]);
        }
    }
    Some(out)
}

/// The Llama hyper-parameters a GGUF file records under `{arch}.*` and `tokenizer.ggml.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaParams {
    /// `general.architecture` (the key prefix).
    pub arch: String,
    /// `embedding_length`.
    pub hidden: usize,
    /// `feed_forward_length`.
    pub ffn: usize,
    /// `block_count`.
    pub layers: usize,
    /// `attention.head_count`.
    pub heads: usize,
    /// `attention.head_count_kv` (defaults to `heads`).
    pub kv_heads: usize,
    /// `attention.key_length` (defaults to `hidden / heads`).
    pub head_dim: usize,
    /// `rope.dimension_count` (defaults to `head_dim`).
    pub rope_dim: usize,
    /// `rope.freq_base` (defaults to 10000, llama.cpp's default).
    pub rope_theta: f32,
    /// `attention.layer_norm_rms_epsilon`.
    pub rms_eps: f32,
    /// `vocab_size`, else the number of `tokenizer.ggml.tokens`, else the embedding's rows.
    pub vocab: usize,
    /// `context_length`.
    pub context_length: usize,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.add_bos_token` (absent → false).
    pub add_bos: bool,
    /// True when the file has no `output.weight`: the LM head is the token embedding.
    pub tied_embeddings: bool,
}

impl LlamaParams {
    /// Read and check the hyper-parameters of `f`.
    pub fn from_gguf(f: &GgufFile) -> Result<LlamaParams, WeightsError> {
        let arch = f.get_str("general.architecture")?.to_string();
        let key = |k: &str| format!("{arch}.{k}");
        let req = |k: &str| -> Result<usize, WeightsError> { Ok(f.get_u32(&key(k))? as usize) };
        let opt = |k: &str| -> Result<Option<usize>, WeightsError> {
            Ok(f.opt_u32(&key(k))?.map(|v| v as usize))
        };
        let bad = |k: &str, msg: String| WeightsError::Metadata {
            path: f.path().to_path_buf(),
            key: key(k),
            msg,
        };
        let hidden = req("embedding_length")?;
        let heads = req("attention.head_count")?;
        if heads == 0 || hidden % heads != 0 {
            return Err(bad(
                "attention.head_count",
                format!("{heads} heads do not divide the width {hidden}"),
            ));
        }
        let kv_heads = opt("attention.head_count_kv")?.unwrap_or(heads);
        if kv_heads == 0 || heads % kv_heads != 0 {
            return Err(bad(
                "attention.head_count_kv",
                format!("{kv_heads} KV heads do not divide {heads} heads"),
            ));
        }
        let head_dim = opt("attention.key_length")?.unwrap_or(hidden / heads);
        let vocab = match opt("vocab_size")? {
            Some(v) => v,
            None => match f.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
                Some(a) => a.items.len(),
                None => f.shape("token_embd.weight")?.first().copied().unwrap_or(0),
            },
        };
        Ok(LlamaParams {
            hidden,
            ffn: req("feed_forward_length")?,
            layers: req("block_count")?,
            heads,
            kv_heads,
            head_dim,
            rope_dim: opt("rope.dimension_count")?.unwrap_or(head_dim),
            rope_theta: f.opt_f32(&key("rope.freq_base"))?.unwrap_or(10000.0),
            rms_eps: f.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
            vocab,
            context_length: req("context_length")?,
            bos: f.opt_u32("tokenizer.ggml.bos_token_id")?,
            eos: f.opt_u32("tokenizer.ggml.eos_token_id")?,
            add_bos: f.opt_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(false),
            tied_embeddings: f.info("output.weight").is_err(),
            arch,
        })
    }
}

/// A GGUF Llama file behind HF Llama names, with q/k rows already back in HF order: loading
/// `model.layers.N.self_attn.q_proj.weight` from it gives what the HF checkpoint holds (up to
/// quantization). Files with tied embeddings have no `lm_head.weight`, as in HF checkpoints.
#[derive(Debug)]
pub struct GgufLlama {
    file: GgufFile,
    params: LlamaParams,
    /// HF name → GGUF name, for every tensor that has an HF name.
    to_gguf: BTreeMap<String, String>,
}

impl GgufLlama {
    /// Open and check `path` (see [`GgufLlama::new`]).
    pub fn open(path: impl AsRef<Path>) -> Result<GgufLlama, WeightsError> {
        Self::new(GgufFile::open(path)?)
    }

    /// Wrap `file`, which must be a `llama` architecture file whose q/k shapes are whole heads.
    pub fn new(file: GgufFile) -> Result<GgufLlama, WeightsError> {
        let params = LlamaParams::from_gguf(&file)?;
        if params.arch != "llama" {
            return Err(WeightsError::Metadata {
                path: file.path().to_path_buf(),
                key: "general.architecture".into(),
                msg: format!(
                    "{:?}: only \"llama\" files are read with HF Llama names (other architectures are not q/k-permuted)",
                    params.arch
                ),
            });
        }
        let mut to_gguf = BTreeMap::new();
        for t in file.tensor_infos() {
            if let Some(hf) = hf_name(&t.name) {
                if let Some(k) = permuted_kind(&t.name) {
                    let n_head = if k { params.kv_heads } else { params.heads };
                    let rows = t.shape.first().copied().unwrap_or(0);
                    if n_head == 0 || rows % (2 * n_head) != 0 {
                        return Err(WeightsError::WrongKind {
                            path: file.path().to_path_buf(),
                            name: t.name.clone(),
                            msg: format!(
                                "shape {:?}: {rows} rows are not {n_head} heads of even size",
                                t.shape
                            ),
                        });
                    }
                }
                to_gguf.insert(hf, t.name.clone());
            }
        }
        Ok(GgufLlama {
            file,
            params,
            to_gguf,
        })
    }

    /// The underlying file (GGUF names, stored order).
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// The hyper-parameters.
    pub fn params(&self) -> &LlamaParams {
        &self.params
    }

    /// The GGUF name behind HF name `hf`.
    pub fn gguf_name(&self, hf: &str) -> Result<&str, WeightsError> {
        self.to_gguf
            .get(hf)
            .map(String::as_str)
            .ok_or_else(|| WeightsError::Missing {
                path: self.file.path().to_path_buf(),
                name: hf.to_string(),
            })
    }

    /// The values of HF tensor `hf` on the host (dtype as [`GgufFile::host`]), q/k rows in HF
    /// order.
    pub fn host(&self, hf: &str) -> Result<HostBuffer, WeightsError> {
        let g = self.gguf_name(hf)?;
        let host = self.file.host(g)?;
        let Some(is_k) = permuted_kind(g) else {
            return Ok(host);
        };
        let n_head = if is_k {
            self.params.kv_heads
        } else {
            self.params.heads
        };
        let shape = self.file.shape(g)?;
        let rows = shape.first().copied().unwrap_or(1);
        let cols = shape.iter().skip(1).product();
        let un = |len| -> WeightsError {
            WeightsError::WrongKind {
                path: self.file.path().to_path_buf(),
                name: g.to_string(),
                msg: format!("cannot undo the q/k permutation of {len} values, shape {shape:?}, {n_head} heads"),
            }
        };
        macro_rules! undo {
            ($v:expr, $variant:ident) => {
                HostBuffer::$variant(
                    unpermute_rows(&$v, rows, cols, n_head).ok_or_else(|| un($v.len()))?,
                )
            };
        }
        Ok(match host {
            HostBuffer::F32(v) => undo!(v, F32),
            HostBuffer::F16(v) => undo!(v, F16),
            HostBuffer::BF16(v) => undo!(v, BF16),
            HostBuffer::U32(v) => undo!(v, U32),
            HostBuffer::I64(v) => undo!(v, I64),
        })
    }
}

impl TensorSource for GgufLlama {
    fn names(&self) -> Vec<&str> {
        self.to_gguf.keys().map(String::as_str).collect()
    }
    fn shape(&self, name: &str) -> Result<&[usize], WeightsError> {
        self.file.shape(self.gguf_name(name)?)
    }
    fn dtype(&self, name: &str) -> Result<StoredDType, WeightsError> {
        self.file.dtype(self.gguf_name(name)?)
    }
    fn tensor(&self, name: &str, dev: &Arc<dyn Device>) -> Result<Tensor, WeightsError> {
        let g = self.gguf_name(name)?;
        if permuted_kind(g).is_none() {
            // Stored in HF order: F32/F16/BF16 borrow the map.
            return self.file.tensor(g, dev);
        }
        let host = self.host(name)?;
        self.file.upload(name, host, self.shape(name)?, dev)
    }
}
