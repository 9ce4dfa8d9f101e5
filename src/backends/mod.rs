//! Station backends: where accepted messages (and dead letters) are durably stored. Each backend is
//! one module behind [`Backend`]; the pipeline hands it records (`append`, or `send` a chunk at a
//! time) and waits for their durable acknowledgement. This module also owns the headers a remote
//! backend sends with a record ([`for_each_remote_header`]); the record itself is the model's.

pub mod embedded;
pub mod kafka;
pub mod nats;
pub mod routing;

use async_trait::async_trait;
use futures_util::future::BoxFuture;

use crate::model::{Position, Record};

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

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::model::{ContentKind, DeadLetter, Provenance, Violation};

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
}
