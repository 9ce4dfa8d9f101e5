//! Station backends: where accepted messages (and dead letters) are durably stored. Each backend is
//! one module behind [`Backend`]; the pipeline only ever calls `append` and waits for its durable
//! acknowledgement. This module also owns the stored [`Record`], its encoding, and the headers a
//! remote backend sends with it.

pub mod embedded;
pub mod kafka;
pub mod nats;
pub mod routing;

use std::borrow::Cow;
use std::sync::Arc;

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

    /// Makes sure `log` can be appended to (creates a missing topic or stream, where the backend
    /// does that).
    async fn prepare(&self, _log: &str) -> Result<(), BackendError> {
        Ok(())
    }
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
    /// What remote backends put in headers; not part of the embedded store's encoding.
    #[serde(skip)]
    pub provenance: Provenance,
}

/// Where a record came from and how it is encoded: sent by remote backends as message headers
/// (`sluice-schema`, `sluice-schema-id`, `content-type`, `Nats-Msg-Id`...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    pub schema: Option<Arc<str>>,
    pub schema_id: Option<u32>,
    /// The media type of the stored value.
    pub content_type: Option<Cow<'static, str>>,
    /// The producer's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
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

/// The headers a remote backend sends with `record`: Sluice's own (schema, version, id, content
/// type; for dead letters the error, station and violations), then the producer's.
pub fn remote_headers(record: &Record) -> Vec<(String, String)> {
    let mut headers = Vec::with_capacity(4 + record.headers.len());
    let provenance = &record.provenance;
    if let Some(schema) = &provenance.schema {
        headers.push(("sluice-schema".to_owned(), schema.to_string()));
    }
    if let Some(version) = record.schema_version {
        headers.push(("sluice-schema-version".to_owned(), version.to_string()));
    }
    if let Some(id) = provenance.schema_id {
        headers.push(("sluice-schema-id".to_owned(), id.to_string()));
    }
    if let Some(content_type) = &provenance.content_type {
        headers.push(("content-type".to_owned(), content_type.to_string()));
    }
    if let Some(dead) = &record.dead_letter {
        headers.push(("sluice-error".to_owned(), dead.error.clone()));
        headers.push(("sluice-station".to_owned(), dead.station.clone()));
        if let Some(schema) = &dead.schema {
            headers.push(("sluice-schema".to_owned(), schema.clone()));
        }
        if let Some(first) = dead.violations.first() {
            let reason = if first.path.is_empty() {
                first.reason.clone()
            } else {
                format!("{}: {}", first.path, first.reason)
            };
            headers.push(("sluice-reason".to_owned(), reason));
        }
        headers.push((
            "sluice-violations".to_owned(),
            serde_json::to_string(&dead.violations).expect("violations serialize"),
        ));
        if let Some(content_type) = &dead.content_type {
            headers.push(("content-type".to_owned(), content_type.clone()));
        }
    }
    headers.extend(record.headers.iter().cloned());
    headers
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
            provenance: Provenance::default(),
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
