//! The pipeline: the one path every message takes, whichever front end it came in by. It looks up
//! the station in the serving registry snapshot, picks the schema version, validates, and routes
//! valid messages to the station's backend and invalid ones to its dead-letter queue — answering
//! only once the backend has durably accepted them. Consume, ack, dead-letter browse and replay,
//! dry-run validation and retention also live here, so front ends stay thin translators.

mod sending;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;

use crate::backends::embedded::{AckOutcome, ConsumeOptions, Delivery, EmbeddedStore};
use crate::backends::routing::Backends;
use crate::backends::{
    now_ms, Backend, BackendError, ContentKind, DeadLetter, Position, Provenance, Record,
};
use crate::config::Limits;
use crate::error::{ApiError, ViolationReport};
use crate::formats::confluent::split_frame;
use crate::formats::{MessageLimits, Normalize, PayloadEncoding, Violation};
use crate::idempotency::{Answer, BatchClaim, BatchKeys, Idempotency, Retry, Ticket};
use crate::metrics::{PipelineMetrics, ValidationTally};
use crate::registry::stations::{BackendRef, Framing};
use crate::registry::{Registry, Schema, Snapshot, Station, VersionRefusal};
use crate::views::DeadLetterView;
use sending::Sending;

/// A message as a front end received it.
#[derive(Debug, Clone, Default)]
pub struct Incoming {
    pub payload: Bytes,
    /// The `Content-Type` as sent, kept with dead letters.
    pub content_type: Option<String>,
    pub key: Option<Bytes>,
    pub headers: Vec<(String, String)>,
    /// The schema version the producer asked to be judged by.
    pub schema_version: Option<u32>,
    /// Not delivered to consumers before this time (ms since the Unix epoch).
    pub deliver_after_ms: Option<u64>,
    /// The producer's `Idempotency-Key`, naming retries of one message.
    pub idempotency_key: Option<String>,
    /// The request that carried the message (`Sluice-Request-Id`), kept with a dead letter as its
    /// `sluice-request-id` header.
    pub request_id: Option<Arc<str>>,
}

/// The header a dead letter keeps its request id in.
pub const REQUEST_ID_HEADER: &str = "sluice-request-id";

impl Incoming {
    pub fn encoding(&self) -> PayloadEncoding {
        PayloadEncoding::from_content_type(self.content_type.as_deref())
    }
}

/// A stored message's position, as answered to the producer.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    pub station: String,
    #[serde(flatten)]
    pub position: Position,
    pub schema_version: Option<u32>,
}

/// What a validation dry run concluded.
#[derive(Debug, Serialize)]
pub struct DryRun {
    pub valid: bool,
    pub schema: String,
    pub version: u32,
    pub violations: Vec<Violation>,
}

/// The outcome of judging one message, before anything is written.
enum Judged {
    Valid(Record),
    Invalid(Record, ViolationReport),
    Refused(ApiError),
}

pub struct Pipeline {
    registry: Arc<Registry>,
    backends: Backends,
    idempotency: Idempotency,
    limits: Limits,
    /// `limits` as the formats apply them to each message.
    message_limits: MessageLimits,
    metrics: PipelineMetrics,
    /// Serializes dead-letter replays so one dead letter is never forwarded twice.
    replay_lock: tokio::sync::Mutex<()>,
}

impl Pipeline {
    pub fn new(registry: Arc<Registry>, backends: Backends, limits: Limits) -> Self {
        Self {
            registry,
            backends,
            idempotency: Idempotency::new(limits.idempotency_window),
            message_limits: limits.message_limits(),
            metrics: PipelineMetrics::default(),
            limits,
            replay_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn embedded(&self) -> &EmbeddedStore {
        self.backends.embedded()
    }

    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Ready to take messages: a registry snapshot is serving and the backends answer.
    pub async fn check_ready(&self) -> Result<(), ApiError> {
        if let Some(reason) = self.registry.not_ready_reason() {
            return Err(ApiError::RegistryNotReady(reason));
        }
        self.backends.check_ready().await?;
        Ok(())
    }

    fn station(&self, snapshot: &Snapshot, name: &str) -> Result<Arc<Station>, ApiError> {
        snapshot
            .station(name)
            .cloned()
            .ok_or_else(|| match self.registry.not_ready_reason() {
                Some(reason) => ApiError::RegistryNotReady(reason),
                None => ApiError::UnknownStation(name.to_owned()),
            })
    }

    /// The embedded store, for operations only it supports (consume, DLQ browse).
    fn embedded_for(&self, station: &Station) -> Result<&EmbeddedStore, ApiError> {
        match station.backend {
            BackendRef::Embedded => Ok(self.backends.embedded()),
            ref other => Err(ApiError::NotConsumable {
                station: station.name.clone(),
                backend: other.kind(),
            }),
        }
    }

    /// Produces one message.
    pub async fn produce(&self, station: &str, message: Incoming) -> Result<Accepted, ApiError> {
        let mut results = self.produce_batch(station, vec![message]).await?;
        results.pop().expect("one result per message")
    }

    /// Produces many messages to one station. Valid ones go to the backend as they are judged (in
    /// one write on the embedded store, in chunks to a remote backend, see [`Sending`]) and
    /// invalid ones in one dead-letter write alongside; each message gets its own result, in
    /// order. The outer error is for the request as a whole (unknown station, backend missing, a
    /// backend at its in-flight limit).
    pub async fn produce_batch(
        &self,
        station: &str,
        messages: Vec<Incoming>,
    ) -> Result<Vec<Result<Accepted, ApiError>>, ApiError> {
        let snapshot = self.registry.snapshot();
        let station = self.station(&snapshot, station)?;
        let route = self.backends.route(&station).await?;
        let received_at_ms = now_ms();

        // Back pressure: a backend already storing its limit answers 503 now, for the whole batch.
        let _in_flight = match route.admit(messages.len()) {
            Ok(permit) => permit,
            Err(busy) => {
                station.metrics.produced(0, 0, messages.len() as u64, 0);
                return Err(ApiError::Backend(busy));
            }
        };
        let mut valid = Sending::new(route.backend, &route.log, &self.metrics, messages.len());
        let mut versions = Vec::new();
        let mut dead = Vec::new();
        let mut slots = Vec::with_capacity(messages.len());
        let mut tickets: Vec<Option<Ticket>> = Vec::with_capacity(messages.len());
        let schema_name = shared_schema_name(&station);
        let mut keys = BatchKeys::new(&self.idempotency, &station.name);
        let mut tally = ValidationTally::default();
        for message in messages {
            let mut ticket = None;
            if let Some(key) = &message.idempotency_key {
                match keys.claim(key, slots.len()) {
                    BatchClaim::Store(first) => ticket = Some(first),
                    BatchClaim::Retry(retry) => {
                        slots.push(Slot::Retry(retry));
                        tickets.push(None);
                        continue;
                    }
                }
            }
            tickets.push(ticket);
            slots.push(
                match self.judge(&station, &schema_name, message, received_at_ms, &mut tally) {
                    Judged::Valid(record) => {
                        versions.push(record.schema_version);
                        Slot::Valid(valid.push(record).await)
                    }
                    Judged::Invalid(record, report) if station.dlq => {
                        dead.push(record);
                        Slot::Invalid(Some(dead.len() - 1), report)
                    }
                    Judged::Invalid(_, report) => Slot::Invalid(None, report),
                    Judged::Refused(error) => Slot::Refused(error),
                },
            );
        }
        self.metrics.validated(&tally);
        let dead_count = dead.len() as u64;
        let (stored, dead_lettered) = tokio::join!(
            valid.finish(),
            self.append_if_any(route.backend, &route.dead_letters, dead),
        );
        if let Err(e) = &dead_lettered {
            tracing::error!(station = %station.name, "dead letters could not be stored: {e}");
        }

        let mut results: Vec<Answer> = Vec::with_capacity(slots.len());
        let mut waiting = Vec::new();
        for slot in slots {
            let result = match slot {
                Slot::Valid(i) => match &stored[i] {
                    Ok(position) => Ok(Accepted {
                        station: station.name.clone(),
                        position: *position,
                        schema_version: versions[i],
                    }),
                    Err(e) => Err(ApiError::Backend(e.clone())),
                },
                Slot::Invalid(dead_index, mut report) => {
                    if let (Some(i), Ok(positions)) = (dead_index, &dead_lettered) {
                        report.dlq_id = Some(positions[i].offset.to_string());
                    }
                    Err(ApiError::SchemaViolation(Box::new(report)))
                }
                Slot::Refused(error) => Err(error),
                Slot::Retry(Retry::Answered(answer)) => answer,
                Slot::Retry(Retry::SameAs(earlier)) => results[earlier].clone(),
                Slot::Retry(Retry::Waiting(first_try)) => {
                    waiting.push((results.len(), first_try));
                    Err(ApiError::IdempotencyKeyAbandoned) // replaced below once answered
                }
            };
            results.push(result);
        }
        for (ticket, result) in tickets.into_iter().zip(&results) {
            if let Some(ticket) = ticket {
                ticket.settle(result);
            }
        }
        let accepted = results.iter().filter(|r| r.is_ok()).count() as u64;
        let rejected = results
            .iter()
            .filter(|r| matches!(r, Err(ApiError::SchemaViolation(_))))
            .count() as u64;
        let errors = results.len() as u64 - accepted - rejected;
        let dead_lettered = if dead_lettered.is_ok() { dead_count } else { 0 };
        station
            .metrics
            .produced(accepted, rejected, errors, dead_lettered);
        record_in_span(schema_name.as_deref(), &results, accepted, rejected);
        // Retries of messages another request is storing: their answers, once this batch's own
        // keys are settled (so two batches waiting on each other's keys both finish).
        for (index, mut first_try) in waiting {
            if let Ok(answer) = first_try.wait_for(Option::is_some).await {
                results[index] = answer.clone().expect("waited for an answer");
            }
        }
        Ok(results)
    }

    /// Appends `records` to `log` unless there are none, timing the backend's write.
    async fn append_if_any(
        &self,
        backend: &dyn Backend,
        log: &str,
        records: Vec<Record>,
    ) -> Result<Vec<Position>, BackendError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let appended = backend.append(log, records).await;
        self.metrics.appended(backend.kind(), started.elapsed());
        appended
    }

    /// Judges one message against the station's schema and builds what will be stored.
    /// `schema_name` is the station's schema name, shared by every record of a batch; the time
    /// validation takes is added to `tally`.
    fn judge(
        &self,
        station: &Station,
        schema_name: &Option<Arc<str>>,
        message: Incoming,
        received_at_ms: u64,
        tally: &mut ValidationTally,
    ) -> Judged {
        if message.payload.len() > self.limits.max_message_bytes {
            return Judged::Refused(ApiError::PayloadTooLarge {
                limit: self.limits.max_message_bytes,
            });
        }
        let encoding = message.encoding();
        let Some(schema) = &station.schema else {
            let content_type = match &message.content_type {
                Some(sent) => Cow::Owned(sent.clone()),
                None => Cow::Borrowed("application/json"),
            };
            let mut record = record(message, content_of(&encoding), None, received_at_ms);
            record.provenance.content_type = Some(content_type);
            return Judged::Valid(record);
        };
        if !schema.format.accepts(&encoding) {
            return Judged::Refused(ApiError::UnsupportedMediaType {
                station: station.name.clone(),
                format: schema.format.display_name(),
                expected: schema.format.expected_content_types(),
            });
        }
        // A Confluent frame names its version by id; what follows the id is what is judged.
        let framed = encoding == PayloadEncoding::ConfluentFramed;
        let (requested, body, frame_violation) = if framed {
            match read_frame(schema, &message) {
                Ok((version, body)) => (Some(version), body, None),
                Err(FrameError::Refused(error)) => return Judged::Refused(error),
                Err(FrameError::Invalid(violation)) => (
                    message.schema_version,
                    message.payload.clone(),
                    Some(violation),
                ),
            }
        } else {
            // Only when the producer named no version: a payload may name the one that wrote it.
            let requested = message.schema_version.or_else(|| {
                schema
                    .versions()
                    .iter()
                    .rev()
                    .find(|v| {
                        v.compiled
                            .written_with_this_version(&message.payload, &encoding)
                    })
                    .map(|v| v.version)
            });
            (requested, message.payload.clone(), None)
        };
        let version = match station.pick_version(requested) {
            Ok(version) => version.expect("a station with a schema picks a version"),
            Err(refusal) => return Judged::Refused(version_refusal(station, requested, refusal)),
        };
        let verdict = match frame_violation {
            Some(violation) => Err(vec![violation]),
            None => {
                // Confluent framing wraps the format's binary encoding.
                let normalize = match station.framing {
                    Framing::Confluent => Normalize::Binary,
                    Framing::None => station.normalize,
                };
                let started = Instant::now();
                let verdict =
                    version
                        .compiled
                        .validate(&body, &encoding, normalize, &self.message_limits);
                tally.add(schema.format, started.elapsed());
                verdict
            }
        };
        match verdict {
            Ok(valid) => {
                let (value, content, content_type) = if framed {
                    (
                        message.payload.clone(),
                        ContentKind::Binary,
                        CONFLUENT_FRAMED,
                    )
                } else if station.framing == Framing::Confluent {
                    let value = version.compiled.confluent_frame(version.id, &valid.value);
                    (value, ContentKind::Binary, CONFLUENT_FRAMED)
                } else if valid.is_json {
                    (valid.value, ContentKind::Json, "application/json")
                } else {
                    let binary = schema.format.binary_content_type();
                    (valid.value, ContentKind::Binary, binary)
                };
                let mut record = record(message, content, Some(version.version), received_at_ms);
                record.value = value;
                record.provenance.schema = schema_name.clone();
                record.provenance.schema_id = Some(version.id);
                record.provenance.content_type = Some(Cow::Borrowed(content_type));
                Judged::Valid(record)
            }
            Err(violations) => {
                let report = ViolationReport {
                    schema: schema.name.clone(),
                    version: version.version,
                    violations: violations.clone(),
                    dlq_id: None,
                };
                let content_type = message.content_type.clone();
                let request_id = message.request_id.clone();
                let mut record = record(
                    message,
                    content_of(&encoding),
                    Some(version.version),
                    received_at_ms,
                );
                record.dead_letter = Some(DeadLetter {
                    station: station.name.clone(),
                    error: "schema_violation".into(),
                    schema: Some(schema.name.clone()),
                    schema_version: Some(version.version),
                    violations,
                    content_type,
                });
                if let Some(id) = request_id {
                    record
                        .headers
                        .push((REQUEST_ID_HEADER.to_owned(), id.to_string()));
                }
                Judged::Invalid(record, report)
            }
        }
    }

    /// Would `payload` pass schema `name` (at `version`, default newest)? Stores nothing.
    pub fn dry_run(
        &self,
        name: &str,
        version: Option<u32>,
        payload: &Bytes,
        content_type: Option<&str>,
    ) -> Result<DryRun, ApiError> {
        let snapshot = self.registry.snapshot();
        let schema = snapshot
            .schema(name)
            .ok_or_else(|| ApiError::UnknownSchema(name.to_owned()))?;
        let version_number = version.unwrap_or_else(|| schema.newest());
        let version =
            schema
                .version(version_number)
                .ok_or_else(|| ApiError::UnknownSchemaVersion {
                    schema: name.to_owned(),
                    version: version_number,
                    newest: schema.newest(),
                })?;
        let encoding = PayloadEncoding::from_content_type(content_type);
        if !schema.format.accepts(&encoding) {
            return Err(ApiError::UnsupportedMediaType {
                station: format!("schema {name}"),
                format: schema.format.display_name(),
                expected: schema.format.expected_content_types(),
            });
        }
        let violations = version
            .compiled
            .validate(payload, &encoding, Normalize::AsSent, &self.message_limits)
            .err()
            .unwrap_or_default();
        Ok(DryRun {
            valid: violations.is_empty(),
            schema: name.to_owned(),
            version: version.version,
            violations,
        })
    }

    /// The station and store a consumer-group operation works on, with the group name checked.
    fn group_target(
        &self,
        station: &str,
        group: &str,
    ) -> Result<(Arc<Station>, &EmbeddedStore), ApiError> {
        let station = self.station(&self.registry.snapshot(), station)?;
        check_group_name(group)?;
        let store = self.embedded_for(&station)?;
        Ok((station, store))
    }

    /// Long-polls up to `max` messages of `station` for `group`.
    pub async fn consume(
        &self,
        station: &str,
        group: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, ApiError> {
        let (station, store) = self.group_target(station, group)?;
        let max = max.clamp(1, self.limits.max_consume_messages);
        let wait = wait.min(self.limits.max_consume_wait);
        let options = ConsumeOptions {
            max,
            wait,
            ack_timeout: station.ack_timeout,
            max_deliveries: station.max_deliveries,
            dead_letters: station.dlq.then(|| station.dlq_name.clone()),
        };
        Ok(store.consume(&station.name, group, &options).await?)
    }

    /// Acknowledges `offsets` of `station` for `group`.
    pub async fn ack(
        &self,
        station: &str,
        group: &str,
        offsets: &[u64],
    ) -> Result<AckOutcome, ApiError> {
        let (station, store) = self.group_target(station, group)?;
        Ok(store.ack(&station.name, group, offsets).await?)
    }

    /// Gives `offsets` back for redelivery after `delay`.
    pub async fn nack(
        &self,
        station: &str,
        group: &str,
        offsets: &[u64],
        delay: Duration,
    ) -> Result<AckOutcome, ApiError> {
        let (station, store) = self.group_target(station, group)?;
        Ok(store.nack(&station.name, group, offsets, delay).await?)
    }

    /// Up to `max` dead letters of `station` from id `from` on.
    pub fn dead_letters(
        &self,
        station: &str,
        from: u64,
        max: usize,
    ) -> Result<Vec<DeadLetterView>, ApiError> {
        let snapshot = self.registry.snapshot();
        let station = self.station(&snapshot, station)?;
        let store = self.embedded_for(&station)?;
        let max = max.clamp(1, self.limits.max_consume_messages);
        store
            .read(&station.dlq_name, from, max)?
            .into_iter()
            .map(|(id, record)| {
                let replayed_to = store.replayed_to(&station.dlq_name, id)?;
                Ok(DeadLetterView::new(id, record, replayed_to))
            })
            .collect()
    }

    /// Re-judges dead letter `id` against today's schema and forwards it to the station if it now
    /// passes. A dead letter is forwarded at most once.
    pub async fn replay(&self, station_name: &str, id: &str) -> Result<Accepted, ApiError> {
        let snapshot = self.registry.snapshot();
        let station = self.station(&snapshot, station_name)?;
        let store = self.embedded_for(&station)?;
        let not_found = || ApiError::DeadLetterNotFound {
            station: station.name.clone(),
            id: id.to_owned(),
        };
        let id: u64 = id.parse().map_err(|_| not_found())?;
        let _one_at_a_time = self.replay_lock.lock().await;
        if let Some(offset) = store.replayed_to(&station.dlq_name, id)? {
            return Err(ApiError::AlreadyReplayed {
                station: station.name.clone(),
                id,
                offset,
            });
        }
        let record = store
            .read_one(&station.dlq_name, id)?
            .ok_or_else(not_found)?;
        let content_type = record
            .dead_letter
            .as_ref()
            .and_then(|d| d.content_type.clone());
        let message = Incoming {
            payload: record.value,
            content_type,
            key: record.key,
            headers: record
                .headers
                .into_iter()
                .filter(|(name, _)| name != REQUEST_ID_HEADER)
                .collect(),
            ..Incoming::default()
        };
        let mut tally = ValidationTally::default();
        let judged = self.judge(
            &station,
            &shared_schema_name(&station),
            message,
            now_ms(),
            &mut tally,
        );
        self.metrics.validated(&tally);
        match judged {
            Judged::Valid(record) => {
                let version = record.schema_version;
                let route = self.backends.route(&station).await?;
                let position = route.backend.append(&route.log, vec![record]).await?[0];
                store
                    .mark_replayed(&station.dlq_name, id, position.offset)
                    .await?;
                Ok(Accepted {
                    station: station.name.clone(),
                    position,
                    schema_version: version,
                })
            }
            Judged::Invalid(_, mut report) => {
                report.dlq_id = Some(id.to_string());
                Err(ApiError::SchemaViolation(Box::new(report)))
            }
            Judged::Refused(error) => Err(error),
        }
    }

    /// Applies every embedded station's retention to its log and its dead-letter queue.
    pub async fn enforce_retention(&self) {
        let snapshot = self.registry.snapshot();
        for station in snapshot.stations() {
            if station.backend != BackendRef::Embedded
                || (station.retention.max_age.is_none() && station.retention.max_bytes.is_none())
            {
                continue;
            }
            for log in [&station.name, &station.dlq_name] {
                match self
                    .backends
                    .embedded()
                    .apply_retention(log, &station.retention)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(log = %log, dropped = n, "retention applied"),
                    Err(e) => tracing::warn!(log = %log, "retention failed: {e}"),
                }
            }
        }
    }
}

/// Where a judged message's result comes from once the writes are done.
enum Slot {
    /// Index into the valid records.
    Valid(usize),
    /// Index into the dead letters, when the station keeps them.
    Invalid(Option<usize>, ViolationReport),
    Refused(ApiError),
    /// A retry of a message with the same `Idempotency-Key`: the first try's answer.
    Retry(Retry),
}

/// Names the schema, the version that judged and the outcome (`accepted`, `rejected`, `error`, or
/// `mixed` for a batch) in the current request's span, when it has those fields.
fn record_in_span(schema: Option<&str>, results: &[Answer], accepted: u64, rejected: u64) {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    if let Some(schema) = schema {
        span.record("schema", schema);
    }
    let version = results.iter().find_map(|result| match result {
        Ok(accepted) => accepted.schema_version,
        Err(ApiError::SchemaViolation(report)) => Some(report.version),
        Err(_) => None,
    });
    if let Some(version) = version {
        span.record("version", version);
    }
    let total = results.len() as u64;
    let outcome = match (accepted, rejected) {
        (a, _) if a == total => "accepted",
        (_, r) if r == total => "rejected",
        (0, 0) => "error",
        _ => "mixed",
    };
    span.record("outcome", outcome);
}

fn shared_schema_name(station: &Station) -> Option<Arc<str>> {
    station.schema.as_ref().map(|s| Arc::from(s.name.as_str()))
}

/// The media type of a message stored in Confluent's wire format.
const CONFLUENT_FRAMED: &str = "application/vnd.confluent";

fn record(
    message: Incoming,
    content: ContentKind,
    version: Option<u32>,
    received_at_ms: u64,
) -> Record {
    Record {
        received_at_ms,
        deliver_after_ms: message.deliver_after_ms,
        key: message.key,
        headers: message.headers,
        value: message.payload,
        content,
        schema_version: version,
        dead_letter: None,
        provenance: Provenance {
            idempotency_key: message.idempotency_key,
            ..Provenance::default()
        },
    }
}

fn content_of(encoding: &PayloadEncoding) -> ContentKind {
    if encoding.is_json() {
        ContentKind::Json
    } else {
        ContentKind::Binary
    }
}

/// Why a Confluent frame cannot be judged.
enum FrameError {
    /// The request contradicts itself: a 400.
    Refused(ApiError),
    /// The frame is broken or names a version of another schema: a violation, dead-lettered.
    Invalid(Violation),
}

/// Splits a framed message and resolves its schema id to a version of `schema`.
fn read_frame(schema: &Schema, message: &Incoming) -> Result<(u32, Bytes), FrameError> {
    let (id, body) = split_frame(&message.payload).map_err(FrameError::Invalid)?;
    let version = schema.version_by_id(id).ok_or_else(|| {
        FrameError::Invalid(Violation::whole_message(format!(
            "schema id {id} is not a version of schema `{}` (its ids: {})",
            schema.name,
            schema
                .versions()
                .iter()
                .map(|v| format!("v{} = {}", v.version, v.id))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    })?;
    match message.schema_version {
        Some(header) if header != version.version => {
            Err(FrameError::Refused(ApiError::BadRequest(format!(
                "Sluice-Schema-Version says {header} but the frame's schema id {id} is version {}",
                version.version
            ))))
        }
        _ => Ok((version.version, body)),
    }
}

fn version_refusal(station: &Station, requested: Option<u32>, refusal: VersionRefusal) -> ApiError {
    let version = requested.unwrap_or_default();
    match refusal {
        VersionRefusal::Unknown { newest } => ApiError::UnknownSchemaVersion {
            schema: station
                .schema
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            version,
            newest,
        },
        VersionRefusal::NotAccepted { accept } => ApiError::VersionNotAccepted {
            station: station.name.clone(),
            accept,
            version,
        },
    }
}

fn check_group_name(group: &str) -> Result<(), ApiError> {
    let ok = !group.is_empty()
        && group.len() <= 200
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(
            "`group` must be 1 to 200 letters, digits, '.', '_' or '-'".into(),
        ))
    }
}
