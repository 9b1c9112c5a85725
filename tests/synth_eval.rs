//! `osum synth` and `osum eval` from outside: the benchmark is deterministic for a seed, its test
//! split holds out voices, sentences and wordings, a missing tool is named with its install
//! command, and eval runs end to end on a tiny benchmark (with the untrained model, whose answers
//! are noise: this checks the plumbing and the JSON, not the scores).

use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

mod fixtures;

fn osum(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_osum"));
    cmd.args(args).env_remove("OSUM_PROFILE");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run osum")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tools_missing() -> Option<&'static str> {
    ["espeak-ng", "flite", "sox"]
        .into_iter()
        .find(|t| Command::new(t).arg("--version").output().is_err())
}

fn synth_tiny(out: &Path, seed: &str) {
    let o = osum(
        &[
            "synth",
            "--out",
            out.to_str().unwrap(),
            "--seed",
            seed,
            "--size",
            "tiny",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("wrote 40 clips"),
        "{}",
        text(&o.stdout)
    );
}

/// One tiny benchmark shared by the tests of this file (seed 1). A static is never dropped, so it
/// is not a scratch folder (that would be left behind) but one under Cargo's per-target scratch
/// space, regenerated in place by the next run.
fn shared_tiny() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("synth-shared");
        let _ = std::fs::remove_dir_all(&d);
        synth_tiny(&d, "1");
        d
    })
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["", "wav"] {
        let mut names: Vec<_> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        names.sort();
        for p in names {
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            out.push((rel, std::fs::read(&p).unwrap()));
        }
    }
    out
}

#[test]
fn synth_gives_the_same_bytes_for_the_same_seed_and_other_bytes_for_another() {
    if let Some(t) = tools_missing() {
        eprintln!("skipped: {t} not installed (sudo apt-get install espeak-ng flite sox)");
        return;
    }
    let again = fixtures::scratch_dir("synth-again");
    synth_tiny(again.path(), "1");
    let (a, b) = (files(shared_tiny()), files(again.path()));
    let names = |f: &[(String, Vec<u8>)]| f.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b));
    assert!(a.iter().any(|f| f.0 == "train.jsonl") && a.iter().any(|f| f.0.ends_with(".wav")));
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{name} differs between two runs with seed 1");
    }
    let other = fixtures::scratch_dir("synth-other");
    synth_tiny(other.path(), "2");
    let m = |d: &Path| std::fs::read(d.join("train.jsonl")).unwrap();
    assert_ne!(m(shared_tiny()), m(other.path()));
}

/// `--text-qa N` appends N text QA items (no audio, `chat` alone, an answer) to train.jsonl,
/// writes held-out ones to test-text-qa.jsonl and changes nothing else: the other training lines,
/// dev and test are the bytes made without it.
#[test]
fn synth_text_qa_appends_answered_questions_to_train_only() {
    if let Some(t) = tools_missing() {
        eprintln!("skipped: {t} not installed (sudo apt-get install espeak-ng flite sox)");
        return;
    }
    let qa = fixtures::scratch_dir("synth-qa");
    let out = qa.path().to_str().unwrap();
    let o = osum(
        &["synth", "--out", out, "--size", "tiny", "--text-qa", "5"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    for f in ["dev.jsonl", "test.jsonl"] {
        assert_eq!(read(qa.path(), f), read(shared_tiny(), f), "{f}");
    }
    let (with, without) = (
        read(qa.path(), "train.jsonl"),
        read(shared_tiny(), "train.jsonl"),
    );
    let added = with
        .strip_prefix(without.as_str())
        .expect("the same lines first");
    let added: Vec<Value> = added
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(added.len(), 5);
    for v in &added {
        assert!(
            v["audio"].is_null() && v["tasks"] == serde_json::json!(["chat"]),
            "{v}"
        );
        assert!(v["answer"].as_str().is_some_and(|a| !a.is_empty()), "{v}");
    }
    let info: Value = serde_json::from_str(&read(qa.path(), "synth.json")).unwrap();
    assert_eq!(info["counts"]["train_text_qa"], 5);
    // One held-out question (a fifth of 5) for `osum eval`, none of the five trained on.
    let held_out = lines(&qa.path().join("test-text-qa.jsonl"));
    assert_eq!(info["counts"]["test_text_qa"], 1);
    assert_eq!(held_out.len(), 1);
    assert!(held_out[0]["answer"].is_string() && held_out[0]["audio"].is_null());
    assert!(added
        .iter()
        .all(|v| v["instruction"] != held_out[0]["instruction"]));
    // Regenerated without --text-qa, the folder holds no questions from the earlier run.
    let again = osum(&["synth", "--out", out, "--size", "tiny"], &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert!(!qa.path().join("test-text-qa.jsonl").exists());
    assert_eq!(
        read(qa.path(), "train.jsonl"),
        read(shared_tiny(), "train.jsonl")
    );
    let too_many = osum(
        &[
            "synth",
            "--out",
            out,
            "--size",
            "tiny",
            "--text-qa",
            "2000000",
        ],
        &[],
    );
    assert_eq!(too_many.status.code(), Some(1));
    assert!(text(&too_many.stderr).contains("--text-qa 2000000"));
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn synth_writes_16k_mono_clips_and_a_test_split_with_nothing_seen_in_training() {
    if let Some(t) = tools_missing() {
        eprintln!("skipped: {t} not installed (sudo apt-get install espeak-ng flite sox)");
        return;
    }
    let dir = shared_tiny();
    let train = lines(&dir.join("train.jsonl"));
    let test = lines(&dir.join("test.jsonl"));
    let set = |xs: &[Value], k: &str| -> HashSet<String> {
        xs.iter()
            .filter_map(|v| v[k].as_str().map(String::from))
            .collect()
    };
    for k in ["speaker", "transcript", "instruction"] {
        assert!(set(&train, k).is_disjoint(&set(&test, k)), "{k} leaks");
    }
    assert!(
        train.iter().any(|v| v["audio"].is_null()),
        "text-only items"
    );
    for v in test.iter().chain(&train).filter(|v| !v["audio"].is_null()) {
        let r = hound::WavReader::open(dir.join(v["audio"].as_str().unwrap())).unwrap();
        let spec = r.spec();
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.bits_per_sample),
            (16000, 1, 16)
        );
        let secs = r.duration() as f32 / 16000.0;
        assert!((0.5..12.0).contains(&secs), "{v}: {secs} s");
    }
}

#[test]
fn synth_names_missing_tools_and_how_to_install_them() {
    let out = fixtures::scratch_dir("synth-notools");
    let o = osum(
        &[
            "synth",
            "--out",
            out.path().to_str().unwrap(),
            "--size",
            "tiny",
        ],
        &[("PATH", "/nonexistent")],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("espeak-ng, flite, sox")
            && err.contains("apt-get install espeak-ng flite sox"),
        "{err}"
    );
    let bad = osum(&["synth", "--out", "x", "--size", "huge"], &[]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("unknown --size `huge`"));
}

#[test]
fn eval_runs_end_to_end_on_a_tiny_benchmark_and_prints_json_last() {
    if let Some(m) = fixtures::osum_tiny_weight_missing() {
        eprintln!("skipped: {} not installed (run `osum setup`)", m.display());
        return;
    }
    if let Some(t) = tools_missing() {
        eprintln!("skipped: {t} not installed (sudo apt-get install espeak-ng flite sox)");
        return;
    }
    let dir = shared_tiny();
    let preds = dir.join("predictions.jsonl");
    let manifest = dir.join("test.jsonl");
    let o = osum(
        &[
            "eval",
            "--manifest",
            manifest.to_str().unwrap(),
            "--limit",
            "2",
            "--max-new-tokens",
            "4",
            "--compare-fixed",
            "--json",
            "--predictions",
            preds.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains("fixed") && stdout.contains("natural"),
        "{stdout}"
    );
    let last = stdout.lines().last().unwrap();
    let v: Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["n"], 2);
    // Without --checkpoint, osum-tiny is scored with its shipped checkpoint (assets/osum-tiny).
    assert_eq!(v["trained"], true);
    let ifr = v["ifr"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ifr));
    assert!(v["acc"].is_object() && v["latency_ms"]["mean"].as_f64().unwrap() > 0.0);
    assert_eq!(v["fixed"]["n"], 2);
    // synth names every clip's speaker, so the summary splits the items by voice.
    let per_speaker: u64 = v["by_speaker"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s["n"].as_u64().unwrap())
        .sum();
    assert_eq!(per_speaker, 2);
    assert!(stdout.contains("per speaker:"), "{stdout}");
    let p = lines(&preds);
    assert_eq!(p.len(), 2);
    assert!(p[0]["speaker"].is_string());
    assert!(
        p[0]["raw"].is_string()
            && p[0]["fixed"]["instruction"]
                .as_str()
                .unwrap()
                .starts_with('<')
    );
    assert!(!text(&o.stderr).contains("untrained"));
    // Text-only items are asked without a speech slot and totalled apart: a text QA item is
    // scored on its answer (`chat`), an intent item on its tags only.
    let mixed = fixtures::scratch_dir("eval-text");
    let clip = dir.join(p[0]["audio"].as_str().unwrap());
    let audio_line = serde_json::json!({
        "audio": clip, "instruction": "Transcribe this.", "tasks": ["asr"], "transcript": "hello",
    });
    let qa_line = serde_json::json!({
        "instruction": "What is the plural of \"cat\"?", "tasks": ["chat"], "answer": "cats",
    });
    let intent_line = serde_json::json!({
        "instruction": "What is the speaker's gender?", "tasks": ["gender"],
    });
    let mixed_manifest = mixed.path().join("mixed.jsonl");
    std::fs::write(
        &mixed_manifest,
        format!("{audio_line}\n{qa_line}\n{intent_line}\n"),
    )
    .unwrap();
    let mixed_preds = mixed.path().join("preds.jsonl");
    let o = osum(
        &[
            "eval",
            "--manifest",
            mixed_manifest.to_str().unwrap(),
            "--max-new-tokens",
            "4",
            "--json",
            "--predictions",
            mixed_preds.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    assert!(stdout.contains("text-only items 2"), "{stdout}");
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        (v["n"].as_u64(), v["text"]["n"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(v["text"]["acc_n"], serde_json::json!({"chat": 1}));
    assert!(v["acc_n"].get("chat").is_none(), "{v}");
    let p = lines(&mixed_preds);
    assert_eq!(p.len(), 3);
    assert!(p[1]["audio"].is_null() && p[1]["raw"].is_string());
    assert!(p[1]["correct"]["chat"].is_boolean() && p[2]["correct"] == serde_json::json!({}));
    let missing = osum(&["eval", "--manifest", "/no/such.jsonl"], &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("/no/such.jsonl"));
}
