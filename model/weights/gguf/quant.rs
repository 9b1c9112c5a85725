//! GGML tensor types: their block sizes (every type, so any file's layout can be checked) and the
//! dequantization of the ones the small real model uses (REFERENCE.md §8).
//!
//! A block type packs `block_len` consecutive values of a row into `block_bytes` bytes:
//! - Q8_0 (32 values, 34 bytes): f16 scale `d`, 32 × i8 `q`; `v = d·q`.
//! - Q4_0 (32 values, 18 bytes): f16 `d`, 16 bytes of nibbles; `v = d·(q − 8)`.
//! - Q4_1 (32 values, 20 bytes): f16 `d`, f16 min `m`, 16 bytes of nibbles; `v = d·q + m`.
//!
//! In the 4-bit types byte `j` holds value `j` in its low nibble and value `j + 16` in its high
//! nibble. The products are computed in f32 in the same order as the gguf Python package
//! (`d·q`, then `+ m`), so our values match its dequantization bit for bit.

use super::super::stored::StoredDType;
use half::f16;
use rayon::prelude::*;

/// A GGML tensor type, as GGUF tensor infos name it by id.
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
}

/// id, type, values per block, bytes per block, name — ggml's type table. Q8_1 (id 9) is left
/// out on purpose: it only ever exists as a transient matmul operand, and writers disagree on
/// its block size.
const TABLE: &[(u32, GgmlType, usize, usize, &str)] = &[
    (0, GgmlType::F32, 1, 4, "F32"),
    (1, GgmlType::F16, 1, 2, "F16"),
    (2, GgmlType::Q4_0, 32, 18, "Q4_0"),
    (3, GgmlType::Q4_1, 32, 20, "Q4_1"),
    (6, GgmlType::Q5_0, 32, 22, "Q5_0"),
    (7, GgmlType::Q5_1, 32, 24, "Q5_1"),
    (8, GgmlType::Q8_0, 32, 34, "Q8_0"),
    (10, GgmlType::Q2_K, 256, 84, "Q2_K"),
    (11, GgmlType::Q3_K, 256, 110, "Q3_K"),
    (12, GgmlType::Q4_K, 256, 144, "Q4_K"),
    (13, GgmlType::Q5_K, 256, 176, "Q5_K"),
    (14, GgmlType::Q6_K, 256, 210, "Q6_K"),
    (15, GgmlType::Q8_K, 256, 292, "Q8_K"),
    (16, GgmlType::IQ2_XXS, 256, 66, "IQ2_XXS"),
    (17, GgmlType::IQ2_XS, 256, 74, "IQ2_XS"),
    (18, GgmlType::IQ3_XXS, 256, 98, "IQ3_XXS"),
    (19, GgmlType::IQ1_S, 256, 50, "IQ1_S"),
    (20, GgmlType::IQ4_NL, 32, 18, "IQ4_NL"),
    (21, GgmlType::IQ3_S, 256, 110, "IQ3_S"),
    (22, GgmlType::IQ2_S, 256, 82, "IQ2_S"),
    (23, GgmlType::IQ4_XS, 256, 136, "IQ4_XS"),
    (24, GgmlType::I8, 1, 1, "I8"),
    (25, GgmlType::I16, 1, 2, "I16"),
    (26, GgmlType::I32, 1, 4, "I32"),
    (27, GgmlType::I64, 1, 8, "I64"),
    (28, GgmlType::F64, 1, 8, "F64"),
    (29, GgmlType::IQ1_M, 256, 56, "IQ1_M"),
    (30, GgmlType::BF16, 1, 2, "BF16"),
    (34, GgmlType::TQ1_0, 256, 54, "TQ1_0"),
    (35, GgmlType::TQ2_0, 256, 66, "TQ2_0"),
    (39, GgmlType::MXFP4, 32, 17, "MXFP4"),
];

impl GgmlType {
    fn row(self) -> &'static (u32, GgmlType, usize, usize, &'static str) {
        TABLE
            .iter()
            .find(|r| r.1 == self)
            .expect("every variant is in TABLE")
    }

    /// The type with GGML id `id`, if this reader knows it.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TABLE.iter().find(|r| r.0 == id).map(|r| r.1)
    }

    /// The GGML id.
    pub fn id(self) -> u32 {
        self.row().0
    }

    /// Values per block (1 for the plain types).
    pub fn block_len(self) -> usize {
        self.row().2
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        self.row().3
    }

    /// ggml's name for the type (`Q4_1`, `F32`, …).
    pub fn name(self) -> &'static str {
        self.row().4
    }

    /// The element type a tensor of this type loads as (block types this reader dequantizes load
    /// as F32), or `None` for block types it cannot dequantize.
    pub fn loads_as(self) -> Option<StoredDType> {
        use GgmlType::*;
        Some(match self {
            F32 | Q8_0 | Q4_0 | Q4_1 => StoredDType::F32,
            F16 => StoredDType::F16,
            BF16 => StoredDType::BF16,
            I8 => StoredDType::I8,
            I16 => StoredDType::I16,
            I32 => StoredDType::I32,
            I64 => StoredDType::I64,
            F64 => StoredDType::F64,
            _ => return None,
        })
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Dequantize whole blocks of `ty` to f32; `None` if `ty` is not Q8_0, Q4_0 or Q4_1. The caller
/// has checked that `bytes` is a whole number of blocks (trailing bytes are ignored).
pub fn dequantize(ty: GgmlType, bytes: &[u8]) -> Option<Vec<f32>> {
    let block: fn(&[u8], &mut [f32]) = match ty {
        GgmlType::Q8_0 => q8_0_block,
        GgmlType::Q4_0 => q4_0_block,
        GgmlType::Q4_1 => q4_1_block,
        _ => return None,
    };
    let (len, size) = (ty.block_len(), ty.block_bytes());
    let n_blocks = bytes.len() / size;
    let mut out = vec![0f32; n_blocks * len];
    // Blocks are independent; chunks of many blocks keep rayon's overhead negligible.
    const PER_TASK: usize = 1024;
    out.par_chunks_mut(len * PER_TASK)
        .zip(bytes.par_chunks(size * PER_TASK))
        .for_each(|(o, b)| {
            for (o, b) in o.chunks_exact_mut(len).zip(b.chunks_exact(size)) {
                block(b, o);
            }
        });
    Some(out)
}

fn half_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// One Q8_0 block (34 bytes → 32 values).
fn q8_0_block(b: &[u8], out: &mut [f32]) {
    let d = half_at(b, 0);
    for (o, &q) in out.iter_mut().zip(&b[2..34]) {
        *o = d * f32::from(q as i8);
    }
}

/// One Q4_0 block (18 bytes → 32 values).
fn q4_0_block(b: &[u8], out: &mut [f32]) {
    let d = half_at(b, 0);
    let (lo, hi) = out.split_at_mut(16);
    for (j, &q) in b[2..18].iter().enumerate() {
        lo[j] = d * f32::from((q & 0x0f) as i8 - 8);
        hi[j] = d * f32::from((q >> 4) as i8 - 8);
    }
}

/// One Q4_1 block (20 bytes → 32 values).
fn q4_1_block(b: &[u8], out: &mut [f32]) {
    let (d, m) = (half_at(b, 0), half_at(b, 2));
    let (lo, hi) = out.split_at_mut(16);
    for (j, &q) in b[4..20].iter().enumerate() {
        lo[j] = d * f32::from(q & 0x0f) + m;
        hi[j] = d * f32::from(q >> 4) + m;
    }
}
