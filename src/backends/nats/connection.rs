//! How the gateway connects to the NATS servers: TLS (a CA, a client certificate for mutual TLS),
//! credentials (user and password, token, NKey seed, `.creds` file) read again at every
//! (re)connection so rotated ones are picked up, and the last reason a connection failed, kept
//! for `/readyz` and the 503s, with the key to fix. No secret is logged or kept in an error.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_nats::{Auth, AuthError, ConnectOptions, Event};

use super::config::{NatsAuth, NatsConfig};
use crate::model::TlsFiles;

/// Why the last connection attempt failed, in words an operator can act on; none once connected.
#[derive(Clone, Default)]
pub(super) struct LastProblem(Arc<Mutex<Option<String>>>);

impl LastProblem {
    pub(super) fn get(&self) -> Option<String> {
        self.0.lock().expect("problem lock").clone()
    }

    /// Records `problem`, logging it when it differs from the one before (a retry loop logs
    /// once per new reason, not once per attempt).
    fn set(&self, problem: Option<String>) {
        let mut last = self.0.lock().expect("problem lock");
        if *last != problem {
            match &problem {
                Some(problem) => tracing::warn!("NATS connection: {problem}"),
                None if last.is_some() => tracing::info!("NATS connection established"),
                None => {}
            }
            *last = problem;
        }
    }

    /// Keeps what `event` says about the connection.
    async fn note(&self, event: &Event, hint: &Hint) {
        match event {
            Event::Connected => self.set(None),
            Event::ServerError(async_nats::ServerError::AuthorizationViolation) => {
                self.set(Some(hint.credentials()))
            }
            Event::ClientError(async_nats::ClientError::Other(kind)) => {
                // Our own credential callback records its precise reason first; keep it.
                let ours = self
                    .get()
                    .filter(|p| p.starts_with("cannot read credentials"));
                if ours.is_some() && kind == "failed signing nonce" {
                    return;
                }
                let problem = match (&hint.tls_probe, kind.as_str()) {
                    (Some((host, port, tls)), "IO error" | "timed out") => {
                        super::probe::tls_failure(host, *port, tls).await
                    }
                    _ => None,
                };
                self.set(Some(problem.unwrap_or_else(|| hint.explain(kind))));
            }
            _ => {}
        }
    }
}

/// The client options for `config`, reporting connection problems to `problems`.
pub(super) fn options(config: &NatsConfig, problems: &LastProblem) -> ConnectOptions {
    // The client takes the process's rustls provider for its TLS.
    crate::crypto::install_provider();
    // `NatsBackend::open` has checked the configuration: `auth` cannot fail here.
    let auth = config.auth().ok().flatten();
    let hint = Hint::of(config, auth.as_ref());
    let mut options = match auth {
        Some(auth) => with_credentials(auth, problems.clone()),
        None => ConnectOptions::new(),
    };
    if let Some(tls) = &config.tls {
        if let Some(ca) = &tls.ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
    }
    let events = problems.clone();
    options
        .require_tls(config.requires_tls())
        .event_callback(move |event| {
            let events = events.clone();
            let hint = hint.clone();
            async move { events.note(&event, &hint).await }
        })
}

/// What to tell the operator for each kind of connection failure.
#[derive(Clone)]
struct Hint {
    credentials_keys: &'static str,
    /// The first server and the TLS settings, to find out why a TLS connection failed.
    tls_probe: Option<(String, u16, TlsFiles)>,
}

impl Hint {
    fn of(config: &NatsConfig, auth: Option<&NatsAuth>) -> Self {
        let credentials_keys = match auth {
            Some(NatsAuth::UserPassword { .. }) => "nats.user and nats.password",
            Some(NatsAuth::Token(_)) => "nats.token",
            Some(NatsAuth::NKeySeed(_)) => "nats.nkey_seed_file",
            Some(NatsAuth::Creds(_)) => "nats.creds_file",
            None => "the credentials keys of [nats] (none are set)",
        };
        let first = config.servers().ok().and_then(|s| s.into_iter().next());
        let tls_probe = match (first, &config.tls) {
            (Some(server), Some(tls)) => {
                Some((server.host().to_owned(), server.port(), tls.clone()))
            }
            _ => None,
        };
        Self {
            credentials_keys,
            tls_probe,
        }
    }

    fn credentials(&self) -> String {
        format!(
            "the server refused the gateway's credentials (authorization violation): check {}",
            self.credentials_keys
        )
    }

    fn explain(&self, kind: &str) -> String {
        match kind {
            "authorization violation" => self.credentials(),
            "TLS error" => "the TLS handshake failed: the server's certificate must be signed by \
                            a CA in nats.tls.ca_file (or the system's roots) and name the host of \
                            nats.url; a server that asks for a client certificate needs \
                            nats.tls.cert_file and nats.tls.key_file"
                .to_owned(),
            "failed signing nonce" => format!(
                "the gateway could not sign the server's challenge: check {}",
                self.credentials_keys
            ),
            "IO error" | "timed out" => {
                "cannot reach a server of nats.url (refused, reset or timed out); a server \
                 that requires TLS needs a tls:// URL or nats.tls"
                    .to_owned()
            }
            other => format!("cannot connect: {other}"),
        }
    }
}

/// Options whose credentials are read when each connection is made.
fn with_credentials(auth: NatsAuth, problems: LastProblem) -> ConnectOptions {
    let auth = Arc::new(auth);
    ConnectOptions::with_auth_callback(move |nonce| {
        let auth = auth.clone();
        let problems = problems.clone();
        async move {
            answer(&auth, &nonce).map_err(|reason| {
                problems.set(Some(format!("cannot read credentials: {reason}")));
                AuthError::new(reason)
            })
        }
    })
}

/// The credentials for one connection, signing the server's `nonce` where the kind asks.
fn answer(auth: &NatsAuth, nonce: &[u8]) -> Result<Auth, String> {
    let mut answer = Auth::new();
    match auth {
        NatsAuth::UserPassword { user, password } => {
            answer.username = Some(user.clone());
            answer.password = Some(password.read("nats.password")?.expose().to_owned());
        }
        NatsAuth::Token(token) => {
            answer.token = Some(token.read("nats.token")?.expose().to_owned());
        }
        NatsAuth::NKeySeed(path) => {
            let seed = read("nats.nkey_seed_file", path)?;
            let key = key_pair("nats.nkey_seed_file", seed.trim())?;
            answer.nkey = Some(key.public_key());
            answer.signature = Some(sign("nats.nkey_seed_file", &key, nonce)?);
        }
        NatsAuth::Creds(path) => {
            let creds = read("nats.creds_file", path)?;
            let (jwt, seed) = parse_creds(&creds)
                .ok_or_else(|| format!("nats.creds_file: {} holds no user JWT and NKey seed between the BEGIN/END lines of a .creds file", path.display()))?;
            let key = key_pair("nats.creds_file", seed)?;
            answer.jwt = Some(jwt.to_owned());
            answer.signature = Some(sign("nats.creds_file", &key, nonce)?);
        }
    }
    Ok(answer)
}

fn read(key: &str, path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))
}

fn key_pair(key: &str, seed: &str) -> Result<nkeys::KeyPair, String> {
    nkeys::KeyPair::from_seed(seed).map_err(|e| format!("{key}: not an NKey seed: {e}"))
}

fn sign(key: &str, pair: &nkeys::KeyPair, nonce: &[u8]) -> Result<Vec<u8>, String> {
    pair.sign(nonce)
        .map_err(|e| format!("{key}: cannot sign the server's challenge: {e}"))
}

/// The user JWT and the NKey seed of a `.creds` file: the first line of the block after
/// `-----BEGIN NATS USER JWT-----` and of the one after `-----BEGIN USER NKEY SEED-----`.
fn parse_creds(creds: &str) -> Option<(&str, &str)> {
    let block = |begin: &str| {
        let mut lines = creds.lines().map(str::trim);
        lines.find(|line| line.starts_with("-----BEGIN") && line.contains(begin))?;
        lines.find(|line| !line.is_empty())
    };
    Some((block("NATS USER JWT")?, block("USER NKEY SEED")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_creds_file_gives_its_jwt_and_seed() {
        let creds =
            "-----BEGIN NATS USER JWT-----\neyJhbGciOi.jwt.sig\n------END NATS USER JWT------\n\n\
                     ************************* IMPORTANT *************************\n\
                     NKEY Seed printed below can be used to sign and prove identity.\n\n\
                     -----BEGIN USER NKEY SEED-----\nSUAEXAMPLE\n------END USER NKEY SEED------\n";
        assert_eq!(
            parse_creds(creds),
            Some(("eyJhbGciOi.jwt.sig", "SUAEXAMPLE"))
        );
        assert_eq!(parse_creds("just a token"), None);
    }

    #[test]
    fn an_nkey_answer_signs_the_nonce_with_the_seed_file() {
        let dir = tempfile::tempdir().unwrap();
        let user = nkeys::KeyPair::new_user();
        let path = dir.path().join("user.nk");
        std::fs::write(&path, format!("{}\n", user.seed().unwrap())).unwrap();
        let answer = answer(&NatsAuth::NKeySeed(path), b"nonce").unwrap();
        assert_eq!(answer.nkey.as_deref(), Some(user.public_key().as_str()));
        user.verify(b"nonce", &answer.signature.unwrap()).unwrap();
    }

    #[test]
    fn a_missing_credentials_file_is_named_and_nothing_secret_is_said() {
        let source = crate::model::SecretSource::Inline("hunter2-secret".into());
        let auth = NatsAuth::UserPassword {
            user: "sluice".into(),
            password: source,
        };
        let answer = answer(&auth, b"").unwrap();
        assert_eq!(answer.password.as_deref(), Some("hunter2-secret"));
        let missing = NatsAuth::Creds("/nonexistent/sluice.creds".into());
        let Err(error) = super::answer(&missing, b"") else {
            panic!("a missing creds file answered");
        };
        assert!(
            error.starts_with("nats.creds_file: cannot read /nonexistent/sluice.creds"),
            "{error}"
        );
    }
}
