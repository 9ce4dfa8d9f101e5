//! Consumer groups and dead letters: what a station offers beyond appends, on whichever backend
//! stores it. [`StationQueue`] is the extension point. The embedded store keeps groups, leases and
//! replay marks in its own metadata; JetStream in durable pull consumers and a key-value bucket;
//! Kafka in consumer groups and a compacted topic. A gateway holds nothing another replica in front
//! of the same engine would need, beyond what is in flight.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;

use super::BackendError;
use crate::model::{DeadLetter, Position, Record, Violation};

/// How a consume call behaves.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    pub max: usize,
    pub wait: Duration,
    pub ack_timeout: Duration,
    /// Deliveries without an ack before a message is dead-lettered; 0: never.
    pub max_deliveries: u32,
    /// The log exhausted messages go to; none drops them for the group (with a warning).
    pub dead_letters: Option<String>,
}

/// A message handed to a consumer.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub position: Position,
    /// 1 on first delivery, raised on each redelivery.
    pub delivery: u32,
    pub record: Record,
}

/// What an ack or nack did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckOutcome {
    /// Messages acknowledged (or given back, for a nack) by this call or already before it.
    pub acked: usize,
    /// Messages this group was never delivered (or holds no lease on), left untouched.
    pub unknown: Vec<Position>,
}

/// Counters of one log, for listings.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LogStats {
    /// Records currently stored.
    pub messages: u64,
    pub first_offset: u64,
    pub next_offset: u64,
    /// Bytes of stored records, where the backend tells (not on Kafka).
    pub bytes: Option<u64>,
}

/// A dead letter as stored: its id in the dead-letter log, the record (with why it was refused),
/// and where it was replayed to, once it was.
#[derive(Debug)]
pub struct StoredDeadLetter {
    pub id: Position,
    pub record: Record,
    pub replayed_to: Option<Position>,
}

/// One page of a dead-letter log.
#[derive(Debug)]
pub struct DeadLetterPage {
    pub letters: Vec<StoredDeadLetter>,
    /// Where the next page starts.
    pub next: Position,
}

impl DeadLetterPage {
    /// A page with no dead letter yet, whose next page starts at `from`.
    pub fn starting_at(from: Position) -> Self {
        Self {
            letters: Vec::new(),
            next: from,
        }
    }

    /// Adds dead letter `id`, read in order; the next page starts after it.
    pub fn push(&mut self, id: Position, record: Record) {
        self.next = id.next();
        self.letters.push(StoredDeadLetter {
            id,
            record,
            replayed_to: None,
        });
    }

    /// Makes the next page start at `at`, where the log goes on past what this page read (the
    /// start of the next partition).
    pub fn resume_at(&mut self, at: Position) {
        self.next = at;
    }

    /// Sets where each dead letter of the page was replayed to, as `replayed_to` reads the
    /// engine's replay marks (all at once).
    pub async fn mark_replayed<F, Fut>(&mut self, replayed_to: F) -> Result<(), BackendError>
    where
        F: Fn(Position) -> Fut,
        Fut: Future<Output = Result<Option<Position>, BackendError>>,
    {
        let marks = self.letters.iter().map(|letter| replayed_to(letter.id));
        let marks = futures_util::future::join_all(marks).await;
        for (letter, mark) in self.letters.iter_mut().zip(marks) {
            letter.replayed_to = mark?;
        }
        Ok(())
    }
}

/// Whether a replay claimed at `claimed_at_ms` has outlived its gateway: one that neither
/// forwarded nor released it within three request timeouts is taken to have died, and the next
/// replay may take the claim over.
pub fn replay_claim_outlived(claimed_at_ms: u64, now_ms: u64, request_timeout: Duration) -> bool {
    now_ms.saturating_sub(claimed_at_ms) >= 3 * request_timeout.as_millis() as u64
}

/// Whether this caller may replay a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayClaim {
    /// It may: it forwards the dead letter, then settles the claim.
    Claimed,
    /// It was replayed before, to this position of the station.
    Replayed(Position),
    /// Another replay of it, by this gateway or another, is under way.
    InProgress,
}

/// A station's consumer groups and dead letters on one backend.
#[async_trait]
pub trait StationQueue: Send + Sync {
    /// Leases up to `options.max` messages of `log` to a consumer of `group`, waiting up to
    /// `options.wait` for some. Unacked ones come back after `ack_timeout`; a message delivered
    /// `max_deliveries` times without an ack goes to `options.dead_letters` instead, once.
    async fn consume(
        &self,
        log: &str,
        group: &str,
        options: &ConsumeOptions,
    ) -> Result<Vec<Delivery>, BackendError>;

    /// Acknowledges `messages` for `group`: they are never delivered to it again.
    async fn ack(
        &self,
        log: &str,
        group: &str,
        messages: &[Position],
    ) -> Result<AckOutcome, BackendError>;

    /// Gives leased `messages` back to `group`, to be delivered again after `delay`.
    async fn nack(
        &self,
        log: &str,
        group: &str,
        messages: &[Position],
        delay: Duration,
    ) -> Result<AckOutcome, BackendError>;

    /// What `log` holds now.
    async fn stats(&self, log: &str) -> Result<LogStats, BackendError>;

    /// Whether consumer group `group` may be used on `log` when at most `max` groups may be:
    /// it is one of them already, or there are fewer.
    async fn admits_group(&self, log: &str, group: &str, max: usize) -> Result<bool, BackendError>;

    /// Up to `max` dead letters of `dead_letters` from `from` on, with their replay marks.
    async fn dead_letters(
        &self,
        dead_letters: &str,
        from: Position,
        max: usize,
    ) -> Result<DeadLetterPage, BackendError>;

    /// Dead letter `id` of `dead_letters`, if it is stored.
    async fn dead_letter(
        &self,
        dead_letters: &str,
        id: Position,
    ) -> Result<Option<Record>, BackendError>;

    /// Claims dead letter `id` for a replay. A claim won must be settled with
    /// [`StationQueue::settle_replay`]; of concurrent claims, by any gateway, one wins.
    async fn claim_replay(
        &self,
        dead_letters: &str,
        id: Position,
    ) -> Result<ReplayClaim, BackendError>;

    /// Ends a claim: marks `id` replayed to `forwarded_to` for good, or (none) releases it so a
    /// later replay may try again.
    async fn settle_replay(
        &self,
        dead_letters: &str,
        id: Position,
        forwarded_to: Option<Position>,
    ) -> Result<(), BackendError>;
}

/// Makes `record` the dead letter of a message that consumer group `group` left unacked
/// `delivery` times (`max_deliveries` allowed) on `log`, where it was `at` (`offset 7`, `offset 7
/// of partition 2`): error `max_deliveries`, and no first-delivery hold left.
pub fn mark_exhausted(
    record: &mut Record,
    log: &str,
    group: &str,
    (delivery, max_deliveries): (u32, u32),
    at: &str,
) {
    let reason = format!(
        "delivered {delivery} times to consumer group `{group}` without an ack \
         (max_deliveries = {max_deliveries}); it was {at} of `{log}`"
    );
    record.dead_letter = Some(DeadLetter {
        station: log.to_owned(),
        error: "max_deliveries".to_owned(),
        schema: None,
        schema_version: record.schema_version,
        violations: vec![Violation::whole_message(reason)],
        content_type: None,
    });
    record.deliver_after_ms = None;
}

/// The id a replayed dead letter is forwarded with, so an engine that drops duplicates (JetStream)
/// stores it once even if a gateway dies between forwarding it and marking it replayed.
pub fn replay_idempotency_key(dead_letters: &str, id: Position) -> String {
    format!("sluice-replay:{dead_letters}:{id}")
}

/// How long a remote log's counts are reused.
const STATS_FRESH_FOR: Duration = Duration::from_secs(1);

/// Counts of remote logs read in the last second, so listing many stations (the dashboard asks
/// every two seconds) costs the brokers one request per log per second at most.
#[derive(Default)]
pub(crate) struct RecentStats(Mutex<HashMap<String, (Instant, LogStats)>>);

impl RecentStats {
    /// `log`'s counts from the last second, or from `read` now.
    pub(crate) async fn get(
        &self,
        log: &str,
        read: impl Future<Output = Result<LogStats, BackendError>>,
    ) -> Result<LogStats, BackendError> {
        if let Some((at, stats)) = self.0.lock().expect("stats lock").get(log) {
            if at.elapsed() < STATS_FRESH_FOR {
                return Ok(*stats);
            }
        }
        let stats = read.await?;
        self.0
            .lock()
            .expect("stats lock")
            .insert(log.to_owned(), (Instant::now(), stats));
        Ok(stats)
    }
}
