//! The NATS JetStream backend (async-nats): every record is published with JetStream's
//! acknowledgement awaited, so its position (the stream sequence) is returned only once the stream
//! (on a cluster: a quorum of its replicas) has stored it. Owns the connection to one of the
//! configured servers, stream creation or lookup per subject, and the mapping of a [`Record`] to a
//! NATS message: headers as on Kafka (`sluice-schema`, `sluice-schema-version`, `sluice-schema-id`,
//! `content-type`, the producer's), `Nats-Msg-Id` from `Idempotency-Key` so JetStream drops retries
//! within its duplicate window. Consumer groups are in `groups`, dead letters and counts in
//! `dead_letters`.
//!
//! The client fails over to another server of the list and reconnects on its own; while it is
//! disconnected, requests fail after `request_timeout` with [`BackendError::Unavailable`] (HTTP 503)
//! instead of hanging.

mod config;
mod connection;
mod dead_letters;
mod groups;
mod probe;

pub use config::{NatsConfig, StreamPolicy};

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::{self, kv, stream, AckKind};
use async_nats::{HeaderMap, HeaderName, HeaderValue};
use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::queues::{
    AckOutcome, ConsumeOptions, DeadLetterPage, Delivery, LogStats, RecentStats, ReplayClaim,
    StationQueue,
};
use super::remote::{key_header, NATS_MSG_ID};
use super::{
    for_each_remote_header, unavailable, Acknowledgement, Backend, BackendError, RemoteBackend,
};
use crate::model::{BackendKind, Position, Record};

const KIND: &str = BackendKind::Nats.name();

/// Records per [`Backend::send`]: the stream stores the first while the rest of the batch is
/// judged.
const SEND_CHUNK: usize = 128;

pub struct NatsBackend {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    streams: StreamPolicy,
    replicas: usize,
    duplicate_window: Duration,
    request_timeout: Duration,
    /// The stream known to hold each subject.
    stream_names: Mutex<HashMap<String, String>>,
    /// Consumer groups this gateway has served.
    groups: groups::Groups,
    /// The bucket of dead-letter replay marks, once used.
    replays: OnceCell<kv::Store>,
    recent_stats: RecentStats,
    /// Why the connection last failed, until it succeeds.
    problem: connection::LastProblem,
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
    async fn open(config: &NatsConfig) -> Result<Self, BackendError> {
        config.check().map_err(|e| unavailable(KIND, e))?;
        let servers = config.servers().map_err(|e| unavailable(KIND, e))?;
        let problem = connection::LastProblem::default();
        let client = connection::options(config, &problem)
            .name("sluice")
            .retry_on_initial_connect()
            .connection_timeout(config.request_timeout)
            .request_timeout(Some(config.request_timeout))
            .connect(servers)
            .await
            .map_err(|e| unavailable(KIND, format!("cannot connect to {}: {e}", config.url)))?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(config.request_timeout);
        Ok(Self {
            client,
            jetstream,
            streams: config.streams,
            replicas: config.replicas,
            duplicate_window: config.duplicate_window,
            request_timeout: config.request_timeout,
            stream_names: Mutex::default(),
            groups: groups::Groups::default(),
            replays: OnceCell::new(),
            recent_stats: RecentStats::default(),
            problem,
        })
    }

    /// `request`'s answer within `request_timeout`, its error as [`BackendError::Unavailable`].
    async fn bounded<T, E: std::fmt::Display>(
        &self,
        request: impl Future<Output = Result<T, E>>,
    ) -> Result<T, BackendError> {
        tokio::time::timeout(self.request_timeout, request)
            .await
            .map_err(|_| self.timed_out())?
            .map_err(|e| self.unavailable(e.to_string()))
    }

    /// The name of the stream that holds `subject`, if one does.
    async fn existing_stream_of(&self, subject: &str) -> Result<Option<String>, BackendError> {
        if let Some(name) = self.stream_names.lock().expect("streams lock").get(subject) {
            return Ok(Some(name.clone()));
        }
        let found = tokio::time::timeout(
            self.request_timeout,
            self.jetstream.stream_by_subject(subject),
        )
        .await
        .map_err(|_| self.timed_out())?;
        match found {
            Ok(name) => {
                self.remember_stream(subject, &name);
                Ok(Some(name))
            }
            Err(e) if e.kind() == jetstream::context::GetStreamByNameErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(self.unavailable(format!(
                "cannot find the stream of subject `{subject}`: {e}"
            ))),
        }
    }

    fn remember_stream(&self, subject: &str, stream: &str) {
        self.stream_names
            .lock()
            .expect("streams lock")
            .insert(subject.to_owned(), stream.to_owned());
    }

    /// Forgets which stream holds `subject`, after a failure that may mean it is gone.
    fn forget_stream(&self, subject: &str) {
        self.stream_names
            .lock()
            .expect("streams lock")
            .remove(subject);
    }

    /// The name of the stream that holds `subject`, made first where the policy allows.
    async fn stream_of(&self, subject: &str) -> Result<String, BackendError> {
        self.ensure_stream(subject).await?;
        self.existing_stream_of(subject)
            .await?
            .ok_or_else(|| unavailable(KIND, format!("no JetStream stream holds `{subject}`")))
    }

    /// Makes sure a stream holds `subject`: an existing one, or (policy `create`) a new
    /// file-backed `SLUICE_<SUBJECT>` stream with `replicas` replicas.
    async fn ensure_stream(&self, subject: &str) -> Result<(), BackendError> {
        if self.existing_stream_of(subject).await?.is_some() {
            return Ok(());
        }
        if self.streams == StreamPolicy::Require {
            return Err(unavailable(KIND, format!(
                "no JetStream stream holds subject `{subject}` (nats.streams = \"require\"): create one, or set nats.streams = \"create\""
            )));
        }
        let config = stream::Config {
            name: stream_name(subject),
            subjects: vec![subject.to_owned()],
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            ..Default::default()
        };
        let created = tokio::time::timeout(
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
        self.remember_stream(subject, &created.cached_info().config.name);
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
            let headers = nats_headers(&record)?;
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

    /// Appends `records` to `subject` and waits until they are stored.
    async fn publish_and_wait(
        &self,
        subject: &str,
        records: Vec<Record>,
    ) -> Result<Vec<Position>, BackendError> {
        self.send(subject, records).await?.await
    }

    fn timed_out(&self) -> BackendError {
        self.unavailable(format!(
            "no acknowledgement from JetStream within {:?}",
            self.request_timeout
        ))
    }

    /// 503 for `message`, with why the connection failed while it is down.
    fn unavailable(&self, message: String) -> BackendError {
        match self.problem.get() {
            Some(problem) => unavailable(KIND, format!("{message}; not connected: {problem}")),
            None => unavailable(KIND, message),
        }
    }
}

#[async_trait]
impl Backend for NatsBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Nats
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
        .map_err(|_| self.timed_out())
        .and_then(|published| published)
        .inspect_err(|_| self.forget_stream(log))?;
        Ok(Box::pin(async move {
            self.acknowledged(acks)
                .await
                .inspect_err(|_| self.forget_stream(log))
        }))
    }

    /// JetStream drops a duplicate tick by its `Nats-Msg-Id`: every gateway may produce them.
    async fn runs_schedules(&self) -> Result<bool, BackendError> {
        Ok(true)
    }

    async fn check_ready(&self) -> Result<(), BackendError> {
        match self.client.connection_state() {
            State::Connected => Ok(()),
            state => Err(unavailable(
                KIND,
                match self.problem.get() {
                    Some(problem) => format!("not connected to the NATS servers: {problem}"),
                    None => format!("not connected to the NATS servers ({state:?})"),
                },
            )),
        }
    }

    async fn prepare(&self, log: &str) -> Result<(), BackendError> {
        self.ensure_stream(log).await
    }
}

#[async_trait]
impl RemoteBackend for NatsBackend {
    type Config = NatsConfig;

    async fn connect(config: &NatsConfig) -> Result<Self, BackendError> {
        Self::open(config).await
    }

    fn dead_letters_of(config: &NatsConfig, subject: &str) -> String {
        format!("{subject}{}", config.dlq_suffix)
    }
}

#[async_trait]
impl StationQueue for NatsBackend {
    async fn admits_group(&self, log: &str, group: &str, max: usize) -> Result<bool, BackendError> {
        NatsBackend::admits_group(self, log, group, max).await
    }

    async fn consume(
        &self,
        log: &str,
        group: &str,
        options: &ConsumeOptions,
    ) -> Result<Vec<Delivery>, BackendError> {
        self.consume_group(log, group, options).await
    }

    async fn ack(
        &self,
        log: &str,
        group: &str,
        messages: &[Position],
    ) -> Result<AckOutcome, BackendError> {
        self.settle_group(log, group, messages, AckKind::Ack).await
    }

    async fn nack(
        &self,
        log: &str,
        group: &str,
        messages: &[Position],
        delay: Duration,
    ) -> Result<AckOutcome, BackendError> {
        let delay = (!delay.is_zero()).then_some(delay);
        self.settle_group(log, group, messages, AckKind::Nak(delay))
            .await
    }

    async fn stats(&self, log: &str) -> Result<LogStats, BackendError> {
        self.recent_stats.get(log, self.subject_stats(log)).await
    }

    async fn dead_letters(
        &self,
        dead_letters: &str,
        from: Position,
        max: usize,
    ) -> Result<DeadLetterPage, BackendError> {
        self.dead_letter_page(dead_letters, from, max).await
    }

    async fn dead_letter(
        &self,
        dead_letters: &str,
        id: Position,
    ) -> Result<Option<Record>, BackendError> {
        self.one_dead_letter(dead_letters, id).await
    }

    async fn claim_replay(
        &self,
        dead_letters: &str,
        id: Position,
    ) -> Result<ReplayClaim, BackendError> {
        self.claim(dead_letters, id).await
    }

    async fn settle_replay(
        &self,
        dead_letters: &str,
        id: Position,
        forwarded_to: Option<Position>,
    ) -> Result<(), BackendError> {
        self.settle(dead_letters, id, forwarded_to).await
    }
}

/// The JetStream headers of `record`: Sluice's own and the producer's, the key (as text, or in
/// base64 when it is not text a header holds) and the de-duplication id. A name or value that
/// NATS cannot frame is refused here, not handed to the client (which would panic on it); the
/// gateway refuses such headers from producers before they get this far.
fn nats_headers(record: &Record) -> Result<HeaderMap, BackendError> {
    let mut headers = HeaderMap::new();
    let mut unframed = None;
    let mut add = |name: &str, value: &str| match (
        HeaderName::from_str(name),
        HeaderValue::from_str(value),
    ) {
        (Ok(name), Ok(value)) => headers.append(name, value),
        _ => unframed = unframed.take().or_else(|| Some(name.to_owned())),
    };
    for_each_remote_header(record, &mut add);
    if let Some(key) = &record.key {
        let (name, value) = key_header(key);
        add(name, &value);
    }
    if let Some(id) = &record.provenance.idempotency_key {
        add(NATS_MSG_ID, id);
    }
    match unframed {
        None => Ok(headers),
        Some(name) => Err(BackendError::Unrepresentable {
            backend: KIND,
            reason: format!("header `{name}` cannot be carried by NATS (a line break or a character NATS header names may not hold)"),
        }),
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
