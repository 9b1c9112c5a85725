//! What the file-format targets share: the readers map files, so each input is written to a
//! per-process scratch file first (on /dev/shm when there is one) and opened from there.

use std::path::PathBuf;

/// Write `data` to this process's scratch file with extension `ext` and return its path.
pub fn scratch_file(data: &[u8], ext: &str) -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let p = dir.join(format!("osum-fuzz-{}.{ext}", std::process::id()));
    std::fs::write(&p, data).expect("write the scratch file");
    p
}

/// Load every tensor a source names onto the CPU (errors are fine; panics are the bugs).
pub fn load_all(src: &dyn osum::model::weights::TensorSource) {
    let dev = osum::engine::cpu_device();
    for name in src.names() {
        let _ = src.shape(name);
        let _ = src.dtype(name);
        let _ = src.tensor(name, &dev);
    }
}
