//! The station endpoints: produce (one message or a batch), consume with a group, ack and nack,
//! dead letters and their replay, and the station listings with their counts.

use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::read::{
    carried_headers, content_type, deliver_after_header, header_text, read_body,
    schema_version_header, MESSAGE_LIMIT,
};
use super::views::{DeadLetterView, MessageView, StationView};
use super::Shared;
use crate::backends::queues::AckOutcome;
use crate::ingress::batch::{parse_batch, BatchRequest};
use crate::ingress::errors::ApiError;
use crate::ingress::extract::PathParams;
use crate::ingress::requests::{self, RequestId};
use crate::model::Position;
use crate::pipeline::{Accepted, Incoming, Pipeline, PipelineError};

pub(super) async fn produce(
    State(pipeline): Shared,
    PathParams(station): PathParams<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    requests::record_station(&station);
    let payload = read_body(body, pipeline.limits().max_message_bytes, MESSAGE_LIMIT).await?;
    let message = Incoming {
        payload,
        content_type: content_type(&headers)?,
        key: header_text(&headers, "sluice-key")?.map(|k| Bytes::copy_from_slice(k.as_bytes())),
        headers: carried_headers(&headers)?.into(),
        schema_version: schema_version_header(&headers)?,
        deliver_after_ms: deliver_after_header(&headers)?,
        idempotency_key: header_text(&headers, "idempotency-key")?.map(str::to_owned),
        request_id: Some(request_id),
        from_gateway: false,
    };
    let accepted = pipeline.produce(&station, message).await?;
    Ok((StatusCode::CREATED, Json(accepted)).into_response())
}

pub(super) async fn produce_batch(
    State(pipeline): Shared,
    PathParams(station): PathParams<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    requests::record_station(&station);
    let limits = pipeline.limits();
    let body = read_body(body, limits.max_batch_bytes, "limits.max_batch_bytes").await?;
    let content_type = content_type(&headers)?;
    let batch = BatchRequest {
        content_type: content_type.as_deref(),
        schema_version: schema_version_header(&headers)?,
        headers: carried_headers(&headers)?.into(),
        max_messages: limits.max_batch_messages,
    };
    let mut messages = parse_batch(&body, &batch)?;
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
                let error = ApiError::from(error);
                error.count_limit();
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
pub(super) struct BatchAnswer<'a> {
    station: &'a str,
    accepted: usize,
    rejected: usize,
    results: Vec<ItemAnswer>,
}

/// One item's result: its status with the position, or its status with the error body. Typed for
/// the common case, so a batch of thousands is answered without building a JSON tree per item.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum ItemAnswer {
    Accepted {
        status: u16,
        #[serde(flatten)]
        accepted: Accepted,
    },
    Refused(serde_json::Value),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsumeParams {
    group: String,
    #[serde(default = "default_max")]
    max: usize,
    #[serde(default)]
    wait_ms: u64,
}

fn default_max() -> usize {
    10
}

/// Answer of a consume. Serialized directly (not through `serde_json::Value`) so stored JSON
/// values come back byte for byte.
#[derive(Serialize)]
pub(super) struct Consumed {
    messages: Vec<MessageView>,
}

pub(super) async fn consume(
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
    /// On a partitioned Kafka topic, the partition the offsets are in.
    #[serde(default)]
    partition: Option<u32>,
    #[serde(default)]
    delay_ms: Option<u64>,
}

impl AckRequest {
    fn messages(&self) -> Vec<Position> {
        self.offsets
            .iter()
            .map(|&offset| Position {
                partition: self.partition,
                offset,
            })
            .collect()
    }
}

/// What an ack or nack did: the offsets it did not know, in the request's partition.
fn ack_answer(outcome: AckOutcome) -> Json<serde_json::Value> {
    let unknown: Vec<u64> = outcome.unknown.iter().map(|p| p.offset).collect();
    Json(json!({ "acked": outcome.acked, "unknown": unknown }))
}

async fn parse_ack(pipeline: &Pipeline, body: Body) -> Result<AckRequest, ApiError> {
    let body = read_body(body, pipeline.limits().max_message_bytes, MESSAGE_LIMIT).await?;
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "expected {{\"group\": \"...\", \"offsets\": [...]}}: {e}"
        ))
    })
}

pub(super) async fn ack(
    State(pipeline): Shared,
    PathParams(station): PathParams<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let request = parse_ack(&pipeline, body).await?;
    if request.delay_ms.is_some() {
        return Err(ApiError::BadRequest("`delay_ms` belongs to nack".into()));
    }
    let outcome = pipeline
        .ack(&station, &request.group, &request.messages())
        .await?;
    Ok(ack_answer(outcome))
}

pub(super) async fn nack(
    State(pipeline): Shared,
    PathParams(station): PathParams<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let request = parse_ack(&pipeline, body).await?;
    let delay = Duration::from_millis(request.delay_ms.unwrap_or(0));
    let outcome = pipeline
        .nack(&station, &request.group, &request.messages(), delay)
        .await?;
    Ok(ack_answer(outcome))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageParams {
    /// The first dead letter id of the page (a page's `next`); the oldest without it.
    #[serde(default)]
    from: Option<String>,
    #[serde(default = "default_page")]
    max: usize,
}

fn default_page() -> usize {
    100
}

#[derive(Serialize)]
pub(super) struct DeadLetterPage {
    dead_letters: Vec<DeadLetterView>,
    /// The `from` of the next page.
    next: String,
}

pub(super) async fn dead_letters(
    State(pipeline): Shared,
    PathParams(station): PathParams<String>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let Query(params) = params?;
    let page = pipeline
        .dead_letters(&station, params.from.as_deref(), params.max)
        .await?;
    Ok(Json(DeadLetterPage {
        dead_letters: page.letters.into_iter().map(DeadLetterView::from).collect(),
        next: page.next.to_string(),
    }))
}

pub(super) async fn replay(
    State(pipeline): Shared,
    PathParams((station, id)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let accepted = pipeline.replay(&station, &id).await?;
    Ok((StatusCode::CREATED, Json(accepted)).into_response())
}

pub(super) async fn list_stations(State(pipeline): Shared) -> Json<serde_json::Value> {
    let snapshot = pipeline.registry().snapshot();
    let stats = pipeline
        .stations_stats(snapshot.stations().map(|s| s.as_ref()))
        .await;
    let stations: Vec<_> = snapshot
        .stations()
        .zip(stats)
        .map(|(station, stats)| StationView::new(station, stats))
        .collect();
    Json(json!({ "stations": stations }))
}

pub(super) async fn show_station(
    State(pipeline): Shared,
    PathParams(name): PathParams<String>,
) -> Result<Json<StationView>, ApiError> {
    let snapshot = pipeline.registry().snapshot();
    let station = snapshot
        .station(&name)
        .ok_or(PipelineError::UnknownStation(name))?;
    let stats = pipeline.station_stats(station).await;
    Ok(Json(StationView::new(station, stats)))
}
