//! Compiles `src/bin/loadgen/loadgen.bpf.c` (the XDP side of `synline-loadgen`, beside its tool) and generates its libbpf
//! skeleton into `OUT_DIR`, where `src/bin/loadgen/bpf.rs` includes it. Needs clang (with the
//! BPF target), libelf and zlib, like `crates/synline-xdp`.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

/// The program and the headers it includes, relative to this crate.
const BPF_DIR: &str = "src/bin/loadgen";
const SOURCES: &[&str] = &["loadgen.bpf.c", "loadgen.h", "loadgen_csum.h"];

fn main() {
    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("loadgen.skel.rs");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    // Debian's clang does not look in the multiarch directory, where asm/types.h lives.
    let multiarch = format!("-I/usr/include/{arch}-linux-gnu");

    let source = PathBuf::from(BPF_DIR).join(SOURCES[0]);
    if let Err(e) = SkeletonBuilder::new()
        .source(&source)
        .clang_args([multiarch.as_str(), "-Wall", "-Werror"])
        .build_and_generate(&out)
    {
        panic!("compiling {}: {e:#}", source.display());
    }
    for f in SOURCES {
        println!("cargo:rerun-if-changed={BPF_DIR}/{f}");
    }
}
