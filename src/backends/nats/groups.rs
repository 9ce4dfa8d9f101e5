//! Consumer groups on JetStream. Each Sluice group of a station is a durable pull consumer of the
//! station's stream, named after the group (`.` written `~`), filtered to the station's subject,
//! with explicit acks and `ack_wait` = the station's `ack_timeout`. JetStream holds the leases, the
//! delivery counts and what was acknowledged, replicated with the stream, so any gateway serves
//! any consumer of any group and a gateway that dies loses nothing but its open requests.
//!
//! Acks and nacks name messages by offset (the stream sequence), not by the reply subject they
//! were delivered with, so the gateway builds the subject in JetStream's ack form,
//! `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<timestamp>.<pending>`:
//! an ack needs only the stream sequence (the server takes the rest from its pending record, and
//! ignores a sequence it holds no lease for); a nack also needs a consumer sequence inside the
//! consumer's pending range, which the consumer's info gives, and the delivery count, which the
//! gateway that delivered the message remembers (another writes 1, which only a delayed nack
//! stores). An ack of messages this gateway delivered asks the consumer nothing; one naming others
//! asks for its state, to tell which were never delivered.
//!
//! Two things JetStream 2.9 does not do, the gateway does on each delivery. `max_deliveries`: a
//! message delivered once more than that is published to the dead-letter subject — with a
//! `Nats-Msg-Id` naming the message and the group, so a second gateway racing for it publishes a
//! duplicate JetStream drops — and then terminated. `Sluice-Deliver-After`: a message fetched
//! before its time is handed back with a NAK delayed until then, which holds that message alone
//! (the ones after it are delivered meanwhile); the hold counts as a delivery in JetStream, so
//! the count a consumer sees leaves it out.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::AckKind;
use bytes::Bytes;
use futures_util::StreamExt;

use super::{NatsBackend, KIND};
use crate::backends::queues::{mark_exhausted, AckOutcome, ConsumeOptions, Delivery};
use crate::backends::remote::record_from_remote;
use crate::backends::{unavailable, BackendError};
use crate::model::time::now_ms;
use crate::model::{Position, Record};

/// Messages one group may hold leased at once across all its consumers (JetStream's
/// `max_ack_pending`).
const MAX_ACK_PENDING: i64 = 100_000;
/// How long a pull for what is there now may wait before the server ends it.
const NOW_EXPIRES: Duration = Duration::from_millis(100);
/// How long past a pull request's expiry the gateway waits for the server to end it.
const EXPIRY_GRACE: Duration = Duration::from_millis(250);
/// Delivery counts of delivered messages this gateway remembers, for nacks.
const REMEMBERED_COUNTS: usize = 100_000;

/// One group's durable consumer.
pub(super) struct GroupConsumer {
    consumer: PullConsumer,
    stream: String,
    name: String,
    ack_wait: Duration,
}

/// The groups this gateway has used, and the delivery counts of what it delivered.
#[derive(Default)]
pub(super) struct Groups {
    consumers: Mutex<HashMap<(String, String), Arc<GroupConsumer>>>,
    counts: Mutex<DeliveryCounts>,
}

/// A delivered message: (stream, consumer, stream sequence).
type Delivered = (String, String, u64);

/// JetStream's delivery counts by delivered message, the oldest forgotten first.
#[derive(Default)]
struct DeliveryCounts {
    counts: HashMap<Delivered, u64>,
    order: VecDeque<Delivered>,
}

impl DeliveryCounts {
    fn remember(&mut self, key: Delivered, count: u64) {
        if self.counts.insert(key.clone(), count).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > REMEMBERED_COUNTS {
            if let Some(oldest) = self.order.pop_front() {
                self.counts.remove(&oldest);
            }
        }
    }

    fn get(&self, key: &Delivered) -> Option<u64> {
        self.counts.get(key).copied()
    }
}

/// The durable consumer name of Sluice group `group`: group names may hold `.`, consumer names
/// may not, and `~` is in no group name.
pub(super) fn consumer_name(group: &str) -> String {
    group.replace('.', "~")
}

/// The parts of a JetStream ack subject a delivery is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AckInfo {
    delivered: u64,
    stream_seq: u64,
    stored_at_ms: u64,
}

/// Reads `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`, or the form with
/// a domain and account hash before the stream (and a token after the pending count).
fn ack_info(reply: &str) -> Option<AckInfo> {
    let tokens: Vec<&str> = reply.split('.').collect();
    let at = match tokens.len() {
        9 => 4,
        n if n >= 11 => 6,
        _ => return None,
    };
    let number = |i: usize| tokens.get(at + i)?.parse::<u64>().ok();
    Some(AckInfo {
        delivered: number(0)?,
        stream_seq: number(1)?,
        stored_at_ms: number(3)? / 1_000_000,
    })
}

/// What to do with one message fetched for a group.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    /// Hand it to the consumer as this delivery.
    Deliver(u32),
    /// Not due before this time (ms): give it back until then.
    Hold(u64),
    /// Delivered `max_deliveries` times already: dead-letter it.
    Exhausted(u32),
}

/// Decides a fetched message's fate: `delivered` is JetStream's count, which includes the hold of
/// a message produced to be delivered later.
fn fate(delivered: u64, record: &Record, stored_at_ms: u64, max_deliveries: u32, now: u64) -> Fate {
    let held_first = record.deliver_after_ms.filter(|&at| at > stored_at_ms);
    if let Some(at) = held_first.filter(|&at| at > now) {
        return Fate::Hold(at);
    }
    let holds = u64::from(held_first.is_some() && delivered > 1);
    let delivery = u32::try_from(delivered - holds).unwrap_or(u32::MAX);
    if max_deliveries > 0 && delivery > max_deliveries {
        Fate::Exhausted(delivery - 1)
    } else {
        Fate::Deliver(delivery)
    }
}

impl NatsBackend {
    /// Whether `group` has a durable consumer on `subject`'s stream, or the stream has fewer
    /// than `max` consumers (of any kind: the engine's count is the one every gateway sees).
    pub(super) async fn admits_group(
        &self,
        subject: &str,
        group: &str,
        max: usize,
    ) -> Result<bool, BackendError> {
        let key = (subject.to_owned(), group.to_owned());
        if self
            .groups
            .consumers
            .lock()
            .expect("groups lock")
            .contains_key(&key)
        {
            return Ok(true);
        }
        let stream_name = self.stream_of(subject).await?;
        let stream = self
            .bounded(self.jetstream.get_stream(&stream_name))
            .await?;
        let existing: Result<PullConsumer, _> = self
            .bounded(stream.get_consumer(&consumer_name(group)))
            .await;
        if existing.is_ok() {
            return Ok(true);
        }
        Ok(stream.cached_info().state.consumer_count < max)
    }

    /// The durable consumer of `group` on `subject`: made (or its `ack_wait` brought up to date)
    /// when `ack_wait` is given, only looked up otherwise — `None` when it does not exist.
    async fn group_consumer(
        &self,
        subject: &str,
        group: &str,
        ack_wait: Option<Duration>,
    ) -> Result<Option<Arc<GroupConsumer>>, BackendError> {
        let key = (subject.to_owned(), group.to_owned());
        let cached = self
            .groups
            .consumers
            .lock()
            .expect("groups lock")
            .get(&key)
            .cloned();
        if let Some(found) = cached {
            if ack_wait.is_none_or(|wait| wait == found.ack_wait) {
                return Ok(Some(found));
            }
        }
        let stream_name = self.stream_of(subject).await?;
        let stream = self
            .bounded(self.jetstream.get_stream_no_info(&stream_name))
            .await?;
        let name = consumer_name(group);
        let consumer: PullConsumer = match ack_wait {
            Some(ack_wait) => {
                let config = pull::Config {
                    durable_name: Some(name.clone()),
                    description: Some(format!("Sluice consumer group `{group}` of `{subject}`")),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait,
                    max_deliver: -1,
                    max_ack_pending: MAX_ACK_PENDING,
                    filter_subject: subject.to_owned(),
                    ..Default::default()
                };
                self.bounded(stream.create_consumer(config)).await?
            }
            None => match self.bounded(stream.get_consumer(&name)).await {
                Ok(consumer) => consumer,
                Err(_) => return Ok(None),
            },
        };
        let found = Arc::new(GroupConsumer {
            ack_wait: consumer.cached_info().config.ack_wait,
            consumer,
            stream: stream_name,
            name,
        });
        self.groups
            .consumers
            .lock()
            .expect("groups lock")
            .insert(key, found.clone());
        Ok(Some(found))
    }

    /// Delivers up to `options.max` messages of `subject` to a consumer of `group`, waiting up to
    /// `options.wait` for the first.
    pub(super) async fn consume_group(
        &self,
        subject: &str,
        group: &str,
        options: &ConsumeOptions,
    ) -> Result<Vec<Delivery>, BackendError> {
        let Some(group_consumer) = self
            .group_consumer(subject, group, Some(options.ack_timeout))
            .await?
        else {
            return Ok(Vec::new());
        };
        let deadline = tokio::time::Instant::now() + options.wait;
        loop {
            let fetched = match self.pull(&group_consumer, options.max, deadline).await {
                Ok(fetched) => fetched,
                Err(e) => {
                    // The consumer may be gone (deleted, or lost with its stream): look it up
                    // again, or make it, next time.
                    self.forget_group(subject, group);
                    return Err(e);
                }
            };
            let fetched_any = !fetched.is_empty();
            let delivered = self
                .judge_deliveries(subject, group, &group_consumer, options, fetched)
                .await?;
            if !delivered.is_empty() || tokio::time::Instant::now() >= deadline || !fetched_any {
                return Ok(delivered);
            }
        }
    }

    /// What is there now, up to `max`; if nothing, a wait until `deadline` for one message, and
    /// what came with it.
    async fn pull(
        &self,
        group: &GroupConsumer,
        max: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<async_nats::jetstream::Message>, BackendError> {
        let mut fetched = self.fetch(group, max, None).await?;
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if fetched.is_empty() && remaining >= Duration::from_millis(1) {
            fetched = self.fetch(group, 1, Some(remaining)).await?;
            if !fetched.is_empty() && max > 1 {
                fetched.extend(self.fetch(group, max - 1, None).await?);
            }
        }
        Ok(fetched)
    }

    fn forget_group(&self, subject: &str, group: &str) {
        self.groups
            .consumers
            .lock()
            .expect("groups lock")
            .remove(&(subject.to_owned(), group.to_owned()));
    }

    /// One pull request: up to `max` messages, answered at once (`wait` none: what is there, within
    /// [`NOW_EXPIRES`]) or as soon as `max` have come or `wait` has passed.
    async fn fetch(
        &self,
        group: &GroupConsumer,
        max: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<async_nats::jetstream::Message>, BackendError> {
        let expires = wait.unwrap_or(NOW_EXPIRES);
        let request = async {
            match wait {
                // "What is there now" still expires: a request that finds messages pending which
                // another gateway's request then takes would otherwise wait for the next one.
                None => {
                    group
                        .consumer
                        .fetch()
                        .max_messages(max)
                        .expires(expires)
                        .messages()
                        .await
                }
                Some(_) => {
                    group
                        .consumer
                        .batch()
                        .max_messages(max)
                        .expires(expires)
                        .messages()
                        .await
                }
            }
        };
        let mut batch = self
            .bounded(request)
            .await
            .map_err(|e| unavailable(KIND, format!("cannot pull from `{}`: {e}", group.name)))?;
        // The server ends the request by `expires`; should its end not come (a request it dropped),
        // the gateway stops waiting a little after, and keeps what came.
        let deadline = tokio::time::Instant::now() + expires + EXPIRY_GRACE;
        let mut messages = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, batch.next()).await {
                Ok(Some(Ok(message))) => messages.push(message),
                Ok(Some(Err(e))) if messages.is_empty() => {
                    return Err(unavailable(KIND, format!("pulling messages failed: {e}")))
                }
                Ok(Some(Err(_))) | Ok(None) => break,
                Err(_) => {
                    tracing::debug!(consumer = %group.name, "a pull request was not ended by the server in time");
                    break;
                }
            }
        }
        Ok(messages)
    }

    /// Sorts fetched messages into deliveries, holds and exhausted ones, and settles the last two
    /// with JetStream.
    async fn judge_deliveries(
        &self,
        subject: &str,
        group: &str,
        group_consumer: &GroupConsumer,
        options: &ConsumeOptions,
        fetched: Vec<async_nats::jetstream::Message>,
    ) -> Result<Vec<Delivery>, BackendError> {
        let now = now_ms();
        let mut deliveries = Vec::with_capacity(fetched.len());
        for message in fetched {
            let Some(reply) = message.reply.as_ref().map(|r| r.to_string()) else {
                continue;
            };
            let Some(info) = ack_info(&reply) else {
                continue;
            };
            let record = record_of(&message, info.stored_at_ms);
            match fate(
                info.delivered,
                &record,
                info.stored_at_ms,
                options.max_deliveries,
                now,
            ) {
                Fate::Deliver(delivery) => {
                    let key = (
                        group_consumer.stream.clone(),
                        group_consumer.name.clone(),
                        info.stream_seq,
                    );
                    let mut counts = self.groups.counts.lock().expect("counts lock");
                    counts.remember(key, info.delivered);
                    drop(counts);
                    deliveries.push(Delivery {
                        position: Position::offset(info.stream_seq),
                        delivery,
                        record,
                    });
                }
                Fate::Hold(at) => {
                    let delay = Duration::from_millis(at.saturating_sub(now).max(1));
                    self.acknowledge(&reply, AckKind::Nak(Some(delay))).await?;
                }
                Fate::Exhausted(deliveries_so_far) => {
                    let exhausted = Exhausted {
                        subject,
                        group,
                        stream: &group_consumer.stream,
                        stream_seq: info.stream_seq,
                        deliveries: deliveries_so_far,
                        max_deliveries: options.max_deliveries,
                    };
                    self.dead_letter_exhausted(exhausted, record, options)
                        .await?;
                    self.acknowledge(&reply, AckKind::Term).await?;
                }
            }
        }
        Ok(deliveries)
    }

    /// Publishes a message `group` failed to ack `max_deliveries` times to the dead-letter
    /// subject, once however many gateways try.
    async fn dead_letter_exhausted(
        &self,
        exhausted: Exhausted<'_>,
        mut record: Record,
        options: &ConsumeOptions,
    ) -> Result<(), BackendError> {
        let Some(dead_letters) = &options.dead_letters else {
            tracing::warn!(
                subject = exhausted.subject,
                group = exhausted.group,
                offset = exhausted.stream_seq,
                "a message reached max_deliveries and the station keeps no dead letters: dropped for this group"
            );
            return Ok(());
        };
        mark_exhausted(
            &mut record,
            exhausted.subject,
            exhausted.group,
            (exhausted.deliveries, exhausted.max_deliveries),
            &format!("offset {}", exhausted.stream_seq),
        );
        record.provenance = Default::default();
        record.provenance.idempotency_key = Some(format!(
            "sluice-exhausted:{}:{}:{}",
            exhausted.stream, exhausted.stream_seq, exhausted.group
        ));
        self.publish_and_wait(dead_letters, vec![record]).await?;
        Ok(())
    }

    /// Sends `kind` for the message delivered with ack subject `reply`, and waits until JetStream
    /// has taken it.
    async fn acknowledge(&self, reply: &str, kind: AckKind) -> Result<(), BackendError> {
        let body: Bytes = kind.into();
        self.bounded(self.client.request(reply.to_owned(), body))
            .await
            .map(drop)
    }

    /// Acknowledges (`kind` none) or naks `messages` for `group`.
    pub(super) async fn settle_group(
        &self,
        subject: &str,
        group: &str,
        messages: &[Position],
        kind: AckKind,
    ) -> Result<AckOutcome, BackendError> {
        let Some(group_consumer) = self.group_consumer(subject, group, None).await? else {
            return Ok(AckOutcome {
                acked: 0,
                unknown: messages.to_vec(),
            });
        };
        let counts = self.delivery_counts(&group_consumer, messages);
        // The consumer's state is asked for only when it is needed: a nack's consumer sequence,
        // or a message this gateway did not deliver (it may never have been delivered at all).
        let info = if matches!(kind, AckKind::Ack) && counts.iter().all(Option::is_some) {
            None
        } else {
            Some(self.bounded(group_consumer.consumer.get_info()).await?)
        };
        let mut outcome = AckOutcome::default();
        let mut sends = Vec::new();
        for (&message, delivered) in messages.iter().zip(counts) {
            let seq = message.offset;
            if let Some(info) = &info {
                if message.partition.is_some() || seq == 0 || seq > info.delivered.stream_sequence {
                    outcome.unknown.push(message);
                    continue;
                }
                if seq <= info.ack_floor.stream_sequence {
                    outcome.acked += 1;
                    continue;
                }
            }
            outcome.acked += 1;
            let consumer_seq = match (kind, &info) {
                (AckKind::Nak(_), Some(info)) => info.delivered.consumer_sequence,
                _ => 0,
            };
            let reply = format!(
                "$JS.ACK.{}.{}.{}.{seq}.{consumer_seq}.0.0",
                group_consumer.stream,
                group_consumer.name,
                delivered.unwrap_or(1)
            );
            sends.push(async move { self.acknowledge(&reply, kind).await });
        }
        for sent in futures_util::future::join_all(sends).await {
            sent?;
        }
        Ok(outcome)
    }

    /// JetStream's delivery count of each of `messages`, where this gateway delivered it.
    fn delivery_counts(&self, group: &GroupConsumer, messages: &[Position]) -> Vec<Option<u64>> {
        let counts = self.groups.counts.lock().expect("counts lock");
        messages
            .iter()
            .map(|m| {
                let key = (group.stream.clone(), group.name.clone(), m.offset);
                m.partition.is_none().then(|| counts.get(&key)).flatten()
            })
            .collect()
    }
}

/// A message that reached `max_deliveries`, and where it was.
struct Exhausted<'a> {
    subject: &'a str,
    group: &'a str,
    stream: &'a str,
    stream_seq: u64,
    deliveries: u32,
    max_deliveries: u32,
}

/// The record a JetStream message holds.
fn record_of(message: &async_nats::jetstream::Message, stored_at_ms: u64) -> Record {
    let headers = message.headers.iter().flat_map(|headers| {
        headers.iter().flat_map(|(name, values)| {
            values
                .iter()
                .map(move |value| (name.as_ref(), value.as_str()))
        })
    });
    record_from_remote(headers, message.payload.clone(), None, stored_at_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::remote;

    fn sample(deliver_after_ms: Option<u64>) -> Record {
        let mut record = record_from_remote([(remote::SCHEMA, "orders")], Bytes::new(), None, 0);
        record.deliver_after_ms = deliver_after_ms;
        record
    }

    #[test]
    fn ack_subjects_of_both_forms_are_read() {
        let v1 = "$JS.ACK.SLUICE_ORDERS.workers.3.42.17.1796598421488328039.5";
        assert_eq!(
            ack_info(v1),
            Some(AckInfo {
                delivered: 3,
                stream_seq: 42,
                stored_at_ms: 1_796_598_421_488
            })
        );
        let v2 = "$JS.ACK.hub.ACCHASH.SLUICE_ORDERS.workers.3.42.17.1796598421488328039.5.tok";
        assert_eq!(ack_info(v2).map(|i| i.stream_seq), Some(42));
        assert_eq!(ack_info("$JS.ACK.S.g.1.2"), None);
        assert_eq!(ack_info("_INBOX.abc"), None);
    }

    #[test]
    fn group_names_become_consumer_names() {
        assert_eq!(consumer_name("billing.eu-1"), "billing~eu-1");
        assert_eq!(consumer_name("workers"), "workers");
    }

    #[test]
    fn a_held_message_is_given_back_until_due_and_its_hold_is_not_counted() {
        let due = 10_000;
        let record = sample(Some(due));
        assert_eq!(fate(1, &record, 1_000, 3, 5_000), Fate::Hold(due));
        assert_eq!(fate(2, &record, 1_000, 3, due), Fate::Deliver(1));
        assert_eq!(fate(4, &record, 1_000, 3, due), Fate::Deliver(3));
        assert_eq!(fate(5, &record, 1_000, 3, due), Fate::Exhausted(3));
    }

    #[test]
    fn a_message_past_max_deliveries_is_exhausted() {
        let record = sample(None);
        assert_eq!(fate(1, &record, 0, 2, 0), Fate::Deliver(1));
        assert_eq!(fate(2, &record, 0, 2, 0), Fate::Deliver(2));
        assert_eq!(fate(3, &record, 0, 2, 0), Fate::Exhausted(2));
        assert_eq!(fate(30, &record, 0, 0, 0), Fate::Deliver(30), "0: never");
        let past = sample(Some(500));
        assert_eq!(
            fate(1, &past, 1_000, 2, 2_000),
            Fate::Deliver(1),
            "due when stored"
        );
    }
}
