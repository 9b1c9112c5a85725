//! A process-wide memory budget for weights (`osum --max-memory`): every weight file is charged
//! its size before it is mapped, and every owned buffer a reader allocates by a file's sizes
//! (dequantized GGUF blocks) before it is allocated, so an over-large model is a clear error
//! naming the file instead of an out-of-memory kill halfway through loading.
//!
//! Unlimited unless [`set_limit`] is called; charges are never returned (weights live as long
//! as the model that loaded them, and `osum` loads one model per run).

use super::WeightsError;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

static LIMIT: AtomicU64 = AtomicU64::new(u64::MAX);
static USED: AtomicU64 = AtomicU64::new(0);

/// Set the budget in bytes (`None`: unlimited).
pub fn set_limit(bytes: Option<u64>) {
    LIMIT.store(bytes.unwrap_or(u64::MAX), Ordering::SeqCst);
}

/// Bytes charged so far.
pub fn used() -> u64 {
    USED.load(Ordering::SeqCst)
}

/// Charge `bytes` for `what` (in `path`), or refuse when the budget would be exceeded; nothing
/// is charged on refusal.
pub fn charge(path: &Path, what: &str, bytes: u64) -> Result<(), WeightsError> {
    let limit = LIMIT.load(Ordering::SeqCst);
    let mut used = USED.load(Ordering::SeqCst);
    loop {
        let total = used.saturating_add(bytes);
        if total > limit {
            return Err(WeightsError::OverBudget {
                path: path.to_path_buf(),
                what: what.to_string(),
                bytes,
                used,
                limit,
            });
        }
        match USED.compare_exchange(used, total, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return Ok(()),
            Err(now) => used = now,
        }
    }
}

/// Parse a byte count as people write it: `123`, `500M`, `2G`, `1.5GiB`, `64k` (K/M/G/T are
/// powers of 1024; an optional `B` or `iB` follows).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let body = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (num, shift) = match body.chars().last() {
        Some('K') => (&body[..body.len() - 1], 10),
        Some('M') => (&body[..body.len() - 1], 20),
        Some('G') => (&body[..body.len() - 1], 30),
        Some('T') => (&body[..body.len() - 1], 40),
        _ => (body, 0),
    };
    let bad = || format!("{s:?} is not a size (expected e.g. 500M, 2G, 1.5GiB or a byte count)");
    let x: f64 = num.trim().parse().map_err(|_| bad())?;
    let bytes = x * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2gb"), Ok(2 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        for bad in ["", "G", "-1G", "0", "1X", "nanG", "1e30T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
