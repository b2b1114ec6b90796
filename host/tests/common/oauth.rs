//! A real OAuth server (tests/oauth-server, `oidc-provider` with refresh-token rotation and
//! reuse detection) on 127.0.0.1, started for a test and stopped when dropped.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

pub struct OAuthServer {
    pub base: String,
    pid: u32,
    _dir: tempfile::TempDir,
}

fn server_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/oauth-server"
    ))
}

impl OAuthServer {
    /// Start a server whose access tokens live `access_ttl_s` seconds.
    pub fn start(access_ttl_s: u32) -> OAuthServer {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("url");
        let status = Command::new("bash")
            .arg(server_dir().join("start.sh"))
            .arg(&port_file)
            .env("ACCESS_TTL_SECONDS", access_ttl_s.to_string())
            .status()
            .expect(
                "running tests/oauth-server/start.sh (needs node; scripts/setup.sh installs it)",
            );
        assert!(status.success(), "the OAuth test server did not start");
        let base = std::fs::read_to_string(&port_file)
            .unwrap()
            .trim()
            .to_owned();
        let pid = std::fs::read_to_string(format!("{}.pid", port_file.display()))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        OAuthServer {
            base,
            pid,
            _dir: dir,
        }
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.base)
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .build()
            .into()
    }

    fn post_json(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let mut r = Self::agent()
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        serde_json::from_slice(&r.body_mut().read_to_vec().unwrap())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Mint a grant for `client_id` and return a `credlock put` document for it.
    pub fn grant(&self, client_id: &str) -> serde_json::Value {
        let mut t = self.post_json("/test/grant", serde_json::json!({"client_id": client_id, "account": "alice", "scope": "openid offline_access api"}));
        let obj = t.as_object_mut().unwrap();
        obj.remove("grant_id");
        obj.insert("token_endpoint".into(), self.token_endpoint().into());
        obj.insert("client_id".into(), client_id.into());
        match client_id {
            "conf-basic" => {
                obj.insert("client_secret".into(), "basic-secret".into());
                obj.insert("client_auth".into(), "basic".into());
            }
            "conf-post" => {
                obj.insert("client_secret".into(), "post-secret".into());
                obj.insert("client_auth".into(), "post".into());
            }
            _ => {
                obj.insert("client_auth".into(), "none".into());
            }
        }
        t
    }

    /// Present `refresh_token` directly (client_secret_basic), bypassing credlock; returns the status.
    pub fn raw_refresh(&self, client_id: &str, secret: &str, refresh_token: &str) -> u16 {
        let auth = credlock_core::model::ClientAuth::Basic {
            secret: secret.into(),
        };
        let (body, authorization) = credlock_core::oauth::refresh_request_parts(
            refresh_token,
            Some(client_id),
            &auth,
            None,
            None,
        );
        Self::agent()
            .post(self.token_endpoint())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Authorization", authorization.unwrap())
            .send(body.as_bytes())
            .unwrap()
            .status()
            .as_u16()
    }

    /// Zero the counters and forget which refresh tokens were presented (tokens stay valid).
    pub fn reset(&self) {
        self.post_json("/test/reset", serde_json::json!({}));
    }

    pub fn stats(&self) -> serde_json::Value {
        let mut r = Self::agent()
            .get(format!("{}/test/stats", self.base))
            .call()
            .unwrap();
        serde_json::from_slice(&r.body_mut().read_to_vec().unwrap()).unwrap()
    }

    /// Play the user on the device flow's verification page: approve (or deny) `user_code`.
    pub fn device(&self, user_code: &str, action: &str) {
        self.post_json(
            "/test/device",
            serde_json::json!({"user_code": user_code, "action": action}),
        );
    }

    /// Arm a fault for the next `count` device-code polls (see the server's README).
    pub fn device_fault(&self, mode: &str, count: u32) {
        self.post_json(
            "/test/device-fault",
            serde_json::json!({"mode": mode, "count": count}),
        );
    }

    pub fn fault(&self, mode: &str, count: u32) {
        self.post_json(
            "/test/fault",
            serde_json::json!({"mode": mode, "count": count}),
        );
    }

    /// Call the protected resource; true if the server accepted the token.
    pub fn resource(&self, access_token: &str) -> bool {
        let r = Self::agent()
            .get(format!("{}/resource", self.base))
            .header("Authorization", format!("Bearer {access_token}"))
            .call()
            .unwrap();
        r.status().as_u16() == 200
    }
}

/// Milliseconds since the epoch on this machine's clock, which the server shares.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        // The clock is after 1970 on any machine these tests run on.
        .unwrap()
        .as_millis() as u64
}

/// How the protected resource took an access token credlock handed out.
#[derive(Debug, PartialEq)]
pub enum Use {
    Accepted,
    /// Refused because it expired, and its expiry shows credlock kept its promise: the use
    /// came late (a loaded machine), not the token.
    Late,
    /// Refused, and nothing excuses it: what the server said, for the failure message.
    Refused(String),
}

/// Use `access_token` at the server's protected resource. credlock promised it valid for
/// `promised_ms` after it decided, and it decided after `started_ms` (from [`wall_ms`]):
/// so the token's expiry as the server issued it must fall at or after
/// `started_ms + promised_ms`. A refusal counts as late only when the server says the token
/// expired and its expiry keeps that bound; a revoked or unknown token, or one that expired
/// before the bound, is a broken promise however long the round trip took.
pub fn use_token(
    agent: &ureq::Agent,
    base: &str,
    access_token: &str,
    started_ms: u64,
    promised_ms: u64,
) -> Use {
    let mut r = agent
        .get(format!("{base}/resource"))
        .header("Authorization", format!("Bearer {access_token}"))
        .call()
        .expect("the protected resource answers");
    if r.status().as_u16() == 200 {
        return Use::Accepted;
    }
    let body = r.body_mut().read_to_string().unwrap_or_default();
    let said: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let expired = said["reason"] == "expired";
    match said["expires_at_ms"].as_u64() {
        Some(expires_at_ms) if expired && expires_at_ms >= started_ms + promised_ms => Use::Late,
        _ => Use::Refused(format!(
            "{} {body}: asked at {started_ms} ms, promised valid for {promised_ms} ms after that",
            r.status()
        )),
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        // Only the process this test started, by its id.
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

/// Play the browser: follow `url`'s redirects through the test server's login and consent
/// (carrying its cookies) until one points at the client's callback; return that URL, not
/// visited (tests/oauth-server/README.md, browser flow). `base` resolves relative redirects.
pub fn follow_to_callback(url: &str, base: &str) -> String {
    let browser: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .build()
        .into();
    let mut cookies: Vec<String> = Vec::new();
    let mut url = url.to_owned();
    for _ in 0..10 {
        if url.contains("/callback?") {
            return url;
        }
        let mut req = browser.get(&url);
        if !cookies.is_empty() {
            req = req.header("Cookie", cookies.join("; "));
        }
        let r = req.call().unwrap();
        for c in r.headers().get_all("set-cookie") {
            let pair = c.to_str().unwrap().split(';').next().unwrap().to_owned();
            let name = pair.split('=').next().unwrap().to_owned();
            cookies.retain(|k| !k.starts_with(&format!("{name}=")));
            cookies.push(pair);
        }
        let location = r
            .headers()
            .get("location")
            .unwrap_or_else(|| panic!("{url}: {} without a redirect", r.status()))
            .to_str()
            .unwrap()
            .to_owned();
        url = if location.starts_with('/') {
            format!("{base}{location}")
        } else {
            location
        };
    }
    panic!("too many redirects");
}
