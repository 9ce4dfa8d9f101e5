//! Assembles a running gateway from a [`Config`]: loads the registry, opens the embedded store,
//! builds the pipeline, starts the background tasks (registry watcher, retention) and serves the
//! HTTP API until shutdown. `main` and the integration tests both start Sluice through here.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::backends::embedded::{EmbeddedStore, StoreError};
use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::registry::source::{self, SourceError};
use crate::registry::stations::BackendRef;
use crate::registry::{load, LoadProblem, Registry};

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
    #[error("cannot serve HTTP: {0}")]
    Io(#[from] std::io::Error),
}

fn list(problems: &[LoadProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads the registry and opens the store: everything but the listener.
pub fn build_pipeline(config: &Config) -> Result<Arc<Pipeline>, ServeError> {
    let limit = crate::formats::avro::set_allocation_limit(config.limits.max_avro_allocation_bytes);
    if limit != config.limits.max_avro_allocation_bytes {
        tracing::warn!(
            limit,
            "the Avro allocation limit was already set in this process"
        );
    }
    let source_dir = &config.registry.source;
    let files = source::read_directory(source_dir)?;
    let snapshot =
        load::build(&files, &config.station).map_err(|problems| ServeError::Registry {
            source_dir: source_dir.display().to_string(),
            problems,
        })?;
    for station in snapshot.stations() {
        if station.backend != BackendRef::Embedded {
            tracing::warn!(
                station = %station.name,
                backend = station.backend.kind(),
                "station uses a backend this gateway does not have configured; its producers get 503"
            );
        }
    }
    let registry = Arc::new(Registry::new(source_dir.display().to_string(), snapshot));
    let store = EmbeddedStore::open(&config.storage.dir, config.storage.fsync)?;
    Ok(Arc::new(Pipeline::new(
        registry,
        store,
        config.limits.clone(),
    )))
}

/// Serves the gateway on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let pipeline = build_pipeline(&config)?;
    let mut background = Vec::new();
    if config.registry.watch {
        background.push(source::watch_directory(
            config.registry.source.clone(),
            pipeline.registry().clone(),
            config.station.clone(),
        )?);
    }
    let retention = pipeline.clone();
    let every = config.storage.retention_check_interval;
    background.push(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            retention.enforce_retention().await;
        }
    }));
    tracing::info!(
        http = %listener.local_addr()?,
        registry = %config.registry.source.display(),
        storage = %config.storage.dir.display(),
        "sluice is serving"
    );
    let app = crate::ingress::http::router(pipeline.clone());
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    for task in background {
        task.abort();
        let _ = task.await;
    }
    pipeline.embedded().close().await;
    tracing::info!("sluice stopped");
    served.map_err(ServeError::Io)
}
