//! The NATS JetStream backend (async-nats): every record is published with JetStream's
//! acknowledgement awaited, so its position (the stream sequence) is returned only once the stream
//! has stored it. Owns the connection, stream creation or lookup per subject, and the mapping of a
//! [`Record`] to a NATS message: headers as on Kafka (`sluice-schema`, `sluice-schema-version`,
//! `sluice-schema-id`, `content-type`, the producer's), `Nats-Msg-Id` from `Idempotency-Key` so
//! JetStream drops retries within its duplicate window.
//!
//! The client reconnects on its own; while it is disconnected, appends fail after
//! `request_timeout` with [`BackendError::Unavailable`] (HTTP 503) instead of hanging.

mod config;

pub use config::{NatsConfig, StreamPolicy};

use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use async_trait::async_trait;

use super::{
    for_each_remote_header, unavailable, Acknowledgement, Backend, BackendError, PreparedLogs,
};
use crate::model::{Position, Record};

const KIND: &str = "nats";

/// Records per [`Backend::send`]: the stream stores the first while the rest of the batch is
/// judged.
const SEND_CHUNK: usize = 128;

pub struct NatsBackend {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    streams: StreamPolicy,
    request_timeout: Duration,
    /// Subjects known to be held by a stream.
    known_subjects: PreparedLogs,
}

/// The name of the stream Sluice creates for `subject`: `SLUICE_` and the subject in capitals,
/// with every character a stream name may not hold replaced by `_`.
pub fn stream_name(subject: &str) -> String {
    let cleaned: String = subject
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("SLUICE_{cleaned}")
}

impl NatsBackend {
    /// Connects (or keeps trying in the background, if the server is not up yet).
    pub async fn connect(config: &NatsConfig) -> Result<Self, BackendError> {
        let client = async_nats::ConnectOptions::new()
            .name("sluice")
            .retry_on_initial_connect()
            .connection_timeout(config.request_timeout)
            .request_timeout(Some(config.request_timeout))
            .connect(config.url.as_str())
            .await
            .map_err(|e| unavailable(KIND, format!("cannot connect to {}: {e}", config.url)))?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(config.request_timeout);
        Ok(Self {
            client,
            jetstream,
            streams: config.streams,
            request_timeout: config.request_timeout,
            known_subjects: PreparedLogs::default(),
        })
    }

    /// Makes sure a stream holds `subject`: an existing one, or (policy `create`) a new
    /// file-backed `SLUICE_<SUBJECT>` stream.
    async fn ensure_stream(&self, subject: &str) -> Result<(), BackendError> {
        if self.known_subjects.contains(subject) {
            return Ok(());
        }
        let found = tokio::time::timeout(
            self.request_timeout,
            self.jetstream.stream_by_subject(subject),
        )
        .await
        .map_err(|_| {
            unavailable(
                KIND,
                format!("JetStream did not answer within {:?}", self.request_timeout),
            )
        })?;
        match found {
            Ok(_) => {}
            Err(e) if e.kind() == jetstream::context::GetStreamByNameErrorKind::NotFound => {
                if self.streams == StreamPolicy::Require {
                    return Err(unavailable(KIND, format!(
                        "no JetStream stream holds subject `{subject}` (nats.streams = \"require\"): create one, or set nats.streams = \"create\""
                    )));
                }
                let config = stream::Config {
                    name: stream_name(subject),
                    subjects: vec![subject.to_owned()],
                    storage: stream::StorageType::File,
                    ..Default::default()
                };
                tokio::time::timeout(
                    self.request_timeout,
                    self.jetstream.get_or_create_stream(config),
                )
                .await
                .map_err(|_| unavailable(KIND, "creating a JetStream stream timed out"))?
                .map_err(|e| {
                    unavailable(
                        KIND,
                        format!("cannot create a stream for subject `{subject}`: {e}"),
                    )
                })?;
            }
            Err(e) => {
                return Err(unavailable(
                    KIND,
                    format!("cannot find the stream of subject `{subject}`: {e}"),
                ))
            }
        }
        self.known_subjects.insert(subject);
        Ok(())
    }

    /// Publishes `records` to `subject` in order, returning what waits for their acknowledgements.
    async fn publish_all(
        &self,
        subject: &str,
        records: Vec<Record>,
    ) -> Result<Vec<PublishAckFuture>, BackendError> {
        let mut acks = Vec::with_capacity(records.len());
        // Built once: each publish clones a reference-counted handle.
        let target = async_nats::Subject::from(subject);
        for record in records {
            let mut headers = HeaderMap::new();
            for_each_remote_header(&record, |name, value| headers.insert(name, value));
            if let Some(key) = &record.key {
                headers.insert("sluice-key", String::from_utf8_lossy(key).as_ref());
            }
            if let Some(id) = &record.provenance.idempotency_key {
                headers.insert("Nats-Msg-Id", id.as_str());
            }
            let ack = self
                .jetstream
                .publish_with_headers(target.clone(), headers, record.value)
                .await
                .map_err(|e| unavailable(KIND, format!("cannot publish to `{subject}`: {e}")))?;
            acks.push(ack);
        }
        Ok(acks)
    }

    /// The stored positions once every publish is acknowledged, at most `request_timeout`.
    async fn acknowledged(
        &self,
        acks: Vec<PublishAckFuture>,
    ) -> Result<Vec<Position>, BackendError> {
        // In turn: acks arrive in the order published, so this wakes about once per ack read
        // off the connection, with no per-ack task to allocate (as `join_all` of this many does).
        let in_turn = async {
            let mut acknowledged = Vec::with_capacity(acks.len());
            for ack in acks {
                acknowledged.push(ack.await);
            }
            acknowledged
        };
        let acknowledged =
            tokio::time::timeout(self.request_timeout + Duration::from_secs(1), in_turn)
                .await
                .map_err(|_| self.timed_out())?;
        acknowledged
            .into_iter()
            .map(|ack| {
                ack.map(|ack| Position::offset(ack.sequence))
                    .map_err(|e| unavailable(KIND, format!("not acknowledged by JetStream: {e}")))
            })
            .collect()
    }

    fn timed_out(&self) -> BackendError {
        unavailable(
            KIND,
            format!(
                "no acknowledgement from JetStream within {:?}",
                self.request_timeout
            ),
        )
    }
}

#[async_trait]
impl Backend for NatsBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn send_chunk(&self) -> usize {
        SEND_CHUNK
    }

    async fn send<'a>(
        &'a self,
        log: &'a str,
        records: Vec<Record>,
    ) -> Result<Acknowledgement<'a>, BackendError> {
        self.ensure_stream(log).await?;
        // Each ack is bounded by the JetStream timeout; this bounds a publish stuck behind a
        // disconnected client's full buffer too.
        let acks = tokio::time::timeout(
            self.request_timeout + Duration::from_secs(1),
            self.publish_all(log, records),
        )
        .await
        .map_err(|_| self.timed_out())??;
        Ok(Box::pin(self.acknowledged(acks)))
    }

    async fn check_ready(&self) -> Result<(), BackendError> {
        match self.client.connection_state() {
            State::Connected => Ok(()),
            state => Err(unavailable(
                KIND,
                format!("not connected to the NATS server ({state:?})"),
            )),
        }
    }

    async fn prepare(&self, log: &str) -> Result<(), BackendError> {
        self.ensure_stream(log).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_streams_are_named_after_their_subject() {
        assert_eq!(stream_name("orders.new"), "SLUICE_ORDERS_NEW");
        assert_eq!(stream_name("orders.new.dlq"), "SLUICE_ORDERS_NEW_DLQ");
        assert_eq!(stream_name("a-b_c>*"), "SLUICE_A-B_C__");
    }
}
