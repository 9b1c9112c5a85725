//! How each style, emotion and age label is rendered. Style is produced directly (rate, loudness,
//! distortion, whispering); **age and emotion are prosody proxies** — pitch, rate, loudness and
//! tremolo settings that stand in for them — not real child/elderly or emotional speech, and every
//! report of their accuracy must say so (DATA.md, issue 6 "Targets").
//!
//! Each clip varies one factor (its style, its emotion or its age) and leaves the other two at
//! their plain setting, and only that factor's label is recorded: a "fast" clip spoken "sadly"
//! would carry contradicting cues.

/// The rendering parameters of one clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Prosody {
    /// Speaking-rate multiplier (espeak-ng `-s`, flite `duration_stretch`).
    pub rate: f32,
    /// Fundamental-frequency shift in semitones (espeak-ng `-p`; flite: sox `pitch`).
    pub f0_semitones: f32,
    /// Whole-spectrum shift in semitones, formants included (sox `pitch`): the child proxy's
    /// smaller vocal tract.
    pub spectrum_semitones: f32,
    /// Final peak level in dBFS (sox `gain -n`).
    pub level_db: f32,
    /// Tremolo `(Hz, depth %)` (sox `tremolo`): the shaky-voice proxy of fear and old age.
    pub tremolo: Option<(f32, f32)>,
    /// Overdrive gain in dB (sox `overdrive`): the strained voice of shouting and anger.
    pub overdrive_db: Option<f32>,
    /// Replace voicing by noise ([`super::whispering`]).
    pub whisper: bool,
}

/// The plain setting every factor starts from.
pub const PLAIN: Prosody = Prosody {
    rate: 1.0,
    f0_semitones: 0.0,
    spectrum_semitones: 0.0,
    level_db: -6.0,
    tremolo: None,
    overdrive_db: None,
    whisper: false,
};

/// The style labels and their rendering.
pub fn style(label: &str) -> Option<Prosody> {
    Some(match label {
        "normal" => PLAIN,
        "whisper" => Prosody {
            rate: 0.95,
            level_db: -18.0,
            whisper: true,
            ..PLAIN
        },
        "fast" => Prosody { rate: 1.6, ..PLAIN },
        "slow" => Prosody {
            rate: 0.62,
            ..PLAIN
        },
        "shout" => Prosody {
            rate: 1.05,
            f0_semitones: 5.0,
            level_db: -0.5,
            overdrive_db: Some(12.0),
            ..PLAIN
        },
        _ => return None,
    })
}

/// The emotion labels the generator renders (a proxy each; `other` is not rendered).
pub const EMOTIONS: &[&str] = &[
    "neutral", "happy", "sad", "anger", "surprise", "fear", "disgust",
];

/// The emotion proxies.
pub fn emotion(label: &str) -> Option<Prosody> {
    Some(match label {
        "neutral" => PLAIN,
        "happy" => Prosody {
            rate: 1.12,
            f0_semitones: 3.0,
            level_db: -3.0,
            ..PLAIN
        },
        "sad" => Prosody {
            rate: 0.8,
            f0_semitones: -3.0,
            level_db: -14.0,
            ..PLAIN
        },
        "anger" => Prosody {
            rate: 1.15,
            f0_semitones: -1.0,
            level_db: -1.0,
            overdrive_db: Some(6.0),
            ..PLAIN
        },
        "surprise" => Prosody {
            f0_semitones: 7.0,
            level_db: -3.0,
            ..PLAIN
        },
        "fear" => Prosody {
            rate: 1.25,
            f0_semitones: 2.0,
            level_db: -9.0,
            tremolo: Some((9.0, 45.0)),
            ..PLAIN
        },
        "disgust" => Prosody {
            rate: 0.85,
            f0_semitones: -5.0,
            level_db: -8.0,
            ..PLAIN
        },
        _ => return None,
    })
}

/// The age proxies.
pub fn age(label: &str) -> Option<Prosody> {
    Some(match label {
        "adult" => PLAIN,
        "child" => Prosody {
            rate: 1.1,
            f0_semitones: 3.0,
            spectrum_semitones: 4.0,
            ..PLAIN
        },
        "old" => Prosody {
            rate: 0.82,
            f0_semitones: -2.0,
            level_db: -9.0,
            tremolo: Some((5.0, 35.0)),
            ..PLAIN
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tags::Task;

    #[test]
    fn every_rendered_label_is_in_the_task_vocabulary() {
        let styles = Task::Style.labels().unwrap();
        assert!(styles.iter().all(|s| style(s).is_some()));
        for e in EMOTIONS {
            assert!(Task::Emotion.labels().unwrap().contains(e));
            assert!(emotion(e).is_some());
        }
        for a in Task::Age.labels().unwrap() {
            assert!(age(a).is_some());
        }
        assert!(style("mumble").is_none());
    }
}
