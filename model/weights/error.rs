//! The weights layer's error type. Every message names the file and, where there is one, the byte
//! offset or tensor and what was expected, so a bad download can be told apart from a bad name.

use std::path::PathBuf;

/// Everything the weight readers can refuse.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file could not be opened, mapped or read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The bytes do not follow the format: what was expected at `offset` and what was found.
    #[error("{}: malformed at byte {offset}: {msg}", path.display())]
    Malformed {
        path: PathBuf,
        offset: u64,
        msg: String,
    },
    /// A tensor name the file does not hold.
    #[error("{}: no tensor named {name:?}", path.display())]
    Missing { path: PathBuf, name: String },
    /// A tensor stored in an element type the engine has no dtype for.
    #[error("{}: tensor {name:?} is stored as {dtype}, which is unsupported (only f32, f16, bf16 load)", path.display())]
    Unsupported {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    /// A GGUF tensor in a GGML block type this reader does not dequantize.
    #[error("{}: tensor {name:?} is stored as GGML type {ggml_type}, which is unsupported (F32, F16, BF16, Q8_0, Q4_0 and Q4_1 load)", path.display())]
    UnsupportedQuant {
        path: PathBuf,
        name: String,
        ggml_type: String,
    },
    /// A metadata entry (GGUF key/value) that is absent or of another type than asked for.
    #[error("{}: metadata {key:?}: {msg}", path.display())]
    Metadata {
        path: PathBuf,
        key: String,
        msg: String,
    },
    /// A tensor that is not what the caller asked for (e.g. not an integer scalar).
    #[error("{}: tensor {name:?}: {msg}", path.display())]
    WrongKind {
        path: PathBuf,
        name: String,
        msg: String,
    },
    /// A pickle (PyTorch checkpoint) names a global outside the restricted unpickler's
    /// allow-list, e.g. `os.system`: loading it with Python would run code. Nothing was run.
    #[error("{}: {entry} names the global {global} at pickle byte {offset}; refusing to load (only collections.OrderedDict, torch storage types and torch._utils tensor rebuilders are allowed)", path.display())]
    ForbiddenGlobal {
        path: PathBuf,
        entry: String,
        offset: u64,
        global: String,
    },
    /// Loading would exceed the weights' memory budget (`--max-memory`, see
    /// [`super::budget`]); nothing was mapped or allocated for it.
    #[error("{}: {what} needs {bytes} bytes but the memory budget (--max-memory) is {limit} bytes with {used} already used", path.display())]
    OverBudget {
        path: PathBuf,
        what: String,
        bytes: u64,
        used: u64,
        limit: u64,
    },
    /// A NaN or infinity in a weight (`--check-weights`, see [`super::finite`]).
    #[error("{}: tensor {name:?} holds {value} at element {index} (--check-weights); the file is corrupt or the model diverged", path.display())]
    NonFinite {
        path: PathBuf,
        name: String,
        index: usize,
        value: f32,
    },
    /// The engine refused to build the tensor (device upload, shape).
    #[error("{}: tensor {name:?}: {source}", path.display())]
    Engine {
        path: PathBuf,
        name: String,
        source: crate::engine::Error,
    },
}

impl WeightsError {
    /// A [`WeightsError::Malformed`] for `path` at `offset`.
    pub(crate) fn malformed(path: &std::path::Path, offset: u64, msg: impl Into<String>) -> Self {
        WeightsError::Malformed {
            path: path.to_path_buf(),
            offset,
            msg: msg.into(),
        }
    }
}
