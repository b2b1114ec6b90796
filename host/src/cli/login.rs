//! `credlock login`: the request from the command line (a client secret only from a file
//! descriptor, never argv), the outcome on stdout as JSON and in words on stderr.

use crate::{read_fd, Failure, LoginArgs};
use credlock::Credlock;
use std::io::Write;

pub fn run(store: &mut Credlock, a: &LoginArgs, out: &mut impl Write) -> Result<(), Failure> {
    let client_secret = match a.client_secret_fd {
        Some(fd) => {
            let s = read_fd(fd, "--client-secret-fd")?;
            Some(s.trim_end_matches(['\n', '\r']).to_owned())
        }
        None => None,
    };
    let request = credlock::LoginRequest {
        issuer: a.issuer.clone(),
        client_id: a.client_id.clone(),
        client_secret,
        scope: a.scope.clone(),
        flow: if a.browser {
            credlock::LoginFlow::Browser { open: !a.no_open }
        } else {
            credlock::LoginFlow::Device
        },
        audience: a.audience.clone(),
        resource: a.resource.clone(),
        authorization_endpoint: a.authorization_endpoint.clone(),
        token_endpoint: a.token_endpoint.clone(),
        device_authorization_endpoint: a.device_authorization_endpoint.clone(),
        revocation_endpoint: a.revocation_endpoint.clone(),
    };
    let outcome = store.login(&a.tenant, &request, None)?;
    eprintln!("{}", credlock::login::outcome_text(&a.tenant, &outcome));
    if let Some(warning) = credlock::login::no_refresh_token_text(&a.tenant, &request, &outcome) {
        eprintln!("{warning}");
    }
    let _ = writeln!(
        out,
        "{}",
        credlock::login::outcome_json(&a.tenant, &outcome)
    );
    Ok(())
}
