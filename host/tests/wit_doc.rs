//! Keeps wit/README.md honest: every function, resource method and variant case declared in
//! the WIT must be named there (in backticks), so the contract's summary cannot drift.

use std::collections::BTreeSet;

fn declared_names(wit: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_variant = false;
    for line in wit.lines() {
        let line = line.trim();
        if line.starts_with("///") || line.starts_with("//") || line.is_empty() {
            continue;
        }
        if line.starts_with("variant ") || line.starts_with("enum ") {
            in_variant = line.starts_with("variant ");
            continue;
        }
        if line.starts_with('}') {
            in_variant = false;
            continue;
        }
        if let Some((name, _)) = line.split_once(": func(") {
            names.insert(name.trim_start_matches('%').to_owned());
        } else if in_variant {
            let case = line.split(['(', ',']).next().unwrap().trim();
            if !case.is_empty() {
                names.insert(case.to_owned());
            }
        }
    }
    names
}

#[test]
fn every_wit_name_is_documented() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../wit");
    let doc = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let mut missing = Vec::new();
    let mut count = 0;
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wit") {
            for name in declared_names(&std::fs::read_to_string(&path).unwrap()) {
                count += 1;
                if !doc.contains(&format!("`{name}`")) {
                    missing.push(format!(
                        "{}: {name}",
                        path.file_name().unwrap().to_string_lossy()
                    ));
                }
            }
        }
    }
    assert!(
        count > 40,
        "parsed only {count} names; is the parser broken?"
    );
    assert!(
        missing.is_empty(),
        "wit/README.md does not mention: {missing:#?}"
    );
}
