//! Reading topics by partition and offset, outside any consumer group: dead letters for browsing
//! and replay, replay marks, and the watermarks that count a topic. One consumer with no group,
//! used by one caller at a time on a blocking thread (librdkafka's calls block), assigned to the
//! partition each read wants.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::clients::Clients;
use super::KIND;
use crate::backends::remote::record_from_remote;
use crate::backends::{unavailable, BackendError};
use crate::model::Record;

/// A stored Kafka message as Sluice reads it back.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub partition: i32,
    pub offset: i64,
    pub record: Record,
}

#[derive(Clone)]
pub(super) struct LogReader {
    consumer: Arc<Mutex<BaseConsumer>>,
    timeout: Duration,
}

impl LogReader {
    pub(super) fn new(clients: &Clients, timeout: Duration) -> Result<Self, BackendError> {
        let mut config = clients.config();
        // librdkafka's consumer wants a group even when it only assigns itself partitions; it
        // never joins this one, nor commits to it.
        config
            .set("group.id", "sluice-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        let consumer: BaseConsumer = config
            .create()
            .map_err(|e| unavailable(KIND, format!("cannot create the Kafka reader: {e}")))?;
        let consumer = Arc::new(Mutex::new(consumer));
        clients.track(&consumer);
        Ok(Self { consumer, timeout })
    }

    /// Runs `read` with the consumer on a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        read: impl FnOnce(&BaseConsumer, Duration) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        let consumer = self.consumer.clone();
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || {
            let consumer = consumer.lock().expect("reader lock");
            read(&consumer, timeout)
        })
        .await
        .map_err(|e| unavailable(KIND, e))?
    }

    /// How many partitions `topic` has; 0 when it does not exist.
    pub(super) async fn partitions(&self, topic: &str) -> Result<i32, BackendError> {
        let topic = topic.to_owned();
        self.with(move |consumer, timeout| partition_count(consumer, &topic, timeout))
            .await
    }

    /// The low and high watermark of every partition of `topic`, in partition order.
    pub(super) async fn watermarks(&self, topic: &str) -> Result<Vec<(i64, i64)>, BackendError> {
        let topic = topic.to_owned();
        self.with(move |consumer, timeout| {
            let partitions = partition_count(consumer, &topic, timeout)?;
            (0..partitions)
                .map(|p| {
                    consumer
                        .fetch_watermarks(&topic, p, timeout)
                        .map_err(|e| unavailable(KIND, format!("cannot count `{topic}`: {e}")))
                })
                .collect()
        })
        .await
    }

    /// Up to `max` messages of `topic`'s `partition` from `offset` on, stopping at the end of
    /// what is stored now (never waiting for more).
    pub(super) async fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max: usize,
    ) -> Result<Vec<Stored>, BackendError> {
        let topic = topic.to_owned();
        self.with(move |consumer, timeout| {
            read_range(consumer, &topic, partition, offset, max, timeout)
        })
        .await
    }
}

fn partition_count(
    consumer: &BaseConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<i32, BackendError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| unavailable(KIND, format!("cannot read the metadata of `{topic}`: {e}")))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len() as i32))
}

fn read_range(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    offset: i64,
    max: usize,
    timeout: Duration,
) -> Result<Vec<Stored>, BackendError> {
    let failed =
        |e: &dyn std::fmt::Display| unavailable(KIND, format!("cannot read `{topic}`: {e}"));
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, timeout)
        .map_err(|e| failed(&e))?;
    let start = offset.max(low);
    let mut stored = Vec::new();
    if start >= high || max == 0 {
        return Ok(stored);
    }
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(start))
        .map_err(|e| failed(&e))?;
    consumer.assign(&assignment).map_err(|e| failed(&e))?;
    let deadline = Instant::now() + timeout;
    while stored.len() < max && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.map_err(|e| failed(&e))?;
        if message.partition() != partition || message.topic() != topic {
            continue;
        }
        let at = message.offset();
        if at < start {
            continue;
        }
        stored.push(Stored {
            partition,
            offset: at,
            record: record_of(&message),
        });
        if at + 1 >= high {
            break;
        }
    }
    let _ = consumer.unassign();
    Ok(stored)
}

/// The record a Kafka message holds.
pub(super) fn record_of(message: &impl Message) -> Record {
    let headers: Vec<(&str, &str)> = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .filter_map(|h| Some((h.key, std::str::from_utf8(h.value?).ok()?)))
                .collect()
        })
        .unwrap_or_default();
    let stored_at_ms = message.timestamp().to_millis().unwrap_or(0).max(0) as u64;
    record_from_remote(
        headers,
        bytes::Bytes::copy_from_slice(message.payload().unwrap_or_default()),
        message.key().map(bytes::Bytes::copy_from_slice),
        stored_at_ms,
    )
}
