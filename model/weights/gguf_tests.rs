//! Unit tests on GGUF files written byte by byte here (the layout of the module docs): metadata of
//! every type, each supported tensor type's dequantization on a known block, and malformed files
//! (truncated, bad magic/version, absurd counts, bad offsets), each of which must be an error that
//! names the file, never a panic. The real file is tested in `tests/gguf.rs`.

use super::llama::{gguf_name, hf_name, permute_rows, unpermute_rows};
use super::*;
use crate::engine::ops::rope::rope_tables;
use crate::engine::{cpu_device, no_grad, DType, Rng, RopeStyle};
use half::{bf16, f16};

// ---- a GGUF writer for tests ----

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u64).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

/// Builds a GGUF file: metadata entries (raw value bytes), tensors (raw data bytes), alignment.
/// Also used by the tokenizer's tests (`model::tokenizer::gguf_bpe`).
pub(crate) struct Builder {
    version: u32,
    kv: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    n_tensors: u64,
    data: Vec<u8>,
    alignment: usize,
}

impl Builder {
    pub(crate) fn new() -> Builder {
        Builder {
            version: 3,
            kv: Vec::new(),
            n_kv: 0,
            infos: Vec::new(),
            n_tensors: 0,
            data: Vec::new(),
            alignment: 32,
        }
    }

    /// One metadata entry with type tag `ty` and already encoded `value` bytes.
    pub(crate) fn kv_raw(mut self, key: &str, ty: u32, value: &[u8]) -> Builder {
        put_str(&mut self.kv, key);
        self.kv.extend_from_slice(&ty.to_le_bytes());
        self.kv.extend_from_slice(value);
        self.n_kv += 1;
        self
    }

    pub(crate) fn kv_u32(self, key: &str, v: u32) -> Builder {
        self.kv_raw(key, 4, &v.to_le_bytes())
    }

    pub(crate) fn kv_f32(self, key: &str, v: f32) -> Builder {
        self.kv_raw(key, 6, &v.to_le_bytes())
    }

    pub(crate) fn kv_str(self, key: &str, v: &str) -> Builder {
        let mut b = Vec::new();
        put_str(&mut b, v);
        self.kv_raw(key, 8, &b)
    }

    pub(crate) fn kv_strs(self, key: &str, v: &[&str]) -> Builder {
        let mut b = 8u32.to_le_bytes().to_vec();
        b.extend_from_slice(&(v.len() as u64).to_le_bytes());
        for s in v {
            put_str(&mut b, s);
        }
        self.kv_raw(key, 9, &b)
    }

    /// A tensor at the next aligned offset of the data section.
    pub(crate) fn tensor(self, name: &str, ne: &[u64], ty: GgmlType, bytes: &[u8]) -> Builder {
        let offset = self.data.len().next_multiple_of(self.alignment) as u64;
        self.tensor_at(name, ne, ty.id(), offset, bytes)
    }

    /// A tensor info with an explicit type id and offset; non-empty `bytes` are placed at
    /// `offset` if that is past the data written so far.
    pub(crate) fn tensor_at(
        mut self,
        name: &str,
        ne: &[u64],
        ty: u32,
        offset: u64,
        bytes: &[u8],
    ) -> Builder {
        put_str(&mut self.infos, name);
        self.infos
            .extend_from_slice(&(ne.len() as u32).to_le_bytes());
        for d in ne {
            self.infos.extend_from_slice(&d.to_le_bytes());
        }
        self.infos.extend_from_slice(&ty.to_le_bytes());
        self.infos.extend_from_slice(&offset.to_le_bytes());
        self.n_tensors += 1;
        let at = offset as usize;
        if !bytes.is_empty() && at >= self.data.len() && at < 1 << 20 {
            self.data.resize(at, 0);
            self.data.extend_from_slice(bytes);
        }
        self
    }

    pub(crate) fn build(&self) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&self.version.to_le_bytes());
        b.extend_from_slice(&self.n_tensors.to_le_bytes());
        b.extend_from_slice(&self.n_kv.to_le_bytes());
        b.extend_from_slice(&self.kv);
        b.extend_from_slice(&self.infos);
        b.resize(b.len().next_multiple_of(self.alignment), 0);
        b.extend_from_slice(&self.data);
        b
    }
}

/// `bytes` opened as a GGUF file (written to a scratch folder, gone again when this returns).
pub(crate) fn open(bytes: &[u8]) -> Result<GgufFile, WeightsError> {
    let dir = crate::scratch_dir("gguf");
    let p = dir.path().join("m.gguf");
    std::fs::write(&p, bytes).unwrap();
    GgufFile::open(&p)
}

/// The error message for `bytes`, checked to name the file.
fn open_err(bytes: &[u8]) -> String {
    let e = open(bytes).unwrap_err().to_string();
    assert!(e.contains(".gguf"), "{e}");
    e
}

fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    v.iter().flat_map(|&x| f(x)).collect()
}

fn f16b(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_le_bytes()
}

// ---- known blocks: bytes and the values the format defines for them ----

/// A Q8_0 block: d = 0.5, q = -16..16.
fn q8_0_block() -> (Vec<u8>, Vec<f32>) {
    let mut b = f16b(0.5).to_vec();
    b.extend((-16i8..16).map(|q| q as u8));
    let v = (-16..16).map(|q| 0.5 * q as f32).collect();
    (b, v)
}

/// A Q4_0 block: d = 0.25, value j has nibble j % 16 (low nibbles for j < 16, high for j ≥ 16,
/// the high ones reversed so the two halves differ).
fn q4_0_block() -> (Vec<u8>, Vec<f32>) {
    let mut b = f16b(0.25).to_vec();
    b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let mut v: Vec<f32> = (0..16).map(|j| 0.25 * (j as f32 - 8.0)).collect();
    v.extend((0..16).map(|j| 0.25 * ((15 - j) as f32 - 8.0)));
    (b, v)
}

/// A Q4_1 block: d = 0.125, m = -1, same nibbles as the Q4_0 block.
fn q4_1_block() -> (Vec<u8>, Vec<f32>) {
    let mut b = f16b(0.125).to_vec();
    b.extend_from_slice(&f16b(-1.0));
    b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let mut v: Vec<f32> = (0..16).map(|j| 0.125 * j as f32 - 1.0).collect();
    v.extend((0..16).map(|j| 0.125 * (15 - j) as f32 - 1.0));
    (b, v)
}

fn sample() -> Builder {
    let (q8, _) = q8_0_block();
    let (q40, _) = q4_0_block();
    let (q41, _) = q4_1_block();
    Builder::new()
        .kv_str("general.architecture", "test")
        .kv_u32("test.n", 7)
        .kv_f32("test.x", 1.5)
        .tensor(
            "w",
            &[3, 2],
            GgmlType::F32,
            &le(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], f32::to_le_bytes),
        )
        .tensor("h", &[3], GgmlType::F16, &le(&[0.5f32, 1.0, -1.0], f16b))
        .tensor(
            "b",
            &[2, 1],
            GgmlType::BF16,
            &le(&[2.0f32, 8.0], |x| bf16::from_f32(x).to_le_bytes()),
        )
        .tensor("q8", &[32], GgmlType::Q8_0, &q8)
        .tensor("q40", &[32], GgmlType::Q4_0, &q40)
        .tensor("q41", &[32, 1, 1], GgmlType::Q4_1, &q41)
        .tensor("k6", &[256], GgmlType::Q6_K, &[0u8; 210])
}

#[test]
fn reads_tensors_of_every_supported_type() {
    let f = open(&sample().build()).unwrap();
    let dev = cpu_device();
    assert_eq!(f.names(), ["w", "h", "b", "q8", "q40", "q41", "k6"]);
    assert_eq!(f.alignment(), 32);
    // ne = [3, 2] (3 columns) is the engine shape [2, 3].
    assert_eq!(f.shape("w").unwrap(), &[2, 3]);
    assert_eq!(f.info("w").unwrap().ne, [3, 2]);
    let t = f.tensor("w", &dev).unwrap();
    assert_eq!((t.shape(), t.dtype()), (&[2usize, 3][..], DType::F32));
    assert_eq!(t.to_vec::<f32>().unwrap(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let t = f.tensor("h", &dev).unwrap();
    assert_eq!(t.dtype(), DType::F16);
    assert_eq!(t.to_vec::<f16>().unwrap()[2], f16::from_f32(-1.0));
    let t = f.tensor("b", &dev).unwrap();
    assert_eq!((t.shape(), t.dtype()), (&[1usize, 2][..], DType::BF16));
    assert_eq!(t.to_vec::<bf16>().unwrap()[1], bf16::from_f32(8.0));
    // Plain float types borrow the map (data is aligned to 32 bytes); block types are
    // dequantized into owned memory.
    for name in ["w", "h", "b"] {
        assert!(
            f.tensor(name, &dev).unwrap().mapped_region().is_some(),
            "{name}"
        );
    }
    assert!(f.tensor("q8", &dev).unwrap().mapped_region().is_none());

    for (name, want) in [
        ("q8", q8_0_block().1),
        ("q40", q4_0_block().1),
        ("q41", q4_1_block().1),
    ] {
        assert_eq!(f.dtype(name).unwrap(), StoredDType::F32, "{name}");
        let t = f.tensor(name, &dev).unwrap();
        assert_eq!(t.dtype(), DType::F32);
        assert_eq!(t.to_vec::<f32>().unwrap(), want, "{name}");
    }
    assert_eq!(f.shape("q41").unwrap(), &[1, 1, 32]);
    assert_eq!(f.ggml_type("q41").unwrap(), GgmlType::Q4_1);
    assert_eq!(f.to_f32("h").unwrap(), [0.5, 1.0, -1.0]);

    // A block type we do not dequantize: named with the tensor, both when asked and when loaded.
    for e in [
        f.tensor("k6", &dev).unwrap_err().to_string(),
        f.dtype("k6").unwrap_err().to_string(),
    ] {
        assert!(
            e.contains("\"k6\"") && e.contains("Q6_K") && e.contains(".gguf"),
            "{e}"
        );
    }
    assert_eq!(f.shape("k6").unwrap(), &[256]);
    let e = f.tensor("nope", &dev).unwrap_err().to_string();
    assert!(e.contains("no tensor named \"nope\""), "{e}");
    // Through the trait, as models load.
    let s: &dyn TensorSource = &f;
    assert_eq!(s.shape("w").unwrap(), &[2, 3]);
}

#[test]
fn dequantizes_many_blocks_in_order() {
    // Enough blocks to span several parallel chunks; block k has Q8_0 scale k/4.
    let n = 3000;
    let mut bytes = Vec::new();
    let mut want = Vec::new();
    for k in 0..n {
        bytes.extend_from_slice(&f16b(k as f32 / 4.0));
        bytes.extend((0..32).map(|q| (q as i8 - 7) as u8));
        let d = f16::from_f32(k as f32 / 4.0).to_f32();
        want.extend((0..32).map(|q| d * (q - 7) as f32));
    }
    let got = quant::dequantize(GgmlType::Q8_0, &bytes).unwrap();
    assert!(got == want, "Q8_0 blocks differ");
    assert!(quant::dequantize(GgmlType::Q6_K, &bytes).is_none());
}

#[test]
fn metadata_of_every_type_and_typed_access() {
    let nested = {
        // array of 2 arrays of u16: [[1, 2], []]
        let mut b = 9u32.to_le_bytes().to_vec();
        b.extend_from_slice(&2u64.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&2u64.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b
    };
    let ints = {
        let mut b = 5u32.to_le_bytes().to_vec();
        b.extend_from_slice(&3u64.to_le_bytes());
        for x in [1i32, -2, 3] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b
    };
    let f = open(
        &Builder::new()
            .kv_raw("u8", 0, &[200])
            .kv_raw("i8", 1, &[0xff])
            .kv_raw("u16", 2, &700u16.to_le_bytes())
            .kv_raw("i16", 3, &(-700i16).to_le_bytes())
            .kv_u32("u32", 70000)
            .kv_raw("i32", 5, &(-5i32).to_le_bytes())
            .kv_f32("f32", 0.25)
            .kv_raw("bool", 7, &[1])
            .kv_str("str", "héllo")
            .kv_strs("strs", &["a", "bc", ""])
            .kv_raw("u64", 10, &(1u64 << 40).to_le_bytes())
            .kv_raw("i64", 11, &(-3i64).to_le_bytes())
            .kv_raw("f64", 12, &0.5f64.to_le_bytes())
            .kv_raw("nested", 9, &nested)
            .kv_raw("ints", 9, &ints)
            .build(),
    )
    .unwrap();
    assert_eq!(f.metadata().len(), 15);
    assert_eq!(f.get("u8"), Some(&GgufValue::U8(200)));
    assert_eq!(f.get("i8"), Some(&GgufValue::I8(-1)));
    assert_eq!(f.get("i16"), Some(&GgufValue::I16(-700)));
    assert_eq!(f.get_u32("u16").unwrap(), 700);
    assert_eq!(f.get_u32("u32").unwrap(), 70000);
    assert_eq!(f.get_u32("u8").unwrap(), 200);
    assert_eq!(f.get_u64("u64").unwrap(), 1 << 40);
    assert_eq!(f.get("i64").unwrap().as_i64(), Some(-3));
    assert_eq!(f.get_f32("f32").unwrap(), 0.25);
    assert_eq!(f.get_f32("f64").unwrap(), 0.5);
    assert_eq!(f.opt_bool("bool").unwrap(), Some(true));
    assert_eq!(f.get_str("str").unwrap(), "héllo");
    assert_eq!(f.get_str_array("strs").unwrap(), ["a", "bc", ""]);
    assert_eq!(f.get_int_array("ints").unwrap(), [1, -2, 3]);
    let n = f.get_array("nested").unwrap();
    assert_eq!(n.elem, GgufValueType::Array);
    assert_eq!(
        n.items[0],
        GgufValue::Array(GgufArray {
            elem: GgufValueType::U16,
            items: vec![GgufValue::U16(1), GgufValue::U16(2)]
        })
    );
    assert_eq!(n.items[1].as_array().unwrap().items.len(), 0);
    assert_eq!(n.items[1].as_array().unwrap().elem, GgufValueType::U16);
    assert_eq!(f.opt_u32("absent").unwrap(), None);

    // Wrong types and absent keys name the key, what was expected and what was found.
    for (e, want) in [
        (f.get_u32("i32").unwrap_err(), "found i32 I32(-5)"),
        (f.get_u32("u64").unwrap_err(), "fits in u32"),
        (f.get_u32("str").unwrap_err(), "found string \"héllo\""),
        (f.get_f32("u32").unwrap_err(), "expected f32"),
        (f.get_str("absent").unwrap_err(), "\"absent\": absent"),
        (f.get_str_array("ints").unwrap_err(), "array of strings"),
        (f.get_int_array("strs").unwrap_err(), "array of integers"),
        (f.get_array("u8").unwrap_err(), "expected array"),
    ] {
        let e = e.to_string();
        assert!(e.contains(want) && e.contains(".gguf"), "{e}");
    }
}

#[test]
fn alignment_from_metadata() {
    let mut b = Builder::new().kv_u32("general.alignment", 64);
    b.alignment = 64;
    let b = b
        .tensor("a", &[1], GgmlType::F32, &1f32.to_le_bytes())
        .tensor("b", &[1], GgmlType::F32, &2f32.to_le_bytes());
    let f = open(&b.build()).unwrap();
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_start() % 64, 0);
    assert_eq!(f.info("b").unwrap().offset - f.data_start(), 64);
    assert_eq!(f.to_f32("b").unwrap(), [2.0]);

    for bad in [0u32, 3, 48] {
        let mut b = Builder::new().kv_u32("general.alignment", bad);
        b.alignment = 64;
        let e = open_err(&b.build());
        assert!(
            e.contains("general.alignment") && e.contains("power of two"),
            "{e}"
        );
    }
    let e = open_err(&Builder::new().kv_str("general.alignment", "32").build());
    assert!(e.contains("general.alignment"), "{e}");
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample().build();
    open(&bytes).unwrap();
    // The last tensor's data ends the file, so every proper prefix lacks something.
    for n in 0..bytes.len() {
        let e = open(&bytes[..n]).unwrap_err().to_string();
        assert!(e.contains(".gguf"), "length {n}: {e}");
    }
}

#[test]
fn bad_magic_and_versions() {
    let mut b = sample().build();
    b[..4].copy_from_slice(b"GGML");
    let e = open_err(&b);
    assert!(e.contains("not a GGUF file") && e.contains("byte 0"), "{e}");

    for (v, hint) in [
        (2u32, "version 2 (an older GGUF"),
        (1, "version 1 (an older GGUF"),
        (4, "version 4;"),
        (3u32.swap_bytes(), "big-endian"),
    ] {
        let mut b = sample();
        b.version = v;
        let e = open_err(&b.build());
        assert!(
            e.contains(hint) && e.contains("only version 3 is supported") && e.contains("byte 4"),
            "{e}"
        );
    }
    let e = open_err(b"");
    assert!(e.contains("magic") && e.contains("needs 4 bytes"), "{e}");
}

/// A header with the given counts and the rest of the bytes as written.
fn header(n_tensors: u64, n_kv: u64, rest: &[u8]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&n_tensors.to_le_bytes());
    b.extend_from_slice(&n_kv.to_le_bytes());
    b.extend_from_slice(rest);
    b
}

#[test]
fn absurd_counts_and_lengths_are_refused_before_allocating() {
    let e = open_err(&header(1 << 60, 0, &[0; 64]));
    assert!(
        e.contains("tensor count") && e.contains("cannot fit"),
        "{e}"
    );
    let e = open_err(&header(0, 1 << 60, &[0; 64]));
    assert!(
        e.contains("metadata count") && e.contains("cannot fit"),
        "{e}"
    );
    let e = open_err(&header(u64::MAX, u64::MAX, &[]));
    assert!(e.contains("cannot fit"), "{e}");

    // A key whose length claims 2^62 bytes.
    let mut kv = (1u64 << 62).to_le_bytes().to_vec();
    kv.extend_from_slice(&[0; 32]);
    let e = open_err(&header(0, 1, &kv));
    assert!(
        e.contains("string length") && e.contains("cannot fit"),
        "{e}"
    );

    // An array of 2^60 u64 and one of 2^60 strings.
    for elem in [10u32, 8, 9] {
        let mut v = elem.to_le_bytes().to_vec();
        v.extend_from_slice(&(1u64 << 60).to_le_bytes());
        v.extend_from_slice(&[0; 40]);
        let e = open_err(&Builder::new().kv_raw("big", 9, &v).build());
        assert!(
            e.contains("\"big\" (array count)") && e.contains("cannot fit"),
            "{e}"
        );
    }
    // A string value claiming more bytes than are left.
    let mut v = 1000u64.to_le_bytes().to_vec();
    v.extend_from_slice(b"short");
    let e = open_err(&Builder::new().kv_raw("s", 8, &v).build());
    assert!(
        e.contains("metadata \"s\"") && e.contains("cannot fit"),
        "{e}"
    );
}

#[test]
fn malformed_metadata() {
    // Arrays nested deeper than MAX_DEPTH.
    let mut v = Vec::new();
    for _ in 0..MAX_DEPTH + 1 {
        v.extend_from_slice(&9u32.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes());
    }
    v.extend_from_slice(&[0; 16]);
    let e = open_err(&Builder::new().kv_raw("deep", 9, &v).build());
    assert!(e.contains("nested deeper"), "{e}");
    // Deep nesting from a huge file-declared depth cannot overflow the stack either.
    let v: Vec<u8> = std::iter::repeat_n([9u8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0], 100_000)
        .flatten()
        .collect();
    let e = open_err(&Builder::new().kv_raw("deep", 9, &v).build());
    assert!(e.contains("nested deeper"), "{e}");

    let e = open_err(&Builder::new().kv_raw("t", 13, &[0; 8]).build());
    assert!(e.contains("unknown value type 13"), "{e}");
    let mut v = 77u32.to_le_bytes().to_vec();
    v.extend_from_slice(&0u64.to_le_bytes());
    let e = open_err(&Builder::new().kv_raw("a", 9, &v).build());
    assert!(e.contains("unknown array element type 77"), "{e}");
    let e = open_err(&Builder::new().kv_raw("b", 7, &[2]).build());
    assert!(e.contains("bool byte 2"), "{e}");
    let e = open_err(&Builder::new().kv_u32("k", 1).kv_u32("k", 2).build());
    assert!(e.contains("\"k\" appears twice"), "{e}");
    let mut v = 2u64.to_le_bytes().to_vec();
    v.extend_from_slice(&[0xff, 0xfe]);
    let e = open_err(&Builder::new().kv_raw("s", 8, &v).build());
    assert!(e.contains("not UTF-8"), "{e}");
}

#[test]
fn malformed_tensor_infos() {
    let f32s = le(&[1.0f32; 4], f32::to_le_bytes);
    // One tensor info over a 16-byte data section.
    let one = |ne: &[u64], ty: u32, off: u64| {
        let mut b = Builder::new().tensor_at("t", ne, ty, off, &[]).build();
        b.extend_from_slice(&f32s);
        open_err(&b)
    };
    // Offset past the data, far past it, and a size that runs past the end.
    let e = one(&[4], 0, 32);
    assert!(e.contains("\"t\"") && e.contains("outside"), "{e}");
    let e = one(&[4], 0, 1 << 62);
    assert!(e.contains("outside"), "{e}");
    let e = one(&[8], 0, 0);
    assert!(e.contains("outside the 16-byte data section"), "{e}");
    let e = one(&[4], 0, 4);
    assert!(e.contains("not a multiple of the alignment"), "{e}");
    let e = one(&[1 << 40, 1 << 40, 1 << 40], 0, 0);
    assert!(e.contains("overflow"), "{e}");
    let e = one(&[u64::MAX], 0, 0);
    assert!(e.contains("\"t\""), "{e}");
    let e = one(&[2, 2, 1, 1, 1], 0, 0);
    assert!(e.contains("5 dimensions"), "{e}");
    let e = one(&[4], 99, 0);
    assert!(e.contains("unknown GGML type id 99"), "{e}");
    let e = one(&[16], GgmlType::Q8_0.id(), 0);
    assert!(e.contains("not whole blocks of 32"), "{e}");

    // Overlap and duplicates.
    let b = Builder::new()
        .tensor_at("a", &[4], 0, 0, &f32s)
        .tensor_at("b", &[4], 0, 0, &[]);
    let e = open_err(&b.build());
    assert!(e.contains("\"a\" and \"b\" overlap"), "{e}");
    let b = Builder::new()
        .tensor_at("a", &[8], 0, 0, &le(&[1.0f32; 8], f32::to_le_bytes))
        .tensor_at("b", &[4], 0, 0, &[]);
    let e = open_err(&b.build());
    assert!(e.contains("overlap"), "{e}");
    let b = Builder::new()
        .tensor("a", &[4], GgmlType::F32, &f32s)
        .tensor("a", &[4], GgmlType::F32, &f32s);
    let e = open_err(&b.build());
    assert!(e.contains("\"a\" appears twice"), "{e}");
    // A data section that would start past the end of the file.
    // (24 header bytes + a 33-byte tensor info end at 57; the data would start at 64.)
    let mut b = Builder::new().tensor_at("t", &[0], 0, 0, &[]).build();
    assert_eq!(b.len(), 64);
    b.truncate(60);
    let e = open_err(&b);
    assert!(e.contains("past the end"), "{e}");
    // An empty tensor is fine.
    let f = open(&Builder::new().tensor_at("e", &[0, 3], 0, 0, &[]).build()).unwrap();
    assert_eq!(f.shape("e").unwrap(), &[3, 0]);
}

#[test]
fn corrupting_any_header_byte_never_panics() {
    let bytes = sample().build();
    let end = open(&bytes).unwrap().data_start();
    for i in 0..end {
        for x in [0x00, 0xff, 0x80] {
            let mut b = bytes.clone();
            b[i] = x;
            if let Ok(f) = open(&b) {
                for n in f.names() {
                    let _ = f.host(n);
                }
            }
        }
    }
}

// ---- llama: names, permutation, parameters ----

#[test]
fn gguf_and_hf_names_map_both_ways() {
    for (g, h) in [
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("output_norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
        (
            "blk.0.attn_q.weight",
            "model.layers.0.self_attn.q_proj.weight",
        ),
        (
            "blk.12.attn_k.bias",
            "model.layers.12.self_attn.k_proj.bias",
        ),
        (
            "blk.3.attn_v.weight",
            "model.layers.3.self_attn.v_proj.weight",
        ),
        (
            "blk.3.attn_output.weight",
            "model.layers.3.self_attn.o_proj.weight",
        ),
        (
            "blk.29.ffn_gate.weight",
            "model.layers.29.mlp.gate_proj.weight",
        ),
        ("blk.29.ffn_up.weight", "model.layers.29.mlp.up_proj.weight"),
        (
            "blk.29.ffn_down.weight",
            "model.layers.29.mlp.down_proj.weight",
        ),
        (
            "blk.1.attn_norm.weight",
            "model.layers.1.input_layernorm.weight",
        ),
        (
            "blk.1.ffn_norm.weight",
            "model.layers.1.post_attention_layernorm.weight",
        ),
    ] {
        assert_eq!(hf_name(g).as_deref(), Some(h));
        assert_eq!(gguf_name(h).as_deref(), Some(g));
    }
    for g in [
        "rope_freqs.weight",
        "blk.x.attn_q.weight",
        "blk.1.attn_q.scale",
        "blk.1.foo.weight",
    ] {
        assert_eq!(hf_name(g), None, "{g}");
    }
}

#[test]
fn unpermute_inverts_the_converters_permutation() {
    // 2 heads of 6 rows, 3 columns: values encode (row, col).
    let (rows, cols, heads) = (12, 3, 2);
    let w: Vec<u32> = (0..rows * cols).map(|i| i as u32).collect();
    let p = permute_rows(&w, rows, cols, heads).unwrap();
    // Head 0, HF rows 0..6 = [s=0: i=0,1,2 | s=1: i=0,1,2]; GGUF row 2i+s = HF row 3s+i:
    // GGUF rows 0..6 are HF rows 0, 3, 1, 4, 2, 5.
    let row = |v: &[u32], r: usize| v[r * cols] / cols as u32;
    let got: Vec<u32> = (0..rows).map(|r| row(&p, r)).collect();
    assert_eq!(got, [0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11]);
    assert_eq!(unpermute_rows(&p, rows, cols, heads).unwrap(), w);
    // Shapes that are not whole heads of even size.
    assert!(unpermute_rows(&w, rows, cols, 5).is_none());
    assert!(unpermute_rows(&w, rows, cols, 4).is_none()); // 3 rows per head
    assert!(unpermute_rows(&w, rows, cols, 0).is_none());
    assert!(unpermute_rows(&w[1..], rows, cols, 2).is_none());
}

/// The direction check: HF weights with rotate-half RoPE compute the same as the converter's
/// permuted weights with interleaved RoPE (what llama.cpp runs for `llama` files), up to the
/// same column permutation of the output, so [`unpermute_rows`] gives back HF weights.
#[test]
fn permuted_weights_with_interleaved_rope_match_hf_rope() {
    let dev = cpu_device();
    let (heads, hd, cols, t) = (3, 8, 5, 4);
    let rows = heads * hd;
    let mut rng = Rng::new(7);
    let w_hf = Tensor::randn(&[rows, cols], 0.0, 1.0, &mut rng, &dev).unwrap();
    let x = Tensor::randn(&[t, cols], 0.0, 1.0, &mut rng, &dev).unwrap();
    let w_hf_v = w_hf.to_vec::<f32>().unwrap();
    let w_g_v = permute_rows(&w_hf_v, rows, cols, heads).unwrap();
    assert_eq!(unpermute_rows(&w_g_v, rows, cols, heads).unwrap(), w_hf_v);
    let w_g = Tensor::from_vec(w_g_v, &[rows, cols], &dev).unwrap();
    let (cos, sin) = rope_tables(t, hd, 10000.0, 3, &dev).unwrap();
    let roped = |w: &Tensor, style| {
        no_grad(|| {
            x.linear(w, None)
                .unwrap()
                .reshape(&[t, heads, hd])
                .unwrap()
                .transpose(0, 1)
                .unwrap()
                .rope(&cos, &sin, style)
                .unwrap()
                .to_vec::<f32>()
                .unwrap()
        })
    };
    let a = roped(&w_hf, RopeStyle::RotateHalf);
    let b = roped(&w_g, RopeStyle::Interleaved);
    // b[h, t, 2i + s] == a[h, t, s·hd/2 + i]
    for h in 0..heads {
        for p in 0..t {
            for i in 0..hd / 2 {
                for s in 0..2 {
                    let ia = (h * t + p) * hd + s * hd / 2 + i;
                    let ib = (h * t + p) * hd + 2 * i + s;
                    assert!((a[ia] - b[ib]).abs() < 1e-5, "{h} {p} {i} {s}");
                }
            }
        }
    }
}

/// A small `llama` file: 2 layers, width 8, 2 heads of 4, 1 KV head, q/k in F32 stored permuted.
fn tiny_llama(with_output: bool) -> (Vec<u8>, Vec<f32>, Vec<f32>) {
    let q_hf: Vec<f32> = (0..64).map(|i| i as f32).collect();
    let k_hf: Vec<f32> = (0..32).map(|i| 100.0 + i as f32).collect();
    let q_g = permute_rows(&q_hf, 8, 8, 2).unwrap();
    let k_g = permute_rows(&k_hf, 4, 8, 1).unwrap();
    let ones = le(&[1.0f32; 8], f32::to_le_bytes);
    let mut b = Builder::new()
        .kv_str("general.architecture", "llama")
        .kv_u32("llama.embedding_length", 8)
        .kv_u32("llama.feed_forward_length", 16)
        .kv_u32("llama.block_count", 2)
        .kv_u32("llama.attention.head_count", 2)
        .kv_u32("llama.attention.head_count_kv", 1)
        .kv_f32("llama.rope.freq_base", 100000.0)
        .kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
        .kv_u32("llama.context_length", 64)
        .kv_u32("tokenizer.ggml.eos_token_id", 2)
        .kv_strs("tokenizer.ggml.tokens", &["a", "b", "c"])
        .tensor(
            "token_embd.weight",
            &[8, 3],
            GgmlType::F32,
            &le(&[0.5f32; 24], f32::to_le_bytes),
        )
        .tensor("output_norm.weight", &[8], GgmlType::F32, &ones);
    for l in 0..2 {
        b = b
            .tensor(
                &format!("blk.{l}.attn_q.weight"),
                &[8, 8],
                GgmlType::F32,
                &le(&q_g, f32::to_le_bytes),
            )
            .tensor(
                &format!("blk.{l}.attn_k.weight"),
                &[8, 4],
                GgmlType::F32,
                &le(&k_g, f32::to_le_bytes),
            )
            .tensor(
                &format!("blk.{l}.attn_norm.weight"),
                &[8],
                GgmlType::F32,
                &ones,
            );
    }
    if with_output {
        b = b.tensor(
            "output.weight",
            &[8, 3],
            GgmlType::F32,
            &le(&[0.25f32; 24], f32::to_le_bytes),
        );
    }
    b = b.tensor(
        "rope_freqs.weight",
        &[2],
        GgmlType::F32,
        &le(&[1.0f32; 2], f32::to_le_bytes),
    );
    (b.build(), q_hf, k_hf)
}

#[test]
fn gguf_llama_gives_hf_names_and_unpermuted_qk() {
    let (bytes, q_hf, k_hf) = tiny_llama(false);
    let m = GgufLlama::new(open(&bytes).unwrap()).unwrap();
    let p = m.params();
    assert_eq!(
        (p.hidden, p.ffn, p.layers, p.heads, p.kv_heads, p.head_dim, p.rope_dim),
        (8, 16, 2, 2, 1, 4, 4)
    );
    assert_eq!((p.rope_theta, p.rms_eps), (100000.0, 1e-5));
    assert_eq!(
        (p.vocab, p.context_length, p.bos, p.eos),
        (3, 64, None, Some(2))
    );
    assert!(p.tied_embeddings && !p.add_bos);
    let dev = cpu_device();
    let names = TensorSource::names(&m);
    assert!(
        names.contains(&"model.layers.1.self_attn.k_proj.weight"),
        "{names:?}"
    );
    assert!(names.contains(&"model.embed_tokens.weight"));
    assert!(!names
        .iter()
        .any(|n| n.contains("rope_freqs") || *n == "lm_head.weight"));
    assert_eq!(names.len(), 2 + 3 * 2);
    let q = m
        .tensor("model.layers.1.self_attn.q_proj.weight", &dev)
        .unwrap();
    assert_eq!(q.shape(), &[8, 8]);
    assert_eq!(q.to_vec::<f32>().unwrap(), q_hf);
    let k = m
        .tensor("model.layers.0.self_attn.k_proj.weight", &dev)
        .unwrap();
    assert_eq!(k.shape(), &[4, 8]);
    assert_eq!(k.to_vec::<f32>().unwrap(), k_hf);
    assert_eq!(m.shape("model.embed_tokens.weight").unwrap(), &[3, 8]);
    assert_eq!(m.dtype("model.norm.weight").unwrap(), StoredDType::F32);
    let e = m.tensor("lm_head.weight", &dev).unwrap_err().to_string();
    assert!(e.contains("no tensor named \"lm_head.weight\""), "{e}");

    let (bytes, _, _) = tiny_llama(true);
    let m = GgufLlama::new(open(&bytes).unwrap()).unwrap();
    assert!(!m.params().tied_embeddings);
    assert_eq!(m.shape("lm_head.weight").unwrap(), &[3, 8]);
}

#[test]
fn gguf_llama_refuses_other_architectures_and_bad_heads() {
    let f = open(&sample().build()).unwrap();
    let e = GgufLlama::new(f).unwrap_err().to_string();
    assert!(
        e.contains("test.embedding_length") && e.contains("absent"),
        "{e}"
    );
    let b = Builder::new()
        .kv_str("general.architecture", "qwen2")
        .kv_u32("qwen2.embedding_length", 8)
        .kv_u32("qwen2.feed_forward_length", 16)
        .kv_u32("qwen2.block_count", 1)
        .kv_u32("qwen2.attention.head_count", 2)
        .kv_f32("qwen2.attention.layer_norm_rms_epsilon", 1e-6)
        .kv_u32("qwen2.context_length", 64)
        .kv_strs("tokenizer.ggml.tokens", &["a"]);
    let f = open(&b.build()).unwrap();
    assert_eq!(LlamaParams::from_gguf(&f).unwrap().kv_heads, 2);
    let e = GgufLlama::new(f).unwrap_err().to_string();
    assert!(
        e.contains("\"qwen2\"") && e.contains("general.architecture"),
        "{e}"
    );
    let f = open(
        &Builder::new()
            .kv_str("general.architecture", "llama")
            .kv_u32("llama.embedding_length", 8)
            .kv_u32("llama.attention.head_count", 3)
            .build(),
    )
    .unwrap();
    let e = GgufLlama::new(f).unwrap_err().to_string();
    assert!(e.contains("3 heads do not divide the width 8"), "{e}");
}
