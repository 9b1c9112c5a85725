//! `osum bench encoder`: the Whisper encoder on 30 s of audio (3000 mel frames), ours vs
//! CTranslate2's float32 encoder on the same features when the Python package `ctranslate2`
//! is importable (by `$OSUM_CT2_PYTHON`, default `python3`). CTranslate2 runs in a child process
//! that stays loaded; each round times ours here and then one CT2 `encode` there (timed inside the
//! child, so process and pipe costs are excluded), alternating. Also a Whisper-medium-shaped
//! encoder with random weights (ours only: CTranslate2 needs converted weights).

use super::measure;
use super::{f, ms, r, Output};
use osum::engine::{no_grad, Device, Rng, Tensor};
use osum::model::audio::{log_mel, MelMode};
use osum::model::weights::ctranslate2::CtModel;
use osum::model::whisper::random::random_weights;
use osum::model::whisper::{Convention, Whisper, WhisperConfig};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;

/// The child: load the model and the features, warm up, then one timed `encode` per input line.
const CT2_SCRIPT: &str = r#"
import sys, time, numpy as np, ctranslate2
model_dir, feats, frames, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
m = ctranslate2.models.Whisper(model_dir, device="cpu", compute_type="float32", intra_threads=threads)
x = ctranslate2.StorageView.from_array(np.fromfile(feats, dtype=np.float32).reshape(1, 80, frames))
m.encode(x)
print("ready", flush=True)
for _ in sys.stdin:
    t = time.perf_counter(); m.encode(x); print(time.perf_counter() - t, flush=True)
"#;

struct Ct2 {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Ct2 {
    /// Start the child; `None` (with the reason on stderr) when CTranslate2 is not available.
    fn start(
        model_dir: &std::path::Path,
        feats: &[f32],
        frames: usize,
        threads: usize,
    ) -> Option<Ct2> {
        let python = std::env::var("OSUM_CT2_PYTHON").unwrap_or_else(|_| "python3".into());
        let path = std::env::temp_dir().join(format!("osum-bench-mel-{}.f32", std::process::id()));
        let bytes: Vec<u8> = feats.iter().flat_map(|v| v.to_le_bytes()).collect();
        if let Err(e) = std::fs::write(&path, bytes) {
            eprintln!("  reference: cannot write features: {e}");
            return None;
        }
        let child = Command::new(&python)
            .args(["-c", CT2_SCRIPT])
            .arg(model_dir)
            .arg(&path)
            .args([frames.to_string(), threads.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                eprintln!("  reference: cannot run {python}: {e}");
                return None;
            }
        };
        let stdin = child.stdin.take()?;
        let mut stdout = BufReader::new(child.stdout.take()?);
        let mut line = String::new();
        let ready = stdout.read_line(&mut line).is_ok() && line.trim() == "ready";
        let _ = std::fs::remove_file(&path);
        if !ready {
            eprintln!(
                "  reference: CTranslate2 unavailable ({python} could not import ctranslate2 or load \
                 the model; `pip install ctranslate2==4.8.5 numpy`)"
            );
            let _ = child.kill();
            return None;
        }
        Some(Ct2 {
            child,
            stdin,
            stdout,
        })
    }

    /// One timed encode in the child, in seconds.
    fn encode(&mut self) -> Result<f64, String> {
        writeln!(self.stdin, "go").map_err(|e| format!("CTranslate2 child: {e}"))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| format!("CTranslate2 child: {e}"))?;
        line.trim()
            .parse()
            .map_err(|_| format!("CTranslate2 child answered {line:?}"))
    }
}

impl Drop for Ct2 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run(a: &super::BenchArgs, dev: &Arc<dyn Device>, out: &mut Output) -> Result<(), String> {
    let dev = dev.clone();
    let threads = rayon::current_num_threads();
    let device = dev.name();
    eprintln!(
        "bench encoder: Whisper encoder on 30 s (3000 frames), f32 weights and activations, device {device}, {threads} threads; CTranslate2 float32"
    );
    // 30 s of seeded noise: the encoder's cost does not depend on the content.
    let mut rng = Rng::new(a.seed);
    let samples: Vec<f32> = (0..480_000).map(|_| 0.1 * (rng.uniform() - 0.5)).collect();
    let (mel, frames) = log_mel(&samples, MelMode::Whisper);
    let x = Tensor::from_vec(mel.clone(), &[1, 80, frames], &dev).map_err(|e| e.to_string())?;

    // tiny.en: the real weights from `osum setup`, against CTranslate2 on the same files.
    let dir = osum::model::home().join("whisper-tiny.en");
    let bin = dir.join("model.bin");
    if !a.quick {
        if !bin.exists() {
            return Err(format!(
                "{} not found: run `osum setup` first",
                bin.display()
            ));
        }
        eprintln!("  tiny.en (real weights) …");
        let src = CtModel::open(&bin).map_err(|e| e.to_string())?;
        let model = Whisper::load(&src, &dev).map_err(|e| e.to_string())?;
        let mut ct2 = Ct2::start(&dir, &mel, frames, threads);
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        let reps = a.reps.unwrap_or(7).max(1);
        let ours_once = || -> Result<f64, String> {
            let t = std::time::Instant::now();
            no_grad(|| model.encoder.forward(&x)).map_err(|e| e.to_string())?;
            Ok(t.elapsed().as_secs_f64())
        };
        ours_once()?; // warm-up
        for _ in 0..reps {
            ours.push(ours_once()?);
            if let Some(c) = ct2.as_mut() {
                theirs.push(c.encode()?);
            }
        }
        row(
            out,
            "tiny.en",
            &device,
            &ours,
            (!theirs.is_empty()).then_some(&theirs[..]),
        );
    }

    // A Whisper-medium-shaped encoder with random weights (tiny-shaped in --quick).
    let (name, cfg) = if a.quick {
        ("tiny-shaped", "tiny")
    } else {
        ("medium-shaped", "medium")
    };
    eprintln!("  {name} (random weights) …");
    let mut cfg = WhisperConfig::named(cfg).ok_or("unknown preset")?;
    cfg.n_text_layer = 0; // encoder only: no decoder weights to generate
    let map = random_weights(&cfg, Convention::OpenAi, a.seed, &dev).map_err(|e| e.to_string())?;
    let model =
        Whisper::load_with(&map, Convention::OpenAi, cfg, &dev).map_err(|e| e.to_string())?;
    drop(map);
    let reps = a.reps.unwrap_or(if a.quick { 1 } else { 2 }).max(1);
    let s = measure::alternate::<String>(
        Some(reps),
        &mut || {
            no_grad(|| model.encoder.forward(&x))
                .map(drop)
                .map_err(|e| e.to_string())
        },
        &mut || Ok(()),
    )?;
    row(out, name, &device, &s.a, None);
    Ok(())
}

fn row(out: &mut Output, model: &str, device: &str, ours: &[f64], theirs: Option<&[f64]>) {
    let o = measure::median(ours);
    let t = theirs.map(measure::median);
    let ratio = t.map(|t| o / t);
    out.row(
        json!({
            "bench": "encoder", "model": model, "shape": "80x3000", "seconds_audio": 30, "dtype": "f32", "device": device, "ref_compute_type": "float32",
            "ours_ms": r(o * 1e3), "ref_ms": t.map(|t| r(t * 1e3)), "ratio": ratio.map(r),
            "reps": ours.len(), "threads": rayon::current_num_threads(),
        }),
        &[
            ("model", model.to_string()),
            ("ours ms", ms(o)),
            ("CTranslate2 ms", t.map(ms).unwrap_or_else(|| "n/a".into())),
            ("ratio", ratio.map(|x| f(x, 3)).unwrap_or_else(|| "n/a".into())),
            ("reps", ours.len().to_string()),
        ],
    );
}
