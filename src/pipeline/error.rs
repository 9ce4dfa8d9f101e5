//! What the pipeline answers when it cannot do what was asked: the domain's own errors, in the
//! domain's words. They know no protocol; each front end decides the status every variant gets
//! (in `ingress`), with exhaustive matches, so a new variant cannot compile until every front end
//! has decided.

use serde::Serialize;

use crate::backends::BackendError;
use crate::model::{Position, Violation};
use crate::registry::stations::Accept;

/// Why a message was judged invalid, as reported to the producer.
#[derive(Debug, Clone, Serialize)]
pub struct ViolationReport {
    pub schema: String,
    pub version: u32,
    pub violations: Vec<Violation>,
    /// Where the message was dead-lettered, if the station has a DLQ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dlq_id: Option<String>,
    /// What the message broke.
    #[serde(skip)]
    pub breach: Breach,
}

/// What refused a message: its schema, or the version's data-contract rules (which run only on
/// messages the schema accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Breach {
    #[default]
    Schema,
    Rules,
}

impl ViolationReport {
    /// The error a producer gets for this report.
    pub fn into_error(self) -> PipelineError {
        match self.breach {
            Breach::Schema => PipelineError::SchemaViolation(Box::new(self)),
            Breach::Rules => PipelineError::RuleViolation(Box::new(self)),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PipelineError {
    #[error("no station named `{0}`")]
    UnknownStation(String),
    #[error("no schema named `{0}`")]
    UnknownSchema(String),
    /// A version asked for by number in a schema read.
    #[error("schema `{schema}` has no version {version}")]
    SchemaVersionNotFound { schema: String, version: u32 },
    /// A version a producer asked to be judged by.
    #[error("schema `{schema}` has no version {version}; its newest is {newest}")]
    UnknownSchemaVersion {
        schema: String,
        version: u32,
        newest: u32,
    },
    #[error("station `{station}` accepts schema versions \"{accept}\", not version {version}")]
    VersionNotAccepted {
        station: String,
        accept: Accept,
        version: u32,
    },
    #[error("message does not match schema `{}` version {}", .0.schema, .0.version)]
    SchemaViolation(Box<ViolationReport>),
    /// The schema accepted the message; a `dlq` rule of its version did not.
    #[error("message breaks the rules of schema `{}` version {}", .0.schema, .0.version)]
    RuleViolation(Box<ViolationReport>),
    /// A request that contradicts itself or names something malformed, such as a group name.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    MessageTooLarge { limit: usize },
    /// A header a backend could not carry, or one in the names Sluice and its engines reserve.
    #[error("header `{name}`: {reason}")]
    InvalidHeader { name: String, reason: &'static str },
    /// The key, the headers or the `Idempotency-Key` past their limit.
    #[error("{what}: over {limit_key} = {limit}")]
    MetadataTooLarge {
        what: String,
        limit_key: &'static str,
        limit: usize,
    },
    #[error("batch has more than {limit} messages (limits.max_batch_messages)")]
    TooManyMessages { limit: usize },
    #[error("station `{station}` judges {format} messages; send Content-Type: {expected}")]
    UnsupportedMediaType {
        station: String,
        format: &'static str,
        expected: &'static str,
    },
    #[error("{0}")]
    Backend(#[from] BackendError),
    #[error("station `{station}` has no dead letter {id}")]
    DeadLetterNotFound { station: String, id: String },
    #[error("dead letter {id} of station `{station}` was already replayed, to {}", position_words(.to))]
    AlreadyReplayed {
        station: String,
        id: String,
        to: Position,
    },
    #[error("dead letter {id} of station `{station}` is being replayed by another request; ask again shortly")]
    ReplayInProgress { station: String, id: String },
    /// A message its schema or rules refused, whose dead letter could not be stored: neither
    /// the station nor its DLQ holds it, so it is not answered as refused-and-kept.
    #[error("message does not match schema `{}` version {} ({}), and its dead letter could not be stored: {cause}; retry it", .report.schema, .report.version, first_reason(.report))]
    DeadLetterNotKept {
        report: Box<ViolationReport>,
        cause: BackendError,
    },
    /// A consumer group new to a station that has as many as it may.
    #[error("station `{station}` has {limit} consumer groups already (limits.max_groups_per_station); use one of them")]
    TooManyGroups { station: String, limit: usize },
    #[error("{0}")]
    RegistryNotReady(String),
    #[error("the schema source cannot be read: {0}")]
    SourceUnavailable(String),
    #[error(
        "another request with this Idempotency-Key was being stored and did not finish; retry"
    )]
    IdempotencyKeyAbandoned,
}

/// The first violation of a report, as `path: reason`.
fn first_reason(report: &ViolationReport) -> String {
    match report.violations.first() {
        Some(v) if v.path.is_empty() => v.reason.clone(),
        Some(v) => format!("{}: {}", v.path, v.reason),
        None => "no reason given".into(),
    }
}

/// `offset 15`, or `partition 2, offset 15`.
fn position_words(position: &Position) -> String {
    match position.partition {
        Some(partition) => format!("partition {partition}, offset {}", position.offset),
        None => format!("offset {}", position.offset),
    }
}

impl PipelineError {
    /// Whether this answer settles a message for good, so a retry with the same
    /// `Idempotency-Key` gets it again: a message stored, or refused by its schema.
    pub fn settles_the_message(&self) -> bool {
        self.violation_report().is_some()
    }

    /// The report of a message its schema or its rules refused.
    pub fn violation_report(&self) -> Option<&ViolationReport> {
        match self {
            Self::SchemaViolation(report) | Self::RuleViolation(report) => Some(report),
            _ => None,
        }
    }
}

/// A schema violation as tests of every front end use it: `orders` v2, `/items/0/qty` too small,
/// dead-lettered as `7`.
#[cfg(test)]
pub(crate) fn sample_violation() -> PipelineError {
    PipelineError::SchemaViolation(Box::new(ViolationReport {
        schema: "orders".into(),
        version: 2,
        violations: vec![Violation {
            path: "/items/0/qty".into(),
            schema_path: "/properties/items".into(),
            reason: "-1 is less than the minimum of 1".into(),
        }],
        dlq_id: Some("7".into()),
        breach: Breach::Schema,
    }))
}
