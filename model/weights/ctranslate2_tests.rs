//! Unit tests on small synthetic `model.bin` files written here, byte by byte (REFERENCE.md §8).

use super::*;
use crate::engine::{cpu_device, DType};
use half::{bf16, f16};

/// A builder for `model.bin` bytes.
struct Bin(Vec<u8>);

impl Bin {
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn str(self, s: &str) -> Self {
        let mut b = self.u16(s.len() as u16 + 1);
        b.0.extend_from_slice(s.as_bytes());
        b.0.push(0);
        b
    }
    fn bytes(mut self, d: &[u8]) -> Self {
        self.0.extend_from_slice(d);
        self
    }
    /// A variable whose nbytes matches its data.
    fn var(self, name: &str, dims: &[u32], code: u8, data: &[u8]) -> Self {
        let mut b = self.str(name).u8(dims.len() as u8);
        for &d in dims {
            b = b.u32(d);
        }
        b.u8(code).u32(data.len() as u32).bytes(data)
    }
    fn header(n_vars: u32) -> Self {
        Bin(Vec::new()).u32(6).str("WhisperSpec").u32(3).u32(n_vars)
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Write `bytes` to `model.bin` in a fresh scratch folder, removed when the guard drops.
fn write_tmp(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = crate::scratch_dir("ct");
    let p = dir.path().join("model.bin");
    std::fs::write(&p, bytes).unwrap();
    (dir, p)
}

/// The valid file, opened (with the guard of its folder).
fn open_valid() -> (tempfile::TempDir, CtModel) {
    let (dir, p) = write_tmp(&valid());
    (dir, CtModel::open(p).unwrap())
}

fn valid() -> Vec<u8> {
    let h: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|&x| f16::from_f32(x).to_le_bytes())
        .collect();
    let b: Vec<u8> = [0.25f32, 3.0, 4.0]
        .iter()
        .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
        .collect();
    Bin::header(6)
        .var("n", &[], 2, &(-300i16).to_le_bytes())
        .var("s", &[1], 3, &7i32.to_le_bytes())
        .var(
            "a/weight",
            &[2, 3],
            0,
            &f32_bytes(&[1., 2., 3., 4., 5., 6.]),
        )
        .var("h", &[2], 4, &h)
        .var("b", &[3, 1], 5, &b)
        .var("q", &[4], 1, &[1, 2, 3, 255])
        .u32(2)
        .str("alias2")
        .str("alias1") // an alias of an alias, declared before its target
        .str("alias1")
        .str("a/weight")
        .0
}

fn open_err(bytes: &[u8]) -> String {
    let (_dir, p) = write_tmp(bytes);
    let e = CtModel::open(&p).unwrap_err().to_string();
    assert!(e.contains(&p.display().to_string()), "{e}");
    e
}

#[test]
fn reads_a_valid_file() {
    let (_dir, m) = open_valid();
    let dev = cpu_device();
    assert_eq!(m.spec(), "WhisperSpec");
    assert_eq!(m.revision(), 3);
    assert_eq!(
        m.names(),
        ["n", "s", "a/weight", "h", "b", "q", "alias1", "alias2"].to_vec()
    );
    assert_eq!(m.shape("a/weight").unwrap(), &[2, 3]);
    assert_eq!(m.dtype("h").unwrap(), StoredDType::F16);

    let t = m.tensor("a/weight", &dev).unwrap();
    assert_eq!((t.shape(), t.dtype()), (&[2usize, 3][..], DType::F32));
    assert_eq!(t.to_vec::<f32>().unwrap(), [1., 2., 3., 4., 5., 6.]);
    let t = m.tensor("h", &dev).unwrap();
    assert_eq!(t.dtype(), DType::F16);
    assert_eq!(
        t.to_vec::<f16>().unwrap(),
        [f16::from_f32(1.5), f16::from_f32(-2.0)]
    );
    let t = m.tensor("b", &dev).unwrap();
    assert_eq!((t.shape(), t.dtype()), (&[3usize, 1][..], DType::BF16));
    assert_eq!(t.to_vec::<bf16>().unwrap()[2], bf16::from_f32(4.0));

    // Both aliases resolve to the same variable.
    let t = m.tensor("alias2", &dev).unwrap();
    assert_eq!(t.to_vec::<f32>().unwrap(), [1., 2., 3., 4., 5., 6.]);
    assert_eq!(m.shape("alias1").unwrap(), &[2, 3]);
}

#[test]
fn integer_types_and_missing_names_are_clear_errors() {
    let (_dir, m) = open_valid();
    let dev = cpu_device();
    let e = m.tensor("q", &dev).unwrap_err().to_string();
    assert!(
        e.contains("\"q\"") && e.contains("i8") && e.contains("unsupported"),
        "{e}"
    );
    let e = m.tensor("nope", &dev).unwrap_err().to_string();
    assert!(e.contains("no tensor named \"nope\""), "{e}");
}

#[test]
fn integer_scalars() {
    let (_dir, m) = open_valid();
    assert_eq!(m.int_scalar("n").unwrap(), -300);
    assert_eq!(m.shape("n").unwrap(), &[] as &[usize]);
    assert_eq!(m.int_scalar("s").unwrap(), 7);
    let e = m.int_scalar("q").unwrap_err().to_string();
    assert!(
        e.contains("expected one integer, found i8 of shape [4]"),
        "{e}"
    );
    assert!(m.int_scalar("a/weight").is_err());
}

#[test]
fn every_truncation_is_an_error() {
    let full = valid();
    for n in 0..full.len() {
        let e = open_err(&full[..n]);
        assert!(e.contains("malformed at byte"), "cut at {n}: {e}");
    }
}

#[test]
fn bad_version() {
    let mut b = valid();
    b[0] = 5;
    let e = open_err(&b);
    assert!(e.contains("byte 0") && e.contains("version 5"), "{e}");
}

#[test]
fn absurd_counts_and_sizes_fail_without_allocating() {
    // A variable count of 4 billion: refused as a count before any variable is read.
    let e = open_err(&Bin::header(u32::MAX).0);
    assert!(e.contains("variable count 4294967295 cannot fit"), "{e}");
    // Rank 255 with few bytes behind it.
    let e = open_err(&Bin::header(1).str("x").u8(255).u32(1).0);
    assert!(e.contains("dimension"), "{e}");
    // Dimensions whose product overflows.
    let b = Bin::header(1)
        .str("x")
        .u8(3)
        .u32(u32::MAX)
        .u32(u32::MAX)
        .u32(u32::MAX)
        .u8(0)
        .u32(4)
        .bytes(&[0; 4]);
    let e = open_err(&b.0);
    assert!(e.contains("needs more than usize"), "{e}");
    // nbytes past the end of the file (and consistent with the shape).
    let b = Bin::header(1)
        .str("x")
        .u8(1)
        .u32(1 << 28)
        .u8(0)
        .u32(1 << 30);
    let e = open_err(&b.0);
    assert!(
        e.contains("data of variable \"x\"") && e.contains("1073741824 bytes"),
        "{e}"
    );
    // nbytes disagreeing with the shape.
    let b = Bin::header(1)
        .str("x")
        .u8(1)
        .u32(2)
        .u8(0)
        .u32(4)
        .bytes(&[0; 4]);
    let e = open_err(&b.0);
    assert!(e.contains("4 bytes stated") && e.contains("needs 8"), "{e}");
    // An alias count of 4 billion.
    let e = open_err(&Bin::header(0).u32(u32::MAX).0);
    assert!(e.contains("alias count 4294967295 cannot fit"), "{e}");
    // A string length past the end.
    let e = open_err(&Bin(Vec::new()).u32(6).u16(u16::MAX).0);
    assert!(e.contains("spec name") && e.contains("byte 6"), "{e}");
}

#[test]
fn structural_errors() {
    let e = open_err(&Bin::header(1).var("x", &[1], 9, &[0; 4]).u32(0).0);
    assert!(e.contains("unknown dtype code 9"), "{e}");
    let b = Bin::header(2)
        .var("x", &[1], 0, &[0; 4])
        .var("x", &[1], 0, &[0; 4])
        .u32(0);
    assert!(open_err(&b.0).contains("appears twice"));
    let e = open_err(&Bin::header(0).u32(0).u8(7).0);
    assert!(e.contains("1 bytes left"), "{e}");
    let e = open_err(&Bin(Vec::new()).u32(6).u16(2).bytes(b"ab").0);
    assert!(e.contains("not NUL-terminated"), "{e}");
}

#[test]
fn alias_to_a_missing_name() {
    let b = Bin::header(1)
        .var("x", &[1], 0, &[0; 4])
        .u32(1)
        .str("y")
        .str("missing");
    let e = open_err(&b.0);
    assert!(e.contains("alias \"y\" points to \"missing\""), "{e}");
    // A cycle of aliases never resolves either.
    let b = Bin::header(0).u32(2).str("p").str("q").str("q").str("p");
    assert!(open_err(&b.0).contains("which is no variable"));
}
