//! Every operation the component exports (`wit/store.wit`) exists in every binding, or is in
//! [`ABSENT`] with the reason it does not. (The settings of `OpenOptions` cannot drift: each
//! binding's declaration of them is generated, `host/surface/tests/settings.rs`.) A binding that
//! drifts (an operation added to the WIT and the C ABI but not to Go, a Promise twin missing
//! in Node) fails here, not in a user's hands.
//!
//! Names are mapped, not guessed: a WIT name `import-tokens` is `import_tokens` (Python, C),
//! `importTokens` (Node) and `ImportTokens` (Go); the asynchronous twins are `*_async`
//! (Python) and `*Async` (Node). Go has no twins: every call takes a `context.Context`.

use std::collections::BTreeSet;

use credlock_surface::names::{camel, go_name, snake};
use credlock_surface::read;

/// What a binding leaves out on purpose: (binding, name as that binding would spell it,
/// why). Anything absent and not listed fails the test; anything listed and present too.
const ABSENT: &[(&str, &str, &str)] = &[
    // The host moves a store between a directory and a database with these (`credlock
    // migrate`); a program migrates with the CLI, never through a binding.
    (
        "python",
        "export_sealed",
        "used by `credlock migrate` inside the host only",
    ),
    (
        "python",
        "adopt_sealed",
        "used by `credlock migrate` inside the host only",
    ),
    (
        "python",
        "export_sealed_async",
        "used by `credlock migrate` inside the host only",
    ),
    (
        "python",
        "adopt_sealed_async",
        "used by `credlock migrate` inside the host only",
    ),
    (
        "node",
        "exportSealed",
        "used by `credlock migrate` inside the host only",
    ),
    (
        "node",
        "adoptSealed",
        "used by `credlock migrate` inside the host only",
    ),
    (
        "node",
        "exportSealedAsync",
        "used by `credlock migrate` inside the host only",
    ),
    (
        "node",
        "adoptSealedAsync",
        "used by `credlock migrate` inside the host only",
    ),
    (
        "c",
        "credlock_export_sealed",
        "used by `credlock migrate` inside the host only",
    ),
    (
        "c",
        "credlock_adopt_sealed",
        "used by `credlock migrate` inside the host only",
    ),
    (
        "go",
        "ExportSealed",
        "used by `credlock migrate` inside the host only",
    ),
    (
        "go",
        "AdoptSealed",
        "used by `credlock migrate` inside the host only",
    ),
    // A login waits minutes for a person: Node has only the Promise form, so the event loop
    // never blocks on it; Python's releases the GIL and takes a callback, and an asyncio
    // program runs it in an executor (the prompt callback would run on that thread).
    (
        "node",
        "login",
        "a login takes minutes: Promise only (loginAsync)",
    ),
    (
        "python",
        "login_async",
        "the blocking login releases the GIL; run it in an executor",
    ),
];

/// The operations `store.wit` exports: `name: func(opts: options, ...)`.
fn wit_operations() -> Vec<String> {
    let wit = read("wit/store.wit");
    let ops: Vec<String> = wit
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().split_once(": func(")?;
            // `%list`: WIT's escape for a keyword.
            rest.starts_with("opts: options")
                .then(|| name.trim_start_matches('%').to_owned())
        })
        .collect();
    assert!(
        ops.len() >= 17 && ops.contains(&"import-tokens".to_owned()),
        "store.wit's operations not found: {ops:?}"
    );
    ops
}

/// The identifiers a binding's source defines that look like `prefix NAME(`.
fn defined(src: &str, prefix: &str) -> BTreeSet<String> {
    src.match_indices(prefix)
        .filter_map(|(i, _)| {
            let rest = &src[i + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty() && rest[name.len()..].starts_with('(')).then_some(name)
        })
        .collect()
}

/// Methods of the JS class (`  name(` at the start of a line of index.js).
fn node_methods(src: &str) -> BTreeSet<String> {
    src.lines()
        .filter_map(|l| {
            let t = l.strip_prefix("  ")?;
            let name: String = t
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty() && t[name.len()..].starts_with('(')).then_some(name)
        })
        .collect()
}

#[test]
fn every_operation_is_in_every_binding_or_listed() {
    let py_store = read("host/python/src/credlock/_store.py")
        + &read("host/python/src/credlock/_operations.py");
    let node_js = read("host/node/src/index.js");
    let header = read("host/capi/include/credlock.h");
    let go_src = ["credlock.go", "login.go", "maintenance.go", "operations.go"]
        .iter()
        .map(|f| read(&format!("host/go/{f}")))
        .collect::<Vec<_>>()
        .join("\n");

    let py_defs: BTreeSet<String> = defined(&py_store, "def ");
    let node_defs = node_methods(&node_js);
    let c_defs = defined(&header, " ");
    let go_defs = defined(&go_src, "func (s *Store) ");

    let mut missing = Vec::new();
    let mut check = |binding: &str, name: String, present: bool| {
        let listed = ABSENT.iter().any(|(b, n, _)| *b == binding && *n == name);
        match (present, listed) {
            (false, false) => missing.push(format!("{binding}: {name} is missing")),
            (true, true) => missing.push(format!(
                "{binding}: {name} exists but is listed as absent (remove it from ABSENT)"
            )),
            _ => {}
        }
    };
    for op in wit_operations() {
        let s = snake(&op);
        check("python", s.clone(), py_defs.contains(&s));
        check(
            "python",
            format!("{s}_async"),
            py_defs.contains(&format!("{s}_async")),
        );
        check("node", camel(&s), node_defs.contains(&camel(&s)));
        let node_async = format!("{}Async", camel(&s));
        check("node", node_async.clone(), node_defs.contains(&node_async));
        // The C ABI's token call is credlock_token (and credlock_refresh_rejected beside
        // credlock_refresh): the WIT name is enough.
        let c = format!("credlock_{s}");
        check("c", c.clone(), c_defs.contains(&c));
        check("go", go_name(&s), go_defs.contains(&go_name(&s)));
    }
    assert!(
        missing.is_empty(),
        "the bindings drifted from the WIT:\n  {}",
        missing.join("\n  ")
    );
}
