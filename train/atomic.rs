//! Atomic file writes (DESIGN "Trainer": write + fsync + rename): the bytes go to a hidden
//! `.NAME.partial` beside the destination, are flushed to disk, and only then renamed over it, so a
//! crash or a kill at any moment leaves either the old file or the new one, never a torn one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary name `write_atomic` uses for `path`.
pub fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

/// Replace `path` with `bytes` atomically (see the module docs). The error names the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if path.file_name().is_none() {
        return Err(format!("{}: not a file path", path.display()));
    }
    let tmp = partial_path(path);
    let fail = |what: &str, e: std::io::Error| format!("{}: {what}: {e}", path.display());
    let result = (|| {
        let mut f = File::create(&tmp).map_err(|e| fail("create", e))?;
        f.write_all(bytes).map_err(|e| fail("write", e))?;
        f.sync_all().map_err(|e| fail("fsync", e))?;
        pause_before_rename();
        fs::rename(&tmp, path).map_err(|e| fail("rename", e))?;
        // Make the rename itself durable: fsync the folder that holds the entry.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Test hook for the crash-safety test (tests/train.rs): with `OSUM_TEST_PAUSE_BEFORE_RENAME`
/// set to a number of milliseconds, every atomic write sleeps that long between its fsync and
/// its rename, so a SIGKILL can land exactly inside a checkpoint write. Unset: no effect.
fn pause_before_rename() {
    if let Some(ms) = std::env::var("OSUM_TEST_PAUSE_BEFORE_RENAME")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_partial_behind() {
        let dir = crate::scratch_dir("atomic");
        let p = dir.path().join("ckpt.bin");
        write_atomic(&p, b"old").unwrap();
        write_atomic(&p, b"new contents").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new contents");
        assert!(!partial_path(&p).exists());
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_the_file() {
        let p = Path::new("/nonexistent-osum-dir/x.json");
        let e = write_atomic(p, b"x").unwrap_err();
        assert!(e.contains("/nonexistent-osum-dir/x.json"), "{e}");
    }
}
