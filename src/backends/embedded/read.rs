//! Reading records out of a log's keyspace: a run of offsets from one on, or single offsets
//! through a cursor that keeps the chunk it read last. Owns turning stored entries into records
//! and naming the log and offset of any that cannot be read; not the layout itself (`chunk`).

use std::sync::atomic::Ordering;

use super::chunk::{self, Chunk};
use super::{Log, StoreError};
use crate::backends::BackendError;
use crate::model::Record;

impl Log {
    /// Up to `max` records from `from` (or the first retained one) on.
    pub(super) fn read_from(
        &self,
        from: u64,
        max: usize,
    ) -> Result<Vec<(u64, Record)>, BackendError> {
        let from = from.max(self.first.load(Ordering::Acquire));
        let mut out = Vec::with_capacity(max.min(1024));
        if max == 0 {
            return Ok(out);
        }
        for entry in self.keyspace.range(chunk::seek_key(from)..) {
            let chunk = self.chunk(entry)?;
            for (offset, bytes) in chunk.records_from(from) {
                out.push((offset, self.decode(offset, bytes)?));
                if out.len() == max {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// Reads a stored entry as a chunk.
    pub(super) fn chunk(&self, entry: fjall::Guard) -> Result<Chunk, BackendError> {
        let (key, value) = entry
            .into_inner()
            .map_err(|e| StoreError::Read(e.to_string()))?;
        Chunk::new(&key, value).map_err(|e| BackendError::Corrupt {
            log: self.name.clone(),
            offset: chunk::offsets(&key).map_or(0, |(first, _)| first),
            reason: e.to_string(),
        })
    }

    fn decode(&self, offset: u64, bytes: &[u8]) -> Result<Record, BackendError> {
        Record::decode(bytes).map_err(|e| BackendError::Corrupt {
            log: self.name.clone(),
            offset,
            reason: e.to_string(),
        })
    }
}

/// Reads records of one log by offset, keeping the chunk it read last: consumers read offsets
/// in runs, mostly inside one chunk.
pub(super) struct ChunkCursor<'a> {
    log: &'a Log,
    current: Option<Chunk>,
}

impl<'a> ChunkCursor<'a> {
    pub(super) fn new(log: &'a Log) -> Self {
        Self { log, current: None }
    }

    /// The encoded record at `offset`, if the log holds it.
    fn encoded(&mut self, offset: u64) -> Result<Option<&[u8]>, BackendError> {
        let holds = |chunk: &Chunk| chunk.first <= offset && offset <= chunk.last;
        if !self.current.as_ref().is_some_and(holds) {
            self.current = match self.log.keyspace.range(chunk::seek_key(offset)..).next() {
                Some(entry) => Some(self.log.chunk(entry)?),
                None => None,
            };
        }
        Ok(self.current.as_ref().and_then(|chunk| chunk.record(offset)))
    }

    pub(super) fn record(&mut self, offset: u64) -> Result<Option<Record>, BackendError> {
        let log = self.log;
        self.encoded(offset)?
            .map(|bytes| log.decode(offset, bytes))
            .transpose()
    }

    /// When the record at `offset` may first be delivered, if it was produced with a delay.
    pub(super) fn deliver_after(&mut self, offset: u64) -> Option<u64> {
        let bytes = self.encoded(offset).ok()??;
        Record::decode_deliver_after(bytes).ok()?
    }
}
