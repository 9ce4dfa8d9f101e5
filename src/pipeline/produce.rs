//! Producing one request's messages to one station, in four phases: each message's
//! `Idempotency-Key` is claimed and the message judged, valid ones handed to the station's backend
//! as they are judged ([`Sending`]) and invalid ones gathered; the dead letters are written beside
//! the valid records; every message is answered in order; the keys are settled and the station's
//! counters moved. A long batch yields to the runtime after each tenth of a millisecond of
//! judging, so requests that share its worker thread wait about that long behind it at most.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::error::{PipelineError, ViolationReport};
use super::idempotency::{Answer, BatchClaim, BatchKeys, Retry, Ticket};
use super::judge::{Judge, Judged};
use super::sending::Sending;
use super::to_the_end::ToTheEnd;
use super::{metadata, Accepted, Incoming, Limits, Pipeline};
use crate::backends::routing::Route;
use crate::backends::{Backend, BackendError};
use crate::metrics::{PipelineMetrics, ValidationTally};
use crate::model::{Position, Record};
use crate::registry::Station;

/// How long a batch judges before it yields to the runtime, so that requests sharing its worker
/// thread wait at most about this long behind it.
const JUDGING_SLICE: Duration = Duration::from_micros(100);
/// Messages judged between two looks at the clock.
const JUDGED_PER_LOOK: usize = 16;

/// Where a judged message's answer comes from once the writes are done.
enum Slot {
    /// Index into the valid records.
    Valid(usize),
    /// Index into the dead letters, when the station keeps them.
    Invalid(Option<usize>, ViolationReport),
    Refused(PipelineError),
    /// A retry of a message with the same `Idempotency-Key`: the first try's answer.
    Retry(Retry),
}

/// One request's messages from judging to answering.
struct Batch<'a> {
    valid: Sending<'a>,
    /// The schema version of each valid record, by its index.
    versions: Vec<Option<u32>>,
    dead: Vec<Record>,
    slots: Vec<Slot>,
    /// The first try's ticket of each message that carried a key.
    tickets: Vec<Option<Ticket>>,
    keeps_dead_letters: bool,
}

/// Answers of retries that wait for a first try another request is storing, by index.
type Waiting = Vec<(usize, watch::Receiver<Option<Answer>>)>;

impl Pipeline {
    /// Produces many messages to one station. Valid ones go to the backend as they are judged (in
    /// one write on the embedded store, in chunks to a remote backend, see [`Sending`]) and
    /// invalid ones in one dead-letter write alongside; each message gets its own answer, in
    /// order. The outer error is for the request as a whole (unknown station, too many messages,
    /// backend missing, a backend at its in-flight limit).
    ///
    /// The work runs to its end even when its caller stops waiting (a client gone, a deadline
    /// passed): no message is left half settled, and a retry of a message stored meanwhile gets
    /// its answer instead of storing it again.
    pub async fn produce_batch(
        self: &Arc<Self>,
        station: &str,
        messages: Vec<Incoming>,
    ) -> Result<Vec<Answer>, PipelineError> {
        let pipeline = self.clone();
        let station = station.to_owned();
        ToTheEnd::new(async move { pipeline.store_batch(&station, messages).await }).await
    }

    async fn store_batch(
        &self,
        station: &str,
        messages: Vec<Incoming>,
    ) -> Result<Vec<Answer>, PipelineError> {
        if messages.len() > self.limits.max_batch_messages {
            return Err(PipelineError::TooManyMessages {
                limit: self.limits.max_batch_messages,
            });
        }
        let snapshot = self.registry.snapshot();
        let station = self.station(&snapshot, station)?;
        let route = self.backends.route(super::placement(&station)).await?;
        // Back pressure: a backend already storing its limit answers 503 now, for the whole batch.
        let _in_flight = match route.admit(messages.len()) {
            Ok(permit) => permit,
            Err(busy) => {
                station.metrics.produced(0, 0, messages.len() as u64, 0);
                return Err(busy.into());
            }
        };
        let judge = Judge::new(
            &station,
            self.limits.max_message_bytes,
            &self.message_limits,
        );
        let mut batch = Batch::new(&route, &self.metrics, station.dlq, messages.len());
        let mut keys = BatchKeys::new(&self.idempotency, &station.name);
        let mut tally = ValidationTally::default();
        let mut slice_started = Instant::now();
        for (index, message) in messages.into_iter().enumerate() {
            batch
                .take(&judge, &self.limits, &mut keys, message, &mut tally)
                .await;
            if index % JUDGED_PER_LOOK == JUDGED_PER_LOOK - 1
                && slice_started.elapsed() >= JUDGING_SLICE
            {
                tokio::task::yield_now().await;
                slice_started = Instant::now();
            }
        }
        self.metrics.validated(&tally);
        let (mut results, waiting) = batch.finish(self, &route, &station).await;
        record_in_span(judge.schema_name.as_deref(), &results);
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
    pub(super) async fn append_if_any(
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
}

impl<'a> Batch<'a> {
    fn new(
        route: &'a Route<'a>,
        metrics: &'a PipelineMetrics,
        keeps_dead_letters: bool,
        messages: usize,
    ) -> Self {
        Self {
            valid: Sending::new(route.backend, &route.log, metrics, messages),
            versions: Vec::new(),
            dead: Vec::new(),
            slots: Vec::with_capacity(messages),
            tickets: Vec::with_capacity(messages),
            keeps_dead_letters,
        }
    }

    /// Claims the message's key, and unless it is a retry judges it and keeps what it became.
    async fn take(
        &mut self,
        judge: &Judge<'_>,
        limits: &Limits,
        keys: &mut BatchKeys<'_>,
        message: Incoming,
        tally: &mut ValidationTally,
    ) {
        if !message.from_gateway {
            if let Err(refused) = metadata::check(&message, limits) {
                self.slots.push(Slot::Refused(refused));
                self.tickets.push(None);
                return;
            }
        }
        let mut ticket = None;
        if let Some(key) = &message.idempotency_key {
            match keys.claim(key, self.slots.len()) {
                BatchClaim::Store(first) => ticket = Some(first),
                BatchClaim::Retry(retry) => {
                    self.slots.push(Slot::Retry(retry));
                    self.tickets.push(None);
                    return;
                }
            }
        }
        self.tickets.push(ticket);
        let slot = match judge.judge(message, tally) {
            Judged::Valid(record) => {
                self.versions.push(record.schema_version);
                Slot::Valid(self.valid.push(record).await)
            }
            Judged::Invalid(record, report) if self.keeps_dead_letters => {
                self.dead.push(record);
                Slot::Invalid(Some(self.dead.len() - 1), report)
            }
            Judged::Invalid(_, report) => Slot::Invalid(None, report),
            Judged::Refused(error) => Slot::Refused(error),
        };
        self.slots.push(slot);
    }

    /// Writes the dead letters beside the valid records, waits for both, answers every message
    /// in order, settles the keys this batch claimed and moves the station's counters.
    async fn finish(
        self,
        pipeline: &Pipeline,
        route: &Route<'_>,
        station: &Station,
    ) -> (Vec<Answer>, Waiting) {
        let Batch {
            valid,
            versions,
            dead,
            slots,
            tickets,
            ..
        } = self;
        let dead_count = dead.len() as u64;
        let (stored, dead_lettered) = tokio::join!(
            valid.finish(),
            pipeline.append_if_any(route.backend, &route.dead_letters, dead),
        );
        if let Err(e) = &dead_lettered {
            tracing::error!(station = %station.name, "dead letters could not be stored: {e}");
            station.metrics.dead_letters_not_kept(dead_count);
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
                    Err(e) => Err(PipelineError::Backend(e.clone())),
                },
                Slot::Invalid(dead_index, mut report) => match (dead_index, &dead_lettered) {
                    (Some(i), Ok(positions)) => {
                        report.dlq_id = Some(positions[i].to_string());
                        Err(report.into_error())
                    }
                    // Not answered as if kept: the producer retries until the dead letter is.
                    (Some(_), Err(cause)) => Err(PipelineError::DeadLetterNotKept {
                        report: Box::new(report),
                        cause: cause.clone(),
                    }),
                    (None, _) => Err(report.into_error()),
                },
                Slot::Refused(error) => Err(error),
                Slot::Retry(Retry::Answered(answer)) => answer,
                Slot::Retry(Retry::SameAs(earlier)) => results[earlier].clone(),
                Slot::Retry(Retry::Waiting(first_try)) => {
                    waiting.push((results.len(), first_try));
                    Err(PipelineError::IdempotencyKeyAbandoned) // replaced once answered
                }
            };
            results.push(result);
        }
        for (ticket, result) in tickets.into_iter().zip(&results) {
            if let Some(ticket) = ticket {
                ticket.settle(result);
            }
        }
        let dead_lettered = if dead_lettered.is_ok() { dead_count } else { 0 };
        count(station, &results, dead_lettered);
        (results, waiting)
    }
}

/// How many answers stored their message, and how many its schema or its rules refused.
fn accepted_and_rejected(results: &[Answer]) -> (u64, u64) {
    let accepted = results.iter().filter(|r| r.is_ok()).count() as u64;
    let rejected = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e.violation_report().is_some()))
        .count() as u64;
    (accepted, rejected)
}

/// Moves the station's counters by a request's answers.
fn count(station: &Station, results: &[Answer], dead_lettered: u64) {
    let (accepted, rejected) = accepted_and_rejected(results);
    let errors = results.len() as u64 - accepted - rejected;
    station
        .metrics
        .produced(accepted, rejected, errors, dead_lettered);
}

/// Names the schema, the version that judged and the outcome (`accepted`, `rejected`, `error`, or
/// `mixed` for a batch) in the current request's span, when it has those fields.
fn record_in_span(schema: Option<&str>, results: &[Answer]) {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    if let Some(schema) = schema {
        span.record("schema", schema);
    }
    let version = results.iter().find_map(|result| match result {
        Ok(accepted) => accepted.schema_version,
        Err(error) => error.violation_report().map(|report| report.version),
    });
    if let Some(version) = version {
        span.record("version", version);
    }
    let total = results.len() as u64;
    let (accepted, rejected) = accepted_and_rejected(results);
    let outcome = match (accepted, rejected) {
        (a, _) if a == total => "accepted",
        (_, r) if r == total => "rejected",
        (0, 0) => "error",
        _ => "mixed",
    };
    span.record("outcome", outcome);
}
