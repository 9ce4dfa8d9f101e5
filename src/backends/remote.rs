//! The headers a remote backend (Kafka, NATS) stores with a record, both ways: written from a
//! [`Record`] when it is sent, and read back into one when it is consumed or browsed. Sluice's own
//! headers (schema, version, id, content type, first-delivery time; for dead letters the error,
//! station and violations) come first, then the producer's.

use base64::Engine as _;
use bytes::Bytes;

use crate::formats::PayloadEncoding;
use crate::model::{DeadLetter, Provenance, Record, Violation};

pub const SCHEMA: &str = "sluice-schema";
pub const SCHEMA_VERSION: &str = "sluice-schema-version";
pub const SCHEMA_ID: &str = "sluice-schema-id";
pub const CONTENT_TYPE: &str = "content-type";
/// Not delivered to consumers before this time (ms since the Unix epoch).
pub const DELIVER_AFTER: &str = "sluice-deliver-after";
pub const ERROR: &str = "sluice-error";
pub const STATION: &str = "sluice-station";
pub const REASON: &str = "sluice-reason";
pub const VIOLATIONS: &str = "sluice-violations";
/// The record's key, on a backend whose messages have none of their own (NATS).
pub const KEY: &str = "sluice-key";
/// The record's key in base64, in place of [`KEY`] when the key is not text a header can hold.
pub const KEY_BASE64: &str = "sluice-key-base64";
/// JetStream's de-duplication id, from the producer's `Idempotency-Key`.
pub const NATS_MSG_ID: &str = "Nats-Msg-Id";

/// Headers Sluice writes, never handed back as the producer's.
const OWN: [&str; 12] = [
    SCHEMA,
    SCHEMA_VERSION,
    SCHEMA_ID,
    CONTENT_TYPE,
    DELIVER_AFTER,
    ERROR,
    STATION,
    REASON,
    VIOLATIONS,
    KEY,
    KEY_BASE64,
    NATS_MSG_ID,
];

/// Whether producers may not send a header of this name: Sluice writes its own `sluice-*`
/// headers and `content-type` on every remote backend, and JetStream acts on `Nats-*` ones.
pub fn is_reserved_header(name: &str) -> bool {
    let starts = |prefix: &str| {
        name.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    starts("sluice-") || starts("nats-") || name.eq_ignore_ascii_case(CONTENT_TYPE)
}

/// The header value a record's key is stored as where messages have no key of their own: the
/// key itself when it is text a header can hold ([`KEY`]), else its base64 ([`KEY_BASE64`]).
pub fn key_header(key: &[u8]) -> (&'static str, std::borrow::Cow<'_, str>) {
    match std::str::from_utf8(key) {
        Ok(text) if !text.chars().any(char::is_control) => (KEY, text.into()),
        _ => (
            KEY_BASE64,
            base64::engine::general_purpose::STANDARD.encode(key).into(),
        ),
    }
}

/// `text` with every control character written as an escape (`\n`, `\u{7f}`), so that a
/// reason quoting a message cannot break a header that holds it.
pub fn header_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect::<String>()
        .into()
}

/// Calls `header(name, value)` for each header a remote backend sends with `record`: Sluice's
/// own (schema, version, id, content type; for dead letters the error, station and violations),
/// then the producer's. Nothing is allocated for an accepted message's headers.
/// [`record_from_remote`] reads them back.
pub fn for_each_remote_header(record: &Record, mut header: impl FnMut(&str, &str)) {
    let mut digits = NumberText::default();
    let provenance = &record.provenance;
    if let Some(schema) = &provenance.schema {
        header(SCHEMA, schema);
    }
    if let (Some(version), None) = (record.schema_version, &record.dead_letter) {
        header(SCHEMA_VERSION, digits.of(version.into()));
    }
    if let Some(id) = provenance.schema_id {
        header(SCHEMA_ID, digits.of(id.into()));
    }
    if let Some(content_type) = &provenance.content_type {
        header(CONTENT_TYPE, content_type);
    }
    if let Some(at) = record.deliver_after_ms {
        header(DELIVER_AFTER, digits.of(at));
    }
    if let Some(dead) = &record.dead_letter {
        header(ERROR, &dead.error);
        header(STATION, &dead.station);
        if let Some(schema) = &dead.schema {
            header(SCHEMA, schema);
        }
        if let Some(version) = dead.schema_version {
            header(SCHEMA_VERSION, digits.of(version.into()));
        }
        if let Some(first) = dead.violations.first() {
            if first.path.is_empty() {
                header(REASON, &header_safe(&first.reason));
            } else {
                header(
                    REASON,
                    &header_safe(&format!("{}: {}", first.path, first.reason)),
                );
            }
        }
        let violations = serde_json::to_string(&dead.violations).expect("violations serialize");
        header(VIOLATIONS, &violations);
        if let Some(content_type) = &dead.content_type {
            header(CONTENT_TYPE, &header_safe(content_type));
        }
    }
    for (name, value) in &record.headers {
        header(name, value);
    }
}

/// A number written as decimal text on the stack.
#[derive(Default)]
struct NumberText([u8; 20]);

impl NumberText {
    fn of(&mut self, mut n: u64) -> &str {
        let mut at = self.0.len();
        loop {
            at -= 1;
            self.0[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        std::str::from_utf8(&self.0[at..]).expect("digits are ASCII")
    }
}

/// The record that [`for_each_remote_header`] wrote `headers` for: Sluice's headers back in their
/// fields, a dead letter's reasons back in its [`DeadLetter`], the rest as the producer's headers
/// in the order stored.
pub fn record_from_remote<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    value: Bytes,
    key: Option<Bytes>,
    stored_at_ms: u64,
) -> Record {
    let mut own: [Option<&str>; OWN.len()] = [None; OWN.len()];
    let mut carried = Vec::new();
    for (name, text) in headers {
        match OWN
            .iter()
            .position(|known| known.eq_ignore_ascii_case(name))
        {
            Some(at) if own[at].is_none() => own[at] = Some(text),
            _ => carried.push((name.to_owned(), text.to_owned())),
        }
    }
    let get = |name: &str| own[OWN.iter().position(|known| *known == name).expect("known")];
    let number = |name: &str| get(name).and_then(|text| text.trim().parse::<u64>().ok());
    let content_type = get(CONTENT_TYPE);
    let schema_version = number(SCHEMA_VERSION).and_then(|v| u32::try_from(v).ok());
    let dead_letter = get(ERROR).map(|error| DeadLetter {
        station: get(STATION).unwrap_or_default().to_owned(),
        error: error.to_owned(),
        schema: get(SCHEMA).map(str::to_owned),
        schema_version,
        violations: get(VIOLATIONS)
            .and_then(|json| serde_json::from_str(json).ok())
            .or_else(|| get(REASON).map(|reason| vec![Violation::whole_message(reason)]))
            .unwrap_or_default(),
        content_type: content_type.map(str::to_owned),
    });
    let provenance = if dead_letter.is_some() {
        Provenance::default()
    } else {
        Provenance {
            schema: get(SCHEMA).map(Into::into),
            schema_id: number(SCHEMA_ID).and_then(|id| u32::try_from(id).ok()),
            content_type: content_type.map(|t| t.to_owned().into()),
            idempotency_key: None,
        }
    };
    Record {
        received_at_ms: stored_at_ms,
        deliver_after_ms: number(DELIVER_AFTER),
        key: key
            .or_else(|| get(KEY).map(|k| Bytes::copy_from_slice(k.as_bytes())))
            .or_else(|| {
                let encoded = get(KEY_BASE64)?;
                let decoded = base64::engine::general_purpose::STANDARD.decode(encoded);
                decoded.ok().map(Bytes::from)
            }),
        headers: carried.into(),
        value,
        content: PayloadEncoding::from_content_type(content_type).content_kind(),
        schema_version,
        dead_letter,
        provenance,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::model::{ContentKind, DeadLetter, Provenance, Violation};

    #[test]
    fn remote_headers_name_the_schema_and_the_dead_letters_reason() {
        let mut record = Record {
            received_at_ms: 0,
            deliver_after_ms: None,
            key: None,
            headers: vec![("trace".into(), "t-1".into())].into(),
            value: Bytes::from_static(b"{}"),
            content: ContentKind::Json,
            schema_version: Some(12),
            dead_letter: None,
            provenance: Provenance {
                schema: Some("orders".into()),
                schema_id: Some(4_000_000_007),
                content_type: Some("application/json".into()),
                idempotency_key: None,
            },
        };
        let collect = |record: &Record| {
            let mut headers = Vec::new();
            for_each_remote_header(record, |name, value| {
                headers.push(format!("{name}={value}"))
            });
            headers
        };
        assert_eq!(
            collect(&record),
            [
                "sluice-schema=orders",
                "sluice-schema-version=12",
                "sluice-schema-id=4000000007",
                "content-type=application/json",
                "trace=t-1"
            ]
        );
        record.provenance = Provenance::default();
        record.dead_letter = Some(DeadLetter {
            station: "orders".into(),
            error: "schema_violation".into(),
            schema: Some("orders".into()),
            schema_version: Some(0),
            violations: vec![Violation {
                path: "/qty".into(),
                schema_path: "/properties/qty".into(),
                reason: "0 is less than 1".into(),
            }],
            content_type: None,
        });
        let headers = collect(&record);
        assert!(headers.contains(&"sluice-reason=/qty: 0 is less than 1".to_owned()));
        let pairs: Vec<(String, String)> = headers
            .iter()
            .map(|h| h.split_once('=').unwrap())
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        let back = record_from_remote(
            pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            record.value.clone(),
            None,
            0,
        );
        assert_eq!(
            back.dead_letter, record.dead_letter,
            "a dead letter reads back whole"
        );
        assert!(headers.contains(&"sluice-schema-version=0".to_owned()));
        assert!(headers
            .iter()
            .any(|h| h.starts_with("sluice-violations=[{")));
    }

    #[test]
    fn an_accepted_record_reads_back_from_its_headers() {
        let record = Record {
            received_at_ms: 7,
            deliver_after_ms: Some(1_800_000_000_000),
            key: Some(Bytes::from_static(b"k-1")),
            headers: vec![
                ("trace".into(), "t-1".into()),
                ("Trace".into(), "t-2".into()),
            ]
            .into(),
            value: Bytes::from_static(b"\x08\x01"),
            content: ContentKind::Protobuf,
            schema_version: Some(3),
            dead_letter: None,
            provenance: Provenance {
                schema: Some("orders".into()),
                schema_id: Some(12),
                content_type: Some("application/x-protobuf".into()),
                idempotency_key: None,
            },
        };
        let mut headers = Vec::new();
        for_each_remote_header(&record, |name, value| {
            headers.push((name.to_owned(), value.to_owned()))
        });
        headers.push((KEY.to_owned(), "k-1".to_owned()));
        let back = record_from_remote(
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            record.value.clone(),
            None,
            7,
        );
        assert_eq!(back, record);
        assert_eq!(back.provenance, record.provenance);
    }
}
