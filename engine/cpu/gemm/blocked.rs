//! The blocked GEMM driver: the BLIS loop nest, cache blocking and the split over threads.
//!
//! ```text
//! for jc in 0..n step NC            B slice KC × NC packed once, shared by all threads (L3)
//!   for pc in 0..k step KC
//!     pack B[pc.., jc..]            in parallel, panel groups per task
//!     parallel over tasks:          a task = a block of ≤ MC rows × a range of B panels
//!       pack A[ic.., pc..]          MC × KC, thread-local (L2)
//!       for jr over B panels        KC × NR panel, reused across the block's rows (L1/L2)
//!         for ir over A panels      MR × KC panel
//!           micro-kernel            MR × NR tile of C in registers
//! ```
//!
//! Threads split the rows of C into blocks (and the columns too, until there are a few tasks
//! per thread), so both cores stay busy on tall products. Short products (M ≤ 384) run
//! [`wide`] instead: A is packed once per pass and shared, and each task packs the B panels
//! it multiplies, so the weight traffic overlaps with arithmetic.

use super::pack::{pack_a, pack_b, prefetch_b, to_pairs, AlignedBuf};
use super::{
    kernel_amx_bf16, kernel_avx2, kernel_avx512, kernel_avx512_bf16, kernel_portable, Finish, Isa,
    Precision, Rhs, SharedMut, Start,
};
use rayon::prelude::*;
use std::cell::Cell;

/// `C[0..MR, 0..NR] (+)= Ap·Bp`: (kc, Ap, Bp, C, ldc, load C first).
type MicroKernel = unsafe fn(usize, *const f32, *const f32, *mut f32, usize, bool);

/// A micro-kernel and the block sizes that suit it.
struct Kernel {
    /// What benchmark headers call it.
    name: &'static str,
    mr: usize,
    nr: usize,
    /// Rows of A packed at once: MC × KC f32 stays in L2 (1 MiB on Zen 4).
    mc: usize,
    /// Depth of one pass. 512 measured best on Zen 4 (256 and 1024 were slower): fewer passes
    /// over C and fewer barriers; the 64 KiB B panel is then read from L2, which keeps up.
    kc: usize,
    /// Columns of B packed at once: KC × NC f32 stays in L3.
    nc: usize,
    /// Only ever called on a CPU with the features of the ISA it was chosen for.
    run: MicroKernel,
    /// The kernel reads bf16 pairs: packed f32 panels go through [`to_pairs`] first.
    pairs: bool,
    /// Panels hold a multiple of this many depths (zero past the product's).
    k_align: usize,
    /// The kernel reads A panels as rows of pairs (the AMX layout) instead of pair columns.
    a_rows: bool,
}

impl Kernel {
    /// The depth of the panels for a pass of `kc` depths.
    fn depth(&self, kc: usize) -> usize {
        kc.next_multiple_of(self.k_align)
    }

    /// Convert packed A panels (`mr` wide, `kc` = [`Kernel::depth`] deep) for this kernel, if
    /// it reads pairs.
    fn prepare_a(&self, ap: &mut [f32], kc: usize) {
        if self.pairs {
            let mut scratch = Vec::new();
            for p in ap.chunks_exact_mut(self.mr * kc) {
                to_pairs(p, kc, self.mr);
                if self.a_rows {
                    kernel_amx_bf16::rows_of_pairs(p, kc, self.mr, &mut scratch);
                }
            }
        }
    }

    /// Convert packed B panels (`nr` wide) for this kernel, if it reads pairs.
    fn prepare_b(&self, bp: &mut [f32], kc: usize) {
        if self.pairs {
            bp.chunks_exact_mut(self.nr * kc)
                .for_each(|p| to_pairs(p, kc, self.nr));
        }
    }
}

/// The largest tile any kernel uses (the edge-tile scratch buffer).
const MAX_TILE: usize = {
    let (f32_tile, amx_tile) = (
        kernel_avx512::MR * kernel_avx512::NR,
        kernel_amx_bf16::MR * kernel_amx_bf16::NR,
    );
    if f32_tile > amx_tile {
        f32_tile
    } else {
        amx_tile
    }
};

/// The name of the micro-kernel [`gemm`] runs for `isa` and `precision`.
pub(super) fn kernel_name(isa: Isa, precision: Precision) -> &'static str {
    kernel_for(isa, precision).name
}

fn kernel_for(isa: Isa, precision: Precision) -> Kernel {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (isa, precision);
    #[cfg(target_arch = "x86_64")]
    if precision == Precision::Bf16 && kernel_amx_bf16::available() && !avoid_amx() {
        return Kernel {
            name: "AMX bf16 tiles",
            mr: kernel_amx_bf16::MR,
            nr: kernel_amx_bf16::NR,
            mc: 128,
            kc: 512,
            nc: 4096,
            run: kernel_amx_bf16::kernel,
            pairs: true,
            k_align: kernel_amx_bf16::K_ALIGN,
            a_rows: true,
        };
    }
    #[cfg(target_arch = "x86_64")]
    if precision == Precision::Bf16 {
        // The caller checked that the CPU has AVX512_BF16 (Precision::Bf16 is refused otherwise).
        return Kernel {
            name: "AVX512_BF16",
            mr: kernel_avx512_bf16::MR,
            nr: kernel_avx512_bf16::NR,
            mc: 144,
            kc: 512,
            nc: 4096,
            run: kernel_avx512_bf16::kernel,
            pairs: true,
            k_align: 1,
            a_rows: false,
        };
    }
    #[cfg(target_arch = "x86_64")]
    match isa {
        Isa::Avx512 => {
            return Kernel {
                name: "AVX-512 f32",
                mr: kernel_avx512::MR,
                nr: kernel_avx512::NR,
                mc: 144,
                kc: 512,
                nc: 4096,
                run: kernel_avx512::kernel,
                pairs: false,
                k_align: 1,
                a_rows: false,
            }
        }
        Isa::Avx2 => {
            return Kernel {
                name: "AVX2 f32",
                mr: kernel_avx2::MR,
                nr: kernel_avx2::NR,
                mc: 144,
                kc: 512,
                nc: 4096,
                run: kernel_avx2::kernel,
                pairs: false,
                k_align: 1,
                a_rows: false,
            }
        }
        Isa::Portable => {}
    }
    Kernel {
        name: "portable f32",
        mr: kernel_portable::MR,
        nr: kernel_portable::NR,
        mc: 128,
        kc: 256,
        nc: 2048,
        run: kernel_portable::kernel,
        pairs: false,
        k_align: 1,
        a_rows: false,
    }
}

thread_local! {
    /// Each task's own packed panels (A blocks, or B groups in [`wide`]), reused across calls.
    static TASK_BUF: Cell<AlignedBuf> = Cell::new(AlignedBuf::default());
    /// The panels shared by a pass's tasks (B slices, or A in [`wide`]), one per calling thread.
    static SHARED_BUF: Cell<AlignedBuf> = Cell::new(AlignedBuf::default());
}

/// Runs `f` with this thread's buffer from `key`. The buffer is taken out while in use, so a
/// nested call on the same thread (rayon may run another job while this one waits) simply
/// gets a fresh one.
fn with_buf<R>(
    key: &'static std::thread::LocalKey<Cell<AlignedBuf>>,
    f: impl FnOnce(&mut AlignedBuf) -> R,
) -> R {
    let mut buf = key.with(Cell::take);
    let r = f(&mut buf);
    key.with(|c| c.set(buf));
    r
}

/// `C = start + A·B` through packed panels; see the module doc. Bounds were checked by the caller.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm(
    isa: Isa,
    precision: Precision,
    (m, k, n): (usize, usize, usize),
    (a, a_rs, a_cs): (&[f32], usize, usize),
    b: Rhs,
    (c, c_rs): (&mut [f32], usize),
    (start, finish): (Start, Finish),
    parallel: bool,
) {
    let kern = kernel_for(isa, precision);
    let threads = if parallel {
        rayon::current_num_threads()
    } else {
        1
    };
    let (mr, nr) = (kern.mr, kern.nr);
    let m_panels = m.div_ceil(mr);
    let c_ptr = SharedMut(c.as_mut_ptr());
    if m <= WIDE_MAX_M {
        return wide(
            &kern,
            isa,
            (m, k, n),
            (a, a_rs, a_cs),
            b,
            (c_ptr, c_rs),
            (start, finish),
            threads,
        );
    }
    with_buf(&SHARED_BUF, |bbuf| {
        for jc in (0..n).step_by(kern.nc) {
            let ncur = kern.nc.min(n - jc);
            let n_panels = ncur.div_ceil(nr);
            let plan = Plan::new(m_panels, n_panels, kern.mc / mr, threads);
            // Equal passes (K = 300 runs as 2 × 150, not 256 + 44): a short last pass would
            // pay a full read and write of C for little work.
            let kc = k.div_ceil(k.div_ceil(kern.kc));
            for pc in (0..k).step_by(kc) {
                let kcur = kc.min(k - pc);
                let kp = kern.depth(kcur);
                let bp = bbuf.get(n_panels * nr * kp);
                // Pack B: groups of panels per task.
                let group = n_panels.div_ceil(4 * threads).max(1);
                let pack = |(g, d): (usize, &mut [f32])| {
                    let j = g * group * nr;
                    pack_b(
                        b,
                        (pc, kcur, kp),
                        (jc + j, (group * nr).min(ncur - j)),
                        nr,
                        d,
                        isa,
                    );
                    kern.prepare_b(d, kp);
                };
                if threads > 1 {
                    bp.par_chunks_mut(group * nr * kp)
                        .enumerate()
                        .for_each(pack);
                } else {
                    bp.chunks_mut(group * nr * kp).enumerate().for_each(pack);
                }
                let bp = &*bp;
                let load = matches!(start, Start::Keep) || pc > 0;
                let bias = start.row().filter(|_| pc == 0);
                let fin = if pc + kcur >= k { finish } else { Finish::None };
                let task = |t: usize| {
                    let (rows, cols) = plan.task(t);
                    let (i0, i1) = (rows.start * mr, (rows.end * mr).min(m));
                    with_buf(&TASK_BUF, |abuf| {
                        let ap = abuf.get(rows.len() * mr * kp);
                        pack_a(a, (a_rs, a_cs), (i0, i1 - i0), (pc, kcur, kp), mr, ap, isa);
                        kern.prepare_a(ap, kp);
                        let one = |q: usize, r: usize, apanel: &[f32]| {
                            let bpanel = &bp[q * nr * kp..(q + 1) * nr * kp];
                            let (j0, w) = (jc + q * nr, nr.min(ncur - q * nr));
                            let i = i0 + r * mr;
                            let h = mr.min(m - i);
                            // SAFETY: the panels hold kp·mr and kp·nr floats; the tile
                            // (i.., j0..) of C lies inside C (checked by the caller) and
                            // belongs to this task alone.
                            unsafe {
                                tile(
                                    &kern,
                                    kp,
                                    apanel,
                                    bpanel,
                                    c_ptr,
                                    (i, j0),
                                    (h, w),
                                    c_rs,
                                    (load, bias.map(|r| &r[j0..j0 + w]), fin),
                                )
                            };
                        };
                        for q in cols {
                            for (r, apanel) in ap.chunks_exact(mr * kp).enumerate() {
                                one(q, r, apanel);
                            }
                        }
                    });
                };
                if threads > 1 && plan.tasks() > 1 {
                    (0..plan.tasks()).into_par_iter().for_each(task);
                } else {
                    (0..plan.tasks()).for_each(task);
                }
            }
        }
    });
}

/// Products with at most this many rows run [`wide`]: all of A's rows for one pass (at most
/// 384 × KC f32, 768 KiB at KC = 512) stay in L2.
const WIDE_MAX_M: usize = 384;

/// `C (+)= A·B` for short, wide products (few rows, many columns — `x·Wᵀ` over a short
/// sequence). Per KC pass, all of A is packed once (in parallel) and shared; threads then take
/// groups of B panels and pack each group themselves, right before multiplying it by every
/// A panel. Packing B — here the bulk of the memory traffic — thus overlaps with the other
/// thread's arithmetic instead of running as a separate phase behind a barrier.
#[allow(clippy::too_many_arguments)]
fn wide(
    kern: &Kernel,
    isa: Isa,
    (m, k, n): (usize, usize, usize),
    (a, a_rs, a_cs): (&[f32], usize, usize),
    b: Rhs,
    (c_ptr, c_rs): (SharedMut, usize),
    (start, finish): (Start, Finish),
    threads: usize,
) {
    let (mr, nr) = (kern.mr, kern.nr);
    let (m_panels, n_panels) = (m.div_ceil(mr), n.div_ceil(nr));
    // Groups of up to 4 B panels, at least 4 per thread when there are enough.
    let group = n_panels.div_ceil(4 * threads).clamp(1, 4);
    let groups = n_panels.div_ceil(group);
    let kc = k.div_ceil(k.div_ceil(kern.kc));
    with_buf(&SHARED_BUF, |abuf| {
        for pc in (0..k).step_by(kc) {
            let kcur = kc.min(k - pc);
            let load = matches!(start, Start::Keep) || pc > 0;
            let bias = start.row().filter(|_| pc == 0);
            let fin = if pc + kcur >= k { finish } else { Finish::None };
            let kp = kern.depth(kcur);
            let ap = abuf.get(m_panels * mr * kp);
            let pack = |(q, d): (usize, &mut [f32])| {
                pack_a(
                    a,
                    (a_rs, a_cs),
                    (q * mr, mr.min(m - q * mr)),
                    (pc, kcur, kp),
                    mr,
                    d,
                    isa,
                );
                kern.prepare_a(d, kp);
            };
            if threads > 1 && m_panels > 1 {
                ap.par_chunks_mut(mr * kp).enumerate().for_each(pack);
            } else {
                ap.chunks_mut(mr * kp).enumerate().for_each(pack);
            }
            let ap = &*ap;
            let task = |g: usize| {
                let (q0, q1) = (g * group, ((g + 1) * group).min(n_panels));
                with_buf(&TASK_BUF, |bbuf| {
                    let bp = bbuf.get(nr * kp);
                    // Per-panel packing so the next panel's weights can be prefetched (from
                    // DRAM, into L2) a few columns per kernel call while this one is multiplied.
                    let per_call = nr.div_ceil(m_panels);
                    for q in q0..q1 {
                        let j = q * nr;
                        pack_b(b, (pc, kcur, kp), (j, nr.min(n - j)), nr, bp, isa);
                        kern.prepare_b(bp, kp);
                        for (r, apanel) in ap.chunks_exact(mr * kp).enumerate() {
                            let next = (j + nr + r * per_call).min(n);
                            prefetch_b(
                                b,
                                (pc, kcur),
                                next..(next + per_call).min(n).min(j + 2 * nr),
                            );
                            let i = r * mr;
                            // SAFETY: panels hold kp·mr and kp·nr floats; the tile lies
                            // inside C (checked by the caller) and only this task writes
                            // columns j0..j0+w.
                            unsafe {
                                tile(
                                    kern,
                                    kp,
                                    apanel,
                                    bp,
                                    c_ptr,
                                    (i, j),
                                    (mr.min(m - i), nr.min(n - j)),
                                    c_rs,
                                    (load, bias.map(|r| &r[j..j + nr.min(n - j)]), fin),
                                )
                            };
                        }
                    }
                });
            };
            if threads > 1 && groups > 1 {
                (0..groups).into_par_iter().for_each(task);
            } else {
                (0..groups).for_each(task);
            }
        }
    });
}

/// One `h × w` tile of C at `(i, j)`: full tiles are written in place, edge tiles go through a
/// scratch tile so the kernel never touches C outside the product. A `bias` (`w` values, first
/// pass only) is written into the tile just before the kernel adds to it: the tile's lines are
/// then already in L1 for the kernel's load, so the bias costs a few stores per tile instead of
/// a separate pass over C. A `finish` (last pass only) runs over the tile right after the kernel
/// wrote it.
///
/// # Safety
/// As for [`MicroKernel`]; rows `i..i+h`, columns `j..j+w` of C are valid and unshared.
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    kern: &Kernel,
    kc: usize,
    ap: &[f32],
    bp: &[f32],
    c: SharedMut,
    (i, j): (usize, usize),
    (h, w): (usize, usize),
    c_rs: usize,
    (load, bias, finish): (bool, Option<&[f32]>, Finish),
) {
    // SAFETY: (i, j) is inside C by the caller's contract.
    let cij = unsafe { c.ptr().add(i * c_rs + j) };
    if h == kern.mr && w == kern.nr {
        let mut load = load;
        if let Some(bias) = bias {
            for r in 0..h {
                // SAFETY: row i + r, columns j..j+w of C are inside C and unshared.
                let row = unsafe { std::slice::from_raw_parts_mut(cij.add(r * c_rs), w) };
                for (d, &b) in row.iter_mut().zip(bias) {
                    *d = if load { *d + b } else { b };
                }
            }
            load = true;
        }
        // SAFETY: kernel features were detected when `kern` was chosen; sizes per the contract.
        unsafe { (kern.run)(kc, ap.as_ptr(), bp.as_ptr(), cij, c_rs, load) };
        if finish != Finish::None {
            for r in 0..h {
                // SAFETY: row i + r, columns j..j+w of C are inside C and unshared.
                finish.apply(unsafe { std::slice::from_raw_parts_mut(cij.add(r * c_rs), w) });
            }
        }
        return;
    }
    let mut scratch = [0f32; MAX_TILE];
    // SAFETY: the scratch tile is mr × nr with row stride nr.
    unsafe {
        (kern.run)(
            kc,
            ap.as_ptr(),
            bp.as_ptr(),
            scratch.as_mut_ptr(),
            kern.nr,
            false,
        )
    };
    for (r, s) in scratch.chunks_exact(kern.nr).take(h).enumerate() {
        // SAFETY: row i + r, columns j..j+w of C are inside C and unshared.
        let row = unsafe { std::slice::from_raw_parts_mut(cij.add(r * c_rs), w) };
        for (jj, (d, &v)) in row.iter_mut().zip(s).enumerate() {
            let v = v + bias.map_or(0.0, |b| b[jj]);
            *d = if load { *d + v } else { v };
        }
        finish.apply(row);
    }
}

/// How one `KC` pass is cut into tasks: `mb` blocks of row panels × `nb` ranges of B panels.
struct Plan {
    m_panels: usize,
    n_panels: usize,
    mb: usize,
    nb: usize,
}

impl Plan {
    fn new(m_panels: usize, n_panels: usize, mc_panels: usize, threads: usize) -> Plan {
        let mut mb = m_panels.div_ceil(mc_panels.max(1));
        let mut nb = 1;
        if threads > 1 {
            if m_panels >= 4 * threads || m_panels.is_multiple_of(threads) {
                // Enough rows: blocks in a multiple of the thread count, near-equal sizes.
                mb = mb.next_multiple_of(threads).min(m_panels);
            }
            // Split the columns too until there are a few tasks per thread: a thread slowed
            // by another process then delays the pass by a small task, not half the work.
            nb = (4 * threads).div_ceil(mb).min(n_panels);
        }
        Plan {
            m_panels,
            n_panels,
            mb,
            nb,
        }
    }

    fn tasks(&self) -> usize {
        self.mb * self.nb
    }

    /// Row panels and B panels of task `t`; panels are dealt out evenly (sizes differ by ≤ 1).
    fn task(&self, t: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let share =
            |i: usize, parts: usize, total: usize| i * total / parts..(i + 1) * total / parts;
        (
            share(t / self.nb, self.mb, self.m_panels),
            share(t % self.nb, self.nb, self.n_panels),
        )
    }
}

#[cfg(test)]
thread_local! {
    /// Set by tests on the calling thread to run the AVX-512 BF16 kernel on an AMX CPU.
    pub(super) static AVOID_AMX: Cell<bool> = const { Cell::new(false) };
}

/// True when a test on this thread asked for the AVX-512 BF16 kernel.
fn avoid_amx() -> bool {
    #[cfg(test)]
    return AVOID_AMX.with(Cell::get);
    #[cfg(not(test))]
    false
}
