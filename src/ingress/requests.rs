//! What happens around every HTTP request, before and after its handler: a request id
//! (`Sluice-Request-Id`, taken from the client or made here, echoed in the answer, kept with dead
//! letters), a tracing span carrying it, the request's metrics, and its deadline
//! (`limits.request_timeout`).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;

use super::errors::ApiError;
use crate::pipeline::{Pipeline, REQUEST_ID_HEADER};

/// Longest request id taken from a client; a longer or non-ASCII one is replaced.
const MAX_CLIENT_REQUEST_ID: usize = 128;

/// The request's id, in its extensions for handlers to read.
#[derive(Clone)]
pub struct RequestId(pub Arc<str>);

/// The request id a client sent when it is a short visible-ASCII string, else a new unique one.
pub fn client_or_new_request_id(sent: Option<&str>) -> Arc<str> {
    sent.filter(|id| !id.is_empty() && id.len() <= MAX_CLIENT_REQUEST_ID)
        .map_or_else(|| Arc::from(nuid::next().as_str()), Arc::from)
}

/// Names the station in the current request's span.
pub fn record_station(station: &str) {
    tracing::Span::current().record("station", station);
}

/// The span of one HTTP request or gRPC call. The pipeline fills in `schema`, `version` and
/// `outcome` for produce calls; the front end `station` and `status` (the HTTP status or the gRPC
/// code).
pub fn request_span(id: &str, method: &str, route: &str) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        route = %route,
        station = tracing::field::Empty,
        schema = tracing::field::Empty,
        version = tracing::field::Empty,
        outcome = tracing::field::Empty,
        status = tracing::field::Empty,
    )
}

/// Gives the request its id and span, runs it, echoes the id and counts the request by route
/// (the matched pattern, not the path), method and status.
pub async fn traced(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let sent = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok());
    let id = client_or_new_request_id(sent);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().clone();
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = request_span(&id, method.as_str(), &route);
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("status", status);
    if let Ok(mut value) = HeaderValue::from_str(&id) {
        // Never indexed by HTTP/2's header compression: every request's id differs.
        value.set_sensitive(true);
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    crate::metrics::http_request(&route, method.as_str(), status, started.elapsed());
    tracing::debug!(parent: &span, took_us = started.elapsed().as_micros() as u64, "answered");
    response
}

/// Answers 408 when a request is not received and answered within `limits.request_timeout`
/// (a consume's long-poll gets its longest wait on top), so a slow or stalled client holds
/// nothing for long.
pub async fn within_deadline(
    State(pipeline): State<Arc<Pipeline>>,
    request: Request,
    next: Next,
) -> Response {
    let limits = pipeline.limits();
    let long_poll = request.method() == Method::GET && request.uri().path().ends_with("/messages");
    let deadline = if long_poll {
        limits.request_timeout + limits.max_consume_wait
    } else {
        limits.request_timeout
    };
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout { limit: deadline }.into_response(),
    }
}
