//! Station backends: where accepted messages (and dead letters) are durably stored. Each backend is
//! one module behind [`Backend`]; the pipeline hands it records (`append`, or `send` a chunk at a
//! time) and waits for their durable acknowledgement. This module also owns the stored [`Record`], its encoding, and the headers a
//! remote backend sends with it.

pub mod embedded;
pub mod kafka;
pub mod nats;
pub mod routing;

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::formats::Violation;

/// A log a backend can append to: a station or a station's dead-letter queue.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Short name shown in listings and errors (`embedded`, `kafka`, `nats`).
    fn kind(&self) -> &'static str;

    /// Hands `records` over for appending to `log` and returns what resolves to their positions
    /// once they are durable under the backend's policy. When this returns, every record is in the
    /// backend's hands: records of a later call land after them.
    async fn send<'a>(
        &'a self,
        log: &'a str,
        records: Vec<Record>,
    ) -> Result<Acknowledgement<'a>, BackendError>;

    /// Appends `records` to `log` and returns their positions once they are durable.
    async fn append(&self, log: &str, records: Vec<Record>) -> Result<Vec<Position>, BackendError> {
        self.send(log, records).await?.await
    }

    /// How many valid records of a batch the pipeline hands over per [`Backend::send`] while it
    /// is still judging the rest. A remote backend takes a batch in chunks, so its brokers store
    /// the first records while later ones are validated; the embedded store takes it whole, as
    /// one write.
    fn send_chunk(&self) -> usize {
        usize::MAX
    }

    /// Whether the backend can take writes now (for `/readyz`).
    async fn check_ready(&self) -> Result<(), BackendError>;

    /// Makes sure `log` can be appended to (creates a missing topic or stream, where the backend
    /// does that).
    async fn prepare(&self, _log: &str) -> Result<(), BackendError> {
        Ok(())
    }

    /// A request that carries several records starts handing them over with [`Backend::send`].
    /// Each call is matched by one [`Backend::request_complete`], also when the request is given
    /// up half way.
    fn request_started(&self) {}

    /// A request that carried several records has handed over all it will: a backend that holds
    /// records back to fill larger requests to its brokers (Kafka's `linger`) can send them now
    /// rather than keep the producer waiting, unless other such requests are still handing theirs
    /// over and will ask again when they are done.
    fn request_complete(&self) {}
}

/// What [`Backend::send`] hands back: the positions of the records it sent, once they are durable.
pub type Acknowledgement<'a> = BoxFuture<'a, Result<Vec<Position>, BackendError>>;

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

/// Bytes a stored record takes beyond its value, key and headers when it is not a dead letter:
/// varint lengths and the fixed fields, at most.
const ENCODED_RECORD_OVERHEAD: usize = 48;

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
    /// The record in the store's encoding, written into one allocation sized up front (an
    /// accepted message's encoding is its value, key and headers plus a few varints).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_into(Vec::with_capacity(self.encoded_len_estimate()))
    }

    /// Appends the record in the store's encoding to `buffer`.
    pub fn encode_into(&self, buffer: Vec<u8>) -> Vec<u8> {
        postcard::to_extend(self, buffer).expect("records always serialize")
    }

    /// About how many bytes [`Record::encode`] takes: exact or a little more for an accepted
    /// message, less for a dead letter (whose reasons it does not count).
    pub fn encoded_len_estimate(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            // Each string is prefixed by its varint length: 1-2 bytes for a header's.
            .map(|(name, value)| name.len() + value.len() + 4)
            .sum();
        let key = self.key.as_ref().map_or(0, Bytes::len);
        self.value.len() + key + headers + ENCODED_RECORD_OVERHEAD
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

/// Calls `header(name, value)` for each header a remote backend sends with `record`: Sluice's
/// own (schema, version, id, content type; for dead letters the error, station and violations),
/// then the producer's. Nothing is allocated for an accepted message's headers.
pub fn for_each_remote_header(record: &Record, mut header: impl FnMut(&str, &str)) {
    let mut digits = NumberText::default();
    let provenance = &record.provenance;
    if let Some(schema) = &provenance.schema {
        header("sluice-schema", schema);
    }
    if let Some(version) = record.schema_version {
        header("sluice-schema-version", digits.of(version.into()));
    }
    if let Some(id) = provenance.schema_id {
        header("sluice-schema-id", digits.of(id.into()));
    }
    if let Some(content_type) = &provenance.content_type {
        header("content-type", content_type);
    }
    if let Some(dead) = &record.dead_letter {
        header("sluice-error", &dead.error);
        header("sluice-station", &dead.station);
        if let Some(schema) = &dead.schema {
            header("sluice-schema", schema);
        }
        if let Some(version) = dead.schema_version {
            header("sluice-schema-version", digits.of(version.into()));
        }
        if let Some(first) = dead.violations.first() {
            if first.path.is_empty() {
                header("sluice-reason", &first.reason);
            } else {
                header(
                    "sluice-reason",
                    &format!("{}: {}", first.path, first.reason),
                );
            }
        }
        let violations = serde_json::to_string(&dead.violations).expect("violations serialize");
        header("sluice-violations", &violations);
        if let Some(content_type) = &dead.content_type {
            header("content-type", content_type);
        }
    }
    for (name, value) in &record.headers {
        header(name, value);
    }
}

/// A number written as decimal text on the stack.
#[derive(Default)]
struct NumberText([u8; 20]);

impl NumberText {
    fn of(&mut self, mut n: u64) -> &str {
        let mut at = self.0.len();
        loop {
            at -= 1;
            self.0[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        std::str::from_utf8(&self.0[at..]).expect("digits are ASCII")
    }
}

/// A backend that cannot take a write now, and why.
pub(crate) fn unavailable(backend: &'static str, reason: impl std::fmt::Display) -> BackendError {
    BackendError::Unavailable {
        backend,
        reason: reason.to_string(),
    }
}

/// The logs (topics, subjects) a remote backend has made sure exist, so that is done once per log
/// and done again after a failure (a broker that lost it).
#[derive(Default)]
pub(crate) struct PreparedLogs(std::sync::Mutex<std::collections::HashSet<String>>);

impl PreparedLogs {
    pub(crate) fn contains(&self, log: &str) -> bool {
        self.0.lock().expect("prepared logs lock").contains(log)
    }

    pub(crate) fn insert(&self, log: &str) {
        self.0
            .lock()
            .expect("prepared logs lock")
            .insert(log.to_owned());
    }

    pub(crate) fn forget(&self, log: &str) {
        self.0.lock().expect("prepared logs lock").remove(log);
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
    fn remote_headers_name_the_schema_and_the_dead_letters_reason() {
        let mut record = Record {
            received_at_ms: 0,
            deliver_after_ms: None,
            key: None,
            headers: vec![("trace".into(), "t-1".into())],
            value: Bytes::from_static(b"{}"),
            content: ContentKind::Json,
            schema_version: Some(12),
            dead_letter: None,
            provenance: Provenance {
                schema: Some("orders".into()),
                schema_id: Some(4_000_000_007),
                content_type: Some("application/json".into()),
                idempotency_key: None,
            },
        };
        let collect = |record: &Record| {
            let mut headers = Vec::new();
            for_each_remote_header(record, |name, value| {
                headers.push(format!("{name}={value}"))
            });
            headers
        };
        assert_eq!(
            collect(&record),
            [
                "sluice-schema=orders",
                "sluice-schema-version=12",
                "sluice-schema-id=4000000007",
                "content-type=application/json",
                "trace=t-1"
            ]
        );
        record.provenance = Provenance::default();
        record.dead_letter = Some(DeadLetter {
            station: "orders".into(),
            error: "schema_violation".into(),
            schema: Some("orders".into()),
            schema_version: Some(0),
            violations: vec![Violation {
                path: "/qty".into(),
                schema_path: "/properties/qty".into(),
                reason: "0 is less than 1".into(),
            }],
            content_type: None,
        });
        let headers = collect(&record);
        assert!(headers.contains(&"sluice-reason=/qty: 0 is less than 1".to_owned()));
        assert!(headers.contains(&"sluice-schema-version=0".to_owned()));
        assert!(headers
            .iter()
            .any(|h| h.starts_with("sluice-violations=[{")));
    }

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
        assert_eq!(
            bytes,
            postcard::to_stdvec(&record).unwrap(),
            "the stored encoding is postcard's, byte for byte, so existing stores read back"
        );
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
