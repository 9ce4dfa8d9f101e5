//! `[nats]`: the NATS servers JetStream stations are stored on, and what Sluice may create there.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The NATS JetStream backend, used by stations with `backend = { nats = "subject" }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated.
    pub url: String,
    /// What to do when no JetStream stream holds a station's subject.
    pub streams: StreamPolicy,
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
            dlq_suffix: ".dlq".to_owned(),
            request_timeout: Duration::from_secs(10),
        }
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
