//! The C ABI of credlock: one opaque [`credlock_store`] handle over [`credlock::Store`],
//! calls that return the CLI's exit code as a status, and results and errors as UTF-8 JSON
//! strings handed out through out-pointers. `include/credlock.h` is generated from this crate's
//! sources by cbindgen (`build.rs`); its header comment states the conventions every call
//! follows, and `ffi.rs` implements them once.
//!
//! Nothing here decides anything: settings are resolved by [`credlock::OpenOptions`] (so the
//! `CREDLOCK_*` variables mean what they mean to the CLI), and every error, whatever its
//! source, is the [`credlock::ErrorReport`] that the CLI and the other bindings show.

use credlock::Store;
use std::ffi::c_int;

// In the order credlock.h lists them (cbindgen follows these declarations).
mod open;

mod ops;

// Generated from wit/store.wit (host/surface/tests/operations.rs).
mod operations;

mod maintenance;

mod login;

mod ffi;

/// An open credential store. Opaque: made by `credlock_open` or `credlock_open_dir`,
/// released by `credlock_close`. Safe to use from many threads at once.
#[allow(non_camel_case_types)]
pub struct credlock_store {
    pub(crate) inner: Store,
}

/// Status of a successful call.
pub const CREDLOCK_OK: c_int = 0;

#[cfg(test)]
mod tests {
    //! The result JSON is the C ABI's wire format (Go's `json` tags read it): since it is the
    //! library types' `Serialize`, pin each one's bytes here, as the hand-built objects wrote
    //! them, so a renamed or reordered field fails a test rather than a consumer.
    use crate::ffi::{json_out, token_out};
    use credlock::AccessToken;
    use credlock::{ImportFileReport, ImportReport, LoginOutcome, LoginPrompt, LogoutReport};
    use credlock::{PendingSummary, RecoverReport, Revocation, SlotInfo, StoreInfo};
    use credlock::{TenantSummary, WriteReceipt};
    use serde::Serialize;

    fn text<T: Serialize>(v: &T) -> String {
        json_out(v).unwrap().into_string().unwrap()
    }

    fn token() -> AccessToken {
        AccessToken {
            token: "at\"1".into(),
            token_type: "Bearer".into(),
            expires_at_ms: Some(5),
            revision: 2,
            refreshed: true,
        }
    }

    #[test]
    fn tokens_and_receipts() {
        assert_eq!(
            text(&token()),
            r#"{"token":"at\"1","token_type":"Bearer","expires_at_ms":5,"revision":2,"refreshed":true}"#
        );
        let t = token_out(AccessToken {
            expires_at_ms: None,
            ..token()
        });
        assert_eq!(
            t.unwrap().into_string().unwrap(),
            r#"{"token":"at\"1","token_type":"Bearer","expires_at_ms":null,"revision":2,"refreshed":true}"#
        );
        let w = WriteReceipt {
            revision: 1,
            generation: 9,
        };
        assert_eq!(text(&w), r#"{"revision":1,"generation":9}"#);
    }

    #[test]
    fn list_info_and_slots() {
        let t = TenantSummary {
            tenant: "acme".into(),
            token_type: "Bearer".into(),
            expires_at_ms: None,
            has_refresh_token: true,
            scope: Some("a b".into()),
            token_endpoint: None,
            client_id: Some("c".into()),
            revision: 3,
            needs_reauth: false,
            refresh_intent: true,
        };
        assert_eq!(
            text(&vec![t]),
            r#"[{"tenant":"acme","token_type":"Bearer","expires_at_ms":null,"has_refresh_token":true,"scope":"a b","token_endpoint":null,"client_id":"c","revision":3,"needs_reauth":false,"refresh_intent":true}]"#
        );
        let i = StoreInfo {
            exists: true,
            generation: 4,
            format_version: 1,
            key_id: "ab".into(),
            slot_kinds: vec!["key-file".into(), "passphrase".into()],
            tenants: 2,
        };
        assert_eq!(
            text(&i),
            r#"{"exists":true,"generation":4,"format_version":1,"key_id":"ab","slot_kinds":["key-file","passphrase"],"tenants":2}"#
        );
        let s = SlotInfo {
            index: 0,
            kind: "key-file".into(),
            describe: "key file ab".into(),
            durable: true,
        };
        assert_eq!(
            text(&vec![s]),
            r#"[{"index":0,"kind":"key-file","describe":"key file ab","durable":true}]"#
        );
    }

    #[test]
    fn imports_and_recovery() {
        let r = ImportReport {
            imported: vec!["g".into()],
            skipped: vec![("k".into(), "an API key".into())],
            generation: 7,
        };
        assert_eq!(
            text(&r),
            r#"{"imported":["g"],"skipped":[{"tenant":"k","reason":"an API key"}],"generation":7}"#
        );
        let f = ImportFileReport {
            report: r,
            source_removed: false,
            kept_reason: Some("something was skipped".into()),
        };
        assert_eq!(
            text(&f),
            r#"{"imported":["g"],"skipped":[{"tenant":"k","reason":"an API key"}],"generation":7,"source_removed":false,"kept_reason":"something was skipped"}"#
        );
        let r = RecoverReport {
            quarantined_as: None,
            generation: 14,
            tenants: 2,
            refresh_unknown: vec!["acme".into()],
        };
        assert_eq!(
            text(&r),
            r#"{"quarantined_as":null,"generation":14,"tenants":2,"refresh_unknown":["acme"]}"#
        );
    }

    #[test]
    fn login_logout_and_pending() {
        let o = LoginOutcome {
            token: token(),
            joined: false,
            refreshable: true,
        };
        assert_eq!(
            text(&o),
            r#"{"token":{"token":"at\"1","token_type":"Bearer","expires_at_ms":5,"revision":2,"refreshed":true},"joined":false,"refreshable":true}"#
        );
        let p = LoginPrompt {
            kind: "device".into(),
            url: "http://127.0.0.1/d".into(),
            user_code: Some("ABCD".into()),
            url_complete: None,
            expires_at_ms: 8,
            joined: true,
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"kind":"device","url":"http://127.0.0.1/d","user_code":"ABCD","url_complete":null,"expires_at_ms":8,"joined":true}"#
        );
        let cases = [
            (Revocation::Revoked, r#""revoked","revocation_error":null"#),
            (
                Revocation::NotOffered,
                r#""not-offered","revocation_error":null"#,
            ),
            (
                Revocation::Failed("HTTP 500".into()),
                r#""failed","revocation_error":"HTTP 500""#,
            ),
        ];
        for (revocation, shown) in cases {
            let r = LogoutReport {
                revocation,
                deleted: true,
            };
            assert_eq!(
                text(&r),
                format!(r#"{{"revocation":{shown},"deleted":true}}"#)
            );
        }
        let p = PendingSummary {
            tenant: "acme".into(),
            kind: "browser".into(),
            started_at_ms: 1,
            expires_at_ms: 2,
            understood: false,
        };
        assert_eq!(
            text(&vec![p]),
            r#"[{"tenant":"acme","kind":"browser","started_at_ms":1,"expires_at_ms":2,"understood":false}]"#
        );
    }
}
