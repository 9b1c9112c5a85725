//! AMX micro-kernel for the bf16 products: a 32 × 32 tile of C in four AMX tiles, fed bf16
//! pairs, on CPUs with AMX-TILE and AMX-BF16 (Intel Sapphire Rapids and later).
//!
//! Why: on those CPUs `vdpbf16ps` issues at half the rate of `vfmadd231ps`, so the AVX-512 BF16
//! kernel has no more arithmetic than the f32 one and loses to it by its packing (measured
//! here: 3.6 G `vdpbf16ps`/s against 7.1 G `vfmadd231ps`/s on one core). One `tdpbf16ps`
//! multiplies a 16 × 32 bf16 tile by a 32 × 16 one into 16 × 16 f32 sums (16,384
//! multiply-adds); a core runs about 1.5 TFLOP/s of them, seven times its FMA peak.
//!
//! The arithmetic is the BF16 kernel's: operands rounded to bf16 as they are packed, products
//! exact in f32, sums in f32 (Intel SDM, `TDPBF16PS`; like `vdpbf16ps` it flushes denormal
//! inputs and outputs to zero). Only the order of the sums within 32 depths differs.
//!
//! Layouts (one `tdpbf16ps` takes 32 depths = 16 pair steps):
//! - B panel: the BF16 kernel's pair panel, 32 wide: word `(q, j)` is `(B[2q][j], B[2q+1][j])`,
//!   rows of 128 bytes. A B tile is 16 pair rows × 16 columns: columns 0–15 and 16–31 of the
//!   panel are two tiles at byte offsets 0 and 64, row stride 128.
//! - A panel: row-major pairs, word `(i, q)` is `(A[i][2q], A[i][2q+1])` ([`rows_of_pairs`]),
//!   so an A tile is 16 rows × 16 pair words with row stride `kc / 2` words.
//! - Depth: panels are packed to a multiple of 32 depths ([`K_ALIGN`]), zero past the product's.
//!
//! Tiles: C in tmm0–tmm3 (rows 0–15 / 16–31 × columns 0–15 / 16–31), A in tmm4–tmm5, B in
//! tmm6–tmm7; every tile is configured 16 rows × 64 bytes.

/// Rows of the C tile.
pub const MR: usize = 32;
/// Columns of the C tile.
pub const NR: usize = 32;
/// Panel depths are padded to a multiple of this (one `tdpbf16ps` step).
pub const K_ALIGN: usize = 32;

/// True when this process can run the AMX kernel: the CPU reports AMX-TILE and AMX-BF16, Linux
/// granted the process the tile data state (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), and
/// `OSUM_AMX=off` does not turn it off (so the AVX-512 BF16 kernel can be run on such a CPU).
/// Decided once per process.
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var("OSUM_AMX").as_deref() == Ok("off") {
            return false;
        }
        detect()
    })
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    // CPUID leaf 7, sub-leaf 0: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    if leaf7.edx & (1 << 22) == 0 || leaf7.edx & (1 << 24) == 0 {
        return false;
    }
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: a plain Linux system call with integer arguments; it only changes which register
    // state the kernel saves for this process.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// Rewrites a pair panel from the BF16 kernel's layout (word `(q, i)` at `q·mr + i`, as
/// [`super::pack::to_pairs`] leaves it) to rows of pairs (word `(i, q)` at `i·(kc/2) + q`).
pub(super) fn rows_of_pairs(panel: &mut [f32], kc: usize, mr: usize, scratch: &mut Vec<f32>) {
    let qn = kc / 2;
    scratch.clear();
    scratch.extend_from_slice(&panel[..qn * mr]);
    for (i, row) in panel[..qn * mr].chunks_exact_mut(qn).enumerate() {
        for (q, d) in row.iter_mut().enumerate() {
            *d = scratch[q * mr + i];
        }
    }
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// Whether this thread has loaded the tile configuration (it is per-thread state).
    static CONFIGURED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Loads the tile configuration on this thread, once: palette 1, tiles 0–7 each 16 rows of 64
/// bytes.
#[cfg(target_arch = "x86_64")]
fn configure_thread() {
    if CONFIGURED.with(|c| c.get()) {
        return;
    }
    #[repr(C, align(64))]
    struct TileConfig([u8; 64]);
    let mut cfg = TileConfig([0; 64]);
    cfg.0[0] = 1; // palette
    for t in 0..8 {
        cfg.0[16 + 2 * t] = 64; // bytes per row (u16, little-endian)
        cfg.0[48 + t] = 16; // rows
    }
    // SAFETY: only called when `available()` said the CPU and OS support AMX; the
    // configuration is a valid palette-1 layout.
    unsafe { std::arch::asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack)) };
    CONFIGURED.with(|c| c.set(true));
}

/// `C[0..32, 0..32] (+)= Ap·Bp` over `kc` depths (a multiple of [`K_ALIGN`]).
///
/// # Safety
/// [`available`] returned true; `ap` holds `32·kc/2` pair words in rows-of-pairs layout and
/// `bp` `kc/2·32` pair words (f32-sized slots); `c` points to a 32 × 32 tile writable with
/// row stride `ldc`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn kernel(
    kc: usize,
    ap: *const f32,
    bp: *const f32,
    c: *mut f32,
    ldc: usize,
    load: bool,
) {
    use std::arch::asm;
    debug_assert!(kc.is_multiple_of(K_ALIGN));
    configure_thread();
    let c_stride = ldc * 4;
    let (c00, c01) = (c, c.wrapping_add(16));
    let (c10, c11) = (c.wrapping_add(16 * ldc), c.wrapping_add(16 * ldc + 16));
    // SAFETY (every block below): the tiles are configured; the addresses stay inside the
    // panels and the C tile the caller guarantees.
    unsafe {
        if load {
            asm!(
                "tileloadd tmm0, [{a} + {s}*1]",
                "tileloadd tmm1, [{b} + {s}*1]",
                "tileloadd tmm2, [{c} + {s}*1]",
                "tileloadd tmm3, [{d} + {s}*1]",
                a = in(reg) c00, b = in(reg) c01, c = in(reg) c10, d = in(reg) c11,
                s = in(reg) c_stride,
                options(nostack, readonly),
            );
        } else {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            );
        }
    }
    let a_stride = kc / 2 * 4; // bytes per A row of pairs
    let a_low = ap as *const u8;
    let a_high = a_low.wrapping_add(16 * a_stride);
    let b_stride = NR * 4;
    for s in 0..kc / K_ALIGN {
        // 16 pair words = 64 bytes of each A row; 16 pair rows of B.
        let a0 = a_low.wrapping_add(s * 64);
        let a1 = a_high.wrapping_add(s * 64);
        let b0 = (bp as *const u8).wrapping_add(s * 16 * b_stride);
        let b1 = b0.wrapping_add(64);
        unsafe {
            asm!(
                "tileloadd tmm4, [{a0} + {sa}*1]",
                "tileloadd tmm5, [{a1} + {sa}*1]",
                "tileloadd tmm6, [{b0} + {sb}*1]",
                "tileloadd tmm7, [{b1} + {sb}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                a0 = in(reg) a0, a1 = in(reg) a1, b0 = in(reg) b0, b1 = in(reg) b1,
                sa = in(reg) a_stride, sb = in(reg) b_stride,
                options(nostack, readonly),
            );
        }
    }
    unsafe {
        asm!(
            "tilestored [{a} + {s}*1], tmm0",
            "tilestored [{b} + {s}*1], tmm1",
            "tilestored [{c} + {s}*1], tmm2",
            "tilestored [{d} + {s}*1], tmm3",
            a = in(reg) c00, b = in(reg) c01, c = in(reg) c10, d = in(reg) c11,
            s = in(reg) c_stride,
            options(nostack),
        );
    }
}
