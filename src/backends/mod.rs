//! Station backends: where accepted messages (and dead letters) are durably stored. Each backend is
//! one module behind [`Backend`]; the pipeline only ever calls `append` and waits for its durable
//! acknowledgement. This module also owns the stored [`Record`] and its encoding.

pub mod embedded;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::formats::Violation;

/// A log a backend can append to: a station or a station's dead-letter queue.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Short name shown in listings and errors (`embedded`, `kafka`, `nats`).
    fn kind(&self) -> &'static str;

    /// Appends `records` to `log` as one write and returns their positions once the write is
    /// durable under the backend's policy. All or nothing.
    async fn append(&self, log: &str, records: Vec<Record>) -> Result<Vec<Position>, BackendError>;

    /// Whether the backend can take writes now (for `/readyz`).
    async fn check_ready(&self) -> Result<(), BackendError>;
}

/// Where a message was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Position {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    pub offset: u64,
}

impl Position {
    pub fn offset(offset: u64) -> Self {
        Self {
            partition: None,
            offset,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The backend cannot take the write now; the producer should retry later.
    #[error("the {backend} backend is unavailable: {reason}")]
    Unavailable {
        backend: &'static str,
        reason: String,
    },
    /// A stored record could not be read back.
    #[error("stored record at {log}/{offset} is unreadable: {reason}")]
    Corrupt {
        log: String,
        offset: u64,
        reason: String,
    },
}

/// How a stored value is encoded, so consumers get JSON back as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContentKind {
    Json,
    Binary,
}

/// A stored message. `received_at_ms` stays the first field (retention reads only it) and
/// `deliver_after_ms` the second (consumers read only the two).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub received_at_ms: u64,
    /// Not delivered to consumers before this time (ms since the Unix epoch), if set.
    pub deliver_after_ms: Option<u64>,
    pub key: Option<Bytes>,
    pub headers: Vec<(String, String)>,
    pub value: Bytes,
    pub content: ContentKind,
    pub schema_version: Option<u32>,
    /// Present on records of a dead-letter queue.
    pub dead_letter: Option<DeadLetter>,
}

/// Why a message was dead-lettered, kept with the original bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub station: String,
    /// Error code, e.g. `schema_violation`.
    pub error: String,
    pub schema: Option<String>,
    pub schema_version: Option<u32>,
    pub violations: Vec<Violation>,
    pub content_type: Option<String>,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("records always serialize")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    /// Reads only `received_at_ms` from an encoded record.
    pub fn decode_received_at(bytes: &[u8]) -> Result<u64, postcard::Error> {
        postcard::take_from_bytes::<u64>(bytes).map(|(at, _)| at)
    }

    /// Reads only `deliver_after_ms` from an encoded record.
    pub fn decode_deliver_after(bytes: &[u8]) -> Result<Option<u64>, postcard::Error> {
        postcard::take_from_bytes::<(u64, Option<u64>)>(bytes).map(|((_, after), _)| after)
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_exposes_its_timestamp() {
        let record = Record {
            received_at_ms: 1_700_000_000_123,
            deliver_after_ms: Some(1_700_000_060_000),
            key: Some(Bytes::from_static(b"k")),
            headers: vec![("trace".into(), "1".into())],
            value: Bytes::from_static(b"{\"a\":1}"),
            content: ContentKind::Json,
            schema_version: Some(2),
            dead_letter: Some(DeadLetter {
                station: "orders".into(),
                error: "schema_violation".into(),
                schema: Some("orders".into()),
                schema_version: Some(2),
                violations: vec![Violation::whole_message("not valid JSON")],
                content_type: None,
            }),
        };
        let bytes = record.encode();
        assert_eq!(Record::decode(&bytes).unwrap(), record);
        assert_eq!(
            Record::decode_received_at(&bytes).unwrap(),
            1_700_000_000_123
        );
        assert_eq!(
            Record::decode_deliver_after(&bytes).unwrap(),
            Some(1_700_000_060_000)
        );
    }
}
