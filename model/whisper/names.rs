//! Explicit weight-name tables (REFERENCE §3, §8). Every tensor has a *logical* name, OpenAI's
//! own (`encoder.blocks.0.attn.query.weight`); each convention maps it to its checkpoint name,
//! and CTranslate2's fused projections to a row block of a fused tensor.

use super::params::WeightLookup;
use super::{Result, WhisperError};

/// A checkpoint naming scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Convention {
    /// OpenAI's `whisper` package (`encoder.blocks.N.attn.query`).
    OpenAi,
    /// Hugging Face transformers (`model.encoder.layers.N.self_attn.q_proj`).
    Hf,
    /// WeNet / OSUM encoder-only (`encoder.encoders.N.self_attn.linear_q`).
    Wenet,
    /// CTranslate2 `model.bin` (`encoder/layer_N/self_attention/linear_0`, fused q,k,v).
    Ct2,
}

/// Where a logical tensor lives in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    /// The checkpoint name.
    pub name: String,
    /// `Some((i, n))`: rows block `i` of `n` equal blocks along dim 0 of a fused tensor.
    pub split: Option<(usize, usize)>,
}

/// Top-level tensors: (OpenAI, HF, WeNet, CT2).
const TOP: &[(&str, &str, &str, &str)] = &[
    (
        "encoder.conv1.weight",
        "model.encoder.conv1.weight",
        "encoder.embed.conv.0.weight",
        "encoder/conv1/weight",
    ),
    (
        "encoder.conv1.bias",
        "model.encoder.conv1.bias",
        "encoder.embed.conv.0.bias",
        "encoder/conv1/bias",
    ),
    (
        "encoder.conv2.weight",
        "model.encoder.conv2.weight",
        "encoder.embed.conv.2.weight",
        "encoder/conv2/weight",
    ),
    (
        "encoder.conv2.bias",
        "model.encoder.conv2.bias",
        "encoder.embed.conv.2.bias",
        "encoder/conv2/bias",
    ),
    (
        "encoder.positional_embedding",
        "model.encoder.embed_positions.weight",
        "encoder.embed.pos_enc.pe",
        "encoder/position_encodings/encodings",
    ),
    (
        "encoder.ln_post.weight",
        "model.encoder.layer_norm.weight",
        "encoder.after_norm.weight",
        "encoder/layer_norm/gamma",
    ),
    (
        "encoder.ln_post.bias",
        "model.encoder.layer_norm.bias",
        "encoder.after_norm.bias",
        "encoder/layer_norm/beta",
    ),
    (
        "decoder.token_embedding.weight",
        "model.decoder.embed_tokens.weight",
        "",
        "decoder/embeddings/weight",
    ),
    (
        "decoder.positional_embedding",
        "model.decoder.embed_positions.weight",
        "",
        "decoder/position_encodings/encodings",
    ),
    (
        "decoder.ln.weight",
        "model.decoder.layer_norm.weight",
        "",
        "decoder/layer_norm/gamma",
    ),
    (
        "decoder.ln.bias",
        "model.decoder.layer_norm.bias",
        "",
        "decoder/layer_norm/beta",
    ),
];

/// Per-block tensors shared by encoder and decoder blocks: (OpenAI, HF, WeNet, CT2, CT2 split).
/// CT2 fuses q,k,v of self-attention into `linear_0` (its k bias is zeros; Whisper has none).
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<(usize, usize)>,
);
const BLOCK: &[Row] = &[
    (
        "attn_ln.weight",
        "self_attn_layer_norm.weight",
        "norm1.weight",
        "self_attention/layer_norm/gamma",
        None,
    ),
    (
        "attn_ln.bias",
        "self_attn_layer_norm.bias",
        "norm1.bias",
        "self_attention/layer_norm/beta",
        None,
    ),
    (
        "attn.query.weight",
        "self_attn.q_proj.weight",
        "self_attn.linear_q.weight",
        "self_attention/linear_0/weight",
        Some((0, 3)),
    ),
    (
        "attn.query.bias",
        "self_attn.q_proj.bias",
        "self_attn.linear_q.bias",
        "self_attention/linear_0/bias",
        Some((0, 3)),
    ),
    (
        "attn.key.weight",
        "self_attn.k_proj.weight",
        "self_attn.linear_k.weight",
        "self_attention/linear_0/weight",
        Some((1, 3)),
    ),
    (
        "attn.value.weight",
        "self_attn.v_proj.weight",
        "self_attn.linear_v.weight",
        "self_attention/linear_0/weight",
        Some((2, 3)),
    ),
    (
        "attn.value.bias",
        "self_attn.v_proj.bias",
        "self_attn.linear_v.bias",
        "self_attention/linear_0/bias",
        Some((2, 3)),
    ),
    (
        "attn.out.weight",
        "self_attn.out_proj.weight",
        "self_attn.linear_out.weight",
        "self_attention/linear_1/weight",
        None,
    ),
    (
        "attn.out.bias",
        "self_attn.out_proj.bias",
        "self_attn.linear_out.bias",
        "self_attention/linear_1/bias",
        None,
    ),
    (
        "mlp_ln.weight",
        "final_layer_norm.weight",
        "norm2.weight",
        "ffn/layer_norm/gamma",
        None,
    ),
    (
        "mlp_ln.bias",
        "final_layer_norm.bias",
        "norm2.bias",
        "ffn/layer_norm/beta",
        None,
    ),
    (
        "mlp.0.weight",
        "fc1.weight",
        "feed_forward.w_1.weight",
        "ffn/linear_0/weight",
        None,
    ),
    (
        "mlp.0.bias",
        "fc1.bias",
        "feed_forward.w_1.bias",
        "ffn/linear_0/bias",
        None,
    ),
    (
        "mlp.2.weight",
        "fc2.weight",
        "feed_forward.w_2.weight",
        "ffn/linear_1/weight",
        None,
    ),
    (
        "mlp.2.bias",
        "fc2.bias",
        "feed_forward.w_2.bias",
        "ffn/linear_1/bias",
        None,
    ),
];

/// Decoder-only cross-attention tensors (no WeNet names: OSUM has no Whisper decoder).
/// CT2 keeps q in `linear_0`, fuses k,v into `linear_1` and puts the output in `linear_2`.
const CROSS: &[Row] = &[
    (
        "cross_attn_ln.weight",
        "encoder_attn_layer_norm.weight",
        "",
        "attention/layer_norm/gamma",
        None,
    ),
    (
        "cross_attn_ln.bias",
        "encoder_attn_layer_norm.bias",
        "",
        "attention/layer_norm/beta",
        None,
    ),
    (
        "cross_attn.query.weight",
        "encoder_attn.q_proj.weight",
        "",
        "attention/linear_0/weight",
        None,
    ),
    (
        "cross_attn.query.bias",
        "encoder_attn.q_proj.bias",
        "",
        "attention/linear_0/bias",
        None,
    ),
    (
        "cross_attn.key.weight",
        "encoder_attn.k_proj.weight",
        "",
        "attention/linear_1/weight",
        Some((0, 2)),
    ),
    (
        "cross_attn.value.weight",
        "encoder_attn.v_proj.weight",
        "",
        "attention/linear_1/weight",
        Some((1, 2)),
    ),
    (
        "cross_attn.value.bias",
        "encoder_attn.v_proj.bias",
        "",
        "attention/linear_1/bias",
        Some((1, 2)),
    ),
    (
        "cross_attn.out.weight",
        "encoder_attn.out_proj.weight",
        "",
        "attention/linear_2/weight",
        None,
    ),
    (
        "cross_attn.out.bias",
        "encoder_attn.out_proj.bias",
        "",
        "attention/linear_2/bias",
        None,
    ),
];

impl Convention {
    /// All conventions, in detection order.
    pub const ALL: [Convention; 4] = [
        Convention::OpenAi,
        Convention::Hf,
        Convention::Wenet,
        Convention::Ct2,
    ];

    /// The convention whose conv1 weight `src` holds.
    pub fn detect(src: &dyn WeightLookup) -> Result<Convention> {
        for c in Self::ALL {
            if let Some(loc) = c.name("encoder.conv1.weight") {
                if src.has(&loc.name) {
                    return Ok(c);
                }
            }
        }
        Err(WhisperError::UnknownConvention)
    }

    fn pick<'a>(self, row: (&'a str, &'a str, &'a str, &'a str)) -> &'a str {
        match self {
            Convention::OpenAi => row.0,
            Convention::Hf => row.1,
            Convention::Wenet => row.2,
            Convention::Ct2 => row.3,
        }
    }

    /// The checkpoint location of a logical tensor, or `None` when this convention has no
    /// such tensor (a decoder tensor under WeNet, a key bias, an unknown name).
    pub fn name(self, logical: &str) -> Option<Loc> {
        let found = |s: &str, split| {
            (!s.is_empty()).then(|| Loc {
                name: s.to_string(),
                split,
            })
        };
        if let Some(r) = TOP.iter().find(|r| r.0 == logical) {
            return found(self.pick(*r), None);
        }
        let (part, rest) = logical.split_once(".blocks.")?;
        let (idx, suffix) = rest.split_once('.')?;
        let n: usize = idx.parse().ok()?;
        let rows = if part == "decoder" {
            BLOCK.iter().chain(CROSS)
        } else if part == "encoder" {
            BLOCK.iter().chain(CROSS[..0].iter())
        } else {
            return None;
        };
        let row = rows.into_iter().find(|r| r.0 == suffix)?;
        let local = self.pick((row.0, row.1, row.2, row.3));
        if local.is_empty() {
            return None;
        }
        let prefix = match (self, part) {
            (Convention::OpenAi, _) => format!("{part}.blocks.{n}."),
            (Convention::Hf, _) => format!("model.{part}.layers.{n}."),
            (Convention::Wenet, "encoder") => format!("encoder.encoders.{n}."),
            (Convention::Wenet, _) => return None,
            (Convention::Ct2, _) => format!("{part}/layer_{n}/"),
        };
        let split = if self == Convention::Ct2 { row.4 } else { None };
        found(&format!("{prefix}{local}"), split)
    }
}

/// Every logical tensor of a model with `enc_layers` encoder and `dec_layers` decoder blocks
/// (the decoder's top-level tensors only when `dec_layers > 0`).
pub fn logical_names(enc_layers: usize, dec_layers: usize) -> Vec<String> {
    let mut out: Vec<String> = TOP
        .iter()
        .filter(|r| dec_layers > 0 || r.0.starts_with("encoder."))
        .map(|r| r.0.to_string())
        .collect();
    for n in 0..enc_layers {
        out.extend(BLOCK.iter().map(|r| format!("encoder.blocks.{n}.{}", r.0)));
    }
    for n in 0..dec_layers {
        let rows = BLOCK.iter().chain(CROSS);
        out.extend(rows.map(|r| format!("decoder.blocks.{n}.{}", r.0)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_map_known_names() {
        let l = "encoder.blocks.3.attn.key.weight";
        assert_eq!(
            Convention::Hf.name(l).unwrap().name,
            "model.encoder.layers.3.self_attn.k_proj.weight"
        );
        assert_eq!(
            Convention::Wenet.name(l).unwrap().name,
            "encoder.encoders.3.self_attn.linear_k.weight"
        );
        let ct = Convention::Ct2.name(l).unwrap();
        assert_eq!(
            (ct.name.as_str(), ct.split),
            (
                "encoder/layer_3/self_attention/linear_0/weight",
                Some((1, 3))
            )
        );
        let kv = Convention::Ct2
            .name("decoder.blocks.0.cross_attn.value.bias")
            .unwrap();
        assert_eq!(
            (kv.name.as_str(), kv.split),
            ("decoder/layer_0/attention/linear_1/bias", Some((1, 2)))
        );
        assert!(Convention::Wenet
            .name("decoder.blocks.0.attn.query.weight")
            .is_none());
        assert!(Convention::Hf
            .name("encoder.blocks.0.attn.key.bias")
            .is_none());
        assert!(Convention::OpenAi
            .name("encoder.blocks.x.attn.key.weight")
            .is_none());
    }

    #[test]
    fn every_logical_name_has_a_location_in_every_convention_that_has_the_part() {
        for c in Convention::ALL {
            let dec = if c == Convention::Wenet { 0 } else { 2 };
            for l in logical_names(2, dec) {
                assert!(c.name(&l).is_some(), "{c:?} lacks {l}");
            }
        }
    }
}
