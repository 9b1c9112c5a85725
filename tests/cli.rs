//! The `osum` binary from outside: help texts, exit codes (0 ok, 1 input error, 2 usage
//! error), the demo, the profiler's trace, and `osum bench` in its quick mode (tiny shapes: these
//! tests check the plumbing and the JSON, never speed).

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

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

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

/// A trace path in a fresh scratch folder, removed when the guard drops.
fn temp_trace() -> (tempfile::TempDir, PathBuf) {
    let dir = fixtures::scratch_dir("cli");
    let p = dir.path().join("trace.json");
    (dir, p)
}

fn trace_op_names(path: &PathBuf) -> Vec<String> {
    let raw = std::fs::read_to_string(path).expect("trace written");
    let v: Value = serde_json::from_str(&raw).expect("trace is JSON");
    let events = v["traceEvents"].as_array().expect("traceEvents");
    events
        .iter()
        .filter(|e| e["ph"] == "X")
        .map(|e| {
            assert!(
                e["dur"].as_f64().is_some() && e["ts"].as_f64().is_some(),
                "{e}"
            );
            assert!(e["args"]["flops"].as_u64().is_some(), "{e}");
            assert!(e["args"]["bytes"].as_u64().is_some(), "{e}");
            e["name"].as_str().expect("name").to_string()
        })
        .collect()
}

#[test]
fn help_texts_exit_zero() {
    let o = osum(&["--help"], &[]);
    assert_eq!(code(&o), 0);
    let out = text(&o.stdout);
    assert!(
        out.contains("demo") && out.contains("bench") && out.contains("--profile"),
        "{out}"
    );

    let o = osum(&["bench", "--help"], &[]);
    assert_eq!(code(&o), 0);
    let out = text(&o.stdout);
    assert!(
        out.contains("Examples") && out.contains("osum bench gemm"),
        "{out}"
    );
}

#[test]
fn usage_errors_exit_two() {
    for args in [
        &["toy", "--no-such-flag"][..],
        &["bench", "nope"],
        &["bench"],
        &["bench", "gemm", "--reps", "0"],
        &["bench", "gemm", "--shape", "1x2"],
        &["bench", "attention", "--shape", "1x2x3"],
        &[],
    ] {
        let o = osum(args, &[]);
        assert_eq!(code(&o), 2, "{args:?}: {}", text(&o.stderr));
    }
}

#[test]
fn demo_runs_and_input_errors_exit_one() {
    let o = osum(&["toy", "--steps", "3"], &[]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("held-out"));

    let o = osum(&["toy", "--steps", "0"], &[]);
    assert_eq!(code(&o), 1);
    assert!(text(&o.stderr).contains("must be positive"));
}

#[test]
fn osum_profile_writes_a_trace_naming_matmul_and_attention() {
    let (_dir, path) = temp_trace();
    let o = osum(
        &["toy", "--steps", "2", "--batch", "4"],
        &[("OSUM_PROFILE", path.to_str().unwrap())],
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let names = trace_op_names(&path);
    for op in ["matmul", "attention", "attention_backward", "adamw_step"] {
        assert!(names.iter().any(|n| n == op), "{op} missing from {names:?}");
    }
    // The summary table goes to stderr, the demo's own output stays on stdout.
    let err = text(&o.stderr);
    assert!(err.contains("GFLOP/s") && err.contains("matmul"), "{err}");
    assert!(!text(&o.stdout).contains("GFLOP/s"));
}

#[test]
fn profile_on_ascend_sim_adds_labelled_launch_counters_and_predicted_910b_time() {
    let (_dir, path) = temp_trace();
    let o = osum(
        &[
            "--device",
            "ascend-sim",
            "--profile",
            path.to_str().unwrap(),
            "toy",
            "--steps",
            "1",
            "--batch",
            "2",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let err = text(&o.stderr);
    let label = "predicted (simulated counters, not hardware)";
    let section: Vec<&str> = err.lines().skip_while(|l| !l.contains(label)).collect();
    assert!(section.len() > 2, "no launch table in {err}");
    for col in [
        "launches",
        "GM>UB MB",
        "L1>L0 MB",
        "vec Melem",
        "cube MMAC",
        "910B µs",
    ] {
        assert!(section[1].contains(col), "{col} missing: {}", section[1]);
    }
    // The linear layers run on the cube: launches, GM→L1 traffic, MACs and a predicted time.
    let linear: Vec<f64> = section
        .iter()
        .find(|l| l.starts_with("linear "))
        .expect("a linear row")
        .split_whitespace()
        .skip(1)
        .take(9)
        .map(|c| c.parse().unwrap())
        .collect();
    // launches, GM→UB, UB→GM, GM→L1, L1→L0, L0C→GM, vector, cube, predicted µs.
    assert!(linear[0] >= 1.0 && linear[3] > 0.0, "{linear:?}");
    assert!(linear[7] > 0.0 && linear[8] > 0.0, "{linear:?}");
}

#[test]
fn profile_flag_works_anywhere_and_on_failure() {
    // Global flag after the subcommand.
    let (_dir, path) = temp_trace();
    let o = osum(
        &[
            "toy",
            "--steps",
            "1",
            "--batch",
            "2",
            "--profile",
            path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(trace_op_names(&path).iter().any(|n| n == "matmul"));

    // A failing command still writes its (empty) trace and keeps exit code 1.
    let (_dir, path) = temp_trace();
    let o = osum(
        &["--profile", path.to_str().unwrap(), "toy", "--steps", "0"],
        &[],
    );
    assert_eq!(code(&o), 1);
    assert!(trace_op_names(&path).is_empty());

    // An unwritable trace path is an error, reported after the command ran.
    let o = osum(
        &["toy", "--steps", "1", "--batch", "2"],
        &[("OSUM_PROFILE", "/nonexistent-dir/osum/trace.json")],
    );
    assert_eq!(code(&o), 1);
    assert!(text(&o.stderr).contains("trace"), "{}", text(&o.stderr));
}

/// Every stdout line of a quick `--json` bench, parsed.
fn bench_json(kind: &str) -> Vec<Value> {
    let o = osum(
        &[
            "--device", "cpu", "bench", kind, "--json", "--quick", "--reps", "1",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{kind}: {}", text(&o.stderr));
    let out = text(&o.stdout);
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{kind}: {e}: {l}")))
        .collect();
    assert!(!rows.is_empty(), "{kind}: no rows");
    for r in &rows {
        assert_eq!(r["bench"], kind);
        assert!(r["shape"].is_string() && r["dtype"].is_string(), "{r}");
    }
    rows
}

fn positive(r: &Value, keys: &[&str]) {
    for k in keys {
        let x = r[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} missing in {r}"));
        assert!(x > 0.0 && x.is_finite(), "{k} = {x} in {r}");
    }
}

#[cfg(feature = "bench-reference")]
#[test]
fn bench_gemm_and_conv_json_lines() {
    for kind in ["gemm", "conv"] {
        for r in bench_json(kind) {
            positive(&r, &["ours_gflops", "ref_gflops", "ratio"]);
            // Ours and the reference computed the same product (on the f32 `cpu` device; the
            // default `auto` may multiply in bf16).
            assert!(r["max_rel_diff"].as_f64().unwrap() < 1e-5, "{r}");
        }
    }
}

#[cfg(not(feature = "bench-reference"))]
#[test]
fn bench_without_reference_says_so_and_exits_one() {
    let o = osum(&["bench", "gemm", "--quick", "--reps", "1"], &[]);
    assert_eq!(code(&o), 1);
    assert!(text(&o.stderr).contains("not compiled in"));
}

#[test]
fn bench_gemv_and_attention_json_lines() {
    for r in bench_json("gemv") {
        positive(&r, &["ours_gbps", "bandwidth_gbps", "fraction"]);
    }
    let rows = bench_json("attention");
    for r in &rows {
        positive(r, &["fused_ms", "gemms_ms", "ratio"]);
    }
    assert!(rows.iter().any(|r| r["causal"] == true));
}

#[test]
fn bench_encoder_quick_reports_a_30_second_window() {
    let rows = bench_json("encoder");
    positive(&rows[0], &["ours_ms"]);
    assert_eq!(rows[0]["seconds_audio"], 30);
    assert_eq!(rows[0]["model"], "tiny-shaped");
}

#[test]
fn bench_decode_quick_reports_tokens_per_second_and_bandwidth() {
    let rows = bench_json("decode");
    positive(
        &rows[0],
        &[
            "tokens_per_s",
            "bytes_per_token",
            "bandwidth_gbps",
            "fraction",
        ],
    );
    assert_eq!(rows[0]["model"], "pangu-shaped-tiny");
}

#[test]
fn chat_continues_the_capital_of_france_with_paris() {
    let gguf = osum::model::home().join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !gguf.exists() {
        eprintln!(
            "skipped: {} not installed (run `osum setup`)",
            gguf.display()
        );
        return;
    }
    let o = osum(
        &[
            "chat",
            "--preset",
            "smollm2",
            "--max-new-tokens",
            "4",
            "The capital of France is",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with(" Paris"), "{}", text(&o.stdout));
    let bad = osum(&["chat", "--preset", "nope", "hi"], &[]);
    assert_eq!(code(&bad), 1);
    assert!(text(&bad.stderr).contains("unknown preset `nope`"));
}

/// `osum chat` on a trained preset reads only the checkpoint's LoRA; a folder without one is
/// refused by name before any weights load, instead of answering with the base LLM.
#[test]
fn chat_refuses_a_checkpoint_folder_without_lora() {
    let dir = fixtures::scratch_dir("chat-no-lora");
    let folder = dir.path().to_str().unwrap();
    let o = osum(
        &[
            "chat",
            "--preset",
            "osum-tiny",
            "--checkpoint",
            folder,
            "hi",
        ],
        &[],
    );
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("no lora.safetensors"),
        "{}",
        text(&o.stderr)
    );
}

/// `osum chat --preset osum-tiny` answers with the checkpoint's LoRA (the shipped one by
/// default): with none, its reply is the base LLM's to the same chat prompt; a text preset
/// refuses `--checkpoint`, which it would have nowhere to put.
#[test]
fn chat_on_an_osum_preset_answers_with_the_checkpoints_lora() {
    if let Some(m) = fixtures::osum_tiny_weight_missing() {
        eprintln!("skipped: {} not installed (run `osum setup`)", m.display());
        return;
    }
    let system = osum::model::preset::Preset::find("osum-tiny")
        .unwrap()
        .system
        .expect("osum-tiny has a system prompt");
    let question = "What is the plural of \"cat\"?";
    let reply = |preset: &str, extra: &[&str], envs: &[(&str, &str)]| -> serde_json::Value {
        let mut args = vec!["chat", "--preset", preset, "--chat", "--json"];
        // The same decoding for both presets, so only the weights differ.
        args.extend_from_slice(&["--max-new-tokens", "6", "--repetition-penalty", "1.0"]);
        args.extend_from_slice(extra);
        args.push(question);
        let o = osum(&args, envs);
        assert_eq!(code(&o), 0, "{}", text(&o.stderr));
        serde_json::from_str(text(&o.stdout).trim()).unwrap()
    };
    let none = [("OSUM_ASSETS", "/no/such/assets")];
    let base = reply("osum-tiny", &[], &none);
    let smollm2 = reply("smollm2", &["--system", &system], &[]);
    assert_eq!(base["prompt_ids"], smollm2["prompt_ids"]);
    assert_eq!(
        base["tokens"], smollm2["tokens"],
        "zero LoRA is the base LLM"
    );
    let shipped = reply("osum-tiny", &[], &[]);
    assert_eq!(shipped["prompt_ids"], base["prompt_ids"]);
    assert_ne!(
        shipped["tokens"], base["tokens"],
        "the shipped LoRA changes the reply"
    );
    let refused = osum(&["chat", "--checkpoint", "/tmp", "hi"], &[]);
    assert_eq!(code(&refused), 1);
    assert!(
        text(&refused.stderr).contains("osum-tiny"),
        "{}",
        text(&refused.stderr)
    );
}

#[test]
fn ask_runs_end_to_end_on_a_real_clip_and_prints_parsed_json() {
    let gf = "/usr/share/pocketsphinx/test/data/goforward.raw";
    let missing = fixtures::osum_tiny_weight_missing()
        .or_else(|| Some(PathBuf::from(gf)).filter(|p| !p.exists()));
    if let Some(m) = missing {
        eprintln!(
            "skipped: {} not installed (osum setup / pocketsphinx-testdata)",
            m.display()
        );
        return;
    }
    let o = osum(
        &[
            "ask",
            "--json",
            "--max-new-tokens",
            "6",
            gf,
            "Transcribe the audio.",
        ],
        // No shipped checkpoint: the untrained path.
        &[("OSUM_ASSETS", "/no/such/assets")],
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(text(&o.stdout).trim()).unwrap();
    assert_eq!(v["trained"], false);
    assert!(v["tasks"].is_array());
    assert_eq!(v["tokens"].as_u64().unwrap(), 6);
    // 2.8 s → 280 mel frames → 140 encoder frames → 35 adapter rows, plus speech BOS/EOS.
    assert_eq!(v["speech_positions"], 37);
    assert!(text(&o.stderr).contains("untrained"));
    // Without --checkpoint, osum-tiny answers with its shipped checkpoint (assets/osum-tiny).
    let shipped = osum(
        &[
            "ask",
            "--json",
            "--max-new-tokens",
            "6",
            gf,
            "Transcribe the audio.",
        ],
        &[],
    );
    assert_eq!(code(&shipped), 0, "{}", text(&shipped.stderr));
    let v: serde_json::Value = serde_json::from_str(text(&shipped.stdout).trim()).unwrap();
    assert_eq!(v["trained"], true);
    assert!(v["tokens"].as_u64().unwrap() <= 6);
    assert!(!text(&shipped.stderr).contains("untrained"));
    let missing = osum(&["ask", "/no/such.wav", "hi"], &[]);
    assert_eq!(code(&missing), 1);
    assert!(text(&missing.stderr).contains("/no/such.wav"));
    // Longer than the encoder takes: refused with the length and a way to trim it.
    let dir = fixtures::scratch_dir("ask-long");
    let long = dir.path().join("long.raw");
    std::fs::write(&long, vec![0u8; 2 * 16_000 * 45]).unwrap();
    let refused = osum(&["ask", long.to_str().unwrap(), "hi"], &[]);
    assert_eq!(code(&refused), 1);
    let err = text(&refused.stderr);
    assert!(
        err.contains("long.raw") && err.contains("45.0 s") && err.contains("trim"),
        "{err}"
    );
}

/// `osum features` writes one row per distinct clip with every encoder layer (stem, blocks,
/// ln_post) mean- then std-pooled over time; its last layer's mean is the mean of the encoder
/// output the model itself computes (same device, same ops: tolerance 1e-5 for summation order).
/// A clip that cannot be read is an error naming it, and no file is written.
#[test]
fn features_pools_every_encoder_layer_of_each_distinct_clip() {
    let home = osum::model::home();
    if !home.join("whisper-tiny.en/model.bin").exists() {
        eprintln!("skipped: whisper-tiny.en not installed (osum setup)");
        return;
    }
    let tmp = fixtures::scratch_dir("features-cli");
    let dir = tmp.path();
    let samples = std::fs::canonicalize("assets/samples").unwrap();
    let clip = |n: &str| samples.join(n).display().to_string();
    let line = |audio: &str| {
        format!(
            r#"{{"audio": "{audio}", "instruction": "x", "tasks": ["gender"], "gender": "male"}}"#
        )
    };
    let manifest = dir.join("m.jsonl");
    let (a, b) = (clip("2-test-00003.wav"), clip("4-test-00163.wav"));
    std::fs::write(
        &manifest,
        [
            line(&a),
            line(&b),
            line(&a),
            r#"{"instruction": "y", "tasks": ["asr"]}"#.into(),
        ]
        .join("\n"),
    )
    .unwrap();
    let features = |manifest: &std::path::Path, out: &std::path::Path| {
        let (m, o) = (manifest.to_str().unwrap(), out.to_str().unwrap());
        osum(
            &["--device", "cpu", "features", "--manifest", m, "--out", o],
            &[],
        )
    };
    let out = dir.join("f.safetensors");
    let o = features(&manifest, &out);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let bytes = std::fs::read(&out).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let audio: Vec<String> = serde_json::from_str(&meta["audio"]).unwrap();
    assert_eq!(audio, vec![a.clone(), b]);
    assert_eq!(meta["layers"], "stem,block1,block2,block3,block4,ln_post");
    assert_eq!(meta["encoder"], "whisper-tiny.en");
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let pooled = st.tensor("pooled").unwrap();
    assert_eq!(pooled.shape(), &[2, 6, 768]);
    let v: Vec<f32> = pooled
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert!(v.iter().all(|x| x.is_finite()));
    // Clip a's ln_post mean against the library's encoder output for the same clip.
    let preset = osum::model::preset::Preset::find("osum-tiny").unwrap();
    let dev = osum::engine::cpu_device();
    let model = osum::model::osum::OsumModel::open(preset, None, &dev).unwrap();
    let samples = osum::model::audio::load(std::path::Path::new(&a), None).unwrap();
    let enc = model.encoder_features(&samples).unwrap();
    let [1, frames, 384] = *enc.shape() else {
        panic!("{:?}", enc.shape())
    };
    let enc = enc.to_vec::<f32>().unwrap();
    let ln_post_mean = &v[5 * 768..5 * 768 + 384];
    for (j, got) in ln_post_mean.iter().enumerate() {
        let want = (0..frames).map(|t| enc[t * 384 + j] as f64).sum::<f64>() / frames as f64;
        assert!(
            (*got as f64 - want).abs() < 1e-5,
            "column {j}: {got} vs {want}"
        );
    }
    // The stem's per-column std (row 0, layer 0, second half) is positive: positions vary in time.
    assert!(v[384..768].iter().all(|&s| s > 0.0), "stem std");

    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, line("/no/such/clip.wav")).unwrap();
    let out2 = dir.join("g.safetensors");
    let o = features(&bad, &out2);
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stderr).contains("/no/such/clip.wav"),
        "{}",
        text(&o.stderr)
    );
    assert!(!out2.exists());
}
