//! A stored message: its value, key and headers, when it arrived, the schema version that judged
//! it, and for a dead letter why it was refused. [`Record::encode`] is the embedded store's
//! on-disk encoding (postcard, field by field in declaration order), so the order of `Record`'s
//! fields is part of the storage format.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Headers, Violation};

/// Where a message was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Position {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    pub offset: u64,
}

impl Position {
    pub fn offset(offset: u64) -> Self {
        Self {
            partition: None,
            offset,
        }
    }

    pub fn in_partition(partition: u32, offset: u64) -> Self {
        Self {
            partition: Some(partition),
            offset,
        }
    }

    /// Reads the text form written by [`Position`]'s `Display`: `15`, or `2-15` (partition 2,
    /// offset 15).
    pub fn parse(text: &str) -> Option<Self> {
        let number = |digits: &str| {
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse().ok())
                .flatten()
        };
        match text.split_once('-') {
            None => Some(Self::offset(number(text)?)),
            Some((partition, offset)) => Some(Self::in_partition(
                number(partition)?.try_into().ok()?,
                number(offset)?,
            )),
        }
    }

    /// The position after this one in the same log.
    pub fn next(self) -> Self {
        Self {
            offset: self.offset + 1,
            ..self
        }
    }
}

/// A dead letter's id, and a browsing cursor: the offset, after its partition on a partitioned log.
impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.partition {
            Some(partition) => write!(f, "{partition}-{}", self.offset),
            None => write!(f, "{}", self.offset),
        }
    }
}

/// How a stored value is encoded: consumers get JSON back as JSON, and everything else with its
/// media type. Part of the stored encoding: new kinds are only ever appended, so records stored
/// before a kind existed still read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContentKind {
    Json,
    /// Bytes of no known type (`application/octet-stream`).
    Binary,
    /// Protobuf's binary encoding.
    Protobuf,
    /// An Avro datum, or Avro's single-object encoding.
    Avro,
    /// Confluent's wire format: magic byte, schema id, the format's binary encoding.
    ConfluentFramed,
    /// A GraphQL document.
    GraphQl,
    /// Another media type, as the producer sent it (its essence, lowercase).
    Other(String),
}

impl ContentKind {
    /// The media type consumers are told the value has.
    pub fn media_type(&self) -> &str {
        match self {
            Self::Json => "application/json",
            Self::Binary => "application/octet-stream",
            Self::Protobuf => "application/x-protobuf",
            Self::Avro => "avro/binary",
            Self::ConfluentFramed => "application/vnd.confluent",
            Self::GraphQl => "application/graphql",
            Self::Other(media_type) => media_type,
        }
    }

    pub fn is_json(&self) -> bool {
        *self == Self::Json
    }
}

/// Bytes a stored record takes beyond its value, key and headers when it is not a dead letter:
/// varint lengths and the fixed fields, at most.
const ENCODED_RECORD_OVERHEAD: usize = 48;

/// A stored message. `received_at_ms` stays the first field (retention reads only it) and
/// `deliver_after_ms` the second (consumers read only the two).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub received_at_ms: u64,
    /// Not delivered to consumers before this time (ms since the Unix epoch), if set.
    pub deliver_after_ms: Option<u64>,
    pub key: Option<Bytes>,
    pub headers: Headers,
    pub value: Bytes,
    pub content: ContentKind,
    pub schema_version: Option<u32>,
    /// Present on records of a dead-letter queue.
    pub dead_letter: Option<DeadLetter>,
    /// What remote backends put in headers; not part of the embedded store's encoding.
    #[serde(skip)]
    pub provenance: Provenance,
}

/// Where a record came from and how it is encoded: sent by remote backends as message headers
/// (`sluice-schema`, `sluice-schema-id`, `content-type`, `Nats-Msg-Id`...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    pub schema: Option<Arc<str>>,
    pub schema_id: Option<u32>,
    /// The media type of the stored value.
    pub content_type: Option<Cow<'static, str>>,
    /// The producer's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
}

/// Why a message was dead-lettered, kept with the original bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub station: String,
    /// Error code, e.g. `schema_violation`.
    pub error: String,
    pub schema: Option<String>,
    pub schema_version: Option<u32>,
    pub violations: Vec<Violation>,
    pub content_type: Option<String>,
}

impl Record {
    /// The record in the store's encoding, written into one allocation sized up front (an
    /// accepted message's encoding is its value, key and headers plus a few varints).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_into(Vec::with_capacity(self.encoded_len_estimate()))
    }

    /// Appends the record in the store's encoding to `buffer`.
    pub fn encode_into(&self, buffer: Vec<u8>) -> Vec<u8> {
        postcard::to_extend(self, buffer).expect("records always serialize")
    }

    /// About how many bytes [`Record::encode`] takes: exact or a little more for an accepted
    /// message, less for a dead letter (whose reasons it does not count).
    pub fn encoded_len_estimate(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            // Each string is prefixed by its varint length: 1-2 bytes for a header's.
            .map(|(name, value)| name.len() + value.len() + 4)
            .sum();
        let key = self.key.as_ref().map_or(0, Bytes::len);
        let content = match &self.content {
            ContentKind::Other(media_type) => media_type.len(),
            _ => 0,
        };
        self.value.len() + key + headers + content + ENCODED_RECORD_OVERHEAD
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    /// Reads only `received_at_ms` from an encoded record.
    pub fn decode_received_at(bytes: &[u8]) -> Result<u64, postcard::Error> {
        postcard::take_from_bytes::<u64>(bytes).map(|(at, _)| at)
    }

    /// Reads only `deliver_after_ms` from an encoded record.
    pub fn decode_deliver_after(bytes: &[u8]) -> Result<Option<u64>, postcard::Error> {
        postcard::take_from_bytes::<(u64, Option<u64>)>(bytes).map(|((_, after), _)| after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_exposes_its_timestamp() {
        let record = Record {
            received_at_ms: 1_700_000_000_123,
            deliver_after_ms: Some(1_700_000_060_000),
            key: Some(Bytes::from_static(b"k")),
            headers: vec![("trace".into(), "1".into())].into(),
            value: Bytes::from_static(b"{\"a\":1}"),
            content: ContentKind::Json,
            schema_version: Some(2),
            dead_letter: Some(DeadLetter {
                station: "orders".into(),
                error: "schema_violation".into(),
                schema: Some("orders".into()),
                schema_version: Some(2),
                violations: vec![Violation::whole_message("not valid JSON")],
                content_type: None,
            }),
            provenance: Provenance::default(),
        };
        let bytes = record.encode();
        assert_eq!(
            bytes,
            postcard::to_stdvec(&record).unwrap(),
            "the stored encoding is postcard's, byte for byte, so existing stores read back"
        );
        assert_eq!(Record::decode(&bytes).unwrap(), record);
        assert_eq!(
            Record::decode_received_at(&bytes).unwrap(),
            1_700_000_000_123
        );
        assert_eq!(
            Record::decode_deliver_after(&bytes).unwrap(),
            Some(1_700_000_060_000)
        );
    }

    #[test]
    fn positions_read_back_from_their_text() {
        for position in [Position::offset(15), Position::in_partition(2, 0)] {
            assert_eq!(Position::parse(&position.to_string()), Some(position));
        }
        assert_eq!(Position::in_partition(2, 15).to_string(), "2-15");
        for bad in ["", "-1", "1-", "a", "1-2-3", "+4", "99999999999-1"] {
            assert_eq!(Position::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn content_kinds_keep_their_stored_tags_and_name_their_media_type() {
        // Stores written before the typed kinds hold only tags 0 and 1.
        assert_eq!(postcard::to_stdvec(&ContentKind::Json).unwrap(), [0]);
        assert_eq!(postcard::to_stdvec(&ContentKind::Binary).unwrap(), [1]);
        let other = ContentKind::Other("text/plain".into());
        let bytes = postcard::to_stdvec(&other).unwrap();
        assert_eq!(postcard::from_bytes::<ContentKind>(&bytes).unwrap(), other);
        assert_eq!(other.media_type(), "text/plain");
        assert_eq!(ContentKind::Avro.media_type(), "avro/binary");
        assert!(ContentKind::Json.is_json() && !ContentKind::Binary.is_json());
    }
}
