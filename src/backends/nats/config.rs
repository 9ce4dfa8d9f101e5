//! `[nats]`: the NATS servers JetStream stations are stored on, and what Sluice may create there.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::ServerAddr;
use serde::{Deserialize, Serialize};

use crate::model::{InlineSecret, SecretSource, TlsFiles};

/// The NATS JetStream backend, used by stations with `backend = { nats = "subject" }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated: the client connects to one and fails over to the others.
    pub url: String,
    /// What to do when no JetStream stream holds a station's subject.
    pub streams: StreamPolicy,
    /// Replicas of the streams (and of the replay-mark bucket) Sluice creates: 1, or 3 or 5 on a
    /// cluster.
    pub replicas: usize,
    /// How long JetStream remembers a `Nats-Msg-Id` (from `Idempotency-Key`) to drop a retry, on
    /// streams Sluice creates.
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// Dead letters of subject `s` go to subject `s` + this suffix.
    pub dlq_suffix: String,
    /// How long a publish waits for JetStream's acknowledgement before answering 503.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// TLS towards the servers: the CA that signed their certificates, and a client certificate
    /// and key for mutual TLS. Setting it, `tls_required` or a `tls://` URL makes TLS required.
    pub tls: Option<TlsFiles>,
    /// Refuse a server that does not speak TLS.
    pub tls_required: bool,
    /// User name, with `password` (or `password_env`, `password_file`).
    pub user: Option<String>,
    pub password: Option<InlineSecret>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    /// A token (or `token_env`, `token_file`).
    pub token: Option<InlineSecret>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    /// A file holding an NKey seed (`SU…`).
    pub nkey_seed_file: Option<PathBuf>,
    /// A `.creds` file: a user JWT and its NKey seed.
    pub creds_file: Option<PathBuf>,
}

/// How the gateway proves who it is to the NATS servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsAuth {
    UserPassword {
        user: String,
        password: SecretSource,
    },
    Token(SecretSource),
    NKeySeed(PathBuf),
    Creds(PathBuf),
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            streams: StreamPolicy::Create,
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            dlq_suffix: ".dlq".to_owned(),
            request_timeout: Duration::from_secs(10),
            tls: None,
            tls_required: false,
            user: None,
            password: None,
            password_env: None,
            password_file: None,
            token: None,
            token_env: None,
            token_file: None,
            nkey_seed_file: None,
            creds_file: None,
        }
    }
}

impl NatsConfig {
    /// The servers `url` lists.
    pub fn servers(&self) -> Result<Vec<ServerAddr>, String> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| {
                url.parse::<ServerAddr>().map_err(|e| {
                    let url = crate::model::shown_url(url);
                    format!("nats.url: `{url}` is not a NATS server URL: {e}")
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|servers| {
                if servers.is_empty() {
                    Err("nats.url names no server".to_owned())
                } else {
                    Ok(servers)
                }
            })
    }

    /// The credentials configured, if any; refuses two kinds at once, a password without a
    /// user and a user without a password.
    pub fn auth(&self) -> Result<Option<NatsAuth>, String> {
        let password = SecretSource::from_keys(
            "nats.password",
            self.password.as_ref(),
            self.password_env.as_deref(),
            self.password_file.as_deref(),
        )?;
        let token = SecretSource::from_keys(
            "nats.token",
            self.token.as_ref(),
            self.token_env.as_deref(),
            self.token_file.as_deref(),
        )?;
        let user_password = match (&self.user, password) {
            (Some(user), Some(password)) => Some(NatsAuth::UserPassword {
                user: user.clone(),
                password,
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err("nats.user needs nats.password (or password_env, password_file)".into())
            }
            (None, Some(_)) => return Err("nats.password needs nats.user".into()),
        };
        let kinds: Vec<NatsAuth> = [
            user_password,
            token.map(NatsAuth::Token),
            self.nkey_seed_file.clone().map(NatsAuth::NKeySeed),
            self.creds_file.clone().map(NatsAuth::Creds),
        ]
        .into_iter()
        .flatten()
        .collect();
        if kinds.len() > 1 {
            return Err(
                "[nats]: give one of user and password, token, nkey_seed_file and creds_file"
                    .into(),
            );
        }
        Ok(kinds.into_iter().next())
    }

    /// Whether the connection must be TLS: `tls_required`, a `[nats.tls]` table, or a `tls://`
    /// server.
    pub fn requires_tls(&self) -> bool {
        self.tls_required
            || self.tls.is_some()
            || self
                .url
                .split(',')
                .any(|url| url.trim().starts_with("tls://"))
    }

    /// Refuses a server list that does not parse, a replica count JetStream refuses, credentials
    /// that contradict each other and half a client certificate.
    pub fn check(&self) -> Result<(), String> {
        self.servers()?;
        self.auth()?;
        if let Some(tls) = &self.tls {
            tls.check("nats.tls")?;
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(format!(
                "nats.replicas must be 1 to 5 (JetStream's limit), not {}",
                self.replicas
            ));
        }
        Ok(())
    }
}

/// Whether Sluice creates the JetStream streams its subjects need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamPolicy {
    /// Create a file-backed stream `SLUICE_<SUBJECT>` for a subject no stream holds.
    Create,
    /// Only publish to subjects an existing stream holds; otherwise answer 503 saying so.
    Require,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_separated_list_names_every_server() {
        let config = NatsConfig {
            url: "nats://127.0.0.1:4222, nats://127.0.0.1:4223,nats://10.0.0.3:4222".into(),
            ..NatsConfig::default()
        };
        assert_eq!(config.servers().unwrap().len(), 3);
        let broken = NatsConfig {
            url: "nats://127.0.0.1:4222,nats://127.0.0.1:notaport".into(),
            ..NatsConfig::default()
        };
        let error = broken.check().unwrap_err();
        assert!(error.contains("nats://127.0.0.1:notaport"), "{error}");
        let none = NatsConfig {
            url: " , ".into(),
            ..NatsConfig::default()
        };
        assert!(none.check().is_err());
    }
}
