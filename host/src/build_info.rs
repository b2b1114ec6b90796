//! What this build is, for a fleet that must see what it runs: the one version every
//! artifact shares (the workspace `Cargo.toml`'s, which scripts/version.sh copies into the
//! Python, Node and Go packages) and the SHA-256 of the component it embeds (two builds of
//! one version with different components are different programs). `credlock --version`,
//! Python's `credlock.__version__`/`credlock.COMPONENT_SHA256`, Node's `version`/
//! `componentSha256`, the C ABI's `credlock_version()`/`credlock_component_sha256()` and
//! Go's `credlock.Version()`/`credlock.ComponentSHA256()` all read these.

/// The release version, `MAJOR.MINOR.PATCH`, the same for the CLI and every binding.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The wasmtime this host embeds (from Cargo.lock, by build.rs).
pub const WASMTIME_VERSION: &str = env!("CARGO_PKG_VERSION_WASMTIME");

/// Hex SHA-256 of the embedded component (`host/build.rs` writes it beside the .wasm).
pub const COMPONENT_SHA256: &str = include_str!(concat!(env!("OUT_DIR"), "/credlock.wasm.sha256"));

/// What `credlock --version` prints after the program's name:
/// `0.1.0 (component sha256 <64 hex>, wasmtime 48.0.8)`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (component sha256 ",
    include_str!(concat!(env!("OUT_DIR"), "/credlock.wasm.sha256")),
    ", wasmtime ",
    env!("CARGO_PKG_VERSION_WASMTIME"),
    ")"
);

#[cfg(test)]
mod tests {
    #[test]
    fn the_long_version_names_the_version_and_the_component() {
        assert_eq!(super::COMPONENT_SHA256.len(), 64);
        assert!(super::COMPONENT_SHA256
            .bytes()
            .all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            super::LONG_VERSION,
            format!(
                "{} (component sha256 {}, wasmtime {})",
                super::VERSION,
                super::COMPONENT_SHA256,
                super::WASMTIME_VERSION
            )
        );
    }
}
