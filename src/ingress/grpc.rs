//! The gRPC API (`sluice.v1.Gateway`, DESIGN §5) on tonic, with server reflection and the standard
//! health service. Like the HTTP API it only translates: requests become [`Incoming`] messages and
//! [`Pipeline`] calls, results become responses, and every error's status and details come from
//! [`ApiError::to_grpc_status`]. No validation or routing happens here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tonic_health::ServingStatus;
use tracing::Instrument as _;

use super::auth::{Authenticator, Need};
use super::requests::REQUEST_ID;
use crate::backends::embedded::{AckOutcome, Delivery};
use crate::backends::ContentKind;
use crate::error::ApiError;
use crate::pipeline::{Accepted, Incoming, Pipeline};
use proto::gateway_server::{Gateway, GatewayServer};
use proto::{
    AckRequest, AckResponse, ConsumeRequest, ConsumedMessage, Header, NackRequest, ProduceRequest,
    ProduceResponse, ProduceResult, Rejection,
};

/// The code generated from `proto/sluice/v1/gateway.proto`: messages, server and client.
pub mod proto {
    tonic::include_proto!("sluice.v1");

    /// The encoded descriptors of `sluice.v1`, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/sluice_descriptor.bin"));
}

/// The most stream messages stored in one pipeline call (one write per station).
const MAX_STREAM_CHUNK: usize = 1000;
/// Messages fetched per consume poll, and held for a slow consumer.
const CONSUME_BATCH: usize = 64;
/// How long one consume poll waits for messages before polling again.
const CONSUME_POLL: Duration = Duration::from_secs(10);
/// How often the health service re-checks readiness.
const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Room over the largest message for the request's other fields.
const ENVELOPE_ALLOWANCE: usize = 64 * 1024;

/// Serves the gRPC API on the `incoming` connections (plain TCP or TLS) until `shutdown` completes.
pub async fn serve<I, IO, IE>(
    pipeline: Arc<Pipeline>,
    auth: Arc<Authenticator>,
    incoming: I,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error>
where
    I: futures_util::Stream<Item = Result<IO, IE>> + Send,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (health, health_service) = tonic_health::server::health_reporter();
    let health_task = tokio::spawn(report_health(pipeline.clone(), health));
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the compiled descriptors are valid");
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("the compiled descriptors are valid");
    let largest = pipeline.limits().max_message_bytes + ENVELOPE_ALLOWANCE;
    // Bounds unary calls and the start of streaming ones; streams then run until they end.
    let deadline = pipeline.limits().request_timeout;
    let gateway = GatewayServer::new(GatewayService { pipeline, auth })
        .max_decoding_message_size(largest)
        .max_encoding_message_size(largest);
    let served = tonic::transport::Server::builder()
        .timeout(deadline)
        .add_service(gateway)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    health_task.abort();
    served
}

/// Keeps `grpc.health.v1` in step with readiness: SERVING when the registry serves and the
/// backends answer, NOT_SERVING otherwise — for the whole server ("") and for `sluice.v1.Gateway`.
async fn report_health(pipeline: Arc<Pipeline>, health: tonic_health::server::HealthReporter) {
    let mut ticks = tokio::time::interval(HEALTH_CHECK_INTERVAL);
    loop {
        ticks.tick().await;
        let status = match pipeline.check_ready().await {
            Ok(()) => ServingStatus::Serving,
            Err(_) => ServingStatus::NotServing,
        };
        health.set_service_status("", status).await;
        health
            .set_service_status(
                <GatewayServer<GatewayService> as tonic::server::NamedService>::NAME,
                status,
            )
            .await;
    }
}

struct GatewayService {
    pipeline: Arc<Pipeline>,
    auth: Arc<Authenticator>,
}

impl GatewayService {
    /// Names the call's station (if it has one) in its span, then checks the `authorization`
    /// metadata (`Bearer <token>`) against `need`.
    fn check<T>(&self, request: &Request<T>, need: Need<'_>) -> Result<(), Status> {
        if let Need::Produce(station) | Need::Consume(station) = need {
            super::requests::record_station(station);
        }
        Ok(self.auth.check(authorization(request), need)?)
    }
}

/// The request's `authorization` metadata value, if it has a readable one.
fn authorization<T>(request: &Request<T>) -> Option<&str> {
    request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
}

#[tonic::async_trait]
impl Gateway for GatewayService {
    async fn produce(
        &self,
        request: Request<ProduceRequest>,
    ) -> Result<Response<ProduceResponse>, Status> {
        let id = request_id(&request);
        traced("Produce", &id, async {
            self.check(&request, Need::Produce(&request.get_ref().station))?;
            let (station, mut message) = incoming(request.into_inner());
            message.request_id = Some(id.clone());
            let accepted = self.pipeline.produce(&station, message).await?;
            Ok(Response::new(accepted.into()))
        })
        .await
    }

    type ProduceStreamStream = ReceiverStream<Result<ProduceResult, Status>>;

    async fn produce_stream(
        &self,
        request: Request<Streaming<ProduceRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        let id = request_id(&request);
        traced("ProduceStream", &id, async {
            // The caller must be known to open a stream; each message's station is checked on its own.
            self.check(&request, Need::Read)?;
            let stream_id = id.clone();
            let authorization = authorization(&request).map(str::to_owned);
            let auth = self.auth.clone();
            let chunk_size = MAX_STREAM_CHUNK.min(self.pipeline.limits().max_batch_messages.max(1));
            let mut inbound = request.into_inner().ready_chunks(chunk_size);
            let (results, receiver) = mpsc::channel(chunk_size);
            let pipeline = self.pipeline.clone();
            let span = tracing::Span::current();
            tokio::spawn(
                async move {
                    let mut index = 0u64;
                    while let Some(chunk) = inbound.next().await {
                        let mut requests = Vec::with_capacity(chunk.len());
                        let mut broken = None;
                        for item in chunk {
                            match item {
                                Ok(request) => {
                                    let need = Need::Produce(&request.station);
                                    requests.push(
                                        match auth.check(authorization.as_deref(), need) {
                                            Ok(()) => {
                                                let (station, mut message) = incoming(request);
                                                message.request_id = Some(stream_id.clone());
                                                StreamItem::Produce { station, message }
                                            }
                                            Err(refusal) => StreamItem::Refused(refusal),
                                        },
                                    );
                                }
                                Err(status) => {
                                    broken = Some(status);
                                    break;
                                }
                            }
                        }
                        for outcome in produce_in_runs(&pipeline, requests).await {
                            let result = ProduceResult {
                                index,
                                outcome: Some(outcome),
                            };
                            index += 1;
                            if results.send(Ok(result)).await.is_err() {
                                return; // the client went away
                            }
                        }
                        if let Some(status) = broken {
                            // What came before a broken request is answered; the stream ends with its error.
                            let _ = results.send(Err(status)).await;
                            return;
                        }
                    }
                }
                .instrument(span),
            );
            Ok(Response::new(ReceiverStream::new(receiver)))
        })
        .await
    }

    type ConsumeStream = ReceiverStream<Result<ConsumedMessage, Status>>;

    async fn consume(
        &self,
        request: Request<ConsumeRequest>,
    ) -> Result<Response<Self::ConsumeStream>, Status> {
        let id = request_id(&request);
        traced("Consume", &id, async {
            self.check(&request, Need::Consume(&request.get_ref().station))?;
            let ConsumeRequest {
                station,
                group,
                max_messages,
            } = request.into_inner();
            let limit = match max_messages {
                0 => u64::MAX,
                n => u64::from(n),
            };
            let wanted = move |sent: u64| (limit - sent).min(CONSUME_BATCH as u64) as usize;
            // The first poll does not wait, so an unknown station or a bad group ends the call itself.
            let mut deliveries = self
                .pipeline
                .consume(&station, &group, wanted(0), Duration::ZERO)
                .await?;
            let (messages, receiver) = mpsc::channel(CONSUME_BATCH);
            let pipeline = self.pipeline.clone();
            tokio::spawn(async move {
                let mut sent = 0u64;
                loop {
                    for delivery in deliveries {
                        if messages.send(Ok(delivery.into())).await.is_err() {
                            return; // the client went away; unacked leases expire and come back
                        }
                        sent += 1;
                    }
                    if sent >= limit {
                        return;
                    }
                    let poll = pipeline.consume(&station, &group, wanted(sent), CONSUME_POLL);
                    deliveries = tokio::select! {
                        _ = messages.closed() => return,
                        polled = poll => match polled {
                            Ok(deliveries) => deliveries,
                            Err(error) => {
                                let _ = messages.send(Err(error.into())).await;
                                return;
                            }
                        },
                    };
                }
            });
            Ok(Response::new(ReceiverStream::new(receiver)))
        })
        .await
    }

    async fn ack(&self, request: Request<AckRequest>) -> Result<Response<AckResponse>, Status> {
        let id = request_id(&request);
        traced("Ack", &id, async {
            self.check(&request, Need::Consume(&request.get_ref().station))?;
            let AckRequest {
                station,
                group,
                offsets,
            } = request.into_inner();
            let outcome = self.pipeline.ack(&station, &group, &offsets).await?;
            Ok(Response::new(outcome.into()))
        })
        .await
    }

    async fn nack(&self, request: Request<NackRequest>) -> Result<Response<AckResponse>, Status> {
        let id = request_id(&request);
        traced("Nack", &id, async {
            self.check(&request, Need::Consume(&request.get_ref().station))?;
            let NackRequest {
                station,
                group,
                offsets,
                delay_ms,
            } = request.into_inner();
            let delay = Duration::from_millis(delay_ms);
            let outcome = self
                .pipeline
                .nack(&station, &group, &offsets, delay)
                .await?;
            Ok(Response::new(outcome.into()))
        })
        .await
    }
}

/// The client's `sluice-request-id`, or a new one.
fn request_id<T>(request: &Request<T>) -> Arc<str> {
    let sent = request
        .metadata()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok());
    super::requests::client_or_new_request_id(sent)
}

/// Runs one call in its request span (id, method, station, and for produce calls schema, version
/// and outcome), records its status code there, counts it by method and code (a stream when it
/// opens), and echoes the request id on the response or the error status.
async fn traced<T>(
    method: &'static str,
    id: &str,
    call: impl Future<Output = Result<Response<T>, Status>>,
) -> Result<Response<T>, Status> {
    let started = std::time::Instant::now();
    let span = super::requests::request_span(id, "gRPC", &format!("/sluice.v1.Gateway/{method}"));
    let mut result = call.instrument(span.clone()).await;
    let code = result
        .as_ref()
        .map_or_else(Status::code, |_| tonic::Code::Ok);
    span.record("status", crate::metrics::grpc_code_name(code));
    crate::metrics::grpc_request(method, code);
    if let Ok(mut value) = id.parse::<tonic::metadata::AsciiMetadataValue>() {
        // Every call's id differs: in HPACK's table it would only push out the headers that repeat.
        value.set_sensitive(true);
        match &mut result {
            Ok(response) => response.metadata_mut().insert(REQUEST_ID, value),
            Err(status) => status.metadata_mut().insert(REQUEST_ID, value),
        };
    }
    tracing::debug!(parent: &span, took_us = started.elapsed().as_micros() as u64, "answered");
    result
}

/// One message of a stream: to produce, or already refused (its caller may not send it).
enum StreamItem {
    Produce { station: String, message: Incoming },
    Refused(ApiError),
}

/// Produces stream messages in order, one pipeline call per run of consecutive messages to one
/// station; a refused message is answered with its refusal.
async fn produce_in_runs(
    pipeline: &Pipeline,
    items: Vec<StreamItem>,
) -> Vec<proto::produce_result::Outcome> {
    use proto::produce_result::Outcome;
    let mut outcomes = Vec::with_capacity(items.len());
    let mut items = items.into_iter().peekable();
    while let Some(item) = items.next() {
        let (station, first) = match item {
            StreamItem::Refused(refusal) => {
                outcomes.push(Outcome::Rejected(rejection(&refusal)));
                continue;
            }
            StreamItem::Produce { station, message } => (station, message),
        };
        let mut run = vec![first];
        while let Some(StreamItem::Produce { message, .. }) = items
            .next_if(|next| matches!(next, StreamItem::Produce { station: s, .. } if *s == station))
        {
            run.push(message);
        }
        let count = run.len();
        let span = tracing::info_span!(
            "run",
            station = %station,
            schema = tracing::field::Empty,
            version = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        match pipeline.produce_batch(&station, run).instrument(span).await {
            Ok(results) => outcomes.extend(results.into_iter().map(|result| match result {
                Ok(accepted) => Outcome::Accepted(accepted.into()),
                Err(error) => Outcome::Rejected(rejection(&error)),
            })),
            Err(error) => {
                let rejected = rejection(&error);
                outcomes.extend((0..count).map(|_| Outcome::Rejected(rejected.clone())));
            }
        }
    }
    outcomes
}

/// A request as the pipeline takes it: the station, and the message.
fn incoming(request: ProduceRequest) -> (String, Incoming) {
    let ProduceRequest {
        station,
        payload,
        content_type,
        key,
        headers,
        schema_version,
        idempotency_key,
        deliver_after_ms,
    } = request;
    let message = Incoming {
        payload,
        content_type: (!content_type.is_empty()).then_some(content_type),
        key,
        headers: headers.into_iter().map(|h| (h.name, h.value)).collect(),
        schema_version,
        deliver_after_ms,
        idempotency_key: (!idempotency_key.is_empty()).then_some(idempotency_key),
        request_id: None,
    };
    (station, message)
}

/// A refused stream message, carrying what a unary call's status would.
fn rejection(error: &ApiError) -> Rejection {
    let mut rejection = Rejection {
        code: error.grpc_code() as i32,
        error: error.code().to_owned(),
        message: error.to_string(),
        ..Rejection::default()
    };
    if let ApiError::SchemaViolation(report) = error {
        rejection.schema = report.schema.clone();
        rejection.schema_version = Some(report.version);
        rejection.dlq_id = report.dlq_id.clone().unwrap_or_default();
        rejection.violations = report
            .violations
            .iter()
            .map(|v| proto::Violation {
                path: v.path.clone(),
                reason: v.reason.clone(),
            })
            .collect();
    }
    rejection
}

impl From<Accepted> for ProduceResponse {
    fn from(accepted: Accepted) -> Self {
        Self {
            station: accepted.station,
            offset: accepted.position.offset,
            partition: accepted.position.partition,
            schema_version: accepted.schema_version,
        }
    }
}

impl From<Delivery> for ConsumedMessage {
    fn from(delivery: Delivery) -> Self {
        let record = delivery.record;
        let content_type = match record.content {
            ContentKind::Json => "application/json",
            ContentKind::Binary => "application/octet-stream",
        };
        Self {
            offset: delivery.offset,
            key: record.key,
            headers: record
                .headers
                .into_iter()
                .map(|(name, value)| Header { name, value })
                .collect(),
            value: record.value,
            content_type: content_type.to_owned(),
            schema_version: record.schema_version,
            delivery: delivery.delivery,
            received_at_ms: record.received_at_ms,
        }
    }
}

impl From<AckOutcome> for AckResponse {
    fn from(outcome: AckOutcome) -> Self {
        Self {
            acked: outcome.acked as u64,
            unknown: outcome.unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn a_stream_rejection_carries_what_a_unary_status_would() {
        let error = crate::error::sample_violation();
        let rejection = rejection(&error);
        assert_eq!(rejection.code, tonic::Code::InvalidArgument as i32);
        assert_eq!(rejection.error, "schema_violation");
        assert_eq!(rejection.schema_version, Some(2));
        assert_eq!(rejection.violations[0].path, "/items/0/qty");
        assert_eq!(rejection.dlq_id, "7");
    }

    #[test]
    fn an_empty_content_type_means_the_default() {
        let (station, message) = incoming(ProduceRequest {
            station: "orders".into(),
            payload: Bytes::from_static(b"{}"),
            ..ProduceRequest::default()
        });
        assert_eq!(station, "orders");
        assert_eq!(message.content_type, None);
        assert_eq!(message.idempotency_key, None);
    }
}
