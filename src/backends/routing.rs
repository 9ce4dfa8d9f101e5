//! Which backend stores a station's messages, and under which names: the embedded store (always
//! open), and the remote engines (Kafka, NATS; each a [`RemoteBackend`]), connected the first time
//! a station needs them — at start-up for the stations of the first snapshot, or when a later
//! commit adds one. Owns the mapping from a station's [`BackendRef`] to its log and dead-letter
//! log on that backend, and the bound on messages being stored on each backend at once.

use std::borrow::Cow;

use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};

use super::embedded::EmbeddedStore;
use super::kafka::{KafkaBackend, KafkaConfig};
use super::nats::{NatsBackend, NatsConfig};
use super::{Backend, BackendError, RemoteBackend, StationQueue};
use crate::model::BackendRef;

/// Messages being stored on one backend at once unless configured otherwise.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 100_000;

/// A station as the backends see it: its name, where its messages go, and whether it keeps dead
/// letters.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    pub station: &'a str,
    pub backend: &'a BackendRef,
    /// The station's dead-letter log on the embedded store (`<station>.dlq`).
    pub dlq_name: &'a str,
    pub keeps_dead_letters: bool,
}

/// Where one station's records go.
pub struct Route<'a> {
    pub backend: &'a dyn Backend,
    /// The same backend's consumer groups and dead letters.
    pub queue: &'a dyn StationQueue,
    /// Messages being stored on this backend now, bounded by `capacity`.
    in_flight: &'a Semaphore,
    capacity: usize,
    /// The station's log: a station name, a Kafka topic or a NATS subject.
    pub log: Cow<'a, str>,
    /// Its dead-letter log on the same backend.
    pub dead_letters: Cow<'a, str>,
}

impl Route<'_> {
    /// Room for `messages` more messages on the backend, or 503 now if it is full: back pressure
    /// instead of an unbounded queue.
    pub fn admit(&self, messages: usize) -> Result<Option<SemaphorePermit<'_>>, BackendError> {
        if messages == 0 {
            return Ok(None);
        }
        let capacity = self.capacity;
        let wanted = u32::try_from(messages.min(capacity)).unwrap_or(u32::MAX);
        self.in_flight
            .try_acquire_many(wanted)
            .map(Some)
            .inspect_err(|_| crate::metrics::limit_hit("limits.max_in_flight_messages"))
            .map_err(|_| BackendError::Unavailable {
                backend: self.backend.kind().name(),
                reason: format!(
                    "busy: {} messages are being stored already (limits.max_in_flight_messages); retry shortly",
                    capacity - self.in_flight.available_permits().min(capacity)
                ),
            })
    }
}

/// A tokio semaphore's most permits, and so the most a backend can bound.
const MAX_PERMITS: usize = u32::MAX as usize >> 3;

/// What a gateway's backends are configured with: each remote engine's section, and the bound on
/// messages being stored on one backend at once.
#[derive(Debug, Clone)]
pub struct BackendsConfig {
    pub kafka: KafkaConfig,
    pub nats: NatsConfig,
    pub max_in_flight: usize,
}

impl Default for BackendsConfig {
    fn default() -> Self {
        Self {
            kafka: KafkaConfig::default(),
            nats: NatsConfig::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// One remote engine: its settings, its connection once made, and its in-flight bound.
struct Remote<E: RemoteBackend> {
    config: E::Config,
    connected: OnceCell<E>,
    in_flight: Semaphore,
}

impl<E: RemoteBackend> Remote<E> {
    fn new(config: E::Config, max_in_flight: usize) -> Self {
        Self {
            config,
            connected: OnceCell::new(),
            in_flight: Semaphore::new(max_in_flight),
        }
    }

    // `connect`'s future is boxed (an async trait method): it runs once, and held inline it would
    // make every produce's future (which awaits `route`) several kilobytes larger.
    async fn engine(&self) -> Result<&E, BackendError> {
        self.connected
            .get_or_try_init(|| E::connect(&self.config))
            .await
    }

    async fn route<'a>(&'a self, log: &'a str, capacity: usize) -> Result<Route<'a>, BackendError> {
        let engine = self.engine().await?;
        Ok(Route {
            backend: engine,
            queue: engine,
            in_flight: &self.in_flight,
            capacity,
            log: Cow::Borrowed(log),
            dead_letters: Cow::Owned(E::dead_letters_of(&self.config, log)),
        })
    }

    /// Ready when not connected yet (nothing depends on it), or connected and able to take writes.
    async fn check_ready(&self) -> Result<(), BackendError> {
        match self.connected.get() {
            Some(engine) => engine.check_ready().await,
            None => Ok(()),
        }
    }
}

/// Every backend a gateway can store on.
pub struct Backends {
    embedded: EmbeddedStore,
    embedded_in_flight: Semaphore,
    kafka: Remote<KafkaBackend>,
    nats: Remote<NatsBackend>,
    max_in_flight: usize,
}

impl Backends {
    pub fn new(embedded: EmbeddedStore, config: BackendsConfig) -> Self {
        let BackendsConfig {
            kafka,
            nats,
            max_in_flight,
        } = config;
        let max_in_flight = max_in_flight.clamp(1, MAX_PERMITS);
        Self {
            embedded,
            embedded_in_flight: Semaphore::new(max_in_flight),
            kafka: Remote::new(kafka, max_in_flight),
            nats: Remote::new(nats, max_in_flight),
            max_in_flight,
        }
    }

    /// The embedded store, with Kafka and NATS at their default settings should a station use them.
    pub fn with_defaults(embedded: EmbeddedStore) -> Self {
        Self::new(embedded, BackendsConfig::default())
    }

    pub fn embedded(&self) -> &EmbeddedStore {
        &self.embedded
    }

    /// The backend and log names of a station, connecting its backend if this is its first use.
    pub async fn route<'a>(&'a self, station: Placement<'a>) -> Result<Route<'a>, BackendError> {
        let capacity = self.max_in_flight;
        match station.backend {
            BackendRef::Embedded => Ok(Route {
                backend: &self.embedded,
                queue: &self.embedded,
                in_flight: &self.embedded_in_flight,
                capacity,
                log: Cow::Borrowed(station.station),
                dead_letters: Cow::Borrowed(station.dlq_name),
            }),
            BackendRef::Kafka(topic) => self.kafka.route(topic, capacity).await,
            BackendRef::Nats(subject) => self.nats.route(subject, capacity).await,
        }
    }

    /// Whether this gateway may produce the ticks of a schedule on `backend` now (see
    /// [`Backend::runs_schedules`]).
    pub async fn runs_schedules_on(&self, backend: &BackendRef) -> Result<bool, BackendError> {
        match backend {
            BackendRef::Embedded => self.embedded.runs_schedules().await,
            BackendRef::Kafka(_) => self.kafka.engine().await?.runs_schedules().await,
            BackendRef::Nats(_) => self.nats.engine().await?.runs_schedules().await,
        }
    }

    /// Connects the backend `station` uses and makes sure its topics or streams exist, so the
    /// first message does not pay for it. Problems are logged, not fatal: a backend that is down
    /// now answers 503 until it is back.
    pub async fn prepare(&self, station: Placement<'_>) {
        match station.backend {
            BackendRef::Embedded => return,
            BackendRef::Kafka(_) | BackendRef::Nats(_) => {}
        }
        let prepared = async {
            let route = self.route(station).await?;
            route.backend.prepare(&route.log).await?;
            if station.keeps_dead_letters {
                route.backend.prepare(&route.dead_letters).await?;
            }
            Ok::<_, BackendError>(())
        };
        match prepared.await {
            Ok(()) => tracing::info!(
                station = %station.station,
                backend = station.backend.kind().name(),
                "station backend ready"
            ),
            Err(e) => {
                tracing::warn!(station = %station.station, "{e}; producers get 503 until it is reachable")
            }
        }
    }

    /// Ready when the embedded store and every connected remote backend can take writes.
    pub async fn check_ready(&self) -> Result<(), BackendError> {
        let Self {
            embedded,
            embedded_in_flight: _,
            kafka,
            nats,
            max_in_flight: _,
        } = self;
        embedded.check_ready().await?;
        kafka.check_ready().await?;
        nats.check_ready().await
    }
}
