//! Serving the HTTP API on the connections the front door lets in: HTTP/1.1 with hyper, request
//! headers bounded by `server.max_header_bytes` (`431 headers_too_large` past it, in JSON; hyper
//! itself stops reading a head at twice that), each request counted on its connection while in
//! progress, a connection closed after an answer given before its request's body was read, and a
//! graceful shutdown that lets the requests in flight finish.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::CONNECTION;
use axum::http::HeaderValue;
use axum::response::IntoResponse as _;
use axum::Router;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
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
            let (request, read) = watched(request);
            let mut app = app.clone();
            async move {
                let mut response = match head_bytes(&request) {
                    size if size > max_header_bytes => {
                        let refused = ApiError::RequestHeadersTooLarge {
                            limit: max_header_bytes,
                        };
                        TrackedBody::untracked(refused.into_response())
                    }
                    _ => app.call(request).await?,
                };
                if read.is_some_and(|read| !read.load(Ordering::Acquire)) {
                    // Answered before its body was read (refused past a limit): hyper closes a
                    // connection whose request body is left unread, and saying so here lets the
                    // client send its next request on a new one rather than fail it on this one.
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(response)
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

/// `request` with its body, if it has one, watched: the flag is set once the body is read to
/// its end.
fn watched(request: Request<Incoming>) -> (Request<Body>, Option<Arc<AtomicBool>>) {
    if request.body().is_end_stream() {
        return (request.map(Body::new), None);
    }
    let read = Arc::new(AtomicBool::new(false));
    let flag = read.clone();
    let request = request.map(|body| Body::new(ReadToEnd { body, read: flag }));
    (request, Some(read))
}

/// A request body that sets its flag when it ends.
struct ReadToEnd {
    body: Incoming,
    read: Arc<AtomicBool>,
}

impl HttpBody for ReadToEnd {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) || self.body.is_end_stream() {
            self.read.store(true, Ordering::Release);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
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
