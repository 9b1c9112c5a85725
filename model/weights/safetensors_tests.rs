//! Unit tests: valid files come from the `safetensors` crate's own writer (an independent
//! implementation of the format); malformed ones are written byte by byte here.

use super::*;
use crate::engine::{cpu_device, DType};
use ::safetensors::tensor::{serialize, TensorView};
use ::safetensors::Dtype;
use half::{bf16, f16};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    v.iter().flat_map(|&x| f(x)).collect()
}

/// A file with an f32, an f16, a bf16 and an i64 tensor, written by the safetensors crate.
fn valid(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    serialize(views, &None).unwrap()
}

fn sample() -> Vec<(&'static str, Dtype, Vec<usize>, Vec<u8>)> {
    vec![
        (
            "w",
            Dtype::F32,
            vec![2, 2],
            le(&[1.0f32, 2.0, 3.0, 4.0], f32::to_le_bytes),
        ),
        (
            "h",
            Dtype::F16,
            vec![3],
            le(&[0.5f32, 1.0, -1.0], |x| f16::from_f32(x).to_le_bytes()),
        ),
        (
            "b",
            Dtype::BF16,
            vec![1, 2],
            le(&[2.0f32, 8.0], |x| bf16::from_f32(x).to_le_bytes()),
        ),
        ("ids", Dtype::I64, vec![2], le(&[7i64, 9], i64::to_le_bytes)),
    ]
}

/// A file from a header text and data bytes.
fn raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

fn open_err(bytes: &[u8]) -> String {
    let dir = crate::scratch_dir("st");
    let p = write(dir.path(), "m.safetensors", bytes);
    let e = SafeTensors::open(&p).unwrap_err().to_string();
    assert!(e.contains(&p.display().to_string()), "{e}");
    e
}

#[test]
fn reads_a_single_file() {
    let dir = crate::scratch_dir("st");
    let p = write(dir.path(), "m.safetensors", &valid(&sample()));
    let m = SafeTensors::open(&p).unwrap();
    let dev = cpu_device();
    assert_eq!(m.names(), ["b", "h", "ids", "w"].to_vec());
    assert_eq!(m.shape("w").unwrap(), &[2, 2]);
    assert_eq!(m.dtype("ids").unwrap(), StoredDType::I64);
    let t = m.tensor("w", &dev).unwrap();
    assert_eq!(t.dtype(), DType::F32);
    assert_eq!(t.to_vec::<f32>().unwrap(), [1.0, 2.0, 3.0, 4.0]);
    let t = m.tensor("h", &dev).unwrap();
    assert_eq!(t.dtype(), DType::F16);
    assert_eq!(t.to_vec::<f16>().unwrap()[2], f16::from_f32(-1.0));
    let t = m.tensor("b", &dev).unwrap();
    assert_eq!((t.shape(), t.dtype()), (&[1usize, 2][..], DType::BF16));
    assert_eq!(t.to_vec::<bf16>().unwrap()[1], bf16::from_f32(8.0));

    let e = m.tensor("ids", &dev).unwrap_err().to_string();
    assert!(
        e.contains("\"ids\"") && e.contains("i64") && e.contains("unsupported"),
        "{e}"
    );
    let e = m.tensor("nope", &dev).unwrap_err().to_string();
    assert!(e.contains("no tensor named \"nope\""), "{e}");
}

#[test]
fn reads_shards_through_an_index() {
    let tmp = crate::scratch_dir("st");
    let dir = tmp.path();
    let s = sample();
    write(dir, "a.safetensors", &valid(&s[..2]));
    write(dir, "b.safetensors", &valid(&s[2..]));
    let index = r#"{"metadata": {"total_size": 0}, "weight_map":
        {"w": "a.safetensors", "h": "a.safetensors", "b": "b.safetensors", "ids": "b.safetensors"}}"#;
    let p = write(dir, "model.safetensors.index.json", index.as_bytes());
    let m: Box<dyn TensorSource> = Box::new(SafeTensors::open(&p).unwrap());
    let dev = cpu_device();
    assert_eq!(m.names(), ["b", "h", "ids", "w"].to_vec());
    assert_eq!(
        m.tensor("w", &dev).unwrap().to_vec::<f32>().unwrap(),
        [1.0, 2.0, 3.0, 4.0]
    );
    assert_eq!(m.shape("b").unwrap(), &[1, 2]);
    let e = m.shape("nope").unwrap_err().to_string();
    assert!(
        e.contains("model.safetensors.index.json: no tensor named"),
        "{e}"
    );

    // An index naming a tensor its shard lacks, a missing shard, and a path outside the folder.
    let p = write(
        dir,
        "x.index.json",
        br#"{"weight_map": {"zz": "a.safetensors"}}"#,
    );
    let e = SafeTensors::open(&p).unwrap_err().to_string();
    assert!(e.contains("a.safetensors") && e.contains("\"zz\""), "{e}");
    let p = write(
        dir,
        "y.index.json",
        br#"{"weight_map": {"w": "gone.safetensors"}}"#,
    );
    let e = SafeTensors::open(&p).unwrap_err().to_string();
    assert!(e.contains("gone.safetensors"), "{e}");
    let p = write(
        dir,
        "z.index.json",
        br#"{"weight_map": {"w": "../a.safetensors"}}"#,
    );
    let e = SafeTensors::open(&p).unwrap_err().to_string();
    assert!(e.contains("not a plain file name"), "{e}");
    let p = write(dir, "v.index.json", br#"{"weights": {}}"#);
    let e = SafeTensors::open(&p).unwrap_err().to_string();
    assert!(e.contains("weight_map"), "{e}");
}

#[test]
fn truncated_files() {
    let full = valid(&sample());
    for n in [0, 7, 8, 20, full.len() - 1] {
        let e = open_err(&full[..n]);
        assert!(e.contains("malformed at byte"), "cut at {n}: {e}");
    }
    assert!(open_err(&full[..4]).contains("shorter than the 8-byte header length"));
}

#[test]
fn header_length_past_the_end() {
    let mut b = valid(&sample());
    b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let e = open_err(&b);
    assert!(
        e.contains("header length 18446744073709551615 runs past the end"),
        "{e}"
    );
}

#[test]
fn bad_offsets_and_sizes() {
    let d = [0u8; 16];
    let e = open_err(&raw(
        r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 24]}}"#,
        &d,
    ));
    assert!(e.contains("[8, 24] outside the 16 data bytes"), "{e}");
    let e = open_err(&raw(
        r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 4]}}"#,
        &d,
    ));
    assert!(e.contains("outside"), "{e}");
    let e = open_err(&raw(
        r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#,
        &d,
    ));
    assert!(e.contains("\"a\" and \"b\" overlap"), "{e}");
    let e = open_err(&raw(
        r#"{"a": {"dtype": "F16", "shape": [3], "data_offsets": [0, 8]}}"#,
        &d,
    ));
    assert!(
        e.contains("8 bytes in data_offsets") && e.contains("needs 6"),
        "{e}"
    );
    let e = open_err(&raw(
        r#"{"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}}"#,
        &d,
    ));
    assert!(e.contains("needs more than usize"), "{e}");
}

#[test]
fn bad_headers() {
    let d = [0u8; 8];
    let cases = [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (
            r#"{"a": {"shape": [2], "data_offsets": [0, 8]}}"#,
            "no \"dtype\"",
        ),
        (
            r#"{"a": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}}"#,
            "unknown dtype \"Q4\"",
        ),
        (
            r#"{"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}"#,
            "holds -2, not a size",
        ),
        (
            r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}"#,
            "has 1 numbers, not 2",
        ),
    ];
    for (header, want) in cases {
        let e = open_err(&raw(header, &d));
        assert!(e.contains(want), "{header}: {e}");
    }
    // Metadata is skipped, not parsed as a tensor.
    let dir = crate::scratch_dir("st");
    let p = write(
        dir.path(),
        "m.safetensors",
        &raw(
            r#"{"__metadata__": {"format": "pt"}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}"#,
            &d,
        ),
    );
    assert_eq!(SafeTensors::open(&p).unwrap().names(), ["a"].to_vec());
}
