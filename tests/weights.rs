//! Weight readers on the real Whisper tiny.en `model.bin` (skipped with a message when `osum setup`
//! has not been run), and `osum setup`'s pieces without the network.

use osum::engine::{cpu_device, DType};
use osum::model::weights::{CtModel, StoredDType, TensorSource};
use std::path::PathBuf;

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
