//! `[kafka]`: the brokers Kafka stations are stored on, and how the producer talks to them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The Kafka backend, used by stations with `backend = { kafka = "topic" }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma-separated `host:port`.
    pub brokers: String,
    /// Create a station's topic and its dead-letter topic when they are missing.
    pub create_topics: bool,
    /// Partitions of topics Sluice creates.
    pub partitions: i32,
    /// Replication factor of topics Sluice creates.
    pub replication_factor: i32,
    /// Dead letters of topic `t` go to topic `t` + this suffix.
    pub dlq_suffix: String,
    /// How long a produce waits for the brokers' acknowledgement before answering 503.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long the producer holds records to fill a request to the brokers (librdkafka
    /// `linger.ms`); a batch request's records are sent once its last one is handed over (with
    /// those of overlapping batch requests, once the last of them is).
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// How long a gateway serving a consumer group may go unheard before the group's coordinator
    /// gives its partitions to the other gateways (librdkafka `session.timeout.ms`).
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// Further librdkafka properties for every client Sluice makes (producer, group consumers,
    /// reader), e.g. `"compression.type" = "zstd"`.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".to_owned(),
            create_topics: true,
            partitions: 1,
            replication_factor: 1,
            dlq_suffix: ".dlq".to_owned(),
            request_timeout: Duration::from_secs(10),
            linger: Duration::from_millis(5),
            session_timeout: Duration::from_secs(10),
            properties: Default::default(),
        }
    }
}
