//! Generates include/credlock.h from src/ with cbindgen. The header is committed so
//! that C and Go users need no Rust tooling to read it; `tests/header.rs` fails if the
//! committed copy is not what this build generates.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("generating credlock.h");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("credlock.h");
    bindings.write_to_file(&out);
    // Keep the committed copy current on a developer's machine (rewritten only when it
    // changes). Under CI the committed copy is left as it is, so that tests/header.rs and
    // host/go/run-tests.sh catch a header that was not regenerated and committed.
    println!("cargo:rerun-if-env-changed=CI");
    let committed = dir.join("include/credlock.h");
    let fresh = std::fs::read(&out).expect("reading the generated header");
    if std::fs::read(&committed).ok().as_deref() != Some(&fresh[..])
        && std::env::var_os("CI").is_none()
    {
        let _ = std::fs::write(&committed, &fresh);
    }
    println!(
        "cargo:rustc-env=CREDLOCK_GENERATED_HEADER={}",
        out.display()
    );
}
