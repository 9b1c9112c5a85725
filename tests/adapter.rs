//! The speech adapter (REFERENCE §4): goldens against a PyTorch reference
//! (`scripts/goldens/make_adapter_golden.py`), shapes and lengths of both variants, padded batches
//! against items run alone, gradients to every parameter, safetensors round trips and errors.

use osum::engine::{cpu_device, Device, Rng, Tensor};
use osum::model::adapter::positions::sinusoid_rows;
use osum::model::adapter::{
    save_safetensors, Adapter, AdapterConfig, AdapterError, AdapterVariant,
};
use osum::model::weights::SafeTensors;
use serde_json::Value;

mod fixtures;
mod golden;
use golden::{floats, max_abs_diff};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn dev() -> Arc<dyn Device> {
    cpu_device()
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/adapter")
        .join(name)
}

/// A small adapter: 16-wide input and transformer, 4 heads, 2 blocks, LLM width 12.
fn small(variant: AdapterVariant) -> AdapterConfig {
    AdapterConfig {
        variant,
        enc_dim: 16,
        dim: 16,
        heads: 4,
        ffn: 24,
        layers: 2,
        llm_dim: 12,
        max_positions: 64,
        n_speech_tokens: 6,
        conv_channels: Some(6),
        norm_eps: 1e-5,
        output_rms: None,
    }
}

fn noise(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0, &mut Rng::new(seed), &dev()).unwrap()
}

/// Rows `0..len` of item `i` of a `[B, T, C]` output.
fn item_rows(t: &Tensor, i: usize, len: usize) -> Vec<f32> {
    t.narrow(0, i, 1)
        .unwrap()
        .narrow(1, 0, len)
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
}

/// Run the golden `name`: same weights and batch as PyTorch, per-item valid rows within 1e-4.
fn check_golden(name: &str) {
    let text = std::fs::read_to_string(data(&format!("{name}.json"))).unwrap();
    let g: Value = serde_json::from_str(&text).unwrap();
    let config = AdapterConfig::from_json(&g["config"].to_string()).unwrap();
    let src = SafeTensors::open(data(&format!("{name}.safetensors"))).unwrap();
    let adapter = Adapter::load(&config, &src, "", &dev()).unwrap();
    let shape: Vec<usize> = g["input_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let x = Tensor::from_vec(floats(&g["input"]), &shape, &dev()).unwrap();
    let lengths: Vec<usize> = g["lengths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let out = adapter.forward(&x, &lengths).unwrap();
    let want_lens: Vec<usize> = g["out_lengths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(out.lengths, want_lens);
    let mut worst = 0.0f32;
    for (i, want) in g["outputs"].as_array().unwrap().iter().enumerate() {
        let got = item_rows(&out.embeddings, i, out.lengths[i]);
        worst = worst.max(max_abs_diff(&got, &floats(want)));
    }
    eprintln!("{name}: max |ours − PyTorch| = {worst:e}");
    assert!(worst < 1e-4, "{name}: max abs diff {worst}");
    assert_eq!(
        adapter.bos().unwrap().to_vec::<f32>().unwrap(),
        floats(&g["bos"])
    );
    assert_eq!(
        adapter.eos().unwrap().to_vec::<f32>().unwrap(),
        floats(&g["eos"])
    );
}

#[test]
fn released_matches_pytorch_golden() {
    check_golden("released");
}

#[test]
fn conv2d_paper_matches_pytorch_golden() {
    check_golden("conv2d");
}

#[test]
fn computed_positions_match_wenets_f32_buffer() {
    // The released golden carries PyTorch's `embed.pos_enc.pe` [1, 64, 16].
    let src = SafeTensors::open(data("released.safetensors")).unwrap();
    let pe = src
        .tensor("speech_transformer.embed.pos_enc.pe", &dev())
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let ours = sinusoid_rows(64, 16);
    let diff = max_abs_diff(&ours, &pe);
    assert!(diff <= 1e-6, "max diff {diff}");
}

#[test]
fn output_shapes_and_lengths_over_input_lengths() {
    let tiny = AdapterConfig::osum_tiny();
    // The paper variant with WeNet's C = dim would be a 14M-parameter Linear; 32 channels
    // keep the test quick with the same structure.
    let paper = AdapterConfig {
        conv_channels: Some(32),
        ..tiny.clone().with_variant(AdapterVariant::Conv2dPaper)
    };
    for config in [tiny, paper] {
        let adapter = Adapter::random(&config, 5, &dev())
            .unwrap()
            .frozen()
            .unwrap();
        for t in [1usize, 2, 3, 4, 5, 7, 100, 1500] {
            let x = noise(&[1, t, config.enc_dim], t as u64);
            let want = match config.variant {
                AdapterVariant::Released => Some(t.div_ceil(2).div_ceil(2)),
                AdapterVariant::Conv2dPaper => (t >= 7).then(|| ((t - 1) / 2 - 1) / 2),
            };
            match (adapter.forward(&x, &[t]), want) {
                (Ok(out), Some(n)) => {
                    assert_eq!(out.embeddings.shape(), &[1, n, config.llm_dim], "t = {t}");
                    assert_eq!(out.lengths, vec![n]);
                    let v = out.embeddings.to_vec::<f32>().unwrap();
                    assert!(v.iter().all(|x| x.is_finite()), "t = {t}");
                }
                (Err(AdapterError::Input(msg)), None) => {
                    assert!(msg.contains("too few"), "t = {t}: {msg}")
                }
                (got, want) => panic!("{:?} t = {t}: {want:?} vs {:?}", config.variant, got.err()),
            }
        }
    }
}

#[test]
fn padded_batch_equals_items_run_alone() {
    for (variant, lens) in [
        (AdapterVariant::Released, vec![37, 20, 5, 1]),
        (AdapterVariant::Conv2dPaper, vec![37, 20, 9, 7]),
    ] {
        let c = small(variant);
        let adapter = Adapter::random(&c, 11, &dev()).unwrap().frozen().unwrap();
        let t = lens[0];
        // Noise in the padding too: it must not reach any valid output.
        let x = noise(&[lens.len(), t, c.enc_dim], 3);
        let batch = adapter.forward(&x, &lens).unwrap();
        for (i, &l) in lens.iter().enumerate() {
            let alone_x = x.narrow(0, i, 1).unwrap().narrow(1, 0, l).unwrap();
            let alone = adapter.forward(&alone_x, &[l]).unwrap();
            let n = batch.lengths[i];
            assert_eq!(alone.lengths, vec![n]);
            assert_eq!(alone.embeddings.shape()[1], n, "{variant:?} item {i}");
            let diff = max_abs_diff(
                &item_rows(&batch.embeddings, i, n),
                &alone.embeddings.to_vec::<f32>().unwrap(),
            );
            assert!(diff < 1e-5, "{variant:?} item {i}: {diff}");
            // Rows past an item's length are zero.
            let rows = batch.embeddings.shape()[1];
            let tail = batch
                .embeddings
                .narrow(0, i, 1)
                .unwrap()
                .narrow(1, n, rows - n)
                .unwrap()
                .to_vec::<f32>()
                .unwrap();
            assert!(tail.iter().all(|&v| v == 0.0), "{variant:?} item {i}");
        }
    }
}

#[test]
fn items_wrapped_in_speech_bos_and_eos() {
    let c = small(AdapterVariant::Released);
    let a = Adapter::random(&c, 3, &dev()).unwrap().frozen().unwrap();
    let out = a.forward(&noise(&[2, 13, 16], 5), &[13, 6]).unwrap();
    let item = out.item(1).unwrap();
    assert_eq!(item.shape(), &[2, 12]);
    assert!(out.item(2).is_err());
    let span = a.wrap_speech(&item).unwrap();
    assert_eq!(span.shape(), &[4, 12]);
    let v = span.to_vec::<f32>().unwrap();
    assert_eq!(
        &v[..12],
        a.bos().unwrap().to_vec::<f32>().unwrap().as_slice()
    );
    assert_eq!(&v[12..36], item.to_vec::<f32>().unwrap().as_slice());
    assert_eq!(
        &v[36..],
        a.eos().unwrap().to_vec::<f32>().unwrap().as_slice()
    );
    assert!(a.wrap_speech(&noise(&[2, 11], 1)).is_err());
}

#[test]
fn an_empty_item_in_a_batch_gives_zero_rows() {
    let c = small(AdapterVariant::Released);
    let adapter = Adapter::random(&c, 2, &dev()).unwrap().frozen().unwrap();
    let out = adapter.forward(&noise(&[2, 9, 16], 1), &[9, 0]).unwrap();
    assert_eq!(out.lengths, vec![3, 0]);
    let v = out.embeddings.to_vec::<f32>().unwrap();
    assert!(v.iter().all(|x| x.is_finite()));
    assert!(v[3 * 12..].iter().all(|&x| x == 0.0));
}

/// Batch wrapping shares one BOS and one EOS view (so the speech-token table gets one gradient
/// per batch instead of one per clip) and must give the same spans and the same gradients as
/// wrapping each clip on its own.
#[test]
fn batch_wrapping_matches_wrapping_each_clip_in_values_and_gradients() {
    let c = small(AdapterVariant::Released);
    let a = Adapter::random(&c, 3, &dev()).unwrap();
    let out = a.forward(&noise(&[3, 13, 16], 5), &[13, 6, 9]).unwrap();
    let items: Vec<_> = (0..3).map(|b| out.item(b).unwrap()).collect();
    // Weight each clip's span differently, so the markers' gradients depend on every clip.
    let loss_of = |spans: &[osum::engine::Tensor]| {
        let mut loss: Option<osum::engine::Tensor> = None;
        for (k, span) in spans.iter().enumerate() {
            let term = span.scale(k as f32 + 1.0).unwrap().sum_all().unwrap();
            loss = Some(match loss {
                Some(l) => l.add(&term).unwrap(),
                None => term,
            });
        }
        loss.unwrap().backward().unwrap()
    };
    let together = a.wrap_speech_items(&items).unwrap();
    let alone: Vec<_> = items.iter().map(|r| a.wrap_speech(r).unwrap()).collect();
    for (t, s) in together.iter().zip(&alone) {
        assert_eq!(t.to_vec::<f32>().unwrap(), s.to_vec::<f32>().unwrap());
    }
    let (g_together, g_alone) = (loss_of(&together), loss_of(&alone));
    for (name, p) in a.named_parameters() {
        let (x, y) = (g_together.get(p).unwrap(), g_alone.get(p).unwrap());
        let (x, y) = (x.to_vec::<f32>().unwrap(), y.to_vec::<f32>().unwrap());
        let worst = x
            .iter()
            .zip(&y)
            .map(|(u, v)| (u - v).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-6, "{name}: gradients differ by {worst}");
    }
    assert!(a
        .wrap_speech_items(&[items[0].clone(), noise(&[2, 11], 1)])
        .is_err());
}

#[test]
fn gradients_reach_every_parameter() {
    for variant in [AdapterVariant::Released, AdapterVariant::Conv2dPaper] {
        let c = small(variant);
        let adapter = Adapter::random(&c, 7, &dev()).unwrap();
        let x = noise(&[2, 23, c.enc_dim], 9);
        let out = adapter.forward(&x, &[23, 15]).unwrap();
        let loss = out
            .embeddings
            .sum_all()
            .unwrap()
            .add(&adapter.bos().unwrap().sum_all().unwrap())
            .unwrap()
            .add(&adapter.eos().unwrap().sum_all().unwrap())
            .unwrap();
        let grads = loss.backward().unwrap();
        assert!(!adapter.named_parameters().is_empty());
        for (name, p) in adapter.named_parameters() {
            let g = grads
                .get(p)
                .unwrap_or_else(|| panic!("{variant:?}: no gradient for {name}"));
            assert_eq!(g.shape(), p.shape(), "{name}");
            let g = g.to_vec::<f32>().unwrap();
            assert!(g.iter().all(|v| v.is_finite()), "{variant:?} {name}");
            assert!(
                g.iter().any(|&v| v != 0.0),
                "{variant:?}: zero gradient for {name}"
            );
        }
    }
}

#[test]
fn safetensors_round_trip_with_and_without_prefix() {
    for variant in [AdapterVariant::Released, AdapterVariant::Conv2dPaper] {
        let c = small(variant);
        let a = Adapter::random(&c, 21, &dev()).unwrap();
        let tmp = fixtures::scratch_dir("adapter");
        let dir = tmp.path();
        let plain = dir.join("adapter.safetensors");
        save_safetensors(&plain, a.named_parameters()).unwrap();
        let prefixed: Vec<(String, Tensor)> = a
            .named_parameters()
            .iter()
            .map(|(n, t)| (format!("adapter.{n}"), t.clone()))
            .collect();
        let nested = dir.join("nested.safetensors");
        save_safetensors(&nested, &prefixed).unwrap();

        let x = noise(&[2, 30, 16], 4);
        let want = a.forward(&x, &[30, 17]).unwrap().embeddings;
        for (path, prefix) in [(&plain, ""), (&nested, "adapter.")] {
            let src = SafeTensors::open(path).unwrap();
            let b = Adapter::load(&c, &src, prefix, &dev()).unwrap();
            assert_eq!(b.named_parameters().len(), a.named_parameters().len());
            for ((na, ta), (nb, tb)) in a.named_parameters().iter().zip(b.named_parameters()) {
                assert_eq!(na, nb);
                assert_eq!(
                    ta.to_vec::<f32>().unwrap(),
                    tb.to_vec::<f32>().unwrap(),
                    "{na}"
                );
            }
            let got = b.forward(&x, &[30, 17]).unwrap().embeddings;
            assert_eq!(got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
        }
    }
}

#[test]
fn load_errors_name_the_tensor_or_file() {
    let c = small(AdapterVariant::Released);
    let a = Adapter::random(&c, 1, &dev()).unwrap();
    let tmp = fixtures::scratch_dir("adapter");
    let dir = tmp.path();
    // One tensor missing.
    let missing = dir.join("missing.safetensors");
    let params: Vec<(String, Tensor)> = a
        .named_parameters()
        .iter()
        .filter(|(n, _)| n != "speech_llama_proj.bias")
        .cloned()
        .collect();
    save_safetensors(&missing, &params).unwrap();
    let src = SafeTensors::open(&missing).unwrap();
    let msg = Adapter::load(&c, &src, "", &dev())
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("speech_llama_proj.bias") && msg.contains("missing.safetensors"),
        "{msg}"
    );
    // A config that does not fit the file: the tensor, expected and found shapes are named.
    let full = dir.join("full.safetensors");
    save_safetensors(&full, a.named_parameters()).unwrap();
    let src = SafeTensors::open(&full).unwrap();
    let wider = AdapterConfig {
        ffn: 32,
        ..c.clone()
    };
    let msg = Adapter::load(&wider, &src, "", &dev())
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("feed_forward.w_1.weight") && msg.contains("[32, 16]"),
        "{msg}"
    );
    // A position buffer of the wrong width.
    let with_pe = dir.join("pe.safetensors");
    let mut params_pe = a.named_parameters().to_vec();
    params_pe.push((
        "speech_transformer.embed.pos_enc.pe".into(),
        noise(&[1, 10, 8], 1),
    ));
    save_safetensors(&with_pe, &params_pe).unwrap();
    let src_pe = SafeTensors::open(&with_pe).unwrap();
    let msg = Adapter::load(&c, &src_pe, "", &dev())
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("pos_enc.pe") && msg.contains("[1, 10, 8]"),
        "{msg}"
    );
    // The other variant's names are absent.
    let paper = small(AdapterVariant::Conv2dPaper);
    assert!(Adapter::load(&paper, &src, "", &dev()).is_err());
    // Duplicate names are refused on save.
    let twice = vec![params[0].clone(), params[0].clone()];
    assert!(save_safetensors(dir.join("twice.safetensors"), &twice).is_err());
}

#[test]
fn a_short_checkpoint_position_table_bounds_the_input() {
    let c = small(AdapterVariant::Released);
    let a = Adapter::random(&c, 1, &dev()).unwrap();
    let tmp = fixtures::scratch_dir("adapter");
    let dir = tmp.path();
    let path = dir.join("pe.safetensors");
    let mut params = a.named_parameters().to_vec();
    let rows = osum::model::adapter::positions::sinusoid_rows(10, 16);
    params.push((
        "speech_transformer.embed.pos_enc.pe".into(),
        Tensor::from_vec(rows, &[1, 10, 16], &dev()).unwrap(),
    ));
    save_safetensors(&path, &params).unwrap();
    let src = SafeTensors::open(&path).unwrap();
    let b = Adapter::load(&c, &src, "", &dev()).unwrap();
    // 40 frames → 10 positions: the stored table, same as computing it.
    let x = noise(&[1, 40, 16], 3);
    let got = b
        .forward(&x, &[40])
        .unwrap()
        .embeddings
        .to_vec::<f32>()
        .unwrap();
    let want = a
        .forward(&x, &[40])
        .unwrap()
        .embeddings
        .to_vec::<f32>()
        .unwrap();
    assert!(max_abs_diff(&got, &want) < 1e-6);
    let msg = b
        .forward(&noise(&[1, 41, 16], 3), &[41])
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("11 downsampled positions exceed the 10"),
        "{msg}"
    );
}

#[test]
fn bad_inputs_are_refused_with_clear_errors() {
    let c = small(AdapterVariant::Released);
    let a = Adapter::random(&c, 1, &dev()).unwrap().frozen().unwrap();
    let cases: Vec<(Tensor, Vec<usize>, &str)> = vec![
        (
            noise(&[1, 8, 15], 1),
            vec![8],
            "expected f32 [batch, frames, 16]",
        ),
        (noise(&[8, 16], 1), vec![8], "expected"),
        (noise(&[2, 8, 16], 1), vec![8], "1 lengths for a batch of 2"),
        (noise(&[1, 8, 16], 1), vec![9], "exceeds"),
        (noise(&[0, 8, 16], 1), vec![], "empty batch"),
        (noise(&[1, 0, 16], 1), vec![0], "too few"),
        // 64 positions at most: 257 frames → 65.
        (noise(&[1, 257, 16], 1), vec![257], "max_positions"),
    ];
    for (x, lens, want) in cases {
        let msg = a.forward(&x, &lens).err().unwrap().to_string();
        assert!(msg.contains(want), "{msg} (wanted {want:?})");
    }
    assert_eq!(
        a.forward(&noise(&[1, 256, 16], 1), &[256]).unwrap().lengths,
        vec![64]
    );
}

#[test]
fn frozen_adapter_records_no_gradients_and_trainable_shares_storage() {
    let c = small(AdapterVariant::Released);
    let a = Adapter::random(&c, 1, &dev()).unwrap();
    assert!(a.parameters().iter().all(|p| p.is_variable()));
    let f = a.frozen().unwrap();
    assert!(f.parameters().iter().all(|p| !p.is_variable()));
    let out = f.forward(&noise(&[1, 8, 16], 2), &[8]).unwrap();
    assert!(!out.embeddings.tracks_grad());
    let t = f.trainable().unwrap();
    assert!(t.parameters().iter().all(|p| p.is_variable()));
}
