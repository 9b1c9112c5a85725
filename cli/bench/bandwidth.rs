//! The machine's memory read bandwidth, measured in-process like STREAM's read kernels: every
//! worker thread sums its own contiguous part of one large buffer of random floats (random,
//! because untouched zero pages all map one physical page and read impossibly fast).

use rayon::prelude::*;

/// A buffer far larger than the last-level cache.
pub struct ReadBuffer {
    data: Vec<f32>,
}

impl ReadBuffer {
    /// `bytes` of random floats (rounded down to whole floats), filled in parallel.
    pub fn new(bytes: usize, seed: u64) -> Self {
        let mut data = vec![0f32; bytes / 4];
        data.par_chunks_mut(1 << 16)
            .enumerate()
            .for_each(|(i, chunk)| {
                let mut s = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for x in chunk {
                    // SplitMix64 step; the top 24 bits as a float in [0, 1).
                    s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let mut z = s;
                    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                    *x = ((z ^ (z >> 31)) >> 40) as f32 * (1.0 / (1u64 << 24) as f32);
                }
            });
        ReadBuffer { data }
    }

    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }

    /// One read pass: each of `threads` workers sums an equal contiguous part. Returns the
    /// sum so the compiler cannot drop the reads.
    pub fn pass(&self, threads: usize) -> f32 {
        let part = self.data.len().div_ceil(threads.max(1)).max(1);
        let s: f32 = self.data.par_chunks(part).map(sum).sum();
        std::hint::black_box(s)
    }
}

/// Sum with 16 independent accumulators, so the loop vectorizes and is bound by loads alone.
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_sums_the_whole_buffer() {
        let b = ReadBuffer::new(4 * 1000 + 3, 7);
        assert_eq!(b.bytes(), 4000);
        let want: f64 = b.data.iter().map(|&x| x as f64).sum();
        for threads in [1, 2, 3] {
            assert!((b.pass(threads) as f64 - want).abs() < 1e-2 * want);
        }
        assert!(b.data.iter().all(|&x| (0.0..1.0).contains(&x)));
        assert!(b.data.iter().any(|&x| x != b.data[0]));
    }
}
