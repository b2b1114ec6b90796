//! The committed include/credlock.h is what cbindgen generates from this source.

#[test]
fn committed_header_is_current() {
    let generated = std::fs::read_to_string(env!("CREDLOCK_GENERATED_HEADER")).unwrap();
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/credlock.h"))
            .unwrap();
    assert!(
        generated == committed,
        "include/credlock.h is stale: run `cargo build -p credlock-capi` and commit it"
    );
}
