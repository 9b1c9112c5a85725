//! Natural-language instructions from paraphrase templates (DATA.md "Instructions"): for every task
//! a list of imperative clauses ("transcribe the audio") and of whole questions ("is that a man or
//! a woman speaking?"), wrappers that make a clause a sentence ("Could you …?") and connectors that
//! join the clauses of a task combination ("first …, then …").
//!
//! Every list is split by position, fixed across seeds: every fourth entry (every third question)
//! belongs to the held-out side. Training and dev instructions are built only from training
//! entries and test instructions only from held-out ones, so no test wording — not even a clause
//! of it — appears in training.
//!
//! Entries appended after a list's last held-out one are training-only; they widen training
//! without changing a single test instruction. They were added because words that name the audio
//! ("recording", "clip", "hear") first occurred almost only in ASR and event wordings, and a model
//! trained on them read any such word as a request for a transcript. The appended entries name the
//! audio for every task (and give ASR wordings that do not); none is a held-out wording.

use crate::engine::Rng;
use crate::model::tags::Task;

/// Imperative clauses per task (lowercase, no final punctuation).
fn clauses(task: Task) -> &'static [&'static str] {
    match task {
        Task::Asr => &[
            "transcribe the audio",
            "write down what is said",
            "tell me what the speaker says",
            "type out the spoken words",
            "give me a transcript of the recording",
            "convert the speech to text",
            "write out exactly what you hear",
            "spell out what the person is saying",
            "turn this recording into text",
            "note down the words in the clip",
            "put the spoken sentence into writing",
            "produce a transcription of this clip",
            "repeat the sentence word for word",
            "give me the exact words",
            "write the sentence down",
        ],
        Task::Gender => &[
            "tell me the speaker's gender",
            "say whether the voice is male or female",
            "identify the gender of the speaker",
            "determine if a man or a woman is talking",
            "classify the speaker as male or female",
            "tell me if the speaker is a man or a woman",
            "guess the gender of the voice",
            "work out whether this is a male or a female voice",
            "decide the gender of whoever is speaking",
            "label the speaker's gender",
            "judge whether the voice belongs to a man or a woman",
            "report the sex of the talker",
            "tell me whether the voice in the recording is male or female",
            "say if the person you hear is a man or a woman",
            "identify the gender of the voice in this audio",
        ],
        Task::Age => &[
            "estimate the speaker's age group",
            "tell me whether the speaker is a child, an adult or an old person",
            "guess how old the speaker is",
            "identify the age range of the voice",
            "classify the speaker's age",
            "say if the voice belongs to a child, an adult or a senior",
            "determine the age of the person talking",
            "tell me the approximate age of the speaker",
            "judge whether the talker is young, grown up or elderly",
            "work out the speaker's age bracket",
            "label the age of the voice",
            "report which age group the speaker is in",
            "tell me the age group of the person in the recording",
            "say whether the voice you hear is a child's, an adult's or an old person's",
            "estimate how old the person in this audio is",
        ],
        Task::Emotion => &[
            "tell me the speaker's emotion",
            "identify the emotion in the voice",
            "describe how the speaker feels",
            "recognize the emotional state of the speaker",
            "classify the mood of the voice",
            "say what emotion the speaker is expressing",
            "determine whether the speaker sounds happy, sad, angry or something else",
            "detect the feeling in this voice",
            "report the speaker's mood",
            "judge the emotional tone of the speech",
            "label the emotion of the talker",
            "work out how the person is feeling",
            "tell me what emotion you hear in the recording",
            "describe the mood of the voice in this audio",
            "say how the person in the clip feels",
        ],
        Task::Style => &[
            "describe the speaking style",
            "tell me how the person is speaking",
            "identify the speaking style",
            "say whether the speech is normal, whispered, fast, slow or shouted",
            "classify the manner of speaking",
            "determine the delivery style of the speaker",
            "report how the words are delivered",
            "recognize the speaking style of the clip",
            "judge whether the speaker whispers, shouts or talks normally",
            "label the style of the speech",
            "work out the speaking manner",
            "tell me the style of delivery",
            "describe how the words in the recording are spoken",
            "tell me the speaking style you hear in this audio",
            "say whether the person in the clip whispers, shouts or speaks normally",
        ],
        Task::Event => &[
            "name the sound event in the clip",
            "tell me which non-speech sound you hear",
            "identify the background sound",
            "detect the vocal event in the recording",
            "say what sound, besides speech, occurs",
            "classify the sound event",
            "report any laugh, cough or other sound you hear",
            "determine which sound event is present",
            "recognize the extra sound in the audio",
            "label the non-speech event",
            "work out what other noise is in the recording",
            "tell me what sound accompanies the speech",
            "tell me which sound, other than the voice, is there",
            "name the noise that occurs alongside the words",
            "identify any sound that is not speech",
        ],
        Task::Srwt | Task::Chat => &[],
    }
}

/// Whole questions per task (single-task instructions only).
fn questions(task: Task) -> &'static [&'static str] {
    match task {
        Task::Asr => &[
            "What is being said?",
            "What does the speaker say?",
            "What are the words in this recording?",
            "Can you tell what this person is saying?",
            "What did you hear in this clip?",
            "Which sentence is spoken here?",
            "What sentence does the person say?",
            "What exactly was said?",
        ],
        Task::Gender => &[
            "Is that a man or a woman speaking?",
            "Is the speaker male or female?",
            "Who is talking here, a man or a woman?",
            "What gender is the speaker?",
            "Does this voice sound male or female?",
            "Is this a male voice or a female voice?",
            "Is the voice in this recording a man's or a woman's?",
            "Do you hear a male or a female speaker?",
        ],
        Task::Age => &[
            "How old does the speaker sound?",
            "Is this a child, an adult or an old person?",
            "What age group is the speaker in?",
            "Does the voice sound young or old?",
            "Roughly how old is the person speaking?",
            "Which age range fits this voice?",
            "How old is the person in the recording?",
            "Do you hear a child, an adult or an elderly speaker?",
        ],
        Task::Emotion => &[
            "How does the speaker feel?",
            "What emotion do you hear?",
            "Is the speaker happy, sad or angry?",
            "What is the mood of this voice?",
            "Which emotion does the voice express?",
            "How is the person feeling?",
            "What feeling do you hear in this audio?",
            "Does the person in the clip sound happy, sad or angry?",
        ],
        Task::Style => &[
            "How is the person speaking?",
            "Is the speaker whispering, shouting or speaking normally?",
            "What speaking style is this?",
            "Is this speech fast, slow or normal?",
            "In what manner is the speaker talking?",
            "Which speaking style do you hear?",
            "How are the words in this recording delivered?",
            "Do you hear whispering, shouting or normal speech?",
        ],
        Task::Event => &[
            "What sound can you hear besides the speech?",
            "Is there a laugh, a cough or another sound?",
            "Which sound event occurs in this clip?",
            "What non-speech sound is in the recording?",
            "What other noise do you hear?",
            "Which vocal event is present?",
            "Besides the voice, what sound is in the audio?",
            "Do you hear a laugh, a cough or some other sound?",
        ],
        Task::Srwt | Task::Chat => &[],
    }
}

/// Sentence wrappers around one (possibly joined) clause; `{}` is the clause.
const WRAPPERS: &[&str] = &[
    "{}.",
    "Please {}.",
    "Could you {}?",
    "I'd like you to {}.",
    "{}, please.",
    "Can you {}?",
    "Kindly {}.",
    "Listen and {}.",
    "Based on the audio, {}.",
    "After hearing the clip, {}.",
    "Here is a recording; {}.",
];

/// Training-only wrappers, drawn beside the training side of [`WRAPPERS`] (module doc: appended
/// entries widen training without changing a test instruction). They are a list of their own
/// because the next entry of `WRAPPERS` would fall on the held-out side. Models trained on nine
/// frames read a frame they had never seen ("Listen and …") as a request for an extra task,
/// mostly `<style>`; more frames, several of them an action joined to the request by "and", teach
/// that a frame asks for nothing. None contains a content word of a held-out wrapper ("listen",
/// "I'd", "like").
const TRAINING_WRAPPERS: &[&str] = &[
    "Go ahead and {}.",
    "Pay attention to the voice and {}.",
    "Play the recording and {}.",
    "Take a moment and {}.",
    "Would you {}?",
    "Now {}.",
    "Your task: {}.",
    "Using only the audio, {}.",
    "For this recording, {}.",
    "Once the clip has ended, {}.",
    "Help me out: {}.",
    "Just {}, nothing more.",
];

/// The wrappers of one side of the split: the held-out entries of [`WRAPPERS`], or its training
/// entries and [`TRAINING_WRAPPERS`].
fn wrappers(held_out: bool) -> Vec<&'static str> {
    let mut out = side(WRAPPERS, PERIOD, held_out);
    if !held_out {
        out.extend_from_slice(TRAINING_WRAPPERS);
    }
    out
}

/// Connectors for two clauses.
const JOIN2: &[&str] = &[
    "{a} and {b}",
    "{a}, and also {b}",
    "{a}, then {b}",
    "first {a}, and after that {b}",
    "{a}; also {b}",
    "{a} and then {b}",
    "{a}, plus {b}",
    "{a}, and in addition {b}",
];

/// Connectors for three clauses.
const JOIN3: &[&str] = &[
    "{a}, {b} and {c}",
    "{a}, then {b}, and finally {c}",
    "first {a}, next {b}, and then {c}",
    "{a}, {b}, and last of all {c}",
    "{a}, {b}, and also {c}",
    "{a} and {b}, then {c}",
    "{a}; {b}; and {c}",
    "{a}, after that {b}, and at the end {c}",
];

/// The task combinations the benchmark asks for (tasks in answer order, Task::ALL).
pub const COMBOS: &[&[Task]] = {
    use Task::*;
    &[
        &[Asr],
        &[Event],
        &[Emotion],
        &[Style],
        &[Gender],
        &[Age],
        &[Asr, Event],
        &[Asr, Emotion],
        &[Asr, Style],
        &[Asr, Gender],
        &[Asr, Age],
        &[Event, Gender],
        &[Emotion, Gender],
        &[Style, Gender],
        &[Gender, Age],
        &[Asr, Emotion, Gender],
        &[Asr, Style, Gender],
        &[Asr, Gender, Age],
        &[Asr, Event, Gender],
    ]
};

/// Every `PERIOD`-th clause, wrapper and connector is held out (module doc).
const PERIOD: usize = 4;
/// Every `QUESTION_PERIOD`-th whole question is held out (the question lists are shorter).
const QUESTION_PERIOD: usize = 3;

/// The entries of `list` on one side of the split: every `period`-th (from `period - 1`) is held out.
fn side<T: Copy>(list: &[T], period: usize, held_out: bool) -> Vec<T> {
    list.iter()
        .enumerate()
        .filter(|(i, _)| (i % period == period - 1) == held_out)
        .map(|(_, x)| *x)
        .collect()
}

fn pick<T: Copy>(rng: &mut Rng, xs: &[T]) -> T {
    xs[rng.below(xs.len() as u64) as usize]
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A natural-language instruction asking for exactly `tasks`, from the held-out templates when
/// `held_out`. Clauses are mentioned in a random order (the answer order stays fixed).
pub fn instruction(rng: &mut Rng, tasks: &[Task], held_out: bool) -> String {
    if tasks.len() == 1 && rng.below(2) == 0 {
        let qs = side(questions(tasks[0]), QUESTION_PERIOD, held_out);
        if !qs.is_empty() {
            return pick(rng, &qs).to_string();
        }
    }
    let mut mentioned: Vec<Task> = tasks.to_vec();
    for i in (1..mentioned.len()).rev() {
        mentioned.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let parts: Vec<&str> = mentioned
        .iter()
        .map(|&t| pick(rng, &side(clauses(t), PERIOD, held_out)))
        .collect();
    let joined = match parts.as_slice() {
        [a] => a.to_string(),
        [a, b] => pick(rng, &side(JOIN2, PERIOD, held_out))
            .replace("{a}", a)
            .replace("{b}", b),
        [a, b, c, ..] => pick(rng, &side(JOIN3, PERIOD, held_out))
            .replace("{a}", a)
            .replace("{b}", b)
            .replace("{c}", c),
        [] => String::new(),
    };
    capitalize(&pick(rng, &wrappers(held_out)).replace("{}", &joined))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn many(held_out: bool) -> HashSet<String> {
        let mut rng = Rng::new(3);
        let mut out = HashSet::new();
        for _ in 0..200 {
            for combo in COMBOS {
                out.insert(instruction(&mut rng, combo, held_out));
            }
        }
        out
    }

    #[test]
    fn every_combo_has_wordings_on_both_sides() {
        for combo in COMBOS {
            for held_out in [false, true] {
                let s = instruction(&mut Rng::new(1), combo, held_out);
                assert!(
                    s.len() > 8 && s.chars().next().unwrap().is_uppercase(),
                    "{s}"
                );
            }
        }
    }

    #[test]
    fn held_out_wordings_never_occur_in_training_not_even_a_clause() {
        let train = many(false);
        let test = many(true);
        assert!(
            train.len() > 500 && test.len() > 200,
            "{} {}",
            train.len(),
            test.len()
        );
        assert!(train.is_disjoint(&test));
        for t in Task::ALL {
            for c in side(clauses(t), PERIOD, true) {
                assert!(!train.iter().any(|s| s.contains(c)), "{c}");
            }
        }
    }

    #[test]
    fn appended_entries_leave_the_held_out_side_as_it_was() {
        // The test split's wordings stay fixed while training lists grow (module doc): each list
        // keeps the held-out entries it had when the benchmark was first generated.
        for t in Task::ALL {
            if !clauses(t).is_empty() {
                assert_eq!(side(clauses(t), PERIOD, true).len(), 3, "{t:?} clauses");
                assert_eq!(
                    side(questions(t), QUESTION_PERIOD, true).len(),
                    2,
                    "{t:?} questions"
                );
            }
        }
        assert_eq!(
            side(WRAPPERS, PERIOD, true),
            ["I'd like you to {}.", "Listen and {}."]
        );
        assert_eq!(side(JOIN2, PERIOD, true).len(), 2);
        assert_eq!(side(JOIN3, PERIOD, true).len(), 2);
    }

    #[test]
    fn training_only_wrappers_stay_off_the_held_out_side_and_share_no_content_word_with_it() {
        let words = |w: &str| -> Vec<String> {
            w.to_lowercase()
                .split(|c: char| !(c.is_alphanumeric() || c == '\''))
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        };
        // Words a wrapper cannot avoid sharing; every other held-out word is content.
        const FUNCTION_WORDS: [&str; 3] = ["and", "you", "to"];
        let held_out = wrappers(true);
        assert_eq!(held_out, side(WRAPPERS, PERIOD, true));
        let content: Vec<String> = held_out
            .iter()
            .flat_map(|w| words(w))
            .filter(|x| !FUNCTION_WORDS.contains(&x.as_str()))
            .collect();
        assert!(content.contains(&"listen".to_string()), "{content:?}");
        let training = wrappers(false);
        for w in TRAINING_WRAPPERS {
            assert!(training.contains(w) && !held_out.contains(w), "{w}");
            assert!(words(w).iter().all(|x| !content.contains(x)), "{w}");
        }
    }

    #[test]
    fn side_splits_every_fourth_entry_off() {
        let xs = [0, 1, 2, 3, 4, 5, 6, 7];
        assert_eq!(side(&xs, 4, true), [3, 7]);
        assert_eq!(side(&xs, 4, false), [0, 1, 2, 4, 5, 6]);
    }
}
