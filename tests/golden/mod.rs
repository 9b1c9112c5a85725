//! Readers for the committed golden JSON files (written by `scripts/goldens/*.py`), shared by the
//! integration tests that compare against them.
#![allow(dead_code)] // each test binary uses its own subset

use serde_json::Value;

/// A JSON array of numbers (or of rows of numbers, flattened row-major) as f32.
pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .flat_map(|row| match row {
            Value::Array(r) => r.iter().map(|x| x.as_f64().unwrap() as f32).collect(),
            x => vec![x.as_f64().unwrap() as f32],
        })
        .collect()
}

/// A JSON array of non-negative integers as token ids.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Largest |a − b| over equal-length slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
