//! The Confluent Schema Registry read API over the serving snapshot, so Confluent serializers,
//! deserializers, consoles and tools work against Sluice unchanged.
//!
//! Subjects are schema names; `<station>-value` (and `-key`), the names Confluent's default
//! `TopicNameStrategy` asks for, resolve to the station's schema. Ids are Sluice's global ids.
//! Registering a schema that is already a published version answers its id, as Confluent does;
//! every other write answers 405 and points to the git repository, where schemas change. Answers
//! and errors use Confluent's JSON shapes and its `application/vnd.schemaregistry.v1+json` type.

mod error;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::ConfluentPath;
use super::http::rights::{Right, Routes};
use crate::formats::{Compatibility, CompileInput, CompiledSchema, FormatKind, RepoFiles};
use crate::pipeline::Pipeline;
use crate::registry::{compat, load, Schema, SchemaVersion, Snapshot};
pub use error::ConfluentError;

/// Confluent's media type for registry answers.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Shared = State<Arc<Pipeline>>;
type Answer = Result<Response, ConfluentError>;

/// The registry API's routes, added to the HTTP API's: every one needs a known token.
#[rustfmt::skip]
pub fn routes(routes: Routes) -> Routes {
    use Method as M;
    use Right::Read;
    routes
        .at(M::GET, "/subjects", Read, subjects)
        .at(M::POST, "/subjects/{subject}", Read, lookup)
        .at(M::DELETE, "/subjects/{subject}", Read, read_only)
        .at(M::GET, "/subjects/{subject}/versions", Read, versions)
        .at(M::POST, "/subjects/{subject}/versions", Read, register)
        .at(M::GET, "/subjects/{subject}/versions/{version}", Read, version)
        .at(M::DELETE, "/subjects/{subject}/versions/{version}", Read, read_only)
        .at(M::GET, "/subjects/{subject}/versions/{version}/schema", Read, version_text)
        .at(M::GET, "/subjects/{subject}/versions/{version}/referencedby", Read, referenced_by)
        .at(M::GET, "/schemas/ids/{id}", Read, schema_by_id)
        .at(M::GET, "/schemas/ids/{id}/schema", Read, schema_text_by_id)
        .at(M::GET, "/schemas/ids/{id}/versions", Read, versions_of_id)
        .at(M::GET, "/schemas/ids/{id}/subjects", Read, subjects_of_id)
        .at(M::GET, "/schemas/types", Read, types)
        .at(M::POST, "/compatibility/subjects/{subject}/versions/{version}", Read, compatibility_with_version)
        .at(M::POST, "/compatibility/subjects/{subject}/versions", Read, compatibility_with_all)
        .at(M::GET, "/config", Read, global_config)
        .at(M::PUT, "/config", Read, read_only)
        .at(M::GET, "/config/{subject}", Read, subject_config)
        .at(M::PUT, "/config/{subject}", Read, read_only)
        .at(M::DELETE, "/config/{subject}", Read, read_only)
        .at(M::GET, "/mode", Read, mode)
        .at(M::PUT, "/mode", Read, read_only)
        .at(M::GET, "/associations/resources/{namespace}/{resource}", Read, associations)
}

fn reply(body: Value) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn text(body: &str) -> Response {
    let mut response = body.to_owned().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// The serving snapshot, or 503 while nothing is loaded.
fn snapshot(pipeline: &Pipeline) -> Result<Arc<Snapshot>, ConfluentError> {
    match pipeline.registry().not_ready_reason() {
        Some(reason) => Err(ConfluentError::not_ready(reason)),
        None => Ok(pipeline.registry().snapshot()),
    }
}

/// The schema a subject names: a schema name, or `<station>-value` / `<station>-key`.
fn resolve<'a>(snapshot: &'a Snapshot, subject: &str) -> Result<&'a Arc<Schema>, ConfluentError> {
    if let Some(schema) = snapshot.schema(subject) {
        return Ok(schema);
    }
    subject
        .strip_suffix("-value")
        .or_else(|| subject.strip_suffix("-key"))
        .and_then(|station| snapshot.station(station))
        .and_then(|station| station.schema.as_ref())
        .ok_or_else(|| ConfluentError::subject_not_found(subject))
}

fn pick_version<'a>(
    schema: &'a Schema,
    subject: &str,
    version: &str,
) -> Result<&'a SchemaVersion, ConfluentError> {
    let number = match version {
        "latest" | "-1" => schema.newest(),
        v => v
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ConfluentError::invalid_version(v))?,
    };
    schema
        .version(number)
        .ok_or_else(|| ConfluentError::version_not_found(subject, version))
}

/// Confluent's `schemaType`; absent for Avro, its default.
fn schema_type(format: FormatKind) -> Option<&'static str> {
    match format {
        FormatKind::Avro => None,
        FormatKind::JsonSchema => Some("JSON"),
        FormatKind::Protobuf => Some("PROTOBUF"),
        FormatKind::GraphQl => Some("GRAPHQL"),
    }
}

/// `?format=` of the schema-reading endpoints: `serialized` asks for a Protobuf schema as its
/// base64 `FileDescriptorProto` (what Confluent's Protobuf deserializers read).
#[derive(Debug, Default, Deserialize)]
struct FormatParams {
    #[serde(default)]
    format: Option<String>,
}

/// The schema text as asked for: the source, or the serialized descriptor.
fn schema_string(version: &SchemaVersion, params: &FormatParams) -> String {
    use base64::Engine as _;
    match params.format.as_deref() {
        Some("serialized") => match version.compiled.serialized_descriptor() {
            Some(bytes) => base64::engine::general_purpose::STANDARD.encode(bytes),
            None => version.text.to_string(),
        },
        _ => version.text.to_string(),
    }
}

fn version_body(
    subject: &str,
    schema: &Schema,
    version: &SchemaVersion,
    params: &FormatParams,
) -> Value {
    let mut body = json!({
        "subject": subject,
        "version": version.version,
        "id": version.id,
        "schema": schema_string(version, params),
    });
    if let Some(kind) = schema_type(schema.format) {
        body["schemaType"] = json!(kind);
    }
    body
}

async fn subjects(State(pipeline): Shared) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let names: Vec<&str> = snapshot.schemas().map(|s| s.name.as_str()).collect();
    Ok(reply(json!(names)))
}

async fn versions(
    State(pipeline): Shared,
    ConfluentPath(subject): ConfluentPath<String>,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let schema = resolve(&snapshot, &subject)?;
    let numbers: Vec<u32> = schema.versions().iter().map(|v| v.version).collect();
    Ok(reply(json!(numbers)))
}

async fn version(
    State(pipeline): Shared,
    ConfluentPath((subject, version)): ConfluentPath<(String, String)>,
    Query(params): Query<FormatParams>,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let schema = resolve(&snapshot, &subject)?;
    let found = pick_version(schema, &subject, &version)?;
    Ok(reply(version_body(&subject, schema, found, &params)))
}

async fn version_text(
    State(pipeline): Shared,
    ConfluentPath((subject, version)): ConfluentPath<(String, String)>,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let schema = resolve(&snapshot, &subject)?;
    Ok(text(&pick_version(schema, &subject, &version)?.text))
}

async fn referenced_by(
    State(pipeline): Shared,
    ConfluentPath((subject, version)): ConfluentPath<(String, String)>,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let schema = resolve(&snapshot, &subject)?;
    pick_version(schema, &subject, &version)?;
    Ok(reply(json!([])))
}

fn by_id(snapshot: &Snapshot, id: &str) -> Result<(Arc<Schema>, u32), ConfluentError> {
    let not_found = || ConfluentError::schema_not_found(format!("Schema {id} not found"));
    let id: u32 = id.parse().map_err(|_| not_found())?;
    let (schema, version) = snapshot.version_by_id(id).ok_or_else(not_found)?;
    Ok((schema.clone(), version.version))
}

async fn schema_by_id(
    State(pipeline): Shared,
    ConfluentPath(id): ConfluentPath<String>,
    Query(params): Query<FormatParams>,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let (schema, number) = by_id(&snapshot, &id)?;
    let version = schema.version(number).expect("found by id");
    let mut body = json!({ "schema": schema_string(version, &params) });
    if let Some(kind) = schema_type(schema.format) {
        body["schemaType"] = json!(kind);
    }
    Ok(reply(body))
}

async fn schema_text_by_id(
    State(pipeline): Shared,
    ConfluentPath(id): ConfluentPath<String>,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let (schema, number) = by_id(&snapshot, &id)?;
    Ok(text(&schema.version(number).expect("found by id").text))
}

async fn versions_of_id(
    State(pipeline): Shared,
    ConfluentPath(id): ConfluentPath<String>,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let (schema, number) = by_id(&snapshot, &id)?;
    Ok(reply(
        json!([{ "subject": schema.name, "version": number }]),
    ))
}

async fn subjects_of_id(
    State(pipeline): Shared,
    ConfluentPath(id): ConfluentPath<String>,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let (schema, _) = by_id(&snapshot, &id)?;
    Ok(reply(json!([schema.name])))
}

async fn types() -> Response {
    reply(json!(["JSON", "PROTOBUF", "AVRO"]))
}

/// The body of lookup, register and compatibility calls.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CandidateBody {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    references: Vec<Value>,
}

fn parse_candidate(body: &Bytes) -> Result<CandidateBody, ConfluentError> {
    serde_json::from_slice(body).map_err(|e| {
        ConfluentError::bad_request(format!(
            "the body must be {{\"schema\": \"...\", \"schemaType\": \"...\"}}: {e}"
        ))
    })
}

/// The published version whose text is the candidate's (JSON texts compared as JSON values).
fn matching_version<'a>(schema: &'a Schema, candidate: &str) -> Option<&'a SchemaVersion> {
    let as_json = |text: &str| serde_json::from_str::<Value>(text).ok();
    let wanted = as_json(candidate);
    schema.versions().iter().find(|version| match &wanted {
        Some(wanted) if schema.format != FormatKind::Protobuf => {
            as_json(&version.text).as_ref() == Some(wanted)
        }
        _ => version.text.trim() == candidate.trim(),
    })
}

async fn lookup(
    State(pipeline): Shared,
    ConfluentPath(subject): ConfluentPath<String>,
    body: Bytes,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let schema = resolve(&snapshot, &subject)?;
    let candidate = parse_candidate(&body)?;
    let found = matching_version(schema, &candidate.schema)
        .ok_or_else(|| ConfluentError::schema_not_found("Schema not found"))?;
    Ok(reply(version_body(
        &subject,
        schema,
        found,
        &FormatParams::default(),
    )))
}

async fn register(
    State(pipeline): Shared,
    ConfluentPath(subject): ConfluentPath<String>,
    body: Bytes,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let read_only = || ConfluentError::read_only(pipeline.registry().source());
    let schema = resolve(&snapshot, &subject).map_err(|_| read_only())?;
    let candidate = parse_candidate(&body)?;
    let found = matching_version(schema, &candidate.schema).ok_or_else(read_only)?;
    Ok(reply(json!({ "id": found.id })))
}

async fn read_only(State(pipeline): Shared) -> ConfluentError {
    ConfluentError::read_only(pipeline.registry().source())
}

#[derive(Debug, Deserialize)]
struct CompatibilityParams {
    #[serde(default)]
    verbose: bool,
}

async fn compatibility_with_version(
    State(pipeline): Shared,
    ConfluentPath((subject, version)): ConfluentPath<(String, String)>,
    Query(params): Query<CompatibilityParams>,
    body: Bytes,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let schema = resolve(&snapshot, &subject)?;
    let against = pick_version(schema, &subject, &version)?;
    let candidate = compile_candidate(&snapshot, schema, &parse_candidate(&body)?)?;
    Ok(compatibility_answer(
        schema,
        candidate.as_ref(),
        std::slice::from_ref(against),
        params.verbose,
    ))
}

async fn compatibility_with_all(
    State(pipeline): Shared,
    ConfluentPath(subject): ConfluentPath<String>,
    Query(params): Query<CompatibilityParams>,
    body: Bytes,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let schema = resolve(&snapshot, &subject)?;
    let candidate = compile_candidate(&snapshot, schema, &parse_candidate(&body)?)?;
    Ok(compatibility_answer(
        schema,
        candidate.as_ref(),
        schema.versions(),
        params.verbose,
    ))
}

fn compatibility_answer(
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

/// Compiles a candidate schema text as a new version of `schema` would be, inside the repository
/// (so its references and imports resolve as a committed version's would).
fn compile_candidate(
    snapshot: &Snapshot,
    schema: &Schema,
    candidate: &CandidateBody,
) -> Result<Arc<dyn CompiledSchema>, ConfluentError> {
    let declared = candidate.schema_type.as_deref().unwrap_or("AVRO");
    let expected = schema_type(schema.format).unwrap_or("AVRO");
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
    let repo: RepoFiles = snapshot
        .files
        .iter()
        .map(|(path, bytes)| (path.to_owned(), bytes.clone()))
        .chain([(file.clone(), Bytes::from(candidate.schema.clone()))])
        .collect();
    let input = CompileInput {
        file: &file,
        schema_root: load::schema_root(&snapshot.files),
        text: &candidate.schema,
        repo: &repo,
        settings: &schema.settings,
    };
    schema
        .format
        .compile(&input)
        .map_err(|e| ConfluentError::invalid_schema(format!("Invalid schema: {e}")))
}

async fn global_config() -> Response {
    reply(json!({ "compatibilityLevel": level(Compatibility::default()) }))
}

async fn subject_config(
    State(pipeline): Shared,
    ConfluentPath(subject): ConfluentPath<String>,
) -> Answer {
    let snapshot = snapshot(&pipeline)?;
    let schema = resolve(&snapshot, &subject)?;
    Ok(reply(
        json!({ "compatibilityLevel": level(schema.settings.compatibility) }),
    ))
}

/// Sluice keeps no topic associations: clients fall back to `<topic>-value`, which resolves to the
/// station's schema.
async fn associations() -> Response {
    reply(json!([]))
}

async fn mode() -> Response {
    reply(json!({ "mode": "READONLY" }))
}

/// A mode in Confluent's spelling, e.g. `BACKWARD_TRANSITIVE`.
fn level(mode: Compatibility) -> String {
    mode.as_str().to_ascii_uppercase()
}
