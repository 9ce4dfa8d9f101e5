//! Where a station's messages are stored and how long they are kept: plain data that the registry
//! reads from `stations.toml` and the backends act on.

use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

/// The backend a station's messages go to, and the log's name there.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendRef {
    /// The embedded store; the log is named after the station.
    #[default]
    Embedded,
    /// A Kafka topic.
    Kafka(String),
    /// A NATS subject that a JetStream stream holds.
    Nats(String),
}

impl BackendRef {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Kafka(_) => "kafka",
            Self::Nats(_) => "nats",
        }
    }
}

/// How long a station's messages are kept (embedded store); unset means forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    #[serde(default, with = "humantime_serde")]
    pub max_age: Option<Duration>,
    #[serde(default)]
    pub max_bytes: Option<ByteSize>,
}

impl Retention {
    /// Whether anything is ever dropped.
    pub fn is_forever(&self) -> bool {
        self.max_age.is_none() && self.max_bytes.is_none()
    }
}
