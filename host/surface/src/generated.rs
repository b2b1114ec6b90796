//! Code generated from a declaration and committed (so that a binding's users read it and
//! need no generator): each test renders what a file, or a marked region of it, should hold
//! and fails when the committed text differs; with `CREDLOCK_BLESS=1` it rewrites the file
//! instead. `tests/settings.rs` and `tests/operations.rs` use it.

use crate::{read, root};

/// What a committed file should be.
pub enum Target<'a> {
    /// The whole file `rel`.
    File { rel: &'a str, text: String },
    /// The lines between the line of `rel` containing `begin` and the next containing `end`.
    Region {
        rel: &'a str,
        begin: &'a str,
        end: &'a str,
        body: String,
    },
}

fn fresh(target: &Target) -> (String, String, String) {
    match target {
        Target::File { rel, text } => {
            let now = std::fs::read_to_string(root().join(rel)).unwrap_or_default();
            (rel.to_string(), now, text.clone())
        }
        Target::Region {
            rel,
            begin,
            end,
            body,
        } => {
            let text = read(rel);
            let start = text
                .find(begin)
                .unwrap_or_else(|| panic!("{rel}: no line with {begin:?}"));
            let start = start + text[start..].find('\n').expect("marker line ends") + 1;
            let stop = start
                + text[start..]
                    .find(end)
                    .unwrap_or_else(|| panic!("{rel}: no line with {end:?} after {begin:?}"));
            let stop = text[..stop].rfind('\n').map_or(stop, |i| i + 1);
            let body = if body.is_empty() {
                String::new()
            } else {
                format!("{body}\n")
            };
            let fresh = format!("{}{body}{}", &text[..start], &text[stop..]);
            (rel.to_string(), text, fresh)
        }
    }
}

/// Check (or with `CREDLOCK_BLESS`, rewrite) every target; `what` names the declaration and
/// `how` the command that regenerates them.
pub fn check(what: &str, how: &str, targets: &[Target]) {
    let bless = std::env::var_os("CREDLOCK_BLESS").is_some();
    let mut stale = Vec::new();
    for t in targets {
        let (rel, now, fresh) = fresh(t);
        if now != fresh {
            if bless {
                std::fs::write(root().join(&rel), &fresh).unwrap();
            } else {
                stale.push(rel);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "code generated from {what} is stale in {stale:?}: run `{how}` and commit it"
    );
}

/// `text` in lines of at most `width` columns (a tab counts 4), the first starting with
/// `first` and the others with `rest` (a list item's hanging indent).
pub fn hang(text: &str, first: &str, rest: &str, width: usize) -> Vec<String> {
    let columns = |p: &str| p.len() + 3 * p.matches('\t').count();
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let prefix = if lines.is_empty() { first } else { rest };
        if !line.is_empty() && columns(prefix) + line.len() + 1 + word.len() > width {
            lines.push(format!("{prefix}{line}"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let prefix = if lines.is_empty() { first } else { rest };
        lines.push(format!("{prefix}{line}"));
    }
    lines
}

/// [`hang`] with one prefix for every line.
pub fn wrap(text: &str, prefix: &str, width: usize) -> Vec<String> {
    hang(text, prefix, prefix, width)
}

/// The first letter in lower case, unless the word is an initialism (`OS`).
pub fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if !b.is_uppercase() => a
            .to_lowercase()
            .chain(std::iter::once(b))
            .chain(chars)
            .collect(),
        _ => text.to_owned(),
    }
}

/// Rust source as `cargo fmt` leaves it (the generated files are formatted like the rest, and
/// `cargo fmt --check` passes on them).
pub fn rustfmt(source: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2021", "--emit", "stdout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rustfmt (rustup component add rustfmt) formats the generated Rust");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(source.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "rustfmt refused the generated Rust:\n{}\n{source}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
