//! Zero-copy weights: tensors loaded from a weight file borrow its memory map (the data
//! pointer lies in the file's mapping), cannot be written, and are read in place by the kernels.

use half::bf16;
use osum::engine::{cpu_device, no_grad, DType, Tensor};
use osum::model::llm::random::MemSource;
use osum::model::llm::{Llm, LlmConfig};
use osum::model::weights::{PtCheckpoint, SafeTensors};
use std::path::{Path, PathBuf};

/// `VmRSS`, `RssAnon` and `RssFile` of this process in MB (from /proc/self/status).
fn rss_mb() -> (f64, f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
            / 1024.0
    };
    (kb("VmRSS:"), kb("RssAnon:"), kb("RssFile:"))
}

/// Memory of an openPangu-7B-shaped bf16 model (`OSUM_RSS_SAFETENSORS`: a safetensors file
/// with that shape and `OSUM_RSS_LAYERS` layers, default 2) after loading and after one decode
/// step. Hand-run: `OSUM_RSS_SAFETENSORS=/tmp/x.safetensors cargo test --release --test
/// weights_mmap -- --ignored --nocapture`.
#[test]
#[ignore]
fn rss_of_a_loaded_openpangu_shaped_model() {
    let Some(path) = std::env::var_os("OSUM_RSS_SAFETENSORS") else {
        eprintln!("skipped: set OSUM_RSS_SAFETENSORS");
        return;
    };
    let layers = std::env::var("OSUM_RSS_LAYERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let dev = cpu_device();
    let config = LlmConfig {
        layers,
        ..LlmConfig::openpangu_embedded_7b()
    };
    let show = |what: &str| {
        let (rss, anon, file) = rss_mb();
        eprintln!("{what}: VmRSS {rss:.0} MB, RssAnon {anon:.0} MB, RssFile {file:.0} MB");
    };
    show("start");
    let t0 = std::time::Instant::now();
    let src = SafeTensors::open(&path).unwrap();
    let llm = Llm::load(&src, config, &dev).unwrap();
    eprintln!("loaded in {:.2} s", t0.elapsed().as_secs_f64());
    show("after load");
    let ids = Tensor::from_vec(vec![1u32], &[1, 1], &dev).unwrap();
    let t1 = std::time::Instant::now();
    no_grad(|| llm.forward(&ids, None)).unwrap();
    eprintln!("one token in {:.2} s", t1.elapsed().as_secs_f64());
    show("after one forward");
}

/// The start, end and file offset of this process's mappings of `file` (from /proc/self/maps).
fn mappings_of(file: &Path) -> Vec<(usize, usize, usize)> {
    let file = file.canonicalize().unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter(|l| l.ends_with(file.to_str().unwrap()))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (a, b) = f[0].split_once('-').unwrap();
            let hex = |s| usize::from_str_radix(s, 16).unwrap();
            (hex(a), hex(b), hex(f[2]))
        })
        .collect()
}

/// Where `t`'s data lies in `file`: its byte offset, checked to be inside a mapping of the file.
fn file_offset_of(t: &Tensor, file: &Path) -> usize {
    let r = t.mapped_region().expect("the tensor borrows a map");
    let maps = mappings_of(file);
    let (start, _, off) = maps
        .iter()
        .find(|(a, b, _)| *a <= r.addr && r.addr + r.bytes <= *b)
        .unwrap_or_else(|| {
            panic!(
                "{r:?} is not inside a mapping of {}: {maps:?}",
                file.display()
            )
        });
    r.addr - start + off
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A safetensors bf16 weight and a PyTorch-zip bf16 weight: the tensor's data pointer lies
/// inside the process's mapping of the file, and the bytes there are the file's bytes.
#[test]
fn loaded_weights_point_into_the_file_map() {
    let dev = cpu_device();
    let st = data("llama_tiny/model_bf16.safetensors");
    let src = SafeTensors::open(&st).unwrap();
    let name = "model.layers.0.self_attn.q_proj.weight";
    let t = src.tensor(name, &dev).unwrap();
    let at = file_offset_of(&t, &st);
    let file = std::fs::read(&st).unwrap();
    let vals = t.to_vec::<bf16>().unwrap();
    let stored: Vec<bf16> = file[at..at + 2 * vals.len()]
        .chunks_exact(2)
        .map(|c| bf16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert_eq!(vals, stored);
    assert!(!t.mapped_region().unwrap().copied);

    let pt = data("osum_released/infer.pt");
    let ck = PtCheckpoint::open(&pt).unwrap();
    let t = ck.tensor("speech_llama_proj.weight", &dev).unwrap();
    let at = file_offset_of(&t, &pt);
    let file = std::fs::read(&pt).unwrap();
    let first = bf16::from_le_bytes([file[at], file[at + 1]]);
    assert_eq!(t.to_vec::<bf16>().unwrap()[0], first);
}

/// Mapped weights are read-only: writing into one is an error that says why, and leaves the
/// values alone; a copy is owned and writable.
#[test]
fn writes_into_mapped_weights_are_refused() {
    let dev = cpu_device();
    let src = SafeTensors::open(data("llama_tiny/model_bf16.safetensors")).unwrap();
    let t = src.tensor("model.norm.weight", &dev).unwrap();
    let before = t.to_vec::<bf16>().unwrap();
    let ones = Tensor::ones(&[4], DType::BF16, &dev).unwrap();
    let e = t.write_slice(0, 0, &ones).unwrap_err().to_string();
    assert!(e.contains("read-only memory-mapped"), "{e}");
    assert_eq!(t.to_vec::<bf16>().unwrap(), before);
    let owned = t.copy().unwrap();
    assert!(owned.mapped_region().is_none());
    owned.write_slice(0, 0, &ones).unwrap();
    assert_eq!(owned.to_vec::<bf16>().unwrap()[..4], [bf16::ONE; 4]);
}

/// A forward pass of a bf16 LLM loaded from safetensors reads every weight in place: none of
/// its mapped weights needed a private copy, and the logits equal those of the same weights
/// loaded into owned memory.
#[test]
fn an_llm_forward_reads_its_mapped_weights_in_place() {
    let dev = cpu_device();
    let config = LlmConfig::from_hf_file(data("llama_tiny/config.json")).unwrap();
    let src = SafeTensors::open(data("llama_tiny/model_bf16.safetensors")).unwrap();
    let llm = Llm::load(&src, config.clone(), &dev).unwrap();
    let ids = Tensor::from_vec(vec![1u32, 5, 7, 3], &[1, 4], &dev).unwrap();
    let logits = no_grad(|| llm.forward(&ids, None))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let mut weights = vec![llm.embedding_table().clone()];
    for b in &llm.blocks {
        let (q, k, v, o) = (&b.attn.q, &b.attn.k, &b.attn.v, &b.attn.o);
        for lin in [q, k, v, o, &b.mlp.gate, &b.mlp.up, &b.mlp.down] {
            weights.push(lin.weight().clone());
        }
    }
    for w in &weights {
        let r = w.mapped_region().expect("bf16 weights borrow the map");
        assert!(
            !r.copied,
            "a kernel copied a mapped weight of shape {:?}",
            w.shape()
        );
    }
    // The same weights in owned memory.
    let mut owned = MemSource::default();
    for name in src.names() {
        let t = src.tensor(name, &dev).unwrap().copy().unwrap();
        assert!(t.mapped_region().is_none());
        owned.tensors.insert(name.to_string(), t);
    }
    let llm2 = Llm::load(&owned, config, &dev).unwrap();
    let want = no_grad(|| llm2.forward(&ids, None))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(logits, want);
}
