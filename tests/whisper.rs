//! Whisper on the engine: random-weight tests (shapes, name tables, errors, KV-cache decoding)
//! and, when `osum setup` has put tiny.en under `osum::model::home()`, real-weight goldens.

use osum::engine::{cpu_device, no_grad, Device, Rng, Tensor};
use osum::model::whisper::random::random_weights;
use osum::model::whisper::{Convention, Suppress, Whisper, WhisperConfig, WhisperError};
use std::sync::Arc;

mod fixtures;

/// A tiny model: 2+2 layers, d 128 (2 heads of 64), 8 mel bins, short contexts.
fn small_config() -> WhisperConfig {
    WhisperConfig {
        n_mels: 8,
        n_audio_ctx: 20,
        d_model: 128,
        n_audio_head: 2,
        n_audio_layer: 2,
        ffn: 256,
        n_vocab: 50,
        n_text_ctx: 16,
        n_text_head: 2,
        n_text_layer: 2,
    }
}

fn dev() -> Arc<dyn Device> {
    cpu_device()
}

fn mel(c: &WhisperConfig, frames: usize, seed: u64) -> Tensor {
    Tensor::randn(
        &[1, c.n_mels, frames],
        0.0,
        1.0,
        &mut Rng::new(seed),
        &dev(),
    )
    .unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let (a, b) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn encoder_shapes_full_and_short_inputs() {
    let c = small_config();
    let w = random_weights(&c, Convention::OpenAi, 1, &dev()).unwrap();
    let m = Whisper::load(&w, &dev()).unwrap();
    assert_eq!(m.config, c, "sizes inferred from the shapes");
    no_grad(|| {
        for (frames, want) in [(40, 20), (13, 7), (1, 1)] {
            let out = m.encoder.forward(&mel(&c, frames, 2)).unwrap();
            assert_eq!(out.shape(), &[1, want, 128]);
        }
        // More frames than positions is an error, not a panic.
        let err = m.encoder.forward(&mel(&c, 42, 2)).unwrap_err();
        assert!(err.to_string().contains("positions"), "{err}");
        assert!(m
            .encoder
            .forward(&mel(&small_config_mels(9), 4, 2))
            .is_err());
    });
}

/// `forward_layers` exposes the stages of `forward` without changing it: the stem, one entry per
/// block, then `ln_post`, whose output equals `forward`'s exactly (same ops on the same values).
#[test]
fn encoder_layers_end_with_the_forward_output() {
    let c = small_config();
    let w = random_weights(&c, Convention::OpenAi, 5, &dev()).unwrap();
    let m = Whisper::load(&w, &dev()).unwrap();
    no_grad(|| {
        let x = mel(&c, 40, 4);
        let layers = m.encoder.forward_layers(&x).unwrap();
        assert_eq!(layers.len(), c.n_audio_layer + 2);
        for l in &layers {
            assert_eq!(l.shape(), &[1, 20, 128]);
        }
        let out = m.encoder.forward(&x).unwrap();
        assert_eq!(max_abs_diff(&layers[layers.len() - 1], &out), 0.0);
        // Each block changes the residual stream.
        for pair in layers.windows(2) {
            assert!(max_abs_diff(&pair[0], &pair[1]) > 0.0);
        }
        assert!(m.encoder.forward_layers(&mel(&c, 42, 2)).is_err());
    });
}

/// `forward_taps` sets the named layers side by side on the feature axis, in the order asked;
/// `[ln_post]` alone is `forward`; names and indices outside the encoder are errors.
#[test]
fn encoder_taps_concatenate_the_named_layers_in_order() {
    let c = small_config();
    let w = random_weights(&c, Convention::OpenAi, 5, &dev()).unwrap();
    let m = Whisper::load(&w, &dev()).unwrap();
    let last = c.n_audio_layer + 1;
    assert_eq!(m.encoder.layer_names().len(), last + 1);
    assert_eq!(m.encoder.layer_index("stem").unwrap(), 0);
    assert_eq!(m.encoder.layer_index("block1").unwrap(), 1);
    assert_eq!(m.encoder.layer_index("ln_post").unwrap(), last);
    let err = m.encoder.layer_index("block99").unwrap_err().to_string();
    assert!(err.contains("block99") && err.contains("ln_post"), "{err}");
    no_grad(|| {
        let x = mel(&c, 40, 4);
        let layers = m.encoder.forward_layers(&x).unwrap();
        let both = m.encoder.forward_taps(&x, &[last, 1]).unwrap();
        assert_eq!(both.shape(), &[1, 20, 256]);
        let halves = [
            both.narrow(2, 0, 128).unwrap(),
            both.narrow(2, 128, 128).unwrap(),
        ];
        assert_eq!(max_abs_diff(&halves[0], &layers[last]), 0.0);
        assert_eq!(max_abs_diff(&halves[1], &layers[1]), 0.0);
        // A middle block alone stops there.
        let mid = m.encoder.forward_taps(&x, &[1]).unwrap();
        assert_eq!(max_abs_diff(&mid, &layers[1]), 0.0);
        let out = m.encoder.forward_taps(&x, &[last]).unwrap();
        assert_eq!(max_abs_diff(&out, &m.encoder.forward(&x).unwrap()), 0.0);
        assert!(m.encoder.forward_taps(&x, &[]).is_err());
        assert!(m.encoder.forward_taps(&x, &[last + 1]).is_err());
    });
}

fn small_config_mels(n: usize) -> WhisperConfig {
    WhisperConfig {
        n_mels: n,
        ..small_config()
    }
}

/// Every convention's name table, including CT2's fused q,k,v and k,v blocks, yields the same
/// model: outputs equal to the OpenAI-named load of the same logical tensors (tolerance 0: the
/// same f32 values go through the same ops).
#[test]
fn every_convention_loads_the_same_model() {
    let c = small_config();
    let x = mel(&c, 40, 3);
    let tokens = Tensor::from_vec(vec![1u32, 5, 7], &[1, 3], &dev()).unwrap();
    let run = |conv: Convention| {
        let w = random_weights(&c, conv, 7, &dev()).unwrap();
        assert_eq!(Convention::detect(&w).unwrap(), conv);
        let m = Whisper::load(&w, &dev()).unwrap();
        no_grad(|| {
            let enc = m.encoder.forward(&x).unwrap();
            let logits = m
                .decoder
                .as_ref()
                .map(|d| d.forward(&enc, &tokens).unwrap());
            (enc, logits)
        })
    };
    let (enc0, logits0) = run(Convention::OpenAi);
    let logits0 = logits0.unwrap();
    assert_eq!(logits0.shape(), &[1, 3, 50]);
    for conv in [Convention::Hf, Convention::Ct2, Convention::Wenet] {
        let (enc, logits) = run(conv);
        assert_eq!(max_abs_diff(&enc, &enc0), 0.0, "{conv:?} encoder");
        match logits {
            Some(l) => assert_eq!(max_abs_diff(&l, &logits0), 0.0, "{conv:?} decoder"),
            None => assert_eq!(conv, Convention::Wenet, "only WeNet has no decoder"),
        }
    }
}

#[test]
fn missing_and_misshaped_tensors_are_named_errors() {
    let c = small_config();
    let mut w = random_weights(&c, Convention::Ct2, 1, &dev()).unwrap();
    let fused = "encoder/layer_1/self_attention/linear_0/weight";
    let good = w.remove(fused).unwrap();
    let err = Whisper::load_with(&w, Convention::Ct2, c, &dev())
        .err()
        .unwrap();
    assert!(
        matches!(&err, WhisperError::MissingTensor { name, .. } if name == fused),
        "{err}"
    );
    assert!(err.to_string().contains(fused));
    // A fused tensor with the wrong row count: expected 3·d rows.
    w.insert(fused.into(), good.narrow(0, 0, 256).unwrap());
    let err = Whisper::load_with(&w, Convention::Ct2, c, &dev())
        .err()
        .unwrap();
    match &err {
        WhisperError::BadShape {
            name,
            expected,
            found,
        } => {
            assert_eq!(
                (name.as_str(), expected.as_slice(), found.as_slice()),
                (fused, &[384, 128][..], &[256, 128][..])
            );
        }
        e => panic!("expected BadShape, got {e}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(fused) && msg.contains("[384, 128]") && msg.contains("[256, 128]"),
        "{msg}"
    );
    // Unknown names altogether.
    let empty = std::collections::HashMap::<String, Tensor>::new();
    assert!(matches!(
        Whisper::load(&empty, &dev()),
        Err(WhisperError::UnknownConvention)
    ));
}

/// Decoding one token at a time through the KV cache gives the logits of one causal pass over
/// the whole sequence (tolerance 1e-4: same math, different summation blocking).
#[test]
fn kv_cache_decode_equals_full_causal_decode() {
    let c = small_config();
    let w = random_weights(&c, Convention::Hf, 5, &dev()).unwrap();
    let m = Whisper::load(&w, &dev()).unwrap();
    let dec = m.decoder.as_ref().unwrap();
    let ids: Vec<u32> = vec![3, 17, 42, 8, 8, 1, 49];
    no_grad(|| {
        let enc = m.encoder.forward(&mel(&c, 30, 9)).unwrap();
        let all = Tensor::from_vec(ids.clone(), &[1, ids.len()], &dev()).unwrap();
        let full = dec.forward(&enc, &all).unwrap();
        let mut st = dec.start(&enc).unwrap();
        // A two-token prompt, then single tokens, as greedy decoding feeds them.
        let mut steps = vec![dec.step(&mut st, &all.narrow(1, 0, 2).unwrap()).unwrap()];
        for i in 2..ids.len() {
            steps.push(dec.step(&mut st, &all.narrow(1, i, 1).unwrap()).unwrap());
        }
        assert_eq!(st.len(), ids.len());
        let cached = Tensor::cat(&steps, 1).unwrap();
        let d = max_abs_diff(&cached, &full);
        assert!(d < 1e-4, "cached vs full logits differ by {d}");
        // Greedy decoding stops at the context limit and returns only new tokens.
        let out = dec
            .greedy(&enc, &[1, 2], 49, 100, &Default::default())
            .unwrap();
        assert!(out.len() <= c.n_text_ctx - 2);
        assert!(
            dec.greedy(&enc, &[60], 49, 3, &Default::default()).is_err(),
            "token outside the vocabulary"
        );
        // Suppressing the token greedy picks first makes it pick another.
        let first = dec
            .greedy(&enc, &[1, 2], 50, 1, &Default::default())
            .unwrap()[0];
        let s = Suppress {
            always: vec![],
            at_begin: vec![first],
        };
        let other = dec.greedy(&enc, &[1, 2], 50, 1, &s).unwrap()[0];
        assert_ne!(first, other);
    });
}

// ---- Real weights (tiny.en from `osum setup`); goldens from scripts/goldens/whisper_tiny_en.py.

const GOFORWARD: &str = "/usr/share/pocketsphinx/test/data/goforward.raw";

/// The tiny.en directory and goforward.raw, or `None` (with a printed reason) to skip.
fn real_inputs() -> Option<std::path::PathBuf> {
    let dir = osum::model::home().join("whisper-tiny.en");
    if !dir.join("model.bin").exists() {
        println!(
            "skipped: {} absent (run `osum setup`)",
            dir.join("model.bin").display()
        );
        return None;
    }
    if !std::path::Path::new(GOFORWARD).exists() {
        println!("skipped: {GOFORWARD} absent (apt-get install pocketsphinx-testdata)");
        return None;
    }
    Some(dir)
}

fn golden() -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/goldens/whisper_tiny_en.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Encoder output on 30 s-padded goforward.raw vs CTranslate2 4.8.5 (float32): a 6×16 slice
/// within 1e-3 abs, mean and std within 1e-4; the greedy tokens and text exactly.
#[test]
fn tiny_en_matches_ctranslate2_on_goforward() {
    use osum::model::audio::{load, log_mel, MelMode};
    use osum::model::whisper::transcribe::Transcriber;
    let Some(dir) = real_inputs() else { return };
    let g = golden();
    let t = Transcriber::open(&dir, &dev()).unwrap();
    let samples = load(GOFORWARD, None).unwrap();
    let (mel, frames) = log_mel(&samples, MelMode::Whisper);
    assert_eq!(frames, 3000);
    let mel = Tensor::from_vec(mel, &[1, 80, frames], &dev()).unwrap();
    let enc = no_grad(|| t.model.encoder.forward(&mel)).unwrap();
    assert_eq!(enc.shape(), &[1, 1500, 384]);
    let e = enc.to_vec::<f32>().unwrap();
    let n = e.len() as f64;
    let mean = e.iter().map(|&x| x as f64).sum::<f64>() / n;
    let std = (e.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!(
        (mean - g["enc_mean"].as_f64().unwrap()).abs() < 1e-4,
        "mean {mean}"
    );
    assert!(
        (std - g["enc_std"].as_f64().unwrap()).abs() < 1e-4,
        "std {std}"
    );
    let rows = g["enc_rows"].as_array().unwrap();
    let mut worst = 0f64;
    for (r, want) in rows.iter().zip(g["enc_slice"].as_array().unwrap()) {
        let r = r.as_u64().unwrap() as usize;
        for (c, w) in want.as_array().unwrap().iter().enumerate() {
            worst = worst.max((e[r * 384 + c] as f64 - w.as_f64().unwrap()).abs());
        }
    }
    println!("encoder vs CTranslate2: max |diff| {worst:.2e} over the slice, mean {mean:.5}, std {std:.5}");
    assert!(worst < 1e-3, "encoder slice differs by {worst}");

    let want: Vec<u32> = g["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(want, [1514, 2651, 838, 10700, 13]);
    let segs = t.transcribe(&samples).unwrap();
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].tokens, want);
    assert_eq!(segs[0].text.trim(), "Go forward 10 meters.");
}

fn osum_cmd(home: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_osum"));
    c.env("OSUM_HOME", home).env("OSUM_THREADS", "2");
    c
}

#[test]
fn transcribe_without_a_model_is_an_error_naming_the_path() {
    let home = fixtures::scratch_dir("whisper-empty-home");
    // A readable clip, so the missing model is the first problem (audio is checked first).
    let clip = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/goldens/mel_clip.wav");
    let out = osum_cmd(home.path())
        .args(["transcribe", clip])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("whisper-tiny.en/model.bin") && err.contains("osum setup"),
        "{err}"
    );
}

/// `osum transcribe` end to end on the real model (plain and --json).
#[test]
fn transcribe_cli_on_goforward() {
    let Some(dir) = real_inputs() else { return };
    let home = std::fs::canonicalize(dir.parent().unwrap()).unwrap();
    let out = osum_cmd(&home)
        .args(["transcribe", GOFORWARD])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Go forward 10 meters."
    );
    let out = osum_cmd(&home)
        .args(["transcribe", "--json", GOFORWARD])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tokens"], serde_json::json!([1514, 2651, 838, 10700, 13]));
    assert_eq!(v["segments"].as_array().unwrap().len(), 1);
}

/// The `cpu-bf16` device (bf16 operands in the packed matrix products) gives the same greedy
/// tokens on goforward as f32, and an encoder output close to f32's: bf16 keeps 8 significant
/// bits, so over all 576 000 outputs the largest difference is measured at 5.9e-2 (bound 0.1)
/// and the mean at 2.9e-3 (bound 5e-3). Skipped on CPUs without AVX512_BF16.
#[test]
fn tiny_en_on_cpu_bf16_keeps_the_goforward_tokens() {
    use osum::model::audio::{load, log_mel, MelMode};
    use osum::model::whisper::transcribe::Transcriber;
    let Some(dir) = real_inputs() else { return };
    let Ok(bf) = osum::engine::device_named("cpu-bf16") else {
        println!("skipped: this CPU has no AVX512_BF16");
        return;
    };
    let samples = load(GOFORWARD, None).unwrap();
    let (mel, frames) = log_mel(&samples, MelMode::Whisper);
    let mut outs = Vec::new();
    for dev in [dev(), bf.clone()] {
        let t = Transcriber::open(&dir, &dev).unwrap();
        let x = Tensor::from_vec(mel.clone(), &[1, 80, frames], &dev).unwrap();
        let enc = no_grad(|| t.model.encoder.forward(&x)).unwrap();
        outs.push(enc.to_vec::<f32>().unwrap());
        let segs = t.transcribe(&samples).unwrap();
        assert_eq!(
            segs[0].tokens,
            [1514, 2651, 838, 10700, 13],
            "device {}",
            dev.name()
        );
    }
    let worst = outs[0]
        .iter()
        .zip(&outs[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let mean = outs[0]
        .iter()
        .zip(&outs[1])
        .map(|(a, b)| (a - b).abs() as f64)
        .sum::<f64>()
        / outs[0].len() as f64;
    println!("encoder cpu-bf16 vs cpu: max |diff| {worst:.2e}, mean |diff| {mean:.2e}");
    assert!(worst < 0.1, "bf16 encoder differs by up to {worst}");
    assert!(mean < 5e-3, "bf16 encoder differs by {mean} on average");
}
