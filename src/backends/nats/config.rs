//! `[nats]`: the NATS servers JetStream stations are stored on, and what Sluice may create there.

use std::time::Duration;

use async_nats::ServerAddr;
use serde::{Deserialize, Serialize};

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
                url.parse::<ServerAddr>()
                    .map_err(|e| format!("nats.url: `{url}` is not a NATS server URL: {e}"))
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

    /// Refuses a server list that does not parse and a replica count JetStream refuses.
    pub fn check(&self) -> Result<(), String> {
        self.servers()?;
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
