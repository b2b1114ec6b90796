//! How each binding spells a name of the contract (a WIT `import-tokens`, a setting
//! `keyring_timeout`), for the tests that compare the bindings with the WIT and with
//! `OpenOptions` (`parity.rs`, `declarations.rs`, `surface.rs`). Names are mapped, not
//! guessed, and mapped in one place.

/// `import-tokens` → `import_tokens` (Python, C, the JSON the C ABI carries).
pub fn snake(kebab: &str) -> String {
    kebab.replace('-', "_")
}

/// `import-tokens` or `import_tokens` → `importTokens` (Node).
pub fn camel(name: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in name.chars() {
        if c == '_' || c == '-' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `import_tokens` → `ImportTokens`.
pub fn pascal(name: &str) -> String {
    let c = camel(name);
    let mut chars = c.chars();
    chars
        .next()
        .map(|f| f.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Go spells initialisms in capitals (`HTTPTimeout`, `KDF`, `ClientID`).
pub fn go_name(name: &str) -> String {
    pascal(name)
        .replace("Http", "HTTP")
        .replace("Kdf", "KDF")
        .replace("Id", "ID")
}

/// A record of the contract and its name in each layer.
pub struct Record {
    /// In the WIT: `store-info`.
    pub wit: &'static str,
    /// The Rust host's type (`credlock::StoreInfo`).
    pub rust: &'static str,
    /// Python's dataclass (`_types.py`).
    pub python: &'static str,
    /// Node's interface (`index.d.ts`) and the addon's struct.
    pub node: &'static str,
    /// Go's struct.
    pub go: &'static str,
}

const fn record(
    wit: &'static str,
    rust: &'static str,
    python: &'static str,
    node: &'static str,
    go: &'static str,
) -> Record {
    Record {
        wit,
        rust,
        python,
        node,
        go,
    }
}

/// The records that are results of the store's operations.
pub const RECORDS: &[Record] = &[
    record(
        "access-token",
        "AccessToken",
        "AccessToken",
        "AccessToken",
        "AccessToken",
    ),
    record(
        "write-receipt",
        "WriteReceipt",
        "WriteReceipt",
        "WriteReceipt",
        "WriteReceipt",
    ),
    record(
        "tenant-summary",
        "TenantSummary",
        "TenantSummary",
        "TenantSummary",
        "TenantSummary",
    ),
    record(
        "store-info",
        "StoreInfo",
        "StoreInfo",
        "StoreInfo",
        "StoreInfo",
    ),
    record("key-slot", "KeySlot", "KeySlotInfo", "KeySlotInfo", "Slot"),
    record(
        "import-report",
        "ImportReport",
        "ImportReport",
        "ImportReport",
        "ImportReport",
    ),
    record(
        "recover-report",
        "RecoverReport",
        "RecoverReport",
        "RecoverReport",
        "RecoverReport",
    ),
    record(
        "prompt",
        "LoginPrompt",
        "LoginPrompt",
        "LoginPrompt",
        "LoginPrompt",
    ),
    record(
        "login-result",
        "LoginOutcome",
        "LoginResult",
        "LoginResult",
        "LoginResult",
    ),
    record(
        "logout-report",
        "LogoutReport",
        "LogoutReport",
        "LogoutReport",
        "LogoutReport",
    ),
    record(
        "pending-login",
        "PendingSummary",
        "PendingLogin",
        "PendingLogin",
        "PendingLogin",
    ),
];
