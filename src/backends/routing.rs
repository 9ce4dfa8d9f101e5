//! Which backend stores a station's messages, and under which names: the embedded store (always
//! open), and the Kafka and NATS backends, connected the first time a station needs them — at
//! start-up for the stations of the first snapshot, or when a later commit adds one. Owns the
//! mapping from a station's [`BackendRef`] to its log and dead-letter log on that backend, and the
//! bound on messages being stored on each backend at once.

use std::borrow::Cow;
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};

use super::embedded::EmbeddedStore;
use super::kafka::{KafkaBackend, KafkaConfig};
use super::nats::{NatsBackend, NatsConfig};
use super::{Backend, BackendError, StationQueue};
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
                backend: self.backend.kind(),
                reason: format!(
                    "busy: {} messages are being stored already (limits.max_in_flight_messages); retry shortly",
                    capacity - self.in_flight.available_permits().min(capacity)
                ),
            })
    }
}

/// A tokio semaphore's most permits, and so the most a backend can bound.
const MAX_PERMITS: usize = u32::MAX as usize >> 3;

/// Messages being stored now, bounded per backend.
struct InFlight {
    embedded: Semaphore,
    kafka: Semaphore,
    nats: Semaphore,
}

/// Every backend a gateway can store on.
pub struct Backends {
    embedded: EmbeddedStore,
    in_flight: InFlight,
    max_in_flight: usize,
    kafka_config: KafkaConfig,
    nats_config: NatsConfig,
    kafka: OnceCell<KafkaBackend>,
    nats: OnceCell<NatsBackend>,
}

impl Backends {
    pub fn new(
        embedded: EmbeddedStore,
        kafka: KafkaConfig,
        nats: NatsConfig,
        max_in_flight: usize,
    ) -> Self {
        let max_in_flight = max_in_flight.clamp(1, MAX_PERMITS);
        Self {
            embedded,
            in_flight: InFlight {
                embedded: Semaphore::new(max_in_flight),
                kafka: Semaphore::new(max_in_flight),
                nats: Semaphore::new(max_in_flight),
            },
            max_in_flight,
            kafka_config: kafka,
            nats_config: nats,
            kafka: OnceCell::new(),
            nats: OnceCell::new(),
        }
    }

    /// The embedded store, with Kafka and NATS at their default settings should a station use them.
    pub fn with_defaults(embedded: EmbeddedStore) -> Self {
        Self::new(
            embedded,
            KafkaConfig::default(),
            NatsConfig::default(),
            DEFAULT_MAX_IN_FLIGHT,
        )
    }

    pub fn embedded(&self) -> &EmbeddedStore {
        &self.embedded
    }

    /// The backend and log names of a station, connecting its backend if this is its first use.
    pub async fn route<'a>(&'a self, station: Placement<'a>) -> Result<Route<'a>, BackendError> {
        Ok(match station.backend {
            BackendRef::Embedded => Route {
                backend: &self.embedded,
                queue: &self.embedded,
                in_flight: &self.in_flight.embedded,
                capacity: self.max_in_flight,
                log: Cow::Borrowed(station.station),
                dead_letters: Cow::Borrowed(station.dlq_name),
            },
            BackendRef::Kafka(topic) => {
                let kafka = self.kafka().await?;
                Route {
                    backend: kafka,
                    queue: kafka,
                    in_flight: &self.in_flight.kafka,
                    capacity: self.max_in_flight,
                    log: Cow::Borrowed(topic),
                    dead_letters: Cow::Owned(format!("{topic}{}", self.kafka_config.dlq_suffix)),
                }
            }
            BackendRef::Nats(subject) => {
                let nats = self.nats().await?;
                Route {
                    backend: nats,
                    queue: nats,
                    in_flight: &self.in_flight.nats,
                    capacity: self.max_in_flight,
                    log: Cow::Borrowed(subject),
                    dead_letters: Cow::Owned(format!("{subject}{}", self.nats_config.dlq_suffix)),
                }
            }
        })
    }

    /// Whether this gateway may produce the ticks of a schedule on `backend`: always, but on
    /// Kafka, which cannot drop a duplicate, only while it holds the scheduling role.
    pub async fn runs_schedules_on(&self, backend: &BackendRef) -> Result<bool, BackendError> {
        match backend {
            BackendRef::Kafka(_) => self.kafka().await?.holds_scheduling_role().await,
            BackendRef::Embedded | BackendRef::Nats(_) => Ok(true),
        }
    }

    // The connecting futures are boxed: they run once, and held inline they would make every
    // produce's future (which awaits `route`) several kilobytes larger, to be allocated and moved
    // on each request.
    async fn kafka(&self) -> Result<&KafkaBackend, BackendError> {
        self.kafka
            .get_or_try_init(|| Box::pin(async { KafkaBackend::connect(&self.kafka_config) }))
            .await
    }

    async fn nats(&self) -> Result<&NatsBackend, BackendError> {
        self.nats
            .get_or_try_init(|| Box::pin(NatsBackend::connect(&self.nats_config)))
            .await
    }

    /// Connects the backend `station` uses and makes sure its topics or streams exist, so the
    /// first message does not pay for it. Problems are logged, not fatal: a backend that is down
    /// now answers 503 until it is back.
    pub async fn prepare(&self, station: Placement<'_>) {
        if *station.backend == BackendRef::Embedded {
            return;
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
                backend = station.backend.kind(),
                "station backend ready"
            ),
            Err(e) => {
                tracing::warn!(station = %station.station, "{e}; producers get 503 until it is reachable")
            }
        }
    }

    /// Ready when the embedded store and every connected remote backend can take writes.
    pub async fn check_ready(&self) -> Result<(), BackendError> {
        self.embedded.check_ready().await?;
        if let Some(kafka) = self.kafka.get() {
            kafka.check_ready().await?;
        }
        if let Some(nats) = self.nats.get() {
            nats.check_ready().await?;
        }
        Ok(())
    }
}
