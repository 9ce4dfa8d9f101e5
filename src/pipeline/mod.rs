//! The pipeline: the one path every message takes, whichever front end it came in by. It looks up
//! the station in the serving registry snapshot, picks the schema version, validates, and routes
//! valid messages to the station's backend and invalid ones to its dead-letter queue — answering
//! only once the backend has durably accepted them. Consume, ack, dead-letter browse and replay (on
//! every backend, through its [`crate::backends::StationQueue`]), dry-run validation, registry
//! reads and syncs, and retention also live here, so front ends stay thin translators. Its answers are domain types and [`PipelineError`]; it knows no protocol.

mod consume;
mod dead_letters;
mod error;
mod idempotency;
mod judge;
mod limits;
mod metadata;
mod produce;
mod reads;
mod rules;
mod sending;
mod to_the_end;

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::backends::embedded::EmbeddedStore;
use crate::backends::routing::{Backends, Placement};
use crate::formats::{MessageLimits, PayloadEncoding};
use crate::metrics::PipelineMetrics;
use crate::model::{BackendRef, Headers, Position};
use crate::registry::{Registry, Snapshot, Station};
pub use consume::StationStats;
pub use error::{Breach, PipelineError, ViolationReport};
pub use idempotency::Answer;
use idempotency::Idempotency;
pub use limits::Limits;
pub use metadata::check as check_metadata;
pub use reads::{DryRun, Synced};

#[cfg(test)]
pub(crate) use error::sample_violation;

/// A message as a front end received it.
#[derive(Debug, Clone, Default)]
pub struct Incoming {
    pub payload: Bytes,
    /// The `Content-Type` as sent, kept with dead letters.
    pub content_type: Option<String>,
    pub key: Option<Bytes>,
    pub headers: Headers,
    /// The schema version the producer asked to be judged by.
    pub schema_version: Option<u32>,
    /// Not delivered to consumers before this time (ms since the Unix epoch).
    pub deliver_after_ms: Option<u64>,
    /// The producer's `Idempotency-Key`, naming retries of one message.
    pub idempotency_key: Option<String>,
    /// The request that carried the message (`Sluice-Request-Id`), kept with a dead letter as its
    /// `sluice-request-id` header.
    pub request_id: Option<Arc<str>>,
    /// Made by the gateway itself (a schedule's tick, a replayed dead letter): its headers may
    /// use Sluice's own names, and are not checked as a producer's are.
    pub from_gateway: bool,
}

/// The request id's header: on HTTP requests and answers, in gRPC metadata, and among a dead
/// letter's headers.
pub const REQUEST_ID_HEADER: &str = "sluice-request-id";

impl Incoming {
    pub fn encoding(&self) -> PayloadEncoding {
        PayloadEncoding::from_content_type(self.content_type.as_deref())
    }
}

/// A stored message's position, as answered to the producer.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    pub station: String,
    #[serde(flatten)]
    pub position: Position,
    pub schema_version: Option<u32>,
}

/// The gateway's one path for messages, and everything done with them.
pub struct Pipeline {
    registry: Arc<Registry>,
    backends: Backends,
    idempotency: Idempotency,
    limits: Limits,
    /// `limits` as the formats apply them to each message.
    message_limits: MessageLimits,
    metrics: PipelineMetrics,
    schedule_runs: Arc<crate::metrics::schedules::ScheduleRuns>,
}

impl Pipeline {
    pub fn new(registry: Arc<Registry>, backends: Backends, limits: Limits) -> Self {
        Self {
            registry,
            backends,
            idempotency: Idempotency::new(limits.idempotency_window, limits.max_idempotency_bytes),
            message_limits: limits.message_limits(),
            metrics: PipelineMetrics::default(),
            schedule_runs: Arc::default(),
            limits,
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Whether this gateway produces the ticks of schedules on `station` now (on Kafka, only
    /// while it holds the scheduling role).
    pub async fn runs_schedules_on(&self, station: &Station) -> Result<bool, PipelineError> {
        Ok(self.backends.runs_schedules_on(&station.backend).await?)
    }

    /// What each schedule of `schedules.toml` last did in this gateway.
    pub fn schedule_runs(&self) -> &Arc<crate::metrics::schedules::ScheduleRuns> {
        &self.schedule_runs
    }

    pub fn embedded(&self) -> &EmbeddedStore {
        self.backends.embedded()
    }

    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Ready to take messages: a registry snapshot is serving and the backends answer.
    pub async fn check_ready(&self) -> Result<(), PipelineError> {
        if let Some(reason) = self.registry.not_ready_reason() {
            return Err(PipelineError::RegistryNotReady(reason));
        }
        self.backends.check_ready().await?;
        Ok(())
    }

    fn station(&self, snapshot: &Snapshot, name: &str) -> Result<Arc<Station>, PipelineError> {
        snapshot
            .station(name)
            .cloned()
            .ok_or_else(|| match self.registry.not_ready_reason() {
                Some(reason) => PipelineError::RegistryNotReady(reason),
                None => PipelineError::UnknownStation(name.to_owned()),
            })
    }

    /// Produces one message.
    pub async fn produce(
        self: &Arc<Self>,
        station: &str,
        message: Incoming,
    ) -> Result<Accepted, PipelineError> {
        let mut results = self.produce_batch(station, vec![message]).await?;
        results.pop().expect("one result per message")
    }

    /// Connects the backends the serving snapshot's stations use and makes sure their topics or
    /// streams exist, so their first messages do not pay for it.
    pub async fn prepare_backends(&self) {
        let snapshot = self.registry.snapshot();
        for station in snapshot.stations() {
            self.backends.prepare(placement(station)).await;
        }
    }

    /// Applies every embedded station's retention to its log and its dead-letter queue.
    pub async fn enforce_retention(&self) {
        let snapshot = self.registry.snapshot();
        for station in snapshot.stations() {
            // Kafka and JetStream keep messages as their topics and streams are configured to.
            match station.backend {
                BackendRef::Embedded if !station.retention.is_forever() => {}
                BackendRef::Embedded | BackendRef::Kafka(_) | BackendRef::Nats(_) => continue,
            }
            for log in [&station.name, &station.dlq_name] {
                match self
                    .backends
                    .embedded()
                    .apply_retention(log, &station.retention)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(log = %log, dropped = n, "retention applied"),
                    Err(e) => tracing::warn!(log = %log, "retention failed: {e}"),
                }
            }
        }
    }
}

/// Where a station's messages go, as the backends see it.
fn placement(station: &Station) -> Placement<'_> {
    Placement {
        station: &station.name,
        backend: &station.backend,
        dlq_name: &station.dlq_name,
        keeps_dead_letters: station.dlq,
    }
}

/// A pipeline serving a repository of text files, on an embedded store in a temporary directory
/// (kept as long as the returned guard), for tests of the pipeline and the layers above it.
#[cfg(test)]
pub(crate) fn pipeline_of(files: &[(&str, &str)]) -> (Arc<Pipeline>, tempfile::TempDir) {
    use crate::backends::embedded::config::FsyncPolicy;
    let registry = Registry::serving("test".into(), crate::registry::load::snapshot_of(files));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = EmbeddedStore::open(dir.path(), FsyncPolicy::Never).expect("the store opens");
    let pipeline = Pipeline::new(
        Arc::new(registry),
        Backends::with_defaults(store),
        Limits::default(),
    );
    (Arc::new(pipeline), dir)
}
