//! The embedded store's single writer: one thread that drains every pending write command, applies
//! them as one fjall batch, makes the batch durable under the fsync policy, and only then answers
//! the waiting producers (group commit). Offsets are assigned here, so a log's offsets are dense
//! and in commit order.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use fjall::{Database, Keyspace, PersistMode};
use tokio::sync::{mpsc, oneshot};

use super::chunk::{self, EncodedChunk};
use super::config::FsyncPolicy;
use super::groups::MetaChange;
use super::{log_bytes_key, log_next_key, Log, StoreError};

/// Most commands folded into one commit.
const MAX_COMMANDS_PER_COMMIT: usize = 4096;

pub(super) enum Command {
    /// Append records encoded as chunks; answers the first assigned offset.
    Append {
        log: Arc<Log>,
        chunks: Vec<EncodedChunk>,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Delete a log's records below `below`.
    Trim {
        log: Arc<Log>,
        below: u64,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Durably set (or, with `None`, delete) metadata keys, all in one commit.
    Meta {
        changes: Vec<MetaChange>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Commit what is pending, fsync, stop, and answer once the writer let go of the database.
    Shutdown { reply: oneshot::Sender<()> },
}

pub(super) fn spawn(
    db: Database,
    meta: Keyspace,
    fsync: FsyncPolicy,
    mut commands: mpsc::Receiver<Command>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    // The periodic fsync thread stops when `_stop_fsync` (held by the writer) is dropped.
    let (stop_fsync, fsync_stopped) = std::sync::mpsc::channel::<()>();
    let fsync_thread = match fsync {
        FsyncPolicy::Interval(every) => {
            let db = db.clone();
            Some(
                std::thread::Builder::new()
                    .name("sluice-fsync".into())
                    .spawn(move || {
                        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                            fsync_stopped.recv_timeout(every)
                        {
                            if let Err(e) = db.persist(PersistMode::SyncAll) {
                                tracing::error!("periodic fsync failed: {e}");
                            }
                        }
                    })?,
            )
        }
        _ => None,
    };
    std::thread::Builder::new()
        .name("sluice-writer".into())
        .spawn(move || {
            let mut pending = Vec::with_capacity(64);
            let mut shutdown = None;
            while let Some(first) = commands.blocking_recv() {
                pending.push(first);
                while pending.len() < MAX_COMMANDS_PER_COMMIT {
                    match commands.try_recv() {
                        Ok(command) => pending.push(command),
                        Err(_) => break,
                    }
                }
                if let Some(at) = pending
                    .iter()
                    .position(|c| matches!(c, Command::Shutdown { .. }))
                {
                    let Command::Shutdown { reply } = pending.remove(at) else {
                        unreachable!("position found a shutdown")
                    };
                    shutdown = Some(reply);
                }
                commit(&db, &meta, fsync, &mut pending);
                if shutdown.is_some() {
                    break;
                }
            }
            if let Err(e) = db.persist(PersistMode::SyncAll) {
                tracing::error!("final fsync failed: {e}");
            }
            drop(stop_fsync);
            if let Some(thread) = fsync_thread {
                let _ = thread.join();
            }
            drop((db, meta));
            if let Some(reply) = shutdown {
                let _ = reply.send(());
            }
        })
}

/// Where a log stands inside the commit being built.
struct Tally {
    log: Arc<Log>,
    next: u64,
    first: u64,
    bytes: u64,
}

/// Applies `pending` as one batch, makes it durable, then answers every command.
fn commit(db: &Database, meta: &Keyspace, fsync: FsyncPolicy, pending: &mut Vec<Command>) {
    let mut batch = db.batch();
    let mut tallies: HashMap<String, Tally> = HashMap::new();
    let mut answers = Vec::with_capacity(pending.len());
    for command in pending.iter() {
        match command {
            Command::Append { log, chunks, .. } => {
                let tally = tally(&mut tallies, log);
                answers.push(Some(tally.next));
                for encoded in chunks {
                    let last = tally.next + encoded.records - 1;
                    let key = chunk::key(tally.next, last);
                    batch.insert(&log.keyspace, key, encoded.bytes.as_slice());
                    tally.next = last + 1;
                    tally.bytes += encoded.bytes.len() as u64;
                }
            }
            Command::Trim { log, below, .. } => {
                let tally = tally(&mut tallies, log);
                let below = (*below).min(tally.next);
                // Every entry wholly below `below`; retention trims at entry boundaries.
                let entries = log
                    .keyspace
                    .range(chunk::seek_key(tally.first)..chunk::seek_key(below));
                let mut removed = 0;
                for entry in entries {
                    if let Ok((key, value)) = entry.into_inner() {
                        removed += value.len() as u64;
                        batch.remove(&log.keyspace, key);
                    }
                }
                tally.first = tally.first.max(below);
                tally.bytes = tally.bytes.saturating_sub(removed);
                answers.push(Some(removed));
            }
            Command::Meta { changes, .. } => {
                for (key, value) in changes {
                    match value {
                        Some(value) => batch.insert(meta, key.as_slice(), value.as_slice()),
                        None => batch.remove(meta, key.as_slice()),
                    }
                }
                answers.push(None);
            }
            Command::Shutdown { .. } => unreachable!("shutdown is taken out before commit"),
        }
    }
    for (name, tally) in &tallies {
        batch.insert(meta, log_bytes_key(name), tally.bytes.to_be_bytes());
        batch.insert(meta, log_next_key(name), tally.next.to_be_bytes());
    }
    let result = batch
        .commit()
        .and_then(|()| match fsync {
            FsyncPolicy::Always => db.persist(PersistMode::SyncAll),
            FsyncPolicy::Interval(_) | FsyncPolicy::Never => db.persist(PersistMode::Buffer),
        })
        .map_err(|e| StoreError::Write(e.to_string()));
    if result.is_ok() {
        for tally in tallies.values() {
            tally.log.bytes.store(tally.bytes, Ordering::Release);
            tally.log.first.store(tally.first, Ordering::Release);
            tally.log.next.store(tally.next, Ordering::Release);
            tally.log.head.send_replace(tally.next);
        }
    }
    for (command, answer) in pending.drain(..).zip(answers) {
        match command {
            Command::Append { reply, .. } | Command::Trim { reply, .. } => {
                let _ = reply.send(result.clone().map(|()| answer.unwrap_or_default()));
            }
            Command::Meta { reply, .. } => {
                let _ = reply.send(result.clone());
            }
            Command::Shutdown { .. } => {}
        }
    }
}

fn tally<'a>(tallies: &'a mut HashMap<String, Tally>, log: &Arc<Log>) -> &'a mut Tally {
    tallies.entry(log.name.clone()).or_insert_with(|| Tally {
        log: log.clone(),
        next: log.next.load(Ordering::Acquire),
        first: log.first.load(Ordering::Acquire),
        bytes: log.bytes.load(Ordering::Acquire),
    })
}
