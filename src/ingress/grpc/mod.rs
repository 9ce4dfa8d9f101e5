//! The gRPC API (`sluice.v1.Gateway`, `proto/sluice/v1/gateway.proto`) on tonic, with server
//! reflection and the standard health service. Like the HTTP API it only translates: requests
//! become pipeline messages and [`Pipeline`] calls (`messages.rs`), results become responses, and
//! every error's code and details come from the one table of `ingress::errors` (`status.rs`). Each
//! call checks the right it needs with the same authenticator as HTTP. No validation or routing
//! happens here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

mod messages;
mod status;
mod streams;

use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status, Streaming};
use tonic_health::ServingStatus;
use tracing::Instrument as _;

use super::auth::{Authenticator, Need};
use super::connections::{Guarded, TrackRequests};
use crate::pipeline::{Pipeline, REQUEST_ID_HEADER};
use messages::incoming;
use proto::gateway_server::{Gateway, GatewayServer};
use proto::{
    AckRequest, AckResponse, ConsumeRequest, ConsumedMessage, NackRequest, ProduceRequest,
    ProduceResponse, ProduceResult,
};
use streams::{Consumer, StreamProducer, CONSUME_BATCH};

/// The code generated from `proto/sluice/v1/gateway.proto`: messages, server and client.
#[allow(clippy::too_many_lines)]
pub mod proto {
    tonic::include_proto!("sluice.v1");

    /// The encoded descriptors of `sluice.v1`, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/sluice_descriptor.bin"));
}

/// The most stream messages stored in one pipeline call (one write per station).
const MAX_STREAM_CHUNK: usize = 1000;
/// How often the health service re-checks readiness.
const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Most calls open at once on one connection (hyper's own default, which tonic's builder leaves
/// unset).
const MAX_STREAMS_PER_CONNECTION: u32 = 200;
/// How often an HTTP/2 connection is pinged, and how long its answer may take before the
/// connection is closed as dead.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Room over the largest message for the request's other fields.
const ENVELOPE_ALLOWANCE: usize = 64 * 1024;

/// Serves the gRPC API on the `connections` the front door lets in (plain TCP or TLS) until
/// `shutdown` completes. Request headers are bounded by `max_header_bytes`; each call counts as
/// in progress on its connection until its answer is done; keepalive pings find dead peers.
pub async fn serve(
    pipeline: Arc<Pipeline>,
    auth: Arc<Authenticator>,
    connections: mpsc::Receiver<Guarded>,
    max_header_bytes: usize,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = ReceiverStream::new(connections).map(Ok::<_, std::convert::Infallible>);
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
    // Messages may come compressed (`grpc-encoding` gzip or zstd); the size limit counts decoded
    // bytes, checked as they inflate. Answers go uncompressed: each is one message, small beside
    // what compressing it costs.
    let gateway = GatewayServer::new(GatewayService { pipeline, auth })
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .max_decoding_message_size(largest)
        .max_encoding_message_size(largest);
    let served = tonic::transport::Server::builder()
        .timeout(deadline)
        .http2_max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .layer(TrackRequests)
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
            let chunk_size = MAX_STREAM_CHUNK.min(self.pipeline.limits().max_batch_messages.max(1));
            let (results, receiver) = mpsc::channel(chunk_size);
            let producer = StreamProducer {
                pipeline: self.pipeline.clone(),
                auth: self.auth.clone(),
                authorization: authorization(&request).map(str::to_owned),
                request_id: id.clone(),
                results,
            };
            let inbound = request.into_inner().ready_chunks(chunk_size);
            tokio::spawn(producer.run(inbound).instrument(tracing::Span::current()));
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
            let consumer = Consumer {
                pipeline: self.pipeline.clone(),
                station,
                group,
                limit: match max_messages {
                    0 => u64::MAX,
                    n => u64::from(n),
                },
            };
            // The first poll does not wait, so an unknown station or a bad group ends the call itself.
            let first = self
                .pipeline
                .consume(
                    &consumer.station,
                    &consumer.group,
                    consumer.wanted(0),
                    Duration::ZERO,
                )
                .await?;
            let (messages, receiver) = mpsc::channel(CONSUME_BATCH);
            tokio::spawn(consumer.run(first, messages));
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
                partition,
            } = request.into_inner();
            let messages = messages::positions(partition, &offsets);
            let outcome = self.pipeline.ack(&station, &group, &messages).await?;
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
                partition,
            } = request.into_inner();
            let delay = Duration::from_millis(delay_ms);
            let messages = messages::positions(partition, &offsets);
            let outcome = self
                .pipeline
                .nack(&station, &group, &messages, delay)
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
        .get(REQUEST_ID_HEADER)
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
            Ok(response) => response.metadata_mut().insert(REQUEST_ID_HEADER, value),
            Err(status) => status.metadata_mut().insert(REQUEST_ID_HEADER, value),
        };
    }
    tracing::debug!(parent: &span, took_us = started.elapsed().as_micros() as u64, "answered");
    result
}
