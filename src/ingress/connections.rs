//! The front door of both listeners: which connections are let in and how long they may stay.
//! At most `server.max_connections` are open at once (HTTP and gRPC together; more are closed as
//! they arrive); a TLS handshake must finish within 10 s; a connection must send its first
//! request's headers within `server.header_read_timeout`; one with no request in progress is
//! closed `server.idle_timeout` after its last request ended; and one whose client stops reading
//! an answer is closed once its writes have made no progress for `server.idle_timeout`. Each
//! closing is counted in `sluice_limit_hits_total` under the key that caused it.
//!
//! A [`Guarded`] connection carries its [`ConnectionState`]; the front ends put it in each
//! request's extensions, where [`TrackRequests`] counts the request as in progress until its
//! answer's body is done. A watchdog task per connection closes it when a rule says so, by
//! failing its next read or write: the protocol code then drops it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{Request, Response};
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Longest a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections admitted (and, with TLS, through their handshake) waiting for a server to take
/// them.
const ACCEPT_BACKLOG: usize = 256;

/// How connections are let in and how long they may stay.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// The connection cap both listeners share.
pub struct Door {
    limits: ConnectionLimits,
    open: Arc<Semaphore>,
}

impl Door {
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: Arc::new(Semaphore::new(limits.max_connections)),
        })
    }

    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// Accepts connections on `listener` (with TLS when `tls` is given) until the returned
    /// receiver is dropped.
    pub fn listen(
        self: &Arc<Self>,
        listener: TcpListener,
        tls: Option<Arc<ServerConfig>>,
    ) -> mpsc::Receiver<Guarded> {
        let (ready, connections) = mpsc::channel(ACCEPT_BACKLOG);
        tokio::spawn(self.clone().accept_loop(listener, tls, ready));
        connections
    }

    async fn accept_loop(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<Arc<ServerConfig>>,
        ready: mpsc::Sender<Guarded>,
    ) {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = ready.closed() => return,
            };
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = self.open.clone().try_acquire_owned() else {
                crate::metrics::limit_hit("server.max_connections");
                tracing::debug!("server.max_connections are open; a new connection is closed");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let limits = self.limits;
            let ready = ready.clone();
            match tls.clone() {
                None => {
                    let _ = ready
                        .send(Guarded::new(Box::new(tcp), permit, limits))
                        .await;
                }
                Some(config) => {
                    tokio::spawn(async move {
                        if let Some(stream) = handshake(tcp, config).await {
                            let _ = ready.send(Guarded::new(stream, permit, limits)).await;
                        }
                    });
                }
            }
        }
    }
}

/// The TLS side of `tcp`, once its handshake finishes within [`HANDSHAKE_TIMEOUT`].
async fn handshake(tcp: TcpStream, config: Arc<ServerConfig>) -> Option<BoxedIo> {
    let peer = tcp.peer_addr().ok();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(Box::new(stream)),
        Ok(Err(e)) => {
            tracing::debug!(?peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(?peer, "TLS handshake timed out");
            None
        }
    }
}

/// A connection's byte stream, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}
type BoxedIo = Box<dyn Io>;

/// What a connection's watchdog reads and its requests write: when it opened, its requests, and
/// whether its writes are stuck.
#[derive(Debug)]
pub struct ConnectionState {
    opened: Instant,
    limits: ConnectionLimits,
    /// Requests started on the connection.
    started: AtomicU64,
    /// Requests whose answer is not done yet.
    in_flight: AtomicUsize,
    /// When the last request ended, in ms after `opened`.
    last_end_ms: AtomicU64,
    /// Since when a write has waited for the client to read, in ms after `opened` plus one
    /// (0: no write is waiting).
    write_stuck_ms: AtomicU64,
    closed: AtomicBool,
    /// Set when the connection is dropped: its watchdog ends.
    gone: AtomicBool,
    read_waker: AtomicWaker,
    write_waker: AtomicWaker,
    /// Wakes the watchdog when the connection is dropped.
    gone_now: Notify,
}

impl ConnectionState {
    fn since_opened_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn request_started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    fn request_ended(&self) {
        self.last_end_ms
            .store(self.since_opened_ms(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// When the rule that closes the connection next would close it, and which rule; `None`
    /// while a request is in progress and no write is stuck. Activity moves these later, or from
    /// the header deadline to an idle deadline no sooner than one idle timeout away, so a
    /// watchdog that wakes by then and finds its deadline moved sleeps again.
    fn next_deadline(&self) -> Option<(Instant, &'static str)> {
        let after = |ms: u64| self.opened + Duration::from_millis(ms);
        let stuck = self.write_stuck_ms.load(Ordering::Relaxed);
        if stuck > 0 {
            return Some((
                after(stuck - 1) + self.limits.idle_timeout,
                "server.idle_timeout",
            ));
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if self.started.load(Ordering::Relaxed) == 0 {
            let deadline = self.opened + self.limits.header_read_timeout;
            return Some((deadline, "server.header_read_timeout"));
        }
        let idle_since = after(self.last_end_ms.load(Ordering::Relaxed));
        Some((idle_since + self.limits.idle_timeout, "server.idle_timeout"))
    }

    /// Fails the connection's next read and write, and wakes whoever waits on them.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.read_waker.wake();
        self.write_waker.wake();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// Closes the connection of `state` when a rule says so; ends when the connection is gone. It
/// is not told of each request: it wakes at the next deadline (while requests are in progress,
/// every quarter of `server.idle_timeout`, for a write that may get stuck) and looks again.
async fn watchdog(state: Arc<ConnectionState>) {
    let gone = state.gone_now.notified();
    tokio::pin!(gone);
    gone.as_mut().enable();
    loop {
        if state.gone.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        let wake = match state.next_deadline() {
            Some((deadline, rule)) if deadline <= now => {
                crate::metrics::limit_hit(rule);
                tracing::debug!(rule, "closing a connection");
                state.close();
                return;
            }
            // A request that starts now and ends at once is due for closing one idle timeout
            // from now, which may come before a later header deadline: wake by then to look.
            Some((deadline, _)) => deadline.min(now + state.limits.idle_timeout),
            None => now + state.limits.idle_timeout / 4,
        };
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            () = &mut gone => return,
        }
    }
}

/// A connection let in by the [`Door`]: its stream, its place under the cap, and its state.
pub struct Guarded {
    io: BoxedIo,
    state: Arc<ConnectionState>,
    _permit: OwnedSemaphorePermit,
}

impl Guarded {
    fn new(io: BoxedIo, permit: OwnedSemaphorePermit, limits: ConnectionLimits) -> Self {
        let state = Arc::new(ConnectionState {
            opened: Instant::now(),
            limits,
            started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
            write_stuck_ms: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            read_waker: AtomicWaker::new(),
            write_waker: AtomicWaker::new(),
            gone_now: Notify::new(),
        });
        tokio::spawn(watchdog(state.clone()));
        Self {
            io,
            state,
            _permit: permit,
        }
    }

    /// The connection's state, for the requests it carries.
    pub fn state(&self) -> ConnectionInfo {
        ConnectionInfo(self.state.clone())
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.state.gone.store(true, Ordering::Release);
        self.state.gone_now.notify_one();
    }
}

fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "closed by the gateway (a connection limit)",
    )
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.state.read_waker.register(cx.waker());
        if self.state.is_closed() {
            return Poll::Ready(Err(closed_error()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.state.write_waker.register(cx.waker());
        if self.state.is_closed() {
            return Poll::Ready(Err(closed_error()));
        }
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        let state = &self.state;
        match written {
            Poll::Pending => {
                if state.write_stuck_ms.load(Ordering::Relaxed) == 0 {
                    let since = state.since_opened_ms() + 1;
                    state.write_stuck_ms.store(since, Ordering::Relaxed);
                }
            }
            Poll::Ready(_) => {
                if state.write_stuck_ms.load(Ordering::Relaxed) != 0 {
                    state.write_stuck_ms.store(0, Ordering::Relaxed);
                }
            }
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.state.is_closed() {
            return Poll::Ready(Err(closed_error()));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A connection's state in a request's extensions (gRPC's connect info).
#[derive(Debug, Clone)]
pub struct ConnectionInfo(Arc<ConnectionState>);

impl tonic::transport::server::Connected for Guarded {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.state()
    }
}

/// Counts each request as in progress on its connection until its answer's body is done, so an
/// open request is never idle.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackRequests;

impl<S> tower_layer::Layer<S> for TrackRequests {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Tracked { inner }
    }
}

/// A service whose requests count as in progress on their connection.
#[derive(Debug, Clone)]
pub struct Tracked<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for Tracked<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<TrackedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let guard = request
            .extensions()
            .get::<ConnectionInfo>()
            .map(|info| InProgress::start(info.0.clone()));
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| TrackedBody { body, guard }))
        })
    }
}

/// A request in progress; it ends when dropped.
#[derive(Debug)]
struct InProgress(Arc<ConnectionState>);

impl InProgress {
    fn start(state: Arc<ConnectionState>) -> Self {
        state.request_started();
        Self(state)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// An answer's body that ends its request when it is done or dropped.
#[derive(Debug)]
pub struct TrackedBody<B> {
    body: B,
    guard: Option<InProgress>,
}

impl<B> TrackedBody<Response<B>> {
    /// A response whose request is not counted: it ends as it is answered.
    pub fn untracked(response: Response<B>) -> Response<TrackedBody<B>> {
        response.map(|body| TrackedBody { body, guard: None })
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            self.guard = None;
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn limits(max_connections: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections,
            header_read_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_millis(400),
        }
    }

    async fn door(max_connections: usize) -> (std::net::SocketAddr, mpsc::Receiver<Guarded>) {
        door_with(limits(max_connections)).await
    }

    async fn door_with(
        limits: ConnectionLimits,
    ) -> (std::net::SocketAddr, mpsc::Receiver<Guarded>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (addr, Door::new(limits).listen(listener, None))
    }

    /// Whether the server closed `client`'s connection within `within`.
    async fn closed_within(client: &mut TcpStream, within: Duration) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(within, client.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    /// Serves each connection by echoing, as one request per read.
    fn echo(mut connection: Guarded) {
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            loop {
                let read = connection.read(&mut buf).await;
                let Ok(n @ 1..) = read else { return };
                let info = connection.state();
                let guard = InProgress::start(info.0);
                if connection.write_all(&buf[..n]).await.is_err() {
                    return;
                }
                drop(guard);
            }
        });
    }

    #[tokio::test]
    async fn a_connection_without_a_request_is_closed_after_the_header_timeout() {
        let (addr, mut connections) = door(8).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let connection = connections.recv().await.unwrap();
        echo(connection);
        assert!(!closed_within(&mut silent, Duration::from_millis(100)).await);
        assert!(closed_within(&mut silent, Duration::from_millis(500)).await);
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_after_its_last_request() {
        let (addr, mut connections) = door(8).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        echo(connections.recv().await.unwrap());
        for _ in 0..3 {
            // Requests keep it open past the header timeout.
            client.write_all(b"ping").await.unwrap();
            let mut answer = [0u8; 4];
            client.read_exact(&mut answer).await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        assert!(!closed_within(&mut client, Duration::from_millis(200)).await);
        assert!(closed_within(&mut client, Duration::from_millis(600)).await);
    }

    #[tokio::test]
    async fn an_idle_timeout_shorter_than_the_header_timeout_is_kept() {
        let (addr, mut connections) = door_with(ConnectionLimits {
            max_connections: 8,
            header_read_timeout: Duration::from_millis(1_500),
            idle_timeout: Duration::from_millis(300),
        })
        .await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        echo(connections.recv().await.unwrap());
        client.write_all(b"ping").await.unwrap();
        let mut answer = [0u8; 4];
        client.read_exact(&mut answer).await.unwrap();
        // Closed one idle timeout after its request, long before the header deadline.
        assert!(closed_within(&mut client, Duration::from_millis(800)).await);
    }

    #[tokio::test]
    async fn connections_past_the_cap_are_closed_as_they_arrive() {
        let (addr, mut connections) = door(2).await;
        let mut kept = Vec::new();
        for _ in 0..2 {
            kept.push(TcpStream::connect(addr).await.unwrap());
            echo(connections.recv().await.unwrap());
        }
        let mut third = TcpStream::connect(addr).await.unwrap();
        assert!(closed_within(&mut third, Duration::from_millis(150)).await);
        drop(kept);
        // A place is free again once one closes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut fourth = TcpStream::connect(addr).await.unwrap();
        echo(connections.recv().await.unwrap());
        fourth.write_all(b"hi").await.unwrap();
        let mut answer = [0u8; 2];
        fourth.read_exact(&mut answer).await.unwrap();
    }
}
