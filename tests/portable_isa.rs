//! The whole conformance suite on the CPU device with its portable (non-SIMD-intrinsic) kernels:
//! `OSUM_ISA=portable` is set before this process first asks for the instruction set, so the
//! fallback paths that machines without AVX-512/AVX2 run are held to the same references.
#[macro_use]
mod conformance;

fn portable_cpu() -> std::sync::Arc<dyn osum::engine::Device> {
    use osum::engine::cpu::isa::Isa;
    // Every test calls this before its first kernel, so the choice is fixed to portable no
    // matter which test thread happens to initialise it.
    std::env::set_var("OSUM_ISA", "portable");
    assert_eq!(Isa::detected(), Isa::Portable);
    osum::engine::cpu_device()
}

device_suite!(crate::portable_cpu);
