//! The OSUM model from a released-layout checkpoint (`infer.pt`, REFERENCE §7): a tiny random
//! model in the exact key layout, written by real `torch.save`, with reference outputs from a
//! PyTorch implementation (`scripts/goldens/make_osum_released.py`; files in
//! `tests/data/osum_released/`). Checks that every tensor loads (and is used), that the speech
//! embeddings, the first-step logits and greedy tokens match the reference, that `ask` runs end
//! to end (library and CLI), and that missing, mis-shaped or unused tensors are errors naming them.

use osum::engine::{cpu_device, no_grad, Tensor};
use osum::model::llm::{generate_from_embeds, GenerationConfig};
use osum::model::osum::OsumModel;
use osum::model::preset::{LlmSource, Preset};
use serde_json::Value;

mod fixtures;
mod golden;
use golden::{floats, ids, max_abs_diff};
use std::path::{Path, PathBuf};
use std::process::Command;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// An LLM release folder (config.json + SentencePiece tokenizer.model) in a fresh scratch folder.
fn llm_dir() -> tempfile::TempDir {
    let dir = fixtures::scratch_dir("released");
    std::fs::copy(
        data("osum_released/llm/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    std::fs::copy(
        data("spm/unigram.model"),
        dir.path().join("tokenizer.model"),
    )
    .unwrap();
    dir
}

/// The committed preset with absolute paths, its LLM in a scratch folder that lives as long as the
/// returned guard.
fn preset() -> (Preset, tempfile::TempDir) {
    let path = data("osum_released/preset.json");
    let mut p = Preset::find(path.to_str().unwrap()).unwrap();
    let dir = llm_dir();
    p.checkpoint = Some(data("osum_released/infer.pt"));
    p.llm = LlmSource::HfDir(dir.path().to_path_buf());
    (p, dir)
}

fn golden() -> Value {
    let text = std::fs::read_to_string(data("osum_released/golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn open_err(p: Preset) -> String {
    match OsumModel::open(p, None, &cpu_device()) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

/// Speech embeddings and last-position logits within 1e-4 of the float32 PyTorch reference on the
/// same bf16 weights (measured: 4.2e-7 and 3.8e-6); greedy tokens exact.
#[test]
fn released_checkpoint_loads_and_matches_the_pytorch_reference() {
    let dev = cpu_device();
    let (p, _dir) = preset();
    let m = OsumModel::open(p, None, &dev).unwrap();
    assert!(m.trained);
    assert_eq!(m.whisper.config.n_audio_layer, 2);
    assert_eq!(m.text.llm.lora_parameters().len(), 2 * 6 * 2);
    let g = golden();

    let mel_shape: Vec<usize> = ids(&g["mel_shape"]).iter().map(|&x| x as usize).collect();
    let mel = Tensor::from_vec(floats(&g["mel"]), &mel_shape, &dev).unwrap();
    let speech = m.speech_embeddings_of_mel(&mel).unwrap();
    let want_shape: Vec<usize> = ids(&g["speech_shape"])
        .iter()
        .map(|&x| x as usize)
        .collect();
    assert_eq!(speech.shape(), want_shape.as_slice());
    let d = max_abs_diff(&speech.to_vec::<f32>().unwrap(), &floats(&g["speech"]));
    eprintln!("speech embeddings: max |diff| {d:.3e}");
    assert!(d < 1e-4, "speech embeddings differ by {d}");

    let (prefix, suffix) = (ids(&g["prefix"]), ids(&g["suffix"]));
    let llm = &m.text.llm;
    let embeds = no_grad(|| {
        Tensor::cat(
            &[
                llm.embed_ids(&prefix).unwrap(),
                speech.clone(),
                llm.embed_ids(&suffix).unwrap(),
            ],
            1,
        )
    })
    .unwrap();
    let logits = no_grad(|| llm.forward_embeds(&embeds, None)).unwrap();
    let t = logits.shape()[1];
    let last = logits.narrow(1, t - 1, 1).unwrap().to_vec::<f32>().unwrap();
    let d = max_abs_diff(&last, &floats(&g["last_logits"]));
    eprintln!("last-position logits: max |diff| {d:.3e}");
    assert!(d < 1e-4, "logits differ by {d}");

    let want = ids(&g["greedy"]);
    let cfg = GenerationConfig::greedy(want.len(), vec![]);
    let context: Vec<u32> = prefix.iter().chain(&suffix).copied().collect();
    let gen = no_grad(|| generate_from_embeds(llm, &embeds, &context, &cfg, &mut |_| {})).unwrap();
    assert_eq!(gen.tokens, want);
}

/// One second of a tone and noise.
fn clip() -> Vec<f32> {
    (0..16_000)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            0.3 * (2.0 * std::f32::consts::PI * 220.0 * t).sin()
                + 0.05 * ((i * 7919) % 97) as f32 / 97.0
        })
        .collect()
}

#[test]
fn ask_runs_end_to_end_on_the_released_layout() {
    let dev = cpu_device();
    let (p, _dir) = preset();
    let m = OsumModel::open(p, None, &dev).unwrap();
    let cfg = GenerationConfig::greedy(5, m.stop_ids());
    let mut streamed = String::new();
    let a = m
        .ask(&clip(), "Transcribe the audio.", &cfg, &mut |s| {
            streamed.push_str(s)
        })
        .unwrap();
    // 100 mel frames → 50 encoder positions → 13 adapter rows, plus speech BOS and EOS.
    assert_eq!(a.speech_positions, 15);
    assert!(!a.tokens.is_empty() && a.tokens.len() <= 5);
    assert_eq!(streamed, a.text);
}

#[test]
fn osum_ask_cli_runs_a_released_layout_preset() {
    let (p, dir) = preset();
    let file = dir.path().join("preset.json");
    std::fs::write(&file, serde_json::to_string_pretty(&p).unwrap()).unwrap();
    let wav = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/goldens/mel_clip.wav");
    let out = Command::new(env!("CARGO_BIN_EXE_osum"))
        .args([
            "ask",
            "--preset",
            file.to_str().unwrap(),
            "--max-new-tokens",
            "4",
            "--json",
        ])
        .arg(&wav)
        .arg("Transcribe the audio.")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["trained"], true);
    assert!(v["speech_positions"].as_u64().unwrap() > 2);
    assert!(v["tokens"].as_u64().unwrap() <= 4);
}

#[test]
fn missing_files_name_the_file_and_how_to_get_it() {
    let (mut p, dir) = preset();
    p.checkpoint = Some(dir.path().join("nope/infer.pt"));
    let e = open_err(p.clone());
    assert!(
        e.contains("nope/infer.pt")
            && e.contains("not found")
            && e.contains("make_osum_released.py"),
        "{e}"
    );
    p.checkpoint = Some(data("osum_released/infer.pt"));
    p.llm = LlmSource::HfDir(dir.path().join("no-llm"));
    let e = open_err(p);
    assert!(
        e.contains("no-llm/config.json") && e.contains("not found"),
        "{e}"
    );
    // The built-in presets say where their checkpoint comes from.
    let e = open_err(Preset::find("osum-pangu-7b").unwrap());
    assert!(
        e.contains("osum-pangu/infer.pt") && e.contains("ASLP-lab/OSUM-Pangu"),
        "{e}"
    );
}

#[test]
fn shape_mismatches_name_the_tensor_with_expected_and_found_shapes() {
    // Encoder FFN width.
    let (mut p, _dir) = preset();
    p.encoder_dims.as_mut().unwrap().ffn = 100;
    let e = open_err(p);
    assert!(
        e.contains("encoder.encoders.0.feed_forward.w_1.weight")
            && e.contains("[128, 64]")
            && e.contains("[100, 64]"),
        "{e}"
    );
    // Adapter FFN width.
    let (mut p, _dir) = preset();
    p.adapter.as_mut().unwrap().ffn = 97;
    let e = open_err(p);
    assert!(
        e.contains("speech_transformer.encoders.0.feed_forward.w_1.weight")
            && e.contains("[96, 64]")
            && e.contains("[97, 64]"),
        "{e}"
    );
    // LoRA rank.
    let (mut p, _dir) = preset();
    p.lora.as_mut().unwrap().rank = 8;
    let e = open_err(p);
    assert!(
        e.contains("lora_A.default.weight") && e.contains("[4, ") && e.contains("rank 8"),
        "{e}"
    );
}

#[test]
fn missing_and_unused_tensors_are_errors_naming_them() {
    // A third encoder block the checkpoint does not have.
    let (mut p, _dir) = preset();
    p.encoder_dims.as_mut().unwrap().layers = 3;
    let e = open_err(p);
    assert!(e.contains("encoder.encoders.2."), "{e}");
    // One block fewer than the checkpoint: the second block's tensors are left over.
    let (mut p, _dir) = preset();
    p.encoder_dims.as_mut().unwrap().layers = 1;
    let e = open_err(p);
    assert!(
        e.contains("not used") && e.contains("encoder.encoders.1.feed_forward.w_1.weight"),
        "{e}"
    );
    // LoRA on a module the preset does not target.
    let (mut p, _dir) = preset();
    p.lora
        .as_mut()
        .unwrap()
        .targets
        .retain(|t| t != "gate_proj");
    let e = open_err(p);
    assert!(e.contains("gate_proj") && e.contains("targets"), "{e}");
}
