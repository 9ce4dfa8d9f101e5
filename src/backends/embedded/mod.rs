//! The embedded backend: a durable append-only log per station (and per dead-letter queue) on the
//! fjall storage engine, with group commit, consumer-group offsets, retention and long-poll reads.
//! No other process is needed.
//!
//! Layout: one fjall keyspace per log (`log:<name>`, keys are big-endian offsets, values encoded
//! [`Record`]s) and one `meta` keyspace for log sizes, consumer-group positions and dead-letter
//! replay marks. Every write goes through the single writer thread (`writer`), so a write and the
//! metadata it changes commit together.

mod groups;
mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use fjall::config::FilterPolicy;
use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use tokio::sync::{mpsc, oneshot, watch};

use super::{Acknowledgement, Backend, BackendError, Position, Record};
use crate::config::{FsyncPolicy, StoreMemory};
use crate::registry::stations::Retention;
pub use groups::{AckOutcome, Delivery};
use groups::{LeaseRules, MetaChange};

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

/// Prefix of the keyspaces that hold logs.
const LOG_KEYSPACE_PREFIX: &str = "log:";
/// Bound on write commands waiting for the writer thread (back pressure on producers).
const WRITE_QUEUE: usize = 16 * 1024;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the embedded store at {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("embedded store write failed: {0}")]
    Write(String),
    #[error("embedded store read failed: {0}")]
    Read(String),
    #[error("the embedded store's writer has stopped")]
    WriterStopped,
}

impl From<StoreError> for BackendError {
    fn from(e: StoreError) -> Self {
        BackendError::Unavailable {
            backend: "embedded",
            reason: e.to_string(),
        }
    }
}

/// One log: its keyspace and where it stands. Only the writer thread changes the counters.
pub(crate) struct Log {
    name: String,
    keyspace: Keyspace,
    /// Offset the next appended record gets.
    next: AtomicU64,
    /// Lowest offset still stored (retention moves it).
    first: AtomicU64,
    /// Bytes of stored records.
    bytes: AtomicU64,
    /// Publishes `next` to long-polling consumers.
    head: watch::Sender<u64>,
}

/// Counters of one log, for listings.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct LogStats {
    /// Records currently stored.
    pub messages: u64,
    pub first_offset: u64,
    pub next_offset: u64,
    pub bytes: u64,
}

/// Handle to the embedded store; cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    meta: Keyspace,
    logs: RwLock<HashMap<String, Arc<Log>>>,
    writer: mpsc::Sender<writer::Command>,
    writer_alive: Arc<AtomicBool>,
    groups: groups::Groups,
    /// Each log's in-memory write buffer before it is flushed.
    memtable_bytes: u64,
}

fn log_bytes_key(log: &str) -> Vec<u8> {
    format!("bytes/{log}").into_bytes()
}

fn replay_key(dlq_log: &str, id: u64) -> Vec<u8> {
    format!("replayed/{dlq_log}/{id}").into_bytes()
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir` with the default memory bounds and starts its writer
    /// thread.
    pub fn open(dir: &Path, fsync: FsyncPolicy) -> Result<Self, StoreError> {
        Self::open_with_memory(dir, fsync, StoreMemory::default())
    }

    /// Opens (or creates) the store in `dir`, holding at most `memory` for unflushed writes and
    /// the read cache, and starts its writer thread.
    pub fn open_with_memory(
        dir: &Path,
        fsync: FsyncPolicy,
        memory: StoreMemory,
    ) -> Result<Self, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            path: dir.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_error(e.to_string()))?;
        let db = Database::builder(dir)
            .cache_size(memory.cache_bytes)
            .open()
            .map_err(|e| open_error(e.to_string()))?;
        let meta = db
            .keyspace("meta", KeyspaceCreateOptions::default)
            .map_err(|e| open_error(e.to_string()))?;
        let memtable_bytes = memory.memtable_bytes;
        let mut logs = HashMap::new();
        for name in db.list_keyspace_names() {
            if let Some(log_name) = name.strip_prefix(LOG_KEYSPACE_PREFIX) {
                let log = open_log(&db, &meta, log_name, memtable_bytes).map_err(open_error)?;
                logs.insert(log_name.to_owned(), Arc::new(log));
            }
        }
        let (writer_tx, writer_rx) = mpsc::channel(WRITE_QUEUE);
        let writer_alive = Arc::new(AtomicBool::new(true));
        let handle = writer::spawn(db.clone(), meta.clone(), fsync, writer_rx)
            .map_err(|e| open_error(e.to_string()))?;
        let alive = writer_alive.clone();
        std::thread::spawn(move || {
            let _ = handle.join();
            alive.store(false, Ordering::Release);
        });
        Ok(Self {
            inner: Arc::new(Inner {
                groups: groups::Groups::new(meta.clone()),
                db,
                meta,
                logs: RwLock::new(logs),
                writer: writer_tx,
                writer_alive,
                memtable_bytes,
            }),
        })
    }

    /// The log called `name`, created on first use.
    fn log(&self, name: &str) -> Result<Arc<Log>, StoreError> {
        if let Some(log) = self.inner.logs.read().expect("logs lock").get(name) {
            return Ok(log.clone());
        }
        let mut logs = self.inner.logs.write().expect("logs lock");
        if let Some(log) = logs.get(name) {
            return Ok(log.clone());
        }
        let log = Arc::new(
            open_log(
                &self.inner.db,
                &self.inner.meta,
                name,
                self.inner.memtable_bytes,
            )
            .map_err(StoreError::Write)?,
        );
        logs.insert(name.to_owned(), log.clone());
        Ok(log)
    }

    /// The log called `name` if anything was ever written to it.
    fn existing_log(&self, name: &str) -> Option<Arc<Log>> {
        self.inner
            .logs
            .read()
            .expect("logs lock")
            .get(name)
            .cloned()
    }

    async fn send<T>(
        &self,
        command: writer::Command,
        reply: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.inner
            .writer
            .send(command)
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        reply.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Appends records to `log` durably; returns the first offset assigned.
    pub async fn append_encoded(
        &self,
        log: &str,
        records: Vec<Vec<u8>>,
    ) -> Result<u64, StoreError> {
        let log = self.log(log)?;
        let (reply, answer) = oneshot::channel();
        self.send(
            writer::Command::Append {
                log,
                records,
                reply,
            },
            answer,
        )
        .await
    }

    /// Durably sets a metadata key.
    async fn put_meta(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StoreError> {
        self.write_meta(vec![(key, Some(value))]).await
    }

    /// Durably applies metadata changes, all in one commit.
    async fn write_meta(&self, changes: Vec<MetaChange>) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.send(writer::Command::Meta { changes, reply }, answer)
            .await
    }

    /// Commits what is pending, fsyncs and stops the writer. Later writes fail with 503; the
    /// database is closed (and its lock released) once the last handle is dropped.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self
            .inner
            .writer
            .send(writer::Command::Shutdown { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
    }

    /// Reads up to `max` records of `log` starting at `from` (or the first retained one).
    pub fn read(
        &self,
        log: &str,
        from: u64,
        max: usize,
    ) -> Result<Vec<(u64, Record)>, BackendError> {
        let Some(log) = self.existing_log(log) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(max.min(1024));
        for guard in log.keyspace.range(from.to_be_bytes()..).take(max) {
            let (key, value) = guard.into_inner().map_err(|e| BackendError::Unavailable {
                backend: "embedded",
                reason: e.to_string(),
            })?;
            let offset = decode_offset(&key);
            let record = Record::decode(&value).map_err(|e| BackendError::Corrupt {
                log: log.name.clone(),
                offset,
                reason: e.to_string(),
            })?;
            out.push((offset, record));
        }
        Ok(out)
    }

    /// Reads the record at `offset` of `log`.
    pub fn read_one(&self, log: &str, offset: u64) -> Result<Option<Record>, BackendError> {
        Ok(self
            .read(log, offset, 1)?
            .into_iter()
            .find(|(at, _)| *at == offset)
            .map(|(_, record)| record))
    }

    pub fn stats(&self, log: &str) -> LogStats {
        self.existing_log(log)
            .map_or_else(LogStats::default, |log| {
                let first = log.first.load(Ordering::Acquire);
                let next = log.next.load(Ordering::Acquire);
                LogStats {
                    messages: next.saturating_sub(first),
                    first_offset: first,
                    next_offset: next,
                    bytes: log.bytes.load(Ordering::Acquire),
                }
            })
    }

    /// Delivers up to `options.max` messages of `log` to a consumer of `group`, waiting up to
    /// `options.wait` for some to arrive. Delivered messages are leased to the caller for
    /// `ack_timeout`; unacked ones are delivered again after it, until `max_deliveries`, after which
    /// they are dead-lettered (to `options.dead_letters`, if set) and settled for the group.
    pub async fn consume(
        &self,
        log_name: &str,
        group: &str,
        options: &ConsumeOptions,
    ) -> Result<Vec<Delivery>, BackendError> {
        let deadline = tokio::time::Instant::now() + options.wait;
        let (log, state) = self.group_state(log_name, group)?;
        let mut head = log.head.subscribe();
        let rules = LeaseRules {
            max: options.max,
            ack_timeout: options.ack_timeout,
            max_deliveries: options.max_deliveries,
        };
        loop {
            head.borrow_and_update();
            let (leased, next_expiry) = {
                let mut state = state.lock().await;
                let first = log.first.load(Ordering::Acquire);
                let next = log.next.load(Ordering::Acquire);
                let mut leased = state.lease(first, next, rules, |offset| {
                    self.deliver_after(&log, offset)
                });
                // Persisted under the group's lock, so concurrent consumers' writes stay in order.
                self.write_meta(std::mem::take(&mut leased.changes)).await?;
                (leased, state.next_expiry_ms())
            };
            if !leased.exhausted.is_empty() {
                self.dead_letter_exhausted(&log, group, options, &leased.exhausted)
                    .await?;
            }
            if !leased.deliver.is_empty() {
                return self.deliveries(&log.name, leased.deliver);
            }
            if leased.more || !leased.exhausted.is_empty() {
                continue;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let wake = next_expiry
                .map(|at_ms| now + Duration::from_millis(at_ms.saturating_sub(super::now_ms())))
                .map_or(deadline, |at| at.min(deadline));
            let _ = tokio::time::timeout_at(wake, head.changed()).await;
        }
    }

    /// When the record at `offset` may first be delivered, if it was produced with a delay.
    fn deliver_after(&self, log: &Log, offset: u64) -> Option<u64> {
        let bytes = log.keyspace.get(offset.to_be_bytes()).ok()??;
        Record::decode_deliver_after(&bytes).ok()?
    }

    /// Moves messages `group` failed to ack `max_deliveries` times to the dead-letter log, then
    /// settles them for the group so they are never delivered to it again.
    async fn dead_letter_exhausted(
        &self,
        log: &Log,
        group: &str,
        options: &ConsumeOptions,
        exhausted: &[(u64, u32)],
    ) -> Result<(), BackendError> {
        if let Some(dlq) = &options.dead_letters {
            let mut records = Vec::with_capacity(exhausted.len());
            for &(offset, delivery) in exhausted {
                let Some(mut record) = self.read_one(&log.name, offset)? else {
                    continue;
                };
                let reason = format!(
                    "delivered {delivery} times to consumer group `{group}` without an ack \
                     (max_deliveries = {}); it was offset {offset} of `{}`",
                    options.max_deliveries, log.name
                );
                record.dead_letter = Some(super::DeadLetter {
                    station: log.name.clone(),
                    error: "max_deliveries".to_owned(),
                    schema: None,
                    schema_version: record.schema_version,
                    violations: vec![crate::formats::Violation::whole_message(reason)],
                    content_type: None,
                });
                record.deliver_after_ms = None;
                records.push(record.encode());
            }
            if !records.is_empty() {
                self.append_encoded(dlq, records).await?;
            }
        } else {
            tracing::warn!(
                log = %log.name,
                group,
                count = exhausted.len(),
                "messages reached max_deliveries and the station keeps no dead letters: dropped for this group"
            );
        }
        let offsets: Vec<u64> = exhausted.iter().map(|&(offset, _)| offset).collect();
        self.ack(&log.name, group, &offsets).await?;
        Ok(())
    }

    fn deliveries(
        &self,
        log: &str,
        leased: Vec<(u64, u32)>,
    ) -> Result<Vec<Delivery>, BackendError> {
        let mut out = Vec::with_capacity(leased.len());
        for (offset, delivery) in leased {
            if let Some(record) = self.read_one(log, offset)? {
                out.push(Delivery {
                    offset,
                    delivery,
                    record,
                });
            }
        }
        Ok(out)
    }

    /// The log and `group`'s state on it, loading both on first use.
    fn group_state(
        &self,
        log: &str,
        group: &str,
    ) -> Result<(Arc<Log>, groups::SharedGroupState), StoreError> {
        let log = self.log(log)?;
        let state = self
            .inner
            .groups
            .get(&log.name, group, log.first.load(Ordering::Acquire))?;
        Ok((log, state))
    }

    /// Acknowledges `offsets` for `group`: they are never delivered to it again, durably.
    pub async fn ack(
        &self,
        log: &str,
        group: &str,
        offsets: &[u64],
    ) -> Result<AckOutcome, BackendError> {
        let (log, state) = self.group_state(log, group)?;
        let mut state = state.lock().await;
        let (outcome, changes) = state.ack(offsets, log.first.load(Ordering::Acquire));
        self.write_meta(changes).await?;
        Ok(outcome)
    }

    /// Gives leased `offsets` back to `group`, to be delivered again after `delay`, durably.
    pub async fn nack(
        &self,
        log: &str,
        group: &str,
        offsets: &[u64],
        delay: Duration,
    ) -> Result<AckOutcome, BackendError> {
        let (_, state) = self.group_state(log, group)?;
        let mut state = state.lock().await;
        let (outcome, changes) = state.nack(offsets, delay);
        self.write_meta(changes).await?;
        Ok(outcome)
    }

    /// Where dead letter `id` of `dlq_log` was replayed to, if it was.
    pub fn replayed_to(&self, dlq_log: &str, id: u64) -> Result<Option<u64>, BackendError> {
        let value = self
            .inner
            .meta
            .get(replay_key(dlq_log, id))
            .map_err(|e| StoreError::Read(e.to_string()))?;
        Ok(value.and_then(|v| <[u8; 8]>::try_from(&v[..]).ok().map(u64::from_be_bytes)))
    }

    /// Durably records that dead letter `id` was replayed to `offset`.
    pub async fn mark_replayed(
        &self,
        dlq_log: &str,
        id: u64,
        offset: u64,
    ) -> Result<(), BackendError> {
        self.put_meta(replay_key(dlq_log, id), offset.to_be_bytes().to_vec())
            .await
            .map_err(Into::into)
    }

    /// Deletes the oldest records of `log` that `retention` no longer allows; returns how many.
    pub async fn apply_retention(
        &self,
        log_name: &str,
        retention: &Retention,
    ) -> Result<u64, BackendError> {
        let Some(log) = self.existing_log(log_name) else {
            return Ok(0);
        };
        let first = log.first.load(Ordering::Acquire);
        let mut below = first;
        let mut bytes = log.bytes.load(Ordering::Acquire);
        let cutoff = retention
            .max_age
            .map(|age| super::now_ms().saturating_sub(age.as_millis() as u64));
        let max_bytes = retention.max_bytes.map(|b| b.as_u64());
        for guard in log.keyspace.range(first.to_be_bytes()..) {
            let (key, value) = guard
                .into_inner()
                .map_err(|e| StoreError::Read(e.to_string()))?;
            let too_old = match cutoff {
                Some(cutoff) => Record::decode_received_at(&value).is_ok_and(|at| at < cutoff),
                None => false,
            };
            let too_big = max_bytes.is_some_and(|max| bytes > max);
            if !too_old && !too_big {
                break;
            }
            bytes = bytes.saturating_sub(value.len() as u64);
            below = decode_offset(&key) + 1;
        }
        if below == first {
            return Ok(0);
        }
        let (reply, answer) = oneshot::channel();
        self.send(
            writer::Command::Trim {
                log: log.clone(),
                below,
                reply,
            },
            answer,
        )
        .await?;
        Ok(below - first)
    }
}

#[async_trait]
impl Backend for EmbeddedStore {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    /// Writes `records` as one durable write before answering: the acknowledgement is ready when
    /// this returns.
    async fn send<'a>(
        &'a self,
        log: &'a str,
        records: Vec<Record>,
    ) -> Result<Acknowledgement<'a>, BackendError> {
        let count = records.len() as u64;
        let encoded = records.iter().map(Record::encode).collect();
        let positions = self
            .append_encoded(log, encoded)
            .await
            .map(|first| (first..first + count).map(Position::offset).collect());
        Ok(Box::pin(std::future::ready(positions.map_err(Into::into))))
    }

    async fn check_ready(&self) -> Result<(), BackendError> {
        if self.inner.writer_alive.load(Ordering::Acquire) && !self.inner.writer.is_closed() {
            Ok(())
        } else {
            Err(StoreError::WriterStopped.into())
        }
    }
}

fn open_log(
    db: &Database,
    meta: &Keyspace,
    name: &str,
    memtable_bytes: u64,
) -> Result<Log, String> {
    let keyspace = db
        .keyspace(&format!("{LOG_KEYSPACE_PREFIX}{name}"), || {
            // A log is read by offset ranges and by offsets it holds, never probed for keys it may
            // lack, so the per-table Bloom filters would be built on every flush and compaction
            // and never save a read.
            KeyspaceCreateOptions::default()
                .max_memtable_size(memtable_bytes)
                .filter_policy(FilterPolicy::disabled())
        })
        .map_err(|e| e.to_string())?;
    let first = keyspace
        .first_key_value()
        .map(|g| g.key().map(|k| decode_offset(&k)))
        .transpose()
        .map_err(|e| e.to_string())?;
    let last = keyspace
        .last_key_value()
        .map(|g| g.key().map(|k| decode_offset(&k)))
        .transpose()
        .map_err(|e| e.to_string())?;
    let next = last.map_or(0, |l| l + 1);
    let bytes = meta
        .get(log_bytes_key(name))
        .map_err(|e| e.to_string())?
        .and_then(|v| <[u8; 8]>::try_from(&v[..]).ok().map(u64::from_be_bytes))
        .unwrap_or(0);
    Ok(Log {
        name: name.to_owned(),
        keyspace,
        next: AtomicU64::new(next),
        first: AtomicU64::new(first.unwrap_or(next)),
        bytes: AtomicU64::new(bytes),
        head: watch::Sender::new(next),
    })
}

fn decode_offset(key: &[u8]) -> u64 {
    <[u8; 8]>::try_from(key).map_or(u64::MAX, u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::ContentKind;
    use bytes::Bytes;

    fn record(value: &str) -> Record {
        Record {
            received_at_ms: crate::backends::now_ms(),
            deliver_after_ms: None,
            key: None,
            headers: Vec::new(),
            value: Bytes::from(value.to_owned()),
            content: ContentKind::Json,
            schema_version: None,
            dead_letter: None,
            provenance: Default::default(),
        }
    }

    #[tokio::test]
    async fn appends_are_dense_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedStore::open(dir.path(), FsyncPolicy::Always).unwrap();
            let positions = store
                .append("s", vec![record("1"), record("2")])
                .await
                .unwrap();
            assert_eq!(positions, vec![Position::offset(0), Position::offset(1)]);
            let positions = store.append("s", vec![record("3")]).await.unwrap();
            assert_eq!(positions, vec![Position::offset(2)]);
        }
        let store = EmbeddedStore::open(dir.path(), FsyncPolicy::Always).unwrap();
        let values: Vec<_> = store
            .read("s", 0, 10)
            .unwrap()
            .into_iter()
            .map(|(o, r)| (o, r.value))
            .collect();
        assert_eq!(
            values,
            vec![
                (0, Bytes::from("1")),
                (1, Bytes::from("2")),
                (2, Bytes::from("3"))
            ]
        );
        assert_eq!(store.stats("s").next_offset, 3);
        let positions = store.append("s", vec![record("4")]).await.unwrap();
        assert_eq!(positions, vec![Position::offset(3)]);
    }

    #[tokio::test]
    async fn concurrent_appends_get_distinct_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), FsyncPolicy::Always).unwrap();
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.append("s", vec![record(&i.to_string())]).await })
            })
            .collect();
        let mut offsets = Vec::new();
        for task in tasks {
            offsets.push(task.await.unwrap().unwrap()[0].offset);
        }
        offsets.sort_unstable();
        assert_eq!(offsets, (0..50).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn retention_by_bytes_drops_the_oldest_and_keeps_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), FsyncPolicy::Never).unwrap();
        let big = "x".repeat(1000);
        for _ in 0..10 {
            store.append("s", vec![record(&big)]).await.unwrap();
        }
        let retention = Retention {
            max_age: None,
            max_bytes: Some(bytesize::ByteSize::b(3500)),
        };
        let dropped = store.apply_retention("s", &retention).await.unwrap();
        assert_eq!(dropped, 7);
        let stats = store.stats("s");
        assert_eq!(
            (stats.first_offset, stats.next_offset, stats.messages),
            (7, 10, 3)
        );
        assert!(stats.bytes <= 3500);
        assert_eq!(store.read("s", 0, 100).unwrap()[0].0, 7);
    }

    #[tokio::test]
    async fn retention_by_age_drops_old_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), FsyncPolicy::Never).unwrap();
        let mut old = record("old");
        old.received_at_ms -= 60_000;
        store.append("s", vec![old, record("new")]).await.unwrap();
        let retention = Retention {
            max_age: Some(Duration::from_secs(30)),
            max_bytes: None,
        };
        assert_eq!(store.apply_retention("s", &retention).await.unwrap(), 1);
        let left = store.read("s", 0, 10).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].1.value, Bytes::from("new"));
    }
}
