//! `login` for the WASI-only platform. It has no HTTP client (see `token_endpoint` in
//! lib.rs) and no listener, so a login cannot run here: every call that would reach the
//! network or the user says so, and the core reports `unsupported`-style errors from them.
//! Waiting and showing work, so a future HTTP client is all a device login would need.

use crate::bindings::exports::credlock::store::{login, token_endpoint};
use crate::Platform;

const NO_LOGIN: &str = "the WASI build cannot log in (no HTTP client or loopback listener); log in with a native credlock host";

impl login::Guest for Platform {
    fn get(
        _url: String,
        _timeout_ms: u32,
    ) -> Result<token_endpoint::HttpReply, token_endpoint::TransportError> {
        Err(token_endpoint::TransportError::Connect(NO_LOGIN.into()))
    }

    fn sleep(ms: u32) {
        std::thread::sleep(std::time::Duration::from_millis(u64::from(ms)));
    }

    fn show(p: login::Prompt) {
        eprintln!("To log in, visit {}", p.url);
        if let Some(code) = p.user_code {
            eprintln!("and enter the code {code}");
        }
    }

    fn listen() -> Result<u16, String> {
        Err(NO_LOGIN.into())
    }

    fn accept_callback(_state: String, _timeout_ms: u32) -> Result<String, String> {
        Err(NO_LOGIN.into())
    }

    fn open_browser(_url: String) -> bool {
        false
    }
}
