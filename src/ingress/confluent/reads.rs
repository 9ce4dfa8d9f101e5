//! The registry API's reads: subjects, versions, schemas by id, references, types, modes.

use axum::extract::{Query, State};
use axum::response::Response;
use serde_json::json;

use super::path::ConfluentPath;
use super::subjects::{by_id, referenced_by as referring, resolve, FormatParams, Subject};
use super::{reply, snapshot, text, Answer, Shared};
use crate::formats::{Compatibility, FormatKind};

pub(super) async fn subjects(State(pipeline): Shared) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let schemas = snapshot.schemas().map(|s| s.name.as_str());
    let support = snapshot.support_subjects().map(|s| s.subject.as_str());
    let mut names: Vec<&str> = schemas.chain(support).collect();
    names.sort_unstable();
    Ok(reply(json!(names)))
}

pub(super) async fn versions(
    State(pipeline): Shared,
    ConfluentPath(subject): ConfluentPath<String>,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    Ok(reply(json!(resolve(&snapshot, &subject)?.versions())))
}

pub(super) async fn version(
    State(pipeline): Shared,
    ConfluentPath((subject, version)): ConfluentPath<(String, String)>,
    Query(params): Query<FormatParams>,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let found = resolve(&snapshot, &subject)?.version(&subject, &version)?;
    Ok(reply(found.body(&subject, &snapshot, &params)))
}

pub(super) async fn version_text(
    State(pipeline): Shared,
    ConfluentPath((subject, version)): ConfluentPath<(String, String)>,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let found = resolve(&snapshot, &subject)?.version(&subject, &version)?;
    Ok(text(&found.text(&snapshot)))
}

/// The ids of the schemas whose references name this version.
pub(super) async fn referenced_by(
    State(pipeline): Shared,
    ConfluentPath((subject, version)): ConfluentPath<(String, String)>,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let found = resolve(&snapshot, &subject)?.version(&subject, &version)?;
    let ids = referring(&snapshot, found.subject(), found.number());
    Ok(reply(json!(ids)))
}

pub(super) async fn schema_by_id(
    State(pipeline): Shared,
    ConfluentPath(id): ConfluentPath<String>,
    Query(params): Query<FormatParams>,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let found = by_id(&snapshot, &id)?;
    let mut body = json!({ "schema": found.schema_string(&snapshot, &params) });
    found.annotate(&mut body);
    Ok(reply(body))
}

pub(super) async fn schema_text_by_id(
    State(pipeline): Shared,
    ConfluentPath(id): ConfluentPath<String>,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    Ok(text(&by_id(&snapshot, &id)?.text(&snapshot)))
}

pub(super) async fn versions_of_id(
    State(pipeline): Shared,
    ConfluentPath(id): ConfluentPath<String>,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let found = by_id(&snapshot, &id)?;
    Ok(reply(
        json!([{ "subject": found.subject(), "version": found.number() }]),
    ))
}

pub(super) async fn subjects_of_id(
    State(pipeline): Shared,
    ConfluentPath(id): ConfluentPath<String>,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    Ok(reply(json!([by_id(&snapshot, &id)?.subject()])))
}

/// The `schemaType`s of the formats Confluent's clients read (those framed as Confluent's).
pub(super) async fn types() -> Response {
    let types: Vec<&str> = FormatKind::ALL
        .iter()
        .filter(|format| format.frames_as_confluent())
        .map(|format| format.confluent_type())
        .collect();
    reply(json!(types))
}

pub(super) async fn global_config() -> Response {
    reply(json!({ "compatibilityLevel": level(Compatibility::default()) }))
}

/// A schema's mode; a support subject has none of its own (it is checked through the schemas
/// that refer to it), which Confluent spells `NONE`.
pub(super) async fn subject_config(
    State(pipeline): Shared,
    ConfluentPath(subject): ConfluentPath<String>,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let mode = match resolve(&snapshot, &subject)? {
        Subject::Schema(schema) => schema.settings.compatibility,
        Subject::Support(_) => Compatibility::None,
    };
    Ok(reply(json!({ "compatibilityLevel": level(mode) })))
}

/// Sluice keeps no topic associations: clients fall back to `<topic>-value`, which resolves to the
/// station's schema.
pub(super) async fn associations() -> Response {
    reply(json!([]))
}

pub(super) async fn mode() -> Response {
    reply(json!({ "mode": "READONLY" }))
}

/// A mode in Confluent's spelling, e.g. `BACKWARD_TRANSITIVE`.
fn level(mode: Compatibility) -> String {
    mode.as_str().to_ascii_uppercase()
}
