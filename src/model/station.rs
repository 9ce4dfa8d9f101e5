//! Where a station's messages are stored and how long they are kept: plain data that the registry
//! reads from `stations.toml` and the backends act on.

use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

/// The engines a station's messages can be stored on, one per backend. A list of backends (the
/// metrics' histograms) is [`BackendKind::VARIANTS`], so a new variant is never left out of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::VariantArray, strum::EnumCount)]
pub enum BackendKind {
    Embedded,
    Kafka,
    Nats,
}

impl BackendKind {
    /// The name in configuration, listings, metrics and errors.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Kafka => "kafka",
            Self::Nats => "nats",
        }
    }
}

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
    pub fn kind(&self) -> BackendKind {
        match self {
            Self::Embedded => BackendKind::Embedded,
            Self::Kafka(_) => BackendKind::Kafka,
            Self::Nats(_) => BackendKind::Nats,
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

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantArray as _;

    #[test]
    fn every_backend_kind_sits_at_its_index() {
        for (index, kind) in BackendKind::VARIANTS.iter().enumerate() {
            assert_eq!(*kind as usize, index, "{}", kind.name());
        }
    }
}
