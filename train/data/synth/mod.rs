//! `osum synth`: the seeded synthetic speech benchmark (DATA.md "A synthetic benchmark", issue 6).
//!
//! The generator first makes a complete **plan** from the seed alone, serially — sentences, voices,
//! labels, sound events, instructions, manifest lines — and only then renders the clips in
//! parallel. Every clip is rendered from its own plan entry (and its own seed for noise), so the
//! manifests are identical byte for byte for a given seed and size, and so are the WAVs as long as
//! the installed espeak-ng/flite/sox are the same versions.
//!
//! Splits:
//! - `train`: training voices, 70% of the sentences, training instruction templates, plus
//!   text-only intent items (stage II: no audio, target = intent tags) and, when asked for
//!   (`--text-qa N`), text QA items for stage I ([`text_qa`]), with held-out ones in
//!   `test-text-qa.jsonl` for `osum eval`;
//! - `dev`: training voices, another 10% of the sentences, training templates, plus text-only
//!   intent items;
//! - `test`: held-out voices ([`voices::VOICES`]), the remaining 20% of the sentences, held-out
//!   templates ([`instructions`]); audio items only.

pub mod dsp;
pub mod events;
pub mod instructions;
pub mod made_voices;
pub mod prosody;
pub mod render;
pub mod sentences;
pub mod text_qa;
pub mod voices;
pub mod whispering;

use crate::engine::Rng;
use crate::model::tags::Task;
use crate::train::atomic::write_atomic;
use crate::train::data::{Item, Manifest};
use prosody::Prosody;
use rayon::prelude::*;
use render::{ClipSpec, EventSpec, Placement};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use voices::Voice;

/// The marker file a benchmark folder holds (its plan summary); `osum synth` only overwrites a
/// folder that is empty or has one.
pub const INFO_FILE: &str = "synth.json";

/// How big a benchmark to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// A few dozen clips: for tests (seconds).
    Tiny,
    /// Hundreds of clips: quick experiments.
    Small,
    /// Thousands of clips: the benchmark the trained osum-tiny is trained and measured on.
    Default,
}

/// The counts a size stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Distinct sentences in the pool (split 70/10/20).
    pub sentences: usize,
    /// Clips per split.
    pub train_clips: usize,
    /// Dev clips.
    pub dev_clips: usize,
    /// Test clips.
    pub test_clips: usize,
    /// Manifest lines per training clip (different task combinations and wordings).
    pub train_asks_per_clip: usize,
    /// Text-only intent items in train.
    pub train_text_only: usize,
    /// Text-only intent items in dev.
    pub dev_text_only: usize,
}

impl Size {
    /// `tiny`, `small` or `default`.
    pub fn from_name(name: &str) -> Option<Size> {
        match name {
            "tiny" => Some(Size::Tiny),
            "small" => Some(Size::Small),
            "default" => Some(Size::Default),
            _ => None,
        }
    }

    /// The name [`Size::from_name`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Size::Tiny => "tiny",
            Size::Small => "small",
            Size::Default => "default",
        }
    }

    /// The counts of this size.
    pub fn counts(self) -> Counts {
        match self {
            Size::Tiny => Counts {
                sentences: 60,
                train_clips: 24,
                dev_clips: 6,
                test_clips: 10,
                train_asks_per_clip: 1,
                train_text_only: 24,
                dev_text_only: 6,
            },
            Size::Small => Counts {
                sentences: 500,
                train_clips: 400,
                dev_clips: 50,
                test_clips: 150,
                train_asks_per_clip: 2,
                train_text_only: 400,
                dev_text_only: 50,
            },
            Size::Default => Counts {
                sentences: 2500,
                train_clips: 3000,
                dev_clips: 200,
                test_clips: 600,
                train_asks_per_clip: 2,
                train_text_only: 3000,
                dev_text_only: 200,
            },
        }
    }
}

/// One split of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Training.
    Train,
    /// Validation (seen voices and templates, unseen sentences).
    Dev,
    /// Held-out voices, sentences and templates.
    Test,
}

impl Split {
    /// All splits, in file order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Dev, Split::Test];

    /// `train`, `dev`, `test` (also the manifest's file stem).
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }

    fn held_out(self) -> bool {
        self == Split::Test
    }
}

/// The whole plan: what to render and what to write.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Clips to render, all splits.
    pub clips: Vec<ClipSpec>,
    /// Manifest lines per split, in [`Split::ALL`] order.
    pub manifests: Vec<(Split, Vec<Item>)>,
}

/// Share of clips with a sound event mixed in.
const EVENT_SHARE: f32 = 0.3;

fn pick<T: Copy>(rng: &mut Rng, xs: &[T]) -> T {
    xs[rng.below(xs.len() as u64) as usize]
}

fn between(rng: &mut Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.uniform()
}

fn shuffle<T>(rng: &mut Rng, xs: &mut [T]) {
    for i in (1..xs.len()).rev() {
        xs.swap(i, rng.below(i as u64 + 1) as usize);
    }
}

/// The labels of one clip, before instructions are chosen.
struct ClipLabels {
    style: Option<&'static str>,
    emotion: Option<&'static str>,
    age: Option<&'static str>,
    event: Option<&'static str>,
}

impl ClipLabels {
    fn has(&self, t: Task) -> bool {
        match t {
            Task::Asr | Task::Gender => true,
            Task::Style => self.style.is_some(),
            Task::Emotion => self.emotion.is_some(),
            Task::Age => self.age.is_some(),
            Task::Event => self.event.is_some(),
            Task::Srwt | Task::Chat => false,
        }
    }
}

/// One varied factor (see [`prosody`]) and its rendering.
fn choose_factor(rng: &mut Rng) -> (ClipLabels, Prosody) {
    let mut labels = ClipLabels {
        style: None,
        emotion: None,
        age: None,
        event: None,
    };
    let found = |p: Option<Prosody>| p.unwrap_or(prosody::PLAIN);
    let p = match rng.below(3) {
        0 => {
            let s = pick(rng, Task::Style.labels().unwrap_or(&["normal"]));
            labels.style = Some(s);
            found(prosody::style(s))
        }
        1 => {
            let e = pick(rng, prosody::EMOTIONS);
            labels.emotion = Some(e);
            found(prosody::emotion(e))
        }
        _ => {
            let a = pick(rng, Task::Age.labels().unwrap_or(&["adult"]));
            labels.age = Some(a);
            found(prosody::age(a))
        }
    };
    (labels, p)
}

/// Make the plan for `seed` and `size` (no I/O).
pub fn plan(seed: u64, size: Size) -> Plan {
    let c = size.counts();
    let mut rng = Rng::new(seed);
    let mut pool = sentences::distinct_sentences(&mut rng, c.sentences);
    shuffle(&mut rng, &mut pool);
    let n_test = pool.len() / 5;
    let n_dev = pool.len() / 10;
    let test_sents = pool[..n_test].to_vec();
    let dev_sents = pool[n_test..n_test + n_dev].to_vec();
    let train_sents = pool[n_test + n_dev..].to_vec();
    let mut clips = Vec::new();
    let mut manifests = Vec::new();
    for split in Split::ALL {
        let (n_clips, asks, n_text, sents) = match split {
            Split::Train => (
                c.train_clips,
                c.train_asks_per_clip,
                c.train_text_only,
                &train_sents,
            ),
            Split::Dev => (c.dev_clips, 1, c.dev_text_only, &dev_sents),
            Split::Test => (c.test_clips, 1, 0, &test_sents),
        };
        let voices = voices::voices(split.held_out());
        let by_gender =
            |g: &str| -> Vec<Voice> { voices.iter().copied().filter(|v| v.gender == g).collect() };
        let (female, male) = (by_gender("female"), by_gender("male"));
        let mut items = Vec::new();
        for i in 0..n_clips {
            let id = format!("{}-{:05}", split.name(), i);
            let gender_pool = if rng.below(2) == 0 { &female } else { &male };
            let voice = pick(&mut rng, gender_pool);
            let text = sents[rng.below(sents.len() as u64) as usize].clone();
            let (mut labels, mut p) = choose_factor(&mut rng);
            // Per-clip jitter so no two clips of a label sound exactly alike.
            p.rate *= between(&mut rng, 0.94, 1.06);
            p.f0_semitones += between(&mut rng, -1.0, 1.0);
            p.level_db = (p.level_db + between(&mut rng, -1.5, 1.5)).min(-0.3);
            let event = (rng.uniform() < EVENT_SHARE).then(|| {
                let label = pick(&mut rng, events::EVENTS);
                let placement = pick(
                    &mut rng,
                    &[Placement::Before, Placement::After, Placement::Over],
                );
                let (gain, offset) = match placement {
                    Placement::Over => (between(&mut rng, 0.35, 0.6), between(&mut rng, 0.1, 0.6)),
                    _ => (between(&mut rng, 0.6, 1.0), between(&mut rng, 0.1, 0.4)),
                };
                EventSpec {
                    label,
                    placement,
                    gain,
                    offset,
                }
            });
            labels.event = event.as_ref().map(|e| e.label);
            let candidates: Vec<&[Task]> = instructions::COMBOS
                .iter()
                .copied()
                .filter(|combo| combo.iter().all(|&t| labels.has(t)))
                .collect();
            let audio = format!("wav/{id}.wav");
            for _ in 0..asks {
                let tasks = pick(&mut rng, &candidates);
                items.push(Item {
                    audio: Some(audio.clone()),
                    instruction: instructions::instruction(&mut rng, tasks, split.held_out()),
                    tasks: tasks.iter().map(|t| t.name().to_string()).collect(),
                    transcript: Some(text.clone()),
                    gender: Some(voice.gender.to_string()),
                    style: labels.style.map(String::from),
                    emotion: labels.emotion.map(String::from),
                    age: labels.age.map(String::from),
                    event: labels.event.map(String::from),
                    id: Some(id.clone()),
                    speaker: Some(voice.id()),
                    ..Item::default()
                });
            }
            clips.push(ClipSpec {
                id,
                voice,
                text,
                prosody: p,
                event,
                seed: rng.next_u64(),
            });
        }
        for i in 0..n_text {
            let tasks = pick(&mut rng, instructions::COMBOS);
            items.push(Item {
                instruction: instructions::instruction(&mut rng, tasks, split.held_out()),
                tasks: tasks.iter().map(|t| t.name().to_string()).collect(),
                id: Some(format!("{}-text-{:05}", split.name(), i)),
                ..Item::default()
            });
        }
        manifests.push((split, items));
    }
    Plan { clips, manifests }
}

/// What a run made.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Manifest lines per split.
    pub lines: Vec<(Split, usize)>,
    /// Clips rendered.
    pub clips: usize,
    /// Total audio, seconds.
    pub audio_seconds: f64,
    /// Longest clip, seconds.
    pub longest_seconds: f32,
    /// Held-out text QA items written to [`text_qa::TEST_FILE`] (0 without `--text-qa`).
    pub test_text_qa: usize,
}

fn prepare_out(out: &Path) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("{}: {e}", out.display());
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(fail)?;
        let empty = entries.next().is_none();
        if !empty && !out.join(INFO_FILE).exists() {
            return Err(format!(
                "{} exists and is not a benchmark folder (no {INFO_FILE}); choose an empty or new \
                 folder",
                out.display()
            ));
        }
        // A previous benchmark: its clips are replaced (a smaller run must not leave stale ones).
        let wav = out.join("wav");
        if wav.exists() {
            std::fs::remove_dir_all(&wav).map_err(fail)?;
        }
    }
    std::fs::create_dir_all(out.join("wav")).map_err(fail)?;
    std::fs::create_dir_all(out.join(".work")).map_err(fail)?;
    Ok(())
}

/// The plan's summary file: seed, size, counts, voices per split and the proxy note. Contains no
/// timings, so it is as deterministic as the manifests.
fn info_json(seed: u64, size: Size, plan: &Plan) -> serde_json::Value {
    let ids = |held_out: bool| -> Vec<String> {
        voices::voices(held_out).iter().map(Voice::id).collect()
    };
    serde_json::json!({
        "seed": seed,
        "size": size.name(),
        "counts": size.counts(),
        "lines": plan.manifests.iter().map(|(s, items)| (s.name(), items.len())).collect::<std::collections::BTreeMap<_, _>>(),
        "train_voices": ids(false),
        "test_voices": ids(true),
        "vocabulary_words": sentences::vocabulary_size(),
        "note": "age and emotion labels are prosody proxies (pitch, rate, loudness, tremolo), not real \
                 child/elderly or emotional speech; sound events are procedurally generated",
    })
}

/// Generate the benchmark into `out`: check the tools, plan, render every clip in parallel
/// (reporting `(done, total)` to `progress`), write the manifests and [`INFO_FILE`] atomically.
///
/// `text_qa` text QA items ([`text_qa`]) are appended to the training manifest and a fifth as
/// many held-out ones written to [`text_qa::TEST_FILE`]; with 0 the output is what it was before
/// they existed.
pub fn generate(
    out: &Path,
    seed: u64,
    size: Size,
    text_qa: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Summary, String> {
    render::check_tools()?;
    let mut plan = plan(seed, size);
    if let Some((_, train)) = plan.manifests.iter_mut().find(|(s, _)| *s == Split::Train) {
        train.extend(text_qa::items(seed, text_qa));
    }
    for (split, items) in &plan.manifests {
        for item in items {
            item.validate()
                .map_err(|e| format!("bug: planned {} item is invalid: {e}", split.name()))?;
        }
    }
    prepare_out(out)?;
    let work = out.join(".work");
    made_voices::prepare(&work)?;
    let done = AtomicUsize::new(0);
    let total = plan.clips.len();
    let lengths: Vec<f32> = plan
        .clips
        .par_iter()
        .map(|clip| {
            let path: PathBuf = out.join("wav").join(format!("{}.wav", clip.id));
            let secs = render::render_clip(clip, &work, &path)
                .map_err(|e| format!("clip {}: {e}", clip.id))?;
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
            Ok(secs)
        })
        .collect::<Result<_, String>>()?;
    let _ = std::fs::remove_dir_all(&work);
    for (split, items) in &plan.manifests {
        Manifest::save(&out.join(format!("{}.jsonl", split.name())), items)?;
    }
    let mut info = info_json(seed, size, &plan);
    let qa_test = out.join(text_qa::TEST_FILE);
    let mut test_text_qa = 0;
    if text_qa > 0 {
        let held_out = text_qa::held_out(seed, text_qa, text_qa::held_out_count(text_qa))?;
        Manifest::save(&qa_test, &held_out)?;
        info["counts"]["train_text_qa"] = text_qa.into();
        info["counts"]["test_text_qa"] = held_out.len().into();
        test_text_qa = held_out.len();
    } else if qa_test.exists() {
        // Left by an earlier run of this folder with --text-qa: it belongs to that run's data.
        std::fs::remove_file(&qa_test).map_err(|e| format!("{}: {e}", qa_test.display()))?;
    }
    let info = serde_json::to_string_pretty(&info).map_err(|e| e.to_string())?;
    write_atomic(&out.join(INFO_FILE), format!("{info}\n").as_bytes())?;
    Ok(Summary {
        lines: plan
            .manifests
            .iter()
            .map(|(s, items)| (*s, items.len()))
            .collect(),
        clips: total,
        audio_seconds: lengths.iter().map(|&s| s as f64).sum(),
        longest_seconds: lengths.iter().fold(0.0, |m, &s| m.max(s)),
        test_text_qa,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn plans_are_a_function_of_the_seed() {
        let a = plan(11, Size::Small);
        let b = plan(11, Size::Small);
        assert_eq!(a.clips, b.clips);
        assert_eq!(a.manifests, b.manifests);
        let c = plan(12, Size::Small);
        assert_ne!(a.manifests, c.manifests);
    }

    #[test]
    fn test_split_holds_out_voices_sentences_and_wordings() {
        let p = plan(3, Size::Small);
        let items =
            |s: Split| -> &Vec<Item> { &p.manifests.iter().find(|(x, _)| *x == s).unwrap().1 };
        let field = |s: Split, f: fn(&Item) -> Option<String>| -> HashSet<String> {
            items(s).iter().filter_map(f).collect()
        };
        for other in [Split::Train, Split::Dev] {
            assert!(field(Split::Test, |i| i.speaker.clone())
                .is_disjoint(&field(other, |i| i.speaker.clone())));
            assert!(field(Split::Test, |i| i.transcript.clone())
                .is_disjoint(&field(other, |i| i.transcript.clone())));
            assert!(field(Split::Test, |i| Some(i.instruction.clone()))
                .is_disjoint(&field(other, |i| Some(i.instruction.clone()))));
        }
        assert!(field(Split::Dev, |i| i.transcript.clone())
            .is_disjoint(&field(Split::Train, |i| i.transcript.clone())));
        // Text-only items in train and dev only; every item valid.
        assert!(items(Split::Test).iter().all(|i| i.audio.is_some()));
        let text_only = items(Split::Train)
            .iter()
            .filter(|i| i.audio.is_none())
            .count();
        assert_eq!(text_only, Size::Small.counts().train_text_only);
        for (_, its) in &p.manifests {
            for i in its {
                i.validate().unwrap();
            }
        }
    }

    #[test]
    fn labels_are_balanced_enough_to_learn() {
        let p = plan(5, Size::Default);
        let train = &p.manifests[0].1;
        let share = |f: fn(&Item) -> bool| {
            train.iter().filter(|i| f(i)).count() as f32 / train.len() as f32
        };
        let female = share(|i| i.gender.as_deref() == Some("female"));
        let male = share(|i| i.gender.as_deref() == Some("male"));
        assert!((female - male).abs() < 0.1, "{female} {male}");
        for s in Task::Style.labels().unwrap() {
            let n = train
                .iter()
                .filter(|i| i.style.as_deref() == Some(*s))
                .count();
            assert!(n > 150, "style {s}: {n}");
        }
        for e in events::EVENTS {
            let n = train
                .iter()
                .filter(|i| i.event.as_deref() == Some(*e))
                .count();
            assert!(n > 50, "event {e}: {n}");
        }
        // Every combination is asked for somewhere in training.
        for combo in instructions::COMBOS {
            let names: Vec<String> = combo.iter().map(|t| t.name().to_string()).collect();
            assert!(
                train.iter().any(|i| i.tasks == names && i.audio.is_some()),
                "{names:?}"
            );
        }
    }
}
