//! Portable micro-kernel: a 4 × 8 tile of C in plain Rust. Fixed-size arrays and loops let the
//! compiler keep the 32 accumulators in vector registers on any target; no FMA is assumed
//! (`mul_add` without hardware FMA is a slow library call), so each step rounds twice.

/// Tile rows.
pub const MR: usize = 4;
/// Tile columns.
pub const NR: usize = 8;

/// `C[0..4, 0..8] (+)= Ap·Bp` over `kc` steps.
///
/// # Safety
/// `ap` holds `kc·4` and `bp` `kc·8` readable f32; `c` points to a 4 × 8 tile writable with row
/// stride `ldc`.
pub unsafe fn kernel(
    kc: usize,
    ap: *const f32,
    bp: *const f32,
    c: *mut f32,
    ldc: usize,
    load: bool,
) {
    // SAFETY: the caller guarantees the panel lengths.
    let (a, b) = unsafe {
        (
            std::slice::from_raw_parts(ap, kc * MR),
            std::slice::from_raw_parts(bp, kc * NR),
        )
    };
    let mut acc = [[0f32; NR]; MR];
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for (acc, &ai) in acc.iter_mut().zip(ap) {
            for (c, &bj) in acc.iter_mut().zip(bp) {
                *c += ai * bj;
            }
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        // SAFETY: row i of the tile is NR writable f32 at c + i·ldc (caller's contract).
        let ci = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), NR) };
        for (c, &v) in ci.iter_mut().zip(acc) {
            *c = if load { *c + v } else { v };
        }
    }
}
