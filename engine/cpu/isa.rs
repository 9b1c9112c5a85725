//! The SIMD instruction set the CPU kernels use, detected once per process and shared by every
//! kernel family (GEMM micro-kernels, attention tiles, multiversioned vector loops).
//!
//! `OSUM_ISA=portable|avx2` lowers the choice (never raises it above what the CPU has), so the
//! fallback paths can be tested on a machine that has AVX-512.

use std::sync::OnceLock;

/// The widest SIMD instruction set of this CPU that the kernels use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 F/BW/DQ/VL (plus AVX2, FMA and F16C): 16 f32 lanes.
    Avx512,
    /// AVX2 with FMA and F16C: 8 f32 lanes.
    Avx2,
    /// Whatever the compilation target guarantees (SSE2 on x86_64); correct everywhere.
    Portable,
}

impl Isa {
    /// The instruction set in use: the best this CPU supports, lowered by `OSUM_ISA`.
    pub fn detected() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            let best = Isa::available()[0];
            let wanted = match std::env::var("OSUM_ISA").as_deref() {
                Ok("portable") => Isa::Portable,
                Ok("avx2") => Isa::Avx2,
                _ => best,
            };
            if wanted.supported() {
                wanted
            } else {
                best
            }
        })
    }

    /// Every instruction set this CPU can run, best first (tests run each of them).
    pub fn available() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Portable]
            .into_iter()
            .filter(|i| i.supported())
            .collect()
    }

    /// True when this CPU has every feature the kernels for `self` are compiled with.
    #[cfg(target_arch = "x86_64")]
    pub fn supported(self) -> bool {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma") && has!("f16c");
        match self {
            Isa::Avx512 => {
                avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vl")
            }
            Isa::Avx2 => avx2,
            Isa::Portable => true,
        }
    }

    /// True when this CPU has every feature the kernels for `self` are compiled with.
    #[cfg(not(target_arch = "x86_64"))]
    pub fn supported(self) -> bool {
        self == Isa::Portable
    }
}
