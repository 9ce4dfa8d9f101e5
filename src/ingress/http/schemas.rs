//! The registry's endpoints: schemas and their versions, validation dry runs, the registry's
//! status, and the sync webhook.

use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::read::{content_type, read_body, schema_version_header, MESSAGE_LIMIT};
use super::views::{RulesView, SchemaVersionView, SchemaView};
use super::Shared;
use crate::ingress::errors::ApiError;
use crate::ingress::extract::PathParams;
use crate::model::time::rfc3339;
use crate::pipeline::{DryRun, Synced};
use crate::registry::Registry;

/// How long a webhook call waits for its sync before answering 202.
const SYNC_WAIT: Duration = Duration::from_secs(30);

pub(super) async fn list_schemas(State(pipeline): Shared) -> Json<serde_json::Value> {
    let snapshot = pipeline.registry().snapshot();
    let schemas: Vec<SchemaView> = snapshot.schemas().map(|s| SchemaView::from(&**s)).collect();
    Json(json!({ "schemas": schemas }))
}

pub(super) async fn show_schema(
    State(pipeline): Shared,
    PathParams(name): PathParams<String>,
) -> Result<Json<SchemaView>, ApiError> {
    let schema = pipeline.schema(&name)?;
    Ok(Json(SchemaView::from(&*schema)))
}

pub(super) async fn show_schema_version(
    State(pipeline): Shared,
    PathParams((name, version)): PathParams<(String, String)>,
) -> Result<Json<SchemaVersionView>, ApiError> {
    let schema = pipeline.schema(&name)?;
    let number = match version.as_str() {
        "latest" => None,
        v => Some(v.parse::<u32>().map_err(|_| {
            ApiError::BadRequest(format!("a version is a number or `latest`, not `{v}`"))
        })?),
    };
    let found = pipeline.schema_version(&schema, number)?;
    Ok(Json(SchemaVersionView {
        name,
        version: found.version,
        id: found.id,
        format: schema.format,
        file: found.file.clone(),
        schema: found.text.to_string(),
        rules: found.rules.as_ref().map(RulesView::from),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ValidateParams {
    version: Option<u32>,
}

pub(super) async fn validate(
    State(pipeline): Shared,
    PathParams(name): PathParams<String>,
    params: Result<Query<ValidateParams>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<DryRun>, ApiError> {
    let Query(params) = params?;
    let payload = read_body(body, pipeline.limits().max_message_bytes, MESSAGE_LIMIT).await?;
    let version = params.version.or(schema_version_header(&headers)?);
    let content_type = content_type(&headers)?;
    Ok(Json(pipeline.dry_run(
        &name,
        version,
        &payload,
        content_type.as_deref(),
    )?))
}

pub(super) async fn registry_status(State(pipeline): Shared) -> Json<serde_json::Value> {
    Json(registry_status_body(pipeline.registry()))
}

/// The registry status: what is serving, what was last refused and why, whether the source can be
/// reached.
fn registry_status_body(registry: &Registry) -> serde_json::Value {
    let snapshot = registry.snapshot();
    let refusal = registry.last_refusal();
    let serving = registry.is_serving();
    json!({
        "source": registry.source(),
        "ready": serving,
        "serving_commit": serving.then(|| snapshot.revision.clone()),
        "serving": serving.then(|| json!({
            "revision": snapshot.revision,
            "loaded_at": rfc3339(snapshot.loaded_at),
            "schemas": snapshot.schemas().count(),
            "stations": snapshot.stations().count(),
        })),
        "refused_commit": refusal.as_ref().map(|r| r.revision.clone()),
        "errors": refusal.as_ref().map_or(&[][..], |r| &r.errors[..]),
        "last_refusal": refusal,
        "refusals_total": registry.refusals_total(),
        "source_error": registry.source_failure(),
    })
}

/// The webhook a git host calls on push: verified against the secret when one is set, then the
/// sync, answered with the registry's status once it has run.
pub(super) async fn registry_sync(
    State(pipeline): Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(body, pipeline.limits().max_message_bytes, MESSAGE_LIMIT).await?;
    let registry = pipeline.registry();
    if let Some(secret) = registry.sync_handle().and_then(|h| h.webhook_secret()) {
        crate::ingress::webhook::verify(&headers, &body, secret)?;
    }
    match pipeline.sync_registry(SYNC_WAIT).await? {
        Synced::StillRunning => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "syncing": true, "message": "the sync is still running; see /v1/registry/status" })),
        )
            .into_response()),
        Synced::Done => Ok(Json(registry_status_body(registry)).into_response()),
    }
}
