//! Consumer groups on Kafka. Each Sluice group of a station is a Kafka consumer group (`group.id`
//! = the group's name) on the station's topic, and each gateway that serves the group joins it as
//! one member, so Kafka hands every partition to one gateway at a time. That gateway reads the
//! partition ahead (up to `HELD_PER_GROUP` messages not yet acked) and leases its messages to the
//! consumers it serves: one consumer at a time, again after `ack_timeout` or a nack, to the
//! dead-letter topic after `max_deliveries`, not before a `Sluice-Deliver-After` time (which holds
//! that message alone). An ack commits the group's offset in the partition up to the first message
//! not acked yet, and is answered once the commit is stored.
//!
//! What differs from the embedded store and JetStream, where the engine holds every lease: a
//! gateway acks only what it leased (an ack through another gateway answers `unknown`, and the
//! message comes back after `ack_timeout`); when a partition moves to another gateway (a member
//! joins or leaves, a gateway stops), what was delivered and not acked is delivered again from the
//! committed offset, its delivery count starting over; and a group serves as many consumers at once
//! as the topic has partitions spread over gateways.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::Notify;

use super::reader::record_of;
use super::{KafkaBackend, KIND};
use crate::backends::queues::{mark_exhausted, AckOutcome, ConsumeOptions, Delivery};
use crate::backends::{unavailable, BackendError};
use crate::model::time::now_ms;
use crate::model::{Position, Record};

/// Messages a gateway reads ahead for one group and holds until they are acked.
const HELD_PER_GROUP: usize = 10_000;
/// A group no consumer has asked this gateway for in this long leaves the Kafka group, so its
/// partitions go to the gateways still serving it.
const IDLE_SESSION: Duration = Duration::from_secs(60);

/// A message read from a partition and not yet acked.
#[derive(Debug)]
struct Held {
    record: Record,
    /// 0 until first delivered.
    delivery: u32,
    /// Leased until then; for a message not delivered yet, not due before then.
    deadline_ms: u64,
    acked: bool,
}

/// One partition as this gateway holds it for a group.
#[derive(Debug, Default)]
struct PartitionBook {
    /// The group's committed offset: everything below it is acked.
    committed: i64,
    held: BTreeMap<i64, Held>,
}

/// What one lease call decided: (partition, offset, delivery, record).
#[derive(Debug, Default)]
struct Leased {
    deliver: Vec<(i32, i64, u32, Record)>,
    exhausted: Vec<(i32, i64, u32, Record)>,
}

/// Every partition this gateway holds for a group, shared with the rebalance callback.
#[derive(Debug, Default)]
struct Book {
    partitions: BTreeMap<i32, PartitionBook>,
}

impl Book {
    fn held(&self) -> usize {
        self.partitions.values().map(|p| p.held.len()).sum()
    }

    /// Takes a message read from `partition`.
    fn add(&mut self, partition: i32, offset: i64, record: Record) {
        let book = self.partitions.entry(partition).or_insert_with(|| {
            tracing::debug!(
                partition,
                offset,
                "reading a partition for a consumer group"
            );
            PartitionBook {
                committed: offset,
                held: BTreeMap::new(),
            }
        });
        if offset >= book.committed {
            let deadline_ms = record.deliver_after_ms.unwrap_or(0);
            book.held.entry(offset).or_insert(Held {
                record,
                delivery: 0,
                deadline_ms,
                acked: false,
            });
        }
    }

    /// Leases up to `max` messages whose time has come: expired leases and due messages, in
    /// partition and offset order.
    fn lease(&mut self, max: usize, timeout: Duration, max_deliveries: u32, now: u64) -> Leased {
        let mut leased = Leased::default();
        let deadline = now + timeout.as_millis() as u64;
        'partitions: for (&partition, book) in &mut self.partitions {
            for (&offset, held) in &mut book.held {
                if leased.deliver.len() == max {
                    break 'partitions;
                }
                if held.acked || held.deadline_ms > now {
                    continue;
                }
                held.deadline_ms = deadline;
                if max_deliveries > 0 && held.delivery >= max_deliveries {
                    let entry = (partition, offset, held.delivery, held.record.clone());
                    leased.exhausted.push(entry);
                } else {
                    held.delivery += 1;
                    let entry = (partition, offset, held.delivery, held.record.clone());
                    leased.deliver.push(entry);
                }
            }
        }
        leased
    }

    /// When the next lease expires or held message falls due (ms), if any.
    fn next_due_ms(&self) -> Option<u64> {
        self.partitions
            .values()
            .flat_map(|book| book.held.values())
            .filter(|held| !held.acked)
            .map(|held| held.deadline_ms)
            .min()
    }

    /// Acks `messages` (or, with `delay`, gives them back); returns the outcome and the offsets
    /// to commit for partitions whose acked prefix grew.
    fn settle(
        &mut self,
        messages: &[Position],
        nack_delay: Option<Duration>,
        now: u64,
    ) -> (AckOutcome, Vec<(i32, i64)>) {
        let mut outcome = AckOutcome::default();
        let mut commits = Vec::new();
        for &message in messages {
            let partition = message.partition.unwrap_or(0) as i32;
            let offset = message.offset as i64;
            let Some(book) = self.partitions.get_mut(&partition) else {
                outcome.unknown.push(message);
                continue;
            };
            match book.held.get_mut(&offset) {
                Some(held) if held.delivery > 0 && !held.acked => {
                    match nack_delay {
                        Some(delay) => {
                            let delay = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                            held.deadline_ms = now.saturating_add(delay);
                        }
                        None => held.acked = true,
                    }
                    outcome.acked += 1;
                }
                Some(held) if held.acked => outcome.acked += 1,
                None if offset < book.committed && nack_delay.is_none() => outcome.acked += 1,
                _ => outcome.unknown.push(message),
            }
        }
        for (&partition, book) in &mut self.partitions {
            let before = book.committed;
            while let Some(entry) = book.held.first_entry() {
                if !entry.get().acked {
                    book.committed = *entry.key();
                    break;
                }
                book.committed = entry.key() + 1;
                entry.remove();
            }
            if book.committed > before {
                commits.push((partition, book.committed));
            }
        }
        (outcome, commits)
    }
}

/// The rebalance callback's view: a revoked partition's messages are no longer this gateway's.
struct SessionContext {
    book: Arc<Mutex<Book>>,
}

impl ClientContext for SessionContext {}

impl ConsumerContext for SessionContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            tracing::info!(partitions = ?partition_numbers(partitions), "a consumer group's partitions were taken from this gateway");
            let mut book = self.book.lock().expect("book lock");
            for element in partitions.elements() {
                book.partitions.remove(&element.partition());
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            tracing::info!(partitions = ?partition_numbers(partitions), "a consumer group's partitions were given to this gateway");
        }
    }
}

fn partition_numbers(partitions: &TopicPartitionList) -> Vec<(String, i32)> {
    partitions
        .elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

/// This gateway's member of one Kafka group: the consumer, what it holds, and the task that
/// reads ahead into it.
pub(super) struct Session {
    topic: String,
    consumer: Arc<StreamConsumer<SessionContext>>,
    book: Arc<Mutex<Book>>,
    /// Woken when the reader adds messages.
    arrived: Arc<Notify>,
    last_used_ms: AtomicU64,
    stopped: Arc<AtomicBool>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Release);
    }
}

/// The groups this gateway serves, by (topic, group).
#[derive(Default)]
pub(super) struct Sessions(Mutex<HashMap<(String, String), Arc<Session>>>);

impl KafkaBackend {
    /// Whether this gateway serves `group` on `topic` already, or fewer than `max` groups on it
    /// (each is a client of its own reading ahead; sessions idle for [`IDLE_SESSION`] do not
    /// count, they are left at the next use).
    pub(super) fn admits_session(&self, topic: &str, group: &str, max: usize) -> bool {
        let now = now_ms();
        let sessions = self.sessions.0.lock().expect("sessions lock");
        let live = |session: &Arc<Session>| {
            now.saturating_sub(session.last_used_ms.load(Ordering::Acquire))
                < IDLE_SESSION.as_millis() as u64
        };
        let mut serving = 0;
        for ((on, name), session) in sessions.iter() {
            if on == topic && live(session) {
                if name == group {
                    return true;
                }
                serving += 1;
            }
        }
        serving < max
    }

    /// This gateway's session of `group` on `topic`, joined on first use; sessions idle for
    /// [`IDLE_SESSION`] are left.
    fn session(&self, topic: &str, group: &str) -> Result<Arc<Session>, BackendError> {
        let now = now_ms();
        let mut sessions = self.sessions.0.lock().expect("sessions lock");
        sessions.retain(|_, session| {
            now.saturating_sub(session.last_used_ms.load(Ordering::Acquire))
                < IDLE_SESSION.as_millis() as u64
        });
        let key = (topic.to_owned(), group.to_owned());
        if let Some(session) = sessions.get(&key) {
            session.last_used_ms.store(now, Ordering::Release);
            return Ok(session.clone());
        }
        let session = Arc::new(self.join(topic, group)?);
        sessions.insert(key, session.clone());
        Ok(session)
    }

    /// A member of consumer group `group` subscribed to `topic`: the session timeout and
    /// heartbeat of every member, offsets committed only by hand, and `settings` of its own.
    pub(super) fn join_group<C: ConsumerContext + 'static>(
        &self,
        group: &str,
        topic: &str,
        context: C,
        settings: &[(&str, &str)],
    ) -> Result<Arc<StreamConsumer<C>>, BackendError> {
        let mut config = self.clients.config();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set(
                "session.timeout.ms",
                self.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                heartbeat_interval(self.session_timeout)
                    .as_millis()
                    .to_string(),
            );
        for (key, value) in settings {
            config.set(*key, *value);
        }
        let consumer: StreamConsumer<C> = config
            .create_with_context(context)
            .map_err(|e| unavailable(KIND, format!("cannot join group `{group}`: {e}")))?;
        let consumer = Arc::new(consumer);
        self.clients.track(&consumer);
        consumer
            .subscribe(&[topic])
            .map_err(|e| unavailable(KIND, format!("cannot subscribe to `{topic}`: {e}")))?;
        Ok(consumer)
    }

    /// Joins `group` on `topic` and starts reading ahead.
    fn join(&self, topic: &str, group: &str) -> Result<Session, BackendError> {
        let book = Arc::new(Mutex::new(Book::default()));
        let context = SessionContext { book: book.clone() };
        let reset = [
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
        ];
        let consumer = self.join_group(group, topic, context, &reset)?;
        let session = Session {
            topic: topic.to_owned(),
            consumer,
            book,
            arrived: Arc::new(Notify::new()),
            last_used_ms: AtomicU64::new(now_ms()),
            stopped: Arc::new(AtomicBool::new(false)),
        };
        tokio::spawn(read_ahead(
            session.consumer.clone(),
            session.book.clone(),
            session.arrived.clone(),
            session.stopped.clone(),
        ));
        Ok(session)
    }

    pub(super) async fn consume_group(
        &self,
        topic: &str,
        group: &str,
        options: &ConsumeOptions,
    ) -> Result<Vec<Delivery>, BackendError> {
        self.ensure_topic(topic).await?;
        let session = self.session(topic, group)?;
        let deadline = tokio::time::Instant::now() + options.wait;
        loop {
            let arrived = session.arrived.notified();
            let (leased, next_due) = {
                let mut book = session.book.lock().expect("book lock");
                let leased = book.lease(
                    options.max,
                    options.ack_timeout,
                    options.max_deliveries,
                    now_ms(),
                );
                (leased, book.next_due_ms())
            };
            for exhausted in leased.exhausted {
                self.dead_letter_exhausted(&session, group, options, exhausted)
                    .await?;
            }
            if !leased.deliver.is_empty() {
                return Ok(deliveries(leased.deliver));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let wake = next_due
                .map(|at| now + Duration::from_millis(at.saturating_sub(now_ms())))
                .map_or(deadline, |at| at.min(deadline));
            let _ = tokio::time::timeout_at(wake, arrived).await;
        }
    }

    /// Moves a message `group` failed to ack `max_deliveries` times to the dead-letter topic,
    /// then acks it.
    async fn dead_letter_exhausted(
        &self,
        session: &Arc<Session>,
        group: &str,
        options: &ConsumeOptions,
        (partition, offset, delivery, mut record): (i32, i64, u32, Record),
    ) -> Result<(), BackendError> {
        if let Some(dead_letters) = &options.dead_letters {
            mark_exhausted(
                &mut record,
                &session.topic,
                group,
                (delivery, options.max_deliveries),
                &format!("offset {offset} of partition {partition}"),
            );
            record.provenance = Default::default();
            crate::backends::Backend::append(self, dead_letters, vec![record]).await?;
        } else {
            tracing::warn!(
                topic = %session.topic,
                group,
                partition,
                offset,
                "a message reached max_deliveries and the station keeps no dead letters: dropped for this group"
            );
        }
        let position = Position::in_partition(partition as u32, offset as u64);
        self.settle_group(session, &[position], None).await?;
        Ok(())
    }

    /// Acks (`nack_delay` none) or gives back `messages` for `group` on `topic`.
    pub(super) async fn settle_messages(
        &self,
        topic: &str,
        group: &str,
        messages: &[Position],
        nack_delay: Option<Duration>,
    ) -> Result<AckOutcome, BackendError> {
        let found = self
            .sessions
            .0
            .lock()
            .expect("sessions lock")
            .get(&(topic.to_owned(), group.to_owned()))
            .cloned();
        match found {
            Some(session) => self.settle_group(&session, messages, nack_delay).await,
            None => Ok(AckOutcome {
                acked: 0,
                unknown: messages.to_vec(),
            }),
        }
    }

    async fn settle_group(
        &self,
        session: &Arc<Session>,
        messages: &[Position],
        nack_delay: Option<Duration>,
    ) -> Result<AckOutcome, BackendError> {
        let (outcome, commits) =
            session
                .book
                .lock()
                .expect("book lock")
                .settle(messages, nack_delay, now_ms());
        if nack_delay.is_some() {
            session.arrived.notify_waiters();
        }
        if !commits.is_empty() {
            commit(session, &commits).await?;
        }
        Ok(outcome)
    }
}

/// How often a member tells the coordinator it lives: a tenth of the session timeout (at most
/// librdkafka's default 3 s). A member learns of a rebalance by its next heartbeat, and some
/// coordinators (tansu) count the time a member then waits in its join against its session, so
/// with heartbeats at half the timeout two members can push each other out of the group in turn.
fn heartbeat_interval(session_timeout: Duration) -> Duration {
    (session_timeout / 10).clamp(Duration::from_millis(100), Duration::from_secs(3))
}

/// Stores the group's offsets `commits` (partition, next offset) before answering.
async fn commit(session: &Arc<Session>, commits: &[(i32, i64)]) -> Result<(), BackendError> {
    tracing::debug!(topic = %session.topic, ?commits, "committing a consumer group's offsets");
    let mut offsets = TopicPartitionList::new();
    for &(partition, offset) in commits {
        offsets
            .add_partition_offset(&session.topic, partition, Offset::Offset(offset))
            .map_err(|e| unavailable(KIND, e))?;
    }
    let consumer = session.consumer.clone();
    tokio::task::spawn_blocking(move || consumer.commit(&offsets, CommitMode::Sync))
        .await
        .map_err(|e| unavailable(KIND, e))?
        .map_err(|e| unavailable(KIND, format!("cannot commit the group's offsets: {e}")))
}

fn deliveries(leased: Vec<(i32, i64, u32, Record)>) -> Vec<Delivery> {
    leased
        .into_iter()
        .map(|(partition, offset, delivery, record)| Delivery {
            position: Position::in_partition(partition as u32, offset as u64),
            delivery,
            record,
        })
        .collect()
}

/// Reads the session's partitions ahead into its book until the session is dropped, pausing
/// while the book holds [`HELD_PER_GROUP`] messages. Reading also serves the group's rebalances.
async fn read_ahead(
    consumer: Arc<StreamConsumer<SessionContext>>,
    book: Arc<Mutex<Book>>,
    arrived: Arc<Notify>,
    stopped: Arc<AtomicBool>,
) {
    while !stopped.load(Ordering::Acquire) {
        if book.lock().expect("book lock").held() >= HELD_PER_GROUP {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let message = match tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await
        {
            Err(_) => continue,
            Ok(Err(e)) => {
                tracing::debug!("reading a consumer group's partitions: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Ok(Ok(message)) => message,
        };
        let (partition, offset, record) =
            (message.partition(), message.offset(), record_of(&message));
        drop(message);
        book.lock()
            .expect("book lock")
            .add(partition, offset, record);
        arrived.notify_waiters();
    }
    // Leaving the group blocks until the coordinator answers: not on a runtime thread.
    tokio::task::spawn_blocking(move || drop(consumer));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::remote::record_from_remote;

    fn record(deliver_after_ms: Option<u64>) -> Record {
        let mut record = record_from_remote([], bytes::Bytes::new(), None, 0);
        record.deliver_after_ms = deliver_after_ms;
        record
    }

    fn offsets(leased: &[(i32, i64, u32, Record)]) -> Vec<(i32, i64, u32)> {
        leased.iter().map(|(p, o, d, _)| (*p, *o, *d)).collect()
    }

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn messages_are_leased_once_and_come_back_after_the_timeout() {
        let mut book = Book::default();
        for offset in 5..8 {
            book.add(0, offset, record(None));
        }
        book.add(1, 0, record(None));
        let first = book.lease(3, Duration::from_millis(1), 0, 1_000);
        assert_eq!(offsets(&first.deliver), [(0, 5, 1), (0, 6, 1), (0, 7, 1)]);
        let second = book.lease(10, LONG, 0, 1_000);
        assert_eq!(
            offsets(&second.deliver),
            [(1, 0, 1)],
            "partition 0's leases run"
        );
        let third = book.lease(10, LONG, 0, 1_001);
        assert_eq!(offsets(&third.deliver), [(0, 5, 2), (0, 6, 2), (0, 7, 2)]);
    }

    #[test]
    fn acks_commit_the_acked_prefix_and_unknown_offsets_are_named() {
        let mut book = Book::default();
        for offset in 5..8 {
            book.add(0, offset, record(None));
        }
        book.lease(10, LONG, 0, 0);
        let at = |o| Position::in_partition(0, o);
        let (outcome, commits) = book.settle(&[at(6), at(9), Position::offset(7)], None, 0);
        assert_eq!(outcome.acked, 2, "partition 0 is taken when none is named");
        assert_eq!(outcome.unknown, vec![at(9)]);
        assert!(commits.is_empty(), "offset 5 is still out");
        let (outcome, commits) = book.settle(&[at(5), at(4)], None, 0);
        assert_eq!(
            outcome.acked, 2,
            "below the committed offset counts as acked"
        );
        assert_eq!(commits, vec![(0, 8)]);
        assert_eq!(book.held(), 0);
    }

    #[test]
    fn a_nack_delays_the_next_delivery_and_exhaustion_follows_max_deliveries() {
        let mut book = Book::default();
        book.add(2, 0, record(None));
        book.lease(1, LONG, 2, 0);
        let (outcome, _) = book.settle(&[Position::in_partition(2, 0)], Some(LONG), 0);
        assert_eq!(outcome.acked, 1);
        assert!(book.lease(1, LONG, 2, 1_000).deliver.is_empty());
        assert_eq!(
            offsets(&book.lease(1, LONG, 2, 60_000).deliver),
            [(2, 0, 2)]
        );
        let last = book.lease(1, LONG, 2, 200_000);
        assert!(last.deliver.is_empty());
        assert_eq!(offsets(&last.exhausted), [(2, 0, 2)]);
    }

    #[test]
    fn a_held_message_waits_without_holding_back_the_next() {
        let mut book = Book::default();
        book.add(0, 0, record(Some(5_000)));
        book.add(0, 1, record(None));
        assert_eq!(
            offsets(&book.lease(10, LONG, 0, 1_000).deliver),
            [(0, 1, 1)]
        );
        assert_eq!(book.next_due_ms(), Some(5_000));
        assert_eq!(
            offsets(&book.lease(10, LONG, 0, 5_000).deliver),
            [(0, 0, 1)]
        );
    }
}
