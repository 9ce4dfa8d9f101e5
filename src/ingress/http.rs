//! The HTTP API (`/v1`, DESIGN §4) on axum. Handlers only translate: they read the request (body
//! within its limit, `Sluice-*` headers, query), call the [`Pipeline`], and turn the result into a
//! status and JSON. Status codes and error bodies come from [`ApiError`]; no validation or routing
//! logic lives here.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::Extension;

use super::extract::PathParams;
use super::requests::{self, RequestId};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::{Authenticator, Need};
use super::batch::parse_batch;
use crate::backends::now_ms;
use crate::error::ApiError;
use crate::pipeline::{Accepted, Incoming, Pipeline};
use crate::views::{
    rfc3339, DeadLetterView, MessageView, SchemaVersionView, SchemaView, StationView,
};

/// Prefix of headers carried into the stored message's headers.
const HEADER_PREFIX: &str = "sluice-header-";

type Shared = State<Arc<Pipeline>>;

/// The whole HTTP API, every request checked by `auth` first.
pub fn router(pipeline: Arc<Pipeline>, auth: Arc<Authenticator>) -> Router {
    let guard = Guard {
        auth,
        pipeline: pipeline.clone(),
    };
    Router::new()
        .route("/", get(dashboard))
        .route("/v1", get(index))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus_metrics))
        .route("/v1/stations", get(list_stations))
        .route("/v1/stations/{station}", get(show_station))
        .route(
            "/v1/stations/{station}/messages",
            post(produce).get(consume),
        )
        .route("/v1/stations/{station}/messages:batch", post(produce_batch))
        .route("/v1/stations/{station}/ack", post(ack))
        .route("/v1/stations/{station}/nack", post(nack))
        .route("/v1/stations/{station}/dlq", get(dead_letters))
        .route("/v1/stations/{station}/dlq/{id}/replay", post(replay))
        .route("/v1/schemas", get(list_schemas))
        .route("/v1/schemas/{name}", get(show_schema))
        .route(
            "/v1/schemas/{name}/versions/{version}",
            get(show_schema_version),
        )
        .route("/v1/schemas/{name}/validate", post(validate))
        .route("/v1/registry/status", get(registry_status))
        .route("/v1/registry/sync", post(registry_sync))
        .merge(super::confluent::routes())
        .fallback(|uri: axum::http::Uri| async move { ApiError::NotFound(uri.path().to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(guard, authorize))
        .layer(middleware::from_fn_with_state(
            pipeline.clone(),
            requests::within_deadline,
        ))
        .layer(middleware::from_fn(requests::traced))
        .with_state(pipeline)
}

/// Prometheus text: the recorded metrics, with the registry's state and the embedded dead-letter
/// depths read just now.
async fn prometheus_metrics(State(pipeline): Shared) -> Response {
    let registry = pipeline.registry();
    let snapshot = registry.snapshot();
    crate::metrics::refresh_registry(
        registry.is_serving(),
        snapshot.schemas().count(),
        registry.installs_total(),
        registry.refusals_total(),
    );
    let store = pipeline.embedded();
    for station in snapshot.stations() {
        if station.dlq && station.backend == crate::registry::stations::BackendRef::Embedded {
            crate::metrics::refresh_dlq_depth(
                &station.name,
                store.stats(&station.dlq_name).messages,
            );
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response()
}

/// What the auth check needs: the tokens, and whether a webhook secret vouches for syncs.
#[derive(Clone)]
struct Guard {
    auth: Arc<Authenticator>,
    pipeline: Arc<Pipeline>,
}

/// Checks the bearer token against the right the request's route needs: 401 or 403 before any
/// handler runs.
async fn authorize(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    if guard.auth.is_enabled() {
        if let Some(need) = need_of(&request, &guard.pipeline) {
            let authorization = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if let Err(error) = guard.auth.check(authorization, need.as_need()) {
                return error.into_response();
            }
        }
    }
    next.run(request).await
}

/// The right a route needs (an owned station name, decoded from the path).
enum RouteNeed {
    Read,
    Produce(String),
    Consume(String),
    Admin,
}

impl RouteNeed {
    fn as_need(&self) -> Need<'_> {
        match self {
            Self::Read => Need::Read,
            Self::Produce(station) => Need::Produce(station),
            Self::Consume(station) => Need::Consume(station),
            Self::Admin => Need::Admin,
        }
    }
}

/// Health and the index are open; producing and consuming need the station's right; station
/// listings, dead letters and syncs need admin (a sync signed with the webhook secret needs no
/// token); everything else — schema and registry reads, the Confluent API — needs a known token.
fn need_of(request: &Request, pipeline: &Pipeline) -> Option<RouteNeed> {
    let path = request.uri().path();
    if matches!(path, "/" | "/v1" | "/healthz" | "/readyz") {
        return None;
    }
    if path == "/v1/registry/sync" {
        let signed = request.headers().contains_key("x-hub-signature-256")
            || request.headers().contains_key("x-gitlab-token");
        let secret_set = pipeline
            .registry()
            .sync_handle()
            .is_some_and(|h| h.webhook_secret().is_some());
        return (!(signed && secret_set)).then_some(RouteNeed::Admin);
    }
    let Some(rest) = path.strip_prefix("/v1/stations") else {
        return Some(RouteNeed::Read);
    };
    let mut segments = rest.trim_start_matches('/').split('/');
    let station = segments
        .next()
        .filter(|s| !s.is_empty())
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy());
    let (Some(station), Some(action)) = (station, segments.next()) else {
        return Some(RouteNeed::Admin); // listings
    };
    let station = station.into_owned();
    Some(match (request.method(), action) {
        (&Method::POST, "messages" | "messages:batch") => RouteNeed::Produce(station),
        (&Method::GET, "messages") | (&Method::POST, "ack" | "nack") => RouteNeed::Consume(station),
        _ => RouteNeed::Admin,
    })
}

async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        crate::ui::INDEX_HTML,
    )
        .into_response()
}

async fn index() -> Json<serde_json::Value> {
    Json(json!({
        "name": "sluice",
        "version": env!("CARGO_PKG_VERSION"),
        "api": "/v1",
        "stations": "/v1/stations",
        "schemas": "/v1/schemas",
        "registry": "/v1/registry/status",
    }))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(pipeline): Shared) -> Response {
    match pipeline.check_ready().await {
        Ok(()) => {
            let revision = pipeline.registry().snapshot().revision.clone();
            Json(json!({ "ready": true, "registry_revision": revision })).into_response()
        }
        Err(e) => {
            let mut body = e.body();
            body["ready"] = json!(false);
            (e.status(), Json(body)).into_response()
        }
    }
}

/// Reads a request body, refusing it (413) past `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::PayloadTooLarge { limit })
        }
        Err(e) => Err(ApiError::BadRequest(format!(
            "could not read the request body: {e}"
        ))),
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::BadRequest(format!("header {name} is not visible ASCII")))
        })
        .transpose()
}

fn schema_version_header(headers: &HeaderMap) -> Result<Option<u32>, ApiError> {
    header_text(headers, "sluice-schema-version")?
        .map(|v| {
            v.trim().parse::<u32>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "Sluice-Schema-Version must be a version number, not `{v}`"
                ))
            })
        })
        .transpose()
}

/// `Sluice-Deliver-After`: a delay (`"30s"`, `"5m"`) or an RFC 3339 time, as ms since the epoch.
fn deliver_after_header(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(text) = header_text(headers, "sluice-deliver-after")? else {
        return Ok(None);
    };
    let text = text.trim();
    if let Ok(delay) = humantime::parse_duration(text) {
        return Ok(Some(now_ms().saturating_add(delay.as_millis() as u64)));
    }
    match text.parse::<jiff::Timestamp>() {
        Ok(at) => Ok(Some(at.as_millisecond().max(0) as u64)),
        Err(_) => Err(ApiError::BadRequest(format!(
            "Sluice-Deliver-After must be a delay such as `30s` or `5m`, or an RFC 3339 time such as `2026-01-31T09:00:00Z`, not `{text}`"
        ))),
    }
}

/// The `Sluice-Header-*` headers, without their prefix.
fn carried_headers(headers: &HeaderMap) -> Result<Vec<(String, String)>, ApiError> {
    let mut carried = Vec::new();
    for (name, value) in headers {
        if let Some(short) = name.as_str().strip_prefix(HEADER_PREFIX) {
            let value = value
                .to_str()
                .map_err(|_| ApiError::BadRequest(format!("header {name} is not visible ASCII")))?;
            carried.push((short.to_owned(), value.to_owned()));
        }
    }
    Ok(carried)
}

fn content_type(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    Ok(header_text(headers, header::CONTENT_TYPE.as_str())?.map(str::to_owned))
}

async fn produce(
    State(pipeline): Shared,
    PathParams(station): PathParams<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    requests::record_station(&station);
    let payload = read_body(body, pipeline.limits().max_message_bytes).await?;
    let message = Incoming {
        payload,
        content_type: content_type(&headers)?,
        key: header_text(&headers, "sluice-key")?.map(|k| Bytes::copy_from_slice(k.as_bytes())),
        headers: carried_headers(&headers)?,
        schema_version: schema_version_header(&headers)?,
        deliver_after_ms: deliver_after_header(&headers)?,
        idempotency_key: header_text(&headers, "idempotency-key")?.map(str::to_owned),
        request_id: Some(request_id),
    };
    let accepted = pipeline.produce(&station, message).await?;
    Ok((StatusCode::CREATED, Json(accepted)).into_response())
}

async fn produce_batch(
    State(pipeline): Shared,
    PathParams(station): PathParams<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    requests::record_station(&station);
    let limits = pipeline.limits();
    let body = read_body(body, limits.max_batch_bytes).await?;
    let content_type = content_type(&headers)?;
    let mut messages = parse_batch(
        &body,
        content_type.as_deref(),
        schema_version_header(&headers)?,
        &carried_headers(&headers)?,
    )?;
    if messages.len() > limits.max_batch_messages {
        return Err(ApiError::TooManyMessages {
            count: messages.len(),
            limit: limits.max_batch_messages,
        });
    }
    let deliver_after_ms = deliver_after_header(&headers)?;
    for message in &mut messages {
        message.deliver_after_ms = deliver_after_ms;
        message.request_id = Some(request_id.clone());
    }
    let results = pipeline.produce_batch(&station, messages).await?;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let rejected = results.len() - accepted;
    let results: Vec<_> = results
        .into_iter()
        .map(|result| match result {
            Ok(accepted) => ItemAnswer::Accepted {
                status: StatusCode::CREATED.as_u16(),
                accepted,
            },
            Err(error) => {
                let mut item = error.body();
                item["status"] = json!(error.status().as_u16());
                ItemAnswer::Refused(item)
            }
        })
        .collect();
    Ok(Json(BatchAnswer {
        station: &station,
        accepted,
        rejected,
        results,
    })
    .into_response())
}

/// The answer to a batch: counts, and one result per item in order.
#[derive(Serialize)]
struct BatchAnswer<'a> {
    station: &'a str,
    accepted: usize,
    rejected: usize,
    results: Vec<ItemAnswer>,
}

/// One item's result: its status with the position, or its status with the error body. Typed for
/// the common case, so a batch of thousands is answered without building a JSON tree per item.
#[derive(Serialize)]
#[serde(untagged)]
enum ItemAnswer {
    Accepted {
        status: u16,
        #[serde(flatten)]
        accepted: Accepted,
    },
    Refused(serde_json::Value),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumeParams {
    group: String,
    #[serde(default = "default_max")]
    max: usize,
    #[serde(default)]
    wait_ms: u64,
}

fn default_max() -> usize {
    10
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

/// Answer of a consume. Serialized directly (not through `serde_json::Value`) so stored JSON
/// values come back byte for byte.
#[derive(Serialize)]
struct Consumed {
    messages: Vec<MessageView>,
}

async fn consume(
    State(pipeline): Shared,
    PathParams(station): PathParams<String>,
    params: Result<Query<ConsumeParams>, QueryRejection>,
) -> Result<Json<Consumed>, ApiError> {
    let Query(params) = params?;
    let messages = pipeline
        .consume(
            &station,
            &params.group,
            params.max,
            Duration::from_millis(params.wait_ms),
        )
        .await?;
    Ok(Json(Consumed {
        messages: messages.into_iter().map(MessageView::from).collect(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckRequest {
    group: String,
    offsets: Vec<u64>,
    #[serde(default)]
    delay_ms: Option<u64>,
}

async fn parse_ack(pipeline: &Pipeline, body: Body) -> Result<AckRequest, ApiError> {
    let body = read_body(body, pipeline.limits().max_message_bytes).await?;
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "expected {{\"group\": \"...\", \"offsets\": [...]}}: {e}"
        ))
    })
}

async fn ack(
    State(pipeline): Shared,
    PathParams(station): PathParams<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let request = parse_ack(&pipeline, body).await?;
    if request.delay_ms.is_some() {
        return Err(ApiError::BadRequest("`delay_ms` belongs to nack".into()));
    }
    let outcome = pipeline
        .ack(&station, &request.group, &request.offsets)
        .await?;
    Ok(Json(json!(outcome)))
}

async fn nack(
    State(pipeline): Shared,
    PathParams(station): PathParams<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let request = parse_ack(&pipeline, body).await?;
    let delay = Duration::from_millis(request.delay_ms.unwrap_or(0));
    let outcome = pipeline
        .nack(&station, &request.group, &request.offsets, delay)
        .await?;
    Ok(Json(json!(outcome)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageParams {
    #[serde(default)]
    from: u64,
    #[serde(default = "default_page")]
    max: usize,
}

fn default_page() -> usize {
    100
}

#[derive(Serialize)]
struct DeadLetterPage {
    dead_letters: Vec<DeadLetterView>,
    /// The `from` of the next page.
    next: u64,
}

async fn dead_letters(
    State(pipeline): Shared,
    PathParams(station): PathParams<String>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let Query(params) = params?;
    let letters = pipeline.dead_letters(&station, params.from, params.max)?;
    let next = letters
        .last()
        .and_then(|l| l.id.parse::<u64>().ok())
        .map_or(params.from, |id| id + 1);
    Ok(Json(DeadLetterPage {
        dead_letters: letters,
        next,
    }))
}

async fn replay(
    State(pipeline): Shared,
    PathParams((station, id)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let accepted = pipeline.replay(&station, &id).await?;
    Ok((StatusCode::CREATED, Json(accepted)).into_response())
}

fn station_view(pipeline: &Pipeline, station: &crate::registry::Station) -> StationView {
    let store = pipeline.embedded();
    StationView::new(
        station,
        store.stats(&station.name),
        store.stats(&station.dlq_name),
    )
}

async fn list_stations(State(pipeline): Shared) -> Json<serde_json::Value> {
    let snapshot = pipeline.registry().snapshot();
    let stations: Vec<_> = snapshot
        .stations()
        .map(|s| station_view(&pipeline, s))
        .collect();
    Json(json!({ "stations": stations }))
}

async fn show_station(
    State(pipeline): Shared,
    PathParams(name): PathParams<String>,
) -> Result<Json<StationView>, ApiError> {
    let snapshot = pipeline.registry().snapshot();
    let station = snapshot
        .station(&name)
        .ok_or(ApiError::UnknownStation(name))?;
    Ok(Json(station_view(&pipeline, station)))
}

async fn list_schemas(State(pipeline): Shared) -> Json<serde_json::Value> {
    let snapshot = pipeline.registry().snapshot();
    let schemas: Vec<SchemaView> = snapshot.schemas().map(|s| SchemaView::from(&**s)).collect();
    Json(json!({ "schemas": schemas }))
}

async fn show_schema(
    State(pipeline): Shared,
    PathParams(name): PathParams<String>,
) -> Result<Json<SchemaView>, ApiError> {
    let snapshot = pipeline.registry().snapshot();
    let schema = snapshot
        .schema(&name)
        .ok_or(ApiError::UnknownSchema(name))?;
    Ok(Json(SchemaView::from(&**schema)))
}

async fn show_schema_version(
    State(pipeline): Shared,
    PathParams((name, version)): PathParams<(String, String)>,
) -> Result<Json<SchemaVersionView>, ApiError> {
    let snapshot = pipeline.registry().snapshot();
    let schema = snapshot
        .schema(&name)
        .ok_or_else(|| ApiError::UnknownSchema(name.clone()))?;
    let number = match version.as_str() {
        "latest" => schema.newest(),
        v => v.parse::<u32>().map_err(|_| {
            ApiError::BadRequest(format!("a version is a number or `latest`, not `{v}`"))
        })?,
    };
    let found = schema
        .version(number)
        .ok_or(ApiError::SchemaVersionNotFound {
            schema: name.clone(),
            version: number,
        })?;
    Ok(Json(SchemaVersionView {
        name,
        version: found.version,
        id: found.id,
        format: schema.format,
        file: found.file.clone(),
        schema: found.text.to_string(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateParams {
    version: Option<u32>,
}

async fn validate(
    State(pipeline): Shared,
    PathParams(name): PathParams<String>,
    params: Result<Query<ValidateParams>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<crate::pipeline::DryRun>, ApiError> {
    let Query(params) = params?;
    let payload = read_body(body, pipeline.limits().max_message_bytes).await?;
    let version = params.version.or(schema_version_header(&headers)?);
    let content_type = content_type(&headers)?;
    Ok(Json(pipeline.dry_run(
        &name,
        version,
        &payload,
        content_type.as_deref(),
    )?))
}

async fn registry_status(State(pipeline): Shared) -> Json<serde_json::Value> {
    Json(registry_status_body(pipeline.registry()))
}

/// The registry status: what is serving, what was last refused and why, whether the source can be
/// reached.
fn registry_status_body(registry: &crate::registry::Registry) -> serde_json::Value {
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

/// How long a webhook call waits for its sync before answering 202.
const SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

async fn registry_sync(
    State(pipeline): Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let registry = pipeline.registry();
    let Some(handle) = registry.sync_handle() else {
        return Err(ApiError::RegistryNotReady(
            "the registry is not syncing yet".into(),
        ));
    };
    let body = read_body(body, pipeline.limits().max_message_bytes).await?;
    if let Some(secret) = handle.webhook_secret() {
        super::webhook::verify(&headers, &body, secret)?;
    }
    if !handle.sync(SYNC_WAIT).await {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "syncing": true, "message": "the sync is still running; see /v1/registry/status" })),
        )
            .into_response());
    }
    if let Some(failure) = registry.source_failure() {
        return Err(ApiError::SourceUnavailable(failure.message));
    }
    Ok(Json(registry_status_body(registry)).into_response())
}
