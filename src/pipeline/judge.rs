//! Judging one message against its station, before anything is written: the size limit, the
//! pass-through of schema-less stations, the choice of the schema version, validation, and what is
//! built from the verdict — the record to store, or the dead letter and the report for the
//! producer. Pure: no I/O, no clock but the time validation takes.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::error::{Breach, PipelineError, ViolationReport};
use super::rules;
use super::{Incoming, REQUEST_ID_HEADER};
use crate::formats::confluent::split_frame;
use crate::formats::{MessageLimits, Normalize, PayloadEncoding, Valid};
use crate::metrics::ValidationTally;
use crate::model::{ContentKind, DeadLetter, Provenance, Record, Violation};
use crate::registry::stations::Framing;
use crate::registry::{Schema, SchemaVersion, Station, VersionRefusal};

/// The media type of a message stored in Confluent's wire format.
const CONFLUENT_FRAMED: &str = "application/vnd.confluent";

/// The outcome of judging one message.
#[derive(Debug)]
pub(super) enum Judged {
    /// Store this record on the station's log.
    Valid(Record),
    /// The message failed its schema: this dead letter, and the report for the producer.
    Invalid(Record, ViolationReport),
    /// The request cannot be judged at all (too large, wrong media type, unknown version).
    Refused(PipelineError),
}

/// What judges the messages of one request to one station.
pub(super) struct Judge<'a> {
    pub station: &'a Station,
    /// The station's schema name, shared by every record of the request.
    pub schema_name: Option<Arc<str>>,
    pub max_message_bytes: usize,
    pub limits: &'a MessageLimits,
    pub received_at_ms: u64,
}

/// The version that judges a message, and the bytes it judges.
struct Choice<'a> {
    version: &'a SchemaVersion,
    /// The payload, or what follows a Confluent frame's schema id.
    body: Bytes,
    /// A Confluent frame that cannot be read: the verdict, without validating.
    broken_frame: Option<Violation>,
}

impl<'a> Judge<'a> {
    pub fn new(station: &'a Station, max_message_bytes: usize, limits: &'a MessageLimits) -> Self {
        Self {
            station,
            schema_name: station.schema.as_ref().map(|s| Arc::from(s.name.as_str())),
            max_message_bytes,
            limits,
            received_at_ms: crate::model::time::now_ms(),
        }
    }

    /// Judges one message; the time validation takes is added to `tally`.
    pub fn judge(&self, message: Incoming, tally: &mut ValidationTally) -> Judged {
        if message.payload.len() > self.max_message_bytes {
            return Judged::Refused(PipelineError::MessageTooLarge {
                limit: self.max_message_bytes,
            });
        }
        let encoding = message.encoding();
        let Some(schema) = &self.station.schema else {
            return Judged::Valid(self.pass_through(message, &encoding));
        };
        if !schema.format.accepts(&encoding) {
            return Judged::Refused(unsupported_media_type(&self.station.name, schema));
        }
        let choice = match self.choose_version(schema, &message, &encoding) {
            Ok(choice) => choice,
            Err(refusal) => return Judged::Refused(refusal),
        };
        let verdict = match choice.broken_frame {
            Some(violation) => Err((vec![violation], Breach::Schema)),
            None => self.validate(schema, choice.version, &choice.body, &encoding, tally),
        };
        match verdict {
            Ok((valid, warnings)) => {
                let mut record = self.stored(message, &encoding, schema, choice.version, valid);
                if !warnings.is_empty() {
                    let named = (rules::WARNINGS_HEADER.to_owned(), warnings.join(", "));
                    record.headers.push(named);
                }
                Judged::Valid(record)
            }
            Err((violations, breach)) => {
                let refused = (choice.version, violations, breach);
                self.invalid(message, &encoding, schema, refused)
            }
        }
    }

    /// A message its schema or its rules refused: the dead letter, and the report.
    fn invalid(
        &self,
        message: Incoming,
        encoding: &PayloadEncoding,
        schema: &Schema,
        (version, violations, breach): (&SchemaVersion, Vec<Violation>, Breach),
    ) -> Judged {
        let report = ViolationReport {
            schema: schema.name.clone(),
            version: version.version,
            violations: violations.clone(),
            dlq_id: None,
            breach,
        };
        let dead = self.dead_letter(message, encoding, schema, version, violations, breach);
        Judged::Invalid(dead, report)
    }

    /// A schema-less station stores what it was sent, as it was sent.
    fn pass_through(&self, message: Incoming, encoding: &PayloadEncoding) -> Record {
        let content_type = match &message.content_type {
            Some(sent) => Cow::Owned(sent.clone()),
            None => Cow::Borrowed("application/json"),
        };
        let mut record = record(message, encoding.content_kind(), None, self.received_at_ms);
        record.provenance.content_type = Some(content_type);
        record
    }

    /// The version that judges the message: the one its Confluent frame names, the one the
    /// producer asked for, the one the payload says wrote it, or the newest accepted.
    fn choose_version(
        &self,
        schema: &'a Schema,
        message: &Incoming,
        encoding: &PayloadEncoding,
    ) -> Result<Choice<'a>, PipelineError> {
        let (requested, body, broken_frame) = if *encoding == PayloadEncoding::ConfluentFramed {
            match read_frame(schema, message) {
                Ok((version, body)) => (Some(version), body, None),
                Err(FrameError::Refused(error)) => return Err(error),
                Err(FrameError::Invalid(violation)) => (
                    message.schema_version,
                    message.payload.clone(),
                    Some(violation),
                ),
            }
        } else {
            // Only when the producer named no version: a payload may name the one that wrote it.
            let requested = message.schema_version.or_else(|| {
                schema
                    .versions()
                    .iter()
                    .rev()
                    .find(|v| {
                        v.compiled
                            .written_with_this_version(&message.payload, encoding)
                    })
                    .map(|v| v.version)
            });
            (requested, message.payload.clone(), None)
        };
        match self.station.pick_version(requested) {
            Ok(version) => Ok(Choice {
                version: version.expect("a station with a schema picks a version"),
                body,
                broken_frame,
            }),
            Err(refusal) => Err(version_refusal(self.station, requested, refusal)),
        }
    }

    /// Validates `body` against `version`, timing it into `tally`.
    fn validate(
        &self,
        schema: &Schema,
        version: &SchemaVersion,
        body: &Bytes,
        encoding: &PayloadEncoding,
        tally: &mut ValidationTally,
    ) -> Result<(Valid, Vec<String>), (Vec<Violation>, Breach)> {
        // Confluent framing wraps the format's binary encoding.
        let normalize = match self.station.framing {
            Framing::Confluent => Normalize::Binary,
            Framing::None => self.station.normalize,
        };
        let started = Instant::now();
        let station = Some(self.station.name.as_str());
        let verdict = rules::validate(version, (body, encoding), normalize, self.limits, station);
        tally.add(schema.format, started.elapsed());
        verdict
    }

    /// The record a valid message is stored as: as sent, normalized, or Confluent-framed.
    fn stored(
        &self,
        message: Incoming,
        encoding: &PayloadEncoding,
        schema: &Schema,
        version: &SchemaVersion,
        valid: Valid,
    ) -> Record {
        let (value, content, content_type) = if *encoding == PayloadEncoding::ConfluentFramed {
            let value = message.payload.clone();
            (value, ContentKind::ConfluentFramed, CONFLUENT_FRAMED)
        } else if self.station.framing == Framing::Confluent {
            let value = version.compiled.confluent_frame(version.id, &valid.value);
            (value, ContentKind::ConfluentFramed, CONFLUENT_FRAMED)
        } else if valid.is_json {
            (valid.value, ContentKind::Json, "application/json")
        } else {
            let binary = schema.format.binary_content_type();
            (valid.value, schema.format.binary_content(), binary)
        };
        let mut record = record(message, content, Some(version.version), self.received_at_ms);
        record.value = value;
        record.provenance.schema = self.schema_name.clone();
        record.provenance.schema_id = Some(version.id);
        record.provenance.content_type = Some(Cow::Borrowed(content_type));
        record
    }

    /// The dead letter of a message that failed: the bytes as sent, with why and who sent them.
    fn dead_letter(
        &self,
        message: Incoming,
        encoding: &PayloadEncoding,
        schema: &Schema,
        version: &SchemaVersion,
        violations: Vec<Violation>,
        breach: Breach,
    ) -> Record {
        let content_type = message.content_type.clone();
        let request_id = message.request_id.clone();
        let mut record = record(
            message,
            encoding.content_kind(),
            Some(version.version),
            self.received_at_ms,
        );
        record.dead_letter = Some(DeadLetter {
            station: self.station.name.clone(),
            error: match breach {
                Breach::Schema => "schema_violation".into(),
                Breach::Rules => "rule_violation".into(),
            },
            schema: Some(schema.name.clone()),
            schema_version: Some(version.version),
            violations,
            content_type,
        });
        if let Some(id) = request_id {
            record
                .headers
                .push((REQUEST_ID_HEADER.to_owned(), id.to_string()));
        }
        record
    }
}

pub(super) fn unsupported_media_type(station: &str, schema: &Schema) -> PipelineError {
    PipelineError::UnsupportedMediaType {
        station: station.to_owned(),
        format: schema.format.display_name(),
        expected: schema.format.expected_content_types(),
    }
}

fn record(
    message: Incoming,
    content: ContentKind,
    version: Option<u32>,
    received_at_ms: u64,
) -> Record {
    Record {
        received_at_ms,
        deliver_after_ms: message.deliver_after_ms,
        key: message.key,
        headers: message.headers,
        value: message.payload,
        content,
        schema_version: version,
        dead_letter: None,
        provenance: Provenance {
            idempotency_key: message.idempotency_key,
            ..Provenance::default()
        },
    }
}

/// Why a Confluent frame cannot be judged.
enum FrameError {
    /// The request contradicts itself: a 400.
    Refused(PipelineError),
    /// The frame is broken or names a version of another schema: a violation, dead-lettered.
    Invalid(Violation),
}

/// Splits a framed message and resolves its schema id to a version of `schema`.
fn read_frame(schema: &Schema, message: &Incoming) -> Result<(u32, Bytes), FrameError> {
    let (id, body) = split_frame(&message.payload).map_err(FrameError::Invalid)?;
    let version = schema.version_by_id(id).ok_or_else(|| {
        FrameError::Invalid(Violation::whole_message(format!(
            "schema id {id} is not a version of schema `{}` (its ids: {})",
            schema.name,
            schema
                .versions()
                .iter()
                .map(|v| format!("v{} = {}", v.version, v.id))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    })?;
    match message.schema_version {
        Some(header) if header != version.version => {
            Err(FrameError::Refused(PipelineError::InvalidRequest(format!(
                "Sluice-Schema-Version says {header} but the frame's schema id {id} is version {}",
                version.version
            ))))
        }
        _ => Ok((version.version, body)),
    }
}

fn version_refusal(
    station: &Station,
    requested: Option<u32>,
    refusal: VersionRefusal,
) -> PipelineError {
    let version = requested.unwrap_or_default();
    match refusal {
        VersionRefusal::Unknown { newest } => PipelineError::UnknownSchemaVersion {
            schema: station
                .schema
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            version,
            newest,
        },
        VersionRefusal::NotAccepted { accept } => PipelineError::VersionNotAccepted {
            station: station.name.clone(),
            accept,
            version,
        },
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::registry::load::snapshot_of;
    use crate::registry::Snapshot;

    const ORDER_V1: &str =
        r#"{"type":"object","required":["id"],"properties":{"id":{"type":"string"}}}"#;
    const ORDER_V2: &str = r#"{"type":"object","required":["id","qty"],"properties":{"id":{"type":"string"},"qty":{"type":"integer","minimum":1}}}"#;

    fn snapshot() -> Snapshot {
        snapshot_of(&[
            ("orders/v1.json", ORDER_V1),
            ("orders/v2.json", ORDER_V2),
            ("orders/schema.toml", "compatibility = \"none\"\n"),
            (
                "stations.toml",
                "[[station]]\nname = \"any\"\nschema = \"orders\"\naccept = \">=1\"\n\n\
                 [[station]]\nname = \"latest\"\nschema = \"orders\"\n\n\
                 [[station]]\nname = \"raw\"\n",
            ),
        ])
    }

    fn judge(snapshot: &Snapshot, station: &str, message: Incoming) -> Judged {
        let limits = MessageLimits::default();
        let station = snapshot.station(station).unwrap();
        Judge::new(station, 64, &limits).judge(message, &mut ValidationTally::default())
    }

    fn json(payload: &str) -> Incoming {
        Incoming {
            payload: Bytes::from(payload.to_owned()),
            content_type: Some("application/json".into()),
            ..Incoming::default()
        }
    }

    fn version_of(judged: Judged) -> Result<Option<u32>, PipelineError> {
        match judged {
            Judged::Valid(record) => Ok(record.schema_version),
            Judged::Invalid(record, _) => Ok(record.schema_version),
            Judged::Refused(error) => Err(error),
        }
    }

    #[test]
    fn the_newest_accepted_version_judges_unless_the_producer_names_one() {
        let snapshot = snapshot();
        let message = || json(r#"{"id":"a","qty":2}"#);
        assert_eq!(
            version_of(judge(&snapshot, "any", message())).unwrap(),
            Some(2)
        );
        let asked = |v| Incoming {
            schema_version: Some(v),
            ..message()
        };
        assert_eq!(
            version_of(judge(&snapshot, "any", asked(1))).unwrap(),
            Some(1)
        );
        assert!(matches!(
            version_of(judge(&snapshot, "any", asked(3))),
            Err(PipelineError::UnknownSchemaVersion { newest: 2, .. })
        ));
        assert!(matches!(
            version_of(judge(&snapshot, "latest", asked(1))),
            Err(PipelineError::VersionNotAccepted { version: 1, .. })
        ));
    }

    #[test]
    fn a_schema_less_station_stores_what_it_was_sent_with_its_type() {
        let snapshot = snapshot();
        let message = Incoming {
            payload: Bytes::from_static(b"plain words"),
            content_type: Some("text/plain; charset=utf-8".into()),
            ..Incoming::default()
        };
        let Judged::Valid(record) = judge(&snapshot, "raw", message) else {
            panic!("a schema-less station takes anything")
        };
        assert_eq!(record.value, Bytes::from_static(b"plain words"));
        assert_eq!(record.content, ContentKind::Other("text/plain".into()));
        assert_eq!(record.schema_version, None);
        assert_eq!(
            record.provenance.content_type.as_deref(),
            Some("text/plain; charset=utf-8")
        );
    }

    #[test]
    fn a_failed_message_becomes_a_dead_letter_that_says_why_and_who_sent_it() {
        let snapshot = snapshot();
        let message = Incoming {
            request_id: Some("req-7".into()),
            headers: vec![("trace".into(), "t-1".into())].into(),
            ..json(r#"{"id":"a","qty":0}"#)
        };
        let Judged::Invalid(dead, report) = judge(&snapshot, "any", message) else {
            panic!("qty 0 is below the minimum")
        };
        assert_eq!((report.schema.as_str(), report.version), ("orders", 2));
        assert_eq!(report.violations[0].path, "/qty");
        assert_eq!(dead.value, Bytes::from_static(br#"{"id":"a","qty":0}"#));
        let why = dead.dead_letter.expect("a dead letter says why");
        assert_eq!(
            (why.station.as_str(), why.error.as_str(), why.schema_version),
            ("any", "schema_violation", Some(2))
        );
        assert_eq!(why.violations, report.violations);
        assert_eq!(why.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            dead.headers,
            crate::model::Headers::from(vec![
                ("trace".to_owned(), "t-1".to_owned()),
                (REQUEST_ID_HEADER.to_owned(), "req-7".to_owned())
            ])
        );
    }

    #[test]
    fn a_message_past_the_limit_or_of_another_type_is_refused_unjudged() {
        let snapshot = snapshot();
        let large = json(&format!(r#"{{"id":"{}"}}"#, "x".repeat(64)));
        assert!(matches!(
            judge(&snapshot, "any", large),
            Judged::Refused(PipelineError::MessageTooLarge { limit: 64 })
        ));
        let avro = Incoming {
            content_type: Some("avro/binary".into()),
            ..json("{}")
        };
        assert!(matches!(
            judge(&snapshot, "any", avro),
            Judged::Refused(PipelineError::UnsupportedMediaType { .. })
        ));
    }

    #[test]
    fn a_confluent_frame_names_its_version_by_id() {
        let snapshot = snapshot();
        let v1 = snapshot.schema("orders").unwrap().version(1).unwrap().id;
        let framed = |id: u32, version: Option<u32>| {
            let mut payload = vec![0u8];
            payload.extend(id.to_be_bytes());
            payload.extend(br#"{"id":"a"}"#);
            Incoming {
                payload: Bytes::from(payload),
                content_type: Some("application/vnd.confluent".into()),
                schema_version: version,
                ..Incoming::default()
            }
        };
        let Judged::Valid(record) = judge(&snapshot, "any", framed(v1, None)) else {
            panic!("v1 takes an order without qty")
        };
        assert_eq!(record.schema_version, Some(1));
        assert_eq!(record.content, ContentKind::ConfluentFramed);
        assert!(matches!(
            judge(&snapshot, "any", framed(v1, Some(2))),
            Judged::Refused(PipelineError::InvalidRequest(_))
        ));
        let Judged::Invalid(_, report) = judge(&snapshot, "any", framed(7, None)) else {
            panic!("an id of no version of the schema is a violation")
        };
        assert!(report.violations[0].reason.contains("schema id 7"));
    }
}
