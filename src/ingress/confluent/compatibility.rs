//! `POST /compatibility/...`: a candidate schema compiled as a new version of its subject would be
//! — inside the serving snapshot's repository, whose parsed files it shares, so its references
//! resolve as a committed version's would — and judged against published versions under the
//! subject's compatibility mode. The work is bounded: the candidate's size
//! ([`MAX_CANDIDATE_BYTES`]), and how many compile at once (one per core, off the async workers).

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;

use super::candidates::{check_references, read_candidate, Candidate, MAX_CANDIDATE_BYTES};
use super::path::ConfluentPath;
use super::subjects::{pick, resolve, Subject};
use super::{reply, snapshot, Answer, ConfluentError, Shared, DEFAULT_SCHEMA_TYPE};
use crate::formats::{CompileInput, CompiledSchema};
use crate::registry::load::schema_root;
use crate::registry::{compat, Schema, SchemaVersion, Snapshot};

#[derive(Debug, Deserialize)]
pub(super) struct CompatibilityParams {
    #[serde(default)]
    verbose: bool,
}

/// Against which published versions a candidate is judged.
enum Against {
    /// One version: a number, `latest` or `-1`.
    Version(String),
    /// Every version, as the subject's mode decides (transitive modes judge them all).
    All,
}

pub(super) async fn compatibility_with_version(
    State(pipeline): Shared,
    ConfluentPath((subject, version)): ConfluentPath<(String, String)>,
    Query(params): Query<CompatibilityParams>,
    body: Body,
) -> Answer {
    let candidate = read_candidate(body).await?;
    let snapshot = snapshot(&pipeline)?;
    judge(
        snapshot,
        subject,
        Against::Version(version),
        candidate,
        params.verbose,
    )
    .await
}

pub(super) async fn compatibility_with_all(
    State(pipeline): Shared,
    ConfluentPath(subject): ConfluentPath<String>,
    Query(params): Query<CompatibilityParams>,
    body: Body,
) -> Answer {
    let candidate = read_candidate(body).await?;
    let snapshot = snapshot(&pipeline)?;
    judge(snapshot, subject, Against::All, candidate, params.verbose).await
}

/// Compiles and judges on the blocking pool, at most one compilation per core at once.
async fn judge(
    snapshot: Arc<Snapshot>,
    subject: String,
    against: Against,
    candidate: Candidate,
    verbose: bool,
) -> Answer {
    static COMPILING: OnceLock<Semaphore> = OnceLock::new();
    let permits = COMPILING.get_or_init(|| {
        Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    });
    let _permit = permits
        .acquire()
        .await
        .expect("the semaphore is never closed");
    tokio::task::spawn_blocking(move || {
        let schema = match resolve(&snapshot, &subject)? {
            Subject::Schema(schema) => schema.clone(),
            Subject::Support(_) => {
                return Err(ConfluentError::invalid_schema(format!(
                    "subject `{subject}` is a file other schemas refer to: it has no versions of its own to judge a change against; check the schemas that refer to it"
                )))
            }
        };
        let versions: &[SchemaVersion] = match &against {
            Against::All => schema.versions(),
            Against::Version(version) => std::slice::from_ref(pick(&schema, &subject, version)?),
        };
        check_references(&snapshot, &candidate)?;
        let compiled = compile_candidate(&snapshot, &schema, &candidate)?;
        Ok(answer(&schema, compiled.as_ref(), versions, verbose))
    })
    .await
    .expect("a compatibility check panicked")
}

fn answer(
    schema: &Schema,
    candidate: &dyn CompiledSchema,
    against: &[SchemaVersion],
    verbose: bool,
) -> Response {
    let mode = schema.settings.compatibility;
    let breaks = compat::breaking_changes(mode, candidate, against);
    let mut body = json!({ "is_compatible": breaks.is_empty() });
    if verbose {
        let messages: Vec<String> = breaks
            .iter()
            .map(|(older, change)| {
                format!(
                    "{}: {}",
                    change.rule,
                    compat::describe(mode, *older, change)
                )
            })
            .collect();
        body["messages"] = json!(messages);
    }
    reply(body)
}

/// Compiles a candidate schema text as a new version of `schema` would be, beside its newest
/// version in the snapshot's repository.
fn compile_candidate(
    snapshot: &Snapshot,
    schema: &Schema,
    candidate: &Candidate,
) -> Result<Arc<dyn CompiledSchema>, ConfluentError> {
    debug_assert!(candidate.schema.len() <= MAX_CANDIDATE_BYTES);
    let declared = candidate
        .schema_type
        .as_deref()
        .unwrap_or(DEFAULT_SCHEMA_TYPE);
    let expected = schema.format.confluent_type();
    if !declared.eq_ignore_ascii_case(expected) {
        return Err(ConfluentError::invalid_schema(format!(
            "subject `{}` holds {expected} schemas, not {declared}",
            schema.name
        )));
    }
    let newest = schema
        .version(schema.newest())
        .expect("a schema has versions");
    let (folder, file_name) = newest.file.rsplit_once('/').unwrap_or(("", &newest.file));
    let extension = file_name.rsplit_once('.').map_or("", |(_, ext)| ext);
    let file = format!("{folder}/candidate.{extension}");
    let input = CompileInput {
        file: &file,
        schema_root: schema_root(&snapshot.files),
        text: &candidate.schema,
        repo: &snapshot.files,
        settings: &schema.settings,
        prepared: None,
    };
    schema
        .format
        .compile(&input)
        .map_err(|e| ConfluentError::invalid_schema(format!("Invalid schema: {e}")))
}
