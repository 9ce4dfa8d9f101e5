//! Assembles a running gateway from a [`Config`]: loads the registry, opens the embedded store,
//! builds the pipeline, starts the background tasks (registry watcher, retention) and serves the
//! HTTP API until shutdown. `main` and the integration tests both start Sluice through here.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::backends::embedded::{EmbeddedStore, StoreError};
use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::registry::source::{Source, SourceError};
use crate::registry::stations::BackendRef;
use crate::registry::sync::Syncer;
use crate::registry::{LoadProblem, Registry};

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

/// Loads the registry and opens the store: everything but the listener and background tasks.
/// Returns the syncer that keeps the registry current, for [`serve`] to start.
pub fn build_pipeline(config: &Config) -> Result<(Arc<Pipeline>, Syncer), ServeError> {
    let limit = crate::formats::avro::set_allocation_limit(config.limits.max_avro_allocation_bytes);
    if limit != config.limits.max_avro_allocation_bytes {
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
    for station in registry.snapshot().stations() {
        if station.backend != BackendRef::Embedded {
            tracing::warn!(
                station = %station.name,
                backend = station.backend.kind(),
                "station uses a backend this gateway does not have configured; its producers get 503"
            );
        }
    }
    let store = EmbeddedStore::open(&config.storage.dir, config.storage.fsync)?;
    let pipeline = Arc::new(Pipeline::new(registry, store, config.limits.clone()));
    Ok((pipeline, syncer))
}

/// Serves the gateway on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (pipeline, syncer) = build_pipeline(&config)?;
    let webhook_secret = std::env::var(&config.registry.webhook_secret_env)
        .ok()
        .filter(|secret| !secret.is_empty())
        .map(String::into_bytes);
    let mut background = vec![syncer.spawn(
        config.registry.poll_interval,
        config.registry.watch,
        webhook_secret,
    )?];
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
        registry = %pipeline.registry().source(),
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
