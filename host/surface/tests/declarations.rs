//! Every result record of the contract (`wit/store.wit`, `wit/sealing.wit`, `wit/login.wit`) is
//! declared with the same fields in every binding: Python's dataclasses (`_types.py`), Node's
//! interfaces (`index.d.ts`) and Go's structs (their `json` tags, which are what the C ABI's
//! JSON carries). The WIT is the one declaration; a binding that drops or invents a field
//! fails here, with the list of differences, instead of in a user's hands.
//!
//! Names are mapped, not guessed: a WIT field `expires-at-ms` is `expires_at_ms` in Python and
//! Go's JSON, and `expiresAtMs` in Node. A field a binding leaves out or adds on purpose is in
//! [`DIFFERENCES`] with the reason; anything else that differs fails, and so does a listed
//! difference that no longer exists.

use std::collections::{BTreeMap, BTreeSet};

use credlock_surface::names::{camel, snake, RECORDS};
use credlock_surface::read;

/// (binding, record, field as the binding spells it, "missing" or "extra", why).
const DIFFERENCES: &[(&str, &str, &str, &str, &str)] = &[
    // A key slot's `data` is the wrapped data key: key material never leaves the host. Each
    // binding says instead where the slot is in the header, whether it survives a reboot,
    // and what it is in words (as `credlock slot list` prints it).
    (
        "python",
        "key-slot",
        "data",
        "missing",
        "the wrapped key never leaves the host",
    ),
    (
        "node",
        "key-slot",
        "data",
        "missing",
        "the wrapped key never leaves the host",
    ),
    (
        "go",
        "key-slot",
        "data",
        "missing",
        "the wrapped key never leaves the host",
    ),
    (
        "python",
        "key-slot",
        "index",
        "extra",
        "the slot's place, which remove-slot takes",
    ),
    (
        "node",
        "key-slot",
        "index",
        "extra",
        "the slot's place, which removeSlot takes",
    ),
    (
        "go",
        "key-slot",
        "index",
        "extra",
        "the slot's place, which RemoveSlot takes",
    ),
    (
        "python",
        "key-slot",
        "durable",
        "extra",
        "whether the slot survives a reboot",
    ),
    (
        "node",
        "key-slot",
        "durable",
        "extra",
        "whether the slot survives a reboot",
    ),
    (
        "go",
        "key-slot",
        "durable",
        "extra",
        "whether the slot survives a reboot",
    ),
    (
        "python",
        "key-slot",
        "describe",
        "extra",
        "the slot in words",
    ),
    ("node", "key-slot", "describe", "extra", "the slot in words"),
    ("go", "key-slot", "describe", "extra", "the slot in words"),
    // `import_file`'s report is the import's plus what became of the source file (Node
    // declares it apart, as ImportFileReport).
    (
        "python",
        "import-report",
        "source_removed",
        "extra",
        "import_file's report",
    ),
    (
        "python",
        "import-report",
        "kept_reason",
        "extra",
        "import_file's report",
    ),
    (
        "go",
        "import-report",
        "source_removed",
        "extra",
        "ImportFile's report",
    ),
    (
        "go",
        "import-report",
        "kept_reason",
        "extra",
        "ImportFile's report",
    ),
    // The WIT's `revocation` variant, flattened: its case, and the payload of `failed`.
    (
        "python",
        "logout-report",
        "revocation_error",
        "extra",
        "the payload of `failed`",
    ),
    (
        "node",
        "logout-report",
        "revocationError",
        "extra",
        "the payload of `failed`",
    ),
    (
        "go",
        "logout-report",
        "revocation_error",
        "extra",
        "the payload of `failed`",
    ),
    // Go's time.Time in place of Unix milliseconds.
    (
        "go",
        "access-token",
        "expires_at_ms",
        "missing",
        "ExpiresAt is a time.Time",
    ),
    (
        "go",
        "access-token",
        "expires_at",
        "extra",
        "ExpiresAt is a time.Time",
    ),
];

/// A binding's name, its declaration of a record (none: not found), and how it spells a WIT
/// field.
type Declared = (&'static str, Option<BTreeSet<String>>, fn(&str) -> String);

/// Strip `//` comments (the WIT's `///` docs included) from each line.
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("").trim()
}

/// The records of a WIT file: name → fields, in kebab-case.
fn wit_records(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in text.lines().map(code) {
        if let Some(name) = line
            .strip_prefix("record ")
            .and_then(|r| r.strip_suffix('{'))
        {
            current = Some((name.trim().to_owned(), Vec::new()));
        } else if line.starts_with('}') {
            if let Some((name, fields)) = current.take() {
                out.insert(name, fields);
            }
        } else if let Some((_, fields)) = current.as_mut() {
            if let Some((field, _)) = line.split_once(':') {
                fields.push(field.trim().trim_start_matches('%').to_owned());
            }
        }
    }
    out
}

/// Python: the annotated fields of `class Name` (a dataclass), in `_types.py`.
fn python_fields(text: &str, class: &str) -> Option<BTreeSet<String>> {
    let start = text.find(&format!("\nclass {class}:"))?;
    let body = &text[start + 1..];
    let mut fields = BTreeSet::new();
    for line in body.lines().skip(1) {
        if line.starts_with(|c: char| !c.is_whitespace()) && !line.is_empty() {
            break;
        }
        let l = line.trim_start();
        if line.starts_with("    ") && !line.starts_with("     ") {
            if let Some((name, _)) = l.split_once(':') {
                if name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
                    && !name.is_empty()
                {
                    fields.insert(name.to_owned());
                }
            }
        }
    }
    Some(fields)
}

/// Node: the members of `export interface Name` in `index.d.ts`.
fn node_fields(text: &str, interface: &str) -> Option<BTreeSet<String>> {
    let start = text
        .find(&format!("export interface {interface} {{"))
        .or_else(|| text.find(&format!("export interface {interface} extends")))?;
    let mut fields = BTreeSet::new();
    for line in text[start..].lines().skip(1) {
        if line.starts_with('}') {
            break;
        }
        let l = line.trim().trim_start_matches("readonly ");
        if l.starts_with("/**") || l.starts_with('*') || l.starts_with("//") {
            continue;
        }
        if let Some((name, _)) = l.split_once(':') {
            let name = name.trim_end_matches('?');
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()) {
                fields.insert(name.to_owned());
            }
        }
    }
    Some(fields)
}

/// Go: the `json` names of `type Name struct` in any of the package's files.
fn go_fields(text: &str, name: &str) -> Option<BTreeSet<String>> {
    let start = text.find(&format!("\ntype {name} struct {{"))?;
    let mut fields = BTreeSet::new();
    for line in text[start + 1..].lines().skip(1) {
        if line.starts_with('}') {
            break;
        }
        if let Some(tag) = line.split("json:\"").nth(1) {
            let json = tag.split(['"', ',']).next().unwrap_or("");
            if json != "-" && !json.is_empty() {
                fields.insert(json.to_owned());
            }
        } else if let Some(field) = code(line).split_whitespace().next() {
            // A struct of Go's own (no tags: decoded from a wire type): its exported names.
            if field.starts_with(|c: char| c.is_ascii_uppercase()) {
                fields.insert(go_snake(field));
            }
        }
    }
    Some(fields)
}

/// `ExpiresAt` → `expires_at`, `ClientID` → `client_id`.
fn go_snake(name: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
        if c.is_ascii_uppercase() && i > 0 && (chars[i - 1].is_ascii_lowercase() || next_lower) {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[test]
fn every_binding_declares_every_result_field_of_the_wit() {
    let mut wit = BTreeMap::new();
    for f in ["wit/store.wit", "wit/sealing.wit", "wit/login.wit"] {
        wit.extend(wit_records(&read(f)));
    }
    let python = read("host/python/src/credlock/_types.py");
    let node = read("host/node/src/index.d.ts");
    let go: String = ["credlock.go", "login.go", "maintenance.go"]
        .iter()
        .map(|f| read(&format!("host/go/{f}")))
        .collect::<Vec<_>>()
        .join("\n");

    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for r in RECORDS {
        let (record, py, js, gostruct) = (r.wit, r.python, r.node, r.go);
        let fields = wit
            .get(record)
            .unwrap_or_else(|| panic!("the WIT has no record {record}"));
        assert!(!fields.is_empty(), "{record}: no fields parsed");
        let bindings: [Declared; 3] = [
            ("python", python_fields(&python, py), snake),
            ("node", node_fields(&node, js), camel),
            ("go", go_fields(&go, gostruct), snake),
        ];
        for (binding, declared, spell) in bindings {
            let Some(declared) = declared else {
                problems.push(format!("{binding}: no declaration of {record}"));
                continue;
            };
            let want: BTreeSet<String> = fields.iter().map(|f| spell(f)).collect();
            let diffs = want
                .difference(&declared)
                .map(|f| (f.clone(), "missing"))
                .chain(declared.difference(&want).map(|f| (f.clone(), "extra")));
            for (field, kind) in diffs {
                let known = DIFFERENCES.iter().position(|d| {
                    d.0 == binding && d.1 == record && spell(d.2) == field && d.3 == kind
                });
                match known {
                    Some(i) => {
                        used.insert(i);
                    }
                    None => problems.push(format!("{binding} {record}: {kind} field `{field}`")),
                }
            }
        }
    }
    for (i, d) in DIFFERENCES.iter().enumerate() {
        if !used.contains(&i) {
            problems.push(format!(
                "listed but not so: {} {} `{}` {} ({})",
                d.0, d.1, d.2, d.3, d.4
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "declarations differ from the WIT:\n  {}",
        problems.join("\n  ")
    );
}
