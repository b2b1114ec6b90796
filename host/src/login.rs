//! The host's part of a login (`wit/login.wit`): GET for discovery, waiting, showing the
//! prompt, the loopback listener for the browser flow's redirect (RFC 8252 §7.3) and opening
//! a browser. The flows themselves are the core's (`credlock_core::login`).

use crate::component::api;
use crate::endpoint::{agent_for, read_reply, EndpointPolicy};
use crate::native::NativePlatform;
use crate::{Credlock, Engine, Error};
use credlock_core::login::{LoginOutcome, LoginRequest, LogoutReport, PendingSummary, Revocation};
use credlock_core::platform::{
    CallbackQuery, HttpReply, LoginPlatform, LoginPrompt, TransportError,
};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shows a login's prompt: the CLI prints it, a binding calls its language's callback.
pub type PromptSink = Arc<dyn Fn(&LoginPrompt) + Send + Sync>;

/// The largest request head the loopback listener reads.
const MAX_CALLBACK_REQUEST_BYTES: usize = 8 * 1024;
/// How long one connection to the listener may take, from its accept to the end of its
/// request head, and then to take its answer: in all, however slowly it trickles bytes.
const CALLBACK_REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Connections the listener serves at once, each on its own thread. One more evicts the
/// oldest: a browser's callback sends its request at once and is answered within
/// milliseconds, so only a flood faster than that could evict it.
const MAX_CALLBACK_CONNECTIONS: usize = 16;
/// How often the listener looks for a connection while it waits.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// A login's host-side state, kept in the [`NativePlatform`].
#[derive(Default)]
pub struct LoginState {
    /// Where prompts go; `None`: standard error.
    pub sink: Option<PromptSink>,
    listener: Option<TcpListener>,
}

/// The prompt as the CLI prints it (to standard error: standard output carries results).
pub fn prompt_text(p: &LoginPrompt, now_ms: u64) -> String {
    let left_s = p.expires_at_ms.saturating_sub(now_ms) / 1000;
    let mut out = String::new();
    if p.joined {
        out.push_str("Another credlock process is already logging in; joining it.\n");
    }
    match &p.user_code {
        Some(code) => {
            out.push_str(&format!(
                "To log in, visit:\n    {}\nand enter the code:\n    {code}\n",
                p.url
            ));
            if let Some(complete) = &p.url_complete {
                out.push_str(&format!("(or open {complete})\n"));
            }
        }
        None => out.push_str(&format!(
            "To log in, open this URL in a browser:\n    {}\n",
            p.url
        )),
    }
    out.push_str(&format!("Waiting (the request expires in {left_s} s)...\n"));
    out
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One GET under the token endpoint's rules (`endpoint::agent_for`).
pub fn get(
    url: &str,
    timeout_ms: u32,
    policy: EndpointPolicy,
) -> Result<HttpReply, TransportError> {
    let (agent, sent) = agent_for(url, timeout_ms, policy)?;
    let response = agent
        .get(url)
        .header("Accept", "application/json")
        .call()
        .map_err(|e| sent.transport_error(e))?;
    read_reply(response)
}

/// The page the browser shows for the expected callback: what happened, as far as it is
/// known when the page is sent. A refusal is final; a code is only half of a login (credlock
/// exchanges it next, and that can fail), so the page never says "complete" and points to
/// the terminal, where credlock reports the outcome.
fn callback_page(query: &str) -> String {
    use credlock_core::login::query_param;
    // The server's error code, as printable ASCII only (it is shown back to the user).
    let error = query_param(query, "error").map(|e| {
        e.chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect::<String>()
    });
    match error.as_deref() {
        Some("access_denied") => "credlock: the authorization was denied (access_denied), so the login did not complete and nothing was stored. Run `credlock login` again to retry. You can close this window.\n".to_owned(),
        Some(e) => format!("credlock: the server answered {e} instead of an authorization code, so the login did not complete and nothing was stored. The terminal running `credlock login` says what to do. You can close this window.\n"),
        None => "credlock: the authorization reached credlock, which now exchanges it for tokens. Whether the login completed is shown in the terminal running `credlock login`. You can close this window.\n".to_owned(),
    }
}

/// Answer one connection to the listener within [`CALLBACK_REQUEST_DEADLINE`]; returns the
/// query if it is the expected callback and the first one (`claimed` says whether one came).
fn serve_one(mut stream: TcpStream, state: &str, claimed: &AtomicBool) -> Option<String> {
    let deadline = Instant::now() + CALLBACK_REQUEST_DEADLINE;
    let _ = stream.set_nonblocking(false);
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let complete = |h: &[u8]| h.windows(4).any(|w| w == b"\r\n\r\n");
    while !complete(&head) && head.len() < MAX_CALLBACK_REQUEST_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    // Only a whole request head counts: one cut short by the deadline is answered 400.
    let complete = complete(&head);
    let head = String::from_utf8_lossy(&head);
    let target = head
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("GET "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or("");
    let query = target.strip_prefix("/callback?").filter(|_| complete);
    let matches = query.is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.strip_prefix("state=") == Some(state))
    }) && claimed
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    let (status, text) = if matches {
        ("200 OK", callback_page(query.unwrap_or_default()))
    } else {
        (
            "400 Bad Request",
            "credlock: this is not the callback credlock is waiting for.\n".to_owned(),
        )
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let _ = stream.set_write_timeout(Some(left.max(Duration::from_millis(100))));
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    );
    matches.then(|| query.unwrap_or_default().to_owned())
}

/// The connections the listener is serving, each on a thread of its own, so that none can
/// delay another (a connection trickling a byte a second used to hold the one expected
/// callback off until the login timed out).
struct Connections {
    /// Oldest first: a handle on each socket (to shut it down) and whether its thread ended.
    live: std::collections::VecDeque<(TcpStream, Arc<AtomicBool>)>,
    claimed: Arc<AtomicBool>,
    found: std::sync::mpsc::Sender<String>,
}

impl Connections {
    fn serve(&mut self, stream: TcpStream, state: &str) {
        self.live.retain(|(_, ended)| !ended.load(Ordering::SeqCst));
        if self.live.len() >= MAX_CALLBACK_CONNECTIONS {
            if let Some((oldest, _)) = self.live.pop_front() {
                let _ = oldest.shutdown(std::net::Shutdown::Both);
            }
        }
        let Ok(handle) = stream.try_clone() else {
            return;
        };
        let ended = Arc::new(AtomicBool::new(false));
        let (state, claimed, found) = (state.to_owned(), self.claimed.clone(), self.found.clone());
        let flag = ended.clone();
        let spawned = std::thread::Builder::new()
            .name("credlock-callback".into())
            .spawn(move || {
                if let Some(query) = serve_one(stream, &state, &claimed) {
                    let _ = found.send(query);
                }
                flag.store(true, Ordering::SeqCst);
            });
        if spawned.is_ok() {
            self.live.push_back((handle, ended));
        }
    }
}

impl Drop for Connections {
    /// The login is over: whatever is still connected gets no answer and its thread ends.
    fn drop(&mut self) {
        for (stream, _) in &self.live {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl LoginPlatform for NativePlatform {
    fn get(&mut self, url: &str, timeout_ms: u32) -> Result<HttpReply, TransportError> {
        get(url, timeout_ms, self.policy)
    }

    fn sleep_ms(&mut self, ms: u32) {
        std::thread::sleep(Duration::from_millis(u64::from(ms)));
    }

    fn show(&mut self, prompt: &LoginPrompt) {
        match &self.login.sink {
            Some(sink) => sink(prompt),
            None => eprint!("{}", prompt_text(prompt, now_ms())),
        }
    }

    fn listen(&mut self) -> Result<u16, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?
            .port();
        self.login.listener = Some(listener);
        Ok(port)
    }

    fn accept_callback(&mut self, state: &str, timeout_ms: u32) -> Result<CallbackQuery, String> {
        // Taken out: whatever happens, the listener is closed when this returns, so a second
        // callback finds nothing listening.
        let listener = self
            .login
            .listener
            .take()
            .ok_or_else(|| "no loopback listener was opened".to_owned())?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("loopback listener: {e}"))?;
        let deadline = Instant::now() + Duration::from_millis(u64::from(timeout_ms));
        let (found, callbacks) = std::sync::mpsc::channel();
        let mut connections = Connections {
            live: Default::default(),
            claimed: Arc::new(AtomicBool::new(false)),
            found,
        };
        while Instant::now() < deadline {
            if let Ok(query) = callbacks.try_recv() {
                return Ok(CallbackQuery(query));
            }
            match listener.accept() {
                Ok((stream, peer)) => {
                    if peer.ip().is_loopback() {
                        connections.serve(stream, state);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(ACCEPT_POLL)
                }
                Err(e) => return Err(format!("loopback listener: {e}")),
            }
        }
        // One answered during the last poll.
        if let Ok(query) = callbacks.try_recv() {
            return Ok(CallbackQuery(query));
        }
        Err(format!(
            "no callback arrived within {} s",
            timeout_ms / 1000
        ))
    }

    fn open_browser(&mut self, url: &str) -> bool {
        use std::process::{Command, Stdio};
        let mut command = if cfg!(target_os = "macos") {
            Command::new("open")
        } else if cfg!(windows) {
            let mut c = Command::new("rundll32");
            c.arg("url.dll,FileProtocolHandler");
            c
        } else {
            Command::new("xdg-open")
        };
        command
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .is_ok()
    }
}

impl Credlock {
    fn platform_mut(&mut self) -> &mut NativePlatform {
        match &mut self.engine {
            Engine::Native(p) => p,
            Engine::Component {
                instance: Some(i), ..
            } => &mut i.store.data_mut().platform,
            Engine::Component { spare: Some(p), .. } => p,
            Engine::Component { .. } => {
                unreachable!("the platform is either in the instance or spare")
            }
        }
    }

    /// Log `tenant` in (or join the login another process runs for it) and store the
    /// result. `on_prompt` is called with the code or URL to show the user; `None` prints it
    /// to standard error.
    pub fn login(
        &mut self,
        tenant: &str,
        request: &LoginRequest,
        on_prompt: Option<PromptSink>,
    ) -> Result<LoginOutcome, Error> {
        self.platform_mut().login.sink = on_prompt;
        let wire = api::LoginRequest::from(request);
        let result = self.call(
            |i, s, o| i.credlock_store_store().call_login(s, *o, tenant, &wire),
            |s| s.login(tenant, request),
            LoginOutcome::from,
        );
        self.platform_mut().login = LoginState::default();
        result
    }

    /// Revoke `tenant`'s refresh token where the server offers revocation, then delete it;
    /// a failed revocation deletes nothing unless `local`.
    pub fn logout(&mut self, tenant: &str, local: bool) -> Result<LogoutReport, Error> {
        self.call(
            |i, s, o| i.credlock_store_store().call_logout(s, *o, tenant, local),
            |s| s.logout(tenant, local),
            LogoutReport::from,
        )
    }
}

// ----- what the CLI prints -----

/// The login's result on standard output: no secret, only the token's hash, so scripts and
/// tests can tell whether two logins got the same tokens.
pub fn outcome_json(tenant: &str, o: &LoginOutcome) -> String {
    serde_json::json!({
        "tenant": tenant,
        "revision": o.token.revision,
        "joined": o.joined,
        "expires_at_ms": o.token.expires_at_ms,
        "access_token_sha256": credlock_core::sha256_hex(o.token.token.as_bytes()),
        "refresh_token": o.refreshable,
    })
    .to_string()
}

/// A login asked for `offline_access` (a refresh token) and got none: said instead of a
/// silent success, since the tenant then needs a new login as soon as its token expires.
pub fn no_refresh_token_text(
    tenant: &str,
    request: &LoginRequest,
    o: &LoginOutcome,
) -> Option<String> {
    (!o.refreshable && credlock_core::login::asks_offline_access(request.scope.as_deref())).then(|| {
        format!(
            "credlock: warning: the server issued no refresh token for '{tenant}' although offline_access was asked for: it needs a new login when its access token expires; check that the client may use the refresh_token grant and that the server grants offline_access"
        )
    })
}

pub fn outcome_text(tenant: &str, o: &LoginOutcome) -> String {
    if o.joined {
        format!(
            "credlock: logged in '{tenant}' (revision {}, by the login this process joined)",
            o.token.revision
        )
    } else {
        format!(
            "credlock: logged in '{tenant}' (revision {})",
            o.token.revision
        )
    }
}

pub fn logout_text(tenant: &str, r: &LogoutReport) -> String {
    let server = match &r.revocation {
        Revocation::Revoked => "the server revoked its refresh token".to_owned(),
        Revocation::NotOffered => "no revocation endpoint is known, nothing revoked".to_owned(),
        Revocation::Failed(why) => {
            format!("the revocation FAILED ({why}); deleted locally as asked (--local)")
        }
    };
    let local = if r.deleted {
        "deleted"
    } else {
        "was not stored"
    };
    format!("credlock: logged out '{tenant}': {server}; {local}")
}

/// `list`'s lines for logins in progress (none: nothing).
pub fn pending_text(pending: &[PendingSummary], now_ms: u64) -> String {
    let mut out = String::new();
    for p in pending {
        let state = if p.expires_at_ms <= now_ms {
            "expired, collected by the next write".to_owned()
        } else {
            format!("expires in {} s", (p.expires_at_ms - now_ms) / 1000)
        };
        let version = if p.understood {
            ""
        } else {
            " (written by a newer credlock)"
        };
        out.push_str(&format!(
            "pending login: {} ({}, {state}){version}\n",
            p.tenant, p.kind
        ));
    }
    out
}
