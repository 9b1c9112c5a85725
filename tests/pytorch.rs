//! The PyTorch checkpoint reader on fixtures written by real `torch.save` (and real PEFT key
//! names), made by `scripts/goldens/make_pt_fixtures.py` into `tests/data/pt/`; and on
//! corrupted or hostile variants of them built here.
//!
//! Tolerance: none. Every value must equal torch's exactly (f32/f16/bf16 values are all f32
//! values and are compared as f32; integers as integers).

use osum::engine::cpu_device;
use osum::model::weights::{Component, PtCheckpoint, StoredDType, TensorSource, WeightsError};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

mod fixtures;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pt")
        .join(name)
}

fn expected() -> Value {
    let text = std::fs::read_to_string(data("pt_expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `name` in a fresh scratch folder, removed when the guard drops.
fn tmp(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = fixtures::scratch_dir("pt");
    let p = dir.path().join(name);
    (dir, p)
}

fn dtype_of(torch: &str) -> StoredDType {
    match torch {
        "float32" => StoredDType::F32,
        "float16" => StoredDType::F16,
        "bfloat16" => StoredDType::BF16,
        "int64" => StoredDType::I64,
        other => panic!("fixture dtype {other}"),
    }
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// Every tensor of `file` matches the JSON: dtype, shape, stride, offset, exact values.
fn check_against_json(ck: &PtCheckpoint, file: &str) {
    let exp = expected();
    let tensors = exp[file].as_object().unwrap();
    let mut names: Vec<&str> = tensors.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(ck.names(), names);
    let dev = cpu_device();
    for (name, e) in tensors {
        let info = ck.info(name).unwrap();
        assert_eq!(info.dtype, dtype_of(e["dtype"].as_str().unwrap()), "{name}");
        assert_eq!(info.shape, usizes(&e["shape"]), "{name}");
        assert_eq!(info.stride, usizes(&e["stride"]), "{name}");
        assert_eq!(info.offset as u64, e["storage_offset"].as_u64().unwrap());
        assert_eq!(info.is_contiguous(), e["contiguous"].as_bool().unwrap());
        if !info.is_contiguous() {
            continue;
        }
        let t = ck.tensor(name, &dev).unwrap();
        assert_eq!(t.shape(), &info.shape[..], "{name}");
        let got = t.to_host().unwrap().to_f64_vec();
        let want = e["values"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        for (g, w) in got.iter().zip(want) {
            if let Some(w) = w.as_i64() {
                assert_eq!(*g, w as f64, "{name}");
            } else {
                // Compared as f32: serde_json's default float parser may be one f64 ulp off,
                // which cannot move a value that is exactly an f32 to another f32.
                assert_eq!(*g as f32, w.as_f64().unwrap() as f32, "{name}");
            }
        }
    }
}

#[test]
fn osum_layout_checkpoint_matches_torch() {
    let ck = PtCheckpoint::open(data("osum_tiny.pt")).unwrap();
    // {"model": state_dict, "epoch": 7, "lr": 5e-4}: the state dict is found under "model".
    assert_eq!(ck.state_dict_path(), ["model"]);
    check_against_json(&ck, "osum_tiny.pt");
    // Same result when the key is given.
    let at = PtCheckpoint::open_at(data("osum_tiny.pt"), &["model"]).unwrap();
    assert_eq!(at.names(), ck.names());
    // Taking the root flattens the nested dict and skips the non-tensor entries.
    let root = PtCheckpoint::open_at(data("osum_tiny.pt"), &[]).unwrap();
    assert_eq!(root.skipped(), ["epoch", "lr"]);
    assert_eq!(root.names().len(), ck.names().len());
    assert!(root.names().iter().all(|n| n.starts_with("model.")));
    let e = PtCheckpoint::open_at(data("osum_tiny.pt"), &["optimizer"]).unwrap_err();
    assert!(e.to_string().contains("no key"), "{e}");
}

#[test]
fn views_offsets_shared_storages_and_ints() {
    let ck = PtCheckpoint::open(data("views.pt")).unwrap();
    assert!(ck.state_dict_path().is_empty());
    assert!(ck.skipped().is_empty(), "{:?}", ck.skipped());
    check_against_json(&ck, "views.pt");
    assert_eq!(ck.info("offset_view").unwrap().offset, 8);
    // Models load through the trait.
    let src: &dyn TensorSource = &ck;
    assert_eq!(src.shape("weight").unwrap(), &[2, 3]);
    assert_eq!(src.dtype("half").unwrap(), StoredDType::F16);
    // Two different views of one storage are not aliases.
    let (a, b) = (ck.info("shared_a").unwrap(), ck.info("shared_b").unwrap());
    assert_eq!(a.storage, b.storage);
    assert_eq!(ck.alias_of("shared_b"), None);
    // Integers are exact, including 2^40 and negatives, and a 0-dim tensor.
    assert_eq!(ck.int_values("ids").unwrap(), vec![3, -1, 1 << 40]);
    assert_eq!(ck.shape("step").unwrap(), &[] as &[usize]);
    assert_eq!(ck.int_values("step").unwrap(), vec![12345]);
    assert!(ck.int_values("weight").is_err());
    // A transposed view is refused by name, not read wrongly.
    let dev = cpu_device();
    match ck.tensor("transposed", &dev) {
        Err(WeightsError::WrongKind { name, msg, .. }) => {
            assert_eq!(name, "transposed");
            assert!(msg.contains("not contiguous"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        ck.tensor("nope", &dev),
        Err(WeightsError::Missing { .. })
    ));
    // The map is borrowed, not copied, for stored entries; torch aligns entries to 64 bytes.
    let b = ck.bytes("weight").unwrap();
    assert!(matches!(b, std::borrow::Cow::Borrowed(_)));
    assert_eq!(b.as_ptr() as usize % 64, 0);
}

#[test]
fn aliases_are_found_and_loaded_once() {
    let ck = PtCheckpoint::open(data("osum_tiny.pt")).unwrap();
    let emb = "llama_model.base_model.model.model.embed_tokens.weight";
    let head = "llama_model.base_model.model.lm_head.weight";
    // Tied embeddings: one storage under two keys; the sorted-first name is the original.
    assert_eq!(ck.alias_of(emb), Some(head));
    assert_eq!(
        ck.alias_of("module.encoder.after_norm.weight"),
        Some("encoder.after_norm.weight")
    );
    // The fused q/k rows share a storage at different offsets: not aliases.
    assert_eq!(
        ck.alias_of("encoder.encoders.0.self_attn.linear_k.weight"),
        None
    );
    let dev = cpu_device();
    let ts = ck
        .tensors(
            &[
                emb,
                head,
                "encoder.encoders.0.self_attn.linear_q.weight",
                "encoder.encoders.0.self_attn.linear_k.weight",
            ],
            &dev,
        )
        .unwrap();
    assert!(ts[0].same_storage(&ts[1]));
    assert!(!ts[2].same_storage(&ts[3]));
    assert_ne!(
        ts[2].to_host().unwrap().to_f64_vec(),
        ts[3].to_host().unwrap().to_f64_vec()
    );
}

#[test]
fn osum_mapping_sorts_peft_keys() {
    let ck = PtCheckpoint::open(data("osum_tiny.pt")).unwrap();
    let m = ck.osum_mapping().unwrap();
    let p = "llama_model.base_model.model.";
    let get = |c, n: &str| m.get(c, n).map(str::to_string);
    // Current PEFT: base_layer is the base weight.
    assert_eq!(
        get(Component::LlmBase, "model.layers.0.self_attn.q_proj.weight"),
        Some(format!(
            "{p}model.layers.0.self_attn.q_proj.base_layer.weight"
        ))
    );
    assert_eq!(
        get(Component::LlmBase, "model.layers.0.self_attn.q_proj.bias"),
        Some(format!(
            "{p}model.layers.0.self_attn.q_proj.base_layer.bias"
        ))
    );
    // Older PEFT: the plain weight next to the LoRA pair.
    assert_eq!(
        get(Component::LlmBase, "model.layers.1.self_attn.q_proj.weight"),
        Some(format!("{p}model.layers.1.self_attn.q_proj.weight"))
    );
    assert_eq!(
        get(Component::LoraA, "model.layers.1.mlp.down_proj"),
        Some(format!(
            "{p}model.layers.1.mlp.down_proj.lora_A.default.weight"
        ))
    );
    assert_eq!(
        get(Component::LoraB, "model.layers.0.self_attn.o_proj"),
        Some(format!(
            "{p}model.layers.0.self_attn.o_proj.lora_B.default.weight"
        ))
    );
    // up_proj has no LoRA (REFERENCE.md §7).
    assert_eq!(
        get(Component::LlmBase, "model.layers.0.mlp.up_proj.weight"),
        Some(format!("{p}model.layers.0.mlp.up_proj.weight"))
    );
    assert_eq!(get(Component::LoraA, "model.layers.0.mlp.up_proj"), None);
    assert_eq!(m.component(Component::LoraA).count(), 12);
    assert_eq!(m.component(Component::LoraB).count(), 12);
    assert_eq!(m.lora_adapters(), ["default"]);
    // Tied weights stay two entries (the model wants both names); loading dedupes them.
    assert!(get(Component::LlmBase, "lm_head.weight").is_some());
    assert!(get(Component::LlmBase, "model.embed_tokens.weight").is_some());
    // Encoder names are WeNet names; the `module.` alias collapses into one entry.
    assert_eq!(
        get(Component::Encoder, "encoder.after_norm.weight"),
        Some("encoder.after_norm.weight".into())
    );
    assert_eq!(m.component(Component::Encoder).count(), 4);
    assert_eq!(
        get(Component::Adapter, "speech_token_emded.weight"),
        Some("speech_token_emded.weight".into())
    );
    assert_eq!(m.component(Component::Adapter).count(), 4);
    assert_eq!(m.component(Component::Other).count(), 0);
    // Every raw key is reachable once, except the collapsed alias.
    assert_eq!(m.len(), ck.names().len() - 1);
    // Every LoRA A is [r, in] with r = 2 and has a B and a base weight.
    for (module, raw) in m.component(Component::LoraA) {
        assert_eq!(ck.shape(raw).unwrap()[0], 2, "{module}");
        assert!(m.get(Component::LoraB, module).is_some(), "{module}");
        let base = m
            .get(Component::LlmBase, &format!("{module}.weight"))
            .unwrap();
        assert_eq!(ck.shape(raw).unwrap()[1], ck.shape(base).unwrap()[1]);
    }
}

#[test]
fn malicious_pickles_are_refused_naming_the_global() {
    for (file, global) in [
        ("malicious_system.pt", "posix.system"),
        ("malicious_eval.pt", "builtins.eval"),
    ] {
        match PtCheckpoint::open(data(file)) {
            Err(e @ WeightsError::ForbiddenGlobal { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(global), "{msg}");
                assert!(msg.contains(file), "{msg}");
            }
            other => panic!("{file}: {other:?}"),
        }
    }
}

/// The entries of a zip, in order, uncompressed.
fn entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut b = Vec::new();
            f.read_to_end(&mut b).unwrap();
            (f.name().to_string(), b)
        })
        .collect()
}

fn write_zip(path: &Path, entries: &[(String, Vec<u8>)], method: zip::CompressionMethod) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opt = zip::write::SimpleFileOptions::default().compression_method(method);
    for (n, b) in entries {
        z.start_file(n.as_str(), opt).unwrap();
        z.write_all(b).unwrap();
    }
    z.finish().unwrap();
}

/// The error opening `views.pt` with one entry changed by `edit` (None: removed).
fn edited_err(edit_name: &str, edit: impl Fn(&[u8]) -> Option<Vec<u8>>) -> String {
    let mut es = entries(&data("views.pt"));
    es = es
        .into_iter()
        .filter_map(|(n, b)| {
            if n.ends_with(edit_name) {
                edit(&b).map(|b| (n, b))
            } else {
                Some((n, b))
            }
        })
        .collect();
    let (_dir, p) = tmp("edited.pt");
    write_zip(&p, &es, zip::CompressionMethod::Stored);
    open_err(&p)
}

fn open_err(p: &Path) -> String {
    PtCheckpoint::open(p).unwrap_err().to_string()
}

#[test]
fn deflated_entries_load_the_same() {
    let (_dir, p) = tmp("deflated.pt");
    write_zip(
        &p,
        &entries(&data("osum_tiny.pt")),
        zip::CompressionMethod::Deflated,
    );
    let ck = PtCheckpoint::open(&p).unwrap();
    check_against_json(&ck, "osum_tiny.pt");
}

#[test]
fn damaged_checkpoints_are_errors() {
    // A missing storage.
    let e = edited_err("data/0", |_| None);
    assert!(e.contains("data/0 is not in the zip"), "{e}");
    // A storage shorter than its element count.
    let e = edited_err("data/0", |b| Some(b[..b.len() - 4].to_vec()));
    assert!(e.contains("storage data/0 is"), "{e}");
    // An unknown opcode at the start of data.pkl.
    let e = edited_err("data.pkl", |b| {
        let mut b = b.to_vec();
        b[2] = 0xff;
        Some(b)
    });
    assert!(e.contains("opcode 0xff"), "{e}");
    // A string claiming 4 GB.
    let e = edited_err("data.pkl", |_| {
        Some(b"\x80\x02X\xff\xff\xff\xffabc".to_vec())
    });
    assert!(e.contains("length"), "{e}");
    // A truncated pickle.
    let e = edited_err("data.pkl", |b| Some(b[..b.len() / 2].to_vec()));
    assert!(e.contains("data.pkl"), "{e}");
    // Big-endian.
    let e = edited_err("byteorder", |_| Some(b"big".to_vec()));
    assert!(e.contains("little-endian"), "{e}");
    // No data.pkl, a zip that is something else.
    let e = edited_err("data.pkl", |_| None);
    assert!(e.contains("no data.pkl"), "{e}");
    // A bare pickle (legacy torch.save) and a non-zip.
    let (dir, p) = tmp("legacy.pt");
    std::fs::write(&p, b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.").unwrap();
    assert!(open_err(&p).contains("bare pickle"));
    std::fs::write(&p, b"hello").unwrap();
    assert!(open_err(&p).contains("not a zip"));
    assert!(PtCheckpoint::open(dir.path().join("absent.pt")).is_err());
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = std::fs::read(data("views.pt")).unwrap();
    let (_dir, p) = tmp("truncated.pt");
    for n in (0..bytes.len()).step_by(7) {
        std::fs::write(&p, &bytes[..n]).unwrap();
        assert!(PtCheckpoint::open(&p).is_err(), "{n} bytes opened");
    }
}

#[test]
fn flipped_bytes_never_panic() {
    // Whatever a flipped byte does (often nothing: zip padding, tensor data), opening and
    // loading must return, never panic.
    let bytes = std::fs::read(data("views.pt")).unwrap();
    let (_dir, p) = tmp("flipped.pt");
    let dev = cpu_device();
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        std::fs::write(&p, &b).unwrap();
        if let Ok(ck) = PtCheckpoint::open(&p) {
            for n in ck.names() {
                let _ = ck.tensor(n, &dev);
            }
        }
    }
}

/// A real checkpoint named by `OSUM_PT` (e.g. the released OSUM `infer.pt`): opens it, prints
/// how its keys sort and how long opening and loading took. Skipped when `OSUM_PT` is unset.
#[test]
fn real_checkpoint_from_env() {
    let Some(path) = std::env::var_os("OSUM_PT") else {
        eprintln!("skipped: set OSUM_PT to a torch.save checkpoint to read it");
        return;
    };
    let t0 = std::time::Instant::now();
    let ck = PtCheckpoint::open(&path).unwrap();
    let opened = t0.elapsed();
    let m = ck.osum_mapping().unwrap();
    for c in [
        Component::Encoder,
        Component::Adapter,
        Component::LlmBase,
        Component::LoraA,
        Component::LoraB,
        Component::Other,
    ] {
        let names: Vec<_> = m.component(c).map(|(n, _)| n).collect();
        eprintln!(
            "{c:?}: {} tensors, e.g. {:?}",
            names.len(),
            &names[..names.len().min(3)]
        );
    }
    let dev = cpu_device();
    let t1 = std::time::Instant::now();
    let mut bytes = 0usize;
    for n in ck.names() {
        if ck.alias_of(n).is_none() && ck.info(n).unwrap().is_contiguous() {
            if let Ok(t) = ck.tensor(n, &dev) {
                bytes += t.shape().iter().product::<usize>() * ck.dtype(n).unwrap().size_in_bytes();
            }
        }
    }
    let loaded = t1.elapsed();
    eprintln!(
        "{}: {} names, state dict at {:?}; open {opened:?}; loaded {:.1} MB in {loaded:?} ({:.2} GB/s)",
        ck.path().display(),
        ck.names().len(),
        ck.state_dict_path(),
        bytes as f64 / 1e6,
        bytes as f64 / 1e9 / loaded.as_secs_f64()
    );
}
