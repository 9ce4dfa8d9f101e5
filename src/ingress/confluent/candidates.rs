//! Schemas sent by clients: the body of lookups, registrations and compatibility checks, read
//! within a bound, and matched against the published versions — text and references alike.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::path::ConfluentPath;
use super::subjects::{resolve, FormatParams, Shown, Subject};
use super::{reply, snapshot, Answer, ConfluentError, Shared};
use crate::ingress::errors::ApiError;
use crate::ingress::http::read::{collect_within, BodyError};
use crate::registry::references::Reference;
use crate::registry::Snapshot;

/// The largest candidate body taken: above the largest schema files seen in public catalogues.
pub(super) const MAX_CANDIDATE_BYTES: usize = 8 * 1024 * 1024;

/// The body of lookup, register and compatibility calls.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate {
    pub schema: String,
    #[serde(default)]
    pub schema_type: Option<String>,
    #[serde(default)]
    pub references: Vec<CandidateReference>,
}

/// A reference as a client sends it.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub(super) struct CandidateReference {
    pub name: String,
    pub subject: String,
    pub version: i64,
}

impl CandidateReference {
    fn names(&self, reference: &Reference) -> bool {
        self.name == reference.name
            && self.subject == reference.subject
            && self.version == i64::from(reference.version)
    }
}

/// Reads and parses a candidate body of at most [`MAX_CANDIDATE_BYTES`].
pub(super) async fn read_candidate(body: Body) -> Result<Candidate, ConfluentError> {
    let bytes = collect_within(body, MAX_CANDIDATE_BYTES)
        .await
        .map_err(|error| match error {
            BodyError::TooLarge | BodyError::EncodedTooLarge { .. } => ConfluentError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                413,
                format!("the schema is larger than the limit of {MAX_CANDIDATE_BYTES} bytes"),
            ),
            BodyError::DecodingBusy { limit } => {
                ConfluentError::not_ready(ApiError::DecodingBusy { limit }.to_string())
            }
            BodyError::Unreadable(sentence) => ConfluentError::bad_request(sentence),
        })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ConfluentError::bad_request(format!(
            "the body must be {{\"schema\": \"...\", \"schemaType\": \"...\", \"references\": [...]}}: {e}"
        ))
    })
}

/// Refuses a candidate whose references name a subject version this registry does not have.
pub(super) fn check_references(
    snapshot: &Snapshot,
    candidate: &Candidate,
) -> Result<(), ConfluentError> {
    for reference in &candidate.references {
        let version = reference.version.to_string();
        let found = resolve(snapshot, &reference.subject)
            .and_then(|subject| subject.version(&reference.subject, &version));
        if found.is_err() {
            return Err(ConfluentError::invalid_schema(format!(
                "Invalid schema: reference `{}` names subject `{}` version {}, which this registry does not have",
                reference.name, reference.subject, reference.version
            )));
        }
    }
    Ok(())
}

/// The published version of `subject` that is the candidate: the same text (JSON texts compared
/// as JSON values) and, when the candidate lists references, the same references.
fn matching<'a>(
    snapshot: &Snapshot,
    subject: &Subject<'a>,
    candidate: &Candidate,
) -> Option<Shown<'a>> {
    let as_json = |text: &str| serde_json::from_str::<Value>(text).ok();
    let wanted = as_json(&candidate.schema);
    let same_references = |shown: &Shown<'_>| {
        candidate.references.is_empty()
            || (candidate.references.len() == shown.references().len()
                && candidate
                    .references
                    .iter()
                    .all(|c| shown.references().iter().any(|r| c.names(r))))
    };
    subject
        .versions()
        .into_iter()
        .filter_map(|number| subject.version("", &number.to_string()).ok())
        .find(|shown| {
            let text = shown.text(snapshot);
            let same_text = match &wanted {
                Some(wanted) if shown.format().text_is_json() => {
                    as_json(&text).as_ref() == Some(wanted)
                }
                _ => text.trim() == candidate.schema.trim(),
            };
            same_text && same_references(shown)
        })
}

pub(super) async fn lookup(
    State(pipeline): Shared,
    ConfluentPath(name): ConfluentPath<String>,
    body: Body,
) -> Answer {
    let candidate = read_candidate(body).await?;
    let snapshot = snapshot(&pipeline)?;
    let subject = resolve(&snapshot, &name)?;
    let found = matching(&snapshot, &subject, &candidate)
        .ok_or_else(|| ConfluentError::schema_not_found("Schema not found"))?;
    Ok(reply(found.body(
        &name,
        &snapshot,
        &FormatParams::default(),
    )))
}

pub(super) async fn register(
    State(pipeline): Shared,
    ConfluentPath(name): ConfluentPath<String>,
    body: Body,
) -> Answer {
    let candidate = read_candidate(body).await?;
    let snapshot = snapshot(&pipeline)?;
    let read_only = || ConfluentError::read_only(pipeline.registry().source());
    let subject = resolve(&snapshot, &name).map_err(|_| read_only())?;
    let found = matching(&snapshot, &subject, &candidate).ok_or_else(read_only)?;
    Ok(reply(json!({ "id": found.id() })))
}

pub(super) async fn read_only(State(pipeline): Shared) -> ConfluentError {
    ConfluentError::read_only(pipeline.registry().source())
}
