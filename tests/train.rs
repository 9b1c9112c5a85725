//! The three-stage trainer end to end, on the real Whisper tiny.en encoder (`osum setup`;
//! skipped with a notice when absent) with a tiny Llama (the shape of the committed
//! `tests/data/llama_tiny`, 2 layers of width 64, seeded random weights, the committed
//! SentencePiece tokenizer) so each step takes milliseconds. Audio: the committed `scripts/goldens/mel_clip.wav`, and a copy of it slowed
//! down with sox when sox is installed.
//!
//! Tolerances: a padded batch's loss equals its items' losses alone within 1e-5 (relative);
//! the resume test asks for bit-identical losses (the engine's CPU kernels are
//! deterministic for a fixed thread count; both runs use the same process and pool).

mod fixtures;

use osum::engine::{cpu_device, Tensor};
use osum::model::osum::OsumModel;
use osum::model::preset::Preset;
use osum::model::tags::Task;
use osum::train::batch::{batch_loss, Example};
use osum::train::data::{Item, Manifest};
use osum::train::stages::{
    examples, train, AuxLabels, ScheduleKind, Stage, TextQaMix, TrainOptions, CURVE_FILE, LOG_FILE,
};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A scratch folder holding the tiny-LLM preset, its model folder and a manifest, with the guard
/// that removes it when dropped; `None` (with a notice) when the Whisper encoder is not installed.
fn fixture(tag: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    let enc = osum::model::home().join("whisper-tiny.en");
    if !enc.join("model.bin").exists() {
        eprintln!(
            "skipped: {} absent (run `osum setup`)",
            enc.join("model.bin").display()
        );
        return None;
    }
    let tmp = fixtures::scratch_dir(&format!("train-{tag}"));
    let dir = tmp.path().to_path_buf();
    let llm = fixtures::tiny_llm_folder(&dir);
    let preset = serde_json::json!({
        "name": "test-tiny",
        "description": "Whisper tiny.en + a small adapter + the 2-layer test Llama",
        "llm": {"hf_dir": llm},
        "template": "osum-pangu",
        "system": "You answer.",
        "generation": {"max_new_tokens": 8},
        // A name under the model home, as the built-in presets give it.
        "encoder": "whisper-tiny.en",
        "adapter": {"variant": "released", "enc_dim": 384, "dim": 32, "heads": 2, "ffn": 64,
                    "layers": 1, "llm_dim": 64, "max_positions": 5000, "n_speech_tokens": 16,
                    "conv_channels": null, "norm_eps": 1e-5},
        "lora": {"rank": 4, "alpha": 8.0, "dropout": 0.1,
                 "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj"]}
    });
    std::fs::write(dir.join("preset.json"), preset.to_string()).unwrap();
    let wav = dir.join("a.wav");
    std::fs::copy(Path::new(ROOT).join("scripts/goldens/mel_clip.wav"), &wav).unwrap();
    let mut clips = vec!["a.wav".to_string()];
    let slow = dir.join("b.wav");
    let sox = std::process::Command::new("sox")
        .arg(&wav)
        .arg(&slow)
        .args(["tempo", "0.8"])
        .status();
    if sox.is_ok_and(|s| s.success()) {
        clips.push("b.wav".into());
    }
    let mut items = Vec::new();
    for (i, clip) in clips.iter().enumerate() {
        let gender = if i == 0 { "male" } else { "female" };
        items.push(Item {
            audio: Some(clip.clone()),
            instruction: "what is said and who says it?".into(),
            tasks: vec!["asr".into(), "gender".into()],
            transcript: Some("go forward ten meters".into()),
            gender: Some(gender.into()),
            style: Some("normal".into()),
            ..Item::default()
        });
        items.push(Item {
            audio: Some(clip.clone()),
            instruction: "how is it spoken?".into(),
            tasks: vec!["style".into()],
            style: Some(if i == 0 { "normal" } else { "slow" }.into()),
            ..Item::default()
        });
    }
    for (text, tasks) in [
        ("write down the words", vec!["asr"]),
        ("a man or a woman?", vec!["gender"]),
        ("the words and the speed", vec!["asr", "style"]),
    ] {
        items.push(Item {
            instruction: text.into(),
            tasks: tasks.into_iter().map(String::from).collect(),
            ..Item::default()
        });
    }
    Manifest::save(&dir.join("train.jsonl"), &items).unwrap();
    Some((tmp, dir))
}

/// Stage-1 options for a run on the fixture's first item alone (its own manifest beside it).
fn first_item_options(dir: &Path, out: &str) -> TrainOptions {
    let all = Manifest::load(&dir.join("train.jsonl")).unwrap();
    let one = dir.join(format!("{out}-first-item.jsonl"));
    Manifest::save(&one, &all.items[..1]).unwrap();
    let mut o = options(dir, Stage::TagAlignment, out);
    o.manifest = one;
    o
}

fn options(dir: &Path, stage: Stage, out: &str) -> TrainOptions {
    let preset = Preset::find(dir.join("preset.json").to_str().unwrap()).unwrap();
    let mut o = TrainOptions::recipe(stage, preset, dir.join("train.jsonl"), dir.join(out));
    o.feature_cache = dir.join("features");
    o.lr = 1e-2;
    o.warmup = 1;
    o.schedule = ScheduleKind::Cosine;
    o.batch = 1;
    o.accum = 1;
    o.save_every = 1000;
    o
}

fn losses(s: &osum::train::stages::TrainSummary) -> Vec<f32> {
    s.records.iter().map(|r| r.loss).collect()
}

#[test]
fn each_stage_lowers_the_loss_on_a_repeated_batch_and_leaves_a_loadable_checkpoint() {
    let Some((_tmp, dir)) = fixture("stages") else {
        return;
    };
    let dev = cpu_device();
    let mut prev: Option<PathBuf> = None;
    for (stage, out) in [
        (Stage::TagAlignment, "s1"),
        (Stage::IntentParsing, "s2"),
        (Stage::Joint, "s3"),
    ] {
        let mut o = options(&dir, stage, out);
        o.from = prev.clone();
        // One example repeated: a one-item manifest of the stage's kind.
        let all = Manifest::load(&dir.join("train.jsonl")).unwrap();
        let keep: Vec<Item> = all
            .items
            .into_iter()
            .filter(|i| i.audio.is_some() == stage.uses_audio())
            .take(1)
            .collect();
        let one = dir.join(format!("one-{out}.jsonl"));
        Manifest::save(&one, &keep).unwrap();
        o.manifest = one;
        o.steps = Some(12);
        o.lr = 1e-2;
        o.lora_dropout = Some(0.0);
        let s = train(&o, &dev, &mut |_, _| {}).unwrap();
        let l = losses(&s);
        assert_eq!(l.len(), 12);
        assert!(
            l[11] < 0.5 * l[0],
            "stage {}: the loss did not fall: {l:?}",
            stage.number()
        );
        for f in [
            "adapter.safetensors",
            "lora.safetensors",
            "trainer_state.safetensors",
            LOG_FILE,
            CURVE_FILE,
        ] {
            assert!(
                dir.join(out).join(f).exists(),
                "stage {}: no {f}",
                stage.number()
            );
        }
        let log = std::fs::read_to_string(dir.join(out).join(LOG_FILE)).unwrap();
        assert_eq!(log.lines().count(), 12);
        // The checkpoint is what `osum ask --checkpoint` opens.
        let m = OsumModel::open(o.preset.clone(), Some(&dir.join(out)), &dev).unwrap();
        assert!(m.trained);
        assert!(!m.text.llm.lora_parameters().is_empty());
        prev = Some(dir.join(out));
    }
}

/// Stage I mixes the manifest's text QA items in (REFERENCE §7), prompted with their own question
/// and trained on `<chat>` + the answer; stages II and III leave them out unless told to mix them
/// in (`--text-qa all`), and so does a stage I without the answer loss (nothing else could use
/// them). A stage I run over one clip and one text QA item lowers the loss on both.
#[test]
fn stage_one_mixes_in_text_qa_items_and_later_stages_only_when_told() {
    let Some((_tmp, dir)) = fixture("text-qa") else {
        return;
    };
    let dev = cpu_device();
    let qa = Item {
        instruction: "What is the plural of \"box\"?".into(),
        tasks: vec!["chat".into()],
        answer: Some("boxes".into()),
        ..Item::default()
    };
    let mut all = Manifest::load(&dir.join("train.jsonl")).unwrap().items;
    all.push(qa.clone());
    Manifest::save(&dir.join("train.jsonl"), &all).unwrap();
    let manifest = Manifest::load(&dir.join("train.jsonl")).unwrap();
    let preset = Preset::find(dir.join("preset.json").to_str().unwrap()).unwrap();
    let model = OsumModel::open(preset, None, &dev).unwrap();
    let text_only = |stage, text_qa| -> Vec<Example> {
        examples(stage, &manifest, &model, AuxLabels::default(), text_qa)
            .unwrap()
            .into_iter()
            .filter(|e| e.audio.is_none())
            .collect()
    };
    let mixed = text_only(Stage::TagAlignment, true);
    assert_eq!(mixed.len(), 1);
    assert_eq!(mixed[0].instruction, qa.instruction);
    let mut want = model.text.tokenizer.encode("<chat>boxes").unwrap();
    want.push(model.answer_end_id().unwrap());
    assert_eq!(mixed[0].target, want);
    assert!(text_only(Stage::TagAlignment, false).is_empty());
    let intents = text_only(Stage::IntentParsing, false);
    assert_eq!(intents.len(), 3);
    assert!(intents.iter().all(|e| e.instruction != qa.instruction));
    // Mixed into stages II and III too (`--text-qa all`), with the same prompt and target.
    let with_qa = text_only(Stage::IntentParsing, true);
    assert_eq!(with_qa.len(), 4);
    assert!(with_qa.iter().any(|e| e.target == want));
    let joint = text_only(Stage::Joint, true);
    assert_eq!(joint.len(), 1);
    assert_eq!(
        (&joint[0].instruction, &joint[0].target),
        (&qa.instruction, &want)
    );
    assert!(text_only(Stage::Joint, false).is_empty());
    let which = |mix: TextQaMix| {
        [Stage::TagAlignment, Stage::IntentParsing, Stage::Joint].map(|s| mix.in_stage(s))
    };
    assert_eq!(which(TextQaMix::StageOne), [true, false, false]);
    assert_eq!(which(TextQaMix::Every), [true, true, true]);
    assert_eq!(which(TextQaMix::Off), [false, false, false]);

    let mut o = first_item_options(&dir, "s1-qa");
    Manifest::save(&o.manifest, &[all[0].clone(), qa]).unwrap();
    o.batch = 2;
    o.steps = Some(12);
    o.lora_dropout = Some(0.0);
    let s = train(&o, &dev, &mut |_, _| {}).unwrap();
    assert_eq!((s.examples, s.text_qa_examples), (2, 1));
    let l = losses(&s);
    assert!(l[11] < 0.5 * l[0], "the loss did not fall: {l:?}");
}

#[test]
fn ctc_only_training_lowers_the_ctc_loss_without_running_the_llm() {
    let Some((_tmp, dir)) = fixture("ctc") else {
        return;
    };
    let dev = cpu_device();
    // The first item: audio with a transcript.
    let mut o = first_item_options(&dir, "c1");
    o.steps = Some(12);
    o.ctc_weight = 1.0;
    o.llm_weight = 0.0;
    let s = train(&o, &dev, &mut |_, _| {}).unwrap();
    let ctc: Vec<f32> = s.records.iter().map(|r| r.ctc_loss.unwrap()).collect();
    assert!(ctc[11] < 0.5 * ctc[0], "the CTC loss did not fall: {ctc:?}");
    assert_eq!(
        losses(&s),
        ctc,
        "with --llm-weight 0 the objective is the CTC term"
    );
    assert!(s
        .records
        .iter()
        .all(|r| r.tokens == 0 && r.target_tokens == 0));
    assert_eq!(s.ctc_skipped, 0);
    // The LLM never ran, so its LoRA B matrices are still the zeros they start as.
    let m = OsumModel::open(o.preset.clone(), Some(&dir.join("c1")), &dev).unwrap();
    for (name, t) in m.text.llm.lora_parameters() {
        if name.contains("lora_B") {
            assert!(
                t.to_vec::<f32>().unwrap().iter().all(|&x| x == 0.0),
                "{name}"
            );
        }
    }
    // A CTC-only run stopped after step 6 resumes to the same losses (the LoRA, which does not
    // train here, has no optimizer moments in the checkpoint and must not be asked for them).
    let mut first = o.clone();
    first.out = dir.join("c1-split");
    first.save_every = 3;
    first.stop_after = Some(6);
    train(&first, &dev, &mut |_, _| {}).unwrap();
    let mut again = first.clone();
    again.stop_after = None;
    again.resume = true;
    let resumed = train(&again, &dev, &mut |_, _| {}).unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&losses(&resumed)), bits(&ctc), "resumed CTC-only run");
}

#[test]
fn attribute_alignment_alone_lowers_its_loss_without_running_the_llm() {
    let Some((_tmp, dir)) = fixture("attr") else {
        return;
    };
    let dev = cpu_device();
    // The first item: audio labelled male and normal.
    let mut o = first_item_options(&dir, "a1");
    o.lr = 1e-3;
    o.steps = Some(12);
    o.attr_weight = 1.0;
    o.llm_weight = 0.0;
    let s = train(&o, &dev, &mut |_, _| {}).unwrap();
    let attr: Vec<f32> = s.records.iter().map(|r| r.attr_loss.unwrap()).collect();
    let (first, last) = (attr[..4].iter().sum::<f32>(), attr[8..].iter().sum::<f32>());
    assert!(
        last < 0.5 * first,
        "the attribute loss did not fall: {attr:?}"
    );
    assert_eq!(
        losses(&s),
        attr,
        "with only --attr-weight the objective is its term"
    );
    assert!(s
        .records
        .iter()
        .all(|r| r.ctc_loss.is_none() && r.tokens == 0));
    // The JSONL log carries the term per step.
    let state = std::fs::read_to_string(dir.join("a1").join(LOG_FILE)).unwrap();
    assert!(state.contains("\"attr_loss\""), "{state}");
}

#[test]
fn a_label_outside_its_task_set_is_refused_by_the_attribute_alignment() {
    let item = Item {
        audio: Some("a.wav".into()),
        tasks: vec!["gender".into()],
        gender: Some("robot".into()),
        ..Item::default()
    };
    let e = osum::train::attributes::AttributeAlignment::targets(&item).unwrap_err();
    assert!(e.contains("gender label \"robot\""), "{e}");
    let item = Item {
        gender: Some("female".into()),
        style: Some("whisper".into()),
        ..item
    };
    let t = osum::train::attributes::AttributeAlignment::targets(&item).unwrap();
    assert_eq!(t, vec![(Task::Gender, 1), (Task::Style, 1)]);
}

#[test]
fn loss_weights_that_train_nothing_or_ctc_without_speech_are_refused() {
    let Some((_tmp, dir)) = fixture("weights") else {
        return;
    };
    let dev = cpu_device();
    let mut o = options(&dir, Stage::TagAlignment, "w1");
    o.llm_weight = 0.0;
    let e = train(&o, &dev, &mut |_, _| {}).unwrap_err();
    assert!(
        e.contains("--llm-weight 0 needs --ctc-weight or --attr-weight"),
        "{e}"
    );
    o.ctc_weight = f32::NAN;
    let e = train(&o, &dev, &mut |_, _| {}).unwrap_err();
    assert!(
        e.contains("--ctc-weight must be a non-negative number"),
        "{e}"
    );
    let mut o = options(&dir, Stage::IntentParsing, "w2");
    o.ctc_weight = 0.5;
    let e = train(&o, &dev, &mut |_, _| {}).unwrap_err();
    assert!(e.contains("stage 2 trains no adapter"), "{e}");
    o.ctc_weight = 0.0;
    o.attr_weight = 0.5;
    let e = train(&o, &dev, &mut |_, _| {}).unwrap_err();
    assert!(e.contains("--attr-weight needs speech"), "{e}");
    o.attr_weight = -1.0;
    let e = train(&o, &dev, &mut |_, _| {}).unwrap_err();
    assert!(e.contains("--attr-weight must be a non-negative"), "{e}");
}

#[test]
fn stage_two_without_a_previous_checkpoint_is_refused() {
    let Some((_tmp, dir)) = fixture("nofrom") else {
        return;
    };
    let o = options(&dir, Stage::IntentParsing, "s2");
    let e = train(&o, &cpu_device(), &mut |_, _| {}).unwrap_err();
    assert!(e.contains("pass --from"), "{e}");
}

#[test]
fn resuming_after_a_stop_repeats_the_uninterrupted_trajectory_bit_for_bit() {
    let Some((_tmp, dir)) = fixture("resume") else {
        return;
    };
    let dev = cpu_device();
    let setup = |out: &str| {
        let mut o = options(&dir, Stage::TagAlignment, out);
        o.lr = 3e-3;
        o.steps = Some(6);
        o.batch = 2;
        o.accum = 2;
        o.save_every = 2;
        o.lora_dropout = Some(0.1);
        o
    };
    let whole = train(&setup("whole"), &dev, &mut |_, _| {}).unwrap();
    // Stop at step 3, as a kill after the step-2 checkpoint would; step 3 is redone on resume.
    let mut first = setup("split");
    first.stop_after = Some(3);
    let part = train(&first, &dev, &mut |_, _| {}).unwrap();
    assert_eq!(part.step, 3);
    let mut again = setup("split");
    again.resume = true;
    let resumed = train(&again, &dev, &mut |_, _| {}).unwrap();
    assert_eq!(resumed.records.first().map(|r| r.step), Some(1));
    let (a, b) = (losses(&whole), losses(&resumed));
    assert_eq!(a.len(), 6);
    assert_eq!(
        a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        b.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        "uninterrupted {a:?} vs resumed {b:?}"
    );
    // The log on disk is the same single trajectory.
    let log = std::fs::read_to_string(dir.join("split").join(LOG_FILE)).unwrap();
    assert_eq!(log.lines().count(), 6);
    // The same stage with other settings does not resume.
    let mut other = setup("split");
    other.resume = true;
    other.seed = 9;
    let e = train(&other, &dev, &mut |_, _| {}).unwrap_err();
    assert!(e.contains("`seed` was 1"), "{e}");
}

#[test]
fn a_non_finite_loss_stops_training_naming_the_step_and_tensor() {
    let Some((_tmp, dir)) = fixture("nan") else {
        return;
    };
    let mut o = options(&dir, Stage::TagAlignment, "s1");
    o.lr = 1e30;
    o.clip = 1e30;
    o.steps = Some(5);
    o.lora_dropout = Some(0.0);
    let e = train(&o, &cpu_device(), &mut |_, _| {}).unwrap_err();
    assert!(
        e.starts_with("step ") && (e.contains("the loss is") || e.contains("gradient norm is")),
        "{e}"
    );
    // Names where it diverged: the tensor (adapter/… or lora/…) or that all are finite.
    assert!(
        e.contains("first non-finite") && (e.contains("adapter/") || e.contains("lora/"))
            || e.contains(" is finite"),
        "{e}"
    );
    assert!(e.contains("the last checkpoint"), "{e}");
}

/// A preset's `encoder_taps` put the named encoder layers side by side as the adapter's input
/// (checked against `enc_dim`), and a tap the encoder lacks is an error naming it.
#[test]
fn encoder_taps_give_the_adapter_the_named_layers_side_by_side() {
    let Some((_tmp, dir)) = fixture("taps") else {
        return;
    };
    let dev = cpu_device();
    let base = Preset::find(dir.join("preset.json").to_str().unwrap()).unwrap();
    let with = |taps: &[&str], enc_dim: usize| {
        let mut p = base.clone();
        p.encoder_taps = Some(taps.iter().map(|t| t.to_string()).collect());
        p.adapter.as_mut().unwrap().enc_dim = enc_dim;
        OsumModel::open(p, None, &dev)
    };
    let model = with(&["stem", "ln_post"], 768).unwrap();
    let samples = osum::model::audio::load(dir.join("a.wav"), None).unwrap();
    let feats = model.encoder_features(&samples).unwrap();
    let layers = model.encoder_layers(&samples).unwrap();
    let t = layers[0].shape()[1];
    assert_eq!(feats.shape(), &[1, t, 768]);
    for (half, layer) in [(0, &layers[0]), (1, &layers[layers.len() - 1])] {
        let got = feats
            .narrow(2, half * 384, 384)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(got, layer.to_vec::<f32>().unwrap(), "tap {half}");
    }
    // The adapter runs on them.
    assert!(model.speech_from_features(&feats).is_ok());
    let e = with(&["stem", "ln_post"], 384).err().unwrap();
    assert!(e.contains("enc_dim is 384") && e.contains("768"), "{e}");
    let e = with(&["block9"], 384).err().unwrap();
    assert!(e.contains("block9") && e.contains("encoder_taps"), "{e}");
}

#[test]
fn a_right_padded_batch_scores_each_item_as_if_it_were_alone() {
    let Some((_tmp, dir)) = fixture("padding") else {
        return;
    };
    let dev = cpu_device();
    let preset = Preset::find(dir.join("preset.json").to_str().unwrap()).unwrap();
    let model = OsumModel::open(preset, None, &dev).unwrap();
    let manifest = Manifest::load(&dir.join("train.jsonl")).unwrap();
    let mut exs = examples(Stage::Joint, &manifest, &model, AuxLabels::default(), false).unwrap();
    exs.truncate(3);
    let speech: Vec<Option<Tensor>> = exs
        .iter()
        .map(|e| {
            let samples = osum::model::audio::load(e.audio.as_ref().unwrap(), None).unwrap();
            let f = model.encoder_features(&samples).unwrap();
            Some(model.speech_from_features(&f).unwrap())
        })
        .collect();
    let refs: Vec<&Example> = exs.iter().collect();
    let together = batch_loss(&model, &refs, &speech).unwrap();
    assert!(
        together.padded_tokens > together.tokens,
        "the items must differ in length"
    );
    let (mut sum, mut n) = (0.0f64, 0usize);
    for (e, s) in refs.iter().zip(&speech) {
        let alone = batch_loss(&model, &[*e], std::slice::from_ref(s)).unwrap();
        sum += alone.loss.to_scalar_f32().unwrap() as f64 * alone.target_tokens as f64;
        n += alone.target_tokens;
    }
    let want = sum / n as f64;
    let got = together.loss.to_scalar_f32().unwrap() as f64;
    // Same sums in another order (batched GEMMs): f32 rounding only.
    assert!(
        (got - want).abs() < 1e-5 * want.abs().max(1.0),
        "{got} vs {want}"
    );
}

#[test]
fn the_cli_trains_a_stage_and_refuses_a_bad_one_with_exit_code_1() {
    let Some((_tmp, dir)) = fixture("cli") else {
        return;
    };
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_osum"))
            .arg("train")
            .arg("--preset")
            .arg(dir.join("preset.json"))
            .arg("--data")
            .arg(&dir)
            .arg("--out")
            .arg(dir.join("out"))
            .arg("--feature-cache")
            .arg(dir.join("features"))
            .args(["--steps", "2", "--batch", "2"])
            .args(extra)
            .env("OSUM_THREADS", "2")
            .output()
            .unwrap()
    };
    let ok = run(&["--stage", "1"]);
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(out.contains("stage 1 done: step 2/2"), "{out}");
    assert!(out.contains("items/s") && out.contains("tokens/s"), "{out}");
    let svg = std::fs::read_to_string(dir.join("out").join(CURVE_FILE)).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 2);
    let bad = run(&["--stage", "4"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--stage must be 1, 2 or 3"), "{err}");
}

/// Crash safety (issue 8): a run killed with SIGKILL while it writes a checkpoint leaves the
/// previous checkpoint intact, and `--resume` from it repeats the uninterrupted run's losses
/// bit for bit. The kill lands between a checkpoint's fsync and its rename (the writer is
/// paused there by `OSUM_TEST_PAUSE_BEFORE_RENAME`), the last moment before it would count.
#[test]
fn a_run_killed_during_a_checkpoint_write_resumes_to_the_same_losses() {
    use osum::train::atomic::partial_path;
    use osum::train::checkpoint::STATE_FILE;
    let Some((_tmp, dir)) = fixture("kill") else {
        return;
    };
    let cmd = |out: &str, extra: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_osum"));
        c.arg("train")
            .arg("--preset")
            .arg(dir.join("preset.json"))
            .arg("--data")
            .arg(&dir)
            .arg("--out")
            .arg(dir.join(out))
            .arg("--feature-cache")
            .arg(dir.join("features"))
            .args([
                "--stage",
                "1",
                "--steps",
                "6",
                "--save-every",
                "2",
                "--batch",
                "2",
            ])
            .args(["--lr", "0.01", "--warmup", "1"])
            .args(extra)
            .env("OSUM_THREADS", "2")
            .env_remove("OSUM_TEST_PAUSE_BEFORE_RENAME");
        c
    };
    let log_losses = |out: &str| -> Vec<(u64, f32)> {
        std::fs::read_to_string(dir.join(out).join(LOG_FILE))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["step"].as_u64().unwrap(),
                    v["loss"].as_f64().unwrap() as f32,
                )
            })
            .collect()
    };
    let whole = cmd("whole", &[]).output().unwrap();
    assert!(
        whole.status.success(),
        "{}",
        String::from_utf8_lossy(&whole.stderr)
    );
    let want = log_losses("whole");
    assert_eq!(want.len(), 6);

    // The killed run: wait until the step-2 checkpoint is in place and the step-4 one is
    // half-written (its partial file exists, the rename has not happened), then SIGKILL.
    let state = dir.join("killed").join(STATE_FILE);
    let partial = partial_path(&state);
    let mut child = cmd("killed", &[])
        .env("OSUM_TEST_PAUSE_BEFORE_RENAME", "3000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    let step_of = |d: &Path| osum::train::checkpoint::load(d).map(|l| l.state.step).ok();
    while !(step_of(&dir.join("killed")) == Some(2) && partial.exists()) {
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        assert!(t0.elapsed().as_secs() < 600, "no second checkpoint write");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    // The last checkpoint is the whole step-2 one.
    let saved = osum::train::checkpoint::load(&dir.join("killed")).expect("intact checkpoint");
    assert_eq!(saved.state.step, 2);

    let resumed = cmd("killed", &["--resume"]).output().unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let got = log_losses("killed");
    assert_eq!(got, want, "resumed trajectory differs");
}
