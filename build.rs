//! Build script: ACL runtime bindings and the Ascend kernels (issue "Ascend NPU backend").
//!
//! Bindings (`$OUT_DIR/acl_bindings.rs`, included by `ffi/mod.rs`):
//! - `--features ascend`: bindgen over the real CANN headers of the toolkit named by
//!   `ASCEND_HOME_PATH` or `ASCEND_TOOLKIT_HOME`; a missing toolkit or libclang is a build error.
//! - otherwise: bindgen over `ffi/acl_sim.h` when libclang can be loaded; without libclang the
//!   committed `ffi/acl_sim_bindings.rs` is used (so a machine with only gcc still builds). A
//!   test (`ffi::tests`) checks the committed file equals a fresh run wherever libclang exists, and
//!   CI installs libclang so it always checks. `OSUM_REGEN_ACL_BINDINGS=1` rewrites the file.
//!
//! Kernels: without `ascend`, `kernels/ascend/*.cpp` and the simulator `kernels/sim/*.cpp` are
//! compiled with the `cc` crate into one static library whose `aclrtlaunch_*` entries and ACL
//! functions Rust links against. The NPU kernel build (bisheng, `--npu-arch=dav-2201`) is not
//! written yet and says so.

use std::env;
use std::path::{Path, PathBuf};

const SIM_HEADER: &str = "ffi/acl_sim.h";
const COMMITTED_BINDINGS: &str = "ffi/acl_sim_bindings.rs";

fn main() {
    for path in [
        "build.rs",
        SIM_HEADER,
        COMMITTED_BINDINGS,
        "kernels/sim",
        "kernels/ascend",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    for var in [
        "ASCEND_HOME_PATH",
        "ASCEND_TOOLKIT_HOME",
        "OSUM_REGEN_ACL_BINDINGS",
        "LIBCLANG_PATH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bindings = out.join("acl_bindings.rs");

    if env::var_os("CARGO_FEATURE_ASCEND").is_some() {
        build_for_npu(&bindings);
        return;
    }

    let source = if clang_sys::load().is_ok() {
        let text = generate(SIM_HEADER, &[]);
        write(&bindings, &text);
        if env::var_os("OSUM_REGEN_ACL_BINDINGS").is_some() {
            write(Path::new(COMMITTED_BINDINGS), &text);
        }
        "bindgen"
    } else {
        println!(
            "cargo:warning=libclang not found: using the committed {COMMITTED_BINDINGS} \
             (install libclang-dev to regenerate and check it)"
        );
        let text = std::fs::read_to_string(COMMITTED_BINDINGS)
            .unwrap_or_else(|e| panic!("reading {COMMITTED_BINDINGS}: {e}"));
        write(&bindings, &text);
        "committed"
    };
    println!("cargo:rustc-env=OSUM_ACL_BINDINGS={source}");

    build_simulator();
}

/// Bindgen over `header` for the ACL subset we call.
fn generate(header: &str, clang_args: &[String]) -> String {
    bindgen::Builder::default()
        .header(header)
        .clang_args(clang_args)
        .allowlist_function("acl.*")
        .allowlist_type("acl.*")
        .allowlist_var("ACL_.*")
        .generate_comments(false)
        .formatter(bindgen::Formatter::Prettyplease)
        .generate()
        .unwrap_or_else(|e| panic!("bindgen over {header}: {e}"))
        .to_string()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// The simulator and our kernels as one static library (C++17, any gcc or clang).
fn build_simulator() {
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["kernels/sim", "kernels/ascend"] {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {dir}: {e}"));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "cpp") {
                files.push(path);
            }
        }
    }
    files.sort();
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .include("kernels/sim")
        .include("kernels/ascend")
        .files(&files)
        .opt_level(2)
        .warnings(true)
        .extra_warnings(true)
        .compile("osum_ascend_sim");
}

/// `--features ascend`: bindings from the toolkit's headers and libascendcl.
fn build_for_npu(bindings: &Path) {
    let home = env::var("ASCEND_HOME_PATH")
        .or_else(|_| env::var("ASCEND_TOOLKIT_HOME"))
        .unwrap_or_else(|_| {
            panic!(
                "--features ascend needs a CANN toolkit: set ASCEND_HOME_PATH (CANN 8.5+) or \
                 ASCEND_TOOLKIT_HOME (…/ascend-toolkit/latest), e.g. by sourcing set_env.sh"
            )
        });
    let home = PathBuf::from(home);
    let include = home.join("include");
    let header = include.join("acl").join("acl.h");
    if !header.exists() {
        panic!(
            "--features ascend: {} not found; is {} a CANN toolkit?",
            header.display(),
            home.display()
        );
    }
    if clang_sys::load().is_err() {
        panic!(
            "--features ascend: bindgen needs libclang (install libclang-dev or set LIBCLANG_PATH)"
        );
    }
    let text = generate(
        &header.to_string_lossy(),
        &[format!("-I{}", include.display())],
    );
    write(bindings, &text);
    println!("cargo:rustc-env=OSUM_ACL_BINDINGS=toolkit");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    for lib in [
        home.join("lib64"),
        home.join(format!("{arch}-linux")).join("lib64"),
        home.join("devlib"),
    ] {
        if lib.exists() {
            println!("cargo:rustc-link-search=native={}", lib.display());
        }
    }
    println!("cargo:rustc-link-lib=dylib=ascendcl");
    panic!(
        "--features ascend: bindings and libascendcl are set up, but compiling kernels/ascend for \
         the NPU (ascendc_library / bisheng --npu-arch=dav-2201) is not implemented yet (issue 7); \
         build without the feature to run them on the simulator (--device ascend-sim)"
    );
}
