//! The bad-input matrix (issue 8): the `osum` binary handed broken or hostile files and
//! arguments. Each case asserts the exit code (1: the input is at fault; 2: the command line is),
//! that stderr names the problem, and that nothing panicked (a panic would be exit code 3 and an
//! "internal error" line from the binary's panic hook).
//!
//! Real-model cases (Whisper tiny.en, SmolLM2) need `osum setup` and are skipped with a notice
//! otherwise; the rest use the committed test model files or a small model written here.

mod fixtures;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn osum(args: &[&str]) -> Output {
    osum_env(args, &[])
}

fn osum_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_osum"));
    cmd.args(args)
        .current_dir(ROOT)
        .env_remove("OSUM_PROFILE")
        .env("RUST_BACKTRACE", "1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run osum")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code `code`, and stderr holds every one of `names` (case-insensitive) and no panic.
#[track_caller]
fn assert_refused(o: &Output, code: i32, names: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    let low = err.to_lowercase();
    for n in names {
        assert!(low.contains(&n.to_lowercase()), "{n:?} not in: {err}");
    }
    assert!(
        !low.contains("panicked") && !low.contains("internal error"),
        "{err}"
    );
    // One message, not a cascade.
    assert_eq!(err.matches("error:").count(), 1, "{err}");
}

/// A fresh scratch folder for one test, removed when the guard drops.
fn scratch(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = fixtures::scratch_dir(&format!("bad-input-{name}"));
    let d = dir.path().to_path_buf();
    (dir, d)
}

/// The installed Whisper tiny.en folder, or `None` with a notice.
fn whisper_dir() -> Option<PathBuf> {
    let d = Path::new(ROOT).join("models/whisper-tiny.en");
    if d.join("model.bin").exists() {
        Some(d)
    } else {
        eprintln!("skipped: {} absent (run `osum setup`)", d.display());
        None
    }
}

// ---------------------------------------------------------------------------------------------
// WAV

/// A canonical 44-byte-header WAV: format tag, channels, rate, bits, the data length the
/// header claims, then `data` as given (which may disagree with the claim).
fn wav(tag: u16, channels: u16, rate: u32, bits: u16, claimed: u32, data: &[u8]) -> Vec<u8> {
    let align = channels.wrapping_mul(bits / 8);
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&tag.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&rate.wrapping_mul(align as u32).to_le_bytes());
    b.extend_from_slice(&align.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&claimed.to_le_bytes());
    b.extend_from_slice(data);
    b
}

/// A 16 kHz mono 16-bit WAV of `samples`.
fn pcm16(samples: &[i16]) -> Vec<u8> {
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    wav(1, 1, 16000, 16, data.len() as u32, &data)
}

fn transcribe(dir: &Path, name: &str, bytes: &[u8], extra: &[&str]) -> Output {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    let mut args = vec!["transcribe", p.to_str().unwrap()];
    args.extend_from_slice(extra);
    osum(&args)
}

#[test]
fn malformed_wav_files_are_refused_naming_the_file_and_the_fault() {
    let (_dir, d) = scratch("wav");
    let ok = pcm16(&[0; 1600]);
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("empty.wav", vec![], &["empty.wav", "empty file"]),
        (
            "header.wav",
            ok[..20].to_vec(),
            &["header.wav", "truncated header"],
        ),
        (
            "data.wav",
            ok[..44 + 100].to_vec(),
            &["data.wav", "claims 3200 bytes", "has only 144"],
        ),
        (
            "zero_channels.wav",
            wav(1, 0, 16000, 16, 4, &[0; 4]),
            &["zero_channels.wav", "channel"],
        ),
        (
            "zero_rate.wav",
            wav(1, 1, 0, 16, 4, &[0; 4]),
            &["zero_rate.wav", "sample rate 0 Hz"],
        ),
        (
            "absurd_rate.wav",
            wav(1, 1, 2_000_000_000, 16, 4, &[0; 4]),
            &["absurd_rate.wav", "2000000000 Hz", "outside"],
        ),
        (
            "mp3_tag.wav",
            wav(0x55, 1, 16000, 16, 4, &[0; 4]),
            &["mp3_tag.wav", "format tag"],
        ),
        (
            "four_gb.wav",
            wav(1, 1, 16000, 16, 0xFFFF_FFF0, &[0; 64]),
            &["four_gb.wav", "claims 4294967280 bytes"],
        ),
        (
            "noise.bin",
            (0..3000u32).map(|i| (i * 7919 % 251) as u8).collect(),
            &["noise.bin", "unknown audio format"],
        ),
        ("odd.raw", vec![1, 2, 3], &["odd.raw", "3 bytes"]),
    ];
    // The audio is checked before the model is loaded, so no weights are needed.
    for (name, bytes, names) in cases {
        let o = transcribe(&d, name, &bytes, &["--model", "/nonexistent-model"]);
        assert_refused(&o, 1, names);
    }
}

#[test]
fn silent_and_very_short_audio_transcribe_to_valid_json() {
    let Some(_) = whisper_dir() else { return };
    let (_dir, d) = scratch("short");
    for (name, n) in [("silence.wav", 16000), ("50ms.wav", 800)] {
        let o = transcribe(&d, name, &pcm16(&vec![0; n]), &["--json"]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
        assert_eq!(v["segments"].as_array().map(Vec::len), Some(1), "{v}");
        let end = v["segments"][0]["end"].as_f64().unwrap();
        assert!((end - n as f64 / 16000.0).abs() < 1e-6, "{v}");
    }
}

/// Peak resident memory (VmHWM, bytes) of a child, sampled until it exits.
fn run_measuring_peak(args: &[&str]) -> (Output, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_osum"))
        .args(args)
        .current_dir(ROOT)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(s) = std::fs::read_to_string(&status) {
            if let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kb * 1024);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), peak)
}

/// Long audio goes through in 30 s windows read from the file one at a time: 10 minutes (20
/// windows; 2 hours is measured by hand, see the issue note) need no more memory than 1 minute
/// beyond a 16 MiB allowance, while the samples alone would be 38 MB as f32.
#[test]
fn ten_minutes_of_audio_run_in_windows_within_the_memory_of_one_minute() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let Some(_) = whisper_dir() else { return };
    let (_dir, d) = scratch("long");
    let peak = |secs: usize| {
        // Quiet noise: the decoder sees no speech and stops early in each window.
        let s: Vec<i16> = (0..secs * 16000)
            .map(|i| ((i as u32).wrapping_mul(2654435761) >> 28) as i16 - 8)
            .collect();
        let p = d.join(format!("{secs}s.wav"));
        std::fs::write(&p, pcm16(&s)).unwrap();
        let (o, peak) = run_measuring_peak(&["transcribe", "--json", p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let segs = v["segments"].as_array().unwrap();
        let end = segs.last().unwrap()["end"].as_f64().unwrap();
        assert!((end - secs as f64).abs() < 1e-3, "{end}");
        assert!(segs.len() >= secs / 30, "{}", segs.len());
        peak
    };
    let (short, long) = (peak(60), peak(600));
    eprintln!("peak RSS: 1 min {short} B, 10 min {long} B");
    assert!(
        long < short + (16 << 20),
        "1 min {short} B, 10 min {long} B"
    );
}

// ---------------------------------------------------------------------------------------------
// CTranslate2 (`osum transcribe --model DIR`)

/// A copy of the Whisper folder whose `model.bin` is `edit(original bytes)`.
fn whisper_with(d: &Path, name: &str, edit: impl Fn(&[u8]) -> Vec<u8>) -> PathBuf {
    let src = whisper_dir().unwrap();
    let dst = d.join(name);
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["tokenizer.json", "config.json"] {
        if src.join(f).exists() {
            std::fs::copy(src.join(f), dst.join(f)).unwrap();
        }
    }
    let bytes = std::fs::read(src.join("model.bin")).unwrap();
    std::fs::write(dst.join("model.bin"), edit(&bytes)).unwrap();
    dst
}

#[test]
fn broken_ctranslate2_models_are_refused_naming_the_fault() {
    let Some(_) = whisper_dir() else { return };
    let (_dir, d) = scratch("ct2");
    let wav = d.join("a.wav");
    std::fs::write(&wav, pcm16(&[0; 1600])).unwrap();
    let set_u32 = |at: usize, v: u32| {
        move |b: &[u8]| {
            let mut b = b.to_vec();
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            b
        }
    };
    // model.bin: u32 version, u16-prefixed spec name "WhisperSpec\0" (2 + 12 bytes), u32 spec
    // revision, u32 variable count (REFERENCE.md §8).
    let cases: Vec<(&str, PathBuf, &[&str])> = vec![
        (
            "truncated",
            whisper_with(&d, "truncated", |b| b[..b.len() / 2].to_vec()),
            &["model.bin", "truncated"],
        ),
        (
            "header",
            whisper_with(&d, "header", |b| b[..10].to_vec()),
            &["model.bin", "malformed"],
        ),
        (
            "version",
            whisper_with(&d, "version", set_u32(0, 99)),
            &["model.bin", "version 99"],
        ),
        (
            "count",
            whisper_with(&d, "count", set_u32(22, u32::MAX)),
            &["model.bin", "4294967295"],
        ),
    ];
    for (what, dir, names) in cases {
        let o = osum(&[
            "transcribe",
            "--model",
            dir.to_str().unwrap(),
            wav.to_str().unwrap(),
        ]);
        eprintln!("{what}: {}", stderr(&o));
        assert_refused(&o, 1, names);
    }
}

// ---------------------------------------------------------------------------------------------
// A small LLM folder (safetensors + SentencePiece) for `osum chat`

/// A folder with the 2-layer test Llama (`tests/data/llama_tiny`'s shape, 128 positions) with
/// seeded random weights for the committed 1000-piece SentencePiece tokenizer, and a preset
/// pointing at it. Returns the preset path.
fn tiny_llm(d: &Path) -> PathBuf {
    let llm = fixtures::tiny_llm_folder(d);
    let preset = serde_json::json!({
        "name": "tiny", "description": "the 2-layer test Llama",
        "llm": {"hf_dir": llm}, "template": "osum-pangu",
        "generation": {"max_new_tokens": 4}
    });
    let p = d.join("preset.json");
    std::fs::write(&p, preset.to_string()).unwrap();
    p
}

/// The safetensors header (JSON) and data of `path`.
fn split_safetensors(path: &Path) -> (serde_json::Map<String, serde_json::Value>, Vec<u8>) {
    let b = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let h = serde_json::from_slice(&b[8..8 + n]).unwrap();
    (h, b[8 + n..].to_vec())
}

fn join_safetensors(h: &serde_json::Map<String, serde_json::Value>, data: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(h).unwrap();
    let mut b = (json.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(&json);
    b.extend_from_slice(data);
    b
}

fn chat(preset: &Path, text: &str) -> Output {
    osum(&["chat", "--preset", preset.to_str().unwrap(), text])
}

#[test]
fn the_tiny_llm_fixture_answers() {
    let (_dir, d) = scratch("llm_ok");
    let o = chat(&tiny_llm(&d), "hello there");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn broken_safetensors_are_refused_naming_the_tensor_or_offset() {
    let (_dir, d) = scratch("safetensors");
    let preset = tiny_llm(&d);
    let file = d.join("llm/model.safetensors");
    let good = std::fs::read(&file).unwrap();
    let (h, data) = split_safetensors(&file);
    let edit = |f: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>)| {
        let mut h = h.clone();
        f(&mut h);
        join_safetensors(&h, &data)
    };
    const EMB: &str = "model.embed_tokens.weight";
    let offsets = |h: &serde_json::Map<String, serde_json::Value>, n: &str| -> (u64, u64) {
        let o = &h[n]["data_offsets"];
        (o[0].as_u64().unwrap(), o[1].as_u64().unwrap())
    };
    let (e0, e1) = offsets(&h, EMB);
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "truncated",
            good[..good.len() - 100].to_vec(),
            vec!["model.safetensors"],
        ),
        (
            "header length past the end",
            {
                let mut b = good.clone();
                b[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
                b
            },
            vec!["model.safetensors", "header"],
        ),
        (
            "offset past the end",
            edit(&|h| h[EMB]["data_offsets"] = serde_json::json!([e0, e1 + (1 << 30)])),
            vec!["model.safetensors"],
        ),
        (
            "overlapping offsets",
            edit(&|h| {
                let (a, b) = offsets(h, "lm_head.weight");
                h["lm_head.weight"]["data_offsets"] = serde_json::json!([a + 4, b + 4]);
            }),
            vec!["model.safetensors"],
        ),
        (
            "dtype disagrees with the byte count",
            edit(&|h| h[EMB]["dtype"] = "F16".into()),
            vec!["model.safetensors", EMB],
        ),
        (
            "missing tensor",
            edit(&|h| {
                h.remove(EMB);
            }),
            vec![EMB],
        ),
        (
            "wrong shape",
            edit(&|h| h[EMB]["shape"] = serde_json::json!([500, 128])),
            vec![EMB, "500, 128"],
        ),
    ];
    for (what, bytes, names) in cases {
        std::fs::write(&file, bytes).unwrap();
        let o = chat(&preset, "hello");
        eprintln!("{what}: {}", stderr(&o));
        assert_refused(&o, 1, &names);
    }
}

#[test]
fn control_characters_are_tokenized_and_invalid_utf8_is_a_usage_error() {
    let (_dir, d) = scratch("tokenizer");
    let preset = tiny_llm(&d);
    // Control characters are ordinary (unknown) input to the tokenizer, not a crash (NUL
    // cannot be passed in an argument at all).
    let o = chat(&preset, "a\u{1}b\u{1b}[31mc\u{7}d\u{7f}\u{85}e\u{200b}");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Arguments are text: bytes that are not UTF-8 are refused by the argument parser.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bad = std::ffi::OsStr::from_bytes(b"a\xff\xfeb");
        let o = Command::new(env!("CARGO_BIN_EXE_osum"))
            .args([
                "chat".as_ref(),
                "--preset".as_ref(),
                preset.as_os_str(),
                bad,
            ])
            .output()
            .unwrap();
        assert_refused(&o, 2, &["invalid utf-8"]);
    }
}

/// Policy: a prompt that does not fit the model's context with the new tokens is refused
/// before any compute, never silently truncated (truncating an instruction changes its meaning).
#[test]
fn a_prompt_longer_than_the_context_is_refused() {
    let (_dir, d) = scratch("context");
    let preset = tiny_llm(&d);
    let o = chat(&preset, &"hello world ".repeat(200));
    assert_refused(&o, 1, &["prompt", "exceeds", "128 positions"]);
}

#[test]
fn a_tokenizer_larger_than_the_vocabulary_is_refused_at_load() {
    let (_dir, d) = scratch("vocab");
    let preset = tiny_llm(&d);
    let cfg_path = d.join("llm/config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["vocab_size"] = 300.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let o = chat(&preset, "hello");
    assert_refused(&o, 1, &["tokenizer", "1000", "300"]);
}

// ---------------------------------------------------------------------------------------------
// NaN / Inf weights

#[test]
fn check_weights_names_a_non_finite_tensor() {
    let (_dir, d) = scratch("nan");
    let preset = tiny_llm(&d);
    let file = d.join("llm/model.safetensors");
    let (h, mut data) = split_safetensors(&file);
    let name = "model.layers.1.mlp.up_proj.weight";
    let at = h[name]["data_offsets"][0].as_u64().unwrap() as usize + 4 * 17;
    data[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&file, join_safetensors(&h, &data)).unwrap();
    let p = preset.to_str().unwrap();
    let o = osum(&["chat", "--check-weights", "--preset", p, "hello"]);
    assert_refused(&o, 1, &[name, "NaN", "element 17"]);
    let mut data2 = data.clone();
    data2[at..at + 4].copy_from_slice(&f32::NEG_INFINITY.to_le_bytes());
    std::fs::write(&file, join_safetensors(&h, &data2)).unwrap();
    let o = osum(&["--check-weights", "chat", "--preset", p, "hello"]);
    assert_refused(&o, 1, &[name, "-inf"]);
}

// ---------------------------------------------------------------------------------------------
// GGUF (`llm: {gguf: FILE}`)

fn gguf_preset(d: &Path, bytes: &[u8]) -> PathBuf {
    let f = d.join("m.gguf");
    std::fs::write(&f, bytes).unwrap();
    let preset = serde_json::json!({
        "name": "g", "description": "a broken GGUF",
        "llm": {"gguf": f}, "template": "smollm2",
        "generation": {"max_new_tokens": 4}
    });
    let p = d.join("preset.json");
    std::fs::write(&p, preset.to_string()).unwrap();
    p
}

#[test]
fn broken_gguf_files_are_refused_naming_the_fault() {
    let (_dir, d) = scratch("gguf");
    // GGUF: magic, u32 version, u64 tensor count, u64 metadata count, then metadata.
    let header = |magic: &[u8], version: u32, tensors: u64, kvs: u64| {
        let mut b = magic.to_vec();
        b.extend_from_slice(&version.to_le_bytes());
        b.extend_from_slice(&tensors.to_le_bytes());
        b.extend_from_slice(&kvs.to_le_bytes());
        b
    };
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("truncated", b"GGUF\x03\x00".to_vec(), &["m.gguf"]),
        ("bad magic", header(b"GGUX", 3, 0, 0), &["m.gguf", "magic"]),
        (
            "bad version",
            header(b"GGUF", 77, 0, 0),
            &["m.gguf", "version 77"],
        ),
        (
            "absurd tensor count",
            header(b"GGUF", 3, u64::MAX, 0),
            &["m.gguf", "18446744073709551615"],
        ),
        (
            "absurd metadata count",
            header(b"GGUF", 3, 0, 1 << 60),
            &["m.gguf", "1152921504606846976"],
        ),
    ];
    for (what, bytes, names) in cases {
        let o = chat(&gguf_preset(&d, &bytes), "hello");
        eprintln!("{what}: {}", stderr(&o));
        assert_refused(&o, 1, names);
    }
}

// ---------------------------------------------------------------------------------------------
// PyTorch zip (`checkpoint: infer.pt` in a released-model preset)

/// The committed tiny released-layout preset (tests/data/osum_released) with `infer.pt`
/// replaced by `bytes`; returns (model home, preset path).
fn released_with(d: &Path, bytes: &[u8]) -> (PathBuf, PathBuf) {
    let src = Path::new(ROOT).join("tests/data/osum_released");
    std::fs::create_dir_all(d.join("llm")).unwrap();
    std::fs::copy(src.join("llm/config.json"), d.join("llm/config.json")).unwrap();
    std::fs::write(d.join("infer.pt"), bytes).unwrap();
    (d.to_path_buf(), src.join("preset.json"))
}

fn ask_released(home: &Path, preset: &Path, wav: &Path) -> Output {
    osum_env(
        &[
            "ask",
            "--preset",
            preset.to_str().unwrap(),
            wav.to_str().unwrap(),
            "Transcribe the audio.",
        ],
        &[("OSUM_HOME", home.to_str().unwrap())],
    )
}

#[test]
fn hostile_and_broken_pytorch_checkpoints_are_refused() {
    let (_dir, d) = scratch("pytorch");
    let wav = d.join("a.wav");
    std::fs::write(&wav, pcm16(&[0; 1600])).unwrap();
    let pt = Path::new(ROOT).join("tests/data/pt");
    let good = std::fs::read(Path::new(ROOT).join("tests/data/osum_released/infer.pt")).unwrap();
    // A zip whose record of one storage is gone: rebuild the archive without `data/0`.
    let missing_storage = {
        let mut src = zip::ZipArchive::new(std::io::Cursor::new(good.clone())).unwrap();
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for i in 0..src.len() {
            let mut f = src.by_index(i).unwrap();
            let name = f.name().to_string();
            if name.ends_with("/data/0") {
                continue;
            }
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut buf).unwrap();
            out.start_file(name, opts).unwrap();
            std::io::Write::write_all(&mut out, &buf).unwrap();
        }
        out.finish().unwrap().into_inner()
    };
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "os.system global",
            std::fs::read(pt.join("malicious_system.pt")).unwrap(),
            &["infer.pt", "system", "refusing"],
        ),
        (
            "eval global",
            std::fs::read(pt.join("malicious_eval.pt")).unwrap(),
            &["infer.pt", "eval", "refusing"],
        ),
        ("missing storage", missing_storage, &["infer.pt", "data/0"]),
        ("truncated", good[..good.len() / 2].to_vec(), &["infer.pt"]),
    ];
    for (what, bytes, names) in cases {
        let (home, preset) = released_with(&d.join(what.replace(' ', "_")), &bytes);
        let o = ask_released(&home, &preset, &wav);
        eprintln!("{what}: {}", stderr(&o));
        assert_refused(&o, 1, names);
    }
}

// ---------------------------------------------------------------------------------------------
// Memory budget

#[test]
fn a_memory_budget_smaller_than_the_weights_is_refused_before_loading() {
    let (_dir, d) = scratch("budget");
    let preset = tiny_llm(&d);
    let p = preset.to_str().unwrap();
    let o = osum(&["chat", "--max-memory", "100K", "--preset", p, "hello"]);
    assert_refused(&o, 1, &["model.safetensors", "--max-memory", "102400"]);
    let o = osum(&["chat", "--max-memory", "64M", "--preset", p, "hello"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = osum(&["chat", "--max-memory", "lots", "--preset", p, "hello"]);
    assert_refused(&o, 2, &["lots", "not a size"]);
}
