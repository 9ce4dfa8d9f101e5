//! Serving the HTTP API on the connections the front door lets in: HTTP/1.1 with hyper, request
//! headers bounded by `server.max_header_bytes` (`431 headers_too_large` past it, in JSON; hyper
//! itself stops reading a head at twice that), each request counted on its connection while in
//! progress, and a graceful shutdown that lets the requests in flight finish.

use std::future::Future;

use axum::extract::Request;
use axum::response::IntoResponse as _;
use axum::Router;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::mpsc;
use tower_layer::Layer as _;
use tower_service::Service as _;

use crate::ingress::connections::{Guarded, TrackRequests, TrackedBody};
use crate::ingress::errors::ApiError;

/// Serves `router` on each connection from `connections` until `shutdown` completes, then waits
/// for the requests in flight.
pub async fn serve(
    mut connections: mpsc::Receiver<Guarded>,
    router: Router,
    max_header_bytes: usize,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The front door times out a slow request head, as for any connection.
        .header_read_timeout(None)
        .max_buf_size((2 * max_header_bytes).max(8192));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let connection = tokio::select! {
            connection = connections.recv() => connection,
            () = &mut shutdown => break,
        };
        let Some(connection) = connection else { break };
        let info = connection.state();
        let app = TrackRequests.layer(router.clone());
        let service = service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(info.clone());
            let request = request.map(axum::body::Body::new);
            let mut app = app.clone();
            async move {
                match head_bytes(&request) {
                    size if size > max_header_bytes => {
                        let refused = ApiError::RequestHeadersTooLarge {
                            limit: max_header_bytes,
                        };
                        Ok(TrackedBody::untracked(refused.into_response()))
                    }
                    _ => app.call(request).await,
                }
            }
        });
        let served = graceful.watch(builder.serve_connection(TokioIo::new(connection), service));
        tokio::spawn(async move {
            if let Err(e) = served.await {
                tracing::debug!(error = %e, "an HTTP connection ended with an error");
            }
        });
    }
    drop(connections);
    graceful.shutdown().await;
}

/// About how many bytes a request's head took: its target and headers.
fn head_bytes<B>(request: &Request<B>) -> usize {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    target + headers
}
