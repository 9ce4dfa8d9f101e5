//! Assembles a running gateway from a [`Config`]: loads the registry, opens the embedded store,
//! builds the pipeline, starts the background tasks (registry watcher, retention) and serves the
//! HTTP and gRPC APIs until shutdown. `main` and the integration tests both start Sluice through here.

mod background;
mod scheduler;
mod shutdown;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::backends::embedded::{EmbeddedStore, StoreError};
use crate::backends::routing::{Backends, BackendsConfig};
use crate::config::{Config, ServerConfig};
use crate::ingress::auth::Authenticator;
use crate::ingress::connections::Door;
use crate::ingress::tls::TlsIdentity;
use crate::pipeline::Pipeline;
use crate::registry::source::{Source, SourceError};
use crate::registry::sync::Syncer;
use crate::registry::{LoadProblem, Registry};
use background::Background;
use shutdown::Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the schema repository {source_dir} cannot be served:\n{}", list(.problems))]
    Registry {
        source_dir: String,
        problems: Vec<LoadProblem>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] crate::ingress::auth::AuthConfigError),
    #[error(transparent)]
    Tls(#[from] crate::ingress::tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot serve HTTP: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot serve gRPC: {0}")]
    Grpc(#[from] tonic::transport::Error),
}

fn list(problems: &[LoadProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads the registry and opens the store: everything but the listener and background tasks.
/// Returns the syncer that keeps the registry current, for [`serve`] to start.
pub fn build_pipeline(config: &Config) -> Result<(Arc<Pipeline>, Syncer), ServeError> {
    // No valid datum has a string or bytes longer than the message itself, so a length prefix
    // past `max_message_bytes` is refused before the decoder allocates for it.
    let wanted = config
        .limits
        .max_avro_allocation_bytes
        .min(config.limits.max_message_bytes);
    let limit = crate::formats::avro::set_allocation_limit(wanted);
    if limit != wanted {
        tracing::warn!(
            limit,
            "the Avro allocation limit was already set in this process"
        );
    }
    let source = Source::open(&config.registry, &config.storage.dir)?;
    let is_directory = source.watched_directory().is_some();
    let registry = Arc::new(Registry::new(source.describe()));
    let mut syncer = Syncer::new(
        source,
        registry.clone(),
        config.station.clone(),
        &config.storage.dir,
    );
    syncer.start();
    if !registry.is_serving() {
        // A directory is right here: a repository that does not load is a start-up error. A git
        // remote may come back, so the gateway starts, not ready, and says why.
        let problems = match (registry.last_refusal(), registry.source_failure()) {
            (Some(refusal), _) => refusal.errors,
            (None, Some(failure)) => vec![LoadProblem {
                file: registry.source().to_owned(),
                version: None,
                rule: "source",
                message: failure.message,
            }],
            (None, None) => Vec::new(),
        };
        if is_directory {
            return Err(ServeError::Registry {
                source_dir: registry.source().to_owned(),
                problems,
            });
        }
        tracing::error!(
            "not ready: {}",
            registry.not_ready_reason().unwrap_or_default()
        );
    }
    let store = EmbeddedStore::open_with_memory(
        &config.storage.dir,
        config.storage.fsync,
        config.storage.memory(),
    )?;
    let backends = Backends::new(
        store,
        BackendsConfig {
            kafka: config.kafka.clone(),
            nats: config.nats.clone(),
            max_in_flight: config.limits.max_in_flight_messages,
        },
    );
    let pipeline = Arc::new(Pipeline::new(registry, backends, config.limits.clone()));
    Ok((pipeline, syncer))
}

/// The sockets a gateway serves on, bound by the caller (so tests can bind port 0).
pub struct Listeners {
    pub http: TcpListener,
    /// None: no gRPC API.
    pub grpc: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses of `[server]`.
    pub async fn bind(config: &Config) -> Result<Self, ServeError> {
        let bind = |addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })
        };
        Ok(Self {
            http: bind(config.server.http).await?,
            grpc: Some(bind(config.server.grpc).await?),
        })
    }
}

/// Serves the gateway's HTTP and gRPC APIs until `shutdown` completes, then drains in-flight
/// requests on both, within `server.shutdown_timeout`.
pub async fn serve(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // Before the pipeline and the first snapshot, whose metric handles bind to the recorder.
    crate::metrics::install();
    let auth = Arc::new(Authenticator::new(&config.auth.tokens)?);
    let tls = config
        .server
        .tls()
        .map(|(cert, key)| TlsIdentity::load(cert, key))
        .transpose()?;
    if auth.is_enabled() {
        tracing::info!(tokens = config.auth.tokens.len(), "bearer tokens required");
    }
    let (pipeline, syncer) = build_pipeline(&config)?;
    let background = Background::start(&config, &pipeline, syncer)?;
    let Listeners { http, grpc } = listeners;
    tracing::info!(
        http = %http.local_addr()?,
        tls = tls.is_some(),
        grpc = %grpc.as_ref().map(|l| l.local_addr()).transpose()?.map_or("off".to_owned(), |a| a.to_string()),
        registry = %pipeline.registry().source(),
        storage = %config.storage.dir.display(),
        "sluice is serving"
    );
    let shutdown = Shutdown::new(shutdown);
    let door = Door::new(config.server.connection_limits());
    let front = (&pipeline, &auth);
    let server = &config.server;
    let servers = async {
        tokio::join!(
            serve_http(http, &door, &tls, front, server, &shutdown),
            serve_grpc(grpc, &door, &tls, front, server, &shutdown),
        )
    };
    // Draining ends when both servers are done, or `shutdown_timeout` after the signal.
    let grace = config.server.shutdown_timeout;
    let grpc_served = tokio::select! {
        ((), served) = servers => served,
        () = async { shutdown.signalled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "requests or streams still open after server.shutdown_timeout; cutting them");
            Ok(())
        }
    };
    background.stop().await;
    pipeline.embedded().close().await;
    tracing::info!("sluice stopped");
    grpc_served
}

/// The HTTP API on `listener`, with TLS when there is an identity, until the shutdown signal and
/// the requests in flight then are done.
async fn serve_http(
    listener: TcpListener,
    door: &Arc<Door>,
    tls: &Option<TlsIdentity>,
    (pipeline, auth): (&Arc<Pipeline>, &Arc<Authenticator>),
    server: &ServerConfig,
    shutdown: &Shutdown,
) {
    let app =
        crate::ingress::http::router(pipeline.clone(), auth.clone(), server.compress_responses);
    let connections = door.listen(listener, tls.as_ref().map(TlsIdentity::http));
    let max_header_bytes = server.max_header_bytes;
    crate::ingress::http::serve(connections, app, max_header_bytes, shutdown.signalled()).await
}

/// The gRPC API on `listener` (none: no gRPC API), like [`serve_http`].
async fn serve_grpc(
    listener: Option<TcpListener>,
    door: &Arc<Door>,
    tls: &Option<TlsIdentity>,
    (pipeline, auth): (&Arc<Pipeline>, &Arc<Authenticator>),
    server: &ServerConfig,
    shutdown: &Shutdown,
) -> Result<(), ServeError> {
    let Some(listener) = listener else {
        return Ok(());
    };
    let connections = door.listen(listener, tls.as_ref().map(TlsIdentity::grpc));
    let (pipeline, auth) = (pipeline.clone(), auth.clone());
    crate::ingress::grpc::serve(
        pipeline,
        auth,
        connections,
        server.max_header_bytes,
        shutdown.signalled(),
    )
    .await?;
    Ok(())
}
