//! Build script. The Ascend kernels and the ACL bindings (issue "Ascend NPU backend") hook in here;
//! the engine core needs nothing built, so this only tells cargo when to rerun.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
