//! The JSON shapes the HTTP API answers with for stored things: consumed messages, dead letters,
//! stations and schemas. Values stored as JSON come back as JSON (`value`); anything else as
//! base64 (`value_base64`).

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::backends::queues::{Delivery, LogStats, StoredDeadLetter};
use crate::formats::rules::OnFailure;
use crate::formats::{FormatKind, SchemaSettings};
use crate::metrics::{Rates, Totals};
use crate::model::time::rfc3339_ms;
use crate::model::{BackendRef, ContentKind, DeadLetter, Record, Retention, Violation};
use crate::pipeline::{StationStats, REQUEST_ID_HEADER};
use crate::registry::stations::{Accept, Framing, RejectionAlert};
use crate::registry::{Schema, Station, VersionRules};

/// A stored value: embedded JSON when it is JSON, base64 otherwise.
#[derive(Debug, Serialize)]
pub struct ValueView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
}

impl ValueView {
    pub fn new(value: &Bytes, content: &ContentKind) -> Self {
        if content.is_json() {
            if let Ok(raw) = serde_json::from_slice::<&RawValue>(value) {
                return Self {
                    value: Some(raw.to_owned()),
                    value_base64: None,
                };
            }
        }
        Self {
            value: None,
            value_base64: Some(base64::engine::general_purpose::STANDARD.encode(value)),
        }
    }
}

/// A message handed to a consumer.
#[derive(Debug, Serialize)]
pub struct MessageView {
    pub offset: u64,
    /// The partition of a partitioned Kafka topic the offset is in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub headers: BTreeMap<String, String>,
    #[serde(flatten)]
    pub value: ValueView,
    pub schema_version: Option<u32>,
    pub delivery: u32,
    pub received_at: String,
}

impl From<Delivery> for MessageView {
    fn from(delivery: Delivery) -> Self {
        let record = delivery.record;
        Self {
            offset: delivery.position.offset,
            partition: delivery.position.partition,
            key: key_text(&record),
            headers: record.headers.iter().cloned().collect(),
            value: ValueView::new(&record.value, &record.content),
            schema_version: record.schema_version,
            delivery: delivery.delivery,
            received_at: rfc3339_ms(record.received_at_ms),
        }
    }
}

/// A violation as shown: with the data-contract rule or constraint it is about, when it is one.
#[derive(Debug, Serialize)]
pub struct ViolationView {
    #[serde(flatten)]
    pub violation: Violation,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl From<Violation> for ViolationView {
    fn from(violation: Violation) -> Self {
        Self {
            rule: violation.rule_name().map(str::to_owned),
            violation,
        }
    }
}

/// A dead letter, as browsed.
#[derive(Debug, Serialize)]
pub struct DeadLetterView {
    pub id: String,
    pub station: String,
    pub error: String,
    pub schema: Option<String>,
    pub schema_version: Option<u32>,
    pub violations: Vec<ViolationView>,
    pub received_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub content_type: Option<String>,
    #[serde(flatten)]
    pub value: ValueView,
    /// Offset in the station the dead letter was replayed to, once it was.
    pub replayed_to: Option<u64>,
    /// Its partition, on a partitioned Kafka topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed_to_partition: Option<u32>,
    /// The `Sluice-Request-Id` of the request that sent the message.
    pub request_id: Option<String>,
}

impl From<StoredDeadLetter> for DeadLetterView {
    fn from(stored: StoredDeadLetter) -> Self {
        let StoredDeadLetter {
            id,
            record,
            replayed_to,
        } = stored;
        let key = key_text(&record);
        let value = ValueView::new(&record.value, &record.content);
        let dead = record.dead_letter.unwrap_or_else(|| DeadLetter {
            station: String::new(),
            error: "unknown".into(),
            schema: None,
            schema_version: record.schema_version,
            violations: Vec::new(),
            content_type: None,
        });
        let request_id = record
            .headers
            .iter()
            .find(|(name, _)| name == REQUEST_ID_HEADER)
            .map(|(_, value)| value.clone());
        Self {
            id: id.to_string(),
            request_id,
            station: dead.station,
            error: dead.error,
            schema: dead.schema,
            schema_version: dead.schema_version,
            violations: dead
                .violations
                .into_iter()
                .map(ViolationView::from)
                .collect(),
            received_at: rfc3339_ms(record.received_at_ms),
            key,
            headers: record.headers.into_iter().collect(),
            content_type: dead.content_type,
            value,
            replayed_to: replayed_to.map(|p| p.offset),
            replayed_to_partition: replayed_to.and_then(|p| p.partition),
        }
    }
}

/// A station binding with its counts.
#[derive(Debug, Serialize)]
pub struct StationView {
    pub name: String,
    pub schema: Option<String>,
    pub pass_through: bool,
    pub accept: Option<Accept>,
    /// `[first, last]` schema versions producers may use.
    pub accepted_versions: Option<[u32; 2]>,
    pub backend: BackendRef,
    pub dlq: bool,
    pub retention: Retention,
    #[serde(with = "humantime_serde")]
    pub ack_timeout: std::time::Duration,
    pub max_deliveries: u32,
    pub framing: Framing,
    /// What the station's log holds; null when its backend cannot tell now.
    pub messages: Option<LogStats>,
    /// What its dead-letter log holds; null when its backend cannot tell now.
    pub dead_letters: Option<LogStats>,
    /// Messages produced since the gateway started: accepted, rejected by the schema, errors.
    pub produced: Totals,
    /// Messages per second: now (over the last minute) and the last two minutes' history.
    pub rates: Rates,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<RejectionAlert>,
}

impl StationView {
    pub fn new(station: &Station, stats: StationStats) -> Self {
        let (first, last) = station.accepted_versions();
        Self {
            name: station.name.clone(),
            schema: station.schema.as_ref().map(|s| s.name.clone()),
            pass_through: station.schema.is_none(),
            accept: station.schema.as_ref().map(|_| station.accept),
            accepted_versions: station.schema.as_ref().map(|_| [first, last]),
            backend: station.backend.clone(),
            dlq: station.dlq,
            retention: station.retention,
            ack_timeout: station.ack_timeout,
            max_deliveries: station.max_deliveries,
            framing: station.framing,
            messages: stats.messages,
            dead_letters: stats.dead_letters,
            produced: station.metrics.totals(),
            rates: station.metrics.rates(),
            alert: station.alert,
        }
    }
}

/// A schema and its versions; its `schema.toml` settings (compatibility…) are flattened in.
#[derive(Debug, Serialize)]
pub struct SchemaView {
    pub name: String,
    pub format: FormatKind,
    pub versions: Vec<u32>,
    /// Global ids of the versions, in the same order.
    pub ids: Vec<u32>,
    pub newest: u32,
    #[serde(flatten)]
    pub settings: SchemaSettings,
}

impl From<&Schema> for SchemaView {
    fn from(schema: &Schema) -> Self {
        Self {
            name: schema.name.clone(),
            format: schema.format,
            versions: schema.versions().iter().map(|v| v.version).collect(),
            ids: schema.versions().iter().map(|v| v.id).collect(),
            newest: schema.newest(),
            settings: schema.settings.clone(),
        }
    }
}

/// One version of a schema, with its source text.
#[derive(Debug, Serialize)]
pub struct SchemaVersionView {
    pub name: String,
    pub version: u32,
    pub id: u32,
    pub format: FormatKind,
    pub file: String,
    pub schema: String,
    /// The version's data-contract rules, when it has a rules file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<RulesView>,
}

/// A version's rules file and its rules, each with the messages it has failed.
#[derive(Debug, Serialize)]
pub struct RulesView {
    pub file: String,
    pub rules: Vec<RuleView>,
}

#[derive(Debug, Serialize)]
pub struct RuleView {
    pub name: String,
    pub expr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
    pub on_failure: OnFailure,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Messages it has failed since this gateway compiled the version.
    pub failures: u64,
}

impl From<&VersionRules> for RulesView {
    fn from(rules: &VersionRules) -> Self {
        Self {
            file: rules.file.clone(),
            rules: rules
                .set
                .rules()
                .iter()
                .map(|rule| RuleView {
                    name: rule.name.clone(),
                    expr: rule.expr.clone(),
                    doc: rule.doc.clone(),
                    on_failure: rule.on_failure,
                    path: rule.path.clone(),
                    failures: rule.failures(),
                })
                .collect(),
        }
    }
}

fn key_text(record: &Record) -> Option<String> {
    record
        .key
        .as_ref()
        .map(|k| String::from_utf8_lossy(k).into_owned())
}
