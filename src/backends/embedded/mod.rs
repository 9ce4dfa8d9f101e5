//! The embedded backend: a durable append-only log per station (and per dead-letter queue) on the
//! fjall storage engine, with group commit, consumer-group offsets, retention and long-poll reads.
//! No other process is needed.
//!
//! Layout: one fjall keyspace per log (`log:<name>`), whose entries are chunks of consecutive
//! records (`chunk`: an append's records stored together, keyed by the offsets they hold), and one
//! `meta` keyspace for log sizes and next offsets, consumer-group positions and dead-letter replay
//! marks. Every write goes through the single writer thread (`writer`), so a write and the
//! metadata it changes commit together.

mod chunk;
pub mod config;
mod groups;
mod queue;
mod read;
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

use super::queues::{AckOutcome, ConsumeOptions, Delivery, LogStats};
use super::{Acknowledgement, Backend, BackendError};
use crate::model::{BackendKind, Position, Record, Retention};
use chunk::EncodedChunk;
pub use chunk::MESSAGE_BYTES_CEILING;
use config::{FsyncPolicy, StoreMemory};
use groups::{LeaseRules, MetaChange};
use read::ChunkCursor;

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
    /// Dead letters (log, id) a replay has claimed and not settled yet.
    replays_under_way: std::sync::Mutex<std::collections::HashSet<(String, u64)>>,
    /// Each log's in-memory write buffer before it is flushed.
    memtable_bytes: u64,
}

fn log_bytes_key(log: &str) -> Vec<u8> {
    format!("bytes/{log}").into_bytes()
}

/// Where the offset the log's next record gets is kept: a log that retention emptied holds no
/// entry to read it from, and its offsets must not start again at 0 (consumer groups' positions
/// would skip the new records).
fn log_next_key(log: &str) -> Vec<u8> {
    format!("next/{log}").into_bytes()
}

/// A big-endian `u64` kept under `key` in the metadata keyspace.
fn meta_u64(meta: &Keyspace, key: Vec<u8>) -> Result<Option<u64>, fjall::Error> {
    Ok(meta
        .get(key)?
        .and_then(|v| <[u8; 8]>::try_from(&v[..]).ok().map(u64::from_be_bytes)))
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
                replays_under_way: Default::default(),
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

    /// Appends records encoded as chunks to `log` durably; returns the first offset assigned.
    async fn append_chunks(&self, log: &str, chunks: Vec<EncodedChunk>) -> Result<u64, StoreError> {
        let log = self.log(log)?;
        let (reply, answer) = oneshot::channel();
        self.send(writer::Command::Append { log, chunks, reply }, answer)
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
        log.read_from(from, max)
    }

    /// Reads the record at `offset` of `log`.
    pub fn read_one(&self, log: &str, offset: u64) -> Result<Option<Record>, BackendError> {
        let Some(log) = self.existing_log(log) else {
            return Ok(None);
        };
        ChunkCursor::new(&log).record(offset)
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
                    bytes: Some(log.bytes.load(Ordering::Acquire)),
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
                let mut cursor = ChunkCursor::new(&log);
                let mut leased =
                    state.lease(first, next, rules, |offset| cursor.deliver_after(offset));
                // Persisted under the group's lock, so concurrent consumers' writes stay in order.
                self.write_meta(std::mem::take(&mut leased.changes)).await?;
                (leased, state.next_expiry_ms())
            };
            if !leased.exhausted.is_empty() {
                self.dead_letter_exhausted(&log, group, options, &leased.exhausted)
                    .await?;
            }
            if !leased.deliver.is_empty() {
                return Self::deliveries(&log, leased.deliver);
            }
            if leased.more || !leased.exhausted.is_empty() {
                continue;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let wake = next_expiry
                .map(|at_ms| {
                    now + Duration::from_millis(at_ms.saturating_sub(crate::model::time::now_ms()))
                })
                .map_or(deadline, |at| at.min(deadline));
            let _ = tokio::time::timeout_at(wake, head.changed()).await;
        }
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
                crate::backends::queues::mark_exhausted(
                    &mut record,
                    &log.name,
                    group,
                    (delivery, options.max_deliveries),
                    &format!("offset {offset}"),
                );
                records.push(record);
            }
            if !records.is_empty() {
                self.append_chunks(dlq, chunk::encode(&records)).await?;
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

    fn deliveries(log: &Log, leased: Vec<(u64, u32)>) -> Result<Vec<Delivery>, BackendError> {
        let mut cursor = ChunkCursor::new(log);
        let mut out = Vec::with_capacity(leased.len());
        for (offset, delivery) in leased {
            if let Some(record) = cursor.record(offset)? {
                out.push(Delivery {
                    position: Position::offset(offset),
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
        meta_u64(&self.inner.meta, replay_key(dlq_log, id))
            .map_err(|e| StoreError::Read(e.to_string()).into())
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
            .map(|age| crate::model::time::now_ms().saturating_sub(age.as_millis() as u64));
        let max_bytes = retention.max_bytes.map(|b| b.as_u64());
        // Whole chunks go, oldest first; a chunk is too old once its newest record is.
        for entry in log.keyspace.range(chunk::seek_key(first)..) {
            let chunk = log.chunk(entry)?;
            let too_old = match cutoff {
                Some(cutoff) => chunk
                    .record(chunk.last)
                    .and_then(|newest| Record::decode_received_at(newest).ok())
                    .is_some_and(|at| at < cutoff),
                None => false,
            };
            let too_big = max_bytes.is_some_and(|max| bytes > max);
            if !too_old && !too_big {
                break;
            }
            bytes = bytes.saturating_sub(chunk.stored_bytes());
            below = chunk.last + 1;
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
    fn kind(&self) -> BackendKind {
        BackendKind::Embedded
    }

    /// A request's records are one write, and one commit of the store.
    fn send_chunk(&self) -> usize {
        usize::MAX
    }

    /// Writes `records` as one durable write before answering: the acknowledgement is ready when
    /// this returns.
    async fn send<'a>(
        &'a self,
        log: &'a str,
        records: Vec<Record>,
    ) -> Result<Acknowledgement<'a>, BackendError> {
        let count = records.len() as u64;
        let positions = self
            .append_chunks(log, chunk::encode(&records))
            .await
            .map(|first| (first..first + count).map(Position::offset).collect());
        Ok(Box::pin(std::future::ready(positions.map_err(Into::into))))
    }

    /// The store is this gateway's alone: it runs the schedules of the stations on it.
    async fn runs_schedules(&self) -> Result<bool, BackendError> {
        Ok(true)
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
    let offsets_of = |entry: Option<fjall::Guard>| -> Result<Option<(u64, u64)>, String> {
        let Some(entry) = entry else {
            return Ok(None);
        };
        let key = entry.key().map_err(|e| e.to_string())?;
        chunk::offsets(&key)
            .map(Some)
            .ok_or_else(|| format!("log `{name}` holds a key of {} bytes", key.len()))
    };
    let first = offsets_of(keyspace.first_key_value())?.map(|(first, _)| first);
    let stored_next = offsets_of(keyspace.last_key_value())?.map_or(0, |(_, last)| last + 1);
    // Stores written before the next offset was kept lack the key: their entries say it.
    let kept = |key| meta_u64(meta, key).map_err(|e| e.to_string());
    let next = stored_next.max(kept(log_next_key(name))?.unwrap_or(0));
    let bytes = kept(log_bytes_key(name))?.unwrap_or(0);
    Ok(Log {
        name: name.to_owned(),
        keyspace,
        next: AtomicU64::new(next),
        first: AtomicU64::new(first.unwrap_or(next)),
        bytes: AtomicU64::new(bytes),
        head: watch::Sender::new(next),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ContentKind;
    use bytes::Bytes;

    fn record(value: &str) -> Record {
        Record {
            received_at_ms: crate::model::time::now_ms(),
            deliver_after_ms: None,
            key: None,
            headers: crate::model::Headers::default(),
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
        assert!(stats.bytes.unwrap() <= 3500);
        assert_eq!(store.read("s", 0, 100).unwrap()[0].0, 7);
    }

    #[tokio::test]
    async fn retention_by_age_drops_old_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), FsyncPolicy::Never).unwrap();
        let mut old = record("old");
        old.received_at_ms -= 60_000;
        // Records of one append arrive in one request, together; these came a minute apart.
        store.append("s", vec![old]).await.unwrap();
        store.append("s", vec![record("new")]).await.unwrap();
        let retention = Retention {
            max_age: Some(Duration::from_secs(30)),
            max_bytes: None,
        };
        assert_eq!(store.apply_retention("s", &retention).await.unwrap(), 1);
        let left = store.read("s", 0, 10).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].1.value, Bytes::from("new"));
    }

    fn values(store: &EmbeddedStore, from: u64, max: usize) -> Vec<(u64, String)> {
        store
            .read("s", from, max)
            .unwrap()
            .into_iter()
            .map(|(offset, r)| (offset, String::from_utf8(r.value.to_vec()).unwrap()))
            .collect()
    }

    #[tokio::test]
    async fn a_large_batch_reads_back_whole_from_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), FsyncPolicy::Always).unwrap();
        // ~200 KiB: stored as several chunks.
        let batch: Vec<_> = (0..1000).map(|n| record(&format!("{n:0>200}"))).collect();
        let positions = store.append("s", batch).await.unwrap();
        assert_eq!(positions.last(), Some(&Position::offset(999)));
        store.append("s", vec![record("after")]).await.unwrap();
        let all = values(&store, 0, 2000);
        assert_eq!(all.len(), 1001);
        for (n, (offset, value)) in all.iter().take(1000).enumerate() {
            assert_eq!(
                (*offset, value.as_str()),
                (n as u64, format!("{n:0>200}").as_str())
            );
        }
        assert_eq!(all[1000], (1000, "after".to_owned()));
        let middle = values(&store, 437, 3);
        assert_eq!(
            middle.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
            vec![437, 438, 439]
        );
        assert_eq!(
            store.read_one("s", 700).unwrap().unwrap().value,
            Bytes::from(format!("{:0>200}", 700))
        );
        assert!(store.read_one("s", 1001).unwrap().is_none());
        assert_eq!(store.stats("s").messages, 1001);
    }

    #[tokio::test]
    async fn consumers_get_each_message_of_a_batch_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), FsyncPolicy::Never).unwrap();
        let batch: Vec<_> = (0..900).map(|n| record(&format!("{n:0>300}"))).collect();
        store.append("s", batch).await.unwrap();
        let options = ConsumeOptions {
            max: 250,
            wait: Duration::ZERO,
            ack_timeout: Duration::from_secs(60),
            max_deliveries: 0,
            dead_letters: None,
        };
        let mut seen = Vec::new();
        loop {
            let got = store.consume("s", "g", &options).await.unwrap();
            if got.is_empty() {
                break;
            }
            for delivery in got {
                assert_eq!(
                    delivery.record.value,
                    Bytes::from(format!("{:0>300}", delivery.position.offset))
                );
                seen.push(delivery.position.offset);
            }
        }
        assert_eq!(seen, (0..900).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_log_of_one_record_per_entry_reads_and_grows_as_before() {
        let dir = tempfile::tempdir().unwrap();
        {
            // What stores wrote before chunks: each record under its 8-byte offset.
            let db = Database::builder(dir.path()).open().unwrap();
            let log = db
                .keyspace("log:s", KeyspaceCreateOptions::default)
                .unwrap();
            for offset in 0..3u64 {
                let value = record(&format!("old {offset}")).encode();
                log.insert(offset.to_be_bytes(), value).unwrap();
            }
            db.persist(fjall::PersistMode::SyncAll).unwrap();
        }
        let store = EmbeddedStore::open(dir.path(), FsyncPolicy::Always).unwrap();
        assert_eq!(store.stats("s").next_offset, 3);
        let positions = store
            .append("s", vec![record("new 3"), record("new 4")])
            .await
            .unwrap();
        assert_eq!(positions, vec![Position::offset(3), Position::offset(4)]);
        assert_eq!(
            values(&store, 1, 10),
            vec![
                (1, "old 1".to_owned()),
                (2, "old 2".to_owned()),
                (3, "new 3".to_owned()),
                (4, "new 4".to_owned())
            ]
        );
        let retention = Retention {
            max_age: None,
            max_bytes: Some(bytesize::ByteSize::b(1)),
        };
        // Everything but the newest entry (the chunk holding 3 and 4) goes.
        assert_eq!(store.apply_retention("s", &retention).await.unwrap(), 3);
        assert_eq!(values(&store, 0, 10).len(), 2);
    }

    #[tokio::test]
    async fn retention_drops_whole_batches_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), FsyncPolicy::Never).unwrap();
        let mut old: Vec<_> = (0..10).map(|n| record(&n.to_string())).collect();
        for record in &mut old {
            record.received_at_ms -= 60_000;
        }
        store.append("s", old).await.unwrap();
        store
            .append("s", vec![record("10"), record("11")])
            .await
            .unwrap();
        let retention = Retention {
            max_age: Some(Duration::from_secs(30)),
            max_bytes: None,
        };
        assert_eq!(store.apply_retention("s", &retention).await.unwrap(), 10);
        let stats = store.stats("s");
        assert_eq!((stats.first_offset, stats.messages), (10, 2));
        assert_eq!(
            values(&store, 0, 10)
                .iter()
                .map(|(o, _)| *o)
                .collect::<Vec<_>>(),
            vec![10, 11]
        );
        store.close().await;
        drop(store);
        let store = EmbeddedStore::open(dir.path(), FsyncPolicy::Never).unwrap();
        assert_eq!(store.stats("s").first_offset, 10);
    }

    #[tokio::test]
    async fn offsets_go_on_after_retention_emptied_the_log_and_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedStore::open(dir.path(), FsyncPolicy::Always).unwrap();
            let mut old = record("old");
            old.received_at_ms -= 60_000;
            store.append("s", vec![old.clone()]).await.unwrap();
            store.append("s", vec![old.clone(), old]).await.unwrap();
            let retention = Retention {
                max_age: Some(Duration::from_secs(30)),
                max_bytes: None,
            };
            assert_eq!(store.apply_retention("s", &retention).await.unwrap(), 3);
            store.close().await;
        }
        let store = EmbeddedStore::open(dir.path(), FsyncPolicy::Always).unwrap();
        let stats = store.stats("s");
        assert_eq!(
            (stats.first_offset, stats.next_offset, stats.messages),
            (3, 3, 0)
        );
        let positions = store.append("s", vec![record("new")]).await.unwrap();
        assert_eq!(positions, vec![Position::offset(3)]);
        assert_eq!(values(&store, 0, 10), vec![(3, "new".to_owned())]);
    }
}
