//! Tenant names: validated once, and never used raw in a path.

use sha2::{Digest, Sha256};

/// The longest tenant name accepted, in bytes.
pub const TENANT_NAME_MAX_BYTES: usize = 128;

/// A tenant name that passed validation: 1 to 128 bytes of `[A-Za-z0-9._@+:-]`, not starting
/// with `-` (it would read as a flag) or `.` (hidden files, `..`).
///
/// The name is stored inside the sealed body only. Anything that needs a path or lock name
/// uses [`TenantName::id`], a hash, so no name can steer a path (`../x`, `NUL`, `con`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantName(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantNameError {
    Empty,
    TooLong(usize),
    /// The first offending character, escaped for display.
    BadCharacter(String),
    BadStart(char),
}

impl std::fmt::Display for TenantNameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TenantNameError::Empty => write!(f, "the tenant name is empty"),
            TenantNameError::TooLong(n) => {
                write!(
                    f,
                    "the tenant name is {n} bytes long; the limit is {TENANT_NAME_MAX_BYTES}"
                )
            }
            TenantNameError::BadCharacter(c) => write!(
                f,
                "the tenant name contains {c}; allowed are letters, digits and . _ @ + : -"
            ),
            TenantNameError::BadStart(c) => write!(f, "the tenant name must not start with '{c}'"),
        }
    }
}

impl TenantName {
    pub fn new(name: &str) -> Result<Self, TenantNameError> {
        if name.is_empty() {
            return Err(TenantNameError::Empty);
        }
        if name.len() > TENANT_NAME_MAX_BYTES {
            return Err(TenantNameError::TooLong(name.len()));
        }
        if let Some(c) = name.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | ':' | '-'))
        }) {
            return Err(TenantNameError::BadCharacter(format!("{:?}", c)));
        }
        // The loop above proved the name non-empty, so there is a first character.
        let first = name.chars().next().expect("non-empty");
        if first == '-' || first == '.' {
            return Err(TenantNameError::BadStart(first));
        }
        Ok(TenantName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path-safe id of this tenant: lowercase hex of SHA-256 over a domain-separated name.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"credlock tenant id\0");
        h.update(self.0.as_bytes());
        hex(&h.finalize())
    }
}

impl std::fmt::Display for TenantName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Lowercase hex SHA-256 of `data`: how credlock names a token without showing it.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    //! Guards against hostile tenant names reaching a path or an argv-like position.
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in ["acme", "user@example.com", "prod:eu-1", "a.b_c+d", "X9"] {
            assert!(TenantName::new(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn rejects_hostile_names() {
        for n in [
            "",
            "../etc/passwd",
            "a/b",
            "a\\b",
            "-rf",
            ".hidden",
            "..",
            "a b",
            "a\0b",
            "tab\t",
            "é",
        ] {
            assert!(TenantName::new(n).is_err(), "{n:?}");
        }
        assert_eq!(
            TenantName::new(&"a".repeat(129)),
            Err(TenantNameError::TooLong(129))
        );
        assert!(TenantName::new(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn id_is_path_safe_and_distinct() {
        let a = TenantName::new("acme").unwrap().id();
        let b = TenantName::new("acme2").unwrap().id();
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
