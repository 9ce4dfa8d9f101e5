//! How a log's records sit in its keyspace: the records of one append are stored together, as
//! *chunks* of up to [`MAX_CHUNK_BYTES`], one storage-engine entry each, so a batch of a thousand
//! messages is a handful of inserts rather than a thousand. Owns the chunk's key and value
//! layout, encoding records into chunks and finding a record inside one; not where chunks are
//! read from or written to (the store and its writer).
//!
//! Key: the big-endian offsets of the chunk's last and first record (16 bytes), last first, so
//! keys sort in log order and the chunk holding an offset is the first entry at or after that
//! offset's 8-byte key. Value: the encoded records one after another, then one little-endian
//! `u32` per record, where it ends. Logs written before chunks hold one record per entry under its
//! 8-byte offset; such an entry reads as a chunk of that one record, so old logs need no rewrite
//! and a log may hold both kinds.

use fjall::Slice;

use crate::model::Record;

/// A chunk is closed once its records take this many bytes (a larger record gets a chunk of its
/// own): big enough that per-entry work in the storage engine vanishes next to the bytes, small
/// enough that a consumer reading one message does not load a whole large batch.
pub(super) const MAX_CHUNK_BYTES: usize = 64 * 1024;

const END_BYTES: usize = std::mem::size_of::<u32>();

/// The largest message the store takes (`limits.max_message_bytes` may not exceed it): where each
/// record of a chunk ends is kept in 32 bits, and the storage engine takes values below 4 GiB; a
/// record this large gets a chunk of its own, with room left for its key and headers.
pub const MESSAGE_BYTES_CEILING: usize = 1 << 30;

/// Records encoded as one chunk, before the writer gives them offsets.
pub(super) struct EncodedChunk {
    pub records: u64,
    pub bytes: Vec<u8>,
}

/// Encodes `records` into chunks of at most [`MAX_CHUNK_BYTES`] of records each, in order.
pub(super) fn encode(records: &[Record]) -> Vec<EncodedChunk> {
    let mut chunks = Vec::new();
    let mut rest = records;
    while !rest.is_empty() {
        let (chunk, left) = encode_one(rest);
        chunks.push(chunk);
        rest = left;
    }
    chunks
}

/// Encodes records from the front of `records` into one chunk; returns it and the records left.
fn encode_one(records: &[Record]) -> (EncodedChunk, &[Record]) {
    let mut taken = 0;
    let mut estimate = 0;
    while taken < records.len() && (taken == 0 || estimate < MAX_CHUNK_BYTES) {
        estimate += records[taken].encoded_len_estimate();
        taken += 1;
    }
    let (these, left) = records.split_at(taken);
    let mut bytes = Vec::with_capacity(estimate + these.len() * END_BYTES);
    let mut ends = Vec::with_capacity(these.len());
    for record in these {
        bytes = record.encode_into(bytes);
        ends.push(u32::try_from(bytes.len()).expect("a chunk's records fit in u32 bytes"));
    }
    for end in ends {
        bytes.extend_from_slice(&end.to_le_bytes());
    }
    let chunk = EncodedChunk {
        records: these.len() as u64,
        bytes,
    };
    (chunk, left)
}

/// The key of the chunk holding offsets `first..=last`.
pub(super) fn key(first: u64, last: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&last.to_be_bytes());
    key[8..].copy_from_slice(&first.to_be_bytes());
    key
}

/// The key every entry holding `offset` or later sorts at or after, and every entry wholly
/// before `offset` sorts before.
pub(super) fn seek_key(offset: u64) -> [u8; 8] {
    offset.to_be_bytes()
}

/// The first and last offsets an entry's key says it holds.
pub(super) fn offsets(key: &[u8]) -> Option<(u64, u64)> {
    match key.len() {
        8 => {
            let offset = u64::from_be_bytes(key.try_into().ok()?);
            Some((offset, offset))
        }
        16 => {
            let last = u64::from_be_bytes(key[..8].try_into().ok()?);
            let first = u64::from_be_bytes(key[8..].try_into().ok()?);
            (first <= last).then_some((first, last))
        }
        _ => None,
    }
}

/// Why a stored entry cannot be read as a chunk.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct CorruptChunk(String);

/// One stored entry, read as the records it holds.
pub(super) struct Chunk {
    pub first: u64,
    pub last: u64,
    value: Slice,
    /// Where the records end and the table of their ends starts; `None`: a single record stored
    /// as the whole entry.
    table: Option<usize>,
}

impl Chunk {
    /// Reads the entry stored under `key`.
    pub fn new(key: &[u8], value: Slice) -> Result<Self, CorruptChunk> {
        let (first, last) =
            offsets(key).ok_or_else(|| CorruptChunk(format!("a key of {} bytes", key.len())))?;
        if key.len() == 8 {
            return Ok(Self {
                first,
                last,
                value,
                table: None,
            });
        }
        let count = usize::try_from(last - first + 1).ok();
        let table = count
            .and_then(|count| count.checked_mul(END_BYTES))
            .and_then(|table| value.len().checked_sub(table))
            .ok_or_else(|| {
                CorruptChunk(format!(
                    "{} bytes cannot hold offsets {first}..={last}",
                    value.len()
                ))
            })?;
        let chunk = Self {
            first,
            last,
            value,
            table: Some(table),
        };
        let mut start = 0;
        for index in 0..=(last - first) {
            let end = chunk.end(index as usize);
            if end < start || end > table {
                return Err(CorruptChunk(format!(
                    "record {} ends at byte {end}, outside {start}..={table}",
                    first + index
                )));
            }
            start = end;
        }
        Ok(chunk)
    }

    /// Where the record at `index` (from the first) ends.
    fn end(&self, index: usize) -> usize {
        let table = self.table.expect("only packed chunks have a table");
        let at = table + index * END_BYTES;
        let bytes: [u8; END_BYTES] = self.value[at..at + END_BYTES]
            .try_into()
            .expect("the table holds four bytes per record");
        u32::from_le_bytes(bytes) as usize
    }

    /// The encoded record at `offset`, if this chunk holds it.
    pub fn record(&self, offset: u64) -> Option<&[u8]> {
        if offset < self.first || offset > self.last {
            return None;
        }
        if self.table.is_none() {
            return Some(&self.value);
        }
        let index = (offset - self.first) as usize;
        let start = if index == 0 { 0 } else { self.end(index - 1) };
        Some(&self.value[start..self.end(index)])
    }

    /// The encoded records from `from` on, with their offsets.
    pub fn records_from(&self, from: u64) -> impl Iterator<Item = (u64, &[u8])> {
        (from.max(self.first)..=self.last).map(|offset| {
            let record = self.record(offset).expect("offsets inside the chunk");
            (offset, record)
        })
    }

    /// The bytes this entry takes in the log.
    pub fn stored_bytes(&self) -> u64 {
        self.value.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ContentKind;
    use bytes::Bytes;

    fn record(value: &str) -> Record {
        Record {
            received_at_ms: 1_700_000_000_000,
            deliver_after_ms: None,
            key: None,
            headers: crate::model::Headers::default(),
            value: Bytes::from(value.to_owned()),
            content: ContentKind::Json,
            schema_version: Some(3),
            dead_letter: None,
            provenance: Default::default(),
        }
    }

    fn stored(chunk: &EncodedChunk, first: u64) -> Chunk {
        let key = key(first, first + chunk.records - 1);
        Chunk::new(&key, Slice::from(chunk.bytes.as_slice())).unwrap()
    }

    #[test]
    fn records_read_back_by_offset_and_in_order() {
        let records: Vec<_> = (0..5).map(|n| record(&format!("value {n}"))).collect();
        let chunks = encode(&records);
        assert_eq!(chunks.len(), 1);
        let chunk = stored(&chunks[0], 10);
        assert_eq!((chunk.first, chunk.last), (10, 14));
        for (n, original) in records.iter().enumerate() {
            let bytes = chunk.record(10 + n as u64).unwrap();
            assert_eq!(&Record::decode(bytes).unwrap(), original);
        }
        assert!(chunk.record(9).is_none() && chunk.record(15).is_none());
        let from_12: Vec<_> = chunk.records_from(12).map(|(offset, _)| offset).collect();
        assert_eq!(from_12, vec![12, 13, 14]);
    }

    #[test]
    fn large_appends_split_into_bounded_chunks_in_order() {
        let big = "x".repeat(10_000);
        let records: Vec<_> = (0..20).map(|_| record(&big)).collect();
        let chunks = encode(&records);
        assert!(chunks.len() >= 3, "{} chunks", chunks.len());
        assert_eq!(chunks.iter().map(|c| c.records).sum::<u64>(), 20);
        for chunk in &chunks {
            assert!(
                chunk.bytes.len() < MAX_CHUNK_BYTES + 2 * 10_100,
                "{}",
                chunk.bytes.len()
            );
        }
        let huge = record(&"y".repeat(3 * MAX_CHUNK_BYTES));
        let chunks = encode(&[huge.clone(), record("small")]);
        assert_eq!(
            chunks.iter().map(|c| c.records).collect::<Vec<_>>(),
            vec![1, 1]
        );
        assert_eq!(
            Record::decode(stored(&chunks[0], 0).record(0).unwrap()).unwrap(),
            huge
        );
    }

    #[test]
    fn keys_sort_in_log_order_and_seek_to_the_holding_chunk() {
        let (a, b) = (key(0, 9), key(10, 10));
        let legacy = 11u64.to_be_bytes();
        let c = key(12, 300);
        assert!(a.as_slice() < b.as_slice());
        assert!(b.as_slice() < legacy.as_slice());
        assert!(legacy.as_slice() < c.as_slice());
        // The first entry at or after an offset's seek key is the one holding it.
        assert!(seek_key(5).as_slice() <= a.as_slice());
        assert!(seek_key(10).as_slice() > a.as_slice() && seek_key(10).as_slice() <= b.as_slice());
        assert!(seek_key(11).as_slice() <= legacy.as_slice());
        assert!(seek_key(300).as_slice() <= c.as_slice() && seek_key(300) > legacy);
        assert_eq!(offsets(&c), Some((12, 300)));
        assert_eq!(offsets(&legacy), Some((11, 11)));
    }

    #[test]
    fn an_entry_written_before_chunks_reads_as_its_one_record() {
        let original = record("legacy");
        let chunk = Chunk::new(
            &7u64.to_be_bytes(),
            Slice::from(original.encode().as_slice()),
        )
        .unwrap();
        assert_eq!((chunk.first, chunk.last), (7, 7));
        assert_eq!(Record::decode(chunk.record(7).unwrap()).unwrap(), original);
    }

    #[test]
    fn damaged_entries_are_refused_not_misread() {
        let chunks = encode(&[record("a"), record("b")]);
        let bytes = &chunks[0].bytes;
        // The key claims more records than the table has room for.
        let claims_more = Chunk::new(&key(0, 1_000_000), Slice::from(bytes.as_slice()));
        assert!(claims_more.is_err());
        // A record's end points past the records.
        let mut bad = bytes.clone();
        let at = bad.len() - END_BYTES;
        bad[at..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Chunk::new(&key(0, 1), Slice::from(bad.as_slice())).is_err());
        assert!(Chunk::new(&[1, 2, 3], Slice::from(bytes.as_slice())).is_err());
        assert!(Chunk::new(&key(5, 4), Slice::from(bytes.as_slice())).is_err());
    }
}
