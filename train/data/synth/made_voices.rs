//! espeak-ng voice variants made by the generator, for training only: more speakers for the
//! gender task to generalise from than the stock variant files offer.
//!
//! Why: trained with the stock voices alone, osum-tiny's gender misses on the test split sat on
//! two or three held-out voices (README, "The shipped osum-tiny"): a female voice whose formants
//! sit in the male range, a male flite voice pitched between the flite genders. A gender reading
//! learned from ~20 voices per gender keys on whatever those few voices share; many voices spread
//! over each gender's range push it towards the cues that hold across speakers.
//!
//! Each made voice is a variant file (`pitch`, `formant`, `flutter` and optionally `tone` lines,
//! the format of `espeak-ng-data/voices/!v/`) drawn from a generator seeded by the voice's name,
//! so the voices are the same for every `osum synth` seed. The ranges span the *training* stock
//! variants of the voice's gender (voices.rs), never values read off a held-out voice:
//! - pitch base: female 120–205 Hz, male 62–115 Hz; the top of the range 25–80 Hz above it;
//! - formant 1–3 frequency scale (percent of espeak's default): female 95–135, male 75–105;
//! - a spectral `tone` line (one of the stock training variants' lines) on a third of them.
//!
//! espeak-ng reads variants only from its data directory, so [`prepare`] builds one under the
//! synth's work folder: a copy of the installed phoneme data, English dictionary and languages,
//! plus the made variant files; clips of made voices are spoken with `--path` pointing there.

use super::render::{lists_variant, stdout_of};
use super::voices::{Engine, Voice, VOICES};
use crate::engine::Rng;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `tone` lines of stock training variants (anika/m8, paul, Diogo, Marco, antonio, sandro).
const TONES: &[&str] = &[
    "100 255 600 70 1200 22 2000 66 3000 12",
    "420 255 1300 130 4000 100",
    "60 250 140 100 1000 50 3500 35",
    "420 150 1200 135 3000 70 4700 40",
    "600 255 1200 255 2000 80",
    "500 210 470 70 160 155 2985 32",
];

/// FNV-1a of the name: a stable seed per voice (std's hasher is not stable across releases).
fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A uniform integer in `lo..=hi`.
fn between(rng: &mut Rng, lo: u32, hi: u32) -> u32 {
    lo + rng.below((hi - lo + 1) as u64) as u32
}

/// The variant file of a made voice (see the module docs for the ranges).
pub fn variant_file(voice: &Voice) -> String {
    let mut rng = Rng::new(name_seed(voice.name));
    let female = voice.gender == "female";
    let base = if female {
        between(&mut rng, 120, 205)
    } else {
        between(&mut rng, 62, 115)
    };
    let top = base + between(&mut rng, 25, 80);
    let (lo, hi) = if female { (95, 135) } else { (75, 105) };
    let mut text = format!(
        "language variant\nname {}\ngender {}\npitch {base} {top}\nflutter {}\n",
        voice.name,
        voice.gender,
        between(&mut rng, 0, 3)
    );
    for formant in 1..=3 {
        text += &format!(
            "formant {formant} {} {} 150\n",
            between(&mut rng, lo, hi),
            between(&mut rng, 60, 85)
        );
    }
    if rng.below(3) == 0 {
        text += &format!("tone {}\n", TONES[rng.below(TONES.len() as u64) as usize]);
    }
    text
}

/// The installed espeak-ng data directory (`espeak-ng --version` names it).
fn installed_data() -> Result<PathBuf, String> {
    let text = stdout_of(Command::new("espeak-ng").arg("--version"))?;
    let dir = text
        .split("Data at:")
        .nth(1)
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| format!("espeak-ng --version did not name its data folder: {text:?}"))?;
    Ok(PathBuf::from(dir))
}

/// Copy a file, or a folder with everything in it (copies rather than links, which would need a
/// Unix-only call; the English data is about 1.5 MB and removed with the work folder).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if !from.is_dir() {
        return std::fs::copy(from, to).map(|_| ());
    }
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        copy_tree(&entry.path(), &to.join(entry.file_name()))?;
    }
    Ok(())
}

/// The folder to give espeak-ng as `--path` for made voices, under `work`.
pub fn data_root(work: &Path) -> PathBuf {
    work.join("espeak")
}

/// Build [`data_root`]`(work)`: an `espeak-ng-data` with a copy of the installed data English
/// needs and every made voice's variant file.
pub fn prepare(work: &Path) -> Result<(), String> {
    let installed = installed_data()?;
    let data = data_root(work).join("espeak-ng-data");
    let variants = data.join("voices").join("!v");
    let fail = |e: std::io::Error| format!("{}: {e}", data.display());
    std::fs::create_dir_all(&variants).map_err(fail)?;
    for entry in [
        "phondata",
        "phonindex",
        "phontab",
        "intonations",
        "en_dict",
        "lang",
    ] {
        let (from, to) = (installed.join(entry), data.join(entry));
        if !from.exists() {
            return Err(format!("espeak-ng data is missing {}", from.display()));
        }
        copy_tree(&from, &to).map_err(fail)?;
    }
    for voice in VOICES.iter().filter(|v| v.engine == Engine::EspeakMade) {
        std::fs::write(variants.join(voice.name), variant_file(voice)).map_err(fail)?;
    }
    // espeak-ng speaks an unknown variant with its default voice and exits 0, so check that it
    // sees every made variant rather than let a clip silently get the wrong speaker.
    let root = data_root(work);
    let listing = stdout_of(
        Command::new("espeak-ng")
            .arg(format!("--path={}", root.display()))
            .arg("--voices=variant"),
    )?;
    let unseen: Vec<&str> = VOICES
        .iter()
        .filter(|v| v.engine == Engine::EspeakMade)
        .filter(|v| !lists_variant(&listing, v.name))
        .map(|v| v.name)
        .collect();
    if !unseen.is_empty() {
        return Err(format!(
            "espeak-ng does not list the made voices {} from {}",
            unseen.join(", "),
            root.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn made(gender: &str) -> Vec<Voice> {
        VOICES
            .iter()
            .copied()
            .filter(|v| v.engine == Engine::EspeakMade && v.gender == gender)
            .collect()
    }

    fn pitch_base(file: &str) -> u32 {
        let line = file.lines().find(|l| l.starts_with("pitch ")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn made_voices_train_only_and_their_pitch_ranges_do_not_overlap_across_genders() {
        assert!(VOICES
            .iter()
            .all(|v| v.engine != Engine::EspeakMade || !v.held_out));
        let female: Vec<u32> = made("female")
            .iter()
            .map(|v| pitch_base(&variant_file(v)))
            .collect();
        let male: Vec<u32> = made("male")
            .iter()
            .map(|v| pitch_base(&variant_file(v)))
            .collect();
        assert!(female.len() >= 8 && male.len() >= 4);
        assert!(female.iter().all(|&p| (120..=205).contains(&p)));
        assert!(male.iter().all(|&p| (62..=115).contains(&p)));
    }

    #[test]
    fn prepare_builds_a_data_folder_from_which_espeak_ng_lists_every_made_voice() {
        if Command::new("espeak-ng").arg("--version").output().is_err() {
            eprintln!("skipped: espeak-ng is not installed (`osum setup` installs it)");
            return;
        }
        let work = crate::scratch_dir("made-voices");
        prepare(work.path()).unwrap();
        // Twice: a second synth into the same work folder overwrites what the first left.
        prepare(work.path()).unwrap();
    }

    #[test]
    fn a_made_voice_is_the_same_file_every_time_and_differs_from_the_others() {
        let files: Vec<String> = made("female")
            .iter()
            .chain(made("male").iter())
            .map(variant_file)
            .collect();
        for (v, f) in made("female").iter().chain(made("male").iter()).zip(&files) {
            assert_eq!(&variant_file(v), f);
        }
        let mut bodies: Vec<String> = files
            .iter()
            .map(|f| f.lines().skip(2).collect::<Vec<_>>().join("\n"))
            .collect();
        bodies.sort();
        bodies.dedup();
        assert_eq!(bodies.len(), files.len());
    }
}
