//! Which backend stores a station's messages, and under which names: the embedded store (always
//! open), and the Kafka and NATS backends, connected the first time a station needs them — at
//! start-up for the stations of the first snapshot, or when a later commit adds one. Owns the
//! mapping from a station to its log and dead-letter log on its backend.

use std::borrow::Cow;
use std::sync::Arc;

use tokio::sync::OnceCell;

use super::embedded::EmbeddedStore;
use super::kafka::KafkaBackend;
use super::nats::NatsBackend;
use super::{Backend, BackendError};
use crate::config::{KafkaConfig, NatsConfig};
use crate::registry::stations::BackendRef;
use crate::registry::Station;

/// Where one station's records go.
pub struct Route<'a> {
    pub backend: &'a dyn Backend,
    /// The station's log: a station name, a Kafka topic or a NATS subject.
    pub log: Cow<'a, str>,
    /// Its dead-letter log on the same backend.
    pub dead_letters: Cow<'a, str>,
}

/// Every backend a gateway can store on.
pub struct Backends {
    embedded: EmbeddedStore,
    kafka_config: KafkaConfig,
    nats_config: NatsConfig,
    kafka: OnceCell<KafkaBackend>,
    nats: OnceCell<NatsBackend>,
}

impl Backends {
    pub fn new(embedded: EmbeddedStore, kafka: KafkaConfig, nats: NatsConfig) -> Self {
        Self {
            embedded,
            kafka_config: kafka,
            nats_config: nats,
            kafka: OnceCell::new(),
            nats: OnceCell::new(),
        }
    }

    /// The embedded store, with Kafka and NATS at their default settings should a station use them.
    pub fn with_defaults(embedded: EmbeddedStore) -> Self {
        Self::new(embedded, KafkaConfig::default(), NatsConfig::default())
    }

    pub fn embedded(&self) -> &EmbeddedStore {
        &self.embedded
    }

    /// The backend and log names of `station`, connecting its backend if this is its first use.
    pub async fn route<'a>(&'a self, station: &'a Station) -> Result<Route<'a>, BackendError> {
        Ok(match &station.backend {
            BackendRef::Embedded => Route {
                backend: &self.embedded,
                log: Cow::Borrowed(&station.name),
                dead_letters: Cow::Borrowed(&station.dlq_name),
            },
            BackendRef::Kafka(topic) => Route {
                backend: self.kafka().await?,
                log: Cow::Borrowed(topic),
                dead_letters: Cow::Owned(format!("{topic}{}", self.kafka_config.dlq_suffix)),
            },
            BackendRef::Nats(subject) => Route {
                backend: self.nats().await?,
                log: Cow::Borrowed(subject),
                dead_letters: Cow::Owned(format!("{subject}{}", self.nats_config.dlq_suffix)),
            },
        })
    }

    async fn kafka(&self) -> Result<&KafkaBackend, BackendError> {
        self.kafka
            .get_or_try_init(|| async { KafkaBackend::connect(&self.kafka_config) })
            .await
    }

    async fn nats(&self) -> Result<&NatsBackend, BackendError> {
        self.nats
            .get_or_try_init(|| NatsBackend::connect(&self.nats_config))
            .await
    }

    /// Connects the backends `stations` use and makes sure their topics or streams exist, so the
    /// first message does not pay for it. Problems are logged, not fatal: a backend that is down
    /// now answers 503 until it is back.
    pub async fn prepare(&self, stations: impl IntoIterator<Item = Arc<Station>>) {
        for station in stations {
            if station.backend == BackendRef::Embedded {
                continue;
            }
            let prepared = async {
                let route = self.route(&station).await?;
                route.backend.prepare(&route.log).await?;
                if station.dlq {
                    route.backend.prepare(&route.dead_letters).await?;
                }
                Ok::<_, BackendError>(())
            };
            match prepared.await {
                Ok(()) => tracing::info!(
                    station = %station.name,
                    backend = station.backend.kind(),
                    "station backend ready"
                ),
                Err(e) => {
                    tracing::warn!(station = %station.name, "{e}; producers get 503 until it is reachable")
                }
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
