//! Timing for `osum bench`: two implementations run alternately (a, b, a, b, …) after one
//! warm-up call each, so both see the same machine state — the host is shared and its speed
//! drifts. Reports medians (or the best, where a peak is what is asked for).

use std::time::Instant;

/// Wall-clock budget per shape when `--reps` is not given, seconds.
const BUDGET_S: f64 = 3.0;
/// Bounds of the automatic repetition count.
const MIN_REPS: u32 = 3;
const MAX_REPS: u32 = 21;

/// Seconds per timed call of each side.
pub struct Samples {
    /// Times of the first implementation.
    pub a: Vec<f64>,
    /// Times of the second implementation.
    pub b: Vec<f64>,
}

impl Samples {
    /// Timed repetitions per side.
    pub fn reps(&self) -> u32 {
        self.a.len() as u32
    }
}

/// Median of a non-empty sample (mean of the middle two for an even count).
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// Smallest value (the best time).
pub fn best(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

fn time<E>(f: &mut dyn FnMut() -> Result<(), E>) -> Result<f64, E> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64())
}

/// Warm up both, then time `reps` alternating rounds; without `reps`, as many rounds as fit
/// in [`BUDGET_S`] judged by the warm-up (between 3 and 21).
pub fn alternate<E>(
    reps: Option<u32>,
    a: &mut dyn FnMut() -> Result<(), E>,
    b: &mut dyn FnMut() -> Result<(), E>,
) -> Result<Samples, E> {
    let warm = time(a)? + time(b)?;
    let reps = reps.unwrap_or_else(|| auto_reps(warm));
    let mut s = Samples {
        a: Vec::with_capacity(reps as usize),
        b: Vec::with_capacity(reps as usize),
    };
    for _ in 0..reps {
        s.a.push(time(a)?);
        s.b.push(time(b)?);
    }
    Ok(s)
}

fn auto_reps(round_s: f64) -> u32 {
    let fit = (BUDGET_S / round_s.max(1e-6)).ceil();
    (fit.min(MAX_REPS as f64) as u32).max(MIN_REPS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_rep_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(best(&[4.0, 1.0]), 1.0);
        assert_eq!(auto_reps(10.0), MIN_REPS);
        assert_eq!(auto_reps(0.0), MAX_REPS);
        assert_eq!(auto_reps(0.5), 6);
        let (mut na, mut nb) = (0, 0);
        let s = alternate::<()>(
            Some(4),
            &mut || {
                na += 1;
                Ok(())
            },
            &mut || {
                nb += 1;
                Ok(())
            },
        )
        .unwrap();
        assert_eq!((s.reps(), s.b.len()), (4, 4));
        assert_eq!((na, nb), (5, 5));
    }
}
